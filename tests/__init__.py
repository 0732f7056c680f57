"""mailstack tests (trial)."""
