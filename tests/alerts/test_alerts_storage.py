"""alerts storage on both backends: state, outbox events, silences round-trips."""

from __future__ import annotations

import datetime as dt
import uuid

from pulse_alerts import storage
from pulse_alerts.domain.lifecycle import build_action, build_alert
from pulse_alerts.domain.model import AlertStatus, Silence, Status
from pulse_alerts.domain.rules import load_rules
from pulse_shared.events import AlertState, Severity
from pulse_shared.store import Store

T0 = dt.datetime(2026, 11, 25, 9, 30, 15, 123000, tzinfo=dt.UTC)


def a_state(fp: str, status: Status = Status.FIRING) -> AlertStatus:
    return AlertStatus(
        fingerprint=fp, rule="r", status=status, severity=Severity.CRITICAL, kpi="spend",
        labels={"alertname": "r", "channel": "email"}, annotations={"summary": "s"},
        value=12.5, threshold=10.0, active_since=T0, fired_at=T0, resolved_at=None,
        consecutive=3, notified="firing", last_sent_at=T0, period_start=T0.date(), as_of=T0,
        updated_at=T0,
    )


class TestAlertsStorage:
    def test_state_round_trip_latest_version_wins(self, any_store: Store) -> None:
        fp = uuid.uuid4().hex
        first = a_state(fp)
        storage.save_states(any_store, [first])
        later = AlertStatus(**{**first.__dict__, "status": Status.RESOLVED,
                               "resolved_at": T0 + dt.timedelta(minutes=5),
                               "updated_at": T0 + dt.timedelta(minutes=5)})
        storage.save_states(any_store, [later])
        loaded = [s for s in storage.load_states(any_store) if s.fingerprint == fp]
        assert loaded == [later]
        firing = [s for s in storage.load_states(any_store, ["firing"]) if s.fingerprint == fp]
        assert firing == []

    def test_outbox_levels_and_event_round_trip(self, any_store: Store) -> None:
        fp = uuid.uuid4().hex
        rule = load_rules("rules:\n  - {name: r, type: threshold, op: above, threshold: 1,"
                          " action: {action: pause_campaign}}\n").rules[0]
        state = a_state(fp)
        alert = build_alert(state, AlertState.FIRING, T0)
        action = build_action(state, rule, alert)
        row = storage.event_row(alert, "alertname=r", [action], delivered=False)
        storage.save_events(any_store, [row])
        (pending,) = [r for r in storage.undelivered_events(any_store) if r["fingerprint"] == fp]
        assert pending["delivered"] == storage.PENDING
        decoded, actions = storage.alert_from_event_row(pending)
        assert decoded == alert and actions == [action]
        storage.mark_delivered(any_store, [row], storage.PUBLISHED)
        (published,) = [r for r in storage.undelivered_events(any_store)
                        if r["fingerprint"] == fp]
        assert published["delivered"] == storage.PUBLISHED
        storage.mark_delivered(any_store, [row])
        assert not [r for r in storage.undelivered_events(any_store) if r["fingerprint"] == fp]
        (logged,) = storage.list_events(any_store, fingerprint=fp)
        assert logged["alert_id"] == alert.alert_id and logged["group_key"] == "alertname=r"

    def test_silences_active_filter_and_expiry(self, any_store: Store) -> None:
        sid = uuid.uuid4().hex[:16]
        silence = Silence(sid, {"alertname": "r*"}, T0, T0 + dt.timedelta(hours=1), "me", "c")
        storage.save_silence(any_store, silence)
        active = [s for s in storage.load_silences(any_store, T0) if s.silence_id == sid]
        assert active == [silence]
        later = T0 + dt.timedelta(hours=2)
        assert not [s for s in storage.load_silences(any_store, later) if s.silence_id == sid]
        assert [s.silence_id for s in storage.load_silences(any_store)].count(sid) == 1
