"""A real ClickHouse server (HTTP + native TCP) from the chdb wheel, for tests.

chdb embeds full clickhouse-local; ``SYSTEM START LISTEN HTTP/TCP`` inside a query turns
it into a server for as long as that query runs. :mod:`pulse_testinfra.clickhouse_proc`
does that in a dedicated child process; this module manages it.

    with ClickHouseServer() as ch:
        client = ch.client()                      # clickhouse-connect, user default
        ro = ch.client(user=ch.reader_user, password=ch.reader_password)
        ch.restart()                              # same ports, same data

Users: ``default`` (no password, full access incl. access management), ``pulse_reader``
(password, ``readonly=1``) and ``pulse_writer`` (password, read/write and access
management, as the deployment's writer that runs ``pulse migrate``).

Access control is users.xml only: chdb's clickhouse-local reads ``user_directories`` for
the users.xml path alone and never opens a ``local_directory``, so SQL ``CREATE ROLE`` /
``CREATE USER`` / ``CREATE ROW POLICY`` fail here ("no writeable access storage") and the
access-control migration is skipped (pending) on this server. Roles, role grants and
per-user row filters declared in XML do work: add files to ``WORKDIR/users.d/`` (merged
into users.xml; see tests/test_clickhouse_roles.py).

Command line::

    python -m pulse_testinfra.clickhouse run [--http-port N] [--tcp-port N] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

import httpx

from pulse_testinfra._proc import (
    LOOPBACK,
    ManagedServer,
    ServerStartError,
    free_ports,
    kill,
    spawn,
    tail,
)

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

__all__ = ["ClickHouseServer"]

log = logging.getLogger(__name__)

_CONFIG_XML = """<clickhouse>
  <listen_host>{host}</listen_host>
  <http_port>{http_port}</http_port>
  <tcp_port>{tcp_port}</tcp_port>
  <users_config>users.xml</users_config>
  <max_concurrent_queries>200</max_concurrent_queries>
  <logger>
    <level>information</level>
    <console>1</console>
  </logger>
</clickhouse>
"""

_USERS_XML = """<clickhouse>
  <profiles>
    <default/>
    <readonly>
      <readonly>1</readonly>
    </readonly>
  </profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>::/0</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
      <access_management>1</access_management>
    </default>
    <{reader_user}>
      <password>{reader_password}</password>
      <networks><ip>::/0</ip></networks>
      <profile>readonly</profile>
      <quota>default</quota>
    </{reader_user}>
    <{writer_user}>
      <password>{writer_password}</password>
      <networks><ip>::/0</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
      <!-- As deploy's writer, which runs `pulse migrate` incl. the access-control
           migration (that one still cannot apply here: see the module doc). -->
      <access_management>1</access_management>
    </{writer_user}>
  </users>
  <quotas>
    <default/>
  </quotas>
