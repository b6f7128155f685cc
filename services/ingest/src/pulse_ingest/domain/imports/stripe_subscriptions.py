"""Stripe Billing subscriptions export → ``subscriptions`` with account MRR.

Registered as ``stripe_subscriptions``; the column mapping is documented in the service README.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from pulse_ingest.domain.imports.base import (
    MappedRows,
    Row,
    RowProblem,
    csv_import,
    optional_datetime,
    parse_decimal,
    read_export,
)
from pulse_ingest.domain.normalize import RowError

MONTHLY_FACTOR: dict[str, Decimal] = {
    "month": Decimal(1), "year": Decimal(1) / Decimal(12), "week": Decimal(52) / Decimal(12),
    "day": Decimal(365) / Decimal(12),
}


@dataclass(order=True)
class _Change:
    at: dt.datetime
    order: int
    index: int = field(compare=False)
    subscription: str = field(compare=False)
    what: str = field(compare=False)  # trial | start | end
    mrr: Decimal = field(compare=False)
    plan: str = field(compare=False)
    currency: str = field(compare=False)


@csv_import("stripe_subscriptions", "Stripe subscriptions export", ("subscriptions",))
def map_stripe_subscriptions(text: str) -> MappedRows:
    """Stripe Billing subscriptions export → subscription events with account MRR.

    Customer ID → account_id; MRR of a subscription = Amount × Quantity normalised to a
    month by Interval (year ÷ 12, week × 52/12); Plan (else Product) → plan; Currency.
    Timeline per subscription: Trial Start → trial_started; paid start at Trial End (if
    it had a trial and did not end during it) else Start (UTC)/Created (UTC); status
    canceled → end at Ended At (UTC) else Canceled At (UTC). Per customer the changes are
    replayed in time order so each event carries the *account's* MRR after it:
    0 → >0 is subscription_started (reactivated if it paid before), increases are
    upgrades, decreases to >0 downgrades, to 0 cancellations. Mid-life plan changes are
    not in this export (use the subscriptions endpoint or webhooks for those).
    """
    rows = read_export(text, [("Customer ID", "Customer"), ("Status",)])
    out = MappedRows(received=len(rows))
    changes: dict[str, list[_Change]] = {}
    for index, cells in enumerate(rows):
        try:
            customer, row_changes = _stripe_changes(Row(cells), index)
        except RowProblem as problem:
            out.errors.append(RowError(index, problem.column, problem.reason))
            continue
        changes.setdefault(customer, []).extend(row_changes)
    for customer, timeline in sorted(changes.items()):
        account_mrr = Decimal(0)
        paid_before = False
        for change in sorted(timeline):
            before = account_mrr
            if change.what == "trial":
                if before > 0 or paid_before:
                    continue
                event_type = "trial_started"
            elif change.what == "start":
                account_mrr = before + change.mrr
                if before > 0:
                    event_type = "subscription_upgraded"
                else:
                    event_type = "subscription_reactivated" if paid_before else "subscription_started"
                paid_before = True
            else:
                account_mrr = max(Decimal(0), before - change.mrr)
                event_type = "subscription_canceled" if account_mrr == 0 else "subscription_downgraded"
            out.add("subscriptions", change.index, {
                "event_id": f"stripe:{change.subscription}:{change.what}",
                "occurred_at": change.at.isoformat(),
                "account_id": customer,
                "event_type": event_type,
                "mrr": str(account_mrr),
                "currency": change.currency,
                "plan": change.plan,
            })
    return out


_STRIPE_START = ("Start (UTC)", "Start Date (UTC)", "Created (UTC)", "Created")


def _stripe_changes(row: Row, index: int) -> tuple[str, list[_Change]]:
    """One subscription row → (customer, its MRR changes)."""
    customer = row.require("Customer ID", "Customer")
    sub_id = row.get("id", "Subscription ID") or f"row{index}"
    status = row.require("Status").lower()
    interval = (row.get("Interval") or "month").lower()
    if interval not in MONTHLY_FACTOR:
        raise RowProblem("Interval", f"unknown interval {interval!r}")
    count = parse_decimal(*row.cell("Interval Count"), Decimal(1)) or Decimal(1)
    quantity = parse_decimal(*row.cell("Quantity"), Decimal(1))
    amount = parse_decimal(*row.required("Amount"))
    mrr = (amount * quantity * MONTHLY_FACTOR[interval] / count).quantize(Decimal("0.01"))
    plan = row.get("Plan", "Plan Name", "Price", "Product")[:256]
    currency = row.get("Currency") or "USD"
    trial_start = optional_datetime(row, "Trial Start (UTC)", "Trial Start")
    trial_end = optional_datetime(row, "Trial End (UTC)", "Trial End")
    start = optional_datetime(row, *_STRIPE_START)
    ended = optional_datetime(row, "Ended At (UTC)", "Ended At") or optional_datetime(
        row, "Canceled At (UTC)", "Canceled At"
    )
    if start is None and trial_start is None:
        raise RowProblem(row.cell(*_STRIPE_START)[1], "required value missing")
    changes: list[_Change] = []
    paid_start: dt.datetime | None = None
    if trial_start is not None:
        changes.append(_Change(trial_start, 0, index, sub_id, "trial", Decimal(0), plan, currency))
        trial_converted = trial_end is not None and (ended is None or ended > trial_end)
        if status != "trialing" and trial_converted:
            paid_start = trial_end
    elif status != "trialing":
        paid_start = start
    if paid_start is not None and status not in ("incomplete", "incomplete_expired"):
        changes.append(_Change(paid_start, 1, index, sub_id, "start", mrr, plan, currency))
        if status == "canceled":
            changes.append(
                _Change(ended or paid_start, 2, index, sub_id, "end", mrr, plan, currency)
            )
    return customer, changes
