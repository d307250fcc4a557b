"""A module that fails at import time."""

raise RuntimeError("broken on purpose")
