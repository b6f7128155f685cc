"""Column lists of inserts, derived from the models whose fields the rows store.

A table that stores a model's fields lists its insert columns as
``model_columns(Model, exclude=…, extra=…)``: adding a field to the model is then one edit
plus its migration, never a third hand-written tuple to keep in step.
``tests/test_storage_columns.py`` checks every insert column list against the migrated DDL.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel


def field_names(model: type[Any]) -> tuple[str, ...]:
    """The fields of a pydantic model or a dataclass, in declaration order."""
    if isinstance(model, type) and issubclass(model, BaseModel):
        return tuple(model.model_fields)
    if dataclasses.is_dataclass(model):
        return tuple(f.name for f in dataclasses.fields(model))
    raise TypeError(f"{model!r} is neither a pydantic model nor a dataclass")


def model_columns(
    model: type[Any], *, exclude: Iterable[str] = (), extra: Iterable[str] = ()
) -> tuple[str, ...]:
    """``model``'s fields in declaration order without ``exclude``, then ``extra``.

    ``exclude`` must name fields of the model and ``extra`` must not (a renamed field then
    fails at import instead of silently changing the insert).
    """
    fields = field_names(model)
    excluded = tuple(exclude)
    added = tuple(extra)
    if unknown := [name for name in excluded if name not in fields]:
        raise ValueError(f"{model.__name__} has no fields {unknown} to exclude")
    if clashing := [name for name in added if name in fields]:
        raise ValueError(f"{model.__name__} already has the extra columns {clashing}")
    if len(set(added)) != len(added):
        raise ValueError(f"duplicate extra columns {added}")
    return tuple(name for name in fields if name not in excluded) + added
