"""``pulse report {weekly,monthly,quarterly}``: produce a report on demand;
``pulse report subscribe/unsubscribe/subscriptions``: who receives which report;
``pulse report send``: deliver one report now (e-mail and/or webhook).

Service code is imported inside the commands (start-up time).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from pulse_reporting.domain.periods import ReportKind
from pulse_shared.cli_output import FORMAT_FILE_HELP, OutputFormat
from pulse_shared.safe_text import rich_literal

if TYPE_CHECKING:
    from pulse_reporting.delivery.model import Outcome, Subscription
    from pulse_reporting.domain.model import Report
    from pulse_reporting.generate import ReportResult
    from pulse_shared.store import Store

app = typer.Typer(help="Produce daily briefings and weekly, monthly, quarterly and annual marketing "
                  "reports; deliver them.",
                  no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_enable=False)

DEFAULT_FORMATS = "md"


def _err() -> Any:
    from rich.console import Console

    return Console(stderr=True)

async def _produce(
    kind: ReportKind, period: str | None, formats: list[str], model: str | None,
    out_dir: Path | None, quiet: bool,
) -> ReportResult:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from pulse_reporting.domain.periods import last_complete, parse_period
    from pulse_reporting.generate import generate_report
    from pulse_reporting.main import open_stores
    from pulse_reporting.settings import ReportingSettings
    from pulse_shared.bus import Bus, make_broker
    from pulse_shared.schema.migrations import migrate
    from pulse_shared.settings import common_settings

    settings = ReportingSettings()
    common = common_settings()
    if period is None:
        today = dt.datetime.now(settings.zone).date()
        the_period = last_complete(kind, today)
    else:
        the_period = parse_period(kind, period)
    reader, writer = open_stores(settings, common)
    if common.embedded:
        migrate(writer)  # idempotent; a fresh local data dir needs the reports table
    broker = None
    bus = None
    if common.kafka_bootstrap:
        broker = make_broker(common.kafka_bootstrap, client_id="pulse-report-cli")
        await broker.connect()
        bus = Bus(broker, "reporting")
    try:
        with Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), TimeElapsedColumn(),
            console=_err(), disable=quiet, transient=True,
        ) as bar:
            task = bar.add_task(f"{kind.value} {the_period.label}", total=1)

            def progress(step: str, done: int, total: int) -> None:
                bar.update(task, description=step, completed=done, total=total)

            return await generate_report(
                reader, kind, the_period, formats=formats,
                out_dir=out_dir or settings.output_dir,
                model=model or settings.model, bus=bus, writer=writer, progress=progress,
                path_model=settings.path_model, path_milestone=settings.path_milestone,
                base_url=settings.base_url,
            )
    finally:
        if broker is not None:
            await broker.stop()
        reader.close()
        writer.close()


def _command(
    kind: ReportKind, period: str | None, formats: list[str], model: str | None,
    out_dir: Path | None, quiet: bool,
) -> None:
    import asyncio

    from pulse_reporting.domain.periods import PeriodError
    from pulse_reporting.generate import ReportError

    try:
        result = asyncio.run(_produce(kind, period, formats, model, out_dir, quiet))
    except (PeriodError, ReportError) as exc:
        _err().print(f"[red]error:[/red] {rich_literal(str(exc))}")
        raise typer.Exit(2) from exc
    for fmt, path in result.paths.items():
        typer.echo(f"{fmt}\t{path}")
    if not quiet:
        _err().print(
            rich_literal(f"{result.report.meta.title} ({result.report.meta.model}) in "
                   f"{result.seconds:.2f}s · id {result.report_id}")
        )
    for note in result.report.notes:
        _err().print(f"[yellow]note:[/yellow] {rich_literal(note)}")


_FORMAT_HELP = "Formats: md, html, pdf, json, csv or all (repeat or comma-separate)."
Formats = Annotated[list[str], typer.Option("--format", "-f", metavar="FORMATS", help=_FORMAT_HELP)]
Model = Annotated[str | None, typer.Option("--model", "-m", metavar="NAME", help="Attribution model.")]
OutDir = Annotated[Path | None, typer.Option(
    "--output", "-o", help="Directory for the report files (default: configured).")]
LegacyOutDir = Annotated[Path | None, typer.Option("--out-dir", hidden=True)]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]


@dataclass(frozen=True)
class KindCommand:
    """One ``pulse report <kind>`` command: the kind, the extra names of its ``--period``
    option, that option's help and the command's help."""

    kind: ReportKind
    period_aliases: tuple[str, ...]
    period_help: str
    summary: str


#: The report commands, one per kind (the same options, the period's spelling differs).
KIND_COMMANDS: tuple[KindCommand, ...] = (
    KindCommand(ReportKind.DAILY, ("--day",),
                "Day, e.g. 2026-12-02 (default: yesterday). A day not over yet is marked "
                "partial.",
                "Daily briefing: the day against the same weekday a week earlier, alerts, "
                "month-to-date pacing."),
    KindCommand(ReportKind.WEEKLY, ("--week",),
                "ISO week, e.g. 2026-W45 (default: last week).", "Weekly report (ISO week)."),
    KindCommand(ReportKind.MONTHLY, ("--month",),
                "Month, e.g. 2026-10 (default: last month).", "Monthly strategic report."),
    KindCommand(ReportKind.QUARTERLY, ("--quarter",),
                "Quarter, e.g. 2026-Q3 (default: last one).", "Quarterly business review."),
    KindCommand(ReportKind.ANNUAL, ("--year",),
                "Year, e.g. 2025 (default: last year).",
                "Annual (board) report: twelve months year over year, cohorts, LTV:CAC, next "
                "quarter's forecast."),
)


def _register(spec: KindCommand) -> None:
    def command(
        period: str | None = None,
        formats: list[str] = [DEFAULT_FORMATS],  # noqa: B006 - typer reads, never mutates
        model: str | None = None,
        output: Path | None = None,
        legacy_output: Path | None = None,
        quiet: bool = False,
    ) -> None:
        _command(spec.kind, period, formats, model, legacy_output or output, quiet)

    # Real objects, not the module's postponed (string) annotations: typer resolves these
    # per command, and the period option's names and help differ by kind.
    command.__annotations__ = {
        "period": Annotated[str | None, typer.Option(
            "--period", *spec.period_aliases, "-p", help=spec.period_help)],
        "formats": Formats, "model": Model, "output": OutDir,
        "legacy_output": LegacyOutDir, "quiet": Quiet, "return": None,
    }
    command.__doc__ = spec.summary
    command.__name__ = spec.kind.value
    app.command(spec.kind.value)(command)


for _spec in KIND_COMMANDS:
    _register(_spec)


# -- delivery: subscriptions and one-off sends ----------------------------------------------

KINDS = ", ".join(k.value for k in ReportKind)
SUBSCRIPTION_COLUMNS = (
    "id", "report_kind", "subscriber_kind", "subscriber", "email", "webhook", "attach",
    "created", "created_by",
)
OUTCOME_COLUMNS = ("channel", "recipient", "role", "status", "attempts", "error")
FormatOpt = Annotated[OutputFormat | None, typer.Option("--format", help=FORMAT_FILE_HELP)]
OutputOpt = Annotated[Path | None, typer.Option(
    "--output", "-o", help="Write to this file instead of stdout.")]
_ATTACH_HELP = "Attachments: pdf, html, md, json (repeat or comma-separate; default pdf)."


def _fail(message: str, code: int = 1) -> NoReturn:
    """One line on stderr and exit ``code`` (1: the request cannot be done; 2: usage)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _kind(text: str) -> ReportKind:
    try:
        return ReportKind(text.strip().lower())
    except ValueError:
        _fail(f"unknown report kind {text!r}; choose from {KINDS}", 2)


