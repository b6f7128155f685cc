"""``pulse alerts …``: rules check, list, silences, backtest.

Read commands print rows through :mod:`pulse_shared.cli_output` (``--format
table|csv|json``). Service code is imported inside the commands (start-up time).
"""

from __future__ import annotations

import datetime as dt
import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from pulse_shared.cli_output import FORMAT_HELP, OutputFormat, emit

if TYPE_CHECKING:
    from pulse_alerts.domain.rules import RulesError
    from pulse_shared.store import Store

app = typer.Typer(no_args_is_help=True, help="Alert rules, state and silences.",
                  rich_markup_mode=None, pretty_exceptions_enable=False)
rules_app = typer.Typer(no_args_is_help=True, help="Alert rules files.", rich_markup_mode=None)
silence_app = typer.Typer(no_args_is_help=True, help="Mute notifications for a while.",
                          rich_markup_mode=None)
FormatOption = Annotated[OutputFormat, typer.Option("--format", help=FORMAT_HELP)]
app.add_typer(rules_app, name="rules")
app.add_typer(silence_app, name="silence")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _store() -> Store:
    from pulse_shared.schema.migrations import migrate
    from pulse_shared.store import open_store

    store = open_store()
    if store.backend == "embedded":
        migrate(store)
    return store


def _rules_failed(exc: RulesError) -> NoReturn:
    """One line per problem (each names file, rule and field), exit 2 for an unknown
    choice, else 1."""
    for problem in exc.problems:
        typer.echo(f"error: {problem}", err=True)
    raise typer.Exit(code=exc.code) from exc


@rules_app.command("check")
def rules_check(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
) -> None:
    """Validate a rules FILE; errors name the file, the rule and the field.

    Unknown KPIs, grains and dimensions (a rule that could never match) exit 2 and list
    the valid choices; other invalid fields exit 1.
    """
    from pulse_alerts.domain.rules import RulesError, load_rules
    from pulse_alerts.kpi_catalog import installed_catalog

    try:
        ruleset = load_rules(file.read_text(), str(file), installed_catalog())
    except RulesError as exc:
        _rules_failed(exc)
    by_type: dict[str, int] = {}
    for rule in ruleset.rules:
        kind = str(getattr(rule, "type", "?"))
        by_type[kind] = by_type.get(kind, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(by_type.items()))
    typer.echo(f"{file}: {len(ruleset.rules)} rule(s) OK ({summary})")


class StateFilter(StrEnum):
    """Alert states ``alerts list`` can filter on (a Choice: unknown ones exit 2)."""

    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"
    INACTIVE = "inactive"
    ALL = "all"


ALERT_COLUMNS = (
    "state", "severity", "rule", "scope", "period", "value", "threshold", "since", "summary",
)


