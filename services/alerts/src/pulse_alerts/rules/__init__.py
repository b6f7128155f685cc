"""Rules shipped with the package (used when PULSE_ALERTS_RULES_FILE is unset)."""
