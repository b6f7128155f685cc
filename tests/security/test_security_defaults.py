"""Secure defaults (issue 15): bind address, demo mode alone, placeholder secrets refused,
compose/k8s/ClickHouse exposure, the reporting reader, salted API keys."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from pulse_shared.config_checks import ConfigurationError, check_secret, is_placeholder
from pulse_shared.settings import PulseSettings, common_settings

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "deploy"))
from deploy_support import PORTS, SERVICES, compose, k8s_documents, service_image  # noqa: E402

PLACEHOLDERS = ["", "changeme", "change-me-writer", "CHANGE-ME", "password", "secret", "admin"]


REAL_CREATE_APP: dict[str, Any] = {}


def start(svc: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Run the service's console entry point with uvicorn and the app replaced."""
    import uvicorn

    main = importlib.import_module(f"pulse_{svc}.main")
    captured: dict[str, Any] = {}
    real_create_app = REAL_CREATE_APP.setdefault(svc, main.create_app)

    def create_app(settings: Any) -> object:
        if svc == "ingest":  # its start-up checks (salt, demo) happen while building
            from pulse_shared.bus import make_broker

            real_create_app(settings, broker=make_broker(None))
        return "app"

    monkeypatch.setattr(main, "create_app", create_app)
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: captured.update(kw, app=app))
    common_settings.cache_clear()
    main.run()
    return captured


# ------------------------------------------------------------------ bind address
@pytest.mark.parametrize("svc", SERVICES)
def test_services_bind_loopback_by_default_and_the_image_sets_every_interface(
    svc: str, clean_env: pytest.MonkeyPatch
) -> None:
    assert start(svc, clean_env)["host"] == "127.0.0.1"
    image_env = service_image(svc).env()
    host_vars = {k: v for k, v in image_env.items() if k.upper() == f"PULSE_{svc.upper()}_HOST"}
    assert list(host_vars.values()) == ["0.0.0.0"], image_env
    for name, value in host_vars.items():  # as Docker spells it (PULSE_kpi_HOST)
        clean_env.setenv(name, value)
    captured = start(svc, clean_env)
    assert captured["host"] == "0.0.0.0" and captured["port"] == PORTS[svc]


# ------------------------------------------------------------------ malformed settings
@pytest.mark.parametrize("svc", SERVICES)
def test_services_refuse_a_malformed_setting_naming_the_variable(
    svc: str, clean_env: pytest.MonkeyPatch
) -> None:
    variable = f"PULSE_{svc.upper()}_PORT"
    clean_env.setenv(variable, "eighty")
    with pytest.raises(SystemExit) as refused:
        start(svc, clean_env)
    assert str(refused.value.code) == (
        f"configuration: {variable}: Input should be a valid integer, unable to parse string "
        "as an integer")


@pytest.mark.parametrize(("variable", "value", "reason"), [
    ("PULSE_ALERTS_FLUSH_AFTER_S", "-1", "greater than or equal to 0"),
    ("PULSE_CONSUMER_FLUSH_AFTER_S", "-5", "greater than or equal to 0"),  # common settings
])
def test_an_out_of_range_setting_is_one_line_not_a_traceback(
    variable: str, value: str, reason: str, clean_env: pytest.MonkeyPatch
) -> None:
    """The real console script, as an operator starts it: stderr is one line, exit 1."""
    script = Path(sys.executable).with_name("pulse-alerts")
    done = subprocess.run([str(script)], env={**os.environ, variable: value},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"configuration: {variable}: Input should be {reason}"]


