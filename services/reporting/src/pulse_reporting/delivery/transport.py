"""Sending: SMTP (stdlib ``smtplib`` in a worker thread) and Slack-compatible webhooks
(httpx), each try wrapped in bounded exponential retries (tenacity).

A failure is *transient* (retried: a network error, SMTP 4xx, HTTP 429/5xx) or
*permanent* (not retried: SMTP 5xx such as an unknown mailbox or refused login, HTTP
4xx). Error texts never carry a webhook's URL (its path is a secret) or an e-mail address
(:func:`pulse_shared.privacy.redact_pii`): they go to the delivery log.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from pulse_reporting.delivery.model import mask
from pulse_reporting.settings import ReportingSettings
from pulse_shared.logging import get_logger
from pulse_shared.privacy import redact_pii

log = get_logger(__name__)


class SendError(Exception):
    """A try that failed; ``transient`` ones are tried again."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(redact_pii(message))
        self.transient = transient


class TransientError(SendError):
    def __init__(self, message: str) -> None:
        super().__init__(message, transient=True)


class PermanentError(SendError):
    def __init__(self, message: str) -> None:
        super().__init__(message, transient=False)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    backoff_s: float = 2.0  # wait before the 2nd try; doubles each try
    max_backoff_s: float = 60.0

    @classmethod
    def of(cls, settings: ReportingSettings) -> RetryPolicy:
        return cls(settings.delivery_attempts, settings.delivery_backoff_s,
                   settings.delivery_max_backoff_s)


async def with_retries(
    send: Callable[[], Awaitable[None]], policy: RetryPolicy
) -> tuple[int, str]:
    """Run ``send`` until it succeeds, fails permanently or runs out of tries:
    (tries made, error text — empty when it succeeded)."""
    made = 0
    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.attempts),
        wait=wait_exponential(multiplier=policy.backoff_s, max=policy.max_backoff_s),
        retry=retry_if_exception_type(TransientError),
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                made = attempt.retry_state.attempt_number
                await send()
    except SendError as exc:
        return made, str(exc)
    return made, ""


# -- SMTP -----------------------------------------------------------------------------------


def _smtp_error(exc: Exception) -> SendError:
    if isinstance(exc, ssl.SSLCertVerificationError):  # retrying will not fix the certificate
        return PermanentError(f"TLS: the SMTP server's certificate: {exc.verify_message}")
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        detail = "; ".join(f"{code} {text.decode(errors='replace') if isinstance(text, bytes) else text}"
                           for code, text in exc.recipients.values())
        if codes and all(400 <= c < 500 for c in codes):
            return TransientError(f"recipient deferred: {detail}")
        return PermanentError(f"recipient refused: {detail}")
    if isinstance(exc, smtplib.SMTPResponseException):  # sender refused, auth failed, …
        text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) \
            else str(exc.smtp_error)
        error = f"SMTP {exc.smtp_code} {text}"
        return TransientError(error) if 400 <= exc.smtp_code < 500 else PermanentError(error)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return PermanentError(f"SMTP server: {exc}")
    return TransientError(f"{type(exc).__name__}: {exc}")  # disconnects, timeouts, DNS


class SmtpSender:
    """Sends one message per call over a new connection (reports are few)."""

    def __init__(self, settings: ReportingSettings) -> None:
        self.settings = settings

    @property
    def configured(self) -> bool:
        return bool(self.settings.smtp_host)

    def _tls(self) -> ssl.SSLContext:
        """Verifying TLS (hostname and chain), against the configured CA bundle if any."""
        ca_file = self.settings.smtp_ca_file
        return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)

    def _send_sync(self, message: EmailMessage) -> None:
        s = self.settings
        client: smtplib.SMTP
        if s.smtp_security == "ssl":
            client = smtplib.SMTP_SSL(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_s,
                                      context=self._tls())
        else:
            client = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_s)
        with client:
            if s.smtp_security == "starttls":
                client.starttls(context=self._tls())
            if s.smtp_user:
                client.login(s.smtp_user, s.smtp_password.get_secret_value())
            client.send_message(message)

    async def send(self, message: EmailMessage) -> None:
        if not self.configured:
            raise PermanentError("e-mail delivery is not configured (PULSE_REPORTING_SMTP_HOST)")
        try:
            await asyncio.to_thread(self._send_sync, message)
        except (OSError, smtplib.SMTPException) as exc:
            raise _smtp_error(exc) from exc


# -- webhook --------------------------------------------------------------------------------


class WebhookPoster:
    def __init__(self, settings: ReportingSettings) -> None:
        self.timeout = settings.webhook_timeout_s

    async def post(self, url: str, payload: dict[str, Any]) -> None:
        try:
            async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as client:
                response = await client.post(url, json=payload)
        except httpx.HTTPError as exc:
            # the exception text may quote the URL, whose path is the webhook's secret
            raise TransientError(
                f"{type(exc).__name__}: {str(exc).replace(url, mask(url))}") from exc
        status = response.status_code
        if 200 <= status < 300:
            return
        reason = f"HTTP {status} {response.reason_phrase}".strip()
        if status == 429 or status >= 500:
            raise TransientError(reason)
        raise PermanentError(reason)
