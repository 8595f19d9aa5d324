"""Single-player puzzle games (docs/environments.md#games)."""
