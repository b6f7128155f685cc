"""Reports that reach people: e-mail to a local SMTP server (HTML with inline PNG charts,
the PDF attached), Slack-compatible webhooks on a local HTTP server, retries and the
delivery log, what a narrowed role receives, subscriptions through the CLI, one-off
``pulse report send`` and delivery after a scheduled report — on the embedded store.
Subscriptions' addresses and webhooks encrypted at rest (key rotation, refusals without a
key), erasure of an address, and no read-only role granted the delivery tables."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import json
import re
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))

from reporting_fixtures import alert as alert_row
from reporting_fixtures import insert_alerts, insert_kpis, period_kpis

from pulse_reporting.cli import app
from pulse_reporting.delivery.model import (
    Channel,
    DeliveryError,
    Recipient,
    Status,
    Target,
    check_webhook_url,
    mask,
)
from pulse_reporting.delivery.secrets import (
    SubscriptionVault,
    delivery_keys,
    local_key,
    parse_keys,
)
from pulse_reporting.delivery.service import ReportDelivery, resolve
from pulse_reporting.delivery.storage import (
    DELIVERIES_TABLE,
    SUBSCRIPTIONS_TABLE,
    DeliveryStorage,
)
from pulse_reporting.domain.periods import parse_period
from pulse_reporting.generate import ReportResult, generate_report_sync
from pulse_reporting.main import ReportingComponent
from pulse_reporting.settings import ReportingSettings
from pulse_shared.access import Role
from pulse_shared.auth import UserDirectory
from pulse_shared.config_checks import ConfigurationError
from pulse_shared.settings import PulseSettings, common_settings
from pulse_shared.store import Store

# Periods far from other reporting tests' (the embedded store is shared by the session).
MONTH = parse_period("monthly", "2041-03")
SEND_MONTH = parse_period("monthly", "2041-06")
TINY_BACKOFF = {"delivery_backoff_s": 0.01, "delivery_max_backoff_s": 0.02}


# -- local servers ----------------------------------------------------------------------------


@dataclass
class SmtpSink:
    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)
    port: int = 0

    def to(self, address: str) -> list[EmailMessage]:
        return [m for rcpts, m in self.messages if address in rcpts]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    sink = SmtpSink(port=_free_port())

    class Handler:
        async def handle_RCPT(self, server, session, envelope, address, options):  # type: ignore[no-untyped-def]
            if address.startswith("nobody"):
                return f"550 5.1.1 <{address}>: no such mailbox"
            if address.startswith("busy") and not sink.deferred:
                sink.deferred.append(address)
                return "451 4.3.0 try again later"
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            message = email.message_from_bytes(envelope.content, policy=email.policy.default)
            sink.messages.append((list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
            return "250 OK"

    def authenticator(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        sink.logins.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=auth_data.password == b"s3cret-pass")

    controller = Controller(Handler(), hostname="127.0.0.1", port=sink.port,
                            authenticator=authenticator, auth_require_tls=False)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


@dataclass
class HttpSink:
    """A local HTTP server answering with scripted status codes per path, recording JSON
    bodies per path."""

    statuses: dict[str, list[int]] = field(default_factory=dict)
    always: dict[str, int] = field(default_factory=dict)
    bodies: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        path = head.split(" ", 2)[1]
        length = next((int(line.split(":", 1)[1]) for line in head.split("\r\n")
                       if line.lower().startswith("content-length:")), 0)
        body = await reader.readexactly(length)
        self.bodies.setdefault(path, []).append(json.loads(body))
        scripted = self.statuses.get(path) or []
        status = scripted.pop(0) if scripted else self.always.get(path, 200)
        writer.write(f"HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                     .encode())
        await writer.drain()
        writer.close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


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


@pytest.fixture(autouse=True)
def local_secrets(embedded_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The embedded store's data directory for every test: its local delivery key and PII
    salt are the ones storage, CLI and service use (and nothing lands in the cwd)."""
    monkeypatch.setenv("PULSE_DATA_DIR", str(embedded_data_dir))
    monkeypatch.delenv("PULSE_REPORTING_DELIVERY_KEY", raising=False)
    monkeypatch.delenv("PULSE_INGEST_PII_SALT", raising=False)
    common_settings.cache_clear()
    yield
    common_settings.cache_clear()


def _salt(data_dir: Path) -> str:
    from pulse_cli.ingest_cli import local_salt

    return local_salt(data_dir)


def _vault(keys: list[str], salt: str = "delivery-test-salt-0123456789") -> SubscriptionVault:
    return SubscriptionVault(lambda: parse_keys(",".join(keys)), lambda: salt)


def _raw_subscription(store: Store, subscription_id: str) -> dict[str, Any]:
    [row] = store.query(
        "SELECT email, webhook_url, contact_id, active FROM report_subscriptions FINAL "
        "WHERE subscription_id = {id:String}", {"id": subscription_id})
    return row


@pytest.fixture
def no_subscriptions(embedded_store: Store) -> Iterator[DeliveryStorage]:
    """Subscriptions are global: each test starts and ends without any."""
    storage = DeliveryStorage(embedded_store)
    storage.unsubscribe(storage.subscriptions())
    yield storage
    storage.unsubscribe(storage.subscriptions())


def _settings(tmp_path: Path, smtp: SmtpSink | None = None, **extra: Any) -> ReportingSettings:
    values: dict[str, Any] = {"output_dir": tmp_path, "dashboard_url": "https://pulse.example.com",
                              "email_from": "Pulse <reports@example.com>", **TINY_BACKOFF}
    if smtp is not None:
        values.update(smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_security="none")
    values.update(extra)
    return ReportingSettings(**values)


_produced: dict[str, ReportResult] = {}


