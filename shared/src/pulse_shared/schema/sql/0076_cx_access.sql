-- pulse: access-control
-- Customer experience (0029_cx) for the roles whose scope lists it
-- (pulse_shared.access.SCOPES: feedback_responses and support_tickets are part of
-- BUSINESS_TABLES, which leadership and marketing ops read, and of cx's tables: customer
-- experience follows up who answered what and which tickets wait). platform gets none.
-- pulse_reader (reporting, Grafana's shared data source) reads every table of the database
-- already (SELECT ON pulse.*).
--
-- It also replaces the condition of cx's row policy on kpi_values (created by
-- 0060_access_roles for the revenue family in total; ALTER keeps this idempotent, 0060
-- runs first): cx now reads the revenue, product and experience families
-- (access.SCOPES[cx].kpi_families), in total, by segment and by feature (its dimensions). The KPI
-- names are every catalog KPI of those families; tests/security/test_cx_access.py checks
-- the list against the catalog, so a KPI added to one of them fails that test until a new
-- access migration replaces the policy again.
--
-- Same rules as 0060_access_roles: runs in the migrating store's database, needs a user
-- with access management, skipped (and retried) where that is missing and on the embedded
-- store. The roles exist (0060 runs first); IF NOT EXISTS keeps this file runnable alone.

CREATE ROLE IF NOT EXISTS pulse_cmo;
CREATE ROLE IF NOT EXISTS pulse_director;
CREATE ROLE IF NOT EXISTS pulse_marketing_ops;
CREATE ROLE IF NOT EXISTS pulse_cx;

GRANT SELECT ON feedback_responses TO pulse_cmo;
GRANT SELECT ON support_tickets TO pulse_cmo;

GRANT SELECT ON feedback_responses TO pulse_director;
GRANT SELECT ON support_tickets TO pulse_director;

GRANT SELECT ON feedback_responses TO pulse_marketing_ops;
GRANT SELECT ON support_tickets TO pulse_marketing_ops;

GRANT SELECT ON feedback_responses TO pulse_cx;
GRANT SELECT ON support_tickets TO pulse_cx;

ALTER ROW POLICY pulse_cx_scope ON kpi_values
    AS PERMISSIVE FOR SELECT
    USING dimension IN ('all', 'segment', 'feature') AND kpi IN (
        'active_accounts_daily', 'active_accounts_monthly', 'active_accounts_weekly',
        'arpa', 'arr', 'churn_risk_accounts', 'csat', 'feature_adoption_rate',
        'first_response_hours', 'gross_mrr_churn_rate', 'logo_churn_rate', 'ltv', 'mrr',
        'mrr_churn', 'mrr_contraction', 'mrr_expansion', 'mrr_net_new', 'mrr_new',
        'mrr_reactivation', 'net_mrr_churn_rate', 'nps', 'nps_responses', 'nrr',
        'paying_accounts', 'tickets_created', 'tickets_per_account', 'tickets_resolved',
        'usage_events')
    TO pulse_cx;
