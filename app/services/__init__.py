"""The business layer: plain arguments in, plain objects out; callers own the transaction."""
