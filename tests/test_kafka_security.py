"""Kafka SASL/SCRAM and ACLs: every Pulse service is its own Kafka user, allowed exactly
the topics its code produces and consumes (docs/kafka-security.md).

- docker-compose.yml: each service's user and SASL settings; the broker authenticates
  every listener and denies what no ACL allows; kafka-init's ACLs equal what the code
  publishes (``bus.publish`` calls, dead letters of consumed topics) and consumes (the
  components' consumers and their groups); the scripts refuse placeholder passwords.
- Settings: SASL needs a user and a password; placeholders are refused at start-up.
- ``make_broker`` / ``kafka_client_security`` build the SCRAM security from the settings.
- A real broker configured from docker-compose.yml's ``KAFKA_*`` variables, with the
  users and ACLs of kafka-init: a service publishes to its topic and is refused another.
"""

from __future__ import annotations

import ast
import asyncio
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from pulse_shared import topics as registry
from pulse_shared.bus import Bus, kafka_client_security, make_broker
from pulse_shared.config_checks import ConfigurationError, is_placeholder, refuse_insecure_startup
from pulse_shared.settings import PulseSettings

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("ingest", "attribution", "kpi", "alerts", "reporting", "mmm")
CLI_USER = "pulse-cli"
#: What kafka-init's grants mean, as (resource type, operations) pairs.
GRANTS = {"write": ("topic", ("Write", "Describe")), "read": ("topic", ("Read", "Describe")),
          "group": ("group", ("Read",))}


# ------------------------------------------------------------------------ compose file
def compose_services() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"])


def env_of(name: str) -> dict[str, str]:
    return {str(k): str(v) for k, v in compose_services()[name].get("environment", {}).items()}


def script_of(name: str) -> str:
    """A one-shot bash command from the compose file, as the container's shell sees it."""
    (script,) = compose_services()[name]["command"]
    return str(script).replace("$$", "$")


@dataclass
class Access:
    """Topics a Kafka user may write and read, and the consumer group prefixes it may use."""

    write: set[str] = field(default_factory=set)
    read: set[str] = field(default_factory=set)
    group: set[str] = field(default_factory=set)


def declared_acls() -> dict[str, Access]:
    """kafka-init's PULSE_KAFKA_ACLS: ``<user> <write|read|group> <names…>`` lines."""
    acls: dict[str, Access] = {}
    for line in env_of("kafka-init")["PULSE_KAFKA_ACLS"].splitlines():
        if not line.strip():
            continue
        user, grant, *names = line.split()
        assert grant in GRANTS, line
        getattr(acls.setdefault(user, Access()), grant).update(names)
    return acls


# --------------------------------------------------------------------------- the code
def published_topics(package: Path) -> set[str]:
    """Topics a package passes to ``….publish(topic, …)``: a registry constant, or
    ``topic_for(kind)`` (ingest: any input kind's topic)."""
    from pulse_ingest.domain.normalize import KIND_TOPICS

    found: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "publish" and node.args):
                continue
            topic = node.args[0]
            if isinstance(topic, ast.Name):
                constant = getattr(registry, topic.id, None)
                assert isinstance(constant, registry.Topic), f"{path}: publish({topic.id})"
                found.add(constant.name)
            elif (isinstance(topic, ast.Call) and isinstance(topic.func, ast.Name)
                  and topic.func.id == "topic_for"):
                found.update(t.name for t in KIND_TOPICS.values())
            else:
                raise AssertionError(f"{path}:{node.lineno}: unrecognised publish target")
    return found