@app.command("list")
def list_alerts(
    state: Annotated[
        StateFilter | None,
        typer.Option(help="pending, firing, resolved, inactive or all (default: all but "
                          "inactive)."),
    ] = None,
    fmt: FormatOption = OutputFormat.TABLE,
    as_json_lines: Annotated[bool, typer.Option("--json", hidden=True)] = False,
) -> None:
    """List alerts and their state (from ClickHouse).

    PERIOD is the data's period whose figures the alert shows (the one that fired).
    """
    from pulse_alerts import storage

    if state == StateFilter.ALL:
        wanted = None
    elif state:
        wanted = [state.value]
    else:
        wanted = ["pending", "firing", "resolved"]
    states = storage.load_states(_store(), wanted)
    if not states:
        # Nothing in that state is a valid answer: say so on stderr, exit 0.
        typer.echo(f"no {state.value if state and state != StateFilter.ALL else ''} alerts"
                   .replace("  ", " "), err=True)
        if fmt != OutputFormat.TABLE and not as_json_lines:
            emit([], ALERT_COLUMNS, fmt)
        return
    rows: list[dict[str, Any]] = [
        {
            "fingerprint": s.fingerprint, "rule": s.rule, "state": s.status.value,
            "severity": s.severity.value, "labels": s.labels,
            "scope": s.labels.get("dimension_value") or s.labels.get("source", ""),
            "value": s.value, "threshold": s.threshold,
            "period": s.annotations.get("period", ""),
            "data_time": s.annotations.get("data_time", ""),
            "since": s.fired_at or s.active_since or s.updated_at or _now(),
            "summary": s.annotations.get("summary", ""),
        }
        for s in states
    ]
    if as_json_lines:  # the former --json: one JSON object per line
        for row in rows:
            typer.echo(json.dumps({k: v for k, v in row.items() if k != "scope"},
                                  default=_json_default))
        return
    if fmt != OutputFormat.TABLE:
        emit(rows, ALERT_COLUMNS, fmt)
        return
    typer.echo(f"{'STATE':<9} {'SEVERITY':<8} {'RULE':<32} {'SCOPE':<20} {'PERIOD':<10} "
               f"{'VALUE':<12} SINCE  SUMMARY")
    for row in rows:
        typer.echo(
            f"{row['state']:<9} {row['severity']:<8} {row['rule']:<32} {row['scope']:<20} "
            f"{row['period']:<10} {row['value']!s:<12} {row['since'].isoformat()}  "
            f"{row['summary']}"
        )


def _json_default(value: Any) -> Any:
    from pulse_shared.cli_output import json_value

    return json_value(value)


@silence_app.command("add")
def silence_add(
    matchers: Annotated[list[str], typer.Argument(help="label=value (wildcards ok), e.g. "
                                                      "alertname=channel_* channel=email")],
    duration: Annotated[str, typer.Option("--for", metavar="DURATION", help="How long, e.g. 2h, 1d.")] = "2h",
    comment: Annotated[str, typer.Option(metavar="TEXT", help="Why.")] = "",
    created_by: Annotated[str, typer.Option("--by", metavar="NAME", help="Who.")] = "",
) -> None:
    """Silence alerts matching every MATCHER for a duration."""
    from pulse_alerts.silences import create_silence, parse_matchers

    try:
        parsed = parse_matchers(matchers)
        silence = create_silence(_store(), parsed, duration, _now(), created_by, comment)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    typer.echo(f"silence {silence.silence_id} until {silence.ends_at.isoformat()}")


SILENCE_COLUMNS = ("silence_id", "state", "ends_at", "matchers", "created_by", "comment")


