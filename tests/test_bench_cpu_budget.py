"""The pipeline benchmark's CPU budget: per-event CPU by process, and the cores that the
measured costs would need at the ≥ 0.5x-of-raw goal (the figure that explains a miss)."""

from __future__ import annotations

from bench.pipeline.bench_pipeline import GOAL_RATIO, cpu_budget, cpu_per_event


def test_cpu_per_event_splits_by_process_and_sums() -> None:
    result = {"cpu_s": 2.0, "server_cpu_s": {"clickhouse": 3.0, "broker": 0.5}}
    cpu = cpu_per_event(result, 1_000_000)
    assert cpu == {"consumer": 2.0, "clickhouse": 3.0, "broker": 0.5, "total": 5.5}


def test_cpu_per_event_has_no_total_when_a_process_was_not_measured() -> None:
    cpu = cpu_per_event({"cpu_s": 1.0, "server_cpu_s": {"clickhouse": None}}, 1000)
    assert cpu["consumer"] == 1000.0
    assert cpu["total"] is None


def _run(pipeline_us: float, raw_eps: float) -> dict[str, object]:
    return {
        "raw_events_per_s": raw_eps,
        "cpu_us_per_event": {
            "raw": {"consumer": 2.0, "broker": 1.0, "total": 3.0},
            "subscriber": {"consumer": 3.0, "broker": 1.0, "total": 4.0},
            "pipeline": {"consumer": pipeline_us / 2, "clickhouse": pipeline_us / 2,
                         "total": pipeline_us},
        },
    }


def test_cores_needed_at_the_goal_rate_flags_a_machine_too_small() -> None:
    # 12 µs/event at half of 400k ev/s = 2.4 cores: more than 2.
    rows = cpu_budget(_run(12.0, 400_000), cores=2)
    needed = rows[-1]
    assert needed[1] == 12.0 * GOAL_RATIO * 400_000 / 1e6
    assert needed[-1] == "MISS"
    # The same costs fit on 4 cores.
    assert cpu_budget(_run(12.0, 400_000), cores=4)[-1][-1] == "OK"
    # And cheaper processing fits on 2.
    assert cpu_budget(_run(8.0, 400_000), cores=2)[-1][-1] == "OK"
    assert [r[0].split(" (")[0].strip() for r in rows[:3]] == [
        "CPU us/event, raw", "CPU us/event, subscriber", "CPU us/event, pipeline"]
