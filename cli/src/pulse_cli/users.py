"""``pulse users …``: the people who may open the dashboard and the HTTP APIs.

``add`` issues a token (shown once: only its Argon2id hash is stored), ``list`` shows who
has access (never a hash), ``revoke`` ends a user's token and sessions. Roles and what
they may see: :mod:`pulse_shared.access`; storage: :mod:`pulse_shared.auth.users`.

Imported when ``pulse users`` runs; the store code inside the commands.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pulse_cli.errors import UserError
from pulse_cli.stores import migrated_store, os_user
from pulse_shared.access import ROLE_NAMES
from pulse_shared.cli_output import FORMAT_FILE_HELP, OutputFormat, emit, resolve

if TYPE_CHECKING:
    from pulse_shared.auth.users import User, UserDirectory

app = typer.Typer(help="Dashboard and API users: add (issues a token), list, revoke.",
                  no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_enable=False)

COLUMNS = ("name", "role", "status", "created", "expires", "created_by", "revoked")


@contextmanager
def _directory() -> Iterator[UserDirectory]:
    from pulse_shared.auth import UserDirectory
    from pulse_shared.settings import common_settings

    with migrated_store(common_settings()) as store:  # pulse_users exists on a fresh dir
        yield UserDirectory(store)


def _when(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else ""


def user_row(user: User, now: dt.datetime) -> dict[str, Any]:
    """What ``pulse users list`` shows of a user: never its token id or hash."""
    return {
        "name": user.name, "role": user.role.value, "status": user.status(now),
        "created": _when(user.created_at), "expires": _when(user.expires_at) or "never",
        "created_by": user.created_by, "revoked": _when(user.revoked_at),
    }


@app.command("add")
def add_command(
    name: Annotated[str, typer.Argument(help="User name (e.g. an e-mail address).")],
    role: Annotated[str, typer.Option(
        "--role", metavar="ROLE", help=f"One of {', '.join(ROLE_NAMES)}.")],
    days: Annotated[int | None, typer.Option(
        "--days", min=1, max=3650,
        help="Token lifetime in days (default PULSE_AUTH_TOKEN_DAYS, 90).")] = None,
) -> None:
    """Add a user and print its new token as the last line on stdout (shown once: only a
    hash of it is stored). A revoked or expired user is given a new token."""
    from pulse_shared.access import parse_role
    from pulse_shared.auth import AuthSettings
    from pulse_shared.auth.users import UserError as DirectoryError

    try:
        the_role = parse_role(role)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    valid_days = days if days is not None else AuthSettings().token_days
    with _directory() as users:
        try:
            user, token = users.add(name, the_role, created_by=os_user(), valid_days=valid_days)
        except DirectoryError as exc:
            raise UserError(str(exc)) from None
    typer.echo(
        f"added {user.name} ({user.role.value}), token expires {_when(user.expires_at)}. "
        "The token below is shown once: give it to the user now (dashboard sign-in, or "
        "Authorization: Bearer <token>).", err=True)
    typer.echo(token)


@app.command("list")
def list_command(
    fmt: Annotated[OutputFormat | None, typer.Option("--format", help=FORMAT_FILE_HELP)]
    = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write to this file instead of stdout.")] = None,
) -> None:
    """Users with their role and status (active, revoked, expired); never a token."""
    with _directory() as users:
        now = users.clock()
        rows = [user_row(u, now) for u in users.list()]
    emit(rows, COLUMNS, resolve(fmt, output), title="Pulse users", output=output)


@app.command("revoke")
def revoke_command(
    name: Annotated[str, typer.Argument(help="User name.")],
) -> None:
    """Revoke a user's token: its API calls and dashboard sessions stop working within
    PULSE_AUTH_RECHECK_S (15 s by default)."""
    from pulse_shared.auth.users import UserError as DirectoryError

    with _directory() as users:
        try:
            user = users.revoke(name, revoked_by=os_user())
        except DirectoryError as exc:
            raise UserError(str(exc)) from None
    typer.echo(f"revoked {user.name} ({user.role.value}) at {_when(user.revoked_at)}", err=True)