def code_access() -> dict[str, Access]:
    """Each Kafka user's needs, from the code: what its service publishes, the dead
    letters of what it consumes (BatchConsumer), its consumers' topics and groups."""
    from pulse_cli.runtime import build_components
    from pulse_ingest.main import build as build_ingest
    from pulse_ingest.settings import IngestSettings
    from pulse_mmm.main import build as build_mmm

    broker = make_broker(None)
    ingest = IngestSettings(pii_salt="a-test-salt-0123456789abcdef")  # type: ignore[arg-type]
    # mmm consumes nothing and is not part of the CLI's pipeline (its fits run on demand).
    components = [build_ingest(None, Bus(broker, "ingest"), ingest),
                  build_mmm(None, Bus(broker, "mmm")),  # type: ignore[arg-type]
                  *build_components(None, broker, in_memory=True)]  # type: ignore[arg-type]
    by_name = {component.name: component for component in components}
    assert set(by_name) == set(SERVICES)
    access: dict[str, Access] = {}
    for svc in SERVICES:
        component = by_name[svc]
        consumed = {consumer.topic for consumer in component.consumers}
        access[f"pulse-{svc}"] = Access(
            write=published_topics(ROOT / "services" / svc / "src" / f"pulse_{svc}")
            | {topic.dead_letter for topic in consumed},
            read={topic.name for topic in consumed},
            group={subscriber.group_id for subscriber in component.router.subscribers},
        )
    # The CLI publishes what ingest publishes (`pulse ingest` runs its service) and its
    # own events (erasures); `pulse replay` runs the consumers of any consumed topic with
    # a group-less consumer, so it reads those topics and publishes what they publish.
    consumers = [access[f"pulse-{svc}"] for svc in SERVICES if access[f"pulse-{svc}"].read]
    access[CLI_USER] = Access(
        write=access["pulse-ingest"].write | published_topics(ROOT / "cli" / "src" / "pulse_cli")
        | {name for needs in consumers for name in needs.write},
        read={name for needs in consumers for name in needs.read},
    )
    return access


