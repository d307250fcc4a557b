"""Step functions and models used by the core engine tests."""
