"""Written for the corpus: the how-to shows the YAML but not this model."""

from pydantic import BaseModel


class MLState(BaseModel):
    user_id: str
    raw_data: list[float] = []
    validated_data: list[float] = []
    processing_config: str = "default"
    model_id: str = "m-1"
    processed_data: dict | None = None
    predictions: dict | None = None
    notification_status: dict | None = None