def _writer() -> Store:
    """The writer store (subscriptions hold addresses and webhook secrets), migrated on
    the embedded default so a fresh data directory has the delivery tables."""
    from pulse_shared.schema.migrations import migrate
    from pulse_shared.store import open_store

    store = open_store()
    if store.backend == "embedded":
        migrate(store)
    return store


def _os_user() -> str:
    import getpass

    try:
        return getpass.getuser().strip() or "unknown"
    except (KeyError, OSError):
        return "unknown"


def subscription_row(sub: Subscription) -> dict[str, Any]:
    """What the CLI shows of a subscription: a webhook URL only masked (it is a secret)."""
    from pulse_reporting.delivery.model import mask

    return {
        "id": sub.subscription_id, "report_kind": sub.report_kind,
        "subscriber_kind": sub.subscriber_kind.value, "subscriber": sub.subscriber,
        "email": sub.email, "webhook": mask(sub.webhook_url) if sub.webhook_url else "",
        "attach": list(sub.formats),
        "created": sub.created_at.strftime("%Y-%m-%d %H:%M UTC") if sub.created_at else "",
        "created_by": sub.created_by,
    }


@app.command("subscribe")
def subscribe_command(
    kind: Annotated[str, typer.Argument(help=f"Report kind: {KINDS}.")],
    user: Annotated[str | None, typer.Option(
        "--user", metavar="NAME", help="A Pulse user (pulse users list): gets the report as "
        "its role sees it, at --email or at its name if that is an e-mail address.")] = None,
    role: Annotated[str | None, typer.Option(
        "--role", metavar="ROLE", help="A role: every active user of it whose name is an "
        "e-mail address gets the role's view, plus --email and --webhook.")] = None,
    email: Annotated[str | None, typer.Option(
        "--email", metavar="ADDRESS", help="E-mail address to send to.")] = None,
    webhook: Annotated[str | None, typer.Option(
        "--webhook", metavar="URL", help="Slack-compatible incoming webhook (https).")] = None,
    attach: Annotated[list[str], typer.Option(
        "--attach", metavar="FORMATS", help=_ATTACH_HELP)] = ["pdf"],  # noqa: B006
    fmt: FormatOpt = None,
    output: OutputOpt = None,
) -> None:
    """Subscribe a user or a role to a report kind; prints the subscription. Subscribing
    the same user or role to the same kind and places again updates its attachments."""
    from pulse_reporting.delivery.model import (
        DeliveryError,
        SubscriberKind,
        Subscription,
        check_formats,
        check_role,
        check_webhook_url,
        is_email,
    )
    from pulse_reporting.delivery.storage import DeliveryStorage
    from pulse_shared.auth.users import UserDirectory
    from pulse_shared.cli_output import emit, resolve
    from pulse_shared.config_checks import ConfigurationError

    report_kind = _kind(kind)
    if (user is None) == (role is None):
        _fail("give exactly one of --user NAME or --role ROLE", 2)
    try:
        formats = check_formats(attach) or ("pdf",)
        address = email.strip() if email else ""
        if address and not is_email(address):
            raise DeliveryError(f"--email {address!r} is not an e-mail address")
        hook = check_webhook_url(webhook) if webhook else ""
        if role is not None:
            subscriber_kind, subscriber = SubscriberKind.ROLE, check_role(role).value
    except DeliveryError as exc:
        _fail(str(exc), 2)
    store = _writer()
    try:
        if user is not None:
            found = UserDirectory(store).get(user)
            if found is None or not found.active(dt.datetime.now(dt.UTC)):
                _fail(f"no active user {user!r} (pulse users list)")
            try:
                check_role(found.role)
            except DeliveryError as exc:
                _fail(f"user {user!r}: {exc}")
            if not address and not hook and not is_email(found.name):
                _fail(f"user {user!r} has no e-mail address as its name: give --email or "
                      "--webhook")
            subscriber_kind, subscriber = SubscriberKind.USER, found.name
        try:
            sub = DeliveryStorage(store).subscribe(Subscription(
                subscriber_kind, subscriber, report_kind.value, formats, address, hook,
                created_by=_os_user(),
            ))
        except DeliveryError as exc:
            _fail(str(exc))
        except ConfigurationError as exc:  # no delivery key on a server: nothing stored
            _fail(f"configuration: {exc}")
    finally:
        store.close()
    emit([subscription_row(sub)], SUBSCRIPTION_COLUMNS, resolve(fmt, output),
         title="Subscription", output=output)


