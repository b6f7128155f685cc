"""The component on the embedded store: grouping, outbox after a crash, timer, silences
API, CLI list/silence/backtest, metrics."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from prometheus_client import REGISTRY
from typer.testing import CliRunner

from pulse_alerts import cli, storage
from pulse_alerts.api import silences_asgi
from pulse_alerts.domain.rules import load_rules
from pulse_alerts.main import AlertsComponent, build
from pulse_alerts.settings import AlertsSettings
from pulse_shared.events import Alert, Event, Grain, KpiSnapshot
from pulse_shared.store import Store
from pulse_shared.topics import ALERTS, CAMPAIGN_ACTIONS, Topic

DAY = dt.date(2026, 11, 20)
T0 = dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.UTC)


class FakeBus:
    """Records what would be published; can fail the next N publishes (broker down)."""

    def __init__(self, fail: int = 0) -> None:
        self.published: dict[str, list[Event]] = {}
        self.fail = fail

    async def publish(self, topic: Topic, events: Sequence[Event]) -> None:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("broker unavailable")
        self.published.setdefault(topic.name, []).extend(events)

    async def publish_dead_letters(self, topic: Topic, letters: Sequence[Any]) -> None:
        return None

    def alerts(self) -> list[Alert]:
        return [e for e in self.published.get(ALERTS.name, []) if isinstance(e, Alert)]


class RecordingNotifier:
    name = "recording"

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[Alert]]] = []

    async def send(self, group: str, alerts: Sequence[Alert]) -> bool:
        self.calls.append((group, list(alerts)))
        return True

    async def close(self) -> None:
        return None


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


def snap(kpi: str, value: float, channel: str, minute: int = 0) -> KpiSnapshot:
    return KpiSnapshot(
        kpi=kpi, grain=Grain.DAY, period=DAY.isoformat(), period_start=DAY,
        dimension="channel", dimension_value=channel, value=value, unit="USD",
        computed_at=T0 + dt.timedelta(minutes=minute),
    )


def make(store: Store, rules_yaml: str, bus: FakeBus, clock: Clock,
         notifier: RecordingNotifier | None = None) -> AlertsComponent:
    return build(
        store, bus, AlertsSettings(tick_interval_s=3600), rules=load_rules(rules_yaml),  # type: ignore[arg-type]
        notifiers=[notifier] if notifier else [], clock=clock,
    )


def test_snapshots_are_evaluated_as_they_come_unless_a_top_up_is_set(
    embedded_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other services top polled batches up for their inserts
    (PULSE_CONSUMER_FLUSH_AFTER_S); the alerts service writes no rows in bulk, so by
    default it does not wait, and its own setting decides."""
    monkeypatch.setenv("PULSE_CONSUMER_FLUSH_AFTER_S", "0.4")
    rules = load_rules("rules: []\n")
    default = build(embedded_store, FakeBus(), AlertsSettings(), rules=rules)  # type: ignore[arg-type]
    assert default.consumer.flush_after_s == 0
    monkeypatch.setenv("PULSE_ALERTS_FLUSH_AFTER_S", "0.25")
    tuned = build(embedded_store, FakeBus(), AlertsSettings(), rules=rules)  # type: ignore[arg-type]
    assert tuned.consumer.flush_after_s == 0.25


def unique() -> str:
    return f"k{uuid.uuid4().hex[:10]}"


async def test_simultaneous_alerts_are_grouped_and_actions_published(
    embedded_store: Store,
) -> None:
    kpi = unique()
    rules = (
        f"rules:\n  - {{name: {kpi}_hi, type: threshold, kpi: {kpi}, op: above, threshold: 10,"
        " group_by: [alertname], action: {action: shift_budget}}\n"
    )
    bus, clock, notifier = FakeBus(), Clock(), RecordingNotifier()
    component = make(embedded_store, rules, bus, clock, notifier)
    await component.consume([snap(kpi, 20, "paid_search"), snap(kpi, 30, "email"),
                             snap(kpi, 1, "display")])
    assert len(bus.alerts()) == 2
    await component.drain()
    assert len(notifier.calls) == 1
    group, members = notifier.calls[0]
    assert group == f"alertname={kpi}_hi"
    assert sorted(a.labels["channel"] for a in members) == ["email", "paid_search"]
    actions = bus.published[CAMPAIGN_ACTIONS.name]
    assert sorted(a.channel.value for a in actions) == ["email", "paid_search"]  # type: ignore[attr-defined]
    firing = REGISTRY.get_sample_value(
        "pulse_alerts_firing", {"rule": f"{kpi}_hi", "severity": "warning"}
    )
    assert firing == 2.0


