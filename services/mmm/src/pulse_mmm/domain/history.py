"""Is there enough history to fit a mix model? One clear line when there is not."""

from __future__ import annotations

from pulse_mmm.domain.model import MmmDataset, ModelGrain

#: Fewest periods with spend and outcome (holdout included) a fit accepts, by grain. Half a
#: year of weeks leaves ~22 weeks to learn an intercept, trend, 8-week carry-over and a
#: saturation curve per channel once the last 4 are held out; fewer and the posterior is the
#: prior. Daily models need about two months (60 days, 14 held out) for the same reason.
MIN_PERIODS: dict[ModelGrain, int] = {ModelGrain.WEEK: 26, ModelGrain.DAY: 60}

_GRAIN_NAMES = {ModelGrain.WEEK: ("weekly", "weeks"), ModelGrain.DAY: ("daily", "days")}


class InsufficientHistory(ValueError):
    """The dataset is too short (or has no spend) to fit; the message is one line."""


def check_history(dataset: MmmDataset, holdout_periods: int) -> None:
    """Raise :class:`InsufficientHistory` unless the dataset can be fitted and still keep
    ``holdout_periods`` periods out of the fit.

    "Periods with spend and outcome" are counted from the first period where any channel
    spent or any outcome was recorded to the last one (gaps inside that span are real zeros;
    leading and trailing empty periods are not history).
    """
    grain = ModelGrain(dataset.grain)
    adjective, unit = _GRAIN_NAMES[grain]
    minimum = max(MIN_PERIODS[grain], holdout_periods + MIN_PERIODS[grain] // 2)
    count = len(dataset.period_starts)
    active = [
        i for i in range(count)
        if dataset.outcome[i] != 0 or any(dataset.spend[c][i] != 0 for c in dataset.channels)
    ]
    span = "" if not active else (
        f" ({dataset.period_starts[active[0]].isoformat()}"
        f"..{dataset.period_starts[active[-1]].isoformat()})"
    )
    have = 0 if not active else active[-1] - active[0] + 1
    if have < minimum:
        raise InsufficientHistory(
            f"need at least {minimum} {unit} with spend and outcome for a {adjective} model; "
            f"have {have}{span}"
        )
    spending = [c for c in dataset.channels if any(v > 0 for v in dataset.spend[c])]
    if not spending:
        raise InsufficientHistory(
            f"no channel has spend in {count} {unit}{span}; a mix model needs spend by channel"
        )
    if not any(v != 0 for v in dataset.outcome):
        raise InsufficientHistory(
            f"the target {dataset.target!r} is 0 in all {count} {unit}{span}; nothing to explain"
        )
