-- Product usage (KPI service range 0003, 0020-0029): how often each account used each
-- product feature per day (topic product.usage.v1, ingest kind "usage"), a daily aggregate
-- from the product's analytics. Feeds the product KPIs (active accounts daily / weekly /
-- monthly, usage_events, feature_adoption_rate, churn_risk_accounts) and
-- `pulse kpi usage|adoption|launch|churn-risk`. Ids only: no user or free text.
--
-- Rows deduplicate on event_id (a re-sent or corrected row with the same id replaces the
-- earlier one, the latest ingested_at wins); distinct rows of one account, feature and day
-- add up.
CREATE TABLE IF NOT EXISTS product_usage
(
    event_id    String,
    day         Date,
    account_id  String,
    feature     LowCardinality(String),
    count       UInt64,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(ingested_at)
ORDER BY (day, event_id);
