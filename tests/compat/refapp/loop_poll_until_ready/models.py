"""Written for the corpus: the state of the polling example."""

from pydantic import BaseModel


class PollState(BaseModel):
    api_status: str | None = None
