"""Hand-made marketing mix model runs (row types of pulse_mmm.domain.model) for the
storage, CLI and report tests: no sampler, every number chosen to be checked by hand."""

from __future__ import annotations

import datetime as dt

from pulse_mmm.domain.model import (
    BASELINE,
    AllocationRow,
    ChannelResultRow,
    ContributionRow,
    MmmRunResult,
    MmmRunRow,
    PosteriorDrawRow,
    ResponseCurveRow,
    RunStatus,
)

CHANNELS = ("paid_search", "paid_social")


def run_row(run_id: str, target: str, *, version: int = 1, status: RunStatus = RunStatus.PUBLISHED,
            finished_at: dt.datetime, reason: str = "") -> MmmRunRow:
    return MmmRunRow(
        run_id=run_id, version=version, target=target, grain="week",
        date_from=dt.date(2016, 1, 4), date_to=dt.date(2016, 3, 13), periods=10,
        channels=list(CHANNELS), status=str(status), reason=reason,
        library="pymc-marketing (test)", parameters='{"draws": 4}', max_rhat=1.01,
        min_ess=812.5, divergences=0, holdout_periods=2, holdout_mape=0.125,
        r_squared=0.875, started_at=finished_at - dt.timedelta(seconds=90),
        finished_at=finished_at,
    )


def published_run(run_id: str, target: str, finished_at: dt.datetime,
                  version: int = 1) -> MmmRunResult:
    """10 weekly periods; paid_search spends i × 10 in period i, paid_social 50 flat.
    Draws: 4 per channel with identical parameters, so every interval is a point."""
    weeks = [dt.date(2016, 1, 4) + dt.timedelta(days=7 * i) for i in range(10)]
    contributions = tuple(
        ContributionRow(run_id, channel, week, spend, spend * 2.0, spend * 1.5, spend * 2.5)
        for i, week in enumerate(weeks)
        for channel, spend in (("paid_search", 10.0 * i), ("paid_social", 50.0))
    ) + tuple(ContributionRow(run_id, BASELINE, week, 0.0, 1000.0, 900.0, 1100.0)
              for week in weeks)
    channels = (
        ChannelResultRow(run_id, "paid_search", 450.0, 900.0, 675.0, 1125.0, 2.0, 1.5, 2.5,
                         0.75, 1.25),
        ChannelResultRow(run_id, "paid_social", 500.0, 250.0, 100.0, 400.0, 0.5, 0.2, 0.8,
                         None, None),
    )
    curves = tuple(
        ResponseCurveRow(run_id, channel, spend, spend * factor, spend * factor * 0.8,
                         spend * factor * 1.2)
        for channel, factor in (("paid_search", 2.0), ("paid_social", 0.5))
        for spend in (0.0, 50.0, 100.0)
    )
    draws = tuple(
        PosteriorDrawRow(run_id, channel, d, 0.5, lam, beta, 100.0, 1000.0)
        for channel, lam, beta in (("paid_search", 2.0, 0.4), ("paid_social", 1.0, 0.1))
        for d in range(4)
    )
    allocations = (
        AllocationRow(run_id, 1000.0, 8, "paid_search", 500.0, 700.0, 900.0, 1200.0, 1100.0,
                      1300.0),
        AllocationRow(run_id, 1000.0, 8, "paid_social", 500.0, 300.0, 250.0, 150.0, 100.0,
                      200.0),
    )
    return MmmRunResult(run_row(run_id, target, version=version, finished_at=finished_at),
                        channels, contributions, curves, draws, allocations)
