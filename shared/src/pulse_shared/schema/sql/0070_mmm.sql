-- Marketing mix model runs (pulse_mmm). One row per fit; `version` counts the fits of a
-- target × grain. A run whose diagnostics fail is stored with status 'rejected' and its
-- reason, and its results are not written: readers use the latest 'published' run.
CREATE TABLE IF NOT EXISTS mmm_runs
(
    run_id          String,
    version         UInt32,
    target          LowCardinality(String),
    grain           LowCardinality(String),
    date_from       Date,
    date_to         Date,
    periods         UInt32,
    channels        Array(String),
    status          LowCardinality(String) COMMENT 'published | rejected',
    reason          String,
    library         String COMMENT 'e.g. pymc-marketing 0.19.2 (numpyro NUTS)',
    parameters      String COMMENT 'JSON: priors, sampler settings, thresholds',
    max_rhat        Nullable(Float64),
    min_ess         Nullable(Float64),
    divergences     UInt32,
    holdout_periods UInt32,
    holdout_mape    Nullable(Float64),
    r_squared       Nullable(Float64),
    started_at      DateTime64(3, 'UTC'),
    finished_at     DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (target, grain, run_id);

-- ROI per channel of a published run over its whole window (90 % credible intervals).
CREATE TABLE IF NOT EXISTS mmm_channel_results
(
    run_id              String,
    channel             LowCardinality(String),
    spend               Float64,
    contribution        Float64,
    contribution_lower  Float64,
    contribution_upper  Float64,
    roi                 Nullable(Float64),
    roi_lower           Nullable(Float64),
    roi_upper           Nullable(Float64),
    marginal_roi        Nullable(Float64),
    attribution_roas    Nullable(Float64) COMMENT 'credited revenue (executive default model) / spend since the first credited touch'
)
ENGINE = ReplacingMergeTree
ORDER BY (run_id, channel);

-- Contribution per channel and period ('baseline' = intercept + trend + seasonality).
CREATE TABLE IF NOT EXISTS mmm_contributions
(
    run_id        String,
    channel       LowCardinality(String),
    period_start  Date,
    spend         Float64,
    contribution  Float64,
    lower         Float64,
    upper         Float64
)
ENGINE = ReplacingMergeTree
ORDER BY (run_id, channel, period_start);

-- Response curves: expected contribution per period at a steady spend per period.
CREATE TABLE IF NOT EXISTS mmm_response_curves
(
    run_id        String,
    channel       LowCardinality(String),
    spend         Float64,
    contribution  Float64,
    lower         Float64,
    upper         Float64
)
ENGINE = ReplacingMergeTree
ORDER BY (run_id, channel, spend);

-- Posterior draws of each channel's response parameters (thinned), so `pulse mmm optimize`
-- and the reports' recommendation evaluate curves with their uncertainty without refitting.
CREATE TABLE IF NOT EXISTS mmm_posterior_draws
(
    run_id        String,
    channel       LowCardinality(String),
    draw          UInt32,
    adstock_alpha Float64,
    saturation_lam Float64,
    saturation_beta Float64,
    spend_scale   Float64,
    target_scale  Float64
)
ENGINE = ReplacingMergeTree
ORDER BY (run_id, channel, draw);

-- The optimiser's allocation stored with each published run: the recommended split of
-- the current budget (last 8 periods' spend, same horizon) against the current mix.
CREATE TABLE IF NOT EXISTS mmm_allocations
(
    run_id                        String,
    budget                        Float64,
    periods                       UInt32,
    channel                       LowCardinality(String),
    current_spend                 Float64,
    recommended_spend             Float64,
    current_contribution          Float64,
    expected_contribution         Float64,
    expected_contribution_lower   Float64,
    expected_contribution_upper   Float64
)
ENGINE = ReplacingMergeTree
ORDER BY (run_id, budget, periods, channel);
