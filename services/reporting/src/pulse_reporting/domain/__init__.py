"""Pure reporting domain: periods, report model, assembly, forecast, recommendations."""
