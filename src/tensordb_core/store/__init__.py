"""The storage contract and its plumbing: protocols, URIs, the plugin registry, retries and the backend kit."""
