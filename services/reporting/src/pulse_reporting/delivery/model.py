"""Delivery targets, subscriptions and outcomes; masking of recipients (pure)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import urlsplit

from pulse_shared.access import Role, parse_role, scope

#: Report files a subscriber may get attached to its e-mail (the HTML body and its
#: charts always come; CSV is a folder of tables, not one attachment).
ATTACHMENT_FORMATS: tuple[str, ...] = ("pdf", "html", "md", "json")
DEFAULT_ATTACHMENTS: tuple[str, ...] = ("pdf",)

# A pragmatic address check (the SMTP server has the last word): local@domain.tld.
_ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                      r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")


class DeliveryError(ValueError):
    """A delivery request that cannot be done (bad address, role without reports, …)."""


class Channel(StrEnum):
    EMAIL = "email"
    WEBHOOK = "webhook"


class Status(StrEnum):
    SENT = "sent"
    FAILED = "failed"


def is_email(text: str) -> bool:
    return bool(_ADDRESS.match(text.strip()))


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_webhook_url(url: str) -> str:
    """``url`` if it may receive reports: https, or http to this machine only (a local
    relay or a test) — a report is business data and a webhook URL carries its secret."""
    parts = urlsplit(url.strip())
    if parts.scheme == "https" and parts.hostname:
        return url.strip()
    if parts.scheme == "http" and parts.hostname and _loopback(parts.hostname):
        return url.strip()
    raise DeliveryError(f"webhook {mask(url)!r}: only https URLs (http to localhost only)")


@dataclass(frozen=True)
class Target:
    channel: Channel
    address: str  # an e-mail address or a webhook URL

    @classmethod
    def parse(cls, text: str) -> Target:
        """``--to`` text: an address with ``@`` is an e-mail, an URL is a webhook."""
        value = text.strip()
        if value.lower().startswith(("https://", "http://")):
            return cls(Channel.WEBHOOK, check_webhook_url(value))
        if "@" in value:
            if not is_email(value):
                raise DeliveryError(f"{value!r} is not an e-mail address")
            return cls(Channel.EMAIL, value)
        raise DeliveryError(
            f"{value!r}: give an e-mail address or an https webhook URL")

    @property
    def masked(self) -> str:
        return mask(self.address)


def mask(address: str) -> str:
    """What the delivery log and listings show of a recipient: an e-mail address as its
    first character and domain (``j***@example.com``), a webhook URL as its scheme and host
    (its path is the webhook's secret)."""
    value = address.strip()
    if value.lower().startswith(("https://", "http://")):
        parts = urlsplit(value)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname or ''}{port}/…"
    local, at, domain = value.rpartition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"


def check_role(text: str | Role) -> Role:
    """A role that may receive reports: one that sees some KPI (``platform`` sees no
    business data, so it has no report to receive)."""
    try:
        role = text if isinstance(text, Role) else parse_role(text)
    except ValueError as exc:
        raise DeliveryError(str(exc)) from None
    if not scope(role).kpi_families:
        raise DeliveryError(f"role {role.value!r} sees no business data: it gets no reports")
    return role


def check_formats(formats: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    out: list[str] = []
    for item in formats:
        for part in item.split(","):
            fmt = part.strip().lower()
            if not fmt:
                continue
            if fmt not in ATTACHMENT_FORMATS:
                raise DeliveryError(
                    f"attachment {fmt!r}: choose from {', '.join(ATTACHMENT_FORMATS)}")
            if fmt not in out:
                out.append(fmt)
    return tuple(out)


class SubscriberKind(StrEnum):
    USER = "user"
    ROLE = "role"


@dataclass(frozen=True)
class Subscription:
    subscriber_kind: SubscriberKind
    subscriber: str  # user name or role name
    report_kind: str
    formats: tuple[str, ...] = DEFAULT_ATTACHMENTS
    email: str = ""
    webhook_url: str = ""
    active: bool = True
    created_at: dt.datetime | None = None
    created_by: str = ""
    #: Salted hash of the e-mail address it names (:attr:`email`, else a user name that is
    #: an address): what ``pulse privacy erase --contact`` finds it by. Set by the storage.
    contact_id: str = ""
    #: Random, given by the storage when first subscribed (not derived from the address:
    #: the id is shown and logged, and a hash of an address is reversed by guessing).
    subscription_id: str = ""

    @property
    def personal_address(self) -> str:
        """The e-mail address this subscription names, if any (hashed into contact_id)."""
        if self.email:
            return self.email
        if self.subscriber_kind is SubscriberKind.USER and is_email(self.subscriber):
            return self.subscriber
        return ""

    @property
    def place(self) -> tuple[str, str, str, str, str]:
        """Who × report kind × where: subscribing again to the same place updates the
        attachments of that subscription instead of adding a second one."""
        return (self.subscriber_kind.value, self.subscriber.lower(), self.report_kind,
                self.email.strip().lower(), self.webhook_url.strip())


@dataclass(frozen=True)
class Recipient:
    """One place one report goes, with the role whose view it gets."""

    target: Target
    role: Role
    subscription_id: str = ""
    formats: tuple[str, ...] = DEFAULT_ATTACHMENTS
    #: Salted hash of an e-mail recipient when known (logged, so erasure finds the row).
    contact_id: str = ""


@dataclass
class Outcome:
    recipient: Recipient
    status: Status
    attempts: int
    error: str = ""
    delivery_id: str = ""
    at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    @property
    def sent(self) -> bool:
        return self.status is Status.SENT