@silence_app.command("list")
def silence_list(
    include_expired: Annotated[bool, typer.Option(
        "--all", help="Include expired silences.")] = False,
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """List active silences (--all includes expired ones)."""
    from pulse_alerts import storage

    now = _now()
    silences = storage.load_silences(_store(), None if include_expired else now)
    rows: list[dict[str, Any]] = [
        {
            "silence_id": s.silence_id, "state": "active" if s.active(now) else "expired",
            "ends_at": s.ends_at, "matchers": dict(sorted(s.matchers.items())),
            "created_by": s.created_by, "comment": s.comment,
        }
        for s in silences
    ]
    if fmt != OutputFormat.TABLE:
        emit(rows, SILENCE_COLUMNS, fmt)
        return
    if not rows:
        typer.echo("no silences")
    for row in rows:
        matchers = " ".join(f"{k}={v}" for k, v in row["matchers"].items())
        typer.echo(f"{row['silence_id']}  {row['state']:<7} until {row['ends_at'].isoformat()}"
                   f"  {matchers}  {row['comment']}")


@silence_app.command("expire")
def silence_expire(silence_id: str) -> None:
    """End a silence now."""
    from pulse_alerts.silences import expire_silence

    if expire_silence(_store(), silence_id, _now()) is None:
        typer.echo(f"no silence {silence_id}", err=True)
        raise typer.Exit(code=1)
    typer.echo(f"silence {silence_id} expired")


def _day(text: str, option: str) -> dt.date:
    """Parse a --from/--to day; a bad value is a usage error (exit 2), not a crash."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r} is not a YYYY-MM-DD day", param_hint=option) from exc


@app.command("test")
def backtest(
    rule_name: Annotated[str, typer.Argument(metavar="RULE", help="Rule name.")],
    date_from: Annotated[str, typer.Option("--from", metavar="DAY", help="First day, YYYY-MM-DD.")],
    date_to: Annotated[str, typer.Option("--to", metavar="DAY", help="Last day, YYYY-MM-DD.")],
    rules_file: Annotated[
        Path | None, typer.Option("--rules", help="Rules file (default: configured).")
    ] = None,
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """Backtest RULE on kpi_values history: when would it have fired and resolved?

    One row per notification it would have sent (firing, repeat, resolved), then a
    summary line (on stderr with csv and json).
    """
    from pulse_alerts.app import load_ruleset
    from pulse_alerts.backtest import run_backtest
    from pulse_alerts.domain.rules import RulesError
    from pulse_alerts.settings import AlertsSettings

    settings = AlertsSettings()
    if rules_file is not None:
        settings = settings.model_copy(update={"rules_file": rules_file})
    try:
        ruleset = load_ruleset(settings)
    except RulesError as exc:
        _rules_failed(exc)
    rule = ruleset.by_name(rule_name)
    if rule is None:
        names = ", ".join(r.name for r in ruleset.rules)
        typer.echo(f"no rule {rule_name!r} in {ruleset.source} (rules: {names})", err=True)
        raise typer.Exit(code=1)
    start, end = _day(date_from, "--from"), _day(date_to, "--to")
    if end < start:
        typer.echo("--to is before --from", err=True)
        raise typer.Exit(code=2)
    try:
        result = run_backtest(_store(), rule, start, end)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    if result.evaluations == 0:
        # Nothing evaluated is no answer, not "never fired": say why and fail.
        scope = (f"kpi={rule.kpi} grain={(rule.grain.value if rule.grain else '*')} "
                 f"dimension={rule.dimension} dimension_value={rule.dimension_value}")
        if not result.snapshots:
            reason = f"no KPI values for {scope} between {start} and {end}"
        else:
            reason = (f"{result.snapshots} KPI value(s) for {scope} between {start} and "
                      f"{end}, none evaluable (undefined values or less history than the "
                      f"rule needs)")
        typer.echo(f"error: {rule.name}: 0 evaluations: {reason}", err=True)
        raise typer.Exit(code=1)
    fired = repeats = 0
    rows: list[dict[str, Any]] = []
    for alert in result.alerts:
        kind = alert.state.value
        if kind == "firing" and alert.sent_at != alert.starts_at:
            kind, repeats = "repeat", repeats + 1
        elif kind == "firing":
            fired += 1
        rows.append({
            "sent_at": alert.sent_at, "kind": kind,
            "scope": alert.labels.get("dimension_value", ""),
            "value": alert.value, "threshold": alert.threshold,
            "summary": alert.annotations.get("summary", ""),
        })
    resolved = sum(1 for a in result.alerts if a.state.value == "resolved")
    summary = (
        f"{rule.name}: {result.evaluations} evaluation(s), {result.breaching} breaching, "
        f"fired {fired}x, resolved {resolved}x, {repeats} repeat(s) between {start} and {end}"
    )
    if fmt != OutputFormat.TABLE:
        emit(rows, BACKTEST_COLUMNS, fmt)
        typer.echo(summary, err=True)
        return
    for row in rows:
        typer.echo(
            f"{row['sent_at'].isoformat()}  {row['kind']:<8} {row['scope']:<20} "
            f"value={row['value']} threshold={row['threshold']}  {row['summary']}"
        )
    typer.echo(summary)


BACKTEST_COLUMNS = ("sent_at", "kind", "scope", "value", "threshold", "summary")
