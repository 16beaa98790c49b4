"""L2: the records the Azure Monitor Agent ships are what the real proftpd writes — a login, a
failed login, an upload, a download and a ban each leave the record the data collection rule
declares (`ftpstack.logschema`: the same paths, the same columns, the same conversions as its
transformation), and log rotation keeps them coming in the new files.

The stand-in of test_production: the plan's own steps into a VM in a namespace of its own, with
two "customer" addresses to tell clients apart.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ftpstack import logschema, paths
from ftpstack.local.net.server import LocalServer
from ftpstack.offline.plan import Secret
from tests.support import needs_root, plan

pytestmark = pytest.mark.l2

PASSWORD = "alice-password-1"
BAN_AFTER = 2
CUSTOMER_A, CUSTOMER_B = "192.0.2.10", "192.0.2.20"
PYTHON: dict[str, Callable[[str], Any]] = {
    "datetime": datetime.fromisoformat,
    "long": int,
    "int": int,
    "real": float,
}


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    needs_root()
    stack = plan(
        "dev",
        users=Secret([{"name": "alice", "password": PASSWORD}]),
        tls="required",
        banMaxFailedLogins=BAN_AFTER,
    )
    with LocalServer(stack, addresses=[CUSTOMER_A, CUSTOMER_B]) as running:
        yield running


def ftps(
    server: LocalServer, *actions: str, password: str = PASSWORD, source: str = CUSTOMER_B
) -> Any:
    return server.client(
        "session",
        "--tls",
        "--cafile",
        str(server.machine.path(paths.SELF_SIGNED_CERT)),
        "--source",
        source,
        *[a for x in actions for a in ("--do", x)],
        user="alice",
        password=password,
    )


def parsed(log: logschema.LogFile, line: str) -> dict[str, Any]:
    """A line as the rule reads it: a JSON object with exactly the declared stream's columns,
    each converted as the transformation converts it ("-" to empty)."""
    record = json.loads(line)
    assert list(record) == [c.name for c in log.stream_columns], record
    assert all(isinstance(v, str) for v in record.values()), record
    return {
        c.name: (PYTHON[c.type](record[c.name]) if record[c.name] != "-" else None)
        if c.type in PYTHON
        else record[c.name]
        for c in log.columns
    }


def records(server: LocalServer, log: logschema.LogFile, suffix: str = "") -> list[dict[str, Any]]:
    text = server.machine.path(log.path + suffix).read_text()
    return [parsed(log, line) for line in text.splitlines() if line.strip()]


def test_the_declared_files_are_what_proftpd_writes(server: LocalServer) -> None:
    conf = server.machine.path(paths.PROFTPD_CONF).read_text()
    for log in logschema.JSON_LOGS:
        assert f"ExtendedLog           {log.path} {log.classes} {log.name}" in conf


def test_a_login_an_upload_and_a_download_are_recorded(server: LocalServer) -> None:
    started = datetime.now(UTC) - timedelta(seconds=5)
    out = ftps(server, "stor:report.csv:1000", "retr:report.csv")
    assert all(r["reply"].startswith("226") for r in out["results"]), out
    logins = [r for r in records(server, logschema.LOGIN) if r["Address"] == CUSTOMER_B]
    ok = [r for r in logins if r["Command"] == "PASS" and r["Status"] == "230"]
    assert ok and ok[-1]["User"] == "alice" and ok[-1]["Protocol"] == "ftps", logins
    # The time is the VM's clock in UTC, as the rule reads it.
    assert started <= ok[-1]["Time"] <= datetime.now(UTC) + timedelta(seconds=5)
    moves = {r["Command"]: r for r in records(server, logschema.TRANSFER)}
    for command in ("STOR", "RETR"):
        move = moves[command]
        assert move["User"] == "alice" and move["Address"] == CUSTOMER_B, move
        assert move["Path"].endswith("/alice/report.csv") and move["Bytes"] == 1000, move
        assert move["Status"] == "226" and move["Result"] == "success", move
        assert isinstance(move["Milliseconds"], int), move


def test_failed_logins_and_the_ban_are_recorded(server: LocalServer) -> None:
    for n in range(BAN_AFTER):
        out = server.client(
            "try-login", "--tls", "--source", CUSTOMER_A, user="alice", password=f"wrong-{n}"
        )
        assert out["reply"].startswith("530"), out
    tried = [r for r in records(server, logschema.LOGIN) if r["Address"] == CUSTOMER_A]
    assert [r["Command"] for r in tried if r["Status"] == "331"] == ["USER"] * BAN_AFTER, tried
    failed = [r for r in tried if r["Command"] == "PASS"]
    # The attempt that triggers the ban ends its session before proftpd logs its PASS: it shows
    # as the ban below (logschema's docstring).
    assert [r["Status"] for r in failed] == ["530"] * (BAN_AFTER - 1), failed
    assert all(r["User"] == "alice" and r["Message"] == "Login incorrect." for r in failed)
    lines = server.machine.path(logschema.BAN.path).read_text().splitlines()
    assert lines and all(logschema.TEXT_TIMESTAMP_RE.match(line) for line in lines), lines
    events = [(m.group(1), m.group(2)) for m in map(logschema.BAN_RE.search, lines) if m]
    assert events == [("MaxLoginAttempts", CUSTOMER_A)], lines
    server.machine.exec("/usr/bin/python3", paths.AGENT_PATH, "unban", CUSTOMER_A)


def test_rotation_keeps_the_records_coming_in_the_new_files(server: LocalServer) -> None:
    ftps(server, "stor:before.txt:10")
    result = server.machine.exec(
        "logrotate", "--force", "--state", "/var/lib/logrotate.state", paths.LOGROTATE_FILE
    )
    assert result.returncode == 0, result.stderr
    ftps(server, "stor:after.txt:20")
    rotated = [r["Path"] for r in records(server, logschema.TRANSFER, ".1")]
    current = [r["Path"] for r in records(server, logschema.TRANSFER)]
    assert any(p.endswith("before.txt") for p in rotated), rotated
    assert [Path(p).name for p in current] == ["after.txt"], current


def test_negative_control_a_record_off_the_schema_is_refused() -> None:
    good = json.dumps({c.name: "x" for c in logschema.LOGIN.stream_columns})
    with pytest.raises(AssertionError):
        parsed(logschema.TRANSFER, good)
    extra = json.dumps({**json.loads(good), "Extra": "1"})
    with pytest.raises(AssertionError):
        parsed(logschema.LOGIN, extra)


def test_known_limit_a_double_quote_in_a_name_spoils_that_record(server: LocalServer) -> None:
    """proftpd 1.3.8 writes a LogFormat's values unescaped: a file name with a double quote makes
    its line invalid JSON, which the agent cannot parse (docs/operations.md says so). The next
    record is whole again."""
    ftps(server, 'stor:say "hi".txt:3', "stor:plain.txt:4")
    lines = server.machine.path(logschema.TRANSFER.path).read_text().splitlines()
    with pytest.raises(json.JSONDecodeError):
        json.loads(next(line for line in lines if "say" in line))
    assert parsed(logschema.TRANSFER, lines[-1])["Path"].endswith("/plain.txt")


def test_proftpd_own_log_has_the_declared_record_start(server: LocalServer) -> None:
    # Before and after the rotation above.
    files = [server.machine.path(logschema.SYSTEM.path + s) for s in ("", ".1")]
    lines = [x for f in files if f.exists() for x in f.read_text().splitlines()]
    assert lines and all(logschema.TEXT_TIMESTAMP_RE.match(line) for line in lines), lines[:3]