async def test_crash_before_publish_is_recovered_from_the_outbox(embedded_store: Store) -> None:
    kpi = unique()
    rules = f"rules:\n  - {{name: {kpi}_hi, type: threshold, kpi: {kpi}, op: above, threshold: 10}}\n"
    clock = Clock()
    broken = FakeBus(fail=1)
    first = make(embedded_store, rules, broken, clock)
    with pytest.raises(ConnectionError):
        await first.consume([snap(kpi, 20, "paid_search")])
    assert broken.alerts() == []
    (pending,) = [r for r in storage.undelivered_events(embedded_store) if r["rule"] == f"{kpi}_hi"]

    # "restart": a new component on the same store re-sends the stored notification once
    bus = FakeBus()
    restarted = make(embedded_store, rules, bus, clock)
    await restarted.start()
    await restarted.stop()
    assert [a.alert_id for a in bus.alerts()] == [pending["alert_id"]]
    # the redelivered snapshot batch (offsets were not committed) sends nothing new
    await restarted.consume([snap(kpi, 20, "paid_search")])
    assert len(bus.alerts()) == 1
    assert not [r for r in storage.undelivered_events(embedded_store) if r["rule"] == f"{kpi}_hi"]


async def test_restart_while_firing_sends_no_duplicate(embedded_store: Store) -> None:
    kpi = unique()
    rules = f"rules:\n  - {{name: {kpi}_hi, type: threshold, kpi: {kpi}, op: above, threshold: 10}}\n"
    clock, bus = Clock(), FakeBus()
    await make(embedded_store, rules, bus, clock).consume([snap(kpi, 20, "a")])
    again = make(embedded_store, rules, bus, clock)
    await again.start()
    clock.now += dt.timedelta(minutes=5)
    await again.consume([snap(kpi, 25, "a", minute=5)])
    await again.tick()
    await again.stop()
    assert [a.state.value for a in bus.alerts()] == ["firing"]
    clock.now += dt.timedelta(minutes=5)
    await again.consume([snap(kpi, 1, "a", minute=10)])
    assert [a.state.value for a in bus.alerts()] == ["firing", "resolved"]


async def test_timer_fires_for_duration_and_respects_api_silences(embedded_store: Store) -> None:
    kpi = unique()
    rules = (
        f"rules:\n  - {{name: {kpi}_hi, type: threshold, kpi: {kpi}, op: above, threshold: 10,"
        " for: 10m}\n"
    )
    clock, bus = Clock(), FakeBus()
    component = make(embedded_store, rules, bus, clock)
    app = silences_asgi(component)
    created = await call_asgi(
        app, "POST", "/api/silences",
        {"matchers": {"alertname": f"{kpi}_hi"}, "duration": "30m", "comment": "deploy"},
    )
    assert created[0] == 201 and created[1]["active"] is True
    await component.consume([snap(kpi, 20, "a")])
    clock.now += dt.timedelta(minutes=11)
    assert await component.tick() == []  # firing now, but silenced
    assert [s.status.value for s in component.engine.states.values()
            if s.rule == f"{kpi}_hi"] == ["firing"]
    status, listed = await call_asgi(app, "GET", "/api/silences")
    assert status == 200 and created[1]["silence_id"] in [s["silence_id"] for s in listed]
    status, _ = await call_asgi(app, "DELETE", "/api/silences",
                                query=f"id={created[1]['silence_id']}")
    assert status == 200
    sent = await component.tick()
    assert [a.state.value for a in sent] == ["firing"]
    assert (await call_asgi(app, "DELETE", "/api/silences/nope"))[0] == 404
    assert (await call_asgi(app, "POST", "/api/silences", {"matchers": {}}))[0] == 400


async def call_asgi(app: Any, method: str, path: str, body: Any = None,
                    query: str = "") -> tuple[int, Any]:
    payload = json.dumps(body).encode() if body is not None else b""
    scope = {"type": "http", "method": method, "path": path, "query_string": query.encode()}
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": payload, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await app(scope, receive, send)
    return messages[0]["status"], json.loads(messages[1]["body"])


