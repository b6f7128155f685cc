"""The KPI component: consumers of the input topics, the recompute, the snapshot flusher
and the daily close.

Flow per consumed batch: raw rows → ClickHouse (idempotent), MRR movements re-classified for
the batch's accounts, then the periods the batch touched are recomputed exactly from
ClickHouse (``FINAL``), changed values are upserted into ``kpi_values`` and published on
``kpi.snapshots.v1`` (rate-limited per key). Everything happens before the offsets are
committed, so a crash only causes a harmless recompute on redelivery.

That is the totals (dimension ``all``). Breakdowns follow in the background, marked in
``kpi_pending`` before the commit (replayed after a crash): the campaign pass recomputes the
channel/campaign KPIs of spend, credits and budgets for the channels and campaigns a batch
touched, right after it (pulse_kpi.domain.campaigns); the breakdown pass recomputes the
other breakdowns (trials by channel, deliverability, segment …) once per
``breakdown_interval_s``. Their KPI keys are disjoint, so the three run independently.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pulse_kpi import metrics, storage
from pulse_kpi.domain.campaigns import (
    CAMPAIGN_DIMS,
    CAMPAIGN_PARTS,
    Member,
    campaign_kpis,
    campaign_scope,
    members_of,
)
from pulse_kpi.domain.compute import KpiValue, Params, data_range
from pulse_kpi.domain.experience import experience_range
from pulse_kpi.domain.facts import Facts, Scope
from pulse_kpi.domain.mrr import movements
from pulse_kpi.domain.segments import compute_with_accounts
from pulse_kpi.domain.snapshots import Throttle, changed, live, to_snapshot
from pulse_kpi.domain.usage import usage_range
from pulse_kpi.settings import GROUP_ID, SERVICE, KpiSettings
from pulse_shared.bus import Bus
from pulse_shared.consumers import Consumer, build_router
from pulse_shared.events import (
    AccountProfile,
    AttributionCredit,
    Budget,
    EmailDeliveryStats,
    FeedbackResponse,
    Grain,
    KpiSnapshot,
    MartechCost,
    PipelineEvent,
    ProductUsage,
    Spend,
    Subscription,
    SupportTicket,
    kpi_key,
)
from pulse_shared.kpi_catalog import (
    ACCOUNT_DIMS,
    DELIVERABILITY_KPIS,
    TRIAL_CONVERSION_WINDOW_DAYS,
    TRIAL_KPIS,
)
from pulse_shared.logging import get_logger
from pulse_shared.periods import GRAINS, period_of
from pulse_shared.store import Store
from pulse_shared.streaming import BatchConsumer, DependencyNotReady
from pulse_shared.topics import (
    ACCOUNTS,
    BUDGETS,
    CREDITS,
    DELIVERABILITY,
    FEEDBACK,
    KPI_SNAPSHOTS,
    MARTECH,
    PIPELINE,
    SPEND,
    SUBSCRIPTIONS,
    TICKETS,
    USAGE,
)
from pulse_shared.writer import RowWriter

log = get_logger(__name__)
TOTALS: tuple[str, ...] = ("all",)
BREAKDOWNS: tuple[str, ...] = ("channel", "campaign", "sending_domain", *ACCOUNT_DIMS)
PUBLISH_CHUNK = 200
#: The campaign pass records its progress in kpi_state at most this often (a later record
#: only makes a restart replay a little more).
CAMPAIGNS_DONE_EVERY_S = 1.0
#: After a failed campaign pass (its work was put back), wait this long before retrying.
CAMPAIGN_RETRY_S = 1.0
#: Subscription events this recent (days) refresh the usage KPIs of their periods.
USAGE_BILLING_HORIZON_DAYS = 62


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class _Dirty:
    """What consumed batches changed since the last recompute."""

    flow_days: set[dt.date] = field(default_factory=set)
    mrr_from: dt.date | None = None
    mrr_to: dt.date | None = None
    funnel_days: set[dt.date] = field(default_factory=set)
    budget_months: set[dt.date] = field(default_factory=set)
    trial_days: set[dt.date] = field(default_factory=set)
    usage_days: set[dt.date] = field(default_factory=set)  # product usage (totals only)
    cx_days: set[dt.date] = field(default_factory=set)  # customer experience (totals only)

    def mark_mrr(self, first: dt.date, last: dt.date) -> None:
        self.mrr_from = first if self.mrr_from is None else min(self.mrr_from, first)
        self.mrr_to = last if self.mrr_to is None else max(self.mrr_to, last)

    def take(self) -> _Dirty:
        taken = _Dirty(
            set(self.flow_days), self.mrr_from, self.mrr_to, set(self.funnel_days),
            set(self.budget_months), set(self.trial_days), set(self.usage_days),
            set(self.cx_days),
        )
        self.cx_days.clear()
        self.usage_days.clear()
        self.flow_days.clear()
        self.trial_days.clear()
        self.funnel_days.clear()
        self.budget_months.clear()
        self.mrr_from = self.mrr_to = None
        return taken

    def empty(self) -> bool:
        return not (
            self.flow_days or self.mrr_from or self.funnel_days or self.budget_months
            or self.trial_days or self.usage_days or self.cx_days
        )

    def merge(self, other: _Dirty) -> None:
        self.flow_days |= other.flow_days
        self.funnel_days |= other.funnel_days
        self.budget_months |= other.budget_months
        self.trial_days |= other.trial_days
        self.usage_days |= other.usage_days
        self.cx_days |= other.cx_days
        if other.mrr_from is not None:
            self.mark_mrr(other.mrr_from, other.mrr_to or other.mrr_from)


@dataclass
class _CampaignDirty:
    """What consumed batches changed in campaign KPIs since the last campaign pass."""

    #: (day, channel, campaign id) of spend rows
    flows: set[tuple[dt.date, str, str]] = field(default_factory=set)
    #: (month start, channel, campaign id) of budgets
    budgets: set[tuple[dt.date, str, str]] = field(default_factory=set)
    #: new credits came in (they may bring a model new to a range)
    credited: bool = False
    #: days and budget months of every member (replay, daily close, offline recompute)
    all_days: set[dt.date] = field(default_factory=set)
    all_months: set[dt.date] = field(default_factory=set)

    def take(self) -> _CampaignDirty:
        taken = _CampaignDirty(set(self.flows), set(self.budgets), self.credited,
                               set(self.all_days), set(self.all_months))
        for part in (self.flows, self.budgets, self.all_days, self.all_months):
            part.clear()
        self.credited = False
        return taken

    def empty(self) -> bool:
        return not (self.flows or self.budgets or self.all_days or self.all_months)

    def merge(self, other: _CampaignDirty) -> None:
        self.flows |= other.flows
        self.budgets |= other.budgets
        self.credited |= other.credited
        self.all_days |= other.all_days
        self.all_months |= other.all_months


class CreditsNotYetVisible(DependencyNotReady):
    """Credits were announced on the topic before attribution's write became visible."""


