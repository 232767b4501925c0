"""The training stream: plan, fetch, decode, order and batch the samples a query selects."""
