"""Prometheus metrics of the reporting service (``pulse_reporting_*``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REPORTS_GENERATED = Counter(
    "pulse_reporting_reports_generated_total", "Reports produced.", ["kind", "trigger"]
)
REPORT_FILES = Counter(
    "pulse_reporting_files_written_total", "Report files written.", ["kind", "format"]
)
REPORT_FAILURES = Counter(
    "pulse_reporting_failures_total", "Report runs that failed.", ["kind", "trigger"]
)
GENERATION_SECONDS = Histogram(
    "pulse_reporting_generation_seconds",
    "Wall time to produce one report (all formats).",
    ["kind"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60),
)
QUERY_SECONDS = Histogram(
    "pulse_reporting_query_seconds",
    "ClickHouse read time per report query.",
    ["query"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
LAST_REPORT_TIMESTAMP = Gauge(
    "pulse_reporting_last_report_timestamp_seconds",
    "Unix time of the last produced report per kind.",
    ["kind"],
)
DASHBOARD_REQUESTS = Counter(
    "pulse_reporting_dashboard_requests_total", "Dashboard and API requests.", ["page"]
)
