"""``report_subscriptions`` and ``report_deliveries`` (migration 0080): every SQL statement
of delivery. Values reach ClickHouse as server-side parameters; reads use ``FINAL``.

Both tables are read and written through the service's *writer* store. E-mail addresses
and webhook URLs are stored encrypted (:mod:`.secrets`), an address also as its salted hash
in ``contact_id`` — the column ``pulse privacy erase --contact`` deletes rows by, in both
tables. Inserts skip erased subjects (:func:`pulse_shared.erasure.erasure_filter`), and
subscribing an erased address is refused."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace

from pulse_reporting.delivery.model import (
    DeliveryError,
    Outcome,
    SubscriberKind,
    Subscription,
)
from pulse_reporting.delivery.secrets import SecretUnreadable, SubscriptionVault, pii_salt
from pulse_shared.erasure import erasure_filter
from pulse_shared.logging import get_logger
from pulse_shared.store import Row, Store

log = get_logger(__name__)

SUBSCRIPTIONS_TABLE = "report_subscriptions"
DELIVERIES_TABLE = "report_deliveries"
SUBSCRIPTION_COLUMNS = (
    "subscription_id", "subscriber_kind", "subscriber", "report_kind", "formats", "email",
    "webhook_url", "contact_id", "active", "created_at", "created_by", "updated_at",
)
DELIVERY_COLUMNS = (
    "delivery_id", "report_id", "report_kind", "period", "subscription_id", "channel",
    "recipient", "contact_id", "role", "status", "attempts", "error", "at",
)
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    SUBSCRIPTIONS_TABLE: SUBSCRIPTION_COLUMNS,
    DELIVERIES_TABLE: DELIVERY_COLUMNS,
}
Clock = Callable[[], dt.datetime]

_SUBSCRIPTIONS_SQL = """
SELECT subscription_id, subscriber_kind, subscriber, report_kind, formats, email,
       webhook_url, contact_id, active, created_at, created_by
FROM report_subscriptions FINAL
WHERE active = 1
  AND (report_kind = {kind:String} OR {kind:String} = '')
ORDER BY report_kind, subscriber_kind, subscriber, subscription_id
"""

_ALL_SUBSCRIPTION_ROWS_SQL = """
SELECT subscription_id, subscriber_kind, subscriber, report_kind, formats, email,
       webhook_url, contact_id, active, created_at, created_by
FROM report_subscriptions FINAL
WHERE email != '' OR webhook_url != ''
ORDER BY subscription_id
"""

_DELIVERIES_SQL = """
SELECT delivery_id, report_id, report_kind, period, subscription_id, channel, recipient,
       role, status, attempts, error, at
FROM report_deliveries FINAL
WHERE (report_id = {report_id:String} OR {report_id:String} = '')
ORDER BY at DESC, delivery_id
LIMIT {limit:UInt32}
"""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _ms(value: dt.datetime) -> dt.datetime:
    """To the stored precision (DateTime64(3)), so a returned subscription equals its row."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _subscription(row: Row, vault: SubscriptionVault) -> Subscription:
    created = row["created_at"]
    if isinstance(created, dt.datetime) and created.tzinfo is None:
        created = created.replace(tzinfo=dt.UTC)
    return Subscription(
        subscriber_kind=SubscriberKind(str(row["subscriber_kind"])),
        subscriber=str(row["subscriber"]), report_kind=str(row["report_kind"]),
        formats=tuple(str(f) for f in row["formats"] or ()),
        email=vault.open(str(row["email"])), webhook_url=vault.open(str(row["webhook_url"])),
        active=bool(row["active"]), created_at=created, created_by=str(row["created_by"]),
        contact_id=str(row["contact_id"]), subscription_id=str(row["subscription_id"]),
    )


