"""Customer experience arithmetic shared by the KPI service and reporting (pure).

* NPS in points: % promoters (9–10) − % detractors (0–6) of the answers, −100…100;
  passives (7–8) count in the base only.
* CSAT: share of the CSAT answers that are 4 or 5 (on 1–5).
* NPS of churned vs retained accounts (:func:`nps_by_churn`): each account's *latest* NPS
  answer before it churned (churned: its MRR went to 0 and stayed there up to ``as_of``)
  or, for accounts paying at ``as_of`` (retained), its latest answer before ``as_of``.
  Accounts that never paid, or that answered only after churning, are not counted.

Scores are compared exactly (integers); results are rounded to 9 decimals like every KPI.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

PROMOTER_MIN = 9  # 9–10
DETRACTOR_MAX = 6  # 0–6
CSAT_SATISFIED_MIN = 4  # 4–5


def nps_points(scores: Iterable[int]) -> float | None:
    """NPS of ``scores`` (0–10 each) in points; None without any."""
    counts = nps_counts(scores)
    return counts.nps


def csat_share(scores: Iterable[int]) -> float | None:
    """Share of ``scores`` (1–5 each) that are 4 or 5; None without any."""
    values = list(scores)
    if not values:
        return None
    return round(sum(1 for s in values if s >= CSAT_SATISFIED_MIN) / len(values), 9)


@dataclass(frozen=True, slots=True)
class NpsCounts:
    promoters: int = 0
    passives: int = 0
    detractors: int = 0

    @property
    def responses(self) -> int:
        return self.promoters + self.passives + self.detractors

    @property
    def nps(self) -> float | None:
        if not self.responses:
            return None
        return round(100 * (self.promoters - self.detractors) / self.responses, 9)


def nps_counts(scores: Iterable[int]) -> NpsCounts:
    promoters = passives = detractors = 0
    for score in scores:
        if score >= PROMOTER_MIN:
            promoters += 1
        elif score <= DETRACTOR_MAX:
            detractors += 1
        else:
            passives += 1
    return NpsCounts(promoters, passives, detractors)


@dataclass(frozen=True, slots=True)
class NpsAnswer:
    """One NPS answer of one account."""

    account_id: str
    score: int
    responded_at: dt.datetime


@dataclass(frozen=True, slots=True)
class MrrPoint:
    """An account's MRR from ``at`` on (the MRR after one billing change)."""

    account_id: str
    at: dt.datetime
    mrr: Decimal


@dataclass(frozen=True, slots=True)
class AccountNps:
    """The answer that represents one account: churned or retained, its score and when."""

    account_id: str
    churned: bool
    score: int
    responded_at: dt.datetime
    churned_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class ChurnNps:
    """NPS of the churned and of the retained accounts (their representative answers)."""

    churned: NpsCounts
    retained: NpsCounts
    accounts: tuple[AccountNps, ...]


def nps_by_churn(
    answers: Iterable[NpsAnswer], mrr: Iterable[MrrPoint], as_of: dt.datetime,
    churned_since: dt.datetime | None = None,
) -> ChurnNps:
    """Split the accounts into churned and retained as of ``as_of`` (changes and answers
    strictly before it count) and take each one's latest NPS answer before its churn
    (churned) or before ``as_of`` (retained). ``churned_since``: only accounts whose churn
    happened at or after it count as churned (a report's window); retained accounts are
    those paying at ``as_of`` whatever it is."""
    history: dict[str, list[MrrPoint]] = {}
    for point in mrr:
        if point.at < as_of:
            history.setdefault(point.account_id, []).append(point)
    by_account: dict[str, list[NpsAnswer]] = {}
    for answer in answers:
        if answer.responded_at < as_of:
            by_account.setdefault(answer.account_id, []).append(answer)
    picked: list[AccountNps] = []
    for account, points in sorted(history.items()):
        points.sort(key=lambda p: p.at)
        if not any(p.mrr > 0 for p in points):
            continue  # never paid: neither churned nor retained
        last = points[-1]
        if last.mrr > 0:
            churned_at, before = None, as_of
        else:
            # Churn: the first change to 0 after the last paying state.
            paying = max(i for i, p in enumerate(points) if p.mrr > 0)
            churned_at = points[paying + 1].at
            if churned_since is not None and churned_at < churned_since:
                continue
            before = churned_at
        earlier = [a for a in by_account.get(account, ()) if a.responded_at < before]
        if not earlier:
            continue
        latest = max(earlier, key=lambda a: (a.responded_at, a.score))
        picked.append(AccountNps(account, churned_at is not None, latest.score,
                                 latest.responded_at, churned_at))
    return ChurnNps(
        churned=nps_counts(a.score for a in picked if a.churned),
        retained=nps_counts(a.score for a in picked if not a.churned),
        accounts=tuple(picked),
    )


def median(values: Sequence[float]) -> float | None:
    """Median of ``values`` rounded to 9 decimals; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return round(ordered[mid], 9)
    return round((ordered[mid - 1] + ordered[mid]) / 2, 9)
