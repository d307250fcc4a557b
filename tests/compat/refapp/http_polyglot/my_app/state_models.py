"""Written for the corpus: the how-to shows the YAML but not this model."""

from pydantic import BaseModel


class PipelineState(BaseModel):
    user_id: str
    input_data: str = ""
    service_response: dict | None = None
