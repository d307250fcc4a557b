"""The reference page's task function (imports and the push helper are ours)."""

from ruvon_edge.models import StepContext

PUSHED: list[tuple[str, dict]] = []


def push_config_update(device_id, config):
    PUSHED.append((device_id, dict(config)))


def push_to_device(state: dict, context: StepContext, device_id: str = "", **_) -> dict:
    """Called once per item — device_id is the current list element."""
    push_config_update(device_id, state["config_data"])
    return {"pushed": device_id}
