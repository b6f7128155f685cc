"""One ClickHouse role per Pulse role (migrations 0060 and 0071, pulse_shared.access.SCOPES).

What is checked, and where:

* the migration grants each role exactly its scope's tables and gives the roles narrower
  than every KPI a row policy on ``kpi_values`` (read from the SQL, against SCOPES);
* every statement of the migration parses on the real server;
* on a real server, a user holding each role reads exactly its scope: the set of tables
  it can SELECT, the ``kpi_values`` rows it sees (computed with
  :func:`pulse_shared.access.kpi_visible`), and it cannot INSERT;
* the runner: embedded and servers that cannot manage access skip the migration (pending,
  services still start); ``migrate`` stays idempotent.

The test server is clickhouse-local from the chdb wheel: it serves users.xml only (no
writeable access storage, so ``CREATE ROLE`` cannot run on it). The role check therefore
declares the migration's roles, grants and row-policy condition in users.d XML, verbatim
from the migration's statements, and grants the role to an XML user exactly as the
deployment's ``grafana_<role>`` users get theirs (``<grants><query>GRANT pulse_<role>``).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
import structlog

from pulse_shared import access
from pulse_shared.kpi_catalog import BY_NAME, Family
from pulse_shared.schema.migrations import (
    APPLIED,
    SKIPPED,
    Migration,
    load_migrations,
    migrate,
)

GRANT = re.compile(r"^GRANT SELECT ON (\w+) TO (\w+)$")
ROLE = re.compile(r"^CREATE ROLE IF NOT EXISTS (\w+)$")
POLICY = re.compile(
    r"^(?:CREATE ROW POLICY IF NOT EXISTS|ALTER ROW POLICY) (\w+) ON (\w+)\s+AS PERMISSIVE "
    r"FOR SELECT\s+"
    r"USING (?P<condition>.+?)\s+TO (?P<roles>\w+(?:,\s*\w+)*)$",
    re.S,
)


def access_migrations() -> list[Migration]:
    """0060 (the roles, their grants, the row policy) and the later ones granting the
    tables of newer migrations (0071: the mmm tables, 0072: martech costs)."""
    return [m for m in load_migrations() if m.access_control]


def access_statements() -> list[str]:
    return [s for m in access_migrations() for s in m.statements]


def parsed() -> tuple[set[str], dict[str, set[str]], dict[str, dict[str, str]]]:
    """(roles created, role → tables granted, role → {table: row condition})."""
    roles: set[str] = set()
    grants: dict[str, set[str]] = {}
    policies: dict[str, dict[str, str]] = {}
    for statement in access_statements():
        if match := ROLE.match(statement):
            roles.add(match.group(1))
        elif match := GRANT.match(statement):
            grants.setdefault(match.group(2), set()).add(match.group(1))
        elif match := POLICY.match(statement):
            for role in re.split(r",\s*", match.group("roles")):
                policies.setdefault(role, {})[match.group(2)] = " ".join(
                    match.group("condition").split())
        else:
            raise AssertionError(f"unexpected statement in the access migration: {statement}")
    return roles, grants, policies


# ------------------------------------------------------------------ the migration text
def test_access_migrations_are_marked_and_grant_exactly_each_scope() -> None:
    assert access_migrations()[0].name == "access_roles"
    roles, grants, policies = parsed()
    assert roles == {access.clickhouse_role(r) for r in access.Role}
    for role in access.Role:
        name = access.clickhouse_role(role)
        assert grants.get(name, set()) == set(access.SCOPES[role].tables), role
        assert set(access.SCOPES[role].tables) <= access.BUSINESS_TABLES
    # A row policy exactly where the scope reads kpi_values but not every KPI.
    narrowed = {access.clickhouse_role(r) for r, s in access.SCOPES.items()
                if "kpi_values" in s.tables and not s.all_kpis}
    assert set(policies) == narrowed
    assert all(set(tables) == {"kpi_values"} for tables in policies.values())


def test_only_the_access_migrations_are_marked_access_control() -> None:
    marked = [m.label for m in load_migrations() if m.access_control]
    assert marked == ["0060_access_roles", "0071_mmm_access", "0072_martech_access",
                      "0073_accounts_access", "0074_usage_access", "0075_deliverability_access",
                      "0076_cx_access"]


@pytest.mark.clickhouse
def test_every_access_statement_parses_on_the_server(server_store: Any) -> None:
    for statement in access_statements():
        formatted = server_store.query_value("SELECT formatQuery({q:String})", {"q": statement})
        assert formatted, statement


# ------------------------------------------------------------------ the runner
def outcomes(store: Any) -> dict[int, str]:
    rows = store.query("SELECT version, outcome FROM pulse_migrations FINAL")
    return {int(r["version"]): r["outcome"] for r in rows}


def captured_logs(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The migration runner's log events from now on, whatever level logging was
    configured at by earlier tests (the CLI sets a filtering logger class): the runner's
    logger is replaced by one that keeps every level."""
    capture = structlog.testing.LogCapture()
    logger = structlog.wrap_logger(
        structlog.PrintLogger(), processors=[capture], wrapper_class=structlog.BoundLogger
    )
    monkeypatch.setitem(migrate.__globals__, "log", logger)
    return capture.entries


