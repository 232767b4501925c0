"""The embedded default: no server, just a directory (SQLite index + files), plus ``memory://`` for tests."""