# ------------------------------------------------------------------ demo mode
@pytest.mark.parametrize("server", ["PULSE_KAFKA_BOOTSTRAP", "PULSE_CLICKHOUSE_URL"])
def test_demo_mode_refuses_to_run_beside_a_server(
    server: str, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pulse_ingest.settings import IngestSettings

    clean_env.setenv(server, "localhost:9092" if "KAFKA" in server else "http://localhost:8123")
    with pytest.raises(ConfigurationError, match=f"PULSE_INGEST_DEMO=true .*{server}"):
        IngestSettings(demo=True).salt()
    clean_env.setenv("PULSE_INGEST_DEMO", "true")
    with pytest.raises(SystemExit) as exited:
        start("ingest", clean_env)
    message = str(exited.value.code)
    assert "PULSE_INGEST_DEMO" in message and server in message and "\n" not in message


def test_demo_mode_alone_still_runs(clean_env: pytest.MonkeyPatch) -> None:
    from pulse_ingest.settings import DEMO_SALT, IngestSettings

    assert IngestSettings(demo=True, pii_salt="").salt() == DEMO_SALT


# ------------------------------------------------------------------ placeholder secrets
@pytest.mark.parametrize("value", PLACEHOLDERS)
def test_placeholders_are_refused_naming_the_setting(value: str) -> None:
    assert is_placeholder(value)
    with pytest.raises(ConfigurationError, match="^PULSE_X "):
        check_secret("PULSE_X", value)


def test_real_secrets_pass() -> None:
    for value in ("pulse-writer-pw", "Zq3-long-random-value", "my-secretive-pw"):
        assert not is_placeholder(value) and check_secret("PULSE_X", value) == value


def env_example() -> dict[str, str]:
    out = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            name, _, value = line.partition("=")
            out[name] = value
    return out


def test_env_example_secrets_never_pass() -> None:
    from pulse_ingest.settings import MIN_SALT_LENGTH

    example = env_example()
    secrets = [n for n in example if n.endswith(("_PASSWORD", "_SALT")) and "SMTP" not in n]
    assert {"PULSE_CLICKHOUSE_WRITER_PASSWORD", "PULSE_CLICKHOUSE_READER_PASSWORD",
            "PULSE_INGEST_PII_SALT", "GRAFANA_ADMIN_PASSWORD"} <= set(secrets)
    for name in secrets:
        with pytest.raises(ConfigurationError, match=name):
            check_secret(name, example[name], min_length=MIN_SALT_LENGTH if "SALT" in name else 0)


@pytest.mark.parametrize("svc", ["attribution", "kpi", "alerts", "reporting"])
def test_services_refuse_a_placeholder_clickhouse_password(
    svc: str, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("PULSE_CLICKHOUSE_URL", "http://localhost:8123")
    clean_env.setenv("PULSE_CLICKHOUSE_PASSWORD", env_example()["PULSE_CLICKHOUSE_WRITER_PASSWORD"])
    with pytest.raises(SystemExit, match="PULSE_CLICKHOUSE_PASSWORD is a placeholder"):
        start(svc, clean_env)
    clean_env.setenv("PULSE_CLICKHOUSE_PASSWORD", "a-real-writer-password")
    assert start(svc, clean_env)["app"] == "app"


def grafana_entrypoint_accepts(password: str) -> bool:
    script = compose()["services"]["grafana"]["entrypoint"][2]
    script = script.replace("$$", "$").replace("exec /run.sh", "exit 0")
    done = subprocess.run(["sh", "-c", script], env={"GF_SECURITY_ADMIN_PASSWORD": password,
                                                     "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True)
    return done.returncode == 0


@pytest.mark.parametrize("password", [*PLACEHOLDERS, "change-me-grafana", "a-strong-grafana-pw"])
def test_grafana_entrypoint_refuses_the_same_placeholders(password: str) -> None:
    assert grafana_entrypoint_accepts(password) == (not is_placeholder(password))


# ------------------------------------------------------------------ exposure
def test_compose_publishes_ports_on_loopback_only_and_prometheus_has_no_lifecycle_api() -> None:
    services = compose()["services"]
    published = [(name, port) for name, s in services.items() for port in s.get("ports", [])]
    assert {name for name, _ in published} >= {"kafka", "clickhouse", "ingest", "prometheus",
                                               "grafana"}
    for name, port in published:
        assert str(port).startswith("127.0.0.1:"), (name, port)
    assert not any("lifecycle" in arg for arg in services["prometheus"]["command"])


def test_k8s_network_policies_allow_only_each_services_port() -> None:
    policies = {d["metadata"]["name"]: d for _, d in k8s_documents() if d["kind"] == "NetworkPolicy"}
    deny = policies["pulse-default-deny-ingress"]["spec"]
    assert deny["podSelector"] == {} and deny["policyTypes"] == ["Ingress"] and "ingress" not in deny
    for svc in SERVICES:
        spec = policies[f"pulse-{svc}"]["spec"]
        assert spec["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": f"pulse-{svc}"}
        ports = [p for rule in spec["ingress"] for p in rule["ports"]]
        assert ports == [{"protocol": "TCP", "port": PORTS[svc]}]
        sources = [s for rule in spec["ingress"] for s in rule["from"]]
        assert sources and all("namespaceSelector" in s for s in sources)  # never "from anywhere"


def test_clickhouse_reader_profile_is_readonly_1() -> None:
    users = ET.parse(ROOT / "deploy" / "clickhouse" / "users.d" / "pulse-users.xml").getroot()
    assert users.findtext("profiles/pulse_reader/readonly") == "1"


# ------------------------------------------------------------------ reporting reader
def test_reporting_refuses_the_writer_when_a_server_is_configured() -> None:
    from pulse_reporting.settings import ReportingSettings

    server = PulseSettings(clickhouse_url="http://localhost:8123")
    with pytest.raises(ConfigurationError, match="PULSE_REPORTING_CLICKHOUSE_USER"):
        ReportingSettings(clickhouse_user=None).reader_credentials(server)
    with pytest.raises(ConfigurationError, match="PULSE_REPORTING_CLICKHOUSE_PASSWORD"):
        ReportingSettings(clickhouse_user="pulse_reader",
                          clickhouse_password="change-me-reader").reader_credentials(server)
    assert ReportingSettings(clickhouse_user="pulse_reader", clickhouse_password="reader-pw-1"
                             ).reader_credentials(server) == ("pulse_reader", "reader-pw-1")
    assert ReportingSettings(clickhouse_user=None).reader_credentials(PulseSettings()) == (None, None)


# ------------------------------------------------------------------ API keys
KEY = "k" * 8 + "-0123456789abcdefghijklmnopqrstu"


def test_api_key_hashes_are_salted_and_checked() -> None:
    from pulse_ingest.settings import ApiKey, IngestSettings, hash_api_key, verify_api_key

    first, second = hash_api_key(KEY), hash_api_key(KEY)
    assert first != second and first.startswith("scrypt:")
    assert verify_api_key(KEY, first) and verify_api_key(KEY, second)
    assert not verify_api_key(KEY + "x", first)
    settings = IngestSettings(api_keys=[ApiKey(name="other", key_hash=hash_api_key("o" * 40)),
                                        ApiKey(name="hubspot", key_hash=first)])
    found = settings.find_key(KEY)
    assert found is not None and found.name == "hubspot" and settings.key_id(found) == "key-2"
    assert settings.find_key(KEY) is found  # remembered: no second scrypt
    assert settings.find_key("x" * 40) is None


def test_short_keys_are_refused_without_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    from pulse_ingest import settings as ingest_settings
    from pulse_ingest.settings import MIN_KEY_LENGTH, ApiKey, IngestSettings, hash_api_key

    with pytest.raises(ConfigurationError, match=f"at least {MIN_KEY_LENGTH}"):
        hash_api_key("k" * (MIN_KEY_LENGTH - 1))
    settings = IngestSettings(api_keys=[ApiKey(name="a", key_hash=hash_api_key(KEY))])

    def never(*_: object) -> bool:
        raise AssertionError("a short key must not be hashed")

    monkeypatch.setattr(ingest_settings, "verify_api_key", never)
    assert settings.find_key(KEY[: MIN_KEY_LENGTH - 1]) is None


def test_unsalted_sha256_keys_are_refused_with_how_to_rehash() -> None:
    import hashlib

    from pydantic import ValidationError

    from pulse_ingest.settings import IngestSettings

    legacy = [{"name": "hubspot", "key_sha256": hashlib.sha256(KEY.encode()).hexdigest()}]
    with pytest.raises(ValidationError, match="pulse ingest hash-key"):
        IngestSettings(api_keys=legacy)


async def test_metrics_label_keys_by_id_never_by_name() -> None:
    import httpx

    from pulse_ingest.api import build_api
    from pulse_ingest.service import IngestService
    from pulse_ingest.settings import ApiKey, IngestSettings, hash_api_key
    from pulse_shared.bus import Bus, make_broker
    from pulse_shared.logging import configure_logging

    configure_logging("INFO", False)  # on this test's stdout (start() configured an older one)
    settings = IngestSettings(pii_salt="a-real-salt-0123456789",
                              api_keys=[ApiKey(name="secret-partner-name", key_hash=hash_api_key(KEY))])
    from faststream.kafka import TestKafkaBroker

    broker = make_broker(None)
    async with TestKafkaBroker(broker):
        service = IngestService(Bus(broker, "ingest", in_memory=True), settings)
        transport = httpx.ASGITransport(app=build_api(service))
        async with httpx.AsyncClient(transport=transport, base_url="http://i") as client:
            row = {"month": "2026-11", "channel": "paid_search", "amount": 100}
            sent = await client.post("/v1/budgets", json=[row], headers={"X-API-Key": KEY})
            assert sent.status_code == 200, sent.text
            text = (await client.get("/metrics")).text
    assert 'source="key-1"' in text and "secret-partner-name" not in text
