"""Pure attribution logic: journeys in, credits out (no I/O, no clock reads)."""
