"""A device application written for ruvon-sdk 0.1.5; the import tests run it under both engines.

Stdlib and pydantic only, so the reference SDK's venv and ours both import it.
"""
