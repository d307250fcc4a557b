"""``SyncExecutionProvider``: one step at a time; sync functions in a thread so the loop stays free."""

from __future__ import annotations

from ruvon_edge.implementations.execution._local import LocalExecutionProvider


class SyncExecutionProvider(LocalExecutionProvider):
    """The default: PARALLEL tasks run one after another; nothing to configure."""
