"""The portable query language: filters, projections and updates over JSON-like documents, the same on every backend."""