def _report(store: Store, tmp_path_factory: pytest.TempPathFactory) -> ReportResult:
    """The 2041-03 monthly report (every format but csv), made once per session."""
    if "month" not in _produced:
        insert_kpis(store, period_kpis(MONTH, 1.0) + period_kpis(MONTH.previous(), 0.9)
                    + period_kpis(MONTH.year_ago(), 0.8))
        insert_alerts(store, [alert_row(
            "deliv-a1", dt.datetime(2041, 3, 10, tzinfo=dt.UTC), period=MONTH.label,
            summary="CAC above threshold on paid_social")])
        _produced["month"] = generate_report_sync(
            store, "monthly", MONTH, formats=("md", "html", "pdf", "json"),
            out_dir=tmp_path_factory.mktemp("delivered"),
            now=dt.datetime(2041, 4, 2, 7, tzinfo=dt.UTC),  # complete: not a partial period
        )
    return _produced["month"]


@pytest.fixture
def month_report(embedded_store: Store, tmp_path_factory: pytest.TempPathFactory) -> ReportResult:
    return _report(embedded_store, tmp_path_factory)


def _parts(message: EmailMessage) -> list[EmailMessage]:
    return list(message.walk())  # type: ignore[arg-type]


def _log_rows(store: Store, report_id: str) -> list[dict[str, Any]]:
    return DeliveryStorage(store).deliveries(report_id)


# -- pure pieces ------------------------------------------------------------------------------


def test_targets_and_masking() -> None:
    assert Target.parse("ana@example.com") == Target(Channel.EMAIL, "ana@example.com")
    hook = Target.parse("https://hooks.example.com/services/T0/B0/secret")
    assert hook.channel is Channel.WEBHOOK
    assert hook.masked == "https://hooks.example.com/…"
    assert mask("ana.lopez@example.com") == "a***@example.com"
    assert check_webhook_url("http://127.0.0.1:8080/x") == "http://127.0.0.1:8080/x"
    for bad in ("http://hooks.example.com/x", "ftp://x", "not an address", "a@b"):
        with pytest.raises(DeliveryError):
            Target.parse(bad)


def test_charts_rasterise_the_report_drawings_in_painter_order() -> None:
    import io

    from PIL import Image
    from reportlab.graphics.shapes import Drawing, Group, Line, Rect, String, Wedge
    from reportlab.lib import colors

    from pulse_reporting.delivery.charts import drawing_png

    drawing = Drawing(100, 50)
    drawing.add(Rect(0, 0, 50, 50, fillColor=colors.red, strokeColor=None))
    # drawn after the red square, so on top of it (matplotlib would put lines above patches)
    drawing.add(Line(0, 25, 50, 25, strokeColor=colors.white, strokeWidth=4))
    moved = Group(Rect(0, 0, 20, 20, fillColor=colors.blue, strokeColor=None),
                  transform=(1, 0, 0, 1, 70, 10))  # translated to x 70..90, y 10..30
    drawing.add(moved)
    drawing.add(String(5, 40, "label", fontSize=6))
    drawing.add(Wedge(10, 10, 5, 0, 90))  # a shape the charts never use: skipped
    png, width, height = drawing_png(drawing, dpi=72)
    assert (width, height) == (100, 50)
    image = Image.open(io.BytesIO(png)).convert("RGB")
    assert image.size == (100, 50)
    assert image.getpixel((10, 10)) == (255, 0, 0)  # y flipped: top-left of the red square
    assert image.getpixel((10, 25)) == (255, 255, 255)  # the line over it
    assert image.getpixel((80, 30)) == (0, 0, 255)  # the translated group
    assert image.getpixel((60, 5)) == (255, 255, 255)  # background
    assert drawing_png(drawing, dpi=72)[0] == png  # deterministic bytes


def test_subscriptions_and_the_log_on_both_backends(any_store: Store) -> None:
    from pulse_reporting.delivery.model import Outcome, SubscriberKind, Subscription
    from pulse_shared.privacy import contact_hash

    key = Fernet.generate_key().decode()
    storage = DeliveryStorage(any_store, vault=_vault([key]))
    tag = uuid.uuid4().hex[:8]
    address, hook = f"Team-{tag}@example.com", f"https://hooks.example.com/T0/{tag}-secret"
    sub = storage.subscribe(Subscription(
        SubscriberKind.ROLE, "cx", "weekly", ("pdf", "json"), email=address,
        webhook_url=hook, created_by="test"))
    [stored] = [s for s in storage.subscriptions("weekly")
                if s.subscription_id == sub.subscription_id]
    assert stored == sub and stored.formats == ("pdf", "json")
    assert (stored.email, stored.webhook_url) == (address, hook)
    assert stored.created_at is not None and stored.created_at.tzinfo is not None

    # at rest: Fernet tokens, and the address as its salted hash (what erasure looks for)
    raw = _raw_subscription(any_store, sub.subscription_id)
    assert raw["email"].startswith("fernet:") and raw["webhook_url"].startswith("fernet:")
    assert tag not in raw["email"] + raw["webhook_url"] + sub.subscription_id
    assert raw["contact_id"] == contact_hash(address, "delivery-test-salt-0123456789")
    assert raw["email"] != storage.vault.seal(address)  # random IV: equal values differ

    # subscribing the same place again updates it (same id), however the address is cased
    again = storage.subscribe(Subscription(
        SubscriberKind.ROLE, "cx", "weekly", ("md",), email=address.lower(), webhook_url=hook))
    assert again.subscription_id == sub.subscription_id and again.created_by == "test"

    storage.unsubscribe([again])
    assert storage.get(sub.subscription_id) is None
    ended = _raw_subscription(any_store, sub.subscription_id)
    assert (ended["email"], ended["webhook_url"], ended["active"]) == ("", "", 0)

    outcome = Outcome(Recipient(Target(Channel.EMAIL, address), Role.CX, sub.subscription_id,
                                contact_id=sub.contact_id), Status.FAILED, 4, "SMTP 451 later",
                      at=dt.datetime(2041, 1, 8, 6, tzinfo=dt.UTC))
    storage.log(f"r-{tag}", "weekly", "2041-W01", [outcome])
    [row] = storage.deliveries(f"r-{tag}")
    assert {k: row[k] for k in ("subscription_id", "channel", "recipient", "role", "status",
                                "attempts", "error")} == {
        "subscription_id": sub.subscription_id, "channel": "email",
        "recipient": "T***@example.com", "role": "cx", "status": "failed", "attempts": 4,
        "error": "SMTP 451 later"}
    assert any_store.query_value(
        "SELECT contact_id FROM report_deliveries WHERE report_id = {r:String}",
        {"r": f"r-{tag}"}) == sub.contact_id


