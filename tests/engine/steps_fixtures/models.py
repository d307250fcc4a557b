"""Typed state models for the step-type tests (template-rendered strings coerce into them)."""

from __future__ import annotations

from pydantic import BaseModel


class ChildState(BaseModel):
    value: int = 0
    doubled: int | None = None
    child_parent: str | None = None
    approved: bool | None = None
    marker_dir: str | None = None


class ApproveInput(BaseModel):
    approved: bool
