-- Martech costs (KPI service range 0003, 0020-0029): monthly tool and licence costs per
-- vendor and category (topic marketing.martech.v1, ingest kind "martech"), counted in
-- marketing cost beside ad spend (KPIs martech_cost, marketing_cost, cac_fully_loaded,
-- marketing_roi_fully_loaded).
--
-- Rows deduplicate on event_id (a re-sent or corrected row with the same id replaces the
-- earlier one, the latest ingested_at wins); distinct rows of one vendor and month add up
-- (two licences of one tool are two rows). month is the month's first day.
CREATE TABLE IF NOT EXISTS martech_costs
(
    event_id    String,
    month       Date,
    vendor      String,
    category    LowCardinality(String),
    amount      Decimal(18, 4),
    currency    LowCardinality(String),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(ingested_at)
ORDER BY (month, event_id);
