-- The 90 % interval of an allocation's TOTAL expected gain (recommended split minus the
-- current mix, summed over channels), computed per posterior draw when the allocation is
-- optimised (pulse_mmm.domain.optimize). The sum of per-channel interval bounds is not
-- the interval of the sum (it overstates the width whenever channels are not perfectly
-- correlated), so readers take the total from here. The same value is repeated on each
-- channel row of one (run_id, budget, periods) allocation; NULL on rows written before
-- this migration (the report then says the interval is not stored).
ALTER TABLE mmm_allocations ADD COLUMN IF NOT EXISTS gain_lower Nullable(Float64);
ALTER TABLE mmm_allocations ADD COLUMN IF NOT EXISTS gain_upper Nullable(Float64);
