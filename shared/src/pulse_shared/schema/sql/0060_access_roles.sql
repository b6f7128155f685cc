-- pulse: access-control
-- One ClickHouse role per Pulse role (pulse_shared.access.SCOPES; docs/clickhouse-roles.md):
-- SELECT on the tables and views its scope lists, and for a scope narrower than every KPI
-- a row policy on kpi_values (its KPI families x dimensions). Grafana's per-role users and
-- any direct reader get exactly one of these roles. tests/test_clickhouse_roles.py checks
-- this file against SCOPES and the rows each role reads on a real server.
--
-- Runs in the migrating store's database (unqualified names = current database). Needs a
-- user with access management (deploy: pulse_writer); the runner skips it with a warning
-- where that is missing and on the embedded store (chDB has no users).

CREATE ROLE IF NOT EXISTS pulse_cmo;
CREATE ROLE IF NOT EXISTS pulse_director;
CREATE ROLE IF NOT EXISTS pulse_marketing_ops;
CREATE ROLE IF NOT EXISTS pulse_cx;
CREATE ROLE IF NOT EXISTS pulse_platform;

-- cmo: Every KPI, channel and campaign economics, reports, alerts (read).
GRANT SELECT ON alert_events TO pulse_cmo;
GRANT SELECT ON alert_silences TO pulse_cmo;
GRANT SELECT ON alert_state TO pulse_cmo;
GRANT SELECT ON attribution_channel_results TO pulse_cmo;
GRANT SELECT ON attribution_credits TO pulse_cmo;
GRANT SELECT ON attribution_credits_latest TO pulse_cmo;
GRANT SELECT ON attribution_model_runs TO pulse_cmo;
GRANT SELECT ON budgets TO pulse_cmo;
GRANT SELECT ON conversions TO pulse_cmo;
GRANT SELECT ON kpi_mrr_movements TO pulse_cmo;
GRANT SELECT ON kpi_values TO pulse_cmo;
GRANT SELECT ON pipeline_events TO pulse_cmo;
GRANT SELECT ON reports TO pulse_cmo;
GRANT SELECT ON spend TO pulse_cmo;
GRANT SELECT ON subscriptions TO pulse_cmo;
GRANT SELECT ON touchpoints TO pulse_cmo;
GRANT SELECT ON touchpoints_daily TO pulse_cmo;

-- director: As the CMO: every KPI, channels and campaigns, reports, alerts (read).
GRANT SELECT ON alert_events TO pulse_director;
GRANT SELECT ON alert_silences TO pulse_director;
GRANT SELECT ON alert_state TO pulse_director;
GRANT SELECT ON attribution_channel_results TO pulse_director;
GRANT SELECT ON attribution_credits TO pulse_director;
GRANT SELECT ON attribution_credits_latest TO pulse_director;
GRANT SELECT ON attribution_model_runs TO pulse_director;
GRANT SELECT ON budgets TO pulse_director;
GRANT SELECT ON conversions TO pulse_director;
GRANT SELECT ON kpi_mrr_movements TO pulse_director;
GRANT SELECT ON kpi_values TO pulse_director;
GRANT SELECT ON pipeline_events TO pulse_director;
GRANT SELECT ON reports TO pulse_director;
GRANT SELECT ON spend TO pulse_director;
GRANT SELECT ON subscriptions TO pulse_director;
GRANT SELECT ON touchpoints TO pulse_director;
GRANT SELECT ON touchpoints_daily TO pulse_director;

-- marketing_ops: Everything leadership sees; manages alert silences and rules.
GRANT SELECT ON alert_events TO pulse_marketing_ops;
GRANT SELECT ON alert_silences TO pulse_marketing_ops;
GRANT SELECT ON alert_state TO pulse_marketing_ops;
GRANT SELECT ON attribution_channel_results TO pulse_marketing_ops;
GRANT SELECT ON attribution_credits TO pulse_marketing_ops;
GRANT SELECT ON attribution_credits_latest TO pulse_marketing_ops;
GRANT SELECT ON attribution_model_runs TO pulse_marketing_ops;
GRANT SELECT ON budgets TO pulse_marketing_ops;
GRANT SELECT ON conversions TO pulse_marketing_ops;
GRANT SELECT ON kpi_mrr_movements TO pulse_marketing_ops;
GRANT SELECT ON kpi_values TO pulse_marketing_ops;
GRANT SELECT ON pipeline_events TO pulse_marketing_ops;
GRANT SELECT ON reports TO pulse_marketing_ops;
GRANT SELECT ON spend TO pulse_marketing_ops;
GRANT SELECT ON subscriptions TO pulse_marketing_ops;
GRANT SELECT ON touchpoints TO pulse_marketing_ops;
GRANT SELECT ON touchpoints_daily TO pulse_marketing_ops;

-- cx: Revenue retention of paying customers (MRR movements, churn, NRR, paying accounts, ARPA, LTV) in total; no spend, funnel, channel or campaign economics and no report files.
GRANT SELECT ON kpi_mrr_movements TO pulse_cx;
GRANT SELECT ON kpi_values TO pulse_cx;
GRANT SELECT ON subscriptions TO pulse_cx;

-- platform: Operations: API docs, alert silences and rules, users; no business data.
GRANT SELECT ON alert_silences TO pulse_platform;

-- cx reads kpi_values of the revenue family in total only. Users and roles without a row
-- policy on kpi_values (the writer, pulse_reader, the leadership roles) still read every
-- row: access_control_improvements.users_without_row_policies_can_read_rows (true since
-- ClickHouse 23.x; deploy/clickhouse/config.d/pulse-access.xml sets it explicitly).
-- A KPI added to the revenue family needs a new migration (ALTER ROW POLICY).
CREATE ROW POLICY IF NOT EXISTS pulse_cx_scope ON kpi_values
    AS PERMISSIVE FOR SELECT
    USING dimension = 'all' AND kpi IN (
        'arpa', 'arr', 'gross_mrr_churn_rate', 'logo_churn_rate', 'ltv',
        'mrr', 'mrr_churn', 'mrr_contraction', 'mrr_expansion', 'mrr_net_new',
        'mrr_new', 'mrr_reactivation', 'net_mrr_churn_rate', 'nrr', 'paying_accounts')
    TO pulse_cx;
