"""Outputs: Slack-compatible webhook (retries/backoff) on a local HTTP server, SMTP e-mail
on a local aiosmtpd server, grouping of simultaneous alerts."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from pulse_alerts.notify import EmailNotifier, WebhookNotifier, slack_payload
from pulse_alerts.settings import AlertsSettings
from pulse_shared.events import Alert, AlertState, Severity

NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


def alert(state: AlertState = AlertState.FIRING, channel: str = "paid_search") -> Alert:
    return Alert(
        alert_id=f"id-{channel}-{state.value}", fingerprint=f"fp-{channel}", rule="spend_high",
        state=state, severity=Severity.WARNING, kpi="spend",
        labels={"alertname": "spend_high", "channel": channel},
        annotations={"summary": f"{channel} spent 1,500"}, value=1500.0, threshold=1000.0,
        starts_at=NOW, sent_at=NOW,
    )


@dataclass
class HttpSink:
    """A local HTTP server answering with scripted status codes, recording bodies."""

    statuses: list[int] = field(default_factory=list)
    bodies: list[dict[str, object]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.decode().split("\r\n"):
            if line.lower().startswith("content-length:"):
                length = int(line.split(":", 1)[1])
        body = await reader.readexactly(length)
        self.bodies.append(json.loads(body))
        self.times.append(asyncio.get_running_loop().time())
        status = self.statuses.pop(0) if self.statuses else 200
        writer.write(f"HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                     .encode())
        await writer.drain()
        writer.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


@pytest.fixture
async def http_sink() -> AsyncIterator[HttpSink]:
    sink = HttpSink()
    server = await asyncio.start_server(sink.handle, "127.0.0.1", 0)
    sink.port = server.sockets[0].getsockname()[1]
    try:
        yield sink
    finally:
        server.close()
        await server.wait_closed()


def test_slack_payload_shape() -> None:
    payload = slack_payload("alertname=spend_high", [alert(), alert(AlertState.RESOLVED, "email")])
    assert payload["text"] == "Pulse alerts (1 firing, 1 resolved): alertname=spend_high"
    attachments = payload["attachments"]
    assert isinstance(attachments, list) and len(attachments) == 2
    assert attachments[0]["title"] == "[WARNING] spend_high"
    assert attachments[1]["title"] == "[RESOLVED] spend_high"
    assert attachments[0]["text"].startswith("paid_search spent 1,500")
    assert payload["alerts"][0]["fingerprint"] == "fp-paid_search"  # type: ignore[index]


async def test_webhook_retries_with_backoff_then_succeeds(http_sink: HttpSink) -> None:
    http_sink.statuses = [503, 500, 200]
    notifier = WebhookNotifier(http_sink.url, attempts=5, backoff_s=0.05, max_backoff_s=1)
    try:
        assert await notifier.send("g", [alert()])
    finally:
        await notifier.close()
    assert len(http_sink.bodies) == 3
    assert all(b == http_sink.bodies[0] for b in http_sink.bodies)  # same message re-sent
    gaps = [b - a for a, b in zip(http_sink.times, http_sink.times[1:], strict=False)]
    assert gaps[0] >= 0.045 and gaps[1] >= 0.095  # exponential backoff


async def test_webhook_gives_up_and_does_not_retry_client_errors(http_sink: HttpSink) -> None:
    http_sink.statuses = [500, 500, 500]
    notifier = WebhookNotifier(http_sink.url, attempts=3, backoff_s=0.01)
    assert not await notifier.send("g", [alert()])
    assert len(http_sink.bodies) == 3
    http_sink.statuses = [400]
    assert not await notifier.send("g", [alert()])
    assert len(http_sink.bodies) == 4
    await notifier.close()


async def test_webhook_unreachable_is_retried_and_reported() -> None:
    notifier = WebhookNotifier("http://127.0.0.1:9/nothing", attempts=2, backoff_s=0.01)
    assert not await notifier.send("g", [alert()])
    await notifier.close()


async def test_email_via_local_smtp_server() -> None:
    from aiosmtpd.controller import Controller

    received: list[tuple[str, list[str], str]] = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            received.append(
                (envelope.mail_from, list(envelope.rcpt_tos), envelope.content.decode())
            )
            return "250 OK"

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    stop = controller.stop

    try:
        settings = AlertsSettings(
            smtp_host="127.0.0.1", smtp_port=port, email_from="pulse@example.com",
            email_to=["cmo@example.com", "ops@example.com"],
        )
        notifier = EmailNotifier(settings)
        ok = await notifier.send("alertname=spend_high", [alert(), alert(channel="email")])
    finally:
        stop()
    assert ok
    (mail_from, rcpts, content) = received[0]
    assert len(received) == 1  # one message for the group
    assert mail_from == "pulse@example.com"
    assert rcpts == ["cmo@example.com", "ops@example.com"]
    assert "Subject: [Pulse WARNING] 2 alert(s): alertname=spend_high" in content
    assert "paid_search spent 1,500" in content and "email spent 1,500" in content


async def test_email_failure_is_reported_not_raised() -> None:
    settings = AlertsSettings(smtp_host="127.0.0.1", smtp_port=9, email_to=["a@b.c"],
                              smtp_attempts=1, smtp_timeout_s=1)
    assert not await EmailNotifier(settings).send("g", [alert()])


def test_message_names_the_data_period_and_time_not_only_the_processing_time() -> None:
    data_time = dt.datetime(2026, 11, 30, 23, 0, tzinfo=dt.UTC)
    fired = alert().model_copy(update={"annotations": {
        "summary": "paid_search spent 1,500", "period": "2026-11",
        "data_time": data_time.isoformat()}})
    text = slack_payload("g", [fired])["attachments"][0]["text"]
    assert text.splitlines()[-1] == f"period 2026-11 (data as of {data_time.isoformat()})"
    assert "data as of" not in slack_payload("g", [alert()])["attachments"][0]["text"]
