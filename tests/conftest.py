"""Suite-wide fixtures. Helpers live in tests/support so test modules import them explicitly."""