</clickhouse>
"""


class ClickHouseServer(ManagedServer):
    """A ClickHouse server in a child process, listening on loopback.

    Args:
        workdir: folder for ``config.xml``, ``users.xml``, ``data/`` and ``server.log``;
            a temp dir (removed by :meth:`close` / ``__exit__``) when omitted.
        http_port / tcp_port: listener ports; free ones when omitted.
        reader_password / writer_password: passwords of ``pulse_reader`` (readonly)
            and ``pulse_writer``.
        startup_timeout: seconds to wait for ``/ping`` and a first query.
    """

    stop_timeout = 15.0

    default_user = "default"
    reader_user = "pulse_reader"
    writer_user = "pulse_writer"

    def __init__(
        self,
        workdir: Path | str | None = None,
        *,
        http_port: int | None = None,
        tcp_port: int | None = None,
        reader_password: str = "pulse-reader-pw",
        writer_password: str = "pulse-writer-pw",
        startup_timeout: float = 30.0,
    ) -> None:
        self._owns_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="pulse-clickhouse-")).resolve()
        if http_port is None or tcp_port is None:
            h, t = free_ports(2)
            http_port = http_port or h
            tcp_port = tcp_port or t
        self._http_port: int = http_port
        self._tcp_port: int = tcp_port
        self.reader_password = reader_password
        self.writer_password = writer_password
        self.startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self.last_start_seconds: float | None = None

    # -- addresses and paths -------------------------------------------------------

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def http_port(self) -> int:
        return self._http_port

    @property
    def tcp_port(self) -> int:
        return self._tcp_port

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self._http_port}"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"


    # -- lifecycle -----------------------------------------------------------------

    def _write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "config.xml").write_text(
            _CONFIG_XML.format(host=LOOPBACK, http_port=self._http_port, tcp_port=self._tcp_port)
        )
        (self.workdir / "users.xml").write_text(
            _USERS_XML.format(
                reader_user=self.reader_user,
                reader_password=escape(self.reader_password),
                writer_user=self.writer_user,
                writer_password=escape(self.writer_password),
            )
        )

    def start(self) -> ClickHouseServer:
        """Launch the server process and wait until it answers queries."""
        if self.is_running():
            return self
        started = time.monotonic()
        self._write_config()
        self._proc = spawn(
            [sys.executable, "-m", "pulse_testinfra.clickhouse_proc", str(self.workdir)],
            cwd=self.workdir,
            log_path=self.log_path,
            stdin_pipe=True,
        )
        try:
            self._wait_ready(started + self.startup_timeout)
        except BaseException:
            kill(self._proc)
            raise
        self.last_start_seconds = time.monotonic() - started
        log.info(
            "clickhouse ready at %s (tcp %d) in %.2fs (pid %s, workdir %s)",
            self.url,
            self._tcp_port,
            self.last_start_seconds,
            self.pid,
            self.workdir,
        )
        return self

    def _failure(self, reason: str) -> ServerStartError:
        return ServerStartError(
            f"ClickHouse server at {self.url} {reason}\n"
            f"--- tail of {self.log_path} ---\n{tail(self.log_path)}"
        )

    def _wait_ready(self, deadline: float) -> None:
        last_error = "no answer yet"
        with httpx.Client(timeout=2.0) as http:
            while True:
                assert self._proc is not None
                code = self._proc.poll()
                if code is not None:
                    raise self._failure(f"exited with code {code} during startup")
                if time.monotonic() > deadline:
                    raise self._failure(
                        f"not ready after {self.startup_timeout:.0f}s (last error: {last_error})"
                    )
                try:
                    ping = http.get(f"{self.url}/ping")
                    # Also proves it is *our* server: the writer exists with our password.
                    who = http.post(
                        self.url,
                        content=b"SELECT currentUser()",
                        auth=(self.writer_user, self.writer_password),
                    )
                except httpx.HTTPError as exc:
                    last_error = f"{type(exc).__name__}: {exc}"
                else:
                    if ping.status_code == 200 and who.text.strip() == self.writer_user:
                        return
                    last_error = f"ping {ping.status_code}, query {who.status_code}: {who.text}"
                time.sleep(0.05)

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"ClickHouseServer({self.url}, tcp={self._tcp_port}, {state})"

    # -- clients -------------------------------------------------------------------

    def client(self, user: str | None = None, password: str | None = None, **kwargs: Any) -> Client:
        """A clickhouse-connect (HTTP) client; the password is looked up for our users."""
        import clickhouse_connect

        user = user or self.default_user
        if password is None:
            password = {
                self.reader_user: self.reader_password,
                self.writer_user: self.writer_password,
            }.get(user, "")
        return clickhouse_connect.get_client(
            host=LOOPBACK, port=self._http_port, username=user, password=password, **kwargs
        )


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pulse_testinfra.clickhouse")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start a server and block until Ctrl-C")
    run.add_argument("--http-port", type=int, default=None)
    run.add_argument("--tcp-port", type=int, default=None)
    run.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)

    server = ClickHouseServer(args.workdir, http_port=args.http_port, tcp_port=args.tcp_port)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.start()
        print(f"url={server.url} tcp_port={server.tcp_port}", flush=True)
        print(
            f"users: default (no password), {server.reader_user}:{server.reader_password} "
            f"(readonly), {server.writer_user}:{server.writer_password}",
            flush=True,
        )
        print(f"data: {server.data_dir}  log: {server.log_path}  (Ctrl-C to stop)", flush=True)
        while server.is_running():
            time.sleep(1)
        print(f"server exited; see {server.log_path}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        server.close()


if __name__ == "__main__":
    sys.exit(_main())
