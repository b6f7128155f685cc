"""The cx role after issue 17: revenue, product and customer experience KPIs, in total and
by segment; the survey answers and tickets; never spend or deliverability.

The grants and the row policy as migrated (0076_cx_access alters 0060's policy) are
checked against SCOPES by tests/test_clickhouse_roles.py, on a real server too (a cx user
reads ``nps`` rows and no ``spend`` row there). Here: the policy lists exactly the catalog's
KPIs of cx's families (a KPI added to one of them fails until a new access migration
replaces the policy), and its condition, evaluated by the real server, lets cx read nps
in total and by segment and nothing of spend, CAC or deliverability.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from pulse_shared import access
from pulse_shared.kpi_catalog import BY_NAME
from pulse_shared.schema.migrations import load_migrations

CX = access.Role.CX


def cx_policy_condition() -> str:
    """The condition of the last statement setting pulse_cx_scope (the one in force)."""
    found = ""
    for migration in load_migrations():
        for statement in migration.statements:
            match = re.match(r"^(?:CREATE ROW POLICY IF NOT EXISTS|ALTER ROW POLICY) "
                             r"pulse_cx_scope ON kpi_values\s+AS PERMISSIVE FOR SELECT\s+"
                             r"USING (.+?)\s+TO pulse_cx$", statement, re.S)
            if match:
                found = " ".join(match.group(1).split())
    assert found, "no cx row policy"
    return found


def test_the_cx_policy_follows_scopes_and_the_catalog() -> None:
    condition = cx_policy_condition()
    scope = access.SCOPES[CX]
    listed = set(re.findall(r"'(\w+)'", condition.split("kpi IN", 1)[1]))
    assert listed == {k.name for k in BY_NAME.values() if k.family in scope.kpi_families}
    dims = set(re.findall(r"'(\w+)'", condition.split("AND kpi IN", 1)[0]))
    assert dims == set(scope.dimensions) == {"all", "segment", "feature"}


def test_cx_may_see_experience_but_not_spend() -> None:
    assert access.kpi_visible(CX, "nps") and access.kpi_visible(CX, "nps", "segment")
    assert access.kpi_visible(CX, "first_response_hours")
    assert not access.kpi_visible(CX, "nps", "channel")
    for kpi in ("spend", "cac", "roas", "marketing_cost", "emails_sent", "budget"):
        assert not access.kpi_visible(CX, kpi), kpi
    assert {"feedback_responses", "support_tickets"} <= access.SCOPES[CX].tables
    assert "spend" not in access.SCOPES[CX].tables
    assert "support_tickets" not in access.SCOPES[access.Role.PLATFORM].tables


@pytest.mark.clickhouse
def test_the_server_applies_the_cx_condition(server_store: Any) -> None:
    condition = cx_policy_condition()
    rows = server_store.query(
        "SELECT kpi, dimension FROM (SELECT arrayJoin({kpis:Array(String)}) AS kpi, "
        "arrayJoin({dims:Array(String)}) AS dimension) WHERE " + condition  # the migration's own text
        + " ORDER BY kpi, dimension",
        {"kpis": ["nps", "csat", "spend", "cac", "emails_sent", "mrr"],
         "dims": ["all", "segment", "channel"]},
    )
    assert [(r["kpi"], r["dimension"]) for r in rows] == [
        ("csat", "all"), ("csat", "segment"), ("mrr", "all"), ("mrr", "segment"),
        ("nps", "all"), ("nps", "segment"),
    ]
