-- pulse: access-control
-- The marketing mix model's tables (0070_mmm) for the roles whose scope lists them
-- (pulse_shared.access.SCOPES: MMM_TABLES are part of BUSINESS_TABLES, which leadership
-- and marketing ops read). cx and platform get none of them: incremental ROI, spend per
-- channel and budget allocations are spend economics. pulse_reader (reporting, Grafana's
-- shared data source) reads every table of the database already (SELECT ON pulse.*).
--
-- Same rules as 0060_access_roles: runs in the migrating store's database, needs a user
-- with access management, skipped (and retried) where that is missing and on the embedded
-- store. The roles exist (0060 runs first); IF NOT EXISTS keeps this file runnable alone.

CREATE ROLE IF NOT EXISTS pulse_cmo;
CREATE ROLE IF NOT EXISTS pulse_director;
CREATE ROLE IF NOT EXISTS pulse_marketing_ops;

GRANT SELECT ON mmm_allocations TO pulse_cmo;
GRANT SELECT ON mmm_channel_results TO pulse_cmo;
GRANT SELECT ON mmm_contributions TO pulse_cmo;
GRANT SELECT ON mmm_posterior_draws TO pulse_cmo;
GRANT SELECT ON mmm_response_curves TO pulse_cmo;
GRANT SELECT ON mmm_runs TO pulse_cmo;

GRANT SELECT ON mmm_allocations TO pulse_director;
GRANT SELECT ON mmm_channel_results TO pulse_director;
GRANT SELECT ON mmm_contributions TO pulse_director;
GRANT SELECT ON mmm_posterior_draws TO pulse_director;
GRANT SELECT ON mmm_response_curves TO pulse_director;
GRANT SELECT ON mmm_runs TO pulse_director;

GRANT SELECT ON mmm_allocations TO pulse_marketing_ops;
GRANT SELECT ON mmm_channel_results TO pulse_marketing_ops;
GRANT SELECT ON mmm_contributions TO pulse_marketing_ops;
GRANT SELECT ON mmm_posterior_draws TO pulse_marketing_ops;
GRANT SELECT ON mmm_response_curves TO pulse_marketing_ops;
GRANT SELECT ON mmm_runs TO pulse_marketing_ops;
