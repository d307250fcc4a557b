"""Backends for each provider role, one module per backend, each imported only when asked for."""
