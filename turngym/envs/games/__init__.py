"""Single-player puzzle games (ENVIRONMENTS.md section 5)."""
