"""Step functions for registry tests; `system` is re-exported on purpose to test the allow-list."""

from os import system  # noqa: F401  (re-export: the registry must refuse it)

NOT_CALLABLE = 42


def reserve(state, context, **user_input):
    """Reserve stock."""
    return {"reserved": True}


def release(state, context, **user_input):
    """Undo a reservation."""
    return {"reserved": False}


def score(state, context, **user_input):
    """Score an order."""
    return {"score": 1}


async def apply_review(state, context, **user_input):
    """Apply a human review."""
    return {"approved": user_input.get("approved", False)}


class Handlers:
    """Namespace class holding a static step."""

    @staticmethod
    def ship(state, context, **user_input):
        """Ship."""
        return {"shipped": True}
