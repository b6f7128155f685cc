"""Delivering one report: who gets it (subscriptions → recipients, each with the role
whose view it gets), what each role may see (:func:`pulse_reporting.domain.scoping.scoped_report`),
sending with retries, and the delivery log.

Access: every recipient gets the report *as its role sees it* — KPI tiles, charts, alerts
and attachments are all made from the scoped report, never from the files on disk unless
the role sees everything. A user subscription follows the user: its current role decides
the view, and a revoked or expired user gets nothing. A role subscription goes to the
role's active users whose user name is an e-mail address (Pulse users have no separate
e-mail field), plus the subscription's own address and webhook if it has them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter

from pulse_reporting.delivery.charts import PngChart, png_charts
from pulse_reporting.delivery.compose import (
    Attachment,
    attachment_name,
    email_message,
    report_link,
    webhook_payload,
)
from pulse_reporting.delivery.model import (
    Channel,
    Outcome,
    Recipient,
    Status,
    SubscriberKind,
    Subscription,
    Target,
    check_role,
    is_email,
)
from pulse_reporting.delivery.secrets import SubscriptionVault
from pulse_reporting.delivery.storage import DeliveryStorage
from pulse_reporting.delivery.transport import (
    RetryPolicy,
    SendError,
    SmtpSender,
    WebhookPoster,
    with_retries,
)
from pulse_reporting.domain.model import Report
from pulse_reporting.domain.scoping import scoped_report
from pulse_reporting.settings import ReportingSettings
from pulse_shared.access import Permission, Role, scope
from pulse_shared.logging import get_logger

if TYPE_CHECKING:
    from pulse_reporting.generate import ReportResult
    from pulse_shared.auth.users import UserDirectory
    from pulse_shared.store import Store

log = get_logger(__name__)

DELIVERIES = Counter(
    "pulse_reporting_deliveries_total", "Report deliveries by outcome (after retries).",
    ["channel", "status"],
)
Clock = Callable[[], dt.datetime]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def view_for(report: Report, role: Role) -> Report:
    """``report`` as ``role`` may see it."""
    return scoped_report(report, role)


def resolve(
    subscriptions: Sequence[Subscription], users: UserDirectory | None, now: dt.datetime,
) -> list[Recipient]:
    """Where each subscription's report goes, deduplicated by (channel, address, role)
    with the union of their attachments."""
    found: dict[tuple[Channel, str, Role], Recipient] = {}

    def add(target: Target, role: Role, sub: Subscription) -> None:
        key = (target.channel, target.address.lower(), role)
        # the subscription's salted hash is of its own address: logged with that one only
        contact = (sub.contact_id if target.channel is Channel.EMAIL
                   and target.address.lower() == sub.personal_address.lower() else "")
        if key in found:
            merged = tuple(dict.fromkeys([*found[key].formats, *sub.formats]))
            found[key] = replace(found[key], formats=merged,
                                 contact_id=found[key].contact_id or contact)
        else:
            found[key] = Recipient(target, role, sub.subscription_id, sub.formats, contact)

    for sub in subscriptions:
        addresses: list[str] = [sub.email] if sub.email else []
        if sub.subscriber_kind is SubscriberKind.USER:
            user = users.get(sub.subscriber) if users is not None else None
            if user is None or not user.active(now):
                log.warning("subscriber_inactive", subscription=sub.subscription_id)
                continue
            role = user.role
            if not sub.email and is_email(user.name):
                addresses.append(user.name)
        else:
            role = Role(sub.subscriber)
            if users is not None:
                addresses += [u.name for u in users.list()
                              if u.role is role and u.active(now) and is_email(u.name)]
        try:
            check_role(role)
        except ValueError:
            log.warning("subscriber_without_reports", subscription=sub.subscription_id,
                        role=role.value)
            continue
        for address in addresses:
            add(Target(Channel.EMAIL, address), role, sub)
        if sub.webhook_url:
            add(Target(Channel.WEBHOOK, sub.webhook_url), role, sub)
    return list(found.values())


@dataclass
class _RoleView:
    report: Report
    charts: list[PngChart]
    link: str | None
    attachments: dict[str, Attachment] = field(default_factory=dict)


def _render_attachment(view: Report, fmt: str, existing: Path | None) -> Attachment:
    name = attachment_name(view, fmt)
    if existing is not None and existing.is_file():
        return Attachment(name, existing.read_bytes())
    if fmt == "pdf":
        from pulse_reporting.render.pdf import write_pdf

        with tempfile.TemporaryDirectory(prefix="pulse-delivery-") as tmp:
            path = write_pdf(view, Path(tmp) / name)
            return Attachment(name, path.read_bytes())
    if fmt == "html":
        from pulse_reporting.render.html import render_html

        return Attachment(name, render_html(view).encode())
    if fmt == "md":
        from pulse_reporting.render.markdown import render_markdown

        return Attachment(name, render_markdown(view).encode())
    from pulse_reporting.render.exports import render_json

    return Attachment(name, render_json(view).encode())


class ReportDelivery:
    """Sends one report to its recipients. ``storage`` (the writer store) records every
    outcome; without it nothing is logged (a read-only store)."""

    def __init__(
        self,
        settings: ReportingSettings,
        storage: DeliveryStorage | None = None,
        *,
        smtp: SmtpSender | None = None,
        webhooks: WebhookPoster | None = None,
        clock: Clock = _now,
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.smtp = smtp or SmtpSender(settings)
        self.webhooks = webhooks or WebhookPoster(settings)
        self.policy = RetryPolicy.of(settings)
        self.clock = clock

    def _view(self, report: Report, role: Role, paths: Mapping[str, Path],
              formats: set[str] | None) -> _RoleView:
        """The role's report, link and — when it has e-mail recipients (``formats`` not
        None) — its PNG charts and attachments."""
        full = scope(role).all_kpis
        view = report if full else view_for(report, role)
        link = report_link(self.settings.dashboard_url, view, paths,
                           scope(role).can(Permission.VIEW_REPORTS))
        built = _RoleView(view, png_charts(view) if formats is not None else [], link)
        for fmt in sorted(formats or ()):
            # files on disk are the whole report: reused only for a role that sees it all
            built.attachments[fmt] = _render_attachment(view, fmt, paths.get(fmt) if full else None)
        return built

    async def _send(self, recipient: Recipient, built: _RoleView) -> Outcome:
        target = recipient.target
        if target.channel is Channel.EMAIL:
            message = email_message(
                built.report, sender=self.settings.email_from, to=target.address,
                charts=built.charts,
                attachments=[built.attachments[f] for f in recipient.formats
                             if f in built.attachments],
                link=built.link,
                footer=(f"subscription {recipient.subscription_id}; stop it with "
                        f"pulse report unsubscribe {recipient.subscription_id}")
                if recipient.subscription_id else "",
            )

            async def send() -> None:
                await self.smtp.send(message)
        else:
            payload = webhook_payload(built.report, built.link)

            async def send() -> None:
                await self.webhooks.post(target.address, payload)

        attempts, error = await with_retries(send, self.policy)
        status = Status.FAILED if error else Status.SENT
        DELIVERIES.labels(target.channel.value, status.value).inc()
        (log.warning if error else log.info)(
            "report_delivery", channel=target.channel.value, recipient=target.masked,
            role=recipient.role.value, status=status.value, attempts=attempts, error=error,
        )
        return Outcome(recipient, status, attempts, error, at=self.clock())

    async def deliver(
        self, report: Report, recipients: Sequence[Recipient],
        paths: Mapping[str, Path] | None = None,
    ) -> list[Outcome]:
        """Send ``report`` to every recipient (concurrently; one failing recipient never
        stops the others) and log the outcomes."""
        if not recipients:
            return []
        paths = dict(paths or {})
        views: dict[Role, _RoleView] = {}
        outcomes: list[Outcome] = []
        for role in dict.fromkeys(r.role for r in recipients):
            mail = [r for r in recipients
                    if r.role is role and r.target.channel is Channel.EMAIL]
            formats = {f for r in mail for f in r.formats} if mail else None
            try:
                views[role] = await asyncio.to_thread(self._view, report, role, paths, formats)
            except Exception as exc:  # a rendering bug must not hide the other roles' mail
                log.exception("report_delivery_render_failed", role=role.value)
                error = f"could not render the {role.value} view: {type(exc).__name__}"
                for r in recipients:
                    if r.role is role:
                        DELIVERIES.labels(r.target.channel.value, Status.FAILED.value).inc()
                        outcomes.append(Outcome(r, Status.FAILED, 0, error, at=self.clock()))
        outcomes += await asyncio.gather(
            *(self._send(r, views[r.role]) for r in recipients if r.role in views))
        await self._log(report, outcomes)
        return outcomes

    async def _log(self, report: Report, outcomes: Sequence[Outcome]) -> None:
        if self.storage is None or not outcomes:
            return
        try:
            m = report.meta
            await asyncio.to_thread(self.storage.log, m.report_id, m.kind, m.period, outcomes)
        except Exception:
            log.exception("report_delivery_log_failed", report_id=report.meta.report_id)


async def deliver_to_subscribers(
    settings: ReportingSettings, writer: Store, reader: Store, clock: Clock,
    result: ReportResult,
) -> list[Outcome]:
    """After a scheduled report: send it to the subscribers of its kind (subscriptions
    through ``writer``, users through ``reader``). Never raises (a delivery problem must not
    stop the schedule); every outcome is in the delivery log."""
    if not settings.delivery_enabled:
        return []
    report = result.report
    try:
        from pulse_shared.auth.users import UserDirectory

        # reads only: the delivery key opens the secrets; no PII salt needed
        storage = (None if writer.readonly
                   else DeliveryStorage(writer, vault=SubscriptionVault.of(settings)))
        subscriptions = (await asyncio.to_thread(storage.subscriptions, report.meta.kind)
                         if storage is not None else [])
        if not subscriptions:
            return []
        users = UserDirectory(reader)
        recipients = await asyncio.to_thread(
            resolve, subscriptions, users, clock())
        return await ReportDelivery(settings, storage, clock=clock).deliver(
            report, recipients, result.paths)
    except Exception:
        log.exception("report_delivery_failed", report_id=report.meta.report_id)
        return []


def outcome_row(outcome: Outcome, full_address: bool = False) -> dict[str, Any]:
    """An outcome as the CLI prints it: ``full_address`` shows an e-mail address in full
    (the operator typed it); a webhook URL is always masked (its path is a secret)."""
    target = outcome.recipient.target
    shown = full_address and target.channel is Channel.EMAIL
    return {
        "channel": target.channel.value,
        "recipient": target.address if shown else target.masked,
        "role": outcome.recipient.role.value,
        "status": outcome.status.value,
        "attempts": outcome.attempts,
        "error": outcome.error,
    }


__all__ = [
    "DELIVERIES", "ReportDelivery", "SendError", "deliver_to_subscribers", "outcome_row",
    "resolve", "view_for",
]
