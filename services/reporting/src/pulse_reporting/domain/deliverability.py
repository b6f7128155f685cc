"""The deliverability insight section (weekly, monthly, quarterly reports): e-mail sent and
delivered, bounce and complaint rates per sending domain against the industry thresholds,
and the weeks a domain broke them.

Pure: no I/O, no clock. Every number is the KPI service's (``emails_sent``,
``bounce_rate``, ``complaint_rate`` … of ``kpi_values``): the period's values in total and
per sending domain, the weeks overlapping the period per domain (where a breach is named),
and the days of the period for the chart. A rate the KPI service does not have (nothing
sent) is n/a, never 0.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pulse_reporting.domain.formatting import fmt_value
from pulse_reporting.domain.model import (
    Fmt,
    InsightChart,
    InsightColumn,
    InsightSection,
    InsightSeries,
    InsightTable,
    KpiValue,
)
from pulse_reporting.domain.periods import Period, period_complete
from pulse_shared.kpi_catalog import (
    BOUNCE_RATE_THRESHOLD,
    COMPLAINT_RATE_THRESHOLD,
    DELIVERABILITY_KPIS,
    DELIVERABILITY_SOURCE,
)
from pulse_shared.periods import iter_days, period_of

KEY = "deliverability"
TITLE = "E-mail deliverability"
DOMAIN = "sending_domain"
#: What the breach statements and the chart lines are about.
WATCHED: tuple[tuple[str, str, float], ...] = (
    ("bounce_rate", "bounce rate", BOUNCE_RATE_THRESHOLD),
    ("complaint_rate", "spam complaint rate", COMPLAINT_RATE_THRESHOLD),
)
#: At most this many sending domains get their own line in the daily charts (the rest are
#: in the total line and the table).
MAX_CHART_DOMAINS = 5


@dataclass(frozen=True)
class DeliverabilityInputs:
    """What the section reads: the deliverability KPIs of the period and the previous one
    (period grain), of the weeks overlapping the period and of its days, each in total
    (``all``) and per sending domain."""

    period: Period
    previous: Period
    kpis: list[KpiValue] = field(default_factory=list)
    weeks: list[KpiValue] = field(default_factory=list)
    days: list[KpiValue] = field(default_factory=list)


def week_labels(period: Period) -> list[str]:
    """ISO weeks overlapping ``period`` (a week report: itself), in order."""
    labels: list[str] = []
    for day in iter_days(period.start, period.end):
        label = period_of(day, "week").label
        if label not in labels:
            labels.append(label)
    return labels


def day_labels(period: Period) -> list[str]:
    return [day.isoformat() for day in iter_days(period.start, period.end)]


def _member(value: KpiValue) -> str | None:
    """'' for the total, the domain for a sending-domain row, None for other dimensions."""
    if value.dimension == "all":
        return ""
    return value.dimension_value if value.dimension == DOMAIN else None


def _table(rows: Sequence[KpiValue]) -> dict[tuple[str, str, str], float | None]:
    """(kpi, period, member) → value."""
    out: dict[tuple[str, str, str], float | None] = {}
    for r in rows:
        member = _member(r)
        if member is not None:
            out[(r.kpi, r.period, member)] = r.value
    return out


def _pct(value: float | None, places: int = 1) -> str:
    return "n/a" if value is None else f"{value * 100:,.{places}f}%"


def _threshold_text(kpi: str) -> str:
    threshold = dict((k, t) for k, _, t in WATCHED)[kpi]
    return _pct(threshold, 1)


def breaches(inputs: DeliverabilityInputs) -> list[tuple[str, str, str, float, float | None]]:
    """(week, domain, kpi, rate, e-mails sent) of every week × sending domain above a
    threshold, in week then domain order."""
    table = _table(inputs.weeks)
    domains = sorted({m for (_, _, m) in table if m})
    out: list[tuple[str, str, str, float, float | None]] = []
    for week in week_labels(inputs.period):
        for domain in domains:
            for kpi, _, threshold in WATCHED:
                value = table.get((kpi, week, domain))
                if value is not None and value > threshold:
                    out.append((week, domain, kpi, value,
                                table.get(("emails_sent", week, domain))))
    return out


def _statements(inputs: DeliverabilityInputs, table: Mapping[tuple[str, str, str], float | None],
                domains: Sequence[str]) -> list[str]:
    cur, prev = inputs.period.label, inputs.previous.label

    def v(kpi: str, label: str, member: str = "") -> float | None:
        return table.get((kpi, label, member))

    out = [
        f"{cur}: {fmt_value(v('emails_sent', cur), Fmt.COUNT)} e-mails sent from "
        f"{len(domains)} sending domain{'s' if len(domains) != 1 else ''}, delivery rate "
        f"{_pct(v('delivery_rate', cur))}, bounce rate {_pct(v('bounce_rate', cur), 2)}, spam "
        f"complaint rate {_pct(v('complaint_rate', cur), 3)}, open rate "
        f"{_pct(v('open_rate', cur))}, click rate {_pct(v('click_rate', cur))}; {prev}: "
        f"{fmt_value(v('emails_sent', prev), Fmt.COUNT)} sent, bounce rate "
        f"{_pct(v('bounce_rate', prev), 2)}, complaint rate {_pct(v('complaint_rate', prev), 3)}."
    ]
    found = breaches(inputs)
    labels = dict((k, name) for k, name, _ in WATCHED)
    for week, domain, kpi, value, sent in found:
        out.append(
            f"Breach: {domain} had a {labels[kpi]} of {_pct(value, 2 if kpi == 'bounce_rate' else 3)}"
            f" in {week}, above the {_threshold_text(kpi)} threshold "
            f"({fmt_value(sent, Fmt.COUNT)} e-mails sent that week)."
        )
    if not found:
        worst = {
            kpi: max((table.get((kpi, cur, d)) or 0.0 for d in domains), default=0.0)
            for kpi, _, _ in WATCHED
        }
        weeks = week_labels(inputs.period)
        span = f"{cur}" if weeks == [cur] else f"{cur} ({weeks[0]}–{weeks[-1]})"
        out.append(
            f"No sending domain broke the thresholds (bounce rate {_threshold_text('bounce_rate')}, "
            f"complaint rate {_threshold_text('complaint_rate')}) in any week of {span}; "
            f"highest domain rates over {cur}: bounce "
            f"{_pct(worst['bounce_rate'], 2)}, complaints {_pct(worst['complaint_rate'], 3)}."
        )
    return out


def deliverability_section(
    inputs: DeliverabilityInputs, period: Period, now: dt.datetime
) -> InsightSection | None:
    """The section, or why it is unavailable (no e-mail sent in the period or the previous
    one)."""
    cur, prev = inputs.period.label, inputs.previous.label
    table = _table(inputs.kpis)
    kpis = list(DELIVERABILITY_KPIS)
    dims = ["all", DOMAIN]
    notes = [
        "Rates over e-mails sent (delivery, bounce = hard + soft, complaint, unsubscribe); "
        "open and click rates over e-mails delivered; n/a when nothing was sent. Source: "
        f"{DELIVERABILITY_SOURCE}.",
        f"Thresholds (industry guidance, as in the shipped alert rules): bounce rate "
        f"{_threshold_text('bounce_rate')}, spam complaint rate "
        f"{_threshold_text('complaint_rate')} of sent; breaches are named per ISO week and "
        "sending domain.",
    ]
    if not period_complete(period, now.date()):
        notes.append(f"{cur} is still running: e-mails and rates to date.")
    if not table.get(("emails_sent", cur, "")) and not table.get(("emails_sent", prev, "")):
        return InsightSection(
            key=KEY, title=TITLE, kpis=kpis, dimensions=dims, notes=notes[:1],
            unavailable=(f"No e-mail delivery data for {cur} or {prev} (ingest kind "
                         "deliverability, or a SendGrid / Mailchimp export import)."),
        )
    domains = sorted({m for (k, p, m) in table if m and p == cur and k == "emails_sent"})
    rate_columns = [("delivery_rate", "Delivery"), ("bounce_rate", "Bounce"),
                    ("hard_bounce_rate", "Hard bounce"), ("complaint_rate", "Complaints"),
                    ("unsubscribe_rate", "Unsubscribes"), ("open_rate", "Open"),
                    ("click_rate", "Click")]

    def row(member: str, name: str) -> list[str | float | int | None]:
        cells: list[str | float | int | None] = [
            name, table.get(("emails_sent", cur, member)),
            table.get(("emails_delivered", cur, member))]
        for kpi, _ in rate_columns:
            value = table.get((kpi, cur, member))
            # Complaint rates live around 0.01–0.3 %: shown with 3 decimals (text).
            cells.append(_pct(value, 3) if kpi == "complaint_rate" else value)
        return cells

    by_domain = InsightTable(
        name="deliverability_by_domain", title=f"Rates per sending domain, {cur}",
        columns=[
            InsightColumn(key="sending_domain", title="Sending domain"),
            InsightColumn(key="emails_sent", title="Sent", fmt=Fmt.COUNT),
            InsightColumn(key="emails_delivered", title="Delivered", fmt=Fmt.COUNT),
            *(InsightColumn(key=kpi, title=title,
                            fmt=None if kpi == "complaint_rate" else Fmt.PERCENT)
              for kpi, title in rate_columns),
        ],
        rows=[*(row(d, d) for d in domains), row("", "all domains")],
    )
    daily = _table(inputs.days)
    days = day_labels(inputs.period)
    charted = domains[:MAX_CHART_DOMAINS]
    charts = []
    for kpi, label, threshold in WATCHED:
        series = [InsightSeries(name="all domains",
                                values=[daily.get((kpi, d, "")) for d in days])]
        series += [InsightSeries(name=domain, values=[daily.get((kpi, d, domain)) for d in days])
                   for domain in charted]
        charts.append(InsightChart(
            name=f"daily_{kpi}", title=f"Daily {label}, {cur}", kind="line", labels=days,
            series=series, fmt=Fmt.PERCENT, threshold=threshold,
            threshold_label="industry threshold",
        ))
    return InsightSection(
        key=KEY, title=TITLE, statements=_statements(inputs, table, domains), charts=charts,
        tables=[by_domain], notes=notes, kpis=kpis, dimensions=dims,
    )
