"""Lifecycle edges: for (count and duration), flapping, resolve, repeat, silences,
stale input, actions, and restart from stored state in every state."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from pulse_alerts import storage
from pulse_alerts.domain.engine import Engine, latest_per_series
from pulse_alerts.domain.evaluate import evaluate
from pulse_alerts.domain.lifecycle import Outcome
from pulse_alerts.domain.model import Silence, Status
from pulse_alerts.domain.rules import RuleSet, load_rules
from pulse_shared.events import AlertState, Grain, KpiSnapshot
from pulse_shared.periods import period_of
from pulse_shared.store import Store

T0 = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)
DAY = dt.date(2026, 11, 25)


def minutes(n: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=n)


def ruleset(extra: str = "", kpi: str = "spend", name: str = "r") -> RuleSet:
    return load_rules(
        f"rules:\n  - {{name: {name}, type: threshold, kpi: {kpi}, op: above,"
        f" threshold: 100{extra}}}\n"
    )


def snap(value: float, at: float, day: dt.date = DAY, kpi: str = "spend",
         channel: str = "paid_search") -> KpiSnapshot:
    return KpiSnapshot(
        kpi=kpi, grain=Grain.DAY, period=day.isoformat(), period_start=day,
        dimension="channel", dimension_value=channel, value=value, unit="USD",
        computed_at=minutes(at),
    )


def feed(engine: Engine, value: float, at: float, **kw: object) -> list[Outcome]:
    s = snap(value, at, **kw)  # type: ignore[arg-type]
    pairs = engine.plan([s])
    observations = [(r, o) for r, sn in pairs if (o := evaluate(r, sn)) is not None]
    outcomes = engine.apply(observations, minutes(at))
    engine.commit(outcomes)
    return outcomes


def tick(engine: Engine, at: float) -> list[Outcome]:
    outcomes = engine.tick(minutes(at))
    engine.commit(outcomes)
    return outcomes


def sent(outcomes: list[Outcome]) -> list[str]:
    return [a.state.value for o in outcomes for a in o.alerts]


def only_state(engine: Engine) -> Status:
    (state,) = engine.states.values()
    return state.status


def test_fire_resolve_and_fire_again_with_new_alert_id() -> None:
    engine = Engine(ruleset())
    first = feed(engine, 150, 0)
    assert sent(first) == ["firing"] and only_state(engine) is Status.FIRING
    assert sent(feed(engine, 160, 1)) == []
    resolved = feed(engine, 50, 2)
    assert sent(resolved) == ["resolved"]
    alert = resolved[0].alerts[0]
    assert alert.ends_at == minutes(2) and alert.starts_at == minutes(0)
    assert sent(feed(engine, 40, 3)) == []
    again = feed(engine, 170, 4)
    assert sent(again) == ["firing"]
    assert again[0].alerts[0].alert_id != first[0].alerts[0].alert_id
    assert again[0].alerts[0].fingerprint == first[0].alerts[0].fingerprint


def test_flapping_input_with_for_count_never_fires() -> None:
    engine = Engine(ruleset(", for: 3"))
    notifications: list[str] = []
    for i, value in enumerate([150, 50, 150, 150, 50, 150, 50, 150, 150]):
        notifications += sent(feed(engine, value, i))
    assert notifications == []
    assert only_state(engine) is Status.PENDING
    assert sent(feed(engine, 150, 10)) == ["firing"]  # third in a row
    assert sent(feed(engine, 150, 11)) == []


def test_pending_that_clears_goes_inactive_without_notification() -> None:
    engine = Engine(ruleset(", for: 2"))
    assert sent(feed(engine, 150, 0)) == [] and only_state(engine) is Status.PENDING
    assert sent(feed(engine, 50, 1)) == [] and only_state(engine) is Status.INACTIVE


def test_for_duration_fires_on_the_timer() -> None:
    engine = Engine(ruleset(", for: 10m"))
    assert sent(feed(engine, 150, 0)) == []
    assert sent(tick(engine, 5)) == [] and only_state(engine) is Status.PENDING
    fired = tick(engine, 10)
    assert sent(fired) == ["firing"] and fired[0].alerts[0].starts_at == minutes(10)
    assert tick(engine, 11) == []


def test_for_duration_restarts_after_a_clear() -> None:
    engine = Engine(ruleset(", for: 10m"))
    feed(engine, 150, 0)
    feed(engine, 50, 6)
    feed(engine, 150, 8)
    assert sent(tick(engine, 12)) == []  # only 4 minutes since the new breach
    assert sent(tick(engine, 18)) == ["firing"]


def test_repeat_interval_on_timer_and_snapshots() -> None:
    engine = Engine(ruleset(", repeat_interval: 1h"))
    assert sent(feed(engine, 150, 0)) == ["firing"]
    assert sent(tick(engine, 59)) == []
    assert sent(tick(engine, 60)) == ["firing"]
    assert sent(feed(engine, 150, 90)) == []
    assert sent(feed(engine, 150, 121)) == ["firing"]
    assert sent(feed(engine, 50, 122)) == ["resolved"]
    assert tick(engine, 500) == []  # resolved alerts do not repeat


def test_silence_holds_back_firing_until_it_expires() -> None:
    engine = Engine(ruleset())
    engine.silences = (
        Silence("s1", {"alertname": "r", "channel": "paid_*"}, minutes(-1), minutes(30)),
    )
    assert sent(feed(engine, 150, 0)) == [] and only_state(engine) is Status.FIRING
    assert sent(tick(engine, 29)) == []
    assert sent(tick(engine, 30)) == ["firing"]  # silence expired, still firing
    assert tick(engine, 31) == []


def test_fired_and_resolved_within_a_silence_sends_nothing() -> None:
    engine = Engine(ruleset())
    engine.silences = (Silence("s1", {"alertname": "r"}, minutes(-1), minutes(30)),)
    feed(engine, 150, 0)
    feed(engine, 50, 5)
    assert only_state(engine) is Status.RESOLVED
    assert tick(engine, 40) == []


def test_resolution_during_a_silence_is_sent_after_it() -> None:
    engine = Engine(ruleset())
    assert sent(feed(engine, 150, 0)) == ["firing"]
    engine.silences = (Silence("s1", {"severity": "warn*"}, minutes(1), minutes(30)),)
    assert sent(feed(engine, 50, 5)) == []
    assert sent(tick(engine, 30)) == ["resolved"]


def test_silence_not_matching_does_not_mute() -> None:
    engine = Engine(ruleset())
    engine.silences = (Silence("s1", {"channel": "email"}, minutes(-1), minutes(30)),)
    assert sent(feed(engine, 150, 0)) == ["firing"]


def test_stale_and_duplicate_snapshots_change_nothing() -> None:
    engine = Engine(ruleset())
    feed(engine, 150, 10)
    assert feed(engine, 150, 10) == []  # identical snapshot (redelivery)
    assert feed(engine, 10, 5) == []  # older computation of the same period
    assert feed(engine, 10, 20, day=DAY - dt.timedelta(days=1)) == []  # older period
    assert only_state(engine) is Status.FIRING
    assert sent(feed(engine, 10, 30, day=DAY + dt.timedelta(days=1))) == ["resolved"]


def test_a_snapshot_older_than_its_alerts_period_is_not_even_planned() -> None:
    """Backfilled history (last month's KPIs recomputed) would be discarded as stale
    after its context was read: it is left out of the plan, so nothing is read for it."""
    engine = Engine(ruleset())
    feed(engine, 150, 10)
    yesterday = snap(10, 20, day=DAY - dt.timedelta(days=1))
    assert engine.plan([yesterday]) == []
    # The same period recomputed, a later period, and another series are all evaluated.
    same_day, tomorrow = snap(10, 30), snap(10, 30, day=DAY + dt.timedelta(days=1))
    other_series = snap(10, 20, day=DAY - dt.timedelta(days=1), channel="email")
    for planned in (same_day, tomorrow, other_series):
        assert [s for _, s in engine.plan([planned])] == [planned]
    assert engine.plan([snap(10, 10)]) == []  # the computation the alert already holds
    assert sent(feed(engine, 10, 30)) == ["resolved"]


def test_a_campaign_rule_is_evaluated_once_per_computation_of_its_campaign() -> None:
    """Spend and clicks snapshots of one KPI pass both trigger the campaign's
    spend-without-clicks alert: one evaluation (one read of its days) is enough."""
    engine = Engine(load_rules(
        "rules:\n  - {name: s, type: campaign_status, condition: spend_without_clicks}\n"))

    def campaign(kpi: str, at: float, campaign_id: str = "cmp-1") -> KpiSnapshot:
        return KpiSnapshot(kpi=kpi, grain=Grain.DAY, period=DAY.isoformat(), period_start=DAY,
                           dimension="campaign", dimension_value=campaign_id, value=1.0,
                           unit="count", computed_at=minutes(at))

    spend, clicks = campaign("spend", 1), campaign("clicks", 1)
    other = campaign("clicks", 1, "cmp-2")
    assert [s for _, s in engine.plan([spend, clicks, other])] == [spend, other]
    later_clicks = campaign("clicks", 2)
    assert [s for _, s in engine.plan([spend, later_clicks])] == [spend, later_clicks]


def test_latest_per_series_keeps_newest_period() -> None:
    old, new = snap(500, 1, day=DAY - dt.timedelta(days=3)), snap(5, 0)
    other = snap(7, 0, channel="email")
    assert latest_per_series([new, old, other]) == [new, other]


def test_one_snapshot_batch_with_history_sends_one_notification() -> None:
    engine = Engine(ruleset())
    history = [snap(150 if d % 2 else 50, d, day=DAY - dt.timedelta(days=10 - d))
               for d in range(11)]
    pairs = engine.plan(history)
    assert len(pairs) == 1 and pairs[0][1].period_start == DAY


def test_action_only_on_first_firing() -> None:
    rules = ruleset(", repeat_interval: 1h, action: {action: pause_campaign, reason: 'x {value}'}")
    engine = Engine(rules)
    first = feed(engine, 150, 0)
    assert [a.action for o in first for a in o.actions] == ["pause_campaign"]
    action = first[0].actions[0]
    assert action.source_alert == first[0].alerts[0].alert_id
    assert action.reason == "x 150.0" and action.channel.value == "paid_search"
    repeat = tick(engine, 61)
    assert sent(repeat) == ["firing"] and repeat[0].actions == []


def test_grouping_key_and_gauge_counts() -> None:
    engine = Engine(ruleset(", group_by: [alertname, severity]"))
    feed(engine, 150, 0, channel="a")
    feed(engine, 150, 0, channel="b")
    assert engine.counts() == {("firing", "r", "warning"): 2}


# -- restart: state stored in ClickHouse, a new engine continues ----------------------------
def restart(engine: Engine, store: Store, rules: RuleSet) -> Engine:
    storage.save_states(store, engine.states.values())
    fingerprints = set(engine.states)
    loaded = {s.fingerprint: s for s in storage.load_states(store) if s.fingerprint in fingerprints}
    assert loaded == engine.states
    return Engine(rules, loaded)


def test_restart_in_each_state(any_store: Store) -> None:
    kpi = f"k{uuid.uuid4().hex[:8]}"

    # firing: same breach after restart → no duplicate; resolution still sent once
    rules = ruleset(kpi=kpi, name=f"{kpi}_a")
    engine = Engine(rules)
    assert sent(feed(engine, 150, 0, kpi=kpi)) == ["firing"]
    engine = restart(engine, any_store, rules)
    assert sent(feed(engine, 150, 1, kpi=kpi)) == []
    assert tick(engine, 2) == []
    assert sent(feed(engine, 50, 3, kpi=kpi)) == ["resolved"]

    # resolved: nothing re-sent after restart
    engine = restart(engine, any_store, rules)
    assert tick(engine, 4) == [] and sent(feed(engine, 40, 5, kpi=kpi)) == []

    # pending: the count of consecutive evaluations survives
    rules_for = ruleset(", for: 3", kpi=kpi, name=f"{kpi}_b")
    engine = Engine(rules_for)
    feed(engine, 150, 0, kpi=kpi)
    feed(engine, 150, 1, kpi=kpi)
    engine = restart(engine, any_store, rules_for)
    assert only_state(engine) is Status.PENDING
    assert sent(feed(engine, 150, 2, kpi=kpi)) == ["firing"]

    # inactive (pending that cleared): no notification on restart or after
    engine = Engine(rules_for)
    feed(engine, 150, 10, kpi=kpi)
    feed(engine, 50, 11, kpi=kpi)
    engine = restart(engine, any_store, rules_for)
    assert only_state(engine) is Status.INACTIVE and tick(engine, 12) == []

    # firing under a silence: the held-back notification is sent once it expires
    rules_s = ruleset(kpi=kpi, name=f"{kpi}_c")
    engine = Engine(rules_s)
    engine.silences = (Silence("s", {"alertname": f"{kpi}_c"}, minutes(-1), minutes(10)),)
    assert sent(feed(engine, 150, 0, kpi=kpi)) == []
    engine = restart(engine, any_store, rules_s)
    assert sent(tick(engine, 11)) == ["firing"]


def test_alert_contents() -> None:
    rules = load_rules(
        "rules:\n  - {name: r, type: threshold, kpi: spend, op: above, threshold: 100,"
        " severity: critical, labels: {team: growth},"
        " annotations: {summary: '{dimension_value} at {value:.0f} > {threshold:.0f}'}}\n"
    )
    engine = Engine(rules)
    (outcome,) = feed(engine, 150, 0)
    (alert,) = outcome.alerts
    assert alert.state is AlertState.FIRING and alert.severity.value == "critical"
    assert alert.labels["team"] == "growth" and alert.kpi == "spend"
    # The data's period and time ride along: the snapshot's, not the processing time.
    assert alert.annotations == {"summary": "paid_search at 150 > 100", "period": "2026-11-25",
                                 "data_time": minutes(0).isoformat()}
    assert alert.sent_at == minutes(0) and alert.value == 150.0


def month_snap(month: dt.date, value: float, computed_at: dt.datetime,
               kpi: str = "spend_to_date") -> KpiSnapshot:
    return KpiSnapshot(
        kpi=kpi, grain=Grain.MONTH, period=month.strftime("%Y-%m"), period_start=month,
        dimension="channel", dimension_value="paid_search", value=value, unit="USD",
        computed_at=computed_at,
    )


def test_a_resolved_alert_keeps_the_figures_and_period_that_fired() -> None:
    """November overspends; December's first (small) figure resolves the alert, but the
    alert still shows November's figures and period, and says which period resolved it."""
    from pulse_alerts.domain.evaluate import EvalContext

    rules = load_rules(
        "rules:\n  - {name: overspend, type: budget, mode: overspend, dimension: channel,"
        " tolerance_pct: 0, annotations: {summary: '{dimension_value} has spent"
        " {value:,.0f} USD in {period}, over its budget of {baseline:,.0f}'}}\n"
    )
    engine = Engine(rules)
    nov, dec = dt.date(2026, 11, 1), dt.date(2026, 12, 1)
    nov_at = dt.datetime(2026, 11, 30, 23, 0, tzinfo=dt.UTC)
    dec_at = dt.datetime(2026, 12, 2, 1, 0, tzinfo=dt.UTC)
    processed = [dec_at + dt.timedelta(hours=5), dec_at + dt.timedelta(hours=6)]
    outcomes: list[Outcome] = []
    for snapshot, budget, now in ((month_snap(nov, 19_250, nov_at), 17_900, processed[0]),
                                  (month_snap(dec, 1_502, dec_at), 17_900, processed[1])):
        (rule, matched), = engine.plan([snapshot])
        obs = evaluate(rule, matched, EvalContext(related={"budget": [budget]}))
        assert obs is not None
        step = engine.apply([(rule, obs)], now)
        engine.commit(step)
        outcomes.extend(step)
    fired, resolved = (a for o in outcomes for a in o.alerts)
    assert (fired.state, resolved.state) == (AlertState.FIRING, AlertState.RESOLVED)
    for alert in (fired, resolved):
        assert alert.value == 19_250
        assert alert.annotations["summary"] == (
            "paid_search has spent 19,250 USD in 2026-11, over its budget of 17,900")
        assert alert.annotations["period"] == "2026-11"
        assert alert.annotations["data_time"] == nov_at.isoformat()
    assert resolved.annotations["resolved_period"] == "2026-12"
    assert resolved.sent_at == processed[1]  # processing time stays the notification time


def test_history_reads_single_and_bulk_agree(any_store: Store) -> None:
    kpi = f"h{uuid.uuid4().hex[:8]}"
    rows = [
        {"kpi": kpi, "grain": "day", "period": (DAY - dt.timedelta(days=i)).isoformat(),
         "period_start": DAY - dt.timedelta(days=i), "dimension": "channel",
         "dimension_value": ch, "value": float(i) if i != 3 else None, "unit": "USD",
         "computed_at": T0}
        for i in range(0, 8) for ch in ("a", "b")
    ]
    any_store.insert("kpi_values", rows, list(rows[0]))
    single = storage.series_history(any_store, kpi, "day", "channel", "a", DAY, 5)
    assert single == [5.0, 4.0, None, 2.0, 1.0]  # oldest first, current day excluded
    requests = [(kpi, "day", "channel", "a", DAY, 5), (kpi, "day", "channel", "b",
                                                       DAY - dt.timedelta(days=5), 3)]
    bulk = storage.bulk_history(any_store, requests)
    assert bulk[requests[0]] == single
    assert bulk[requests[1]] == [7.0, 6.0]
    one = ((kpi,), "day", "channel", "b", DAY, 3)
    assert storage.bulk_related(any_store, [one]) == {one: {kpi: [2.0, 1.0, 0.0]}}
    # Many related reads in one query give what each read alone gives (gaps stay None).
    reads = [((kpi,), "day", "channel", "a", DAY - dt.timedelta(days=1), 4),
             ((kpi,), "day", "channel", "b", DAY + dt.timedelta(days=2), 5),
             ((kpi, "other"), "day", "channel", "a", DAY, 2)]
    together = storage.bulk_related(any_store, reads)
    assert together == {r: storage.bulk_related(any_store, [r])[r] for r in reads}
    assert together[reads[0]] == {kpi: [4.0, None, 2.0, 1.0]}
    assert together[reads[1]] == {kpi: [2.0, 1.0, 0.0, None, None]}


def test_a_gappy_history_is_its_own_window_alone_or_in_a_batch(any_store: Store) -> None:
    """A series with values 2, 9 and 20 days back: its 5-day history holds the day 2 value
    only, read alone or with a series whose window reaches 30 days back (a batch used to
    stretch every window to the batch's earliest, so the batch decided the history)."""
    kpi = f"g{uuid.uuid4().hex[:8]}"
    rows = [
        {"kpi": kpi, "grain": grain, "period": start.isoformat(), "period_start": start,
         "dimension": "channel", "dimension_value": "gappy", "value": float(back),
         "unit": "USD", "computed_at": T0}
        for grain, back, start in [
            *(("day", back, DAY - dt.timedelta(days=back)) for back in (2, 9, 20)),
            *(("month", back, dt.date(2026, back, 1)) for back in (1, 5, 6)),
        ]
    ]
    any_store.insert("kpi_values", rows, list(rows[0]))
    alone = (kpi, "day", "channel", "gappy", DAY, 5)
    wide = (kpi, "day", "channel", "gappy", DAY, 30)
    assert storage.series_history(any_store, *alone) == [2.0]
    assert storage.bulk_history(any_store, [alone, wide]) == {
        alone: [2.0], wide: [20.0, 9.0, 2.0]}
    # Calendar months: the 2 months before July 2026 are May and June, not January.
    months = (kpi, "month", "channel", "gappy", dt.date(2026, 7, 1), 2)
    assert storage.series_history(any_store, *months) == [5.0, 6.0]
    assert storage.bulk_history(any_store, [months, (*months[:4], dt.date(2026, 3, 1), 2)]) == {
        months: [5.0, 6.0], (*months[:4], dt.date(2026, 3, 1), 2): [1.0]}
    # Related reads (up to and including ``until``) keep to their calendar periods too:
    # the 2 months up to July are June and July (not May), up to March February and
    # March, which hold no value (not January).
    related = [((kpi,), "month", "channel", "gappy", dt.date(2026, 7, 1), 2),
               ((kpi,), "month", "channel", "gappy", dt.date(2026, 3, 1), 2)]
    assert storage.bulk_related(any_store, related) == {
        related[0]: {kpi: [6.0]}, related[1]: {kpi: []}}


def test_series_that_stops_reporting_is_resolved_after_stale_after() -> None:
    engine = Engine(ruleset(", grain: day, repeat_interval: 7d"))
    assert sent(feed(engine, 150, 0)) == ["firing"]
    assert tick(engine, 60 * 47) == []  # 2 days is the day-grain default
    resolved = tick(engine, 60 * 48 + 1)
    assert sent(resolved) == ["resolved"] and only_state(engine) is Status.RESOLVED
    assert tick(engine, 60 * 72) == []


def test_stale_pending_goes_inactive_and_explicit_stale_after() -> None:
    engine = Engine(ruleset(", for: 3, stale_after: 30m"))
    feed(engine, 150, 0)
    assert tick(engine, 31) != [] and only_state(engine) is Status.INACTIVE
    rules = ruleset()
    assert rules.rules[0].effective_stale_after == dt.timedelta(days=93)


@pytest.mark.parametrize("grain", ["day", "week", "month", "quarter"])
def test_the_history_window_starts_the_given_number_of_periods_back(grain: str) -> None:
    for offset in range(0, 800, 11):
        before = dt.date(2024, 1, 1) + dt.timedelta(days=offset)
        for periods in (0, 1, 2, 5, 13, 28):
            period = period_of(before, grain)
            for _ in range(periods):
                period = period.previous()
            assert storage.history_window_start(grain, before, periods) == period.start
