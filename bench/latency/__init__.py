"""End-to-end latency benchmark (conversion → credits, breach → alert)."""
