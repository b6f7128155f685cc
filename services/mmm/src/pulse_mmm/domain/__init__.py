"""Pure MMM domain: datasets, fit results, diagnostics gate and the budget optimiser."""
