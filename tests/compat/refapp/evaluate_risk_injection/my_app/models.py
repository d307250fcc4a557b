"""Written for the corpus: the state of the injection example."""

from pydantic import BaseModel


class RiskState(BaseModel):
    amount: float
    risk_level: str = "low"
    reviewed_by: str | None = None