def test_key_rotation_first_key_encrypts_every_key_decrypts(
    embedded_store: Store, no_subscriptions: DeliveryStorage,
) -> None:
    from pulse_reporting.delivery.model import SubscriberKind, Subscription

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    hook = f"https://hooks.example.com/T0/{uuid.uuid4().hex}"
    before = DeliveryStorage(embedded_store, vault=_vault([old]))
    sub = before.subscribe(Subscription(SubscriberKind.ROLE, "cmo", "quarterly",
                                        webhook_url=hook))
    rotating = DeliveryStorage(embedded_store, vault=_vault([new, old]))
    after = DeliveryStorage(embedded_store, vault=_vault([new]))
    try:
        assert [s.webhook_url for s in rotating.subscriptions("quarterly")] == [hook]
        assert after.subscriptions("quarterly") == []  # not readable with the new key alone
        assert rotating.reencrypt() == 1
        assert [s.webhook_url for s in after.subscriptions("quarterly")] == [hook]
        assert before.subscriptions("quarterly") == []  # the old key is no longer needed
        token = _raw_subscription(embedded_store, sub.subscription_id)["webhook_url"]
        assert Fernet(new.encode()).decrypt(token.removeprefix("fernet:").encode()) == \
            hook.encode()
    finally:
        after.unsubscribe(after.subscriptions())


def test_keys_refuse_placeholders_and_a_server_without_one(
    embedded_store: Store, no_subscriptions: DeliveryStorage, tmp_path: Path,
) -> None:
    from pulse_reporting.delivery.model import SubscriberKind, Subscription

    for value, text in [("change-me-delivery-key", "PULSE_REPORTING_DELIVERY_KEY is a "
                         "placeholder"), ("not-a-fernet-key-at-all", "key 1 of 1 is not a "
                                          "Fernet key")]:
        with pytest.raises(ConfigurationError, match=text):
            parse_keys(value)
    assert len(parse_keys(f"{Fernet.generate_key().decode()}, "
                          f"{Fernet.generate_key().decode()}")) == 2

    # embedded: a random key beside the data, the owner's only, the same every time
    local = PulseSettings(data_dir=tmp_path / "data")
    [first] = delivery_keys(ReportingSettings(), local)
    assert (tmp_path / "data" / ".delivery-key").stat().st_mode & 0o777 == 0o600
    token = first.encrypt(b"x")
    assert delivery_keys(ReportingSettings(), local)[0].decrypt(token) == b"x"
    assert local_key(tmp_path / "data") == (tmp_path / "data" / ".delivery-key").read_text()

    # a ClickHouse server without a key: nothing with an address or webhook is stored
    server = PulseSettings(clickhouse_url="http://clickhouse.invalid:8123")
    storage = DeliveryStorage(embedded_store, vault=SubscriptionVault.of(
        ReportingSettings(), lambda: "delivery-test-salt-0123456789", common=server))
    rows = embedded_store.query_value("SELECT count() FROM report_subscriptions")
    for sub in (Subscription(SubscriberKind.ROLE, "cx", "weekly",
                             webhook_url="https://hooks.example.com/T0/x"),
                Subscription(SubscriberKind.ROLE, "cx", "weekly", email="cx@example.com")):
        with pytest.raises(ConfigurationError, match="PULSE_REPORTING_DELIVERY_KEY is not set"):
            storage.subscribe(sub)
    assert embedded_store.query_value("SELECT count() FROM report_subscriptions") == rows
    # a role subscription without an address or webhook holds no secret: no key needed
    plain = storage.subscribe(Subscription(SubscriberKind.ROLE, "cx", "weekly"))
    assert _raw_subscription(embedded_store, plain.subscription_id)["contact_id"] == ""


