"""A real single-node Apache Kafka 4 broker (KRaft, broker+controller) for tests.

The broker runs from jars resolved from Maven Central (``scripts/kafka/pom.xml``) into
``<repo>/.cache/kafka-jars``; no Docker, no tarball download.

    with KafkaBroker() as broker:
        broker.create_topics(["events"])
        ...  # connect clients to broker.bootstrap_servers
        broker.restart()  # same ports, same data

Command line::

    python -m pulse_testinfra.kafka fetch   # resolve the jars (idempotent)
    python -m pulse_testinfra.kafka run     # start a broker, print bootstrap, wait for Ctrl-C
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

from pulse_testinfra._proc import (
    LOOPBACK,
    ManagedServer,
    ServerStartError,
    free_ports,
    kill,
    port_is_open,
    run_coro_sync,
    spawn,
    tail,
)
from pulse_testinfra.paths import cache_dir, repo_root

__all__ = [
    "KafkaBroker",
    "fetch_jars",
    "jars_dir",
    "kafka_version",
]

log = logging.getLogger(__name__)

_MARKER = ".complete"

_LOG4J2_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <File name="server" fileName="{log_file}" append="true">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </File>
  </Appenders>
  <Loggers>
    <Logger name="org.apache.kafka" level="INFO"/>
    <Logger name="kafka" level="INFO"/>
    <Logger name="state.change.logger" level="WARN"/>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Root level="INFO"><AppenderRef ref="server"/></Root>
  </Loggers>
</Configuration>
"""


def _pom() -> Path:
    return repo_root() / "scripts" / "kafka" / "pom.xml"


def _fetch_script() -> Path:
    return repo_root() / "scripts" / "kafka" / "fetch-jars.sh"


def jars_dir() -> Path:
    """Where the broker jars live (``PULSE_KAFKA_JARS_DIR`` overrides)."""
    env = os.environ.get("PULSE_KAFKA_JARS_DIR")
    return Path(env).resolve() if env else cache_dir() / "kafka-jars"


def kafka_version() -> str:
    """The Kafka version pinned in ``scripts/kafka/pom.xml``."""
    text = _pom().read_text()
    start = text.index("<kafka.version>") + len("<kafka.version>")
    return text[start : text.index("</kafka.version>", start)].strip()


def _jars_up_to_date(dest: Path) -> bool:
    marker = dest / _MARKER
    if not marker.is_file():
        return False
    stamp = hashlib.sha256(_pom().read_bytes()).hexdigest()
    return marker.read_text().strip() == stamp


def fetch_jars(*, quiet: bool = False) -> Path:
    """Resolve the broker jars into :func:`jars_dir` unless already there; return it.

    Delegates to ``scripts/kafka/fetch-jars.sh`` (Maven), which is idempotent and
    guarded by a file lock.
    """
    dest = jars_dir()
    if _jars_up_to_date(dest):
        return dest
    env = {**os.environ, "PULSE_KAFKA_JARS_DIR": str(dest)}
    proc = subprocess.run(
        ["bash", str(_fetch_script())],
        env=env,
        stdout=subprocess.PIPE if quiet else None,
        stderr=subprocess.STDOUT if quiet else None,
        check=False,
    )
    if proc.returncode != 0:
        output = proc.stdout.decode("utf-8", "replace") if proc.stdout else ""
        raise RuntimeError(f"fetching Kafka jars failed (exit {proc.returncode})\n{output}")
    if not _jars_up_to_date(dest):
        raise RuntimeError(f"fetch-jars.sh succeeded but {dest} has no valid marker")
    return dest


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise RuntimeError("java not found (need Java 17+ on PATH or JAVA_HOME)")
    return found


def _random_cluster_id() -> str:
    """Same shape as Kafka's ``Uuid.randomUuid().toString()`` (22-char base64url).

    Like Kafka, never starts with '-' (it would read as a command-line option).
    """
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


