"""The attribution component: consumes touchpoints and conversions, keeps versioned
credits (rule models on arrival, data-driven models on a schedule) and publishes them."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

from pulse_attribution import metrics
from pulse_attribution.domain.conversions import touch_of
from pulse_attribution.domain.credits import versioned_credits
from pulse_attribution.domain.datadriven import (
    DataDrivenParameters,
    ModelRun,
    assemble_journeys,
    run_id,
    run_model,
    weighted_touch_credits,
)
from pulse_attribution.domain.journeys import (
    affected_conversions,
    dependent_conversions,
    milestone_times,
)
from pulse_attribution.domain.model import (
    ALL_MODELS,
    Conversion,
    Milestone,
    Touch,
)
from pulse_attribution.domain.rules import all_rule_credits, journey_window
from pulse_attribution.keyed_lock import KeyedLock
from pulse_attribution.settings import GROUP_ID, SERVICE, AttributionSettings
from pulse_attribution.storage import (
    CHANNEL_RESULT_COLUMNS,
    CHANNEL_RESULTS_TABLE,
    CREDIT_COLUMNS,
    RUN_COLUMNS,
    RUNS_TABLE,
    TOUCHPOINTS_CANONICAL,
    AttributionStorage,
    credit_row,
    pipeline_conversions,
    pipeline_processor,
    subscription_conversions,
    subscription_processor,
    touchpoint_processor,
)
from pulse_shared.attribution_models import DATA_DRIVEN_MODELS
from pulse_shared.bus import Bus
from pulse_shared.canonical import distinct_field_values, field_values
from pulse_shared.consumers import Consumer, build_router
from pulse_shared.events import AttributionCredit, PipelineEvent, Subscription, Touchpoint
from pulse_shared.logging import get_logger
from pulse_shared.store import Store
from pulse_shared.streaming import BatchConsumer
from pulse_shared.topics import CREDITS, PIPELINE, SUBSCRIPTIONS, TOUCHPOINTS
from pulse_shared.writer import RowWriter

log = get_logger(__name__)
#: Reads of one credit computation run side by side (4 per batch; batches of the three
#: consumers and the data-driven run may overlap).
_READS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="attribution-read")


class AttributionComponent:
    """Consumes touchpoints and conversions; writes and publishes versioned credits."""

    name = SERVICE

    def __init__(self, store: Store, bus: Bus, settings: AttributionSettings) -> None:
        self.store = store
        self.bus = bus
        self.settings = settings
        self.storage = AttributionStorage(store)
        self.writer = RowWriter(store, SERVICE)
        max_records = settings.max_records
        # processor → rows written by the sink → follow-up (re-attribute), then commit.
        self.touchpoints: BatchConsumer[Touchpoint] = Consumer(
            TOUCHPOINTS, touchpoint_processor, self.after_touchpoints,
            canonical=self.consume_canonical_touchpoints, max_records=max_records,
        ).strategy(SERVICE, bus, self.writer)
        # Conversions wait for their batch's top-up before their credits are computed:
        # a short one (touchpoints, many and not waited for, keep the common one).
        conversion_top_up = settings.conversion_flush_after_s
        self.pipeline: BatchConsumer[PipelineEvent] = Consumer(
            PIPELINE, pipeline_processor, self.after_pipeline, max_records=max_records,
            flush_after_s=conversion_top_up,
        ).strategy(SERVICE, bus, self.writer)
        self.subscriptions: BatchConsumer[Subscription] = Consumer(
            SUBSCRIPTIONS, subscription_processor, self.after_subscriptions,
            max_records=max_records, flush_after_s=conversion_top_up,
        ).strategy(SERVICE, bus, self.writer)
        self.consumers: list[BatchConsumer[Any]] = [
            self.touchpoints, self.pipeline, self.subscriptions
        ]
        # Credit versions count per conversion × model (latest + 1, read then written), so
        # the computations of one conversion take turns, keyed by conversion id; those of
        # other conversions (and accounts) run meanwhile.
        self.credit_keys = KeyedLock()
        self._run_lock = asyncio.Lock()
        self._schedule: asyncio.Task[None] | None = None
        self.router = build_router(self, GROUP_ID)

    async def start(self) -> None:
        interval = self.settings.recompute_interval_s
        if interval > 0 and self._schedule is None:
            self._schedule = asyncio.create_task(self._recompute_forever(interval))
        log.info("attribution_started", recompute_interval_s=interval)

    async def stop(self) -> None:
        if self._schedule is not None:
            self._schedule.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._schedule
            self._schedule = None
        log.info("attribution_stopped")

    async def _recompute_forever(self, interval: float) -> None:
        await asyncio.sleep(min(interval, self.settings.recompute_initial_delay_s))
        while True:
            try:
                await self.recompute_data_driven()
            except Exception as exc:  # keep the schedule alive; the next run retries
                log.error("recompute_failed", error=repr(exc))
            await asyncio.sleep(interval)

    # -- consumers ---------------------------------------------------------------------

    async def after_touchpoints(self, events: list[Touchpoint]) -> None:
        """Touches are stored (processor + sink): re-attribute conversions they precede."""
        if not events:
            return
        existing = await asyncio.to_thread(
            self.storage.conversions_of, sorted({e.account_id for e in events})
        )
        await self._late_touches(existing, events)

    async def consume_canonical_touchpoints(self, values: list[bytes]) -> bool:
        """Fast path: canonical touchpoint JSON straight to ClickHouse, no decoding.

        Only touches of accounts that already have conversions (late touches, few) are
        decoded, to re-attribute those conversions.
        """
        lines = TOUCHPOINTS_CANONICAL.frame(values)
        if lines is None:
            return False
        if not await self.writer.write_canonical(TOUCHPOINTS_CANONICAL, lines, len(values)):
            return False
        # Look conversions up only once the touches are stored: the conversion consumer
        # stores a conversion before reading touches, so one of the two always sees the
        # other (a concurrent lookup could miss a conversion whose read missed these).
        existing = await asyncio.to_thread(
            self.storage.conversions_of, distinct_field_values(lines, "account_id")
        )
        if existing:
            converted = {c.account_id for c in existing}
            accounts = field_values(lines, "account_id")  # one per record, in order
            touched = [
                Touchpoint.model_validate_json(value)
                for value, account in zip(values, accounts, strict=True)
                if account in converted
            ]
            await self._late_touches(existing, touched)
        return True

    async def _late_touches(
        self, existing: Sequence[Conversion], events: Sequence[Touchpoint]
    ) -> None:
        by_account: dict[str, list[Touch]] = defaultdict(list)
        for event in events:
            by_account[event.account_id].append(touch_of(event))
        affected = affected_conversions(existing, by_account, self.settings.lookback_for)
        if affected:
            await self.attribute(affected, reason="late_touch")

    async def after_pipeline(self, events: list[PipelineEvent]) -> None:
        await self.attribute_conversions(pipeline_conversions(events))

    async def after_subscriptions(self, events: list[Subscription]) -> None:
        await self.attribute_conversions(subscription_conversions(events))

    async def attribute_conversions(self, conversions: list[Conversion]) -> None:
        """Conversions are stored (processor + sink): compute and publish their credits."""
        if not conversions:
            return
        for conversion in conversions:
            metrics.CONVERSIONS.labels(str(conversion.milestone)).inc()
        await self.attribute(conversions, reason="conversion")
        # An out-of-order milestone (a lead arriving after its opportunity) moves the
        # W-shaped / full-path roles of the account's later, higher milestones.
        known = await asyncio.to_thread(
            self.storage.conversions_of, sorted({c.account_id for c in conversions})
        )
        later = dependent_conversions(known, conversions)
        if later:
            await self.attribute(later, reason="late_milestone")

    # -- rule-based credits --------------------------------------------------------------

    async def attribute(
        self, conversions: Sequence[Conversion], reason: str
    ) -> list[AttributionCredit]:
        """(Re)compute rule-model credits of the conversions; write and publish changes.

        Each conversion is computed while its key is held (versions: see ``KeyedLock``).
        The conversions whose keys are free are computed together, as one batch (one
        read of each kind, one insert, one publish); those being computed elsewhere (a
        late touch, a data-driven run) follow once released, in a further pass. A batch is
        not split per account on purpose: one insert per account would make a ClickHouse
        part per account and multiply the reads. Concurrency comes from the callers (the
        three consumers and the data-driven run), which wait for each other only over a
        conversion they share.
        """
        pending = {c.conversion_id: c for c in conversions}
        credits: list[AttributionCredit] = []
        while pending:
            waiting_since = time.perf_counter()
            async with self.credit_keys.hold_free(pending.keys()) as taken:
                metrics.CREDIT_KEY_WAIT_SECONDS.observe(time.perf_counter() - waiting_since)
                batch = [c for conversion_id, c in pending.items() if conversion_id in taken]
                for conversion_id in taken:
                    del pending[conversion_id]
                started = time.perf_counter()
                computed = await asyncio.to_thread(self._compute_rule_credits, batch)
                # Write, then publish: a consumer of the topic (KPI) reads the table when
                # the event arrives. Unchanged credits are re-sent under their current
                # version, so a crash between the write and the publish is repaired by the
                # redelivery.
                await self.writer.write(
                    CREDITS.stored_table(), [credit_row(c) for c in computed], CREDIT_COLUMNS
                )
                await self.bus.publish(CREDITS, computed)
                metrics.RECOMPUTE_SECONDS.observe(time.perf_counter() - started)
            credits.extend(computed)
        versions = {(c.conversion_id, c.model, c.version) for c in credits}
        metrics.CREDIT_VERSIONS.labels(reason).inc(len(versions))
        for model, count in Counter(c.model for c in credits).items():
            metrics.CREDITS_WRITTEN.labels(model).inc(count)
        log.info(
            "credits_computed",
            reason=reason,
            conversions=len(conversions),
            versions=len(versions),
            rows=len(credits),
        )
        return credits

    def _compute_rule_credits(self, conversions: Sequence[Conversion]) -> list[AttributionCredit]:
        unique = list({c.conversion_id: c for c in conversions}.values())
        accounts = sorted({c.account_id for c in unique})
        start = min(
            c.converted_at - dt.timedelta(days=self.settings.lookback_for(c.milestone))
            for c in unique
        )
        end = max(c.converted_at for c in unique)
        # The four reads are independent: together, a conversion waits for the slowest
        # one instead of their sum (the credit's latency at load).
        touches_read = _READS.submit(self.storage.touches, accounts, start, end)
        conversions_read = _READS.submit(self.storage.conversions_of, accounts)
        latest_read = _READS.submit(
            self.storage.latest_credits, [c.conversion_id for c in unique], ALL_MODELS
        )
        weights_read = _READS.submit(self.storage.latest_channel_weights)
        touches = touches_read.result()
        account_conversions: dict[str, list[Conversion]] = defaultdict(list)
        for known in conversions_read.result():
            account_conversions[known.account_id].append(known)
        latest = latest_read.result()
        run_weights = weights_read.result()
        events: list[AttributionCredit] = []
        for conversion in unique:
            journey = journey_window(
                touches.get(conversion.account_id, ()),
                conversion.converted_at,
                self.settings.lookback_for(conversion.milestone),
            )
            metrics.JOURNEY_TOUCHES.observe(len(journey))
            model_credits = all_rule_credits(
                journey,
                conversion,
                half_life_days=self.settings.time_decay_half_life_days,
                milestone_times=milestone_times(
                    conversion, account_conversions[conversion.account_id]
                ),
            )
            # Data-driven models: the latest run's channel weights applied to this journey
            # (the next scheduled run refreshes the weights themselves).
            for model in DATA_DRIVEN_MODELS:
                weights = run_weights.get((model, conversion.milestone))
                if weights:
                    model_credits[model] = weighted_touch_credits(journey, weights)
            previous = {
                model: latest[(conversion.conversion_id, model)]
                for model in ALL_MODELS
                if (conversion.conversion_id, model) in latest
            }
            events.extend(
                versioned_credits(conversion, model_credits, previous, include_unchanged=True)
            )
        return events


    # -- data-driven models --------------------------------------------------------------

    async def recompute_data_driven(
        self,
        models: Sequence[str] = DATA_DRIVEN_MODELS,
        milestones: Sequence[Milestone] | None = None,
        *,
        order: int | None = None,
        publish: bool = True,
    ) -> list[ModelRun]:
        """Recompute Markov/Shapley from all journeys; store runs and changed credits."""
        milestones = [Milestone(m) for m in (milestones or self.settings.recompute_milestones)]
        async with self._run_lock:
            started_at = dt.datetime.now(dt.UTC)
            started = time.perf_counter()
            try:
                runs, rows = await asyncio.to_thread(
                    self._compute_runs, list(models), milestones, order, started_at
                )
            except Exception:
                for model in models:
                    metrics.MODEL_RUNS.labels(model, "error").inc()
                raise
            credits = await self._write_run_credits(runs, publish=publish)
            # The run rows go last: they make the new weights visible to the consumers.
            await self.writer.write(
                CHANNEL_RESULTS_TABLE, rows["channels"], CHANNEL_RESULT_COLUMNS
            )
            await self.writer.write(RUNS_TABLE, rows["runs"], RUN_COLUMNS)
        elapsed = time.perf_counter() - started
        for run in runs:
            metrics.MODEL_RUNS.labels(run.model, "ok").inc()
            metrics.MODEL_RUN_SECONDS.labels(run.model).observe(elapsed / max(len(runs), 1))
            metrics.LAST_MODEL_RUN.labels(run.model).set(time.time())
        for model, count in Counter(c.model for c in credits).items():
            metrics.CREDITS_WRITTEN.labels(model).inc(count)
        metrics.CREDIT_VERSIONS.labels("model_run").inc(
            len({(c.conversion_id, c.model, c.version) for c in credits})
        )
        log.info(
            "data_driven_recomputed",
            runs=[(r.model, str(r.milestone), r.journeys, r.conversions) for r in runs],
            credit_rows=len(credits),
            seconds=round(elapsed, 3),
        )
        return runs

    def _compute_runs(
        self,
        models: list[str],
        milestones: list[Milestone],
        order: int | None,
        started_at: dt.datetime,
    ) -> tuple[list[ModelRun], dict[str, list[dict[str, Any]]]]:
        touches = self.storage.all_touches()
        conversions = self.storage.all_conversions()
        runs: list[ModelRun] = []
        rows: dict[str, list[dict[str, Any]]] = {"runs": [], "channels": []}
        for milestone in milestones:
            lookback = self.settings.lookback_for(milestone)
            journeys = assemble_journeys(touches, conversions, milestone, lookback)
            if not any(j for _, j in journeys.converting):
                continue
            params = DataDrivenParameters(
                order=order or self.settings.markov_order,
                lookback_days=lookback,
                value_function=self.settings.shapley_value_function,
                max_exact=self.settings.shapley_exact_max_channels,
                samples=self.settings.shapley_samples,
            )
            for model in models:
                run = run_model(model, milestone, journeys, params)
                runs.append(run)
                version = self.storage.last_run_version(model, milestone) + 1
                rid = run_id(model, milestone, started_at, version)
                finished_at = dt.datetime.now(dt.UTC)
                rows["runs"].append(
                    {
                        "run_id": rid,
                        "model": model,
                        "milestone": str(milestone),
                        "version": version,
                        "parameters": json.dumps(run.parameters, sort_keys=True),
                        "started_at": started_at,
                        "finished_at": finished_at,
                        "journeys": run.journeys,
                        "conversions": run.conversions,
                        "channels": len(run.credit.channels),
                        "approximate": int(run.approximate),
                        "total_conversion_value": Decimal(
                            repr(round(run.total_conversion_value, 4))
                        ),
                    }
                )
                for i, channel in enumerate(run.credit.channels):
                    total = float(run.credit.conversions.sum())
                    rows["channels"].append(
                        {
                            "run_id": rid,
                            "model": model,
                            "milestone": str(milestone),
                            "channel": channel,
                            "removal_effect": run.removal_effects[i]
                            if run.removal_effects is not None
                            else None,
                            "shapley_value": run.shapley_values[i]
                            if run.shapley_values is not None
                            else None,
                            "share": float(run.credit.conversions[i]) / total if total else 0.0,
                            "total_conversions": float(run.credit.conversions[i]),
                            "total_conversion_value": float(run.credit.values[i]),
                            "computed_at": finished_at,
                        }
                    )
        return runs, rows

    async def _write_run_credits(
        self, runs: Sequence[ModelRun], *, publish: bool
    ) -> list[AttributionCredit]:
        """Version, write and publish the runs' per-conversion credits.

        Rule-model computations also version ``markov`` / ``shapley`` credits (the latest
        run's weights applied to new conversions and late touches), so the run takes the
        same per-conversion keys rather than a lock of its own. Keys, not one exclusive
        lock over all credits: a run versions every converting journey, and conversions
        of other accounts (new ones above all) keep being credited while it writes; the
        conversions being computed elsewhere at that moment are versioned in a later pass,
        on top of what that computation wrote.
        """
        pending = {c.conversion_id for run in runs for c, _ in run.conversion_credits}
        credits: list[AttributionCredit] = []
        while pending:
            async with self.credit_keys.hold_free(pending) as taken:
                pending -= taken
                versioned = await asyncio.to_thread(self._version_run_credits, runs, taken)
                # Written before published (consumers read the table on arrival).
                await self.writer.write(
                    CREDITS.stored_table(), [credit_row(c) for c in versioned], CREDIT_COLUMNS
                )
                if publish:
                    await self.bus.publish(CREDITS, versioned)
            credits.extend(versioned)
        return credits

    def _version_run_credits(
        self, runs: Sequence[ModelRun], conversion_ids: frozenset[str]
    ) -> list[AttributionCredit]:
        """Versioned credits of the runs' conversions among ``conversion_ids`` (held)."""
        credits: list[AttributionCredit] = []
        for run in runs:
            mine = [(c, cs) for c, cs in run.conversion_credits
                    if c.conversion_id in conversion_ids]
            latest = self.storage.latest_credits([c.conversion_id for c, _ in mine], [run.model])
            for conversion, touch_credits in mine:
                previous = latest.get((conversion.conversion_id, run.model))
                credits.extend(
                    versioned_credits(
                        conversion,
                        {run.model: touch_credits},
                        {run.model: previous} if previous else {},
                    )
                )
        return credits