@app.command("unsubscribe")
def unsubscribe_command(
    subscription_id: Annotated[str | None, typer.Argument(
        metavar="ID", help="Subscription id (pulse report subscriptions).")] = None,
    user: Annotated[str | None, typer.Option(
        "--user", metavar="NAME", help="Every subscription of this user.")] = None,
    role: Annotated[str | None, typer.Option(
        "--role", metavar="ROLE", help="Every subscription of this role.")] = None,
    kind: Annotated[str | None, typer.Option(
        "--kind", metavar="KIND", help=f"Only this report kind ({KINDS}).")] = None,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
) -> None:
    """End subscriptions (by id, or all of a user or role, optionally of one kind);
    prints the subscriptions ended."""
    from pulse_reporting.delivery.model import SubscriberKind
    from pulse_reporting.delivery.storage import DeliveryStorage
    from pulse_shared.cli_output import emit, resolve

    if subscription_id is None and user is None and role is None:
        _fail("give a subscription ID, --user NAME or --role ROLE", 2)
    report_kind = _kind(kind).value if kind else ""
    store = _writer()
    try:
        storage = DeliveryStorage(store)
        matches = [
            s for s in storage.subscriptions(report_kind)
            if (subscription_id is None or s.subscription_id == subscription_id.strip())
            and (user is None or (s.subscriber_kind is SubscriberKind.USER
                                  and s.subscriber == user))
            and (role is None or (s.subscriber_kind is SubscriberKind.ROLE
                                  and s.subscriber == role.strip().lower()))
        ]
        if not matches:
            _fail("no subscription matches (pulse report subscriptions)")
        storage.unsubscribe(matches)
    finally:
        store.close()
    emit([subscription_row(s) for s in matches], SUBSCRIPTION_COLUMNS, resolve(fmt, output),
         title="Subscriptions ended", output=output)


