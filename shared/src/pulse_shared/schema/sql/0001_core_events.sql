-- Raw events as they arrive on the input topics. ReplacingMergeTree on the event id makes
-- redelivery harmless; readers use FINAL (or GROUP BY event_id) for exact answers.
CREATE TABLE IF NOT EXISTS touchpoints
(
    event_id     String,
    occurred_at  DateTime64(3, 'UTC'),
    account_id   String,
    contact_id   String COMMENT 'salted SHA-256, never raw',
    channel      LowCardinality(String),
    source       String,
    medium       String,
    campaign_id  String,
    touch_type   LowCardinality(String),
    utm_source   String,
    utm_medium   String,
    utm_campaign String,
    utm_term     String,
    utm_content  String,
    cost         Nullable(Decimal(18, 4)),
    currency     LowCardinality(String),
    ingested_at  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (account_id, event_id);

CREATE TABLE IF NOT EXISTS spend
(
    event_id    String,
    date        Date,
    channel     LowCardinality(String),
    campaign_id String,
    amount      Decimal(18, 4),
    currency    LowCardinality(String),
    impressions UInt64,
    clicks      UInt64,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(date)
ORDER BY (date, channel, campaign_id, event_id);

CREATE TABLE IF NOT EXISTS subscriptions
(
    event_id    String,
    occurred_at DateTime64(3, 'UTC'),
    account_id  String,
    event_type  LowCardinality(String),
    mrr         Decimal(18, 4),
    currency    LowCardinality(String),
    plan        String,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (account_id, occurred_at, event_id);

CREATE TABLE IF NOT EXISTS pipeline_events
(
    event_id    String,
    occurred_at DateTime64(3, 'UTC'),
    account_id  String,
    stage       LowCardinality(String),
    amount      Nullable(Decimal(18, 4)),
    currency    LowCardinality(String),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (account_id, occurred_at, event_id);

-- A later budget for the same month/channel/campaign replaces the earlier one.
CREATE TABLE IF NOT EXISTS budgets
(
    event_id    String,
    month       Date,
    channel     LowCardinality(String),
    campaign_id String,
    amount      Decimal(18, 4),
    currency    LowCardinality(String),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(ingested_at)
ORDER BY (month, channel, campaign_id);

-- Daily touch counts per channel and campaign. uniqExact states make the view exact
-- even when a batch is redelivered (a plain count would double it).
CREATE TABLE IF NOT EXISTS touchpoints_daily
(
    day         Date,
    channel     LowCardinality(String),
    campaign_id String,
    touches     AggregateFunction(uniqExact, String),
    accounts    AggregateFunction(uniqExact, String)
)
ENGINE = AggregatingMergeTree
ORDER BY (day, channel, campaign_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS touchpoints_daily_mv TO touchpoints_daily AS
SELECT
    toDate(occurred_at)         AS day,
    channel,
    campaign_id,
    uniqExactState(event_id)    AS touches,
    uniqExactState(account_id)  AS accounts
FROM touchpoints
GROUP BY day, channel, campaign_id;