def test_cli_list_silence_and_backtest(embedded_store: Store, monkeypatch: pytest.MonkeyPatch,
                                       tmp_path: Any) -> None:
    monkeypatch.setattr(cli, "_store", lambda: embedded_store)
    # Rules must name a catalog KPI: the series is made unique by its channel value.
    kpi, channel = "spend", unique()
    values = [50, 50, 150, 160, 170, 40, 40, 200, 30, 30]
    embedded_store.insert(
        "kpi_values",
        [
            {"kpi": kpi, "grain": "day", "period": (DAY + dt.timedelta(days=i)).isoformat(),
             "period_start": DAY + dt.timedelta(days=i), "dimension": "channel",
             "dimension_value": channel, "value": float(v), "unit": "USD",
             "computed_at": T0}
            for i, v in enumerate(values)
        ],
        ["kpi", "grain", "period", "period_start", "dimension", "dimension_value", "value",
         "unit", "computed_at"],
    )
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(
        f"rules:\n  - {{name: {channel}_hi, type: threshold, kpi: {kpi}, grain: day,"
        f" channel: {channel}, op: above, threshold: 100, for: 2, repeat_interval: 7d}}\n"
    )
    kpi = channel  # names the rule below
    runner = CliRunner()
    result = runner.invoke(cli.app, ["test", f"{kpi}_hi", "--from", "2026-11-20", "--to",
                                     "2026-11-29", "--rules", str(rules_file)])
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.output.splitlines() if ln.startswith("2026")]
    assert [ln.split()[:2] for ln in lines] == [
        ["2026-11-24T00:00:00+00:00", "firing"],  # 2nd breaching day closes 11-23
        ["2026-11-26T00:00:00+00:00", "resolved"],
    ]  # the lone breach on 11-27 never fires with for: 2
    assert "10 evaluation(s), 4 breaching, fired 1x, resolved 1x, 0 repeat(s)" in result.output

    missing = runner.invoke(cli.app, ["test", "nope", "--from", "2026-11-20", "--to",
                                      "2026-11-29", "--rules", str(rules_file)])
    assert missing.exit_code == 1

    added = runner.invoke(cli.app, ["silence", "add", f"alertname={kpi}_hi", "--for", "1h",
                                    "--comment", "test"])
    assert added.exit_code == 0, added.output
    silence_id = added.output.split()[1]
    listed = runner.invoke(cli.app, ["silence", "list"])
    assert silence_id in listed.output and f"alertname={kpi}_hi" in listed.output
    assert runner.invoke(cli.app, ["silence", "expire", silence_id]).exit_code == 0
    assert silence_id not in runner.invoke(cli.app, ["silence", "list"]).output
    assert runner.invoke(cli.app, ["silence", "add", "nonsense"]).exit_code == 2


async def test_cli_list_shows_firing(embedded_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "_store", lambda: embedded_store)
    kpi = unique()
    rules = f"rules:\n  - {{name: {kpi}_hi, type: threshold, kpi: {kpi}, op: above, threshold: 10}}\n"
    await make(embedded_store, rules, FakeBus(), Clock()).consume([snap(kpi, 20, "email")])
    result = CliRunner().invoke(cli.app, ["list", "--state", "firing", "--json"])
    assert result.exit_code == 0
    mine = [json.loads(ln) for ln in result.output.splitlines() if kpi in ln]
    assert [(m["rule"], m["state"], m["value"]) for m in mine] == [(f"{kpi}_hi", "firing", 20.0)]
    # The data's period and time, not only when the alert was processed.
    assert [(m["period"], m["data_time"]) for m in mine] == [("2026-11-20", T0.isoformat())]
    table = CliRunner().invoke(cli.app, ["list", "--state", "firing"])
    header, *rows = table.output.splitlines()
    assert header.split()[:6] == ["STATE", "SEVERITY", "RULE", "SCOPE", "PERIOD", "VALUE"]
    [row] = [r for r in rows if kpi in r]
    assert row.split()[:6] == ["firing", "warning", f"{kpi}_hi", "email", "2026-11-20", "20.0"]


