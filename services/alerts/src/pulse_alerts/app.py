"""The alerts component: consumes KPI snapshots, runs the rules and their lifecycle on
them and on a timer, persists states and an outbox, publishes and notifies alerts."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

from pulse_alerts import storage
from pulse_alerts.context import (
    fetch_context,
    observe_timer,
    prefetch_history,
    prefetch_related,
)
from pulse_alerts.domain.engine import Engine
from pulse_alerts.domain.evaluate import Forecaster, evaluate
from pulse_alerts.domain.lifecycle import Outcome, group_key
from pulse_alerts.domain.model import Observation, Status
from pulse_alerts.domain.rules import (
    KpiCatalog,
    RuleBase,
    RuleSet,
    load_rules,
)
from pulse_alerts.kpi_catalog import installed_catalog
from pulse_alerts.metrics import (
    EVALUATION_SECONDS,
    EVALUATIONS,
    FIRING,
    PENDING,
    RULES_LOADED,
    SILENCED,
    TRANSITIONS,
)
from pulse_alerts.notify import Notifier
from pulse_alerts.settings import AlertsSettings
from pulse_shared.bus import Bus
from pulse_shared.consumers import Consumer, build_router
from pulse_shared.events import Alert, CampaignAction, KpiSnapshot
from pulse_shared.logging import get_logger
from pulse_shared.store import Store
from pulse_shared.streaming import BatchConsumer
from pulse_shared.topics import ALERTS, CAMPAIGN_ACTIONS, KPI_SNAPSHOTS

SERVICE = "alerts"
GROUP_ID = "pulse-alerts"
#: Snapshots per polled batch (each is evaluated against every matching rule).
MAX_RECORDS = 2000
SILENCE_REFRESH_S = 10.0
log = get_logger(__name__)
Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def default_rules_text() -> str:
    return resources.files("pulse_alerts.rules").joinpath("default.yaml").read_text()


def load_ruleset(settings: AlertsSettings, catalog: KpiCatalog | None = None) -> RuleSet:
    """Rules from ``PULSE_ALERTS_RULES_FILE``, else the rules shipped in the package.

    Rules naming an unknown KPI, grain or dimension are refused (:class:`RulesError`):
    they could never match a snapshot. ``catalog`` defaults to the installed KPI catalog.
    """
    if catalog is None:
        catalog = installed_catalog()
    if settings.rules_file is not None:
        return load_rules(settings.rules_file.read_text(), str(settings.rules_file), catalog)
    return load_rules(default_rules_text(), "pulse_alerts/rules/default.yaml", catalog)


def default_forecaster() -> Forecaster | None:
    try:
        from pulse_alerts.forecast import forecast_intervals
    except ImportError:  # pragma: no cover - optional dependency missing
        return None
    forecaster: Forecaster = forecast_intervals
    return forecaster


class AlertsComponent:
    """Consumes KPI snapshots, runs the rules and lifecycle, emits notifications."""

    name = SERVICE

    def __init__(
        self,
        store: Store,
        bus: Bus,
        settings: AlertsSettings,
        rules: RuleSet,
        notifiers: Sequence[Notifier] = (),
        clock: Clock = utc_now,
        forecaster: Forecaster | None = None,
    ) -> None:
        self.store = store
        self.bus = bus
        self.settings = settings
        self.engine = Engine(rules)
        self.notifiers = list(notifiers)
        self.clock = clock
        self.forecaster = forecaster
        # No processor: snapshots are evaluated against the rules (stateful), and what
        # changes is written and published by the follow-up itself.
        self.consumer: BatchConsumer[KpiSnapshot] = Consumer(
            KPI_SNAPSHOTS, then=self.consume, max_records=MAX_RECORDS,
            flush_after_s=settings.flush_after_s,
        ).strategy(SERVICE, bus)
        self.consumers: list[BatchConsumer[Any]] = [self.consumer]
        self.router = build_router(self, GROUP_ID)
        self._lock = asyncio.Lock()
        self._loaded = False
        self._outbox: list[dict[str, Any]] = []
        self._timer: asyncio.Task[None] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._notify_queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
        self._gauge_keys: set[tuple[str, str]] = set()
        self._silences_loaded_at = 0.0
        RULES_LOADED.set(sum(1 for r in rules.rules if r.enabled))

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        async with self._lock:
            await self._ensure_loaded()
            await self._flush_outbox()
        if self._timer is None and self.settings.tick_interval_s > 0:
            self._timer = asyncio.create_task(self._run_timer(), name="pulse-alerts-timer")

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            try:
                await self._timer
            except asyncio.CancelledError:
                pass
            self._timer = None
        try:
            await self.drain(timeout_s=10.0)
        except TimeoutError:
            log.warning("notifications_pending_at_stop", queued=self._notify_queue.qsize())
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
            self._worker = None
        for notifier in self.notifiers:
            await notifier.close()

    async def _run_timer(self) -> None:
        while True:
            await asyncio.sleep(self.settings.tick_interval_s)
            try:
                await self.tick()
            except Exception as exc:  # keep the timer alive; next tick retries
                log.error("tick_failed", error=repr(exc))

    async def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        states = await asyncio.to_thread(storage.load_states, self.store)
        self.engine.states = {s.fingerprint: s for s in states}
        await self.reload_silences()
        self._outbox = await asyncio.to_thread(storage.undelivered_events, self.store)
        self._loaded = True
        self._update_gauges()
        log.info("alerts_state_loaded", states=len(states), outbox=len(self._outbox))

    async def reload_silences(self) -> None:
        now = self.clock()
        silences = await asyncio.to_thread(storage.load_silences, self.store, now)
        self.engine.silences = tuple(silences)
        self._silences_loaded_at = time.monotonic()

    # -- processing -----------------------------------------------------------------------
    async def consume(self, snapshots: list[KpiSnapshot]) -> None:
        """Evaluate a batch of snapshots (idempotent: stale snapshots change nothing)."""
        started = time.perf_counter()
        async with self._lock:
            await self._ensure_loaded()
            if time.monotonic() - self._silences_loaded_at > SILENCE_REFRESH_S:
                await self.reload_silences()  # e.g. created by the CLI in another process
            await self._flush_outbox()
            pairs = self.engine.plan(snapshots)
            if not pairs:
                return
            observations = await asyncio.to_thread(self._observe, pairs)
            now = self.clock()
            outcomes = self.engine.apply(observations, now)
            await self._emit(outcomes)
        EVALUATION_SECONDS.observe(time.perf_counter() - started)

    async def tick(self, now: dt.datetime | None = None) -> list[Alert]:
        """Timer evaluation: freshness rules, duration-based ``for``, repeats, silences."""
        async with self._lock:
            await self._ensure_loaded()
            await self.reload_silences()
            await self._flush_outbox()
            now = now or self.clock()
            fresh = await asyncio.to_thread(self._observe_timer, now)
            first = self.engine.apply(fresh, now)
            sent = await self._emit(first)
            sent += await self._emit(self.engine.tick(now))
            return sent

    def _observe(
        self, pairs: Sequence[tuple[RuleBase, KpiSnapshot]]
    ) -> list[tuple[RuleBase, Observation]]:
        """Fetch each rule's context (history, related KPIs) and evaluate (off-loop)."""
        out: list[tuple[RuleBase, Observation]] = []
        cache: dict[tuple[Any, ...], Any] = {}
        prefetch_history(self.store, pairs, cache)
        prefetch_related(self.store, pairs, cache)
        for rule, snap in pairs:
            ctx = fetch_context(self.store, rule, snap, cache, self.forecaster)
            obs = evaluate(rule, snap, ctx)
            EVALUATIONS.labels(getattr(rule, "type", "unknown")).inc()
            if obs is not None:
                out.append((rule, obs))
        return out

    def _observe_timer(self, now: dt.datetime) -> list[tuple[RuleBase, Observation]]:
        """Rules that must be checked even when no snapshot arrives (each timer rule
        type observes its own rules: freshness, campaign no_spend, ...)."""
        out: list[tuple[RuleBase, Observation]] = []
        timer_rules = self.engine.rules.timer_rules
        for rule, obs in observe_timer(self.store, timer_rules, now, self.forecaster):
            EVALUATIONS.labels(rule.type_name).inc()
            if obs is not None:
                out.append((rule, obs))
        return out

    # -- output ---------------------------------------------------------------------------
    async def _emit(self, outcomes: list[Outcome]) -> list[Alert]:
        """Persist states + outbox rows, then publish and notify, then mark delivered."""
        if not outcomes:
            return []
        rows: list[dict[str, Any]] = []
        for outcome in outcomes:
            rule = self.engine.rules.by_name(outcome.state.rule)
            group_by = rule.group_by if rule else ["alertname"]
            for alert in outcome.alerts:
                actions = [a for a in outcome.actions if a.source_alert == alert.alert_id]
                rows.append(
                    storage.event_row(
                        alert, group_key(alert.labels, group_by), actions, delivered=False
                    )
                )
        # Never-breached series stay in memory only: persisting them would write one row per
        # series per evaluation for nothing a restart needs.
        states = [
            o.state
            for o in outcomes
            if o.state.status is not Status.INACTIVE
            or (
                (prev := self.engine.states.get(o.state.fingerprint)) is not None
                and prev.status is not Status.INACTIVE
            )
        ]

        def persist() -> None:
            storage.save_events(self.store, rows)
            storage.save_states(self.store, states)

        await asyncio.to_thread(persist)
        for outcome in outcomes:
            prev = self.engine.states.get(outcome.state.fingerprint)
            if prev is None or prev.status is not outcome.state.status:
                if prev is not None or outcome.state.status is not Status.INACTIVE:
                    TRANSITIONS.labels(outcome.state.status.value).inc()
                    log.info(
                        "alert_transition",
                        fingerprint=outcome.state.fingerprint,
                        rule=outcome.state.rule,
                        previous=prev.status.value if prev else None,
                        state=outcome.state.status.value,
                        value=outcome.state.value,
                        notified=bool(outcome.alerts),
                    )
                if outcome.state.status is Status.FIRING and not outcome.alerts:
                    SILENCED.inc()
        self.engine.commit(outcomes)
        self._update_gauges()
        self._outbox.extend(rows)
        sent = await self._flush_outbox()
        return sent

    async def _flush_outbox(self) -> list[Alert]:
        """Publish undelivered notifications to Kafka (same alert ids after a crash), then
        hand them to the notifier worker (webhook/e-mail) so a slow receiver never holds
        up snapshot processing."""
        to_publish = [r for r in self._outbox if r["delivered"] == storage.PENDING]
        to_notify = [r for r in self._outbox if r["delivered"] == storage.PUBLISHED]
        self._outbox = []
        alerts: list[Alert] = []
        if to_publish:
            decoded = [storage.alert_from_event_row(r) for r in to_publish]
            alerts = [a for a, _ in decoded]
            actions: list[CampaignAction] = [x for _, acts in decoded for x in acts]
            try:
                await self.bus.publish(ALERTS, alerts)
                if actions:
                    await self.bus.publish(CAMPAIGN_ACTIONS, actions)
            except BaseException:
                self._outbox = to_publish + to_notify + self._outbox
                raise
            level = storage.PUBLISHED if self.notifiers else storage.NOTIFIED
            await asyncio.to_thread(storage.mark_delivered, self.store, to_publish, level)
            for alert in alerts:
                log.info(
                    "alert_sent",
                    alert_id=alert.alert_id,
                    rule=alert.rule,
                    state=alert.state.value,
                    severity=alert.severity.value,
                    fingerprint=alert.fingerprint,
                    value=alert.value,
                    threshold=alert.threshold,
                )
            if self.notifiers:
                to_notify.extend(to_publish)
        if to_notify:
            self._ensure_worker()
            await self._notify_queue.put(to_notify)
        return alerts

    def _ensure_worker(self) -> None:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._notify_worker(), name="pulse-alerts-notify")

    async def _notify_worker(self) -> None:
        """Sends queued notifications in order, grouped per batch and group key."""
        while True:
            rows = await self._notify_queue.get()
            try:
                groups: dict[str, list[Alert]] = defaultdict(list)
                for row in rows:
                    groups[row["group_key"]].append(storage.alert_from_event_row(row)[0])
                for group, members in groups.items():
                    await asyncio.gather(*(n.send(group, members) for n in self.notifiers))
                await asyncio.to_thread(
                    storage.mark_delivered, self.store, rows, storage.NOTIFIED
                )
            except Exception as exc:  # never kill the worker; the rows stay for a restart
                log.error("notify_failed", error=repr(exc), alerts=len(rows))
            finally:
                self._notify_queue.task_done()

    async def drain(self, timeout_s: float = 30.0) -> None:
        """Wait until queued webhook/e-mail notifications have been attempted."""
        await asyncio.wait_for(self._notify_queue.join(), timeout_s)

    def _update_gauges(self) -> None:
        counts = self.engine.counts()
        keys: set[tuple[str, str]] = set()
        pending = 0
        for (status, rule, severity), n in counts.items():
            if status == Status.FIRING.value:
                FIRING.labels(rule, severity).set(n)
                keys.add((rule, severity))
            elif status == Status.PENDING.value:
                pending += n
        for rule, severity in self._gauge_keys - keys:
            FIRING.labels(rule, severity).set(0)
        self._gauge_keys = keys
        PENDING.set(pending)
