"""Written for the corpus: three checks, each adding its own part of ``checks`` (DEEP merge keeps all three)."""


def check_inventory(state, context, **_):
    return {"checks": {"inventory": state["sku"] != "OUT-1"}}


def validate_address(state, context, **_):
    return {"checks": {"address": bool(state.address.strip())}}


def calculate_shipping(state, context, **_):
    return {"checks": {"shipping_cost": 4.5}}
