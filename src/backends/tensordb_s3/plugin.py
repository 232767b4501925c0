"""Entry point module of the S3 backend (placeholder until its issue lands)."""
