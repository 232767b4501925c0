"""Entry point module of the gcs backend (placeholder until its issue lands)."""