class KafkaBroker(ManagedServer):
    """One Kafka 4 process acting as broker and KRaft controller on loopback.

    Args:
        workdir: folder for config, data (``data/``) and logs (``logs/``); a temp dir
            (removed by :meth:`close` / ``__exit__``) when omitted.
        port: PLAINTEXT listener port; a free one when omitted.
        controller_port: CONTROLLER listener port; a free one when omitted.
        heap: JVM ``-Xmx``.
        startup_timeout: seconds to wait for the broker to answer metadata requests.
        extra_properties: more ``server.properties`` entries (override the defaults).
        jars: folder of broker jars; :func:`fetch_jars` (resolving if needed) when omitted.
    """

    stop_timeout = 30.0

    def __init__(
        self,
        workdir: Path | str | None = None,
        *,
        port: int | None = None,
        controller_port: int | None = None,
        heap: str = "512m",
        startup_timeout: float = 60.0,
        extra_properties: Mapping[str, str] | None = None,
        jars: Path | str | None = None,
    ) -> None:
        self._owns_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="pulse-kafka-")).resolve()
        if port is None or controller_port is None:
            p, c = free_ports(2)
            port = port or p
            controller_port = controller_port or c
        self.port: int = port
        self.controller_port: int = controller_port
        self.heap = heap
        self.startup_timeout = startup_timeout
        self.extra_properties = dict(extra_properties or {})
        self._jars = Path(jars).resolve() if jars else None
        self.cluster_id = _random_cluster_id()
        self._proc: subprocess.Popen[bytes] | None = None
        self.last_start_seconds: float | None = None

    # -- paths and addresses -------------------------------------------------------

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def bootstrap_servers(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def config_path(self) -> Path:
        return self.workdir / "server.properties"

    @property
    def log_path(self) -> Path:
        """The broker's own log (log4j2)."""
        return self.workdir / "logs" / "server.log"

    @property
    def stdout_path(self) -> Path:
        """The JVM's stdout/stderr."""
        return self.workdir / "logs" / "stdout.log"


    # -- configuration -------------------------------------------------------------

    def properties(self) -> dict[str, str]:
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{LOOPBACK}:{self.controller_port}",
            "listeners": (
                f"PLAINTEXT://{LOOPBACK}:{self.port},CONTROLLER://{LOOPBACK}:{self.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://{LOOPBACK}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "3",
            "default.replication.factor": "1",
            "auto.create.topics.enable": "true",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "3",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "3",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # After a hard kill the new incarnation can only register once the old
            # one's session expired (default 9s): keep restarts under load quick.
            "broker.heartbeat.interval.ms": "500",
            "broker.session.timeout.ms": "4000",
            "log.segment.bytes": str(64 * 1024 * 1024),
            "log.retention.check.interval.ms": "300000",
        }
        props.update(self.extra_properties)
        return props

    def _write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        lines = [f"{k}={v}" for k, v in self.properties().items()]
        self.config_path.write_text("\n".join(lines) + "\n")
        (self.workdir / "log4j2.xml").write_text(_LOG4J2_XML.format(log_file=self.log_path))

    def _java_cmd(self, main_class: str, *args: str) -> list[str]:
        jars = self._jars or fetch_jars(quiet=True)
        return [
            _java(),
            f"-Xmx{self.heap}",
            "-Xms64m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.xml'}",
            f"-Dkafka.logs.dir={self.log_path.parent}",
            "-cp",
            f"{jars}/*",
            main_class,
            *args,
        ]

    def _format_storage(self) -> None:
        if (self.data_dir / "meta.properties").is_file():
            return
        cmd = self._java_cmd(
            "kafka.tools.StorageTool",
            "format",
            "--cluster-id",
            self.cluster_id,
            "--config",
            str(self.config_path),
            "--ignore-formatted",
        )
        proc = subprocess.run(cmd, capture_output=True, check=False, cwd=self.workdir)
        if proc.returncode != 0:
            raise ServerStartError(
                "kafka-storage format failed:\n"
                + proc.stdout.decode("utf-8", "replace")
                + proc.stderr.decode("utf-8", "replace")
            )

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> KafkaBroker:
        """Format storage (first start only), launch the JVM, wait until it serves."""
        if self.is_running():
            return self
        started = time.monotonic()
        self._write_config()
        self._format_storage()
        self._proc = spawn(
            self._java_cmd("kafka.Kafka", str(self.config_path)),
            cwd=self.workdir,
            log_path=self.stdout_path,
        )
        try:
            self._wait_ready(started + self.startup_timeout)
        except BaseException:
            kill(self._proc)
            raise
        self.last_start_seconds = time.monotonic() - started
        log.info(
            "kafka broker ready at %s in %.1fs (pid %s, workdir %s)",
            self.bootstrap_servers,
            self.last_start_seconds,
            self.pid,
            self.workdir,
        )
        return self

    def _failure(self, reason: str) -> ServerStartError:
        return ServerStartError(
            f"Kafka broker at {self.bootstrap_servers} {reason}\n"
            f"--- tail of {self.log_path} ---\n{tail(self.log_path)}\n"
            f"--- tail of {self.stdout_path} ---\n{tail(self.stdout_path, 30)}"
        )

    def _wait_ready(self, deadline: float) -> None:
        last_error = "port never opened"
        while True:
            assert self._proc is not None
            code = self._proc.poll()
            if code is not None:
                raise self._failure(f"exited with code {code} during startup")
            if time.monotonic() > deadline:
                raise self._failure(
                    f"not ready after {self.startup_timeout:.0f}s (last error: {last_error})"
                )
            if port_is_open(self.port):
                try:
                    brokers = run_coro_sync(self._describe_brokers, timeout=15)
                except Exception as exc:  # retried until the deadline
                    last_error = f"{type(exc).__name__}: {exc}"
                else:
                    if brokers:
                        return
                    last_error = "metadata lists no brokers yet"
            time.sleep(0.2)

    async def _describe_brokers(self) -> list[object]:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap_servers, request_timeout_ms=5000
        )
        await admin.start()
        try:
            cluster = await admin.describe_cluster()
            return list(cluster.get("brokers") or [])
        finally:
            await admin.close()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"KafkaBroker({self.bootstrap_servers}, {state}, workdir={self.workdir})"

    # -- helpers -------------------------------------------------------------------

    async def create_topics_async(
        self,
        names: Iterable[str],
        partitions: int = 3,
        *,
        config: Mapping[str, str] | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        """Create topics (existing ones are left alone) and wait until all have leaders."""
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic
        from aiokafka.errors import TopicAlreadyExistsError

        wanted = list(dict.fromkeys(names))
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers)
        await admin.start()
        try:
            new = [NewTopic(n, partitions, 1, topic_configs=dict(config or {})) for n in wanted]
            try:
                response = await admin.create_topics(new, timeout_ms=int(timeout_s * 1000))
            except TopicAlreadyExistsError:
                response = None
            errors = [
                tuple(entry)
                for entry in getattr(response, "topic_errors", [])
                if entry[1] not in (0, TopicAlreadyExistsError.errno)
            ]
            if errors:
                raise RuntimeError(f"create_topics failed: {errors}")
            deadline = time.monotonic() + timeout_s
            while True:
                described = await admin.describe_topics(wanted)
                if all(
                    t.get("error_code", 0) == 0
                    and t.get("partitions")
                    and all(p.get("leader", -1) >= 0 for p in t["partitions"])
                    for t in described
                ):
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"topics {wanted} have no leaders after {timeout_s}s")
                await asyncio.sleep(0.1)
        finally:
            await admin.close()

    def create_topics(
        self,
        names: Iterable[str],
        partitions: int = 3,
        *,
        config: Mapping[str, str] | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        """Blocking :meth:`create_topics_async` (usable from sync or async code)."""
        names = list(names)
        run_coro_sync(
            lambda: self.create_topics_async(names, partitions, config=config, timeout_s=timeout_s)
        )


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pulse_testinfra.kafka")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help="resolve the Kafka jars from Maven Central (idempotent)")
    run = sub.add_parser("run", help="start a broker and block until Ctrl-C")
    run.add_argument("--port", type=int, default=None)
    run.add_argument("--controller-port", type=int, default=None)
    run.add_argument("--workdir", type=Path, default=None)
    run.add_argument("--topic", action="append", default=[], help="create this topic")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)

    if args.command == "fetch":
        print(f"Kafka {kafka_version()} -> {jars_dir()}", flush=True)
        path = fetch_jars()
        print(f"{len(list(path.glob('*.jar')))} jars ready in {path}", flush=True)
        return 0

    broker = KafkaBroker(args.workdir, port=args.port, controller_port=args.controller_port)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        broker.start()
        if args.topic:
            broker.create_topics(args.topic)
        print(f"bootstrap_servers={broker.bootstrap_servers}", flush=True)
        print(f"logs: {broker.log_path}  (Ctrl-C to stop)", flush=True)
        while broker.is_running():
            time.sleep(1)
        print(f"broker exited; see {broker.log_path}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        broker.close()


if __name__ == "__main__":
    sys.exit(_main())