@app.command("subscriptions")
def subscriptions_command(
    kind: Annotated[str | None, typer.Option(
        "--kind", metavar="KIND", help=f"Only this report kind ({KINDS}).")] = None,
    reencrypt: Annotated[bool, typer.Option(
        "--reencrypt", help="First encrypt every stored address and webhook again with the "
        "first key of PULSE_REPORTING_DELIVERY_KEY (key rotation: then drop the old key).",
    )] = False,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
) -> None:
    """Active report subscriptions (webhook URLs masked: they are secrets)."""
    from pulse_reporting.delivery.secrets import SecretUnreadable
    from pulse_reporting.delivery.storage import DeliveryStorage
    from pulse_shared.cli_output import emit, resolve
    from pulse_shared.config_checks import ConfigurationError

    report_kind = _kind(kind).value if kind else ""
    store = _writer()
    try:
        storage = DeliveryStorage(store)
        if reencrypt:
            rewritten = storage.reencrypt()
            typer.echo(f"re-encrypted {rewritten} subscriptions with the current key", err=True)
        subs = storage.subscriptions(report_kind)
    except SecretUnreadable as exc:
        _fail(f"a subscription cannot be re-encrypted: {exc}")
    except ConfigurationError as exc:
        _fail(f"configuration: {exc}")
    finally:
        store.close()
    emit([subscription_row(s) for s in subs], SUBSCRIPTION_COLUMNS, resolve(fmt, output),
         title="Report subscriptions", output=output)


def _reusable(
    reader: Store, kind: ReportKind, period: str, model: str
) -> tuple[Report, dict[str, Path]] | None:
    """The recorded report of kind × period × model with its files, if its JSON is on
    disk and still reads as a report (else it is produced again)."""
    from pydantic import ValidationError

    from pulse_reporting.domain.model import Report
    from pulse_reporting.storage import ReportingStorage

    rows = [r for r in ReportingStorage(reader).list_reports()
            if r["report_kind"] == kind.value and r["period"] == period and r["model"] == model]
    paths = {str(r["format"]): Path(str(r["path"])) for r in rows}
    json_path = paths.get("json")
    if json_path is None or not json_path.is_file():
        return None
    try:
        report = Report.model_validate_json(json_path.read_text(encoding="utf-8"))
    except (ValidationError, ValueError, OSError):
        return None
    return report, {f: p for f, p in paths.items() if p.exists()}


