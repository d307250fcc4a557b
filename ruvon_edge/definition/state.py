"""State that reads both as an object and as a mapping, as reference step code expects.

The reference hands a workflow without a state model (or with
``builtins.dict``), and every PARALLEL/ASYNC task, a plain dict; our steps get
a model. ``DictState`` is the permissive model of a workflow without one:
``state.x`` and ``state["x"]``, ``.get``, ``in`` and item assignment all
work (no ``keys``/``items`` methods: they would hide fields of those names). ``StateDict`` is the dict tasks receive: ``state["x"]`` and ``state.x``
(nested dicts too).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class DictState(BaseModel):
    """A model with any fields, also usable as a mapping of them."""

    model_config = ConfigDict(extra="allow")

    def _fields(self) -> dict[str, Any]:
        return {
            **{k: getattr(self, k) for k in type(self).model_fields},
            **(self.__pydantic_extra__ or {}),
        }

    def __getitem__(self, key: str) -> Any:
        try:
            return self._fields()[key]
        except KeyError:
            raise KeyError(key) from None

    def __setitem__(self, key: str, value: Any) -> None:
        setattr(self, key, value)

    def __contains__(self, key: object) -> bool:
        return key in self._fields()

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default``."""
        return self._fields().get(key, default)


class StateDict(dict[str, Any]):
    """A dict whose keys also read as attributes (``state.order.id``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            value = self[name]
        except KeyError:
            raise AttributeError(name) from None
        return StateDict(value) if type(value) is dict else value

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value
