"""State that reads both as an object and as a mapping, as reference step code expects.

The reference hands a workflow without a state model (or with
``builtins.dict``), and every PARALLEL/ASYNC task, a plain dict; our steps get
a model. ``MappingAccess`` adds mapping access to a model (ASYNC tasks get
their typed state so); ``DictState`` is the permissive model of a workflow without one:
``state.x`` and ``state["x"]``, ``.get``, ``in`` and item assignment all
work (no ``keys``/``items`` methods: they would hide fields of those names). ``StateDict`` is the dict tasks receive: ``state["x"]`` and ``state.x``
(nested dicts too).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class MappingAccess:
    """Mapping reads and writes on a pydantic model's fields (mixed into models, never alone)."""

    def _fields(self) -> dict[str, Any]:
        model: Any = self
        return {
            **{k: getattr(model, k) for k in type(model).model_fields},
            **(model.__pydantic_extra__ or {}),
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


class DictState(MappingAccess, BaseModel):
    """A model with any fields, also usable as a mapping of them."""

    model_config = ConfigDict(extra="allow")


_MAPPING_MODELS: dict[type[BaseModel], type[BaseModel]] = {}


def mapping_model(model: type[BaseModel]) -> type[BaseModel]:
    """``model`` with mapping access mixed in (made once per model; itself if it has it already)."""
    if issubclass(model, MappingAccess):
        return model
    mapped = _MAPPING_MODELS.get(model)
    if mapped is None:
        mapped = _MAPPING_MODELS[model] = type(model.__name__, (MappingAccess, model), {})
    return mapped


def with_mapping_access(state: BaseModel) -> BaseModel:
    """A copy of ``state`` whose class also reads as a mapping (ASYNC tasks get this)."""
    if isinstance(state, MappingAccess):
        return state.model_copy(deep=True)
    return mapping_model(type(state)).model_validate(state.model_dump())


class StateDict(dict[str, Any]):
    """A dict whose keys also read as attributes (``state.order.id``).

    A key wins over a dict method of the same name: ``state.items`` is the
    state's ``items`` list when there is one (``state["items"]`` always is).
    """

    def __getattribute__(self, name: str) -> Any:
        if not name.startswith("__") and dict.__contains__(self, name):
            value = dict.__getitem__(self, name)
            return StateDict(value) if type(value) is dict else value
        return super().__getattribute__(name)

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value
