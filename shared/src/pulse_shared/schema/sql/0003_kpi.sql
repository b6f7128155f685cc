-- Latest value of each KPI per grain × dimension × period (computed_at decides).
CREATE TABLE IF NOT EXISTS kpi_values
(
    kpi             LowCardinality(String),
    grain           LowCardinality(String),
    period          String,
    period_start    Date,
    dimension       LowCardinality(String),
    dimension_value String,
    value           Nullable(Float64),
    unit            LowCardinality(String),
    computed_at     DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(computed_at)
ORDER BY (kpi, grain, dimension, dimension_value, period_start);
