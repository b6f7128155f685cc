-- KPI service runtime tables (kpi owns 0003 and 0020-0029).

-- One MRR movement per subscription event (ChartMogul definitions, event by event).
-- Recomputed for the whole account when one of its events arrives, so a late event
-- re-classifies the movements after it; computed_at decides which row wins.
CREATE TABLE IF NOT EXISTS kpi_mrr_movements
(
    event_id     String,
    account_id   String,
    occurred_at  DateTime64(3, 'UTC'),
    kind         LowCardinality(String) COMMENT 'new, expansion, contraction, churn, reactivation, none',
    mrr_before   Decimal(18, 4),
    mrr_after    Decimal(18, 4),
    paying_delta Int8 COMMENT '+1 starts paying, -1 stops paying',
    computed_at  DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(computed_at)
ORDER BY (account_id, event_id);

-- Days whose channel/campaign breakdowns still have to be recomputed (they are refreshed
-- in the background, after totals). Rows newer than the last completed breakdown pass
-- (kpi_state 'breakdowns_done') are replayed at startup, so a crash loses nothing.
CREATE TABLE IF NOT EXISTS kpi_pending
(
    kind      LowCardinality(String) COMMENT 'flow (a day) or budget (a month start)',
    day       Date,
    marked_at DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(marked_at)
ORDER BY (kind, day);

CREATE TABLE IF NOT EXISTS kpi_state
(
    name String,
    at   DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(at)
ORDER BY name
