"""``pulse privacy …``: erase a subject (an account or a contact) from every table, show
the erasure audit log (:mod:`pulse_shared.erasure`), and scan stored text for raw PII
(:mod:`pulse_shared.pii_scan`).

Imported when ``pulse privacy`` runs; the store, Kafka and KPI code inside the commands.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pulse_cli.errors import UserError
from pulse_cli.stores import migrated_store, open_cli_store, os_user
from pulse_shared.cli_output import FORMAT_FILE_HELP, FORMAT_HELP, OutputFormat, emit, resolve

if TYPE_CHECKING:
    from pulse_shared.erasure import ErasureResult, Subject
    from pulse_shared.store import Store

app = typer.Typer(help="Erase a subject's data; the erasure audit log; scan stored text for "
                       "raw PII.",
                  no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_enable=False)

FormatOption = Annotated[OutputFormat, typer.Option(
    "--format", help="How to print the outcome: " + FORMAT_HELP)]


def contact_salt() -> str:
    """The PII salt ingest hashes contacts with (the embedded store's local one by default)."""
    from pulse_cli.ingest_cli import _cli_ingest_settings

    salt: str = _cli_ingest_settings().pii_salt.get_secret_value()
    if not salt:
        raise UserError("--contact: no PII salt configured; set PULSE_INGEST_PII_SALT to the "
                        "salt ingest uses, so the address hashes to its contact_id")
    return salt


def _subject(account_id: str | None, contact: str | None) -> Subject:
    from pulse_shared.erasure import account_subject, contact_subject

    if (account_id is None) == (contact is None):
        # A usage error (exit 2), like any other wrong combination of options.
        raise typer.BadParameter("give exactly one of --account-id or --contact")
    try:
        if account_id is not None:
            return account_subject(account_id)
        assert contact is not None
        return contact_subject(contact, contact_salt())
    except ValueError as exc:
        raise UserError(str(exc)) from exc


async def _publish(bootstrap: str, result: ErasureResult) -> None:
    from pulse_shared.bus import Bus, make_broker
    from pulse_shared.topics import ERASURES

    broker = make_broker(bootstrap)
    await broker.connect()
    try:
        await Bus(broker, "pulse-cli").publish(ERASURES, [result.event()])
    finally:
        await broker.stop()


def _recompute_kpis(store: Store, result: ErasureResult) -> str:
    """Recompute the KPIs of the days the subject's rows were on; what to tell the user."""
    assert result.first_day is not None and result.end_day is not None
    span = _span(result.first_day, result.end_day)
    try:
        from pulse_kpi.main import recompute_range

        changed = asyncio.run(recompute_range(store, result.first_day, result.end_day))
    except Exception as exc:  # the erasure stands; the user can finish the recompute
        return (f"KPIs NOT recomputed ({type(exc).__name__}: {exc}); "
                f"run: pulse kpi recompute {span}")
    return f"KPIs recomputed {span}: {changed} values changed"


@app.command("erase")
def erase_command(
    account_id: Annotated[str | None, typer.Option(
        "--account-id", metavar="ID", help="Erase this account (its business id).")] = None,
    contact: Annotated[str | None, typer.Option(
        "--contact", metavar="EMAIL",
        help="Erase this contact: an e-mail address (or phone number), hashed with the PII "
             "salt as ingest does, or its contact_id hash.")] = None,
    actor: Annotated[str | None, typer.Option(
        help="Who asks for the erasure, for the audit log (default: the OS user).")] = None,
    recompute: Annotated[bool, typer.Option(
        help="Recompute the KPIs of the affected days.")] = True,
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """Remove every row of an account or a contact from every table, record it in the
    audit log (`erasures`) so replays cannot restore it, publish a tombstone on
    privacy.erasures.v1 (when Kafka is configured), and print the rows removed per table."""
    from pulse_shared.erasure import ErasureSettings, erase
    from pulse_shared.settings import common_settings

    subject = _subject(account_id, contact)
    settings = common_settings()
    who = (actor or os_user()).strip() or "unknown"
    # Services of a server deployment re-read the erased subjects every refresh_s: wait
    # that long and delete again (an embedded store has no other writer).
    settle_s = 0.0 if settings.embedded else ErasureSettings().refresh_s
    with migrated_store(settings) as store:
        result = erase(store, subject, who, settle_s=settle_s)
        notes = [f"erased {subject.kind} {_shown(subject)} (erasure {result.erasure_id}, "
                 f"by {who}): {sum(result.row_counts.values())} rows"]
        notes += [f"{table}: {n} daily aggregate rows rebuilt without them"
                  for table, n in result.rebuilt.items()]
        if settings.kafka_bootstrap:
            asyncio.run(_publish(settings.kafka_bootstrap, result))
            notes.append("tombstone published on privacy.erasures.v1")
        if result.first_day is not None:
            if recompute:
                notes.append(_recompute_kpis(store, result))
            elif result.end_day is not None:
                notes.append(f"run: pulse kpi recompute {_span(result.first_day, result.end_day)}")
    rows = [{"table": t, "rows": n} for t, n in sorted(result.row_counts.items())]
    emit(rows, ["table", "rows"], fmt.value, title="Rows erased")
    for note in notes:
        typer.echo(note, err=True)


def _span(first: dt.date, end: dt.date) -> str:
    """``pulse kpi recompute`` options for the days ``[first, end)``."""
    return f"--from {first.isoformat()} --to {(end - dt.timedelta(days=1)).isoformat()}"


def _shown(subject: Subject) -> str:
    """How the subject is named in output: a contact only by a prefix of its hash."""
    return subject.value if subject.kind == "account" else f"{subject.value[:12]}…"


@app.command("erasures")
def erasures_command(
    limit: Annotated[int, typer.Option(min=1, help="How many (newest first).")] = 50,
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """The erasure audit log: who erased which subject, when, rows per table."""
    from pulse_shared.erasure import erasure_log
    from pulse_shared.settings import common_settings

    with migrated_store(common_settings()) as store:
        entries = erasure_log(store, limit)
    rows: list[dict[str, Any]] = [
        {**e, "rows": sum(int(n) for n in (e["row_counts"] or {}).values())} for e in entries
    ]
    emit(rows, ["requested_at", "subject_kind", "subject", "actor", "rows", "completed_at"],
         fmt.value, title="Erasures")


SCAN_COLUMNS = ["table", "column", "kinds", "values", "rows", "key_column", "example"]


@app.command("scan")
def scan_command(
    tables: Annotated[list[str] | None, typer.Option(
        "--table", metavar="NAME", help="Scan this table only (repeatable; default: all).")]
    = None,
    fmt: Annotated[OutputFormat | None, typer.Option("--format", help=FORMAT_FILE_HELP)]
    = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write to this file instead of stdout.")] = None,
) -> None:
    """Look through every stored text (all rows of every table, as stored) for raw e-mail
    addresses and phone numbers, disguised or not, with today's detector: rows stored
    before it learnt a disguise are not checked by anything else. Changes nothing.

    Prints one row per column holding any: the kinds, distinct values, rows, whether the
    column is in its table's key, and the most frequent value redacted (never a raw
    value). Exits 1 when something is found, 0 when not. docs/security.md says how to
    remove what it finds."""
    from pulse_cli.main import progress_bar
    from pulse_shared.pii_scan import scan, text_columns
    from pulse_shared.settings import common_settings

    store = open_cli_store(common_settings())
    try:
        wanted = list(dict.fromkeys(tables or []))
        columns = text_columns(store, wanted)
        scanned_tables = {c.table for c in columns}
        unknown = [t for t in wanted if t not in scanned_tables]
        if unknown:
            raise UserError(f"--table: no table with text columns named {unknown[0]!r}")
        with progress_bar() as progress:
            task = progress.add_task("scanning text columns", total=len(columns))
            findings = scan(store, columns, on_column=lambda _: progress.advance(task))
    finally:
        store.close()
    emit([f.as_row() for f in findings], SCAN_COLUMNS, resolve(fmt, output),
         title="Stored text holding raw PII", output=output)
    if not findings:
        typer.echo(f"no raw e-mail address or phone number in {len(columns)} text columns "
                   f"of {len(scanned_tables)} tables", err=True)
        return
    raise UserError(
        f"raw PII in {len(findings)} of {len(columns)} text columns "
        f"({sum(f.rows for f in findings)} rows): erase the subjects (pulse privacy erase) "
        "or delete those rows and ingest their source again (docs/security.md)")
