"""Report subscriptions hold personal data (issue 17): through the `pulse` CLI on a fresh
embedded store, an address subscribed to a report is erased by `pulse privacy erase
--contact` like any contact, and its webhook is never printed. Encryption at rest, key
rotation and the refusals: tests/reporting/test_report_delivery.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PULSE = str(Path(sys.executable).parent / "pulse")

pytestmark = pytest.mark.timeout(240)


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PULSE_KAFKA_BOOTSTRAP", "PULSE_CLICKHOUSE_URL", "PULSE_INGEST_PII_SALT",
                        "PULSE_REPORTING_DELIVERY_KEY")}
    env["PULSE_DATA_DIR"] = str(tmp_path / "pulse-data")
    return subprocess.run([PULSE, *args], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=200)


def test_privacy_erase_removes_an_address_s_report_subscriptions(tmp_path: Path) -> None:
    secret = "T0/B0/very-secret-path"
    subscribed = run(tmp_path, "report", "subscribe", "monthly", "--role", "cx", "--email",
                     "jane@acme.example", "--webhook", f"https://hooks.example.com/{secret}",
                     "--format", "json")
    assert subscribed.returncode == 0, subscribed.stderr
    assert secret not in subscribed.stdout
    other = run(tmp_path, "report", "subscribe", "weekly", "--role", "cmo", "--email",
                "bob@acme.example", "--format", "json")
    assert other.returncode == 0, other.stderr
    [bob] = json.loads(other.stdout)
    # the embedded store's delivery key: created beside its data, the owner's only
    key_file = tmp_path / "pulse-data" / ".delivery-key"
    assert key_file.stat().st_mode & 0o777 == 0o600

    erased = run(tmp_path, "privacy", "erase", "--contact", "Jane@Acme.example",
                 "--format", "json")
    assert erased.returncode == 0, erased.stderr
    counts = {r["table"]: r["rows"] for r in json.loads(erased.stdout)}
    assert counts["report_subscriptions"] == 1

    listed = run(tmp_path, "report", "subscriptions", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    assert [(s["id"], s["email"]) for s in json.loads(listed.stdout)] == [
        (bob["id"], "bob@acme.example")]

    again = run(tmp_path, "report", "subscribe", "monthly", "--role", "cx", "--email",
                "jane@acme.example")
    assert again.returncode == 1
    assert again.stderr.strip().count("\n") == 0 and "erased" in again.stderr, again.stderr
