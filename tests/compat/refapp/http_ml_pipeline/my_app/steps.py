"""Written for the corpus: the how-to shows only the YAML of this step."""

from ruvon_edge.models import StepContext
from refapp.http_ml_pipeline.my_app.state_models import MLState


def validate(state: MLState, context: StepContext) -> dict:
    if not state.raw_data:
        raise ValueError("no data to process")
    return {"validated_data": [x for x in state.raw_data if x >= 0]}
