"""The provider interfaces (ABCs) the engine is written against; stdlib and pydantic only."""
