"""Sync agent: pushes finished workflows and audit logs to the cloud, deletes only what was acked."""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _dist_version


def version() -> str:
    """The installed ruvon-edge version (the agent ships in that distribution)."""
    try:
        return _dist_version("ruvon-edge")
    except PackageNotFoundError:
        return "unknown"
