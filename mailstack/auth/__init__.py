"""Users, cred checkers and the protocol-neutral realm."""