def test_cli_backtest_that_evaluates_nothing_fails_with_the_reason(
    embedded_store: Store, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setattr(cli, "_store", lambda: embedded_store)
    channel = unique()
    rules_file = tmp_path / "rules.yaml"
    runner = CliRunner()

    def backtest(rule_yaml: str) -> Any:
        rules_file.write_text(f"rules:\n  - {{name: r, {rule_yaml}}}\n")
        return runner.invoke(cli.app, ["test", "r", "--from", "2026-11-20", "--to",
                                       "2026-11-29", "--rules", str(rules_file)])

    unknown = backtest("type: threshold, kpi: spnd, grain: day, op: above, threshold: 1")
    assert unknown.exit_code == 2
    assert "unknown KPI 'spnd' (did you mean spend?)" in unknown.output
    assert "evaluation" not in unknown.output

    empty = backtest(f"type: threshold, kpi: spend, grain: day, channel: {channel},"
                     " op: above, threshold: 1")
    assert empty.exit_code == 1
    assert empty.output.strip() == (
        f"error: r: 0 evaluations: no KPI values for kpi=spend grain=day dimension=channel "
        f"dimension_value={channel} between 2026-11-20 and 2026-11-29")

    embedded_store.insert(
        "kpi_values",
        [{"kpi": "spend", "grain": "day", "period": DAY.isoformat(), "period_start": DAY,
          "dimension": "channel", "dimension_value": channel, "value": 10.0, "unit": "USD",
          "computed_at": T0}],
        ["kpi", "grain", "period", "period_start", "dimension", "dimension_value", "value",
         "unit", "computed_at"],
    )
    no_history = backtest(f"type: change, kpi: spend, grain: day, channel: {channel},"
                          " threshold_pct: 10, periods_back: 7")
    assert no_history.exit_code == 1
    assert "1 KPI value(s)" in no_history.output and "none evaluable" in no_history.output


def insert_campaign_spend(store: Store, campaign: str, values: dict[dt.date, float]) -> None:
    store.insert(
        "kpi_values",
        [
            {"kpi": "spend", "grain": "day", "period": d.isoformat(), "period_start": d,
             "dimension": "campaign", "dimension_value": campaign, "value": v, "unit": "USD",
             "computed_at": dt.datetime.now(dt.UTC)}
            for d, v in values.items()
        ],
        ["kpi", "grain", "period", "period_start", "dimension", "dimension_value", "value",
         "unit", "computed_at"],
    )


async def test_timer_detects_no_spend_on_an_active_campaign(embedded_store: Store) -> None:
    campaign = f"cmp-{uuid.uuid4().hex[:8]}"
    yesterday = T0.date() - dt.timedelta(days=1)
    # spent every day of the week before, nothing in the last 3 days (no rows at all)
    insert_campaign_spend(
        embedded_store, campaign,
        {yesterday - dt.timedelta(days=d): 100.0 for d in range(3, 10)},
    )
    rules = (
        f"rules:\n  - {{name: {campaign}_silent, type: campaign_status, condition: no_spend,"
        f" days: 3, dimension_value: '{campaign}', action: {{action: review_campaign}}}}\n"
    )
    clock, bus = Clock(), FakeBus()
    component = make(embedded_store, rules, bus, clock)
    sent = await component.tick()
    assert [(a.state.value, a.labels["campaign"], a.value) for a in sent] == [
        ("firing", campaign, 0.0)
    ]
    assert [a.campaign_id for a in bus.published[CAMPAIGN_ACTIONS.name]] == [campaign]  # type: ignore[attr-defined]
    # spend resumes yesterday → resolved on the next tick
    insert_campaign_spend(embedded_store, campaign, {yesterday: 80.0})
    clock.now += dt.timedelta(minutes=1)
    assert [a.state.value for a in await component.tick()] == ["resolved"]


async def test_timer_evaluates_freshness(embedded_store: Store,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    name = unique()
    last_seen = {"pipeline": T0 - dt.timedelta(minutes=90)}
    monkeypatch.setattr(storage, "last_ingested", lambda store, source: last_seen.get(source))
    rules = (
        f"rules:\n  - {{name: {name}, type: freshness, source: pipeline, max_age: 1h,"
        " annotations: {summary: 'no CRM data for {age_minutes:.0f} min'}}\n"
    )
    clock, bus = Clock(), FakeBus()
    component = make(embedded_store, rules, bus, clock)
    (alert,) = await component.tick()
    assert alert.state.value == "firing" and alert.labels["source"] == "pipeline"
    assert alert.annotations["summary"] == "no CRM data for 90 min"
    assert await component.tick() == []
    last_seen["pipeline"] = T0
    clock.now += dt.timedelta(minutes=1)
    assert [a.state.value for a in await component.tick()] == ["resolved"]


def test_last_ingested_reads_raw_tables(any_store: Store) -> None:
    for source in ("touchpoints", "spend", "subscriptions", "pipeline", "budgets"):
        value = storage.last_ingested(any_store, source)
        assert value is None or (value.tzinfo is not None and value <= dt.datetime.now(dt.UTC))


class HangingNotifier(RecordingNotifier):
    """A receiver that never answers (the process will be 'killed' meanwhile)."""

    async def send(self, group: str, alerts: Sequence[Alert]) -> bool:
        await asyncio.Event().wait()
        return False


async def test_crash_after_publish_before_webhook_resends_only_the_webhook(
    embedded_store: Store,
) -> None:
    kpi = unique()
    rules = f"rules:\n  - {{name: {kpi}_hi, type: threshold, kpi: {kpi}, op: above, threshold: 10}}\n"
    clock, bus = Clock(), FakeBus()
    first = make(embedded_store, rules, bus, clock, HangingNotifier())
    await first.consume([snap(kpi, 20, "paid_search")])
    assert len(bus.alerts()) == 1
    assert first._worker is not None
    first._worker.cancel()  # "killed" while the webhook call hangs

    notifier = RecordingNotifier()
    restarted = make(embedded_store, rules, bus, clock, notifier)
    await restarted.start()
    await restarted.drain()
    await restarted.stop()
    assert len(bus.alerts()) == 1  # not re-published on alerts.v1
    assert [[a.alert_id for a in members] for _, members in notifier.calls] == [
        [bus.alerts()[0].alert_id]
    ]
    assert not [r for r in storage.undelivered_events(embedded_store) if r["rule"] == f"{kpi}_hi"]


def insert_kpi(store: Store, kpi: str, grain: str, dimension: str, value_of: str,
               values: dict[dt.date, float], period_of: Any = None) -> None:
    store.insert(
        "kpi_values",
        [
            {"kpi": kpi, "grain": grain, "period": period_of(d) if period_of else d.isoformat(),
             "period_start": d, "dimension": dimension, "dimension_value": value_of,
             "value": v, "unit": "USD", "computed_at": T0}
            for d, v in values.items()
        ],
        ["kpi", "grain", "period", "period_start", "dimension", "dimension_value", "value",
         "unit", "computed_at"],
    )


async def test_history_and_budget_rules_read_kpi_values(embedded_store: Store) -> None:
    kpi = unique()
    history = {DAY - dt.timedelta(days=d): 100.0 + (d % 3) for d in range(1, 15)}
    insert_kpi(embedded_store, kpi, "day", "channel", "email", history)
    month = DAY.replace(day=1)
    insert_kpi(embedded_store, "budget", "month", "channel", f"{kpi}-ch", {month: 1000.0},
               period_of=lambda d: d.strftime("%Y-%m"))
    rules = (
        "rules:\n"
        f"  - {{name: {kpi}_z, type: zscore, kpi: {kpi}, window: 14, threshold: 3,"
        " direction: up}\n"
        f"  - {{name: {kpi}_chg, type: change, kpi: {kpi}, threshold_pct: 50}}\n"
        f"  - {{name: {kpi}_fc, type: forecast, kpi: {kpi}, op: above, threshold: 130,"
        " horizon: 7, window: 15, min_periods: 7}\n"
        f"  - {{name: {kpi}_budget, type: budget, mode: pacing, channel: '{kpi}-ch',"
        " tolerance_pct: 10}\n"
    )
    bus = FakeBus()
    component = make(embedded_store, rules, bus, Clock())
    projected = KpiSnapshot(
        kpi="projected_spend", grain=Grain.MONTH, period=month.strftime("%Y-%m"),
        period_start=month, dimension="channel", dimension_value=f"{kpi}-ch", value=1200.0,
        unit="USD", computed_at=T0,
    )
    await component.consume([snap(kpi, 180.0, "email"), projected])
    fired = {a.rule: a for a in bus.alerts()}
    assert set(fired) == {f"{kpi}_z", f"{kpi}_chg", f"{kpi}_budget", f"{kpi}_fc"}
    fc = fired[f"{kpi}_fc"]  # upper 90 % bound of the AutoETS forecast after the spike
    assert fc.value is not None and fc.value > 130 and fc.threshold == 130
    assert fired[f"{kpi}_chg"].value == 180.0
    assert fired[f"{kpi}_budget"].threshold == pytest.approx(1100.0)
