"""Pure alerting domain: rules, evaluation, lifecycle (no I/O, no clock reads)."""
