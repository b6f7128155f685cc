"""deploy/clickhouse/users.d/pulse-users.xml: static shape, and real behaviour on a
ClickHouse server (the testinfra one) configured with exactly this file."""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from deploy_support import ROOT, compose

USERS_XML = ROOT / "deploy" / "clickhouse" / "users.d" / "pulse-users.xml"
WRITER_PW = "deploy-test-writer-pw"
READER_PW = "deploy-test-reader-pw"


def tree() -> ET.Element:
    return ET.parse(USERS_XML).getroot()


def test_users_are_defined_with_passwords_from_the_environment_only() -> None:
    users = tree().find("users")
    assert users is not None
    names = {u.tag for u in users}
    assert names == {"pulse_writer", "pulse_reader"}
    clickhouse_env = compose()["services"]["clickhouse"]["environment"]
    for user in users:
        (password,) = [e for e in user if e.tag.startswith("password")]
        assert password.tag == "password" and not (password.text or "").strip()
        assert password.attrib["from_env"] in clickhouse_env
        assert str(clickhouse_env[password.attrib["from_env"]]).startswith("${")


def test_reader_profile_is_read_only_and_may_not_change_settings() -> None:
    profile = tree().find("profiles/pulse_reader")
    assert profile is not None
    # readonly=1: no writes, no DDL, no settings changes (a reader cannot lift its limits).
    assert profile.findtext("readonly") == "1"
    grants = [q.text for q in tree().findall("users/pulse_reader/grants/query")]
    database = compose()["services"]["ingest"]["environment"]["PULSE_CLICKHOUSE_DATABASE"]
    assert grants == [f"GRANT SELECT ON {database}.*"]
    writer = [q.text for q in tree().findall("users/pulse_writer/grants/query")]
    assert writer == [f"GRANT ALL ON {database}.*", "GRANT TABLE ENGINE ON *"]


# ---------------------------------------------------------------- on a real server
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from pulse_testinfra.clickhouse import ClickHouseServer

    class DeployUsersServer(ClickHouseServer):
        """testinfra's server, but its pulse users come from the deploy users file."""

        def _write_config(self) -> None:
            super()._write_config()
            users = self.workdir / "users.xml"
            text = users.read_text()
            for name in (self.reader_user, self.writer_user):
                text = re.sub(rf"<{name}>.*?</{name}>", "", text, flags=re.S)
            users.write_text(text)
            users_d = self.workdir / "users.d"
            users_d.mkdir(exist_ok=True)
            shutil.copy(USERS_XML, users_d / USERS_XML.name)

    mp = pytest.MonkeyPatch()
    mp.setenv("PULSE_CLICKHOUSE_WRITER_PASSWORD", WRITER_PW)
    mp.setenv("PULSE_CLICKHOUSE_READER_PASSWORD", READER_PW)
    ch = DeployUsersServer(
        Path(tmp_path_factory.mktemp("ch-deploy-users")),
        writer_password=WRITER_PW,
        reader_password=READER_PW,
    )
    try:
        ch.start()
        with httpx.Client() as http:
            http.post(ch.url, content=b"CREATE DATABASE IF NOT EXISTS pulse").raise_for_status()
        yield ch
    finally:
        ch.close()
        mp.undo()


def run(server: object, user: str, password: str, sql: str, **params: str) -> httpx.Response:
    url = server.url  # type: ignore[attr-defined]
    return httpx.post(
        url, content=sql.encode(), auth=(user, password),
        params={"database": "pulse", **params}, timeout=30,
    )


@pytest.mark.clickhouse
def test_writer_applies_every_migration_and_reader_only_reads(server: object) -> None:
    from pulse_shared.schema.migrations import migrate
    from pulse_shared.store.server import ServerStore

    writer = ServerStore(server.url, user="pulse_writer", password=WRITER_PW,  # type: ignore[attr-defined]
                         database="pulse")
    try:
        migrate(writer)  # DDL incl. the materialized view, as `pulse migrate` does
        writer.command(
            "INSERT INTO kpi_values (kpi, grain, period, period_start, dimension, "
            "dimension_value, value, unit, computed_at) VALUES "
            "('mrr', 'month', '2026-11', '2026-11-01', 'all', '', 1234.5, 'usd', now64(6))"
        )
    finally:
        writer.close()

    ok = run(server, "pulse_reader", READER_PW, "SELECT value FROM kpi_values FINAL WHERE kpi = 'mrr'")
    assert ok.status_code == 200 and ok.text.strip() == "1234.5"
    # readonly=1: the reader cannot lift its profile's limits, per query or with SET.
    lifted = run(server, "pulse_reader", READER_PW, "SELECT 1", max_result_rows="0")
    assert lifted.status_code != 200 and "READONLY" in lifted.text, lifted.text

    for sql in (
        "INSERT INTO kpi_values (kpi) VALUES ('x')",
        "CREATE TABLE evil (x UInt8) ENGINE = Memory",
        "DROP TABLE kpi_values",
        "ALTER TABLE kpi_values DELETE WHERE 1",
    ):
        refused = run(server, "pulse_reader", READER_PW, sql)
        assert refused.status_code != 200, sql
        assert "READONLY" in refused.text or "ACCESS_DENIED" in refused.text, refused.text

    wrong = run(server, "pulse_reader", "not-the-password", "SELECT 1")
    assert wrong.status_code != 200


@pytest.mark.clickhouse
def test_pulse_users_cannot_reach_other_databases(server: object) -> None:
    with httpx.Client() as http:
        http.post(server.url, content=b"CREATE TABLE IF NOT EXISTS default.secret "  # type: ignore[attr-defined]
                  b"(x UInt8) ENGINE = Memory").raise_for_status()
    for user, password in (("pulse_reader", READER_PW), ("pulse_writer", WRITER_PW)):
        denied = run(server, user, password, "SELECT * FROM default.secret")
        assert denied.status_code != 200 and "ACCESS_DENIED" in denied.text, denied.text