# ----------------------------------------------------------------------- compose tests
@pytest.mark.parametrize("svc", SERVICES)
def test_every_service_authenticates_as_its_own_kafka_user(svc: str) -> None:
    env = env_of(svc)
    assert env["PULSE_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
    assert env["PULSE_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert env["PULSE_KAFKA_USERNAME"] == f"pulse-{svc}"
    variable = f"PULSE_KAFKA_{svc.upper()}_PASSWORD"
    assert env["PULSE_KAFKA_PASSWORD"].startswith(f"${{{variable}:?"), "required, from .env"
    # kafka-init sets that user's password from the same variable.
    assert env_of("kafka-init")[variable] == env["PULSE_KAFKA_PASSWORD"]
    # The service's settings accept the environment once the variable has a value.
    settings = PulseSettings(**{  # type: ignore[arg-type]
        k.removeprefix("PULSE_").lower(): v for k, v in env.items()
        if k.startswith("PULSE_KAFKA_")} | {"kafka_password": "a-real-kafka-password"})
    assert settings.kafka_sasl and settings.kafka_username == f"pulse-{svc}"


def test_service_users_are_distinct_and_all_have_acls() -> None:
    users = [env_of(svc)["PULSE_KAFKA_USERNAME"] for svc in SERVICES]
    assert len(set(users)) == len(users)
    assert set(declared_acls()) == {*users, CLI_USER}


@pytest.mark.parametrize("user", [*(f"pulse-{svc}" for svc in SERVICES), CLI_USER])
def test_kafka_init_grants_exactly_what_the_code_produces_and_consumes(user: str) -> None:
    declared = declared_acls()[user]
    needed = code_access()[user]
    assert declared.write == needed.write, "topics the user may write"
    assert declared.read == needed.read, "topics the user may read"
    assert declared.group == needed.group, "consumer group prefixes"
    # Every granted topic exists (kafka-init creates the registry's topics).
    assert declared.write | declared.read <= set(registry.all_topic_names())


def test_broker_authenticates_every_listener_and_denies_what_no_acl_allows() -> None:
    env = env_of("kafka")
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]
                     .split(","))
    listeners = {item.split("://")[0] for item in env["KAFKA_LISTENERS"].split(",")}
    assert set(protocols) == listeners == {"INTERNAL", "CONTROLLER", "HOST"}
    assert set(protocols.values()) == {"SASL_PLAINTEXT"}, "no unauthenticated listener"
    assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
    assert env["KAFKA_AUTHORIZER_CLASS_NAME"] == (
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer")
    assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert env["KAFKA_SUPER_USERS"] == "User:admin"
    # The host port is the HOST listener (SASL too), published on loopback only.
    assert compose_services()["kafka"]["ports"] == [
        "127.0.0.1:${PULSE_KAFKA_HOST_PORT:-29092}:29092"]
    # admin's SCRAM credential is written when the log dir is formatted.
    assert "--add-scram" in script_of("kafka") and "exec /etc/kafka/docker/run" in script_of(
        "kafka")
    assert "--command-config /tmp/admin.properties" in " ".join(
        compose_services()["kafka"]["healthcheck"]["test"])


def test_kafka_init_runs_the_tools_as_admin_and_applies_every_acl_line() -> None:
    script = script_of("kafka-init")
    assert 'username=\\"admin\\"' in script
    assert "kafka-configs.sh --alter --entity-type users" in script
    assert "SCRAM-SHA-512=[password=" in script
    assert "kafka-acls.sh --add --allow-principal" in script
    assert '<<< "${PULSE_KAFKA_ACLS}"' in script
    for grant, (kind, operations) in GRANTS.items():
        case = re.search(rf"^\s*{grant}\)\s*operations=\(([^)]*)\)", script, re.M)
        assert case is not None, grant
        assert case.group(1).split() == [w for op in operations for w in ("--operation", op)]
        assert f'resources+=(--{kind} "${{name}}")' in script


def test_operator_notes_list_every_user_with_its_grants() -> None:
    """docs/kafka-security.md's table: each user's reads and groups as kafka-init grants
    them, and no topic it may not write."""
    doc = (ROOT / "docs" / "kafka-security.md").read_text()
    rows = {row.split("|")[1].strip(" `"): row.split("|")[2:5]
            for row in doc.splitlines() if row.startswith("| `pulse-")}
    acls = declared_acls()
    assert set(rows) == set(acls)
    topic_names = set(registry.all_topic_names())

    def named(cell: str) -> set[str]:
        return {name for name in re.findall(r"`([^`]+)`", cell) if name in topic_names}

    for user, (writes, reads, groups) in rows.items():
        assert named(writes) and named(writes) <= acls[user].write, user
        if user != CLI_USER:  # its reads are described, not listed
            assert named(reads) == acls[user].read, user
        assert set(re.findall(r"`([^`]+)\*`", groups)) == acls[user].group, user


# ------------------------------------------------------------- placeholder passwords
USERS = ("ADMIN", *(svc.upper() for svc in SERVICES), "CLI")
REAL = {f"PULSE_KAFKA_{name}_PASSWORD": f"{name.lower()}-0123456789abcdef" for name in USERS}
PLACEHOLDERS = ("", "change-me-kafka-kpi", "admin", "CHANGEME", "<secret>", "password")


def run_checks(service: str, marker: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The start of a compose script, up to ``marker``, in bash."""
    script = script_of(service)
    head = script.split(marker)[0] + "\nexit 0\n"
    static = {k: v for k, v in env_of(service).items() if not v.startswith("${")}
    return subprocess.run(["bash", "-c", head], env={"PATH": "/usr/bin:/bin", **static, **env},
                          capture_output=True, text=True, check=False)


@pytest.mark.parametrize("password", [*PLACEHOLDERS, 'has"quote', "a,b]", "a-real-pw_123"])
def test_kafka_and_kafka_init_refuse_placeholder_and_unquotable_passwords(password: str) -> None:
    acceptable = not is_placeholder(password) and re.fullmatch(r"[A-Za-z0-9_-]+", password)
    broker = run_checks("kafka", "umask 077", {"PULSE_KAFKA_ADMIN_PASSWORD": password})
    assert (broker.returncode == 0) == bool(acceptable), broker.stderr
    for name in USERS:
        init = run_checks("kafka-init", "# -- passwords checked",
                          REAL | {f"PULSE_KAFKA_{name}_PASSWORD": password})
        assert (init.returncode == 0) == bool(acceptable), (name, init.stderr)


def test_env_example_lists_every_kafka_password_as_a_refused_placeholder() -> None:
    example = dict(
        line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#") and "=" in line
    )
    for variable in REAL:
        assert is_placeholder(example[variable]), variable
        assert run_checks("kafka-init", "# -- passwords checked",
                          REAL | {variable: example[variable]}).returncode == 1


# --------------------------------------------------------------------------- settings
def test_plaintext_needs_no_credentials(clean_env: pytest.MonkeyPatch) -> None:
    settings = PulseSettings()
    assert settings.kafka_security_protocol == "PLAINTEXT" and not settings.kafka_sasl
    assert settings.kafka_sasl_mechanism == "SCRAM-SHA-512"


@pytest.mark.parametrize(("env", "missing"), [
    ({}, "PULSE_KAFKA_USERNAME and PULSE_KAFKA_PASSWORD"),
    ({"PULSE_KAFKA_USERNAME": "pulse-kpi"}, "needs PULSE_KAFKA_PASSWORD"),
    ({"PULSE_KAFKA_PASSWORD": "a-real-kafka-password"}, "needs PULSE_KAFKA_USERNAME"),
])
@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_sasl_without_credentials_is_refused_naming_the_variables(
    clean_env: pytest.MonkeyPatch, protocol: str, env: dict[str, str], missing: str
) -> None:
    clean_env.setenv("PULSE_KAFKA_SECURITY_PROTOCOL", protocol)
    for name, value in env.items():
        clean_env.setenv(name, value)
    with pytest.raises(ValidationError, match=f"PULSE_KAFKA_SECURITY_PROTOCOL={protocol} "
                                              f".*{missing}"):
        PulseSettings()


def test_unknown_protocol_or_mechanism_is_refused(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("PULSE_KAFKA_SECURITY_PROTOCOL", "SSL_PLAIN")
    with pytest.raises(ValidationError, match="kafka_security_protocol"):
        PulseSettings()
    clean_env.setenv("PULSE_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    clean_env.setenv("PULSE_KAFKA_SASL_MECHANISM", "PLAIN")
    with pytest.raises(ValidationError, match="kafka_sasl_mechanism"):
        PulseSettings(kafka_username="u", kafka_password="a-real-kafka-password")


def sasl_settings(password: str = "a-real-kafka-password", **more: Any) -> PulseSettings:
    fields = {"kafka_bootstrap": "kafka:9092", "kafka_security_protocol": "SASL_PLAINTEXT",
              "kafka_username": "pulse-kpi", "kafka_password": password}
    return PulseSettings(**(fields | more))


@pytest.mark.parametrize("password", ["change-me-kafka-kpi", "admin", "<kafka-password>"])
def test_start_up_refuses_a_placeholder_kafka_password(password: str) -> None:
    with pytest.raises(ConfigurationError, match="^PULSE_KAFKA_PASSWORD is a placeholder"):
        refuse_insecure_startup(sasl_settings(password))
    # Every connection refuses it too (the ingest API and the CLI connect through these).
    with pytest.raises(ConfigurationError, match="^PULSE_KAFKA_PASSWORD"):
        make_broker("kafka:9092", settings=sasl_settings(password))
    refuse_insecure_startup(sasl_settings())  # a real one passes


@pytest.mark.parametrize("svc", SERVICES)
def test_services_refuse_a_placeholder_kafka_password_at_start(
    svc: str, clean_env: pytest.MonkeyPatch
) -> None:
    """The services' console entry points refuse it before listening (ingest while
    building its broker, the others in refuse_insecure_startup)."""
    import importlib

    import uvicorn

    main = importlib.import_module(f"pulse_{svc}.main")
    if svc != "ingest":
        clean_env.setattr(main, "create_app", lambda *a: pytest.fail("refused before"))

    clean_env.setenv("PULSE_KAFKA_BOOTSTRAP", "kafka:9092")
    clean_env.setenv("PULSE_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    clean_env.setenv("PULSE_KAFKA_USERNAME", f"pulse-{svc}")
    clean_env.setenv("PULSE_KAFKA_PASSWORD", f"change-me-kafka-{svc}")
    clean_env.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("must not listen"))
    with pytest.raises(SystemExit, match="PULSE_KAFKA_PASSWORD is a placeholder"):
        main.run()


# ------------------------------------------------------------------------ make_broker
def consumer_options(broker: Any) -> dict[str, Any]:
    """The keyword arguments FastStream builds every consumer of ``broker`` with."""
    return dict(broker.config.broker_config.builder.keywords)


def test_make_broker_authenticates_with_scram_from_the_settings() -> None:
    from faststream.security import SASLScram256, SASLScram512

    broker = make_broker("kafka:9092", client_id="pulse-kpi", settings=sasl_settings())
    assert isinstance(broker.specification.security, SASLScram512)
    options = consumer_options(broker)
    assert options["security_protocol"] == "SASL_PLAINTEXT"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "pulse-kpi"
    assert options["sasl_plain_password"] == "a-real-kafka-password"
    assert options["ssl_context"] is None

    tls = sasl_settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-256")
    broker = make_broker("kafka:9093", settings=tls)
    assert isinstance(broker.specification.security, SASLScram256)
    options = consumer_options(broker)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-256"
    assert options["ssl_context"].verify_mode.name == "CERT_REQUIRED"
    # Plain aiokafka clients (pulse replay's consumer and admin) get the same.
    client = kafka_client_security(tls)
    assert {k: client[k] for k in ("security_protocol", "sasl_mechanism",
                                   "sasl_plain_username", "sasl_plain_password")} == {
        k: options[k] for k in ("security_protocol", "sasl_mechanism",
                                "sasl_plain_username", "sasl_plain_password")}


def test_make_broker_reads_the_common_settings_by_default(
    clean_env: pytest.MonkeyPatch,
) -> None:
    """Existing callers, ``make_broker(bootstrap, client_id=…)``, get SASL unchanged."""
    from pulse_shared.settings import common_settings

    clean_env.setenv("PULSE_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    clean_env.setenv("PULSE_KAFKA_USERNAME", "pulse-alerts")
    clean_env.setenv("PULSE_KAFKA_PASSWORD", "an-alerts-password")
    common_settings.cache_clear()
    try:
        options = consumer_options(make_broker("kafka:9092", client_id="pulse-alerts"))
        assert options["sasl_plain_username"] == "pulse-alerts"
        assert kafka_client_security()["sasl_plain_username"] == "pulse-alerts"
    finally:
        common_settings.cache_clear()


def test_plaintext_and_in_memory_brokers_have_no_security() -> None:
    plaintext = PulseSettings(kafka_bootstrap="kafka:9092")
    assert make_broker("kafka:9092", settings=plaintext).specification.security is None
    assert "sasl_mechanism" not in consumer_options(make_broker("kafka:9092", settings=plaintext))
    assert kafka_client_security(plaintext) == {}
    # The in-memory bus never connects: no credentials needed even when SASL is set.
    assert make_broker(None, settings=sasl_settings()).specification.security is None


# ---------------------------------------------------------------- a real SASL broker
ADMIN_PASSWORD = "admin-0123456789abcdef"
#: kafka-init's job for the test broker (its shell tools are not in the test jars): set
#: SCRAM users and add ACLs through the Admin API, with kafka-acls.sh's meaning of the
#: grants (topics literal, groups prefixed). Lines on stdin: "scram USER PASSWORD" and
#: "acl USER OPERATION topic|group NAME".
ACL_TOOL = r"""
import java.util.*;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.common.acl.*;
import org.apache.kafka.common.resource.*;

public class PulseKafkaInit {
  public static void main(String[] args) throws Exception {
    Properties props = new Properties();
    props.put("bootstrap.servers", args[0]);
    props.put("security.protocol", "SASL_PLAINTEXT");
    props.put("sasl.mechanism", "SCRAM-SHA-512");
    props.put("sasl.jaas.config", "org.apache.kafka.common.security.scram.ScramLoginModule"
        + " required username=\"admin\" password=\"" + args[1] + "\";");
    List<UserScramCredentialAlteration> users = new ArrayList<>();
    List<AclBinding> acls = new ArrayList<>();
    Scanner in = new Scanner(System.in);
    while (in.hasNextLine()) {
      String[] f = in.nextLine().trim().split("\\s+");
      if (f[0].equals("scram")) {
        users.add(new UserScramCredentialUpsertion(
            f[1], new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), f[2]));
      } else if (f[0].equals("acl")) {
        ResourcePattern resource = f[3].equals("group")
            ? new ResourcePattern(ResourceType.GROUP, f[4], PatternType.PREFIXED)
            : new ResourcePattern(ResourceType.TOPIC, f[4], PatternType.LITERAL);
        acls.add(new AclBinding(resource, new AccessControlEntry(
            "User:" + f[1], "*", AclOperation.fromString(f[2]), AclPermissionType.ALLOW)));
      }
    }
    try (Admin admin = Admin.create(props)) {
      admin.alterUserScramCredentials(users).all().get();
      admin.createAcls(acls).all().get();
    }
  }
}
"""


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?message}``."""
    def substitute(match: re.Match[str]) -> str:
        name, operator, rest = match.group(1), match.group(2), match.group(3)
        if name in variables:
            return variables[name]
        assert operator == ":-", f"{name} must be set"
        return rest

    return re.sub(r"\$\{([A-Z0-9_]+)(?:(:[-?])([^}]*))?\}", substitute, value)


