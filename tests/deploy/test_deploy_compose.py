"""docker-compose.yml: parses, and every reference in it exists in the repository."""

from __future__ import annotations

import re
import tomllib

import pytest
from deploy_support import (
    PORTS,
    ROOT,
    SERVICES,
    compose,
    console_scripts,
    container_command,
    parse_dockerfile,
    service_image,
    unknown_env,
)

INFRA = ("kafka", "clickhouse", "prometheus", "grafana")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|SALT|API_KEYS|WEBHOOK_URL|TOKEN", re.I)


def services() -> dict:
    return compose()["services"]


def env_of(name: str) -> dict[str, str]:
    env = services()[name].get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


def test_every_pulse_service_and_the_infrastructure_are_defined() -> None:
    defined = set(services())
    assert set(SERVICES) | set(INFRA) | {"kafka-init", "migrate"} <= defined
    assert services()["kafka"]["image"].startswith("apache/kafka:")
    assert services()["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")
    assert "grafana-clickhouse-datasource" in env_of("grafana")["GF_INSTALL_PLUGINS"]


@pytest.mark.parametrize("svc", SERVICES)
def test_service_is_built_from_the_template_at_the_repo_root(svc: str) -> None:
    build = services()[svc]["build"]
    assert build["context"] == "."
    assert build["dockerfile"] == "deploy/Dockerfile"
    assert build["args"] == {"SERVICE": svc, "PORT": str(PORTS[svc])}
    assert (ROOT / build["dockerfile"]).is_file()


@pytest.mark.parametrize("svc", SERVICES)
def test_service_command_is_its_console_script(svc: str) -> None:
    """The container runs the image CMD, which must resolve to the service's console script."""
    assert "command" not in services()[svc] and "entrypoint" not in services()[svc]
    assert container_command(service_image(svc)) == [f"pulse-{svc}"]
    assert f"pulse-{svc}" in console_scripts(f"services/{svc}")


