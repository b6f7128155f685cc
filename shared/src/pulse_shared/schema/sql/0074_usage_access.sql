-- pulse: access-control
-- Product usage (0027_product_usage) for the roles whose scope lists it
-- (pulse_shared.access.SCOPES: product_usage is part of BUSINESS_TABLES, which leadership
-- and marketing ops read, and of cx's tables: customer experience follows up the accounts
-- whose usage drops, the churn-risk list). platform gets none.
-- pulse_reader (reporting, Grafana's shared data source) reads every table of the database
-- already (SELECT ON pulse.*).
--
-- Same rules as 0060_access_roles: runs in the migrating store's database, needs a user
-- with access management, skipped (and retried) where that is missing and on the embedded
-- store. The roles exist (0060 runs first); IF NOT EXISTS keeps this file runnable alone.

CREATE ROLE IF NOT EXISTS pulse_cmo;
CREATE ROLE IF NOT EXISTS pulse_director;
CREATE ROLE IF NOT EXISTS pulse_marketing_ops;
CREATE ROLE IF NOT EXISTS pulse_cx;

GRANT SELECT ON product_usage TO pulse_cmo;

GRANT SELECT ON product_usage TO pulse_director;

GRANT SELECT ON product_usage TO pulse_marketing_ops;

GRANT SELECT ON product_usage TO pulse_cx;
