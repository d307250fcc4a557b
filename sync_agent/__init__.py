"""Sync agent: pushes finished workflows and audit logs to the cloud, deletes only what was acked."""
