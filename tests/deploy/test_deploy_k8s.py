"""Kubernetes manifests: parse, and reference existing entry points, ports and settings."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
import yaml
from deploy_support import (
    CLI_DOCKERFILE,
    PORTS,
    ROOT,
    SERVICE_TEMPLATE,
    SERVICES,
    common_env_names,
    compose,
    console_scripts,
    container_command,
    k8s_documents,
    service_build,
    service_image,
    unknown_env,
)

K8S = ROOT / "deploy" / "k8s"
#: Services that run an in-process timer/scheduler and must stay single-replica.
SINGLETONS = {"alerts", "reporting", "mmm"}


def docs() -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for _, doc in k8s_documents():
        key = (doc["kind"], doc["metadata"]["name"])
        assert key not in out, f"duplicate {key}"
        out[key] = doc
    return out


def container(svc: str) -> dict[str, Any]:
    (c,) = docs()[("Deployment", f"pulse-{svc}")]["spec"]["template"]["spec"]["containers"]
    return c


def env_names(c: dict[str, Any]) -> set[str]:
    names = {e["name"] for e in c.get("env", [])}
    for source in c.get("envFrom", []):
        ref = source["configMapRef"]["name"]
        names |= set(docs()[("ConfigMap", ref)]["data"])
    return names


def test_every_manifest_parses_and_kustomization_lists_them() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    kinds = defaultdict(int)
    for _, doc in k8s_documents():
        assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"]
        kinds[doc["kind"]] += 1
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "pulse"
    assert kinds["Deployment"] == len(SERVICES) and kinds["Service"] == len(SERVICES)


@pytest.mark.parametrize("svc", SERVICES)
def test_deployment_runs_the_console_script_on_its_port(svc: str) -> None:
    c = container(svc)
    assert c["command"] == [f"pulse-{svc}"] == container_command(service_image(svc))
    assert c["command"][0] in console_scripts(f"services/{svc}")
    assert c["image"].split(":")[0] == f"pulse-{svc}"
    (port,) = c["ports"]
    assert port == {"name": "http", "containerPort": PORTS[svc], "protocol": "TCP"}
    cm = docs()[("ConfigMap", f"pulse-{svc}")]["data"]
    assert cm[f"PULSE_{svc.upper()}_PORT"] == str(PORTS[svc])
    service = docs()[("Service", f"pulse-{svc}")]["spec"]
    assert service["ports"][0]["targetPort"] == "http"
    assert service["selector"].items() <= (
        docs()[("Deployment", f"pulse-{svc}")]["spec"]["template"]["metadata"]["labels"].items()
    )


@pytest.mark.parametrize("svc", SERVICES)
def test_env_and_config_names_exist_in_the_settings_classes(svc: str) -> None:
    names = env_names(container(svc))
    pulse_names = {n for n in names if n.startswith("PULSE_")}
    assert not unknown_env(svc, pulse_names)
    assert {"PULSE_KAFKA_BOOTSTRAP", "PULSE_CLICKHOUSE_URL", "PULSE_CLICKHOUSE_PASSWORD"} <= names
    for e in container(svc).get("env", []):
        if "PASSWORD" in e["name"] or "SALT" in e["name"] or "WEBHOOK" in e["name"]:
            assert "secretKeyRef" in e["valueFrom"], f"{e['name']} must come from a Secret"


def test_common_configmap_matches_compose_and_shared_settings() -> None:
    data = docs()[("ConfigMap", "pulse-common")]["data"]
    assert set(data) <= common_env_names()
    ingest_env = compose()["services"]["ingest"]["environment"]
    assert data["PULSE_CLICKHOUSE_USER"] == ingest_env["PULSE_CLICKHOUSE_USER"]
    assert data["PULSE_CLICKHOUSE_DATABASE"] == ingest_env["PULSE_CLICKHOUSE_DATABASE"]


@pytest.mark.parametrize("svc", SERVICES)
def test_probes_resources_and_security(svc: str) -> None:
    c = container(svc)
    assert c["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert c["startupProbe"]["httpGet"]["path"] == "/health"
    # Liveness must not follow Kafka/ClickHouse health, or an outage restarts every pod.
    assert c["livenessProbe"]["httpGet"]["path"] == "/metrics"
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(c["resources"][kind])
    pod = docs()[("Deployment", f"pulse-{svc}")]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert {"/tmp", "/app/data"} <= mounts


@pytest.mark.parametrize("svc", SERVICES)
def test_horizontal_scaling_is_bounded_by_partitions(svc: str) -> None:
    deployment = docs()[("Deployment", f"pulse-{svc}")]
    hpa = docs().get(("HorizontalPodAutoscaler", f"pulse-{svc}"))
    if svc in SINGLETONS:
        assert hpa is None
        assert deployment["spec"]["replicas"] == 1
        assert deployment["spec"]["strategy"]["type"] == "Recreate"
        return
    assert hpa is not None
    assert hpa["spec"]["scaleTargetRef"]["name"] == f"pulse-{svc}"
    partitions = int(topics_job_env()["PULSE_TOPIC_PARTITIONS"])
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"] <= partitions
    external = [m for m in hpa["spec"]["metrics"] if m["type"] == "External"]
    for metric in external:
        assert metric["external"]["metric"]["name"] == "pulse_consumer_lag"
        assert metric["external"]["metric"]["selector"]["matchLabels"] == {"service": svc}


def topics_job_env() -> dict[str, str]:
    job = docs()[("Job", "pulse-topics")]
    (c,) = job["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", "") for e in c["env"]}


def test_topics_job_creates_every_registry_topic() -> None:
    from pulse_shared.topics import all_topic_names

    assert sorted(topics_job_env()["PULSE_TOPICS"].split()) == sorted(all_topic_names())


def test_migrate_job_runs_pulse_migrate_with_the_writer() -> None:
    job = docs()[("Job", "pulse-migrate")]
    (c,) = job["spec"]["template"]["spec"]["containers"]
    assert c["command"] == ["pulse"] and c["args"] == ["migrate"]
    assert "pulse" in console_scripts("cli")
    assert c["image"].split(":")[0] == "pulse-cli"


def test_images_in_kustomization_are_the_built_ones() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    names = {i["name"] for i in kustomization["images"]}
    assert names == {f"pulse-{s}" for s in SERVICES} | {"pulse-cli"}
    assert CLI_DOCKERFILE.is_file()
    for svc in SERVICES:
        # pulse-<svc> is the template built with SERVICE=<svc> (as compose builds it).
        dockerfile, args = service_build(svc)
        assert dockerfile == SERVICE_TEMPLATE and args["SERVICE"] == svc
