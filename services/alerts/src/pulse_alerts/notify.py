"""Notification outputs besides Kafka: Slack-compatible webhook and SMTP e-mail.

Alerts of one evaluation are grouped (rule ``group_by``) into one message per group.
Both outputs retry with exponential backoff; a failure after the last attempt is logged
and counted, never blocks the pipeline (the Kafka topic is the system of record).
"""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import Sequence
from email.message import EmailMessage
from typing import Any, Protocol

import httpx

from pulse_alerts.metrics import NOTIFICATION_FAILURES, NOTIFICATIONS
from pulse_alerts.settings import AlertsSettings
from pulse_shared.events import Alert, AlertState
from pulse_shared.logging import get_logger

log = get_logger(__name__)

SEVERITY_COLOURS = {"critical": "#d00000", "warning": "#f2a900", "info": "#439fe0"}
RESOLVED_COLOUR = "#2eb67d"


class Notifier(Protocol):
    name: str

    async def send(self, group: str, alerts: Sequence[Alert]) -> bool:
        """Deliver one group of alerts; True when delivered."""

    async def close(self) -> None:
        """Release resources."""


def title_of(alert: Alert) -> str:
    icon = "RESOLVED" if alert.state is AlertState.RESOLVED else alert.severity.value.upper()
    return f"[{icon}] {alert.rule}"


def text_of(alert: Alert) -> str:
    summary = alert.annotations.get("summary") or (
        f"{alert.kpi} = {alert.value if alert.value is not None else 'n/a'} "
        f"(threshold {alert.threshold if alert.threshold is not None else 'n/a'})"
    )
    scope = ", ".join(
        f"{k}={v}" for k, v in sorted(alert.labels.items()) if k not in ("alertname", "severity")
    )
    lines = [summary, *([scope] if scope else []), *filter(None, [data_line(alert)])]
    return "\n".join(lines)


def data_line(alert: Alert) -> str:
    """Which data the figures are from: the KPI period and when it was computed (not when
    the alert was processed), e.g. ``period 2026-11 (data as of 2026-11-30T23:00:00+00:00)``."""
    period = alert.annotations.get("period", "")
    data_time = alert.annotations.get("data_time", "")
    if not period and not data_time:
        return ""
    text = f"period {period}" if period else "data"
    return f"{text} (data as of {data_time})" if data_time else text


def slack_payload(group: str, alerts: Sequence[Alert]) -> dict[str, Any]:
    """Slack incoming-webhook JSON (``text`` + ``attachments``) plus the raw alerts."""
    firing = sum(1 for a in alerts if a.state is AlertState.FIRING)
    resolved = len(alerts) - firing
    parts = []
    if firing:
        parts.append(f"{firing} firing")
    if resolved:
        parts.append(f"{resolved} resolved")
    return {
        "text": f"Pulse alerts ({', '.join(parts)}): {group}",
        "attachments": [
            {
                "color": RESOLVED_COLOUR
                if a.state is AlertState.RESOLVED
                else SEVERITY_COLOURS.get(a.severity.value, "#cccccc"),
                "title": title_of(a),
                "text": text_of(a),
                "fields": [
                    {"title": "value", "value": str(a.value), "short": True},
                    {"title": "threshold", "value": str(a.threshold), "short": True},
                ],
                "footer": f"fingerprint {a.fingerprint}",
                "ts": int(a.sent_at.timestamp()),
            }
            for a in alerts
        ],
        "group": group,
        "alerts": [a.model_dump(mode="json") for a in alerts],
    }


class WebhookNotifier:
    name = "webhook"

    def __init__(
        self,
        url: str,
        *,
        attempts: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 10.0,
        timeout_s: float = 5.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.client = client or httpx.AsyncClient(timeout=timeout_s)

    async def send(self, group: str, alerts: Sequence[Alert]) -> bool:
        payload = slack_payload(group, alerts)
        delay = self.backoff_s
        for attempt in range(1, self.attempts + 1):
            retry_after: float | None = None
            try:
                response = await self.client.post(self.url, json=payload)
                if response.status_code < 300:
                    for a in alerts:
                        NOTIFICATIONS.labels("webhook", a.state.value).inc()
                    return True
                retryable = response.status_code == 429 or response.status_code >= 500
                error = f"HTTP {response.status_code}"
                if response.status_code == 429:
                    retry_after = _retry_after(response.headers.get("retry-after"))
            except httpx.HTTPError as exc:
                retryable, error = True, repr(exc)
            log.warning("webhook_failed", attempt=attempt, error=error, group=group)
            if not retryable or attempt == self.attempts:
                break
            await asyncio.sleep(min(retry_after or delay, self.max_backoff_s))
            delay = min(delay * 2, self.max_backoff_s)
        NOTIFICATION_FAILURES.labels("webhook").inc()
        log.error("webhook_gave_up", group=group, alerts=len(alerts))
        return False

    async def close(self) -> None:
        await self.client.aclose()


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def email_message(sender: str, recipients: Sequence[str], group: str, alerts: Sequence[Alert]) -> EmailMessage:
    msg = EmailMessage()
    firing = [a for a in alerts if a.state is AlertState.FIRING]
    worst = "RESOLVED" if not firing else max(
        (a.severity.value for a in firing), key=["info", "warning", "critical"].index
    ).upper()
    msg["Subject"] = f"[Pulse {worst}] {len(alerts)} alert(s): {group}"
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    body = "\n\n".join(f"{title_of(a)}\n{text_of(a)}\nsince {a.starts_at.isoformat()}" for a in alerts)
    msg.set_content(body)
    return msg


class EmailNotifier:
    name = "email"

    def __init__(self, settings: AlertsSettings) -> None:
        self.settings = settings

    def _send_sync(self, message: EmailMessage) -> None:
        s = self.settings
        assert s.smtp_host is not None
        with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_s) as smtp:
            if s.smtp_starttls:
                smtp.starttls()
            if s.smtp_user:
                smtp.login(s.smtp_user, s.smtp_password.get_secret_value())
            smtp.send_message(message)

    async def send(self, group: str, alerts: Sequence[Alert]) -> bool:
        s = self.settings
        message = email_message(s.email_from, s.email_to, group, alerts)
        delay = 0.5
        for attempt in range(1, s.smtp_attempts + 1):
            try:
                await asyncio.to_thread(self._send_sync, message)
                for a in alerts:
                    NOTIFICATIONS.labels("email", a.state.value).inc()
                return True
            except (OSError, smtplib.SMTPException) as exc:
                log.warning("email_failed", attempt=attempt, error=repr(exc), group=group)
                if attempt < s.smtp_attempts:
                    await asyncio.sleep(delay)
                    delay *= 2
        NOTIFICATION_FAILURES.labels("email").inc()
        return False

    async def close(self) -> None:
        return None


def notifiers_from(settings: AlertsSettings) -> list[Notifier]:
    out: list[Notifier] = []
    if settings.webhook_url:
        out.append(
            WebhookNotifier(
                settings.webhook_url,
                attempts=settings.webhook_attempts,
                backoff_s=settings.webhook_backoff_s,
                max_backoff_s=settings.webhook_max_backoff_s,
                timeout_s=settings.webhook_timeout_s,
            )
        )
    if settings.smtp_host and settings.email_to:
        out.append(EmailNotifier(settings))
    return out
