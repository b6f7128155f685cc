"""Insight sections of reports: one registration per section (usage, deliverability,
customer experience, martech, segments, quarter over quarter …).

A section is an :class:`InsightSpec`: which report kinds carry it, a ``read`` that runs its
queries (methods of :class:`~pulse_reporting.storage.ReportingStorage`, where every SQL
statement of the service lives) and a pure ``build`` (in ``domain/``) that turns what was
read into an :class:`~pulse_reporting.domain.model.InsightSection`. Renderers draw every
insight section the same generic way, so adding a section is one module and one line in
:data:`INSIGHTS`, never a change to Markdown/HTML/PDF/CSV/JSON rendering.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pulse_reporting.domain.cx import cx_section
from pulse_reporting.domain.deliverability import deliverability_section
from pulse_reporting.domain.martech import martech_section
from pulse_reporting.domain.model import InsightSection
from pulse_reporting.domain.periods import Period, ReportKind
from pulse_reporting.domain.quarter import quarter_section
from pulse_reporting.domain.segments import segments_section
from pulse_reporting.domain.usage import usage_section
from pulse_reporting.storage import ReportingStorage

EVERY_KIND: frozenset[ReportKind] = frozenset(ReportKind)
#: Monthly, quarterly and annual reports: sections about slower-moving numbers.
LONG_KINDS: frozenset[ReportKind] = frozenset(
    {ReportKind.MONTHLY, ReportKind.QUARTERLY, ReportKind.ANNUAL}
)


@dataclass(frozen=True)
class InsightSpec:
    key: str
    kinds: frozenset[ReportKind]
    read: Callable[[ReportingStorage, Period], Any]
    """Queries the section needs (I/O), run once per report."""
    build: Callable[[Any, Period, dt.datetime], InsightSection | None]
    """Pure: what ``read`` returned, the report period and the generation time → the
    section (None: the section does not apply to this period)."""


QUARTERLY: frozenset[ReportKind] = frozenset({ReportKind.QUARTERLY})
#: Deliverability moves week to week (a bad list import): weekly, monthly, quarterly.
DELIVERABILITY_KINDS: frozenset[ReportKind] = frozenset(
    {ReportKind.WEEKLY, ReportKind.MONTHLY, ReportKind.QUARTERLY}
)

#: Every insight section, in display order (segments, usage, deliverability, cx, martech,
#: quarter): one line each.
INSIGHTS: tuple[InsightSpec, ...] = (
    InsightSpec("segments", LONG_KINDS, ReportingStorage.segment_inputs, segments_section),
    InsightSpec("usage", LONG_KINDS, ReportingStorage.usage_inputs, usage_section),
    InsightSpec("deliverability", DELIVERABILITY_KINDS, ReportingStorage.deliverability_inputs,
                deliverability_section),
    InsightSpec("cx", LONG_KINDS, ReportingStorage.cx_inputs, cx_section),
    InsightSpec("martech", LONG_KINDS, ReportingStorage.martech_inputs, martech_section),
    InsightSpec("quarter", QUARTERLY, ReportingStorage.quarter_inputs, quarter_section),
)


def insights_for(kind: ReportKind) -> tuple[InsightSpec, ...]:
    return tuple(spec for spec in INSIGHTS if kind in spec.kinds)


def read_insights(
    storage: ReportingStorage, period: Period, kind: ReportKind
) -> dict[str, Any]:
    return {spec.key: spec.read(storage, period) for spec in insights_for(kind)}


def build_insights(
    inputs: dict[str, Any], period: Period, kind: ReportKind, now: dt.datetime
) -> list[InsightSection]:
    sections = [
        spec.build(inputs[spec.key], period, now)
        for spec in insights_for(kind)
        if spec.key in inputs
    ]
    return [s for s in sections if s is not None]
