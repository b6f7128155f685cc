"""Reporting benchmark: a monthly report (every format) over 10M touchpoints on a real
ClickHouse server, read through the read-only reporting user.

    .venv/bin/python bench/reporting/bench_monthly_report.py                 # 10M touchpoints
    .venv/bin/python bench/reporting/bench_monthly_report.py --touchpoints 1000000
    .venv/bin/python bench/reporting/bench_monthly_report.py --quick         # 20k, 1 run (smoke)
    .venv/bin/python bench/reporting/bench_monthly_report.py --url http://…  # that server

A testinfra ClickHouse server is started unless ``--url`` or ``$BENCH_CLICKHOUSE_URL`` names
one; its report tables are TRUNCATED first. Data is generated server-side (INSERT … SELECT
FROM numbers()): touchpoints over 120 days, 5 % of accounts converting (won) with linear,
time-decay and last-touch credits for every touch in a 90-day lookback, kpi_values for
day/week/month/quarter × all/channel/campaign, and alerts. Then the October 2026 monthly
report is produced ``--runs`` times (cold first), each followed by the baseline: one scan of
the month's touchpoints by channel through the same read-only user (the least any report
over them reads). Results: ``bench/results/reporting_monthly-latest.json``.

Goal (issue 7): < 3 s for the monthly report.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.common import ClickHouse, clickhouse_server, figure, write_results
from pulse_reporting.generate import produce_report
from pulse_shared.schema.migrations import migrate
from pulse_shared.store import Store
from pulse_shared.store.server import ServerStore

CHANNELS = ["paid_search", "paid_social", "display", "email", "webinar", "content",
            "partner", "events", "organic_search", "direct"]
KPIS = ["spend", "impressions", "clicks", "leads", "mqls", "sqls", "opportunities", "wins",
        "cpl", "cac", "attributed_pipeline", "attributed_revenue", "roas", "marketing_roi",
        "attributed_revenue__linear", "roas__linear", "attributed_revenue__time_decay",
        "roas__time_decay", "mrr", "arr", "mrr_new", "mrr_expansion", "mrr_contraction",
        "mrr_churn", "mrr_reactivation", "mrr_net_new", "nrr", "gross_mrr_churn_rate",
        "ltv", "ltv_cac", "cac_payback_months", "conv_lead_to_mql", "conv_mql_to_sql",
        "conv_sql_to_opportunity", "conv_opportunity_to_won", "velocity_lead_to_mql_days"]
START = "2026-07-01"  # touchpoints from here, 120 days
REPORT_MONTH = "2026-10"


def _arr(values: list[str]) -> str:
    return "[" + ",".join(f"'{v}'" for v in values) + "]"


def generate(admin: Store, touchpoints: int, accounts: int) -> dict[str, float]:
    timings: dict[str, float] = {}
    channels = _arr(CHANNELS)

    def run(name: str, sql: str, **params: Any) -> None:
        started = time.perf_counter()
        admin.command(sql, params)
        timings[name] = round(time.perf_counter() - started, 2)
        print(f"  {name}: {timings[name]} s", file=sys.stderr, flush=True)

    for table in ("touchpoints", "attribution_credits", "kpi_values", "alert_events",
                  "reports"):
        admin.command(f"TRUNCATE TABLE IF EXISTS {table}")
    # constant identifiers and literals only; the sizes are parameters
    run("touchpoints", f"""
        INSERT INTO touchpoints (event_id, occurred_at, account_id, contact_id, channel,
            source, medium, campaign_id, touch_type, currency)
        SELECT
            concat('tp-', toString(number)),
            toDateTime64('{START} 00:00:00', 3, 'UTC')
                + toIntervalSecond(cityHash64(number, 1) % (120 * 86400)),
            concat('acc-', toString(cityHash64(number, 2) % {{accounts:UInt64}})),
            lower(hex(SHA256(toString(cityHash64(number, 3) % ({{accounts:UInt64}} * 4))))),
            {channels}[1 + cityHash64(number, 4) % {len(CHANNELS)}],
            'bench', 'cpc',
            concat('cmp-', toString(cityHash64(number, 5) % 40)),
            'web_visit', 'USD'
        FROM numbers({{n:UInt64}})
        SETTINGS max_insert_threads = 2
    """, n=touchpoints, accounts=accounts)
    conversions = f"""
        SELECT account_id,
               toDateTime64('{START} 00:00:00', 3, 'UTC')
                   + toIntervalSecond(30 * 86400 + cityHash64(account_id, 9) % (90 * 86400))
                   AS converted_at,
               toDecimal64(1000 + cityHash64(account_id, 10) % 20000, 4) AS revenue
        FROM (SELECT DISTINCT account_id FROM touchpoints)
        WHERE cityHash64(account_id, 8) % 20 = 0
    """
    for model in ("linear", "time_decay"):
        run(f"credits_{model}", f"""
            INSERT INTO attribution_credits (conversion_id, milestone, model, version,
                account_id, touchpoint_event_id, channel, campaign_id, touched_at,
                converted_at, credit, credited_revenue, currency)
            SELECT concat('conv-', t.account_id), 'won', {{model:String}}, 1, t.account_id,
                   t.event_id, t.channel, t.campaign_id, t.occurred_at, c.converted_at,
                   1 / count() OVER (PARTITION BY t.account_id) AS credit,
                   toDecimal64(credit * toFloat64(c.revenue), 4), 'USD'
            FROM touchpoints AS t
            INNER JOIN ({conversions}) AS c ON t.account_id = c.account_id
            WHERE t.occurred_at <= c.converted_at
              AND t.occurred_at >= c.converted_at - toIntervalDay(90)
        """, model=model)
    run("credits_last_touch", f"""
        INSERT INTO attribution_credits (conversion_id, milestone, model, version,
            account_id, touchpoint_event_id, channel, campaign_id, touched_at, converted_at,
            credit, credited_revenue, currency)
        SELECT concat('conv-', t.account_id), 'won', 'last_touch', 1, t.account_id,
               argMax(t.event_id, t.occurred_at), argMax(t.channel, t.occurred_at),
               argMax(t.campaign_id, t.occurred_at), max(t.occurred_at), any(c.converted_at),
               1.0, any(c.revenue), 'USD'
        FROM touchpoints AS t
        INNER JOIN ({conversions}) AS c ON t.account_id = c.account_id
        WHERE t.occurred_at <= c.converted_at
        GROUP BY t.account_id
    """)
    # KPI values: every KPI × grain × period × (all, 10 channels, 40 campaigns)
    members = ["all:"] + [f"channel:{c}" for c in CHANNELS] + [
        f"campaign:cmp-{i}" for i in range(40)]
    run("kpi_values", f"""
        INSERT INTO kpi_values (kpi, grain, period, period_start, dimension, dimension_value,
                                value, unit, computed_at)
        SELECT kpi, grain, period, period_start, splitByChar(':', m)[1],
               splitByChar(':', m)[2], 100 + cityHash64(kpi, period, m) % 10000, 'usd',
               now64(6)
        FROM (
            SELECT arrayJoin({_arr(KPIS)}) AS kpi, arrayJoin({_arr(members)}) AS m, *
            FROM (
                SELECT 'day' AS grain, toString(d) AS period, d AS period_start
                FROM (SELECT toDate('2025-06-01') + number AS d FROM numbers(520))
                UNION ALL
                SELECT DISTINCT 'week', concat(toString(toISOYear(d)), '-W',
                       leftPad(toString(toISOWeek(d)), 2, '0')), toMonday(d)
                FROM (SELECT toDate('2025-06-01') + number AS d FROM numbers(520))
                UNION ALL
                SELECT DISTINCT 'month', formatDateTime(d, '%Y-%m'), toStartOfMonth(d)
                FROM (SELECT toDate('2025-06-01') + number AS d FROM numbers(520))
                UNION ALL
                SELECT DISTINCT 'quarter', concat(toString(toYear(d)), '-Q',
                       toString(toQuarter(d))), toStartOfQuarter(d)
                FROM (SELECT toDate('2025-06-01') + number AS d FROM numbers(520))
            )
        )
        WHERE grain != 'day' OR m = 'all:'
    """)
    run("alerts", """
        INSERT INTO alert_events (alert_id, fingerprint, rule, state, severity, kpi, labels,
            annotations, value, threshold, starts_at, ends_at, sent_at)
        SELECT concat('al-', toString(number)), concat('fp-', toString(number % 50)),
               'cac_spike', if(number % 2 = 0, 'firing', 'resolved'), 'warning', 'cac',
               map('channel', 'paid_search'), map('summary', 'CAC above threshold'),
               2500, 2000, toDateTime64('2026-07-01 00:00:00', 3, 'UTC')
                   + toIntervalHour(number * 7), NULL,
               toDateTime64('2026-07-01 00:00:00', 3, 'UTC') + toIntervalHour(number * 7)
        FROM numbers(400)
    """)
    return timings


def month_scan(reader: Store) -> float:
    """Seconds for one scan of the report month's touchpoints, counted by channel."""
    started = time.perf_counter()
    reader.query(
        "SELECT channel, count() AS n FROM touchpoints "
        "WHERE toStartOfMonth(occurred_at) = toDate({month:String}) GROUP BY channel",
        {"month": f"{REPORT_MONTH}-01"},
    )
    return time.perf_counter() - started


