"""Entry point module of the mongo backend (placeholder until its issue lands)."""