def test_erasing_an_address_removes_its_subscriptions_and_deliveries(
    embedded_store: Store, embedded_data_dir: Path, no_subscriptions: DeliveryStorage,
) -> None:
    from pulse_reporting.delivery.model import Outcome, SubscriberKind, Subscription
    from pulse_shared.erasure import contact_subject, erase

    tag = uuid.uuid4().hex[:8]
    jane, other = f"jane-{tag}@acme.example", f"bob-{tag}@acme.example"
    UserDirectory(embedded_store).add(jane, Role.CMO, created_by="test")
    storage = no_subscriptions
    mine = [storage.subscribe(Subscription(SubscriberKind.USER, jane, "monthly")),
            storage.subscribe(Subscription(SubscriberKind.ROLE, "cx", "weekly", email=jane))]
    kept = storage.subscribe(Subscription(SubscriberKind.ROLE, "cx", "weekly", email=other))
    storage.log(f"r-{tag}", "weekly", "2041-W02", [
        Outcome(Recipient(Target(Channel.EMAIL, s.email or jane), Role.CX, s.subscription_id,
                          contact_id=s.contact_id), Status.SENT, 1)
        for s in [*mine, kept]])

    # as `pulse privacy erase --contact` does: the address hashed with the PII salt
    result = erase(embedded_store, contact_subject(jane.upper(), _salt(embedded_data_dir)),
                   actor="test")
    assert (result.row_counts["report_subscriptions"],
            result.row_counts["report_deliveries"]) == (2, 2)
    assert [s.subscription_id for s in storage.subscriptions()] == [kept.subscription_id]
    assert [r["subscription_id"] for r in storage.deliveries(f"r-{tag}")] == [
        kept.subscription_id]
    assert not embedded_store.query_value(
        "SELECT count() FROM report_subscriptions WHERE subscription_id IN {ids:Array(String)}",
        {"ids": [s.subscription_id for s in mine]})
    with pytest.raises(DeliveryError, match="erased"):  # the tombstone holds
        storage.subscribe(Subscription(SubscriberKind.ROLE, "cmo", "monthly", email=jane))
    # nor does the delivery log take the address back in
    storage.log(f"r2-{tag}", "weekly", "2041-W03", [Outcome(Recipient(
        Target(Channel.EMAIL, jane), Role.CX, contact_id=mine[1].contact_id), Status.SENT, 1)])
    assert storage.deliveries(f"r2-{tag}") == []


def test_no_read_only_role_is_granted_the_delivery_tables() -> None:
    """Persona roles and Grafana's per-role users read exactly their scope's tables
    (tests/test_clickhouse_roles.py, on a real server): neither table is in any scope,
    nor granted by an access migration. Only the writer reads them."""
    from pulse_shared import access
    from pulse_shared.schema.migrations import load_migrations

    for role in access.Role:
        assert not {SUBSCRIPTIONS_TABLE, DELIVERIES_TABLE} & set(access.scope(role).tables)
    assert not {SUBSCRIPTIONS_TABLE, DELIVERIES_TABLE} & access.BUSINESS_TABLES
    grants = [statement for m in load_migrations() for statement in m.statements
              if "GRANT" in statement.upper()]
    assert grants  # the access migrations are there
    for statement in grants:
        for table in (SUBSCRIPTIONS_TABLE, DELIVERIES_TABLE):
            assert table not in statement, statement


# -- e-mail -----------------------------------------------------------------------------------


async def test_email_has_html_with_inline_png_charts_text_and_the_pdf(
    embedded_store: Store, month_report: ReportResult, smtp_sink: SmtpSink, tmp_path: Path,
) -> None:
    settings = _settings(tmp_path, smtp_sink, smtp_user="pulse", smtp_password="s3cret-pass")
    delivery = ReportDelivery(settings, DeliveryStorage(embedded_store))
    recipient = Recipient(Target(Channel.EMAIL, "cmo@example.com"), Role.CMO, "", ("pdf",))
    [outcome] = await delivery.deliver(month_report.report, [recipient], month_report.paths)

    assert outcome.status is Status.SENT and outcome.attempts == 1, outcome.error
    assert smtp_sink.logins == [("pulse", "s3cret-pass")]
    [message] = smtp_sink.to("cmo@example.com")
    assert message["Subject"] == "Monthly marketing report 2041-03"
    assert message["From"] == "Pulse <reports@example.com>"
    assert message.get_content_type() == "multipart/mixed"
    parts = _parts(message)
    types = [p.get_content_type() for p in parts]
    assert "multipart/related" in types and "multipart/alternative" in types
    [html] = [p for p in parts if p.get_content_type() == "text/html"]
    [text] = [p for p in parts if p.get_content_type() == "text/plain"]
    body = html.get_content()
    cids = set(re.findall(r'src="cid:([^"]+)"', body))
    images = {p["Content-ID"].strip("<>"): p for p in parts
              if p.get_content_type() == "image/png"}
    assert cids and cids == set(images)  # every chart shown is in the message, and only those
    assert "chart-mrr_bridge@pulse" in cids and "chart-channels@pulse" in cids
    for image in images.values():
        assert image.get_content().startswith(b"\x89PNG\r\n\x1a\n")
        assert image.get_content_disposition() == "inline"
    assert "<svg" not in body and "<script" not in body
    assert "MRR" in body and "$100,000" in body  # the headline KPIs
    assert "CAC above threshold on paid_social" in body  # the period's alert
    assert "https://pulse.example.com/reports/file?report_id=" in body
    assert "Headline KPIs" in text.get_content() and "Attached: pulse-monthly-2041-03.pdf" \
        in text.get_content()
    [pdf] = [p for p in parts if p.get_content_type() == "application/pdf"]
    assert pdf.get_content_disposition() == "attachment"
    assert pdf.get_filename() == "pulse-monthly-2041-03.pdf"
    # the cmo sees everything: the very file the report run wrote
    assert pdf.get_content() == month_report.paths["pdf"].read_bytes()

    [row] = [r for r in _log_rows(embedded_store, month_report.report_id)
             if r["delivery_id"] == outcome.delivery_id]
    assert (row["channel"], row["recipient"], row["role"], row["status"], row["attempts"]) == (
        "email", "c***@example.com", "cmo", "sent", 1)


