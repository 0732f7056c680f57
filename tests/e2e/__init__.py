"""End-to-end tests: the real service on loopback sockets."""
