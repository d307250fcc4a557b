"""State and input models of the test workflows."""

from __future__ import annotations

from pydantic import BaseModel, Field


class OrderState(BaseModel):
    order_id: str
    amount: float = 0
    country: str = "DE"
    route: str | None = None
    reserved: bool = False
    released: list[str] = Field(default_factory=list)
    approved: bool | None = None
    reviewer: str | None = None
    tags: list[str] = Field(default_factory=list)
    attempts: int = 0
    trail: list[str] = Field(default_factory=list)
    profile: dict = Field(default_factory=dict)


class ReviewInput(BaseModel):
    approved: bool
    reviewer: str