async def test_a_cx_subscriber_gets_only_what_cx_may_see(
    embedded_store: Store, month_report: ReportResult, smtp_sink: SmtpSink, tmp_path: Path,
) -> None:
    delivery = ReportDelivery(_settings(tmp_path, smtp_sink), DeliveryStorage(embedded_store))
    recipient = Recipient(Target(Channel.EMAIL, "cx-team@example.com"), Role.CX, "",
                          ("pdf", "json"))
    [outcome] = await delivery.deliver(month_report.report, [recipient], month_report.paths)
    assert outcome.sent, outcome.error

    [message] = smtp_sink.to("cx-team@example.com")
    parts = _parts(message)
    body = next(p for p in parts if p.get_content_type() == "text/html").get_content()
    cids = set(re.findall(r'src="cid:([^"]+)"', body))
    assert "chart-mrr_bridge@pulse" in cids
    assert not {c for c in cids if "channels" in c or "funnel" in c}
    assert "MRR" in body and "ROAS" not in body and "Spend" not in body
    assert "CAC above threshold" not in body  # a channel alert on an economics KPI
    # cx may not open report files: the link is the dashboard overview of the period
    assert "https://pulse.example.com/?grain=month&amp;period=2041-03" in body
    assert "/reports/file" not in body

    attached = {p.get_filename(): p.get_content() for p in parts
                if p.get_content_disposition() == "attachment"}
    data = json.loads(attached["pulse-monthly-2041-03.json"])
    assert data["channels"] == [] and data["campaigns"] == [] and data["funnel"] == []
    assert {t["kpi"] for t in data["headline"]} <= {
        "mrr", "arr", "mrr_net_new", "nrr", "gross_mrr_churn_rate", "ltv", "arpa",
        "paying_customers", "mrr_churn"}
    pdf = attached["pulse-monthly-2041-03.pdf"]
    assert pdf.startswith(b"%PDF") and pdf != month_report.paths["pdf"].read_bytes()
    text = (await asyncio.to_thread(
        subprocess.run, ["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True,
    )).stdout.decode()
    # the PDF of the cx view: retention figures, no channel or attribution numbers (its
    # empty economics sections keep their titles, as on the dashboard)
    assert "MRR" in text and "$100,000" in text
    assert not {"paid_search", "paid_social", "$40,000", "$10,000"} & set(
        re.findall(r"paid_\w+|\$[\d,]+", text))


# -- webhooks, retries, the log ---------------------------------------------------------------


async def test_webhooks_get_the_summary_with_retries_and_every_outcome_is_logged(
    embedded_store: Store, month_report: ReportResult, http_sink: HttpSink,
    smtp_sink: SmtpSink, tmp_path: Path,
) -> None:
    http_sink.statuses["/flaky"] = [503, 503]  # then 200
    http_sink.always["/down"] = 500
    http_sink.always["/gone"] = 404
    settings = _settings(tmp_path, smtp_sink, delivery_attempts=3)
    delivery = ReportDelivery(settings, DeliveryStorage(embedded_store))
    recipients = [
        Recipient(Target(Channel.WEBHOOK, http_sink.url("/ok")), Role.CMO),
        Recipient(Target(Channel.WEBHOOK, http_sink.url("/flaky")), Role.MARKETING_OPS),
        Recipient(Target(Channel.WEBHOOK, http_sink.url("/down")), Role.CMO),
        Recipient(Target(Channel.WEBHOOK, http_sink.url("/gone")), Role.CMO),
        Recipient(Target(Channel.EMAIL, "director@example.com"), Role.DIRECTOR),
    ]
    outcomes = await delivery.deliver(month_report.report, recipients, month_report.paths)
    by_path = {o.recipient.target.address.rsplit("/", 1)[-1]: o for o in outcomes}

    assert (by_path["ok"].status, by_path["ok"].attempts) == (Status.SENT, 1)
    assert (by_path["flaky"].status, by_path["flaky"].attempts) == (Status.SENT, 3)
    assert (by_path["down"].status, by_path["down"].attempts) == (Status.FAILED, 3)
    assert "HTTP 500" in by_path["down"].error
    assert (by_path["gone"].status, by_path["gone"].attempts) == (Status.FAILED, 1)  # 4xx: final
    assert by_path["director@example.com"].sent  # the failing hooks stopped nobody
    assert len(smtp_sink.to("director@example.com")) == 1
    assert [len(http_sink.bodies[p]) for p in ("/ok", "/flaky", "/down", "/gone")] == [1, 3, 3, 1]

    payload = http_sink.bodies["/ok"][0]
    assert payload["text"].startswith("Monthly marketing report 2041-03: ")
    assert "https://pulse.example.com/reports/file?report_id=" in payload["text"]
    kinds = [b["type"] for b in payload["blocks"]]
    assert kinds[0] == "header" and "section" in kinds and kinds[-1] == "actions"
    fields = next(b["fields"] for b in payload["blocks"] if "fields" in b)
    assert any("*MRR*" in f["text"] and "$100,000" in f["text"] for f in fields)
    button = payload["blocks"][-1]["elements"][0]
    assert button["url"].startswith("https://pulse.example.com/reports/file?report_id=")

    logged = {r["delivery_id"]: r for r in _log_rows(embedded_store, month_report.report_id)}
    rows = [logged[o.delivery_id] for o in outcomes]
    assert sorted((r["status"], r["attempts"]) for r in rows) == [
        ("failed", 1), ("failed", 3), ("sent", 1), ("sent", 1), ("sent", 3)]
    hooks = [r for r in rows if r["channel"] == "webhook"]
    # the log never holds a webhook's secret path
    assert {r["recipient"] for r in hooks} == {f"http://127.0.0.1:{http_sink.port}/…"}
    assert all("/flaky" not in r["error"] and "/down" not in r["error"] for r in rows)


async def test_a_cx_webhook_gets_no_economics(
    embedded_store: Store, month_report: ReportResult, http_sink: HttpSink, tmp_path: Path,
) -> None:
    delivery = ReportDelivery(_settings(tmp_path), None)  # no log: nothing is written
    [outcome] = await delivery.deliver(
        month_report.report, [Recipient(Target(Channel.WEBHOOK, http_sink.url("/cx")), Role.CX)])
    assert outcome.sent
    text = json.dumps(http_sink.bodies["/cx"][0])
    assert "MRR" in text and "Spend" not in text and "ROAS" not in text
    assert "https://pulse.example.com/?grain=month" in text


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (the test's private CA)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pulse test smtp")])
    start = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + dt.timedelta(days=365 * 80))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "smtp.crt", tmp_path / "smtp.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return cert_file, key_file


async def test_starttls_with_auth_verifies_the_server_certificate(
    embedded_store: Store, month_report: ReportResult, tls_files: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    import ssl

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    cert_file, key_file = tls_files
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert_file, key_file)
    received: list[EmailMessage] = []
    logins: list[str] = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            assert session.ssl is not None  # the message came over TLS
            received.append(email.message_from_bytes(  # type: ignore[arg-type]
                envelope.content, policy=email.policy.default))
            return "250 OK"

    def authenticator(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        logins.append(auth_data.login.decode())
        return AuthResult(success=auth_data.password == b"s3cret-pass")

    port = _free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port, tls_context=server_tls,
                            require_starttls=True, authenticator=authenticator)
    controller.start()
    try:
        recipient = Recipient(Target(Channel.EMAIL, "tls@example.com"), Role.CMO)
        trusted = _settings(tmp_path, smtp_host="127.0.0.1", smtp_port=port,
                            smtp_security="starttls", smtp_ca_file=cert_file,
                            smtp_user="pulse", smtp_password="s3cret-pass")
        [sent] = await ReportDelivery(trusted).deliver(month_report.report, [recipient])
        untrusted = _settings(tmp_path, smtp_host="127.0.0.1", smtp_port=port,
                              smtp_security="starttls", smtp_user="pulse",
                              smtp_password="s3cret-pass")  # the system CAs: not this one
        [refused] = await ReportDelivery(untrusted).deliver(month_report.report, [recipient])
    finally:
        controller.stop()
    assert sent.sent and sent.attempts == 1, sent.error
    assert logins == ["pulse"] and len(received) == 1
    assert received[0]["Subject"] == "Monthly marketing report 2041-03"
    assert (refused.status, refused.attempts) == (Status.FAILED, 1)  # not retried
    assert "certificate" in refused.error


async def test_smtp_refusals_fail_at_once_deferrals_are_retried(
    embedded_store: Store, month_report: ReportResult, smtp_sink: SmtpSink, tmp_path: Path,
) -> None:
    delivery = ReportDelivery(_settings(tmp_path, smtp_sink), DeliveryStorage(embedded_store))
    outcomes = await delivery.deliver(month_report.report, [
        Recipient(Target(Channel.EMAIL, "nobody@example.com"), Role.CMO),
        Recipient(Target(Channel.EMAIL, "busy@example.com"), Role.CMO),
    ], month_report.paths)
    by_address = {o.recipient.target.address: o for o in outcomes}
    refused, deferred = by_address["nobody@example.com"], by_address["busy@example.com"]
    assert (refused.status, refused.attempts) == (Status.FAILED, 1)
    assert "550" in refused.error and "nobody@example.com" not in refused.error  # redacted
    assert (deferred.status, deferred.attempts) == (Status.SENT, 2)
    assert len(smtp_sink.to("busy@example.com")) == 1 and not smtp_sink.to("nobody@example.com")


async def test_email_without_smtp_is_logged_failed_without_retrying(
    embedded_store: Store, month_report: ReportResult, tmp_path: Path,
) -> None:
    delivery = ReportDelivery(_settings(tmp_path), DeliveryStorage(embedded_store))
    [outcome] = await delivery.deliver(
        month_report.report, [Recipient(Target(Channel.EMAIL, "x@example.com"), Role.CMO)])
    assert (outcome.status, outcome.attempts) == (Status.FAILED, 1)
    assert "PULSE_REPORTING_SMTP_HOST" in outcome.error


# -- subscriptions ----------------------------------------------------------------------------


@pytest.fixture
def cli_env(
    embedded_store: Store, embedded_data_dir: Path, monkeypatch: pytest.MonkeyPatch,
    no_subscriptions: DeliveryStorage,
) -> Iterator[Store]:
    monkeypatch.setenv("PULSE_DATA_DIR", str(embedded_data_dir))
    monkeypatch.delenv("PULSE_CLICKHOUSE_URL", raising=False)
    monkeypatch.delenv("PULSE_KAFKA_BOOTSTRAP", raising=False)
    common_settings.cache_clear()
    yield embedded_store
    common_settings.cache_clear()


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def _json(result: Any) -> Any:
    """The JSON document a command printed (the test process's log lines go to stdout
    too; ``pulse`` itself silences them)."""
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line in ("[", "[]"))
    return json.loads("\n".join(lines[start:]))


