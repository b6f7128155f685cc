"""Pulse marketing mix model service: incremental ROI by channel and a budget optimiser."""
