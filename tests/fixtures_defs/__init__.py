"""Importable step functions and models used by the definition tests (allowed module 'fixtures_defs')."""
