"""Prometheus scrape config and pipeline alert rules."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from deploy_support import PORTS, ROOT, SERVICES, compose, metric_names, promql_metric_names

PROM = ROOT / "deploy" / "prometheus"
RULE_FILES = sorted((PROM / "rules").glob("*.yml"))


def config() -> dict[str, Any]:
    data = yaml.safe_load((PROM / "prometheus.yml").read_text())
    assert isinstance(data, dict)
    return data


def rules() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            out += group["rules"]
    return out


@pytest.mark.parametrize("svc", SERVICES)
def test_every_service_is_scraped_on_its_port(svc: str) -> None:
    jobs = {j["job_name"]: j for j in config()["scrape_configs"]}
    job = jobs[f"pulse-{svc}"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    (sd,) = job["dns_sd_configs"]
    # DNS discovery of the compose service name finds every replica after --scale.
    assert sd["names"] == [svc] and sd["type"] == "A" and sd["port"] == PORTS[svc]
    assert svc in compose()["services"]


def test_rule_files_are_loaded_from_the_mounted_directory() -> None:
    assert config()["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    mounts = compose()["services"]["prometheus"]["volumes"]
    assert "./deploy/prometheus/rules:/etc/prometheus/rules:ro" in mounts
    assert RULE_FILES


def test_pipeline_alerts_cover_lag_dlq_and_service_down() -> None:
    by_name = {r["alert"]: r for r in rules()}
    assert {"PulseConsumerLagHigh", "PulseDeadLetterGrowth", "PulseServiceDown"} <= set(by_name)
    assert "pulse_consumer_lag" in by_name["PulseConsumerLagHigh"]["expr"]
    assert "pulse_messages_dead_lettered_total" in by_name["PulseDeadLetterGrowth"]["expr"]
    assert 'up{job=~"pulse-.+"} == 0' in by_name["PulseServiceDown"]["expr"]
    # PulseServiceMissing names every scrape job, so a renamed job cannot hide.
    missing = by_name["PulseServiceMissing"]["expr"]
    for svc in SERVICES:
        assert f'absent(up{{job="pulse-{svc}"}})' in missing


@pytest.mark.parametrize("rule", rules(), ids=lambda r: r["alert"])
def test_rule_is_well_formed_and_uses_existing_metrics(rule: dict[str, Any]) -> None:
    assert rule["alert"].startswith("Pulse")
    assert rule["labels"]["severity"] in {"warning", "critical"}
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    expr = rule["expr"]
    assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}")
    missing = promql_metric_names(expr) - metric_names()
    assert not missing, f"unknown metrics {sorted(missing)}"
