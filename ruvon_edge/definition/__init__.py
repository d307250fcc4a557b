"""Workflow definitions: YAML or Python in, frozen validated models out; the registry."""
