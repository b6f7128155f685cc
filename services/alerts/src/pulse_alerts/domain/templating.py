"""Annotation and label templates: ``"{kpi} is {value:.2f} (limit {threshold})"``.

Python format syntax over a fixed set of names, checked when rules load so a typo is a
load error naming the rule and field, never a broken notification at 3 a.m.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

TEMPLATE_FIELDS: frozenset[str] = frozenset(
    {
        "rule",
        "severity",
        "kpi",
        "grain",
        "period",
        "dimension",
        "dimension_value",
        "value",
        "threshold",
        "baseline",
        "change_pct",
        "zscore",
        "state",
        "source",
        "age_minutes",
        "days",
        "horizon",
        "bound",
        "labels",
    }
)

_FORMATTER = string.Formatter()


def template_fields(template: str) -> set[str]:
    """Names a template refers to (``{value:.1f}`` → ``value``); raises on bad syntax."""
    names: set[str] = set()
    for _, field, _, _ in _FORMATTER.parse(template):
        if field is None:
            continue
        if field == "" or field.isdigit():
            raise ValueError("positional fields are not allowed; use a name such as {value}")
        root = field.split(".", 1)[0].split("[", 1)[0]
        names.add(root)
    return names


def check_template(template: str) -> str:
    unknown = template_fields(template) - TEMPLATE_FIELDS
    if unknown:
        raise ValueError(
            f"unknown template field(s) {sorted(unknown)}; "
            f"known: {', '.join(sorted(TEMPLATE_FIELDS))}"
        )
    return template


def render(template: str, context: Mapping[str, Any]) -> str:
    """Render with ``context``; a missing or ``None`` value renders as ``n/a``."""
    out: list[str] = []
    for literal, field, spec, conversion in _FORMATTER.parse(template):
        out.append(literal)
        if field is None:
            continue
        try:
            value = _FORMATTER.get_field(field, (), context)[0]
        except (KeyError, IndexError, AttributeError):
            value = None
        if value is None:
            out.append("n/a")
            continue
        if conversion:
            value = _FORMATTER.convert_field(value, conversion)
        try:
            out.append(format(value, spec or ""))
        except (ValueError, TypeError):
            out.append(str(value))
    return "".join(out)