def test_embedded_store_skips_the_access_migration(
    embedded_store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs = captured_logs(monkeypatch)
    assert migrate(embedded_store) == []
    recorded = outcomes(embedded_store)
    access = {m.number for m in access_migrations()}
    assert all(recorded[n] == SKIPPED for n in access)
    assert all(v == APPLIED for n, v in recorded.items() if n not in access)
    assert not [e for e in logs if e["log_level"] in ("warning", "error")]


@pytest.mark.clickhouse
def test_server_without_access_storage_skips_it_with_a_warning_and_stays_idempotent(
    clickhouse_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The test server's writer has access management but the server has no writeable
    access storage: the other migrations apply, 0060 stays pending, migrate re-runs."""
    from pulse_shared.store.server import ServerStore

    database = f"roles_{uuid.uuid4().hex[:8]}"
    admin = ServerStore(clickhouse_server.url)
    admin.command(f"CREATE DATABASE {database}")
    writer = ServerStore(clickhouse_server.url, user=clickhouse_server.writer_user,
                         password=clickhouse_server.writer_password, database=database)
    try:
        logs = captured_logs(monkeypatch)
        applied = migrate(writer)
        assert [m.label for m in applied] == [
            m.label for m in load_migrations() if not m.access_control]
        labels = [m.label for m in access_migrations()]
        warnings = [e for e in logs if e["event"] == "access_control_migration_not_applied"]
        assert [w["migration"] for w in warnings] == labels
        assert all(w["log_level"] == "warning" for w in warnings)
        assert all("pulse migrate" in w["how_to_apply"] for w in warnings)
        assert all(outcomes(writer)[m.number] == SKIPPED for m in access_migrations())
        logs.clear()
        assert migrate(writer) == []  # idempotent; tried again, still pending
        assert [e["migration"] for e in logs
                if e["event"] == "access_control_migration_not_applied"] == labels
        assert outcomes(writer) == {m.number: SKIPPED if m.access_control else APPLIED
                                    for m in load_migrations()}
    finally:
        writer.close()
        admin.command(f"DROP DATABASE {database}")
        admin.close()


# ------------------------------------------------------------------ roles on a real server
PASSWORD = "role-reader-pw"


def reader(role: access.Role) -> str:
    return f"reader_{role.value}"


def roles_users_xml(database: str, users: dict[access.Role, str],
                    *, define_users: bool = True) -> str:
    """users.d XML with the migration's roles and grants (as XML roles) and, for each
    role's user in ``users``, the migration's row-policy condition as the user's filter.
    ``define_users``: also define those users (password, read-only profile) holding their
    role the way deploy's grafana_<role> users do; else they come from another file."""
    _, grants, policies = parsed()
    role_xml = "".join(
        f"<{name}><grants>"
        + "".join(f"<query>GRANT SELECT ON {database}.{t}</query>" for t in sorted(tables))
        + f"</grants></{name}>"
        for name, tables in grants.items()
    )
    users_xml = ""
    for role, user in users.items():
        name = access.clickhouse_role(role)
        filters = "".join(
            f"<{table}><filter>{escape(condition)}</filter></{table}>"
            for table, condition in policies.get(name, {}).items()
        )
        body = (f"<databases><{database}>{filters}</{database}></databases>"
                if filters else "")
        if define_users:
            body = (f"<password>{PASSWORD}</password><networks><ip>::/0</ip></networks>"
                    "<profile>readonly</profile><quota>default</quota>"
                    f"<grants><query>GRANT {name}</query></grants>" + body)
        users_xml += f"<{user}>{body}</{user}>"
    return f"<clickhouse><roles>{role_xml}</roles><users>{users_xml}</users></clickhouse>"


def server_with_users_d(workdir: Path, files: dict[str, str], **kwargs: Any) -> Any:
    """testinfra's ClickHouse server with extra users.d files (name → XML text)."""
    from pulse_testinfra.clickhouse import ClickHouseServer

    class UsersDServer(ClickHouseServer):
        def _write_config(self) -> None:
            super()._write_config()
            users_d = self.workdir / "users.d"
            users_d.mkdir(exist_ok=True)
            for name, text in files.items():
                (users_d / name).write_text(text)

    return UsersDServer(workdir, **kwargs)


@pytest.fixture(scope="module")
def roles_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    readers = {role: reader(role) for role in access.Role}
    server = server_with_users_d(Path(tmp_path_factory.mktemp("ch-roles")),
                                 {"pulse-roles.xml": roles_users_xml("default", readers)})
    try:
        server.start()
        yield server
    finally:
        server.close()


KPI_COLUMNS = ["kpi", "grain", "period", "period_start", "dimension", "dimension_value",
               "value", "unit", "computed_at"]
#: KPIs of every family, per-model names included, each at every dimension (the names
#: the KPI service writes: catalog names only).
KPI_NAMES = sorted({
    *(next(k for k, d in BY_NAME.items() if d.family == family) for family in Family),
    "mrr", "nrr", "spend", "roas__linear", "attributed_revenue__linear",
})


def kpi_rows() -> list[dict[str, Any]]:
    computed = dt.datetime(2031, 1, 5, tzinfo=dt.UTC)
    return [
        {"kpi": kpi, "grain": "month", "period": "2031-01", "period_start": dt.date(2031, 1, 1),
         "dimension": dimension, "dimension_value": "" if dimension == "all" else "x",
         "value": 1.0, "unit": "usd", "computed_at": computed}
        for kpi in KPI_NAMES for dimension in sorted(access.ALL_DIMENSIONS)
    ]


def load_business_data(writer: Any) -> None:
    """Rows in every business table (random ones; kpi_values: :func:`kpi_rows`)."""
    columns = writer.query(
        "SELECT table, name, type FROM system.columns WHERE database = currentDatabase() "
        "AND default_kind IN ('', 'DEFAULT') ORDER BY table, position")
    engines = {r["name"]: r["engine"] for r in writer.query(
        "SELECT name, engine FROM system.tables WHERE database = currentDatabase()")}
    for table in sorted(access.BUSINESS_TABLES - {"kpi_values"}):
        cols = [c for c in columns if c["table"] == table]
        if engines[table] in ("View", "MaterializedView") or any(
                c["type"].startswith("AggregateFunction") for c in cols):
            continue  # filled from other tables (view, materialized view target)
        structure = ", ".join(f"`{c['name']}` {c['type']}" for c in cols)
        names = ", ".join(f"`{c['name']}`" for c in cols)
        writer.command(
            f"INSERT INTO {table} ({names}) SELECT * FROM "
            "generateRandom({structure:String}, 7, 8, 2) LIMIT 3", {"structure": structure})
    writer.insert("kpi_values", kpi_rows(), KPI_COLUMNS)
    for table in access.BUSINESS_TABLES:
        assert writer.query_value(f"SELECT count() FROM {table}") > 0, table


@pytest.fixture(scope="module")
def loaded(roles_server: Any) -> Iterator[Any]:
    """Migrated by the writer, with rows in every business table."""
    from pulse_shared.store.server import ServerStore

    writer = ServerStore(roles_server.url, user=roles_server.writer_user,
                         password=roles_server.writer_password)
    migrate(writer)
    load_business_data(writer)
    yield writer
    writer.close()


def readable_tables(server: Any, user: str, password: str,
                    database: str = "default") -> set[str]:
    """The tables and views of ``database`` that ``user`` may SELECT (tries every one)."""
    import httpx

    tables = [r["name"] for r in server.client().query(
        "SELECT name FROM system.tables WHERE database = {db:String}",
        parameters={"db": database}).named_results()]
    assert tables
    readable = set()
    with httpx.Client(timeout=30) as http:
        for table in tables:
            answer = http.post(server.url, content=f"SELECT count() FROM `{table}`".encode(),
                               auth=(user, password), params={"database": database})
            if answer.status_code == 200:
                readable.add(table)
            else:
                assert "ACCESS_DENIED" in answer.text, (user, table, answer.text)
    return readable


def assert_reads_exactly_its_scope(server: Any, role: access.Role, user: str,
                                   password: str, database: str = "default") -> None:
    import httpx

    assert readable_tables(server, user, password, database) == set(
        access.SCOPES[role].tables)

    client = server.client(user=user, password=password, database=database)
    assert client.query("SELECT currentRoles()").result_rows == [
        ([access.clickhouse_role(role)],)]
    if "kpi_values" in access.SCOPES[role].tables:
        seen = {(r[0], r[1]) for r in client.query(
            "SELECT kpi, dimension FROM kpi_values").result_rows}
        expected = {(r["kpi"], r["dimension"]) for r in kpi_rows()
                    if access.kpi_visible(role, r["kpi"], r["dimension"])}
        assert seen == expected
        assert expected or not access.SCOPES[role].kpi_families

    for table in access.SCOPES[role].tables:
        refused = httpx.post(
            server.url, auth=(user, password), params={"database": database},
            content=f"INSERT INTO {table} SELECT * FROM {table} LIMIT 1".encode())
        assert refused.status_code != 200, table
        assert "READONLY" in refused.text or "ACCESS_DENIED" in refused.text, refused.text


@pytest.mark.clickhouse
@pytest.mark.parametrize("role", list(access.Role), ids=[r.value for r in access.Role])
def test_each_role_reads_exactly_its_scope(role: access.Role, roles_server: Any,
                                           loaded: Any) -> None:
    assert_reads_exactly_its_scope(roles_server, role, reader(role), PASSWORD)


@pytest.mark.clickhouse
def test_users_without_a_row_policy_still_read_every_kpi_row(roles_server: Any,
                                                             loaded: Any) -> None:
    everything = len(kpi_rows())
    for user, password in ((roles_server.writer_user, roles_server.writer_password),
                           (roles_server.reader_user, roles_server.reader_password),
                           ("default", "")):
        client = roles_server.client(user=user, password=password)
        assert client.command("SELECT count() FROM kpi_values") == everything, user
    cmo = roles_server.client(user=reader(access.Role.CMO), password=PASSWORD)
    assert cmo.command("SELECT count() FROM kpi_values") == everything


# ------------------------------------------------------------------ the deployment's users
ROOT = Path(__file__).resolve().parents[1]
USERS_D = ROOT / "deploy" / "clickhouse" / "users.d"
WRITER_PW = "deploy-writer-pw"


def grafana_password(role: access.Role) -> str:
    return f"deploy-grafana-{role.value}-pw"


@pytest.fixture(scope="module")
def deploy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The deployment's users.d files (pulse-users.xml, pulse-access.xml) on a real
    server, plus the migration's roles declared in XML (see the module doc)."""
    import re as _re

    files = {p.name: p.read_text() for p in (USERS_D / "pulse-users.xml",
                                               USERS_D / "pulse-access.xml")}
    grafana_users = {role: f"grafana_{role.value}" for role in access.Role}
    files["zz-roles.xml"] = roles_users_xml("pulse", grafana_users, define_users=False)
    mp = pytest.MonkeyPatch()
    mp.setenv("PULSE_CLICKHOUSE_WRITER_PASSWORD", WRITER_PW)
    mp.setenv("PULSE_CLICKHOUSE_READER_PASSWORD", "deploy-reader-pw")
    for role in access.Role:
        mp.setenv(f"PULSE_CLICKHOUSE_GRAFANA_{role.value.upper()}_PASSWORD",
                  grafana_password(role))
    server = server_with_users_d(Path(tmp_path_factory.mktemp("ch-deploy-roles")), files,
                                 writer_password=WRITER_PW, reader_password="deploy-reader-pw")
    # testinfra's own writer and reader give way to the deployment's.
    original = server._write_config

    def write_config() -> None:
        original()
        users = server.workdir / "users.xml"
        text = users.read_text()
        for name in (server.reader_user, server.writer_user):
            text = _re.sub(rf"<{name}>.*?</{name}>", "", text, flags=_re.S)
        users.write_text(text)

    server._write_config = write_config  # type: ignore[method-assign]
    try:
        server.start()
        server.client().command("CREATE DATABASE IF NOT EXISTS pulse")
        yield server
    finally:
        server.close()
        mp.undo()


@pytest.mark.clickhouse
def test_deploy_writer_has_what_the_access_migration_needs(deploy_server: Any) -> None:
    grants = deploy_server.client().command("SHOW GRANTS FOR pulse_writer")
    text = grants if isinstance(grants, str) else "\n".join(map(str, grants))
    assert "GRANT SELECT ON pulse.* TO pulse_writer WITH GRANT OPTION" in text
    assert re.search(r"GRANT [^\n]*ROLE ADMIN[^\n]*SYSTEM RELOAD USERS ON \*\.\*", text), text
    assert "GRANT CREATE ROLE ON * TO pulse_writer" in text
    assert re.search(r"CREATE ROW POLICY[^\n]* ON pulse\.\*", text), text
    assert "GRANT TABLE ENGINE ON * TO pulse_writer" in text  # pulse-users.xml's still hold


@pytest.mark.clickhouse
@pytest.mark.parametrize("role", list(access.Role), ids=[r.value for r in access.Role])
def test_deploy_grafana_user_reads_exactly_its_scope(role: access.Role,
                                                     deploy_server: Any) -> None:
    from pulse_shared.store.server import ServerStore

    writer = ServerStore(deploy_server.url, user="pulse_writer", password=WRITER_PW,
                         database="pulse")
    try:
        if not writer.query_value("SELECT count() FROM system.tables "
                                  "WHERE database = 'pulse' AND name = 'kpi_values'"):
            migrate(writer)
            load_business_data(writer)
    finally:
        writer.close()
    user = f"grafana_{role.value}"
    client = deploy_server.client(user=user, password=grafana_password(role))
    assert client.command("SELECT getSetting('readonly')") == 1
    assert_reads_exactly_its_scope(deploy_server, role, user, grafana_password(role), "pulse")
