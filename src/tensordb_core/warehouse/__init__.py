"""The public handle and one module per collection: data, architectures, parameters, jobs, logs, aliases."""