def figures(summary: dict[str, Any]) -> list[dict[str, Any]]:
    touchpoints = summary["rows"]["touchpoints"]
    runs = len(summary["runs"])
    return [figure(
        f"monthly report, {summary['formats']} formats, over {touchpoints:,} touchpoints "
        f"(slowest of {runs} runs)", summary["max_seconds"], "s",
        baseline=summary.get("baseline_max_seconds"),
        baseline_is="one scan of the month's touchpoints by channel, same reader",
        goal=f"< {summary['goal_seconds']:g} s", met=summary["meets_goal"])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="20k touchpoints, 500 accounts, 1 run (smoke test)")
    parser.add_argument("--touchpoints", type=int, default=None, help="default 10,000,000")
    parser.add_argument("--accounts", type=int, default=None, help="default 50,000")
    parser.add_argument("--runs", type=int, default=None, help="default 5")
    parser.add_argument("--formats", default="all")
    parser.add_argument("--url", default=None, help="ClickHouse URL (default: start one)")
    parser.add_argument("--reader-user", default=None, help="default pulse_reader")
    parser.add_argument("--reader-password", default=None, help="default testinfra's")
    parser.add_argument("--out", type=Path, default=None,
                        help="also write the results JSON here")
    parser.add_argument("--goal", type=float, default=3.0)
    args = parser.parse_args(argv)
    args.touchpoints = args.touchpoints or (20_000 if args.quick else 10_000_000)
    args.accounts = args.accounts or (500 if args.quick else 50_000)
    args.runs = args.runs or (1 if args.quick else 5)

    if args.url:
        return _run(args, ClickHouse(args.url))
    with clickhouse_server() as ch:
        return _run(args, ch)


