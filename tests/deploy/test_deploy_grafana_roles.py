"""Grafana and ClickHouse per Pulse role: one data source, ClickHouse user and dashboard
folder per persona; each persona's dashboards query only through its own data source and
only what its scope (pulse_shared.access.SCOPES) allows; teams via grafana-init."""

from __future__ import annotations

import json
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import ROOT, compose

from pulse_shared import access
from pulse_shared.kpi_catalog import BY_NAME

GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
CLICKHOUSE_TYPE = "grafana-clickhouse-datasource"
ROLES = list(access.Role)
IDS = [r.value for r in ROLES]


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def datasources() -> list[dict[str, Any]]:
    return load_yaml(GRAFANA / "provisioning" / "datasources" / "datasources.yml")["datasources"]


def providers() -> list[dict[str, Any]]:
    return load_yaml(GRAFANA / "provisioning" / "dashboards" / "pulse.yml")["providers"]


def persona_files(role: access.Role) -> list[Path]:
    return sorted((DASHBOARDS / role.value).glob("*.json"))


def generator() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("generate_dashboards",
                                                  GRAFANA / "generate_dashboards.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def walk(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for v in value.values():
            yield from walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk(v)


def clickhouse_queries(dash: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(where, sql, datasource) of every ClickHouse query: panel targets and variables."""
    for node in walk(dash["panels"]):
        if "rawSql" in node:
            yield f"{dash['uid']}:{node.get('refId')}", node["rawSql"], node["datasource"]
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            yield f"{dash['uid']}:${var['name']}", var["query"], var["datasource"]


# --- what a query reads (written independently of the generator's own filter) -----
def tables_read(sql: str) -> set[str]:
    return {t for t in re.findall(r"\b(?:FROM|JOIN)\s+(\w+)", sql, re.I)} - {"SELECT"}


def kpis_read(sql: str) -> set[str]:
    names = set(re.findall(r"kpi = '(\w+)'", sql))
    for group in re.findall(r"kpi IN \(([^)]*)\)", sql):
        names |= set(re.findall(r"'(\w+)'", group))
    for base in re.findall(r"concat\('(\w+)__', '\$\{model\}'\)", sql):
        names |= {k for k in BY_NAME if k == base or k.startswith(f"{base}__")}
    for prefix in re.findall(r"startsWith\(kpi, '(\w+)'\)", sql):
        names |= {k for k in BY_NAME if k.startswith(prefix)}
    return names


def dimensions_read(sql: str) -> set[str]:
    return set(re.findall(r"dimension = '(\w+)'", sql))


# --- data sources and folders --------------------------------------------------------
@pytest.mark.parametrize("role", ROLES, ids=IDS)
def test_every_role_has_a_clickhouse_data_source_as_its_own_user(role: access.Role) -> None:
    (source,) = [d for d in datasources() if d["uid"] == f"pulse-clickhouse-{role.value}"]
    assert source["type"] == CLICKHOUSE_TYPE and source["editable"] is False
    assert source["jsonData"]["username"] == f"grafana_{role.value}"
    assert source["jsonData"]["defaultDatabase"] == "pulse"
    variable = f"PULSE_CLICKHOUSE_GRAFANA_{role.value.upper()}_PASSWORD"
    assert source["secureJsonData"]["password"] == f"${{{variable}}}"
    assert variable in compose()["services"]["grafana"]["environment"]


def test_no_data_source_reads_everything_and_the_old_one_is_deleted() -> None:
    sources = datasources()
    clickhouse = [d for d in sources if d["type"] == CLICKHOUSE_TYPE]
    assert {d["jsonData"]["username"] for d in clickhouse} == {f"grafana_{r.value}"
                                                               for r in ROLES}
    assert {d["type"] for d in sources} == {"prometheus", CLICKHOUSE_TYPE}
    deleted = load_yaml(GRAFANA / "provisioning" / "datasources" / "datasources.yml")[
        "deleteDatasources"]
    assert {"name": "ClickHouse", "orgId": 1} in deleted
    grafana_env = compose()["services"]["grafana"]["environment"]
    assert "PULSE_CLICKHOUSE_READER_PASSWORD" not in grafana_env


@pytest.mark.parametrize("role", ROLES, ids=IDS)
def test_every_role_has_a_folder_of_its_own_dashboards(role: access.Role) -> None:
    (provider,) = [p for p in providers() if p["folderUid"] == f"pulse-{role.value}"]
    assert provider["options"]["path"] == f"/etc/grafana/dashboards/{role.value}"
    assert provider["type"] == "file" and provider["allowUiUpdates"] is False
    assert persona_files(role), f"no dashboards for {role.value}"
    mounted = [v for v in compose()["services"]["grafana"]["volumes"]
               if v.split(":")[1] == "/etc/grafana/dashboards"]
    assert mounted and mounted[0].startswith("./deploy/grafana/dashboards:")


def test_each_folder_is_one_provider_and_dashboard_uids_are_unique() -> None:
    paths = [p["options"]["path"] for p in providers()]
    assert len(paths) == len(set(paths)) == len(ROLES)
    # No provider loads the dashboards root: Grafana walks sub-folders, which would load
    # every persona's dashboards into one folder.
    assert "/etc/grafana/dashboards" not in paths
    uids = [json.loads(p.read_text())["uid"] for r in ROLES for p in persona_files(r)]
    assert len(uids) == len(set(uids))


def test_persona_dashboards_and_provisioning_match_the_generator() -> None:
    module = generator()
    rendered = module.render_personas()
    on_disk = {f"{r.value}/{p.name}" for r in ROLES for p in persona_files(r)}
    assert set(rendered) == on_disk
    for name, text in rendered.items():
        assert (DASHBOARDS / name).read_text() == text, (
            f"{name} is stale: run .venv/bin/python deploy/grafana/generate_dashboards.py")
    for name, text in module.render_provisioning().items():
        assert (GRAFANA / "provisioning" / name).read_text() == text, name


# --- each persona's queries ------------------------------------------------------------
@pytest.mark.parametrize("role", ROLES, ids=IDS)
def test_persona_queries_use_its_data_source_and_only_its_scope(role: access.Role) -> None:
    scope = access.SCOPES[role]
    own = f"pulse-clickhouse-{role.value}"
    queries = 0
    for path in persona_files(role):
        dash = json.loads(path.read_text())
        for node in walk(dash):  # every ClickHouse reference, panels and variables
            if node.get("type") == CLICKHOUSE_TYPE and "uid" in node:
                assert node["uid"] == own, (path.name, node)
        for where, sql, source in clickhouse_queries(dash):
            queries += 1
            assert source == {"type": CLICKHOUSE_TYPE, "uid": own}, where
            assert tables_read(sql) <= scope.tables, (where, tables_read(sql) - scope.tables)
            if "kpi_values" in tables_read(sql):
                kpis, dims = kpis_read(sql), dimensions_read(sql)
                assert (kpis and dims) or scope.all_kpis, where
                hidden = {(k, d) for k in kpis for d in dims
                          if not access.kpi_visible(role, k, d)}
                assert not hidden, (where, sorted(hidden))
    assert queries or not scope.tables - {"alert_silences"}, role


def test_cx_sees_revenue_in_total_and_leadership_sees_the_full_dashboards() -> None:
    cx = json.loads((DASHBOARDS / "cx" / "pulse-executive.json").read_text())
    titles = {p["title"] for p in cx["panels"] if p["type"] != "row"}
    assert {"MRR", "NRR", "MRR bridge over the range"} <= titles
    assert not {"Spend", "ROAS by channel (latest period in range)", "Funnel volumes"} & titles
    for role in (access.Role.CMO, access.Role.DIRECTOR, access.Role.MARKETING_OPS):
        mine = json.loads((DASHBOARDS / role.value / "pulse-executive.json").read_text())
        full = json.loads((DASHBOARDS / "pulse-executive.json").read_text())
        assert len(mine["panels"]) == len(full["panels"]), role


@pytest.mark.parametrize("role", ROLES, ids=IDS)
def test_persona_sql_runs_against_the_migrated_schema(role: access.Role,
                                                      embedded_store: Any) -> None:
    from test_deploy_dashboards import expand

    for path in persona_files(role):
        dash = json.loads(path.read_text())
        for _, sql, _ in clickhouse_queries(dash):
            embedded_store.query(expand(sql, dash))


# --- ClickHouse users and compose ------------------------------------------------------
ACCESS_XML = ROOT / "deploy" / "clickhouse" / "users.d" / "pulse-access.xml"


def test_one_clickhouse_user_per_role_holding_exactly_its_role() -> None:
    root = ET.parse(ACCESS_XML).getroot()
    users = root.find("users")
    assert users is not None
    grafana_users = {u.tag: u for u in users if u.tag.startswith("grafana_")}
    assert set(grafana_users) == {f"grafana_{r.value}" for r in ROLES}
    clickhouse_env = compose()["services"]["clickhouse"]["environment"]
    for role in ROLES:
        user = grafana_users[f"grafana_{role.value}"]
        password = user.find("password")
        assert password is not None and not (password.text or "").strip()
        assert password.attrib["from_env"] == (
            f"PULSE_CLICKHOUSE_GRAFANA_{role.value.upper()}_PASSWORD")
        assert str(clickhouse_env[password.attrib["from_env"]]).startswith("${")
        assert [q.text for q in user.findall("grants/query")] == [
            f"GRANT {access.clickhouse_role(role)}"]
        assert root.findtext(f"profiles/{user.findtext('profile')}/readonly") == "1"


def test_compose_mounts_the_access_files_and_runs_grafana_init() -> None:
    services = compose()["services"]
    volumes = services["clickhouse"]["volumes"]
    for target in ("/etc/clickhouse-server/users.d/pulse-access.xml",
                   "/etc/clickhouse-server/config.d/pulse-access.xml"):
        (source,) = [v.split(":")[0] for v in volumes if v.split(":")[1] == target]
        assert (ROOT / source).is_file()
    init = services["grafana-init"]
    assert init["restart"] == "no"
    assert init["depends_on"]["grafana"]["condition"] == "service_healthy"
    script = init["entrypoint"][-1]
    (mount,) = [v for v in init["volumes"] if v.split(":")[1] == script]
    assert (ROOT / mount.split(":")[0]) == GRAFANA / "init_teams.py"
    for role in ROLES:
        assert f"PULSE_CLICKHOUSE_GRAFANA_{role.value.upper()}_PASSWORD" in init["environment"]


def test_server_config_lists_sql_access_storage_before_users_xml() -> None:
    root = ET.parse(ROOT / "deploy" / "clickhouse" / "config.d" / "pulse-access.xml").getroot()
    directories = root.find("user_directories")
    assert directories is not None and directories.attrib.get("replace") == "replace"
    assert [d.tag for d in directories] == ["local_directory", "users_xml"]
    assert root.findtext(
        "access_control_improvements/users_without_row_policies_can_read_rows") == "true"


# --- grafana-init against a Grafana API stand-in ------------------------------------------
class FakeGrafana(BaseHTTPRequestHandler):
    """Teams, provisioned folders and legacy folder permissions, as Grafana answers them."""

    teams: dict[str, int] = {}
    permissions: dict[str, list[dict[str, Any]]] = {}
    auth = ""

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        assert self.headers["Authorization"] == FakeGrafana.auth
        path, _, query = self.path.partition("?")
        if path == "/api/health":
            return self._send(200, {"database": "ok"})
        if path == "/api/teams/search":
            name = query.split("name=", 1)[1]
            found = [{"id": i, "name": n} for n, i in self.teams.items() if n == name]
            return self._send(200, {"teams": found})
        match = re.fullmatch(r"/api/folders/([\w-]+)(/permissions)?", path)
        if match and match.group(1) in self.permissions:
            if match.group(2):
                return self._send(200, self.permissions[match.group(1)])
            return self._send(200, {"uid": match.group(1)})
        return self._send(404, {"message": "not found"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/api/teams":
            self.teams[body["name"]] = len(self.teams) + 1
            return self._send(200, {"teamId": self.teams[body["name"]]})
        match = re.fullmatch(r"/api/folders/([\w-]+)/permissions", self.path)
        if match:
            self.permissions[match.group(1)] = [
                {**item, "role": "", "userId": 0, "inherited": False} for item in body["items"]]
            return self._send(200, {"message": "Folder permissions updated"})
        return self._send(404, {"message": "not found"})


def test_grafana_init_gives_each_folder_to_its_team_only_and_is_idempotent() -> None:
    import base64
    import importlib.util

    spec = importlib.util.spec_from_file_location("init_teams", GRAFANA / "init_teams.py")
    assert spec and spec.loader
    init_teams = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(init_teams)

    FakeGrafana.teams = {}
    # Provisioned folders start with Grafana's defaults: Viewer and Editor org roles.
    FakeGrafana.permissions = {
        f"pulse-{r.value}": [{"teamId": 0, "userId": 0, "role": "Viewer", "permission": 1},
                             {"teamId": 0, "userId": 0, "role": "Editor", "permission": 2}]
        for r in ROLES}
    FakeGrafana.auth = "Basic " + base64.b64encode(b"admin:a-real-admin-pw").decode()
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeGrafana)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        grafana = init_teams.Grafana(f"http://127.0.0.1:{server.server_port}", "admin",
                                     "a-real-admin-pw")
        first = init_teams.init_teams(grafana, access.ROLE_NAMES, timeout=10)
        assert len(first) == 2 * len(ROLES)
        for role in ROLES:
            team = FakeGrafana.teams[f"pulse-{role.value}"]
            assert [(p["teamId"], p["permission"])
                    for p in FakeGrafana.permissions[f"pulse-{role.value}"]] == [(team, 1)]
        assert init_teams.init_teams(grafana, access.ROLE_NAMES, timeout=10) == []
    finally:
        server.shutdown()


def test_grafana_init_refuses_placeholder_clickhouse_passwords() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("init_teams", GRAFANA / "init_teams.py")
    assert spec and spec.loader
    init_teams = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(init_teams)
    with pytest.raises(SystemExit, match="PULSE_CLICKHOUSE_GRAFANA_CX_PASSWORD"):
        init_teams.refuse_placeholder_passwords(
            ["cmo", "cx"], {"PULSE_CLICKHOUSE_GRAFANA_CMO_PASSWORD": "a-real-one-1",
                            "PULSE_CLICKHOUSE_GRAFANA_CX_PASSWORD": "change-me-grafana-cx"})
    init_teams.refuse_placeholder_passwords(
        ["cx"], {"PULSE_CLICKHOUSE_GRAFANA_CX_PASSWORD": "a-real-one-2"})
