-- Account profiles (KPI service range 0003, 0020-0029): firmographics per account with the
-- day each applies from (topic crm.accounts.v1, ingest kind "accounts"). History is kept:
-- a row per (account, effective_from); KPI breakdowns by segment, plan, region, industry
-- and employee band read the profile in force on each event's day (none: "unknown").
--
-- Rows deduplicate on event_id (a re-sent or corrected profile with the same id replaces
-- the earlier one, the latest ingested_at wins). No names or people: ids and categories.
-- acquisition_channel is NULL when the CRM gave none (readers use the account's
-- first-touch channel then).
CREATE TABLE IF NOT EXISTS account_profiles
(
    event_id            String,
    account_id          String,
    effective_from      Date,
    plan                String,
    segment             LowCardinality(String),
    industry            LowCardinality(String),
    region              LowCardinality(String),
    employee_band       LowCardinality(String),
    acquisition_channel LowCardinality(Nullable(String)),
    ingested_at         DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(ingested_at)
ORDER BY (account_id, event_id);
