"""Give each persona's Grafana dashboard folder to that persona's team (idempotent).

Grafana provisions data sources and dashboards from files, but not teams or folder
permissions: this one-shot job (the ``grafana-init`` compose service) does it through
Grafana's HTTP API as the admin. For every Pulse role (:mod:`pulse_shared.access`):

* the team ``pulse-<role>`` exists (created when missing);
* the folder ``pulse-<role>`` (provisioned from ``dashboards/<role>/``) is viewable by that
  team only: its permissions are replaced with one entry, so the default "Viewer" and
  "Editor" org roles no longer see it (Grafana admins always do).

Operators then add people to teams (UI or API); see docs/clickhouse-roles.md. Running it
again changes nothing. Before anything, it refuses placeholder passwords for the per-role
ClickHouse users (the same check every Pulse service applies to its secrets).

Environment: ``GRAFANA_URL`` (default http://grafana:3000), ``GRAFANA_ADMIN_USER``,
``GRAFANA_ADMIN_PASSWORD``; optional ``GRAFANA_INIT_TIMEOUT`` (seconds to wait for Grafana
and the provisioned folders, default 120).
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from typing import Any

#: Grafana folder permission levels (legacy folder permissions API).
VIEW = 1


class GrafanaError(RuntimeError):
    pass


class Grafana:
    """The few Grafana HTTP API calls this job needs (basic auth as the admin)."""

    def __init__(self, url: str, user: str, password: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json",
                         "Accept": "application/json"}
        self.timeout = timeout

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers=self._headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                text = answer.read().decode()
                return answer.status, json.loads(text) if text else None
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace")
            try:
                return exc.code, json.loads(text)
            except ValueError:
                return exc.code, text

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = self.call(method, path, body)
        if status >= 300:
            raise GrafanaError(f"{method} {path}: HTTP {status}: {answer}")
        return answer

    def wait(self, path: str, deadline: float, what: str) -> Any:
        """GET ``path`` until it answers 200 (Grafana starting, folders being provisioned)."""
        last = "no answer yet"
        while True:
            try:
                status, answer = self.call("GET", path)
            except OSError as exc:  # connection refused while Grafana starts
                status, answer = 0, str(exc)
            if status == 200:
                return answer
            last = f"HTTP {status}: {answer}"
            if time.monotonic() > deadline:
                raise GrafanaError(f"{what} not there ({path}): {last}")
            time.sleep(1.0)

    def team_id(self, name: str) -> tuple[int, bool]:
        """The id of team ``name``, created when missing; and whether it was created."""
        found = self.ok("GET", "/api/teams/search?" + urllib.parse.urlencode({"name": name}))
        for team in found.get("teams", []):
            if team["name"] == name:
                return int(team["id"]), False
        created = self.ok("POST", "/api/teams", {"name": name})
        return int(created["teamId"]), True

    def give_folder_to_team(self, folder_uid: str, team_id: int) -> bool:
        """Make ``team_id`` the only viewer of the folder; False when it already was."""
        path = f"/api/folders/{urllib.parse.quote(folder_uid)}/permissions"
        wanted = [{"teamId": team_id, "permission": VIEW}]
        current = [{"teamId": p["teamId"], "permission": p["permission"]}
                   for p in self.ok("GET", path)
                   if not p.get("inherited") and (p.get("teamId") or p.get("userId")
                                                  or p.get("role"))]
        if current == wanted:
            return False
        self.ok("POST", path, {"items": wanted})
        return True


def team_name(role: str) -> str:
    return f"pulse-{role}"


def folder_uid(role: str) -> str:
    return f"pulse-{role}"


def refuse_placeholder_passwords(roles: Iterable[str], env: dict[str, str]) -> None:
    """Exit naming the first per-role ClickHouse password that is a placeholder."""
    from pulse_shared.config_checks import ConfigurationError, check_secret

    for role in roles:
        name = f"PULSE_CLICKHOUSE_GRAFANA_{role.upper()}_PASSWORD"
        if name in env:
            try:
                check_secret(name, env[name])
            except ConfigurationError as exc:
                raise SystemExit(str(exc)) from None


def init_teams(grafana: Grafana, roles: Iterable[str], timeout: float) -> list[str]:
    """Teams and folder permissions for every role; returns what changed."""
    deadline = time.monotonic() + timeout
    grafana.wait("/api/health", deadline, "Grafana")
    changes: list[str] = []
    for role in roles:
        team, created = grafana.team_id(team_name(role))
        if created:
            changes.append(f"created team {team_name(role)}")
        grafana.wait(f"/api/folders/{folder_uid(role)}", deadline,
                     f"provisioned folder {folder_uid(role)}")
        if grafana.give_folder_to_team(folder_uid(role), team):
            changes.append(f"folder {folder_uid(role)} viewable by team {team_name(role)} only")
    return changes


def main() -> int:
    from pulse_shared.access import ROLE_NAMES

    env = dict(os.environ)
    refuse_placeholder_passwords(ROLE_NAMES, env)
    password = env.get("GRAFANA_ADMIN_PASSWORD", "")
    if not password:
        raise SystemExit("GRAFANA_ADMIN_PASSWORD is not set")
    grafana = Grafana(env.get("GRAFANA_URL", "http://grafana:3000"),
                      env.get("GRAFANA_ADMIN_USER", "admin"), password)
    try:
        changes = init_teams(grafana, ROLE_NAMES, float(env.get("GRAFANA_INIT_TIMEOUT", "120")))
    except GrafanaError as exc:
        print(f"grafana-init failed: {exc}", file=sys.stderr)
        return 1
    for change in changes:
        print(change)
    print(f"grafana-init: {len(ROLE_NAMES)} persona teams and folders in place "
          f"({len(changes)} change(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