@pytest.mark.parametrize("svc", SERVICES)
def test_service_env_names_exist_in_the_settings_classes(svc: str) -> None:
    env = env_of(svc)
    assert not unknown_env(svc, set(env)), "env vars no settings class reads"
    assert env[f"PULSE_{svc.upper()}_PORT"] == str(PORTS[svc])
    assert env["PULSE_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert env["PULSE_CLICKHOUSE_URL"] == "http://clickhouse:8123"


@pytest.mark.parametrize("svc", SERVICES)
def test_service_waits_for_healthy_infra_topics_and_migrations(svc: str) -> None:
    depends = services()[svc]["depends_on"]
    assert depends["kafka"]["condition"] == "service_healthy"
    assert depends["clickhouse"]["condition"] == "service_healthy"
    assert depends["kafka-init"]["condition"] == "service_completed_successfully"
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    # The healthcheck comes from the image (HEALTHCHECK on /health), not overridden here.
    assert services()[svc].get("healthcheck", {}).get("disable") is not True


@pytest.mark.parametrize("name", [*INFRA])
def test_infrastructure_has_a_healthcheck(name: str) -> None:
    check = services()[name]["healthcheck"]
    assert check["test"][0] in ("CMD", "CMD-SHELL")
    assert check["retries"] >= 3


def test_migrate_job_runs_pulse_migrate_from_the_cli_image() -> None:
    job = services()["migrate"]
    assert job["command"] == ["migrate"]
    assert job["restart"] == "no"
    assert job["depends_on"]["clickhouse"]["condition"] == "service_healthy"
    dockerfile = parse_dockerfile(ROOT / job["build"]["dockerfile"])
    (entry,) = dockerfile.final("ENTRYPOINT")
    assert entry.json_args() == ["pulse"]
    assert "pulse" in console_scripts("cli")
    # `pulse migrate` must be a command of the CLI.
    from typer.main import get_command

    from pulse_cli.main import app

    assert "migrate" in get_command(app).commands  # type: ignore[attr-defined]
    assert env_of("migrate")["PULSE_CLICKHOUSE_USER"] == "pulse_writer"


def test_kafka_init_creates_exactly_the_registry_topics() -> None:
    from pulse_shared.topics import all_topic_names

    init = services()["kafka-init"]
    topics = env_of("kafka-init")["PULSE_TOPICS"].split()
    assert sorted(topics) == sorted(all_topic_names())
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
    script = "\n".join(init["command"])
    assert "--if-not-exists" in script and "kafka-topics.sh" in script


def test_kafka_is_kraft_with_a_valid_cluster_id_and_persistent_log_dir() -> None:
    env = env_of("kafka")
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"]), "base64 UUID, 22 chars"
    assert "kafka-data:/var/lib/kafka/data" in services()["kafka"]["volumes"]
    assert env["KAFKA_LOG_DIRS"] == "/var/lib/kafka/data"


def test_no_secret_values_in_the_file() -> None:
    for name, svc in services().items():
        for key, value in env_of(name).items():
            if SECRET_NAME.search(key):
                assert value == "" or value.startswith("${"), f"{name}.{key} is a literal"
        assert "env_file" not in svc or all(
            str(f).endswith(".env") for f in svc["env_file"]
        )
    # No placeholder value anywhere but in the Grafana entrypoint's list of refused ones.
    text = (ROOT / "docker-compose.yml").read_text()
    outside = re.sub(r"\n    entrypoint:.*?exec /run\.sh\n", "\n", text, flags=re.S)
    assert outside != text and "change-me" not in outside


def test_env_example_lists_every_variable_the_compose_file_interpolates() -> None:
    text = "\n".join(
        line for line in (ROOT / "docker-compose.yml").read_text().splitlines()
        if not line.lstrip().startswith("#")
    )
    # ${VAR...} is interpolated by compose; $${VAR} is left to the container's shell.
    used = set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)(?::?[-?][^}]*)?\}", text))
    example = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#") and "=" in line
    }
    assert used <= example, f"missing from .env.example: {sorted(used - example)}"
    required = set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+):\?", text))
    assert {"PULSE_CLICKHOUSE_WRITER_PASSWORD", "PULSE_CLICKHOUSE_READER_PASSWORD",
            "PULSE_INGEST_PII_SALT", "GRAFANA_ADMIN_PASSWORD"} <= required


def test_named_volumes_are_declared_and_bind_mounts_exist() -> None:
    declared = set(compose()["volumes"])
    for name, svc in services().items():
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in declared, f"{name}: volume {source} not declared"
    assert {"kafka-data", "clickhouse-data", "prometheus-data", "grafana-data"} <= declared


def test_clickhouse_users_config_is_mounted_and_grafana_reads_as_reader() -> None:
    ch = services()["clickhouse"]
    assert any("deploy/clickhouse/users.d/pulse-users.xml" in v for v in ch["volumes"])
    assert env_of("clickhouse")["CLICKHOUSE_DB"] == env_of("ingest")["PULSE_CLICKHOUSE_DATABASE"]
    reporting = env_of("reporting")
    assert reporting["PULSE_REPORTING_CLICKHOUSE_USER"] == "pulse_reader"


def test_uv_lock_contains_every_service_package() -> None:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    locked = {p["name"] for p in lock["package"]}
    assert {f"pulse-{svc}" for svc in SERVICES} | {"pulse-cli"} <= locked


def test_operations_doc_matches_the_compose_images_and_ports() -> None:
    """docs/operations.md's table is what users read first: keep it in step."""
    doc = (ROOT / "docs" / "operations.md").read_text()
    for name in INFRA:
        image = services()[name]["image"]
        assert f"`{image}`" in doc, f"docs/operations.md does not name {image}"
    for svc in SERVICES:
        row = next(line for line in doc.splitlines() if line.startswith(f"| {svc} |"))
        assert f"| {PORTS[svc]} |" in row, row
        assert "`deploy/Dockerfile`" in row and f"`SERVICE={svc}`" in row, row
        assert f"`pulse-{svc}`" in row, row