class DeliveryStorage:
    """``vault`` seals and opens the secrets (default: the key of the settings, the
    ``pulse`` CLI's PII salt; each looked up only when a row needs it)."""

    def __init__(
        self, store: Store, clock: Clock = _now, vault: SubscriptionVault | None = None,
    ) -> None:
        from pulse_reporting.settings import ReportingSettings

        self.store = store
        self.clock = clock
        self.vault = vault or SubscriptionVault.of(ReportingSettings(), pii_salt)

    def _subscription_row(self, sub: Subscription, active: bool, now: dt.datetime) -> Row:
        # An ended subscription keeps no address or webhook (only its id and who it was).
        return {
            "subscription_id": sub.subscription_id,
            "subscriber_kind": sub.subscriber_kind.value,
            "subscriber": sub.subscriber,
            "report_kind": sub.report_kind,
            "formats": list(sub.formats),
            "email": self.vault.seal(sub.email) if active else "",
            "webhook_url": self.vault.seal(sub.webhook_url) if active else "",
            "contact_id": sub.contact_id,
            "active": 1 if active else 0,
            "created_at": sub.created_at or now,
            "created_by": sub.created_by,
            "updated_at": now,
        }

    def subscribe(self, sub: Subscription) -> Subscription:
        """Add ``sub``, or update the attachments of the subscription to the same place
        (which keeps its id, and when and by whom it was first made). Refuses an address
        that was erased (``pulse privacy erase``); raises ``ConfigurationError`` without a
        delivery key (server) or PII salt when ``sub`` has secrets or an address."""
        address = sub.personal_address
        contact_id = self.vault.contact_id(address) if address else ""
        if contact_id and contact_id in erasure_filter(self.store).current().contacts:
            raise DeliveryError("this address was erased (pulse privacy erase): it is not "
                                "subscribed again")
        existing = next((s for s in self.subscriptions() if s.place == sub.place), None)
        now = self.clock()
        kept = replace(
            sub, active=True, contact_id=contact_id,
            subscription_id=existing.subscription_id if existing else uuid.uuid4().hex[:16],
            created_at=existing.created_at if existing else _ms(sub.created_at or now),
            created_by=existing.created_by if existing else sub.created_by,
        )
        row = self._subscription_row(kept, True, now)  # sealed before anything is written
        self.store.insert(SUBSCRIPTIONS_TABLE, [row], SUBSCRIPTION_COLUMNS)
        return kept

    def unsubscribe(self, subs: Sequence[Subscription]) -> None:
        if not subs:
            return
        now = self.clock()
        self.store.insert(SUBSCRIPTIONS_TABLE,
                          [self._subscription_row(s, False, now) for s in subs],
                          SUBSCRIPTION_COLUMNS)

    def subscriptions(self, report_kind: str = "") -> list[Subscription]:
        """The active subscriptions (of one kind). One whose secrets no configured key
        decrypts is left out and logged (put the removed key back to deliver it)."""
        found = []
        for row in self.store.query(_SUBSCRIPTIONS_SQL, {"kind": report_kind}):
            try:
                found.append(_subscription(row, self.vault))
            except SecretUnreadable as exc:
                log.error("subscription_unreadable", subscription=row["subscription_id"],
                          error=str(exc))
        return found

    def get(self, subscription_id: str) -> Subscription | None:
        return next((s for s in self.subscriptions()
                     if s.subscription_id == subscription_id), None)

    def reencrypt(self) -> int:
        """Seal every stored address and webhook again with the current (first) key, so an
        older key can be removed; returns the rows rewritten. Safe to interrupt and repeat:
        each row is rewritten whole, and every configured key still decrypts the rest."""
        now = self.clock()
        rows = []
        for row in self.store.query(_ALL_SUBSCRIPTION_ROWS_SQL):
            rows.append({
                **{c: row[c] for c in SUBSCRIPTION_COLUMNS if c in row},
                "email": self.vault.reseal(str(row["email"])),
                "webhook_url": self.vault.reseal(str(row["webhook_url"])),
                "updated_at": now,
            })
        if rows:
            self.store.insert(SUBSCRIPTIONS_TABLE, rows, SUBSCRIPTION_COLUMNS)
        return len(rows)

    def log(
        self, report_id: str, report_kind: str, period: str, outcomes: Sequence[Outcome],
    ) -> None:
        """One row per outcome of delivering one report (the outcomes get their ids)."""
        if not outcomes:
            return
        rows = []
        for outcome in outcomes:
            outcome.delivery_id = outcome.delivery_id or uuid.uuid4().hex
            rows.append({
                "delivery_id": outcome.delivery_id,
                "report_id": report_id,
                "report_kind": report_kind,
                "period": period,
                "subscription_id": outcome.recipient.subscription_id,
                "channel": outcome.recipient.target.channel.value,
                "recipient": outcome.recipient.target.masked,
                "contact_id": outcome.recipient.contact_id,
                "role": outcome.recipient.role.value,
                "status": outcome.status.value,
                "attempts": min(outcome.attempts, 255),
                "error": outcome.error[:1000],
                "at": outcome.at,
            })
        kept = erasure_filter(self.store).keep(rows, DELIVERY_COLUMNS)
        if kept:
            self.store.insert(DELIVERIES_TABLE, kept, DELIVERY_COLUMNS)

    def deliveries(self, report_id: str = "", limit: int = 200) -> list[Row]:
        return self.store.query(_DELIVERIES_SQL, {"report_id": report_id, "limit": limit})
