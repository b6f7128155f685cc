"""The `pulse` CLI on the embedded default: separate processes, no server anywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PULSE = str(Path(sys.executable).parent / "pulse")
DATA = Path(__file__).parent / "data"

pytestmark = pytest.mark.timeout(300)


def embedded(tmp_path: Path, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """``argv`` in its own process on the embedded default (no Kafka, no server), with a
    data directory of its own."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PULSE_KAFKA_BOOTSTRAP", "PULSE_CLICKHOUSE_URL")}
    env["PULSE_DATA_DIR"] = str(tmp_path / "pulse-data")
    return subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=240)


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return embedded(tmp_path, [PULSE, *args])


def test_ingest_subscriptions_then_mrr_movements(tmp_path: Path) -> None:
    events = [
        ("a1", "2026-01-05T10:00:00Z", "A", "subscription_started", "100"),
        ("a2", "2026-01-20T10:00:00Z", "A", "subscription_upgraded", "150"),
        ("b1", "2026-02-01T10:00:00Z", "B", "subscription_started", "200"),
        ("a3", "2026-02-10T10:00:00Z", "A", "subscription_downgraded", "120"),
        ("b2", "2026-03-03T10:00:00Z", "B", "subscription_canceled", "0"),
        ("b3", "2026-03-20T10:00:00Z", "B", "subscription_reactivated", "180"),
    ]
    file = tmp_path / "subscriptions.ndjson"
    file.write_text("".join(json.dumps({
        "event_id": e, "occurred_at": at, "account_id": acct, "event_type": kind, "mrr": mrr,
        "currency": "USD", "plan": "pro"}) + "\n" for e, at, acct, kind, mrr in events))

    ingested = run(tmp_path, "ingest", "subscriptions", str(file))
    assert ingested.returncode == 0, ingested.stderr
    assert "accepted 6, rejected 0, duplicates 0" in ingested.stderr

    again = run(tmp_path, "ingest", "subscriptions", str(file), "--format", "json")
    assert again.returncode == 0, again.stderr  # a re-send changes nothing
    [outcome] = json.loads(again.stdout)
    assert (outcome["kind"], outcome["received"], outcome["rejected"], outcome["errors"]) == (
        "subscriptions", 6, 0, [])

    mrr = run(tmp_path, "kpi", "mrr", "--grain", "month", "--from", "2026-01", "--to",
              "2026-03", "--format", "csv")
    assert mrr.returncode == 0, mrr.stderr
    assert mrr.stdout.splitlines() == [
        "period,new,expansion,contraction,churn,reactivation,net_new,ending_mrr",
        "2026-01,100.00,50.00,0.00,0.00,0.00,150.00,150.00",
        "2026-02,200.00,0.00,-30.00,0.00,0.00,170.00,320.00",
        "2026-03,0.00,0.00,0.00,-200.00,180.00,-20.00,300.00",
    ]
    as_json = run(tmp_path, "kpi", "mrr", "--grain", "month", "--from", "2026-02", "--to",
                  "2026-02", "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == [{  # money as JSON numbers, not strings
        "period": "2026-02", "new": 200, "expansion": 0, "contraction": -30, "churn": 0,
        "reactivation": 0, "net_new": 170, "ending_mrr": 320}]


def test_bad_rows_are_named_and_the_rest_is_kept(tmp_path: Path) -> None:
    file = tmp_path / "spend.csv"
    file.write_text(
        "event_id,date,channel,campaign_id,amount,currency,impressions,clicks\n"
        "s1,2026-02-01,paid_search,brand,120.50,USD,1000,40\n"
        "s2,2026-02-01,paid_search,brand,-3,USD,10,1\n"
        "s3,2026-02-02,paid_social,launch,80,USD,900,12\n"
    )
    result = run(tmp_path, "ingest", "spend", str(file))
    assert result.returncode == 1
    assert "accepted 2, rejected 1" in result.stderr
    assert f"error: {file} row 2: amount:" in result.stderr  # data rows counted from 1
    as_json = run(tmp_path, "ingest", "spend", str(file), "--format", "json")
    assert as_json.returncode == 1
    [outcome] = json.loads(as_json.stdout)
    assert (outcome["received"], outcome["rejected"]) == (3, 1)
    assert [(e["row"], e["field"]) for e in outcome["errors"]] == [(2, "amount")]
    shown = run(tmp_path, "kpi", "show", "--grain", "month", "--from", "2026-02", "--to",
                "2026-02", "--format", "json")
    assert shown.returncode == 0, shown.stderr
    spend = [r for r in json.loads(shown.stdout) if r["kpi"] == "spend"
             and r.get("dimension", "all") == "all"]
    assert spend and spend[0]["value"] == pytest.approx(200.5)


def test_import_a_google_ads_export(tmp_path: Path) -> None:
    result = run(tmp_path, "ingest", "import", "google_ads",
                 str(DATA / "google_ads_campaign_report.csv"))
    assert result.returncode == 0, result.stderr
    assert "google_ads: accepted" in result.stderr
    assert "rejected 0" in result.stderr


GC_SCRIPT = r"""
import asyncio, gc, json, os
from pulse_cli.runtime import open_pipeline
from pulse_shared.service import GC_YOUNG_THRESHOLD

async def main():
    before = gc.get_threshold()
    async with open_pipeline():
        inside = gc.get_threshold()
    after = gc.get_threshold()
    print(json.dumps(dict(before=before, inside=inside, after=after, young=GC_YOUNG_THRESHOLD)))

asyncio.run(main())
from pulse_shared.store.embedded import close_all_embedded
close_all_embedded()
os._exit(0)
"""


def test_the_in_process_pipeline_collects_the_young_generation_as_services_do(
    tmp_path: Path,
) -> None:
    """Every service runs in the CLI's process: while the pipeline is open, its young
    generation is collected as rarely as in a service process; the setting is restored."""
    done = embedded(tmp_path, [sys.executable, "-c", GC_SCRIPT])
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["inside"] == [outcome["young"], *outcome["before"][1:]]
    assert outcome["after"] == outcome["before"] != outcome["inside"]
