"""The store a maintenance command (``pulse users``, ``pulse privacy``) works on, and who
runs it. Imported by those commands only (the store code inside the functions)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from pulse_cli.errors import UserError

if TYPE_CHECKING:
    from pulse_shared.settings import PulseSettings
    from pulse_shared.store import Store


def open_cli_store(settings: PulseSettings) -> Store:
    """The configured store; on the embedded default, a one-line error when another
    process (a running ``pulse dashboard``) holds the data directory."""
    from pulse_shared.store import open_store

    busy = UserError(
        f"the data directory {settings.data_dir} is in use by another Pulse process "
        "(a running `pulse dashboard`?): stop it first, or use a ClickHouse server "
        "(PULSE_CLICKHOUSE_URL)"
    )
    if settings.embedded and _held_by_another_process(settings.data_dir):
        raise busy  # before chDB, which would print its own multi-line complaint
    try:
        return open_store(settings)
    except RuntimeError as exc:
        if not settings.embedded:
            raise
        raise busy from exc


def _held_by_another_process(data_dir: Path) -> bool:
    """Whether a running chDB/ClickHouse holds ``data_dir`` (it keeps an exclusive
    ``flock`` on the directory's ``status`` file while open)."""
    import fcntl

    status = data_dir / "status"
    if not status.is_file():
        return False
    with status.open("rb") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


@contextmanager
def migrated_store(settings: PulseSettings) -> Iterator[Store]:
    """:func:`open_cli_store`, migrated (the command's tables exist even on a fresh data
    dir), closed afterwards."""
    from pulse_shared.schema.migrations import migrate

    store = open_cli_store(settings)
    try:
        migrate(store)
        yield store
    finally:
        store.close()


def os_user() -> str:
    """Who runs the command, for audit logs ("unknown" without a passwd entry, as in
    containers)."""
    import getpass

    try:
        return getpass.getuser().strip() or "unknown"
    except (KeyError, OSError):
        return "unknown"
