-- Customer experience (KPI service range 0003, 0020-0029): NPS / CSAT survey answers
-- (topic cx.feedback.v1, ingest kind "feedback") and support ticket states (topic
-- cx.tickets.v1, ingest kind "tickets"). Feed the experience KPIs (nps, nps_responses,
-- csat, tickets_created, tickets_resolved, first_response_hours, tickets_per_account) and
-- `pulse kpi nps|tickets|nps-churn`. Ids, scores, times and categories only: survey
-- comments are never stored (ingest drops them), nor ticket subjects or requesters.
--
-- feedback_responses: rows deduplicate on event_id (a re-sent or corrected answer with the
-- same id replaces the earlier one, the latest ingested_at wins).
CREATE TABLE IF NOT EXISTS feedback_responses
(
    event_id     String,
    account_id   String,
    survey       LowCardinality(String),
    score        UInt8,
    responded_at DateTime64(3, 'UTC'),
    ingested_at  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(ingested_at)
ORDER BY (survey, event_id);

-- support_tickets: one row per ticket, its latest state: the row with the latest
-- state_at wins (when that state was recorded: updated_at if the help desk sent it, else
-- the latest of created_at, first_response_at and resolved_at); of two with the same
-- state_at, the one ingested last.
CREATE TABLE IF NOT EXISTS support_tickets
(
    event_id          String,
    ticket_id         String,
    account_id        String,
    created_at        DateTime64(3, 'UTC'),
    first_response_at Nullable(DateTime64(3, 'UTC')),
    resolved_at       Nullable(DateTime64(3, 'UTC')),
    status            LowCardinality(String),
    channel           LowCardinality(String),
    updated_at        Nullable(DateTime64(3, 'UTC')),
    state_at          DateTime64(3, 'UTC'),
    ingested_at       DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(state_at)
ORDER BY ticket_id;
