"""Child process body of :class:`pulse_testinfra.clickhouse.ClickHouseServer`.

    python -m pulse_testinfra.clickhouse_proc WORKDIR

Runs the full clickhouse-local engine of the chdb wheel on ``WORKDIR/data`` and, inside
one never-ending query, opens the HTTP and TCP listeners configured by
``WORKDIR/config.xml`` (and ``users.xml``). The listeners only live while that query
runs, hence one server per process. Errors go to stderr. The process exits when its
stdin reaches EOF (the parent closed it or died) or on SIGTERM/SIGINT.
"""

from __future__ import annotations

import os
import sys
import threading

SERVE_SQL = (
    "SYSTEM START LISTEN HTTP; "
    "SYSTEM START LISTEN TCP; "
    "SELECT sleepEachRow(1) FROM system.numbers "
    "SETTINGS max_block_size = 1, max_execution_time = 0 FORMAT Null"
)


def _exit_on_stdin_eof() -> None:
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except (OSError, ValueError):
        pass
    os._exit(0)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m pulse_testinfra.clickhouse_proc WORKDIR", file=sys.stderr)
        return 2
    workdir = os.path.abspath(argv[0])
    if not os.path.isfile(os.path.join(workdir, "config.xml")):
        print(f"no config.xml in {workdir}", file=sys.stderr)
        return 2
    if not sys.stdin.isatty():
        threading.Thread(target=_exit_on_stdin_eof, name="stdin-watchdog", daemon=True).start()

    import chdb._chdb as engine  # before chdir, see module doc

    os.chdir(workdir)  # clickhouse-local picks config.xml from the working directory
    print(f"clickhouse_proc: serving from {workdir}", file=sys.stderr, flush=True)
    try:
        data = os.path.join(workdir, "data")
        result = engine.query(SERVE_SQL, "TabSeparated", path=data)  # type: ignore[attr-defined]
    except Exception as exc:  # the engine reports listener/startup errors this way
        print(f"clickhouse_proc: server query failed: {exc}", file=sys.stderr, flush=True)
        return 1
    error = getattr(result, "error_message", None)
    if callable(error):
        error = error()
    print(
        f"clickhouse_proc: server query ended (see errors above): {error or result!r}",
        file=sys.stderr,
        flush=True,
    )
    return 1


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # skip interpreter teardown: the stdin watchdog thread may be blocked