def compose_broker_properties(ports: dict[str, int]) -> dict[str, str]:
    """server.properties as the apache/kafka image renders it from the compose file's
    ``KAFKA_*`` variables (``_`` → ``.``, ``__`` → ``_``, ``___`` → ``-``), with this
    machine's ports and the test's admin password."""
    properties = {}
    for name, value in env_of("kafka").items():
        if not name.startswith("KAFKA_"):
            continue
        key = (name.removeprefix("KAFKA_").lower().replace("___", "-").replace("__", "\0")
               .replace("_", ".").replace("\0", "_"))
        properties[key] = interpolate(value, {"PULSE_KAFKA_ADMIN_PASSWORD": ADMIN_PASSWORD})
    listeners = ",".join(f"{name}://127.0.0.1:{port}" for name, port in ports.items())
    properties.update({
        "listeners": listeners,
        "advertised.listeners": ",".join(
            f"{name}://127.0.0.1:{port}" for name, port in ports.items() if name != "CONTROLLER"),
        "controller.quorum.voters": f"1@127.0.0.1:{ports['CONTROLLER']}",
    })
    del properties["log.dirs"]  # the test broker's work dir
    return properties


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A broker with docker-compose.yml's security settings and kafka-init's users, ACLs
    and topics. Services connect to INTERNAL (``port``), the CLI to HOST."""
    if shutil.which("java") is None:
        pytest.skip("java not found")
    from pulse_testinfra._proc import free_ports
    from pulse_testinfra.kafka import KafkaBroker

    internal, host, controller = free_ports(3)
    ports = {"INTERNAL": internal, "CONTROLLER": controller, "HOST": host}

    class ComposeSecuredBroker(KafkaBroker):
        """What differs from the plain test broker: compose's properties, admin's SCRAM
        credential at format time (as the compose command does), SASL readiness probe."""

        def properties(self) -> dict[str, str]:
            return super().properties() | compose_broker_properties(ports)

        def _format_storage(self) -> None:
            if (self.data_dir / "meta.properties").is_file():
                return
            command = self._java_cmd(
                "kafka.tools.StorageTool", "format", "--cluster-id", self.cluster_id,
                "--config", str(self.config_path),
                "--add-scram", f"SCRAM-SHA-512=[name=admin,password={ADMIN_PASSWORD}]")
            subprocess.run(command, check=True, capture_output=True, cwd=self.workdir)

        async def _describe_brokers(self) -> list[object]:
            from aiokafka.admin import AIOKafkaAdminClient

            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers,
                                        request_timeout_ms=5000, **admin_security())
            await admin.start()
            try:
                return list((await admin.describe_cluster()).get("brokers") or [])
            finally:
                await admin.close()

    broker = ComposeSecuredBroker(tmp_path_factory.mktemp("kafka-sasl"), port=internal,
                                  controller_port=controller, startup_timeout=120)
    with broker:
        broker.start()
        run_kafka_init(broker, tmp_path_factory.mktemp("kafka-init"))
        yield broker


def admin_security() -> dict[str, Any]:
    return kafka_client_security(PulseSettings(
        kafka_security_protocol="SASL_PLAINTEXT", kafka_username="admin",
        kafka_password=ADMIN_PASSWORD))


def user_settings(user: str, bootstrap: str) -> PulseSettings:
    return PulseSettings(kafka_bootstrap=bootstrap, kafka_security_protocol="SASL_PLAINTEXT",
                         kafka_username=user, kafka_password=f"{user}-0123456789abcdef")


def run_kafka_init(broker: Any, workdir: Path) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    async def create_topics() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap_servers,
                                    **admin_security())
        await admin.start()
        try:
            await admin.create_topics([NewTopic(name, 1, 1)
                                       for name in env_of("kafka-init")["PULSE_TOPICS"].split()])
        finally:
            await admin.close()

    asyncio.run(create_topics())
    lines = [f"scram {user} {user}-0123456789abcdef" for user in declared_acls()]
    for user, access in declared_acls().items():
        for grant, (kind, operations) in GRANTS.items():
            lines += [f"acl {user} {operation} {kind} {name}"
                      for name in sorted(getattr(access, grant)) for operation in operations]
    tool = workdir / "PulseKafkaInit.java"
    tool.write_text(ACL_TOOL)
    from pulse_testinfra.kafka import fetch_jars

    subprocess.run(["java", "-cp", f"{fetch_jars(quiet=True)}/*", str(tool),
                    broker.bootstrap_servers, ADMIN_PASSWORD],
                   input="\n".join(lines), text=True, check=True, capture_output=True,
                   timeout=120)


async def publish(settings: PulseSettings, topic: str) -> None:
    assert settings.kafka_bootstrap is not None
    broker = make_broker(settings.kafka_bootstrap, client_id="acl-test", settings=settings)
    try:
        await broker.connect()
        await broker.publish(b"{}", topic=topic)
    finally:
        await broker.stop()


def test_a_service_user_publishes_to_its_topic_and_is_refused_another(sasl_broker: Any) -> None:
    from aiokafka.errors import TopicAuthorizationFailedError

    kpi = user_settings("pulse-kpi", sasl_broker.bootstrap_servers)
    asyncio.run(publish(kpi, registry.KPI_SNAPSHOTS.name))
    asyncio.run(publish(kpi, registry.SPEND.dead_letter))
    with pytest.raises(TopicAuthorizationFailedError):
        asyncio.run(publish(kpi, registry.ALERTS.name))  # the alerts service's topic
    with pytest.raises(TopicAuthorizationFailedError):
        asyncio.run(publish(kpi, registry.SPEND.name))  # it only reads its inputs


def test_a_service_consumes_its_topics_in_its_group_only(sasl_broker: Any) -> None:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.errors import GroupAuthorizationFailedError, TopicAuthorizationFailedError

    asyncio.run(publish(user_settings("pulse-ingest", sasl_broker.bootstrap_servers),
                        registry.SPEND.name))

    async def consume(topic: str, group: str) -> list[bytes]:
        security = kafka_client_security(user_settings("pulse-kpi", sasl_broker.bootstrap_servers))
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=sasl_broker.bootstrap_servers,
                                    group_id=group, auto_offset_reset="earliest", **security)
        try:
            await consumer.start()
            batches = await consumer.getmany(timeout_ms=15000, max_records=1)
            await consumer.commit()
            return [record.value for records in batches.values() for record in records]
        finally:
            await consumer.stop()

    assert asyncio.run(consume(registry.SPEND.name, "pulse-kpi")) == [b"{}"]
    with pytest.raises(GroupAuthorizationFailedError):
        asyncio.run(consume(registry.SPEND.name, "pulse-alerts"))
    with pytest.raises(TopicAuthorizationFailedError):
        asyncio.run(consume(registry.ALERTS.name, "pulse-kpi"))


def test_the_host_listener_requires_sasl_too(
    sasl_broker: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from aiokafka.errors import KafkaConnectionError

    listeners = sasl_broker.properties()["listeners"].split(",")
    (host_listener,) = (item for item in listeners if item.startswith("HOST://"))
    host = host_listener.removeprefix("HOST://")
    cli = user_settings(CLI_USER, host)
    asyncio.run(publish(cli, registry.ERASURES.name))  # `pulse privacy erase` from the host

    # Without SASL the broker closes the connection before answering anything.
    with pytest.raises(KafkaConnectionError):
        asyncio.run(publish(PulseSettings(kafka_bootstrap=host), registry.ERASURES.name))
    wrong = PulseSettings(kafka_bootstrap=host, kafka_security_protocol="SASL_PLAINTEXT",
                          kafka_username=CLI_USER, kafka_password="not-the-cli-password")
    with caplog.at_level("ERROR", logger="aiokafka"), pytest.raises(KafkaConnectionError):
        asyncio.run(publish(wrong, registry.ERASURES.name))
    assert "SaslAuthenticationFailed" in caplog.text