def _run(args: argparse.Namespace, ch: ClickHouse) -> int:
    """Generate the data, produce the report ``args.runs`` times, write the results."""
    url = ch.url
    admin = ServerStore(url)
    migrate(admin)
    print(f"generating {args.touchpoints:,} touchpoints …", file=sys.stderr)
    gen = generate(admin, args.touchpoints, args.accounts)
    sizes = {t: admin.query_value(f"SELECT count() FROM {t}")
             for t in ("touchpoints", "attribution_credits", "kpi_values", "alert_events")}
    reader = ServerStore(url, user=args.reader_user or ch.reader_user,
                         password=args.reader_password or ch.reader_password,
                         readonly=True)
    out_dir = Path(tempfile.mkdtemp(prefix="pulse-bench-reports-"))
    runs: list[dict[str, Any]] = []
    for i in range(args.runs):
        result = produce_report(reader, "monthly", REPORT_MONTH, formats=args.formats,
                                out_dir=out_dir, model="linear", writer=admin)
        runs.append({"seconds": round(result.seconds, 3),
                     "timings": {k: round(v, 3) for k, v in result.timings.items()},
                     "baseline_seconds": round(month_scan(reader), 3)})
        print(f"  run {i + 1}: {result.seconds:.3f} s {runs[-1]['timings']}",
              file=sys.stderr, flush=True)
    seconds = [r["seconds"] for r in runs]
    summary = {
        "rows": sizes,
        "generate_seconds": gen,
        "formats": args.formats,
        "runs": runs,
        "cold_seconds": seconds[0],
        "median_seconds": statistics.median(seconds),
        "max_seconds": max(seconds),
        "baseline_max_seconds": max(r["baseline_seconds"] for r in runs),
        "goal_seconds": args.goal,
        "paths": len(result.report.paths),
        "meets_goal": max(seconds) < args.goal,
    }
    print(json.dumps(summary, indent=2))
    path = write_results("reporting_monthly", summary, quick=args.quick,
                         figures=figures(summary))
    print(f"results: {path}", file=sys.stderr)
    if args.out:
        args.out.write_text(path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