class KpiComponent:
    """Consumers of the input topics plus the snapshot flusher and the daily close."""

    name = SERVICE

    def __init__(
        self,
        store: Store,
        bus: Bus,
        settings: KpiSettings,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self.store = store
        self.bus = bus
        self.settings = settings
        self.clock = clock
        self.storage = storage.KpiStorage(store)
        self.writer = RowWriter(store, SERVICE)
        # The un-suffixed attribution KPIs use the shared executive default model.
        self.params = Params(gross_margin=Decimal(str(settings.gross_margin)),
                             churn_risk_drop=settings.churn_risk_drop)
        self.throttle = Throttle(
            settings.snapshot_min_interval_s, settings.snapshot_dimension_min_interval_s
        )
        self.known: dict[str, float | None] | None = None
        #: (grain, period start) → breakdown (dimension, value) pairs with stored values,
        #: of the trial KPIs apart (their channels are trials' first touches).
        self.members: dict[tuple[str, dt.date], set[tuple[str, str]]] = {}
        self.trial_members: dict[tuple[str, dt.date], set[tuple[str, str]]] = {}
        #: … and of the deliverability KPIs apart (sending domains, ESP campaigns).
        self.deliverability_members: dict[tuple[str, dt.date], set[tuple[str, str]]] = {}
        self.mrr_horizon: dt.date | None = None
        #: Offline recomputation of a range: stock KPIs are not carried beyond this day.
        self.mrr_cap: dt.date | None = None
        #: Last day with a subscription event (read once, then advanced by consumed events).
        self.last_subscription_day: dt.date | None = None
        #: Whether any survey answer or ticket is stored (customer experience KPIs exist).
        self.experience_seen = False
        self._dirty = _Dirty()  # totals (dimension all), recomputed before each commit
        self._dirty_dims = _Dirty()  # other breakdowns, recomputed in the background pass
        self._dirty_campaigns = _CampaignDirty()  # campaign KPIs, right after their batch
        self._lock = asyncio.Lock()
        self._dims_lock = asyncio.Lock()
        self._campaigns_lock = asyncio.Lock()
        self._campaigns_marked = asyncio.Event()  # wakes the campaign pass
        #: Start of the last completed campaign pass not yet recorded in kpi_state, and
        #: when it was last recorded (monotonic).
        self._campaigns_done: dt.datetime | None = None
        self._campaigns_recorded_at = float("-inf")
        #: Credit models of each data range as of the last campaign pass over it: a model
        #: new to a range gives every member its per-model KPIs (a pass over all members;
        #: after a restart, credits not yet recomputed are replayed for all members).
        self._range_models: dict[tuple[dt.date, dt.date], frozenset[str]] = {}
        self._mrr_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        max_records = settings.max_records
        # Raw events: processor → rows written by the sink, then the KPIs they touch are
        # marked and the totals recomputed (before the commit). Credits are written by
        # attribution: only the follow-up.
        declared: list[Consumer[Any]] = [
            Consumer(SPEND, storage.spend_processor, self.after_spend, max_records=max_records),
            Consumer(SUBSCRIPTIONS, storage.subscription_processor, self.after_subscriptions,
                     max_records=max_records),
            Consumer(PIPELINE, storage.pipeline_processor, self.after_pipeline,
                     max_records=max_records),
            Consumer(BUDGETS, storage.budget_processor, self.after_budgets,
                     max_records=max_records),
            Consumer(MARTECH, storage.martech_processor, self.after_martech,
                     max_records=max_records),
            Consumer(USAGE, storage.usage_processor, self.after_usage,
                     max_records=max_records),
            Consumer(DELIVERABILITY, storage.deliverability_processor,
                     self.after_deliverability, max_records=max_records),
            Consumer(ACCOUNTS, storage.account_processor, self.after_accounts,
                     max_records=max_records),
            Consumer(FEEDBACK, storage.feedback_processor, self.after_feedback,
                     max_records=max_records),
            Consumer(TICKETS, storage.ticket_processor, self.after_tickets,
                     max_records=max_records),
            Consumer(CREDITS, then=self.after_credits, max_records=max_records),
        ]
        self.consumers: list[BatchConsumer[Any]] = [
            c.strategy(SERVICE, bus, self.writer) for c in declared
        ]
        self.router = build_router(self, GROUP_ID, label="KPI")

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        await self._replay_pending()
        self._tasks.append(asyncio.create_task(self._flush_loop(), name="kpi-flush"))
        self._tasks.append(
            asyncio.create_task(self._breakdown_loop(), name="kpi-breakdowns")
        )
        self._tasks.append(asyncio.create_task(self._campaign_loop(), name="kpi-campaigns"))
        if self.settings.close_enabled:
            self._tasks.append(asyncio.create_task(self._close_loop(), name="kpi-close"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        try:
            await self.refresh_breakdowns()
        except Exception as exc:  # replayed from kpi_pending at the next start
            log.warning("final_breakdown_refresh_failed", error=repr(exc))
        await self.flush(force=True)

    # ------------------------------------------------------------------ consumers
    async def after_spend(self, events: list[Spend]) -> None:
        if not events:
            return
        await self._mark_campaigns(flows={(e.date, e.channel, e.campaign_id) for e in events})
        self._dirty.flow_days.update(e.date for e in events)
        await self.refresh()

    async def after_subscriptions(self, events: list[Subscription]) -> None:
        if not events:
            return
        accounts = sorted({e.account_id for e in events})
        await self._reclassify(accounts)
        # Trial KPIs count by trial start: a conversion changes its trial's start period.
        trial_days = await asyncio.to_thread(self.storage.account_trial_days, accounts)
        if trial_days:
            await self._mark_breakdowns(trial_days=trial_days)
            self._dirty.trial_days |= trial_days
        days = [e.occurred_at.date() for e in events]
        # Breakdowns by segment … carry every account's MRR from its first changed day on.
        await self._mark_breakdowns(segment_from=min(days))
        # Churn risk counts paying accounts: recent billing changes move it in their months
        # (an old backfill would reload years of usage: `pulse kpi recompute` covers it).
        recent = self.clock().date() - dt.timedelta(days=USAGE_BILLING_HORIZON_DAYS)
        self._dirty.usage_days.update(d for d in days if d >= recent)
        # … and so does tickets per account, where there are answers or tickets at all
        # (looked up until the first is seen, then remembered).
        if not self.experience_seen:
            self.experience_seen = await asyncio.to_thread(self.storage.has_experience_data)
        if self.experience_seen:
            self._dirty.cx_days.update(days)
        if self.last_subscription_day is not None:
            self.last_subscription_day = max(self.last_subscription_day, max(days))
        self._dirty.mark_mrr(min(days), max(days))
        await self.refresh()

    async def after_pipeline(self, events: list[PipelineEvent]) -> None:
        if not events:
            return
        accounts = sorted({e.account_id for e in events})
        stage_days = await asyncio.to_thread(self.storage.account_stage_days, accounts)
        self._dirty.flow_days.update(e.occurred_at.date() for e in events)
        self._dirty.funnel_days.update(stage_days)
        await self.refresh()

    async def after_budgets(self, events: list[Budget]) -> None:
        if not events:
            return
        await self._mark_campaigns(
            budgets={(e.month_start, e.channel, e.campaign_id) for e in events}
        )
        self._dirty.budget_months.update(e.month_start for e in events)
        await self.refresh()

    async def after_martech(self, events: list[MartechCost]) -> None:
        """A month's tool cost is spread over its days (martech_cost, marketing_cost and
        the fully loaded CAC/ROI of every period overlapping it), so every day of the
        month is marked for the totals; martech has no channel/campaign breakdowns. Days
        after today are left to the daily close (it recomputes every period of the day it
        closes), so a cost planned ahead creates no KPI rows of days still to come."""
        if not events:
            return
        today = self.clock().date()
        for month_start in {e.month_start for e in events}:
            month = period_of(month_start, Grain.MONTH)
            last = min(month.end - dt.timedelta(days=1), today)
            self._dirty.flow_days.update(
                month.start + dt.timedelta(days=i) for i in range((last - month.start).days + 1)
            )
        await self.refresh()

    async def after_accounts(self, events: list[AccountProfile]) -> None:
        """A profile (late or not) changes the breakdowns by segment, plan … of every
        period from its effective day on, and the trials its account started since then:
        marked for the background breakdown pass (totals do not depend on profiles)."""
        if not events:
            return
        first = min(e.effective_from for e in events)
        accounts = sorted({e.account_id for e in events})
        trial_days = await asyncio.to_thread(self.storage.account_trial_days, accounts)
        await self._mark_breakdowns(
            trial_days={d for d in trial_days if d >= first}, segment_from=first
        )

    async def after_deliverability(self, events: list[EmailDeliveryStats]) -> None:
        """Delivery counts are daily flows: their days' periods are recomputed, totals now
        and the sending-domain / ESP-campaign breakdowns in the background pass."""
        if not events:
            return
        days = {e.day for e in events}
        await self._mark_breakdowns(flow_days=days)
        self._dirty.flow_days.update(days)
        await self.refresh()

    async def after_usage(self, events: list[ProductUsage]) -> None:
        """Usage KPIs of the events' days (and the next month's churn risk) are totals
        and feature members, recomputed before the commit (no background breakdowns)."""
        if not events:
            return
        self._dirty.usage_days.update(e.day for e in events)
        await self.refresh()

    async def after_feedback(self, events: list[FeedbackResponse]) -> None:
        """Survey answers change the experience KPIs of their days' periods (totals,
        recomputed before the commit)."""
        if not events:
            return
        self.experience_seen = True
        self._dirty.cx_days.update(e.responded_at.date() for e in events)
        await self.refresh()

    async def after_tickets(self, events: list[SupportTicket]) -> None:
        """A ticket's new state moves it between periods (created, resolved): the days of
        every stored state of the batch's tickets are recomputed (totals)."""
        if not events:
            return
        self.experience_seen = True
        ids = sorted({e.ticket_id for e in events})
        days = await asyncio.to_thread(self.storage.ticket_days, ids)
        self._dirty.cx_days.update(days)
        self._dirty.cx_days.update(e.created_at.date() for e in events)
        await self.refresh()

    async def after_credits(self, events: list[AttributionCredit]) -> None:
        """Attribution writes ``attribution_credits`` itself; we only recompute its days.

        Attribution writes a version before publishing it, but a read may still not see it
        (a replica behind the one written to, or an event from an older attribution that
        published first), so first make sure every announced version is readable; if not,
        raising makes BatchConsumer retry the batch (with backoff) instead of computing
        KPIs from credits that are not there yet.
        """
        if not events:
            return
        keys = sorted({(e.conversion_id, e.model, e.version) for e in events})
        missing = await asyncio.to_thread(self.storage.missing_credit_versions, keys)
        if missing:
            raise CreditsNotYetVisible(f"{missing} announced credit version(s) not yet stored")
        days = {e.converted_at.date() for e in events}
        # Where any version of these conversions' credits was: a new version adds credit
        # there, or takes it away from where an older one put it.
        members = await asyncio.to_thread(
            self.storage.credit_members, sorted({e.conversion_id for e in events})
        )
        await self._mark_campaigns(flows=members, conversion_days=days, credited=True)
        self._dirty.flow_days.update(days)
        await self.refresh()

    async def _reclassify(self, accounts: Sequence[str]) -> None:
        """Recompute the MRR movements of whole accounts (late events re-classify later ones)."""
        async with self._mrr_lock:
            history = await asyncio.to_thread(self.storage.subscription_history, accounts)
            moves = movements(history)
            await self.writer.write(
                storage.MOVEMENTS_TABLE,
                # A technical version (wall clock), not business time: the latest wins.
                storage.movement_rows(moves, utc_now()),
                storage.MOVEMENT_COLUMNS,
            )
        for move in moves:
            metrics.MRR_MOVEMENTS.labels(str(move.kind)).inc()

    # ------------------------------------------------------------------ recompute
    async def refresh(self) -> list[KpiValue]:
        """Recompute dirty totals (dimension ``all``); returns the values that changed."""
        return await self._refresh(self._dirty, self._lock, TOTALS, storage.FACT_PARTS)

    async def refresh_breakdowns(self) -> list[KpiValue]:
        """Recompute every dirty breakdown now: campaign KPIs, then the other breakdowns
        (the background passes do this on their own; also at stop and the daily close)."""
        changed_values = await self.refresh_campaigns(record=True)
        return changed_values + await self._refresh_other_breakdowns()

    async def _refresh_other_breakdowns(self) -> list[KpiValue]:
        """The breakdown pass: trials by channel, deliverability, segment … (not campaign
        KPIs: storage.OTHER_BREAKDOWN_PARTS)."""
        if self._dirty_dims.empty():
            return []
        started = utc_now()
        changed_values = await self._refresh(
            self._dirty_dims, self._dims_lock, BREAKDOWNS, storage.OTHER_BREAKDOWN_PARTS
        )
        await asyncio.to_thread(self.storage.breakdowns_done, started)
        return changed_values

    async def refresh_campaigns(self, record: bool = False) -> list[KpiValue]:
        """The campaign pass: recompute the campaign KPIs (channel/campaign flows and
        budgets) of the channels and campaigns marked since the last pass. Its progress is
        recorded in kpi_state at most every CAMPAIGNS_DONE_EVERY_S (``record``: now)."""
        async with self._campaigns_lock:
            changed_values: list[KpiValue] = []
            if not self._dirty_campaigns.empty():
                started = utc_now()
                work = self._dirty_campaigns.take()
                try:
                    changed_values = await self._recompute_campaigns(work)
                except BaseException:
                    self._dirty_campaigns.merge(work)  # the next pass redoes it
                    raise
                self._campaigns_done = started
            due = time.monotonic() - self._campaigns_recorded_at >= CAMPAIGNS_DONE_EVERY_S
            if self._campaigns_done is not None and (record or due):
                await asyncio.to_thread(
                    self.storage.breakdowns_done, self._campaigns_done, storage.CAMPAIGNS_DONE
                )
                self._campaigns_done = None
                self._campaigns_recorded_at = time.monotonic()
            return changed_values

    async def _refresh(
        self, pending: _Dirty, lock: asyncio.Lock, dims: tuple[str, ...],
        parts: frozenset[str],
    ) -> list[KpiValue]:
        async with lock:
            if pending.empty():
                return []
            dirty = pending.take()
            try:
                return await self._recompute(dirty, dims, parts)
            except BaseException:
                # Put the work back so a retry of the batch (or the next one) redoes it.
                pending.merge(dirty)
                raise

    async def _mark_breakdowns(
        self, flow_days: set[dt.date] | None = None, budget_months: set[dt.date] | None = None,
        trial_days: set[dt.date] | None = None, segment_from: dt.date | None = None,
    ) -> None:
        """Remember (durably, before the commit) which breakdowns must be recomputed
        (``segment_from``: the account breakdowns of every period from that day on;
        ``budget_months``: the budget KPIs of every channel and campaign)."""
        flow_days, budget_months = flow_days or set(), budget_months or set()
        trial_days = trial_days or set()
        segment_days = {segment_from} if segment_from is not None else set()
        # In memory first, then the time of the mark: a pass that starts after that time
        # has the work, so its "done" record may cover the row (written next).
        self._dirty_dims.flow_days |= flow_days
        self._dirty_campaigns.all_months |= budget_months
        self._dirty_dims.trial_days |= trial_days
        if segment_from is not None:  # stocks: every later period, up to the MRR horizon
            self._dirty_dims.mark_mrr(segment_from, segment_from)
        await self.writer.write(
            storage.PENDING_TABLE,
            storage.pending_rows(flow_days, budget_months, utc_now(), trial_days,
                                 segment_days),
            storage.PENDING_COLUMNS,
        )

    async def _mark_campaigns(
        self, flows: set[tuple[dt.date, str, str]] | None = None,
        budgets: set[tuple[dt.date, str, str]] | None = None,
        conversion_days: set[dt.date] | None = None, credited: bool = False,
    ) -> None:
        """Remember (durably, before the commit) which campaign KPIs must be recomputed:
        the members of spend rows (day, channel, campaign), of budgets (month, channel,
        campaign) and of new credits (``credited``, of ``conversion_days``). kpi_pending
        keeps their days and months (a replay recomputes every member of them)."""
        flows, budgets = flows or set(), budgets or set()
        conversion_days = conversion_days or set()
        # In memory first, then the time of the mark (see _mark_breakdowns).
        self._dirty_campaigns.flows |= flows
        self._dirty_campaigns.budgets |= budgets
        self._dirty_campaigns.credited |= credited
        # The batch's rows are stored: the pass may start (its delay lets the batch's
        # totals go first, and more batches join). It need not wait for the mark's row,
        # which only matters after a crash (and a failed write fails the batch).
        self._campaigns_marked.set()
        await self.writer.write(
            storage.PENDING_TABLE,
            storage.pending_rows({d for d, _, _ in flows} | conversion_days,
                                 {m for m, _, _ in budgets}, utc_now()),
            storage.PENDING_COLUMNS,
        )

    async def _replay_pending(self) -> None:
        """Breakdowns marked after the last completed pass (e.g. before a crash)."""
        work = await asyncio.to_thread(self.storage.pending_work_since_done)
        self._dirty_dims.flow_days |= work.flow_days
        self._dirty_dims.trial_days |= work.trial_days
        self._dirty_campaigns.all_days |= work.campaign_days
        self._dirty_campaigns.all_months |= work.campaign_months
        segment_days = await asyncio.to_thread(self.storage.pending_segment_days_since_done)
        if segment_days:
            self._dirty_dims.mark_mrr(min(segment_days), max(segment_days))
        if work.flow_days or work.trial_days or work.campaign_days or work.campaign_months:
            log.info("breakdowns_replayed", days=len(work.flow_days),
                     trial_days=len(work.trial_days), campaign_days=len(work.campaign_days),
                     campaign_months=len(work.campaign_months))

    async def _breakdown_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.breakdown_interval_s)
            try:
                await self._refresh_other_breakdowns()
            except Exception as exc:  # the dirty set was restored; the next tick retries
                log.warning("breakdown_refresh_failed", error=repr(exc))

    async def _campaign_loop(self) -> None:
        """Run the campaign pass shortly after a batch marked campaign KPIs; batches that
        finish meanwhile (other partitions, other topics; during a pass: all of them)
        join the same pass."""
        while True:
            await self._campaigns_marked.wait()
            await asyncio.sleep(self.settings.campaign_breakdown_delay_s)
            self._campaigns_marked.clear()
            try:
                await self.refresh_campaigns()
            except Exception as exc:  # the work was put back: retry a little later
                log.warning("campaign_refresh_failed", error=repr(exc))
                self._campaigns_marked.set()
                await asyncio.sleep(CAMPAIGN_RETRY_S)

    async def _load_known(self) -> dict[str, float | None]:
        if self.known is None:
            rows = await asyncio.to_thread(self.storage.kpi_values)
            self.known = {
                kpi_key(r["kpi"], r["grain"], r["dimension"], r["dimension_value"],
                        r["period"]): r["value"]
                for r in rows
            }
            for r in rows:
                if r["dimension"] != "all":
                    self._members_for(r["kpi"]).setdefault(
                        (r["grain"], r["period_start"]), set()
                    ).add((r["dimension"], r["dimension_value"]))
            days = [
                r["period_start"] for r in rows
                if r["kpi"] == "mrr" and r["grain"] == "day" and r["dimension"] == "all"
            ]
            self.mrr_horizon = max(days) if days else None
        return self.known

    async def _recompute(
        self, dirty: _Dirty, dims: tuple[str, ...], parts: frozenset[str]
    ) -> list[KpiValue]:
        started = time.perf_counter()
        known = await self._load_known()
        mrr_to = dirty.mrr_to
        if dirty.mrr_from is not None:
            if self.last_subscription_day is None:
                self.last_subscription_day = await asyncio.to_thread(
                    self.storage.last_subscription_day
                )
            candidates = [
                d for d in (mrr_to, self.last_subscription_day, self.mrr_horizon)
                if d is not None
            ]
            mrr_to = max(candidates)
            if self.mrr_cap is not None:
                mrr_to = min(mrr_to, max(self.mrr_cap, dirty.mrr_from))
        scope = Scope(
            flow_days=frozenset(dirty.flow_days),
            mrr_from=dirty.mrr_from,
            mrr_to=mrr_to,
            funnel_days=frozenset(dirty.funnel_days),
            budget_months=frozenset(dirty.budget_months),
            trial_days=frozenset(dirty.trial_days),
            usage_days=frozenset(dirty.usage_days),
            cx_days=frozenset(dirty.cx_days),
            dimensions=dims,
            # Channel/campaign flows are the campaign pass's (_recompute_campaigns): this
            # pass loads no spend, credits or budgets and must not zero their members.
            known_members=(
                self._account_members(self.members) if dims != TOTALS else frozenset()
            ),
            known_trial_members=(
                self._members_of(dirty.flow_days | dirty.trial_days, self.trial_members)
                | self._account_members(self.trial_members)
                if dims != TOTALS else frozenset()
            ),
            known_deliverability_members=(
                self._members_of(dirty.flow_days, self.deliverability_members)
                if dims != TOTALS else frozenset()
            ),
        )
        window = data_range(scope, self.params)
        # Product usage has its own day range (its periods and the month before each).
        usage_window = (usage_range(scope.usage_days, self.clock().date())
                        if "all" in dims else None)
        # … and so has customer experience (its days' periods).
        cx_window = experience_range(scope.cx_days) if "all" in dims else None
        span = window or usage_window or cx_window
        if span is None:
            return []
        # The clock is read before the facts: kpi_values keeps the row with the latest
        # computed_at, so a value must never carry a time later than the data it was
        # computed from (two replicas: a slow load finishing last would otherwise win
        # with facts older than the other replica's).
        now = self.clock()
        facts = await asyncio.to_thread(
            self.storage.load_facts, *span, parts if window else frozenset(), usage_window,
            cx_window,
        )
        loaded = time.perf_counter()
        # Pure CPU work off the event loop, so consumers and publishing keep moving.
        # compute() and the breakdowns by the account's profile (domain/segments.py)
        values = await asyncio.to_thread(
            compute_with_accounts, facts, scope, now.date(), self.params
        )
        computed = time.perf_counter()
        # Totals go out now; the numerous breakdowns are paced by the flush loop.
        diff, published = await self._store_changes(values, known, now, defer=dims != TOTALS)
        if mrr_to is not None:
            self.mrr_horizon = max(mrr_to, self.mrr_horizon or mrr_to)
        elapsed = time.perf_counter() - started
        metrics.RECOMPUTE_SECONDS.observe(elapsed)
        metrics.LAST_RECOMPUTE.set(time.time())
        log.info(
            "kpis_recomputed", dims=",".join(dims), computed=len(values), changed=len(diff), published=published,
            window=f"{span[0]}..{span[1]}", seconds=round(elapsed, 4),
            load_s=round(loaded - started, 4), compute_s=round(computed - loaded, 4),
            write_publish_s=round(time.perf_counter() - computed, 4),
        )
        return diff

    async def _store_changes(
        self, values: Sequence[KpiValue], known: dict[str, float | None],
        now: dt.datetime, defer: bool,
    ) -> tuple[list[KpiValue], int]:
        """Upsert the changed ``values`` into kpi_values and offer them to the throttle
        (``defer``: all through the paced flush loop); returns them and how many
        snapshots went out now."""
        diff = changed(values, known)
        metrics.VALUES_COMPUTED.inc(len(values))
        published = 0
        if diff:
            # kpi_values (the source of truth) first, then the snapshots: the alerts
            # service reads a KPI's history from kpi_values when its snapshot arrives, and
            # one pass can change many periods of a series at once (a backfill, a late
            # batch), so a snapshot must never arrive before the values it follows. Written
            # concurrently, alerts sometimes judged a value against a history without its
            # neighbours (pulse demo's alerts differed from run to run). ``known`` is only
            # updated once both succeeded, so a failure redoes both.
            await self.writer.write(
                KPI_SNAPSHOTS.stored_table(), storage.kpi_rows(diff, now), storage.KPI_COLUMNS
            )
            recent = live(diff, now.date(), self.settings.snapshot_horizon_days)
            ready = self.throttle.offer(recent, time.monotonic(), defer=defer)
            published = len(await self._publish(ready, now))
            for v in diff:
                known[v.key] = v.value
                if v.dimension != "all":
                    self._members_for(v.kpi).setdefault(
                        (str(v.grain), v.period_start), set()
                    ).add((v.dimension, v.dimension_value))
            metrics.VALUES_CHANGED.inc(len(diff))
        metrics.SNAPSHOTS_PENDING.set(len(self.throttle.pending))
        return diff, published

    async def _recompute_campaigns(self, work: _CampaignDirty) -> list[KpiValue]:
        """Campaign KPIs of the marked members (pulse_kpi.domain.campaigns), from their
        rows only; of every member for the days and months marked for all."""
        started = time.perf_counter()
        known = await self._load_known()
        flows = work.flows
        days = {d for d, _, _ in flows} | work.all_days
        months = {m for m, _, _ in work.budgets} | work.all_months
        members: frozenset[Member] | None = None
        if not (work.all_days or work.all_months):
            members = members_of((c, k) for _, c, k in flows | work.budgets)
        known_members = self._members_of(days, self.members)
        scope = campaign_scope(days, months, known_members, members)
        span = data_range(scope, self.params)
        if span is None:
            return []
        now = self.clock()  # before the facts (see _recompute)
        facts = await asyncio.to_thread(self._load_campaign_facts, span, members)
        models = frozenset(
            facts.credit_models if members is not None else {c.model for c in facts.credits}
        )
        if members is not None and work.credited and self._range_models.get(span) != models:
            # New credits may bring a model new to the range (spend and budgets cannot):
            # then every member gets its per-model KPIs, as from all members' rows. A range
            # not seen since the start counts as changed.
            members = None
            scope = campaign_scope(days, months, known_members)
            facts = await asyncio.to_thread(self._load_campaign_facts, span, None)
        if len(self._range_models) > 1000:  # ranges of old backfills: forget them
            self._range_models.clear()
        self._range_models[span] = models
        loaded = time.perf_counter()
        values = await asyncio.to_thread(
            campaign_kpis, facts, scope, now.date(), self.params, members
        )
        computed = time.perf_counter()
        diff, _ = await self._store_changes(values, known, now, defer=True)
        elapsed = time.perf_counter() - started
        metrics.RECOMPUTE_SECONDS.observe(elapsed)
        metrics.LAST_RECOMPUTE.set(time.time())
        log.info(
            "kpis_recomputed", dims=",".join(CAMPAIGN_DIMS),
            members="all" if members is None else len(members), computed=len(values),
            changed=len(diff), window=f"{span[0]}..{span[1]}", seconds=round(elapsed, 4),
            load_s=round(loaded - started, 4), compute_s=round(computed - loaded, 4),
            write_publish_s=round(time.perf_counter() - computed, 4),
        )
        return diff

    def _load_campaign_facts(
        self, span: tuple[dt.date, dt.date], members: frozenset[Member] | None
    ) -> Facts:
        """Spend, credits and budgets of ``span``: of ``members`` only when given."""
        split = None
        if members is not None:
            split = (sorted(v for d, v in members if d == "channel"),
                     sorted(v for d, v in members if d == "campaign"))
        return self.storage.load_facts(*span, CAMPAIGN_PARTS, members=split)

    def _members_for(self, kpi: str) -> dict[tuple[str, dt.date], set[tuple[str, str]]]:
        if kpi in DELIVERABILITY_KPIS:
            return self.deliverability_members
        return self.trial_members if kpi in TRIAL_KPIS else self.members

    @staticmethod
    def _account_members(
        members: dict[tuple[str, dt.date], set[tuple[str, str]]],
    ) -> frozenset[tuple[str, dt.date, str, str]]:
        """Every stored member of the account dimensions (segment …), whatever its period:
        the account breakdowns keep those of the periods they redo (domain/segments.py),
        so a member left without accounts — every account's profile arriving after its
        billing, say — drops to 0 instead of going stale."""
        return frozenset(
            (grain, start, dim, value)
            for (grain, start), pairs in members.items()
            for dim, value in pairs
            if dim in ACCOUNT_DIMS
        )

    @staticmethod
    def _members_of(
        days: set[dt.date], members: dict[tuple[str, dt.date], set[tuple[str, str]]]
    ) -> frozenset[tuple[str, dt.date, str, str]]:
        starts = {(str(g), period_of(d, g).start) for d in days for g in GRAINS}
        return frozenset(
            (grain, start, dim, value)
            for grain, start in starts
            for dim, value in members.get((grain, start), ())
        )

    async def _publish(
        self, values: Sequence[KpiValue], computed_at: dt.datetime, final: bool = False
    ) -> list[KpiSnapshot]:
        snapshots = [to_snapshot(v, computed_at, final) for v in values]
        # Totals first, and in chunks that let other coroutines run in between.
        snapshots.sort(key=lambda s: s.dimension != "all")
        for i in range(0, len(snapshots), PUBLISH_CHUNK):
            chunk = snapshots[i : i + PUBLISH_CHUNK]
            await self.bus.publish(KPI_SNAPSHOTS, chunk)
            metrics.SNAPSHOTS_PUBLISHED.labels(str(final).lower()).inc(len(chunk))
            await asyncio.sleep(0)
        return snapshots

    async def flush(self, force: bool = False) -> int:
        """Publish rate-limited snapshots whose interval has passed (all if ``force``)."""
        if force:
            due = list(self.throttle.pending.values())
            self.throttle.pending.clear()
        else:
            due = self.throttle.due(
                time.monotonic(), limit=self.settings.max_snapshots_per_flush
            )
        await self._publish(due, self.clock())
        metrics.SNAPSHOTS_PENDING.set(len(self.throttle.pending))
        return len(due)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.flush_interval_s)
            try:
                await self.flush()
            except Exception as exc:  # keep flushing; the next tick retries
                log.warning("snapshot_flush_failed", error=repr(exc))

    # ------------------------------------------------------------------ daily close
    async def close_day(self, day: dt.date) -> list[KpiSnapshot]:
        """Publish ``final=True`` snapshots of every period that ended with ``day``.

        Stock KPIs (MRR …) and budget pacing are first brought up to ``day`` so every
        closed period has its end-of-period value even without events that day.
        """
        self._dirty.mark_mrr(day, day)
        # Pacing depends on the day: refresh the closed month and the one now running.
        months = {period_of(d, Grain.MONTH).start for d in (day, day + dt.timedelta(days=1))}
        self._dirty.budget_months |= months
        # Trials whose conversion window ended with ``day`` expire now (their start day's
        # periods change though no event arrived).
        expiring = {day - dt.timedelta(days=TRIAL_CONVERSION_WINDOW_DAYS)}
        self._dirty.trial_days |= expiring
        # Churn risk of the running month compares usage per elapsed day: one more day.
        self._dirty.usage_days.add(day)
        # Tickets per account of the running periods counts accounts paying today.
        self._dirty.cx_days.add(day)
        # Account breakdowns' stocks (MRR by segment …) are carried to ``day`` too.
        await self._mark_breakdowns(budget_months=months, trial_days=expiring,
                                    segment_from=day)
        await self.refresh()
        await self.refresh_breakdowns()
        closed = [
            (g, period_of(day, g).start) for g in GRAINS
            if period_of(day, g).end == day + dt.timedelta(days=1)
        ]
        rows = await asyncio.to_thread(self.storage.kpi_values_for_periods, closed)
        values = [
            KpiValue(
                r["kpi"], Grain(r["grain"]), r["period"], r["period_start"], r["dimension"],
                r["dimension_value"], r["value"], r["unit"],
            )
            for r in rows
        ]
        snapshots = await self._publish(values, self.clock(), final=True)
        log.info("periods_closed", day=str(day), periods=len(closed), snapshots=len(snapshots))
        return snapshots

    async def _close_loop(self) -> None:
        while True:
            now = self.clock()
            midnight = dt.datetime.combine(
                now.date() + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC
            )
            due = midnight + dt.timedelta(seconds=self.settings.close_delay_s)
            await asyncio.sleep(max(0.0, (due - now).total_seconds()))
            try:
                await self.close_day(due.date() - dt.timedelta(days=1))
            except Exception as exc:
                log.error("daily_close_failed", error=repr(exc))

    # ------------------------------------------------------------------ offline recompute
    async def recompute_range(self, first: dt.date, end: dt.date) -> list[KpiValue]:
        """Recompute MRR movements and every KPI of the days ``[first, end)`` from the raw
        tables (totals and breakdowns); returns the values that changed. Stock KPIs are not
        carried beyond ``end``."""
        accounts = await asyncio.to_thread(self.storage.subscription_accounts)
        if accounts:
            await self._reclassify(accounts)
        days = {first + dt.timedelta(days=i) for i in range((end - first).days)}
        last = end - dt.timedelta(days=1)
        self.mrr_cap = last
        months = {period_of(d, Grain.MONTH).start for d in days}
        for dirty in (self._dirty, self._dirty_dims):
            dirty.flow_days |= days
            dirty.trial_days |= days
        self._dirty.budget_months |= months
        self._dirty_campaigns.all_days |= days  # channel/campaign flows and budgets
        self._dirty_campaigns.all_months |= months
        self._dirty.funnel_days |= days
        self._dirty.usage_days |= days
        self._dirty.cx_days |= days
        self._dirty.mark_mrr(first, last)
        self._dirty_dims.mark_mrr(first, last)  # breakdowns by segment, plan …
        changed_values = await self.refresh()
        changed_values += await self.refresh_breakdowns()
        return changed_values


class SilentBus(Bus):
    """A bus that publishes nothing (offline recomputation)."""

    async def publish(self, topic: Any, events: Sequence[Any]) -> None:
        return None
