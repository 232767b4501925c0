"""The public on-store format: how arrays, archives and documents become bytes, and how those bytes are checked."""
