-- Every produced report file (one row per report × format); the latest run of a
-- kind × period × model × format wins.
CREATE TABLE IF NOT EXISTS reports
(
    report_id   String,
    report_kind LowCardinality(String),
    period      String,
    model       LowCardinality(String) DEFAULT 'last_touch',
    format      LowCardinality(String),
    path        String,
    size_bytes  UInt64 DEFAULT 0,
    created_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(created_at)
ORDER BY (report_kind, period, model, format);