def _csv(result: Any) -> list[str]:
    return [line for line in result.stdout.splitlines() if not line.startswith("20")]


def test_subscription_cli_round_trip(cli_env: Store) -> None:
    name = f"ana-{uuid.uuid4().hex[:6]}@example.com"
    UserDirectory(cli_env).add(name, Role.CMO, created_by="test")
    hook = "https://hooks.example.com/services/T0/B0/very-secret"

    added = _invoke("subscribe", "monthly", "--user", name, "--attach", "pdf,json",
                    "--format", "json")
    assert added.exit_code == 0, added.output
    [user_sub] = _json(added)
    assert (user_sub["subscriber_kind"], user_sub["subscriber"], user_sub["attach"]) == (
        "user", name, ["pdf", "json"])

    role = _invoke("subscribe", "weekly", "--role", "cx", "--webhook", hook, "--format", "json")
    assert role.exit_code == 0, role.output
    [role_sub] = _json(role)
    assert role_sub["webhook"] == "https://hooks.example.com/…"  # a secret: never shown
    assert "very-secret" not in role.stdout

    again = _invoke("subscribe", "monthly", "--user", name, "--attach", "md", "--format", "json")
    assert _json(again)[0]["id"] == user_sub["id"]  # updated, not doubled

    listed = _invoke("subscriptions", "--format", "csv")
    assert listed.exit_code == 0, listed.output
    lines = _csv(listed)
    assert lines[0] == "id,report_kind,subscriber_kind,subscriber,email,webhook,attach," \
        "created,created_by"
    assert len(lines) == 3 and f"{user_sub['id']},monthly,user,{name},,,md," in listed.stdout
    weekly = _json(_invoke("subscriptions", "--kind", "weekly", "--format", "json"))
    assert [s["id"] for s in weekly] == [role_sub["id"]]

    # user errors: one line, non-zero exit
    for args, code, text in [
        (("subscribe", "monthly", "--role", "platform"), 2, "sees no business data"),
        (("subscribe", "monthly"), 2, "exactly one of --user NAME or --role ROLE"),
        (("subscribe", "yearly", "--role", "cmo"), 2, "unknown report kind 'yearly'"),
        (("subscribe", "monthly", "--user", "nobody@example.com"), 1, "no active user"),
        (("subscribe", "monthly", "--role", "cx", "--webhook", "http://hooks.example.com/x"),
         2, "only https URLs"),
        (("subscribe", "monthly", "--role", "cx", "--attach", "docx"), 2, "attachment 'docx'"),
        (("unsubscribe", "0000000000000000"), 1, "no subscription matches"),
    ]:
        result = _invoke(*args)
        assert result.exit_code == code, (args, result.output)
        assert result.output.count("\n") == 1 and text in result.output, result.output

    ended = _invoke("unsubscribe", user_sub["id"], "--format", "json")
    assert ended.exit_code == 0, ended.output
    assert [s["id"] for s in _json(ended)] == [user_sub["id"]]
    assert _invoke("unsubscribe", "--role", "cx", "--format", "json").exit_code == 0
    assert _json(_invoke("subscriptions", "--format", "json")) == []


