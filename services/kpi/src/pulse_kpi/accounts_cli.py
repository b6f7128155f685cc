"""``pulse kpi accounts``: each account's profile in force on a day (ingest kind accounts).

The as-of lookup is the one the KPI breakdowns use (:class:`pulse_kpi.domain.accounts.ProfileBook`),
so the list shows which segment, plan … an account's events of that day are counted in.
Registered on the ``pulse kpi`` app by :func:`register` (cli.py, which this module must not
import: no import cycles); service code is imported inside the command (start-up time).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pulse_kpi.cli_support import open_store, parse_day_option
from pulse_shared.cli_output import FORMAT_FILE_HELP, OutputFormat, emit, resolve

if TYPE_CHECKING:
    pass

COLUMNS = ("account_id", "segment", "plan", "region", "industry", "employee_band",
           "acquisition_channel", "effective_from")


def accounts(
    as_of: Annotated[str, typer.Option(
        "--as-of", metavar="DAY",
        help="Profiles in force on DAY (YYYY-MM-DD, UTC; default: today)")] = "",
    segment: Annotated[str | None, typer.Option(
        metavar="SEGMENT", help="Only this segment: smb, mid_market or enterprise "
        "(CRM spellings such as Mid-Market accepted)")] = None,
    fmt: Annotated[OutputFormat | None, typer.Option("--format", help=FORMAT_FILE_HELP)] = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", metavar="FILE", help="Write to FILE instead of printing.")] = None,
) -> None:
    """Account profiles in force on a day: segment, plan, region, industry, employee band
    and acquisition channel (the account's first-touch channel when the CRM gave none;
    empty without touchpoints). Accounts whose first profile starts later are left out."""
    from pulse_kpi.domain.accounts import UNKNOWN, ProfileBook
    from pulse_kpi.storage import KpiStorage
    from pulse_shared.events import Segment, normalise_segment

    day = parse_day_option(as_of)
    wanted: str | None = None
    if segment is not None:
        try:
            wanted = Segment(normalise_segment(segment)).value
        except ValueError:
            raise typer.BadParameter(
                f"unknown segment {segment!r}; one of {', '.join(s.value for s in Segment)}",
                param_hint="--segment") from None
    fmt = resolve(fmt, output)
    with open_store() as store:
        profiles = KpiStorage(store).account_profiles(day + dt.timedelta(days=1),
                                                      first_touch=True)
    book = ProfileBook(profiles)
    rows = []
    for account in sorted({p.account_id for p in profiles}):
        p = book.as_of(account, day)
        if p is None or (wanted is not None and p.segment != wanted):
            continue
        rows.append({
            "account_id": account, **{d: p.member(d) for d in (
                "segment", "plan", "region", "industry", "employee_band")},
            "acquisition_channel": p.acquisition_channel or "",
            "effective_from": p.effective_from,
        })
    if not rows:  # a valid answer: said on stderr, exit 0
        typer.echo(f"no account profile in force on {day}"
                   + (f" in segment {wanted}" if wanted else ""), err=True)
    emit(rows, COLUMNS, fmt, f"Account profiles on {day} ({UNKNOWN}: not given)", output)


def register(app: typer.Typer) -> None:
    """Add ``pulse kpi accounts`` to ``pulse kpi``."""
    app.command("accounts")(accounts)
