-- E-mail deliverability (KPI service range 0003, 0020-0029): daily delivery counts per
-- sending domain and ESP campaign (topic email.deliverability.v1, ingest kind
-- "deliverability", ESP imports sendgrid_stats and mailchimp_campaigns), read by the KPI
-- service for the deliverability KPIs (emails_sent, delivery_rate, bounce_rate,
-- complaint_rate, open_rate …) and by reports.
--
-- Counts only: no recipient addresses or subjects (ids and domains, no PII). Rows
-- deduplicate on event_id (a corrected export row with the same id replaces the earlier
-- one, the latest ingested_at wins); distinct rows of one day and domain add up.
CREATE TABLE IF NOT EXISTS email_deliverability
(
    event_id        String,
    day             Date,
    sending_domain  LowCardinality(String),
    campaign_id     String,
    esp             LowCardinality(String),
    sent            UInt64,
    delivered       UInt64,
    hard_bounces    UInt64,
    soft_bounces    UInt64,
    spam_complaints UInt64,
    unsubscribes    UInt64,
    unique_opens    UInt64,
    unique_clicks   UInt64,
    ingested_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(ingested_at)
ORDER BY (day, event_id);