def test_subscribe_refuses_a_placeholder_key_in_one_line(
    cli_env: Store, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PULSE_REPORTING_DELIVERY_KEY", "change-me-delivery-key")
    before = cli_env.query_value("SELECT count() FROM report_subscriptions")
    result = _invoke("subscribe", "monthly", "--role", "cx", "--webhook",
                     "https://hooks.example.com/T0/B0/secret")
    assert result.exit_code == 1, result.output
    assert result.output.count("\n") == 1, result.output
    assert "configuration: PULSE_REPORTING_DELIVERY_KEY is a placeholder" in result.output
    assert cli_env.query_value("SELECT count() FROM report_subscriptions") == before


def test_cli_rotates_the_delivery_key(cli_env: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv("PULSE_REPORTING_DELIVERY_KEY", old)
    added = _invoke("subscribe", "weekly", "--role", "cmo", "--webhook",
                    "https://hooks.example.com/T0/B0/rotated", "--format", "json")
    assert added.exit_code == 0, added.output
    [sub] = _json(added)

    monkeypatch.setenv("PULSE_REPORTING_DELIVERY_KEY", f"{new},{old}")
    rotated = _invoke("subscriptions", "--reencrypt", "--format", "json")
    assert rotated.exit_code == 0, rotated.output
    assert "re-encrypted 1 subscriptions with the current key" in rotated.output
    monkeypatch.setenv("PULSE_REPORTING_DELIVERY_KEY", new)
    assert [s["id"] for s in _json(_invoke("subscriptions", "--format", "json"))] == [sub["id"]]
    assert _invoke("unsubscribe", sub["id"]).exit_code == 0


def test_role_and_user_subscriptions_resolve_to_current_users(
    embedded_store: Store, no_subscriptions: DeliveryStorage,
) -> None:
    from pulse_reporting.delivery.model import SubscriberKind, Subscription

    directory = UserDirectory(embedded_store)
    tag = uuid.uuid4().hex[:6]
    cx_user, cmo_user, gone = (f"cx-{tag}@example.com", f"cmo-{tag}@example.com",
                               f"gone-{tag}@example.com")
    directory.add(cx_user, Role.CX, created_by="test")
    directory.add(cmo_user, Role.CMO, created_by="test")
    directory.add(gone, Role.CMO, created_by="test")
    directory.revoke(gone, revoked_by="test")
    subs = [
        Subscription(SubscriberKind.ROLE, "cx", "monthly", webhook_url="https://h.example.com/x"),
        Subscription(SubscriberKind.USER, cmo_user, "monthly", ("pdf",)),
        Subscription(SubscriberKind.USER, cmo_user, "monthly", ("json",), email=cmo_user),
        Subscription(SubscriberKind.USER, gone, "monthly"),
    ]
    found = resolve(subs, directory, dt.datetime.now(dt.UTC))
    mine = {(r.target.address, r.role.value, r.formats) for r in found
            if tag in r.target.address or r.target.channel is Channel.WEBHOOK}
    assert mine == {
        (cx_user, "cx", ("pdf",)),  # a user of the subscribed role, with its view
        ("https://h.example.com/x", "cx", ("pdf",)),
        (cmo_user, "cmo", ("pdf", "json")),  # one message, attachments of both
    }


# -- pulse report send ------------------------------------------------------------------------


def test_report_send_to_an_email_address_on_the_embedded_store(
    cli_env: Store, smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    insert_kpis(cli_env, period_kpis(SEND_MONTH, 2.0) + period_kpis(SEND_MONTH.previous(), 1.5))
    for key, value in {"OUTPUT_DIR": str(tmp_path), "SMTP_HOST": "127.0.0.1",
                       "SMTP_PORT": str(smtp_sink.port), "SMTP_SECURITY": "none",
                       "DELIVERY_BACKOFF_S": "0.01"}.items():
        monkeypatch.setenv(f"PULSE_REPORTING_{key}", value)

    sent = _invoke("send", "monthly", "--period", "2041-06", "--to", "ops@example.com",
                   "--to", "cmo@example.com", "--format", "json", "-q")
    assert sent.exit_code == 0, sent.output
    outcomes = _json(sent)
    assert sorted((o["recipient"], o["status"], o["attempts"]) for o in outcomes) == [
        ("cmo@example.com", "sent", 1), ("ops@example.com", "sent", 1)]
    [message] = smtp_sink.to("ops@example.com")
    # produced now (by the real clock) for a future month: flagged partial
    assert message["Subject"].startswith("Monthly marketing report 2041-06")
    types = [p.get_content_type() for p in _parts(message)]
    assert "application/pdf" in types and "image/png" in types
    assert (tmp_path / "monthly" / "2041-06").is_dir()  # produced: json + pdf recorded

    # the second send reuses the recorded report instead of producing it again
    again = _invoke("send", "monthly", "--period", "2041-06", "--to", "ops@example.com")
    assert again.exit_code == 0, again.output
    assert "reusing Monthly marketing report 2041-06" in again.output
    assert len(smtp_sink.to("ops@example.com")) == 2

    logged = [r for r in DeliveryStorage(cli_env).deliveries()
              if r["period"] == "2041-06" and r["recipient"] == "o***@example.com"]
    assert len(logged) == 2 and {r["status"] for r in logged} == {"sent"}

    bad = _invoke("send", "monthly", "--period", "2041-06", "--to", "nobody")
    assert bad.exit_code == 2 and "give an e-mail address or an https webhook URL" in bad.output


def test_report_send_exits_1_when_a_delivery_fails(
    cli_env: Store, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    insert_kpis(cli_env, period_kpis(SEND_MONTH, 2.0))
    monkeypatch.setenv("PULSE_REPORTING_OUTPUT_DIR", str(tmp_path))
    monkeypatch.setenv("PULSE_REPORTING_DELIVERY_ATTEMPTS", "1")
    port = _free_port()  # nothing listens there
    result = _invoke("send", "monthly", "--period", "2041-06", "--to",
                     f"http://127.0.0.1:{port}/hook", "--format", "csv", "-q")
    assert result.exit_code == 1
    assert "webhook,http://127.0.0.1:" in result.stdout and ",failed,1," in result.stdout
    assert "error: 1 of 1 deliveries failed" in result.output


def test_report_send_without_smtp_is_refused(cli_env: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PULSE_REPORTING_SMTP_HOST", raising=False)
    result = _invoke("send", "monthly", "--period", "2041-06", "--to", "a@example.com")
    assert result.exit_code == 1 and "PULSE_REPORTING_SMTP_HOST" in result.output


# -- after a scheduled report -----------------------------------------------------------------


class _NoBus:
    async def publish(self, topic: Any, events: list[Any]) -> None:
        return None


async def test_a_scheduled_report_reaches_its_subscribers(
    embedded_store: Store, no_subscriptions: DeliveryStorage, smtp_sink: SmtpSink,
    http_sink: HttpSink, tmp_path: Path,
) -> None:
    from pulse_reporting.delivery.model import SubscriberKind, Subscription

    month = parse_period("monthly", "2042-02")
    insert_kpis(embedded_store, period_kpis(month, 1.0) + period_kpis(month.previous(), 1.1))
    cmo = f"cmo-{uuid.uuid4().hex[:6]}@example.com"
    # no expiry: the component's clock is years ahead (an expired user gets nothing)
    UserDirectory(embedded_store).add(cmo, Role.CMO, created_by="test", valid_days=None)
    no_subscriptions.subscribe(Subscription(SubscriberKind.USER, cmo, "monthly", ("pdf",)))
    no_subscriptions.subscribe(Subscription(
        SubscriberKind.ROLE, "cx", "monthly", webhook_url=http_sink.url("/cx-channel")))
    settings = _settings(tmp_path, smtp_sink, formats=("json", "pdf"))
    # 2042-03-04 12:00 UTC: the latest runs are 2042-W09, 2042-02 and 2041-Q4
    component = ReportingComponent(embedded_store, _NoBus(), settings,  # type: ignore[arg-type]
                                   clock=lambda: dt.datetime(2042, 3, 4, 12, tzinfo=dt.UTC))
    results = await component.run_due()
    [monthly] = [r for r in results if r.report.meta.kind == "monthly"]
    assert monthly.report.meta.period == "2042-02"

    [message] = smtp_sink.to(cmo)  # only the monthly report: the kind subscribed
    # (the component produces on the real clock, so this future month is "partial")
    assert message["Subject"].startswith("Monthly marketing report 2042-02")
    assert "unsubscribe" in next(p for p in _parts(message)
                                 if p.get_content_type() == "text/plain").get_content()
    [payload] = http_sink.bodies["/cx-channel"]
    assert payload["text"].startswith("Monthly marketing report 2042-02")
    assert "ROAS" not in json.dumps(payload)
    rows = _log_rows(embedded_store, monthly.report_id)
    assert sorted((r["channel"], r["role"], r["status"]) for r in rows
                  if r["recipient"] in (mask(cmo), mask(http_sink.url("/cx-channel")))) == [
        ("email", "cmo", "sent"), ("webhook", "cx", "sent")]
    assert all(r["subscription_id"] for r in rows)