async def _send(
    kind: ReportKind, period: str, targets: list[str], role: str, attach: list[str],
    model: str | None, quiet: bool,
) -> list[Outcome]:
    from pulse_reporting.delivery.model import (
        Channel,
        DeliveryError,
        Recipient,
        Target,
        check_formats,
        check_role,
    )
    from pulse_reporting.delivery.secrets import SubscriptionVault, pii_salt
    from pulse_reporting.delivery.service import ReportDelivery
    from pulse_reporting.delivery.storage import DeliveryStorage
    from pulse_reporting.domain.periods import parse_period
    from pulse_reporting.main import open_stores
    from pulse_reporting.settings import ReportingSettings
    from pulse_shared.settings import common_settings

    settings = ReportingSettings()
    try:
        parsed = [Target.parse(t) for t in targets]
        view = check_role(role)
        formats = check_formats(attach) or ("pdf",)
    except DeliveryError as exc:
        _fail(str(exc), 2)
    if not parsed:
        _fail("give at least one --to ADDRESS", 2)
    if any(t.channel is Channel.EMAIL for t in parsed) and not settings.smtp_host:
        _fail("e-mail delivery is not configured: set PULSE_REPORTING_SMTP_HOST")
    the_period = parse_period(kind, period)
    the_model = model or settings.model
    reader, writer = open_stores(settings, common_settings())
    try:
        reused = _reusable(reader, kind, the_period.label, the_model)
    finally:
        reader.close()
        writer.close()
    if reused is None:
        result = await _produce(kind, the_period.label, ["json", "pdf"], the_model, None, quiet)
        report, paths = result.report, dict(result.paths)
    else:
        report, paths = reused
        if not quiet:
            _err().print(rich_literal(f"reusing {report.meta.title} · id {report.meta.report_id}"))
    store = _writer()
    try:
        storage = None if store.readonly else DeliveryStorage(store)
        vault = SubscriptionVault.of(settings, pii_salt)
        # the log keeps a masked address and its salted hash (erasure finds the row)
        recipients = [Recipient(t, view, "", formats, vault.contact_id(t.address)
                                if t.channel is Channel.EMAIL else "") for t in parsed]
        return await ReportDelivery(settings, storage).deliver(report, recipients, paths)
    finally:
        store.close()


@app.command("send")
def send_command(
    kind: Annotated[str, typer.Argument(help=f"Report kind: {KINDS}.")],
    period: Annotated[str, typer.Option(
        "--period", "-p", help="Its period, e.g. 2026-W45, 2026-10 or 2026-Q3.")],
    to: Annotated[list[str], typer.Option(
        "--to", metavar="ADDRESS", help="An e-mail address, or an https URL of a "
        "Slack-compatible webhook (repeatable).")],
    role: Annotated[str, typer.Option(
        "--role", metavar="ROLE", help="Send the report as this role sees it (default "
        "marketing_ops: all of it).")] = "marketing_ops",
    attach: Annotated[list[str], typer.Option(
        "--attach", metavar="FORMATS", help=_ATTACH_HELP)] = ["pdf"],  # noqa: B006
    model: Model = None,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    quiet: Quiet = False,
) -> None:
    """Send one report now: produced (or the recorded one reused) and delivered once to
    each --to, with retries; prints each delivery's outcome (also in the delivery log).
    Exit 1 when a delivery failed."""
    import asyncio

    from pulse_reporting.delivery.service import outcome_row
    from pulse_reporting.domain.periods import PeriodError
    from pulse_reporting.generate import ReportError
    from pulse_shared.cli_output import emit, resolve

    report_kind = _kind(kind)
    try:
        outcomes = asyncio.run(_send(report_kind, period, to, role, attach, model, quiet))
    except (PeriodError, ReportError) as exc:
        _fail(str(exc), 2)
    emit([outcome_row(o, full_address=True) for o in outcomes], OUTCOME_COLUMNS,
         resolve(fmt, output), title="Deliveries", output=output)
    failed = [o for o in outcomes if not o.sent]
    if failed:
        _fail(f"{len(failed)} of {len(outcomes)} deliveries failed")
