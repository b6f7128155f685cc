"""Pure KPI domain code: periods, MRR movements, KPI formulas, snapshot policy.

No I/O and no clock reads: callers pass facts loaded from ClickHouse and ``as_of``/``now``.
"""
