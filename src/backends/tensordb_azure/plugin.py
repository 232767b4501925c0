"""Entry point module of the azure backend (placeholder until its issue lands)."""
