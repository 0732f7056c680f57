"""Storage: the store contract and its Maildir++ implementation."""
