CREATE TABLE IF NOT EXISTS reports
(
    report_id   String,
    report_kind LowCardinality(String),
    period      String,
    format      LowCardinality(String),
    path        String,
    created_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(created_at)
ORDER BY (report_kind, period, format);
