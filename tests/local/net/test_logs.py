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
from ftpstack.local.net.steps import Bundle, edit_file
from ftpstack.offline.plan import Plan, Secret
from ftpstack.render import DENY_FILTER
from tests.support import needs_root, plan, sftp_clients, sftp_login

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


def stack() -> Plan:
    return plan(
        "dev",
        users=Secret([{"name": "alice", "password": PASSWORD}]),
        tls="required",
        banMaxFailedLogins=BAN_AFTER,
    )


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    needs_root()
    with LocalServer(stack(), addresses=[CUSTOMER_A, CUSTOMER_B]) as running:
        yield running


def without_the_characters(bundle: Bundle) -> Bundle:
    """proftpd.conf's DenyFilter without the alternatives for what proftpd logs unescaped."""
    removed = f"|{DENY_FILTER.split('|', 2)[2]}"

    def change(conf: str) -> str:
        assert conf.count(removed) == 1, "the edit removes what it means to"
        return conf.replace(removed, "")

    return edit_file(bundle, paths.PROFTPD_CONF, change)


@pytest.fixture(scope="module")
def unfiltered() -> Iterator[LocalServer]:
    needs_root()
    with LocalServer(stack(), edit=without_the_characters, addresses=[CUSTOMER_B]) as running:
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


def readable(log: logschema.LogFile, line: str) -> bool:
    try:
        parsed(log, line)
    except json.JSONDecodeError:
        return False
    return True


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
    assert all(r["User"] == "alice" for r in failed), failed
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


# Names proftpd 1.3.8 would write into a record unescaped: a double quote, a backslash, a tab.
UNLOGGABLE = ('say "hi".txt', "back\\slash.txt", "tab\there.txt")


def test_names_proftpd_would_log_unescaped_are_refused_and_every_record_stays_json(
    server: LocalServer, tmp_path: Path
) -> None:
    """The DenyFilter refuses them (FTP's commands, SFTP's requests, a user name), so no file
    can be stored or fetched, and no login tried, whose record the agent could not read. One
    record stays unreadable, that of a refused SFTP upload of such a name (mod_sftp logs its
    path before the filter refuses it): docs/operations.md says so."""
    *bad, good = ftps(server, *[f"stor:{n}:3" for n in UNLOGGABLE], "stor:plain.txt:4")["results"]
    assert all(r["reply"].startswith("550") for r in bad) and good["ok"], (bad, good)
    tried = server.client("try-login", "--tls", user='al"ice', password=PASSWORD)
    assert not tried["reply"].startswith("230"), tried
    tmp_path.chmod(0o755)
    clients, known = sftp_clients(server.ns, tmp_path / "sftp", server.plan)
    local = tmp_path / "local.txt"
    local.write_text("hi\n")
    alice = sftp_login(server.public_ip, known, "alice", password=PASSWORD)
    refused = clients.sftp(alice, f'put {local} "say \\"hi\\".sftp"')
    assert refused.returncode != 0 and "denied" in refused.stderr, refused
    assert clients.sftp(alice, f"put {local} ok.sftp").returncode == 0, "SFTP itself works"
    names = {p.name for p in server.machine.path(f"{paths.FTP_ROOT}/alice").iterdir()}
    assert {"plain.txt", "ok.sftp"} <= names and not names & {*UNLOGGABLE, 'say "hi".sftp'}, names
    for log in logschema.JSON_LOGS:
        lines = server.machine.path(log.path).read_text().splitlines()
        unreadable = [line for line in lines if not readable(log, line)]
        expected = [line for line in unreadable if '"sftp","Command":"STOR"' in line]
        assert unreadable == expected and len(expected) == (log is logschema.TRANSFER), lines
    refusal = [r for r in records(server, logschema.LOGIN) if r["Status"] == "550"]
    assert [(r["Command"], r["User"]) for r in refusal] == [("USER", "-")], refusal


def test_negative_control_without_the_filter_a_double_quote_spoils_its_record(
    unfiltered: LocalServer,
) -> None:
    """proftpd 1.3.8 writes a LogFormat's values unescaped: without the filter's characters the
    upload succeeds and its line is invalid JSON, which the agent cannot parse."""
    ftps(unfiltered, 'stor:say "hi".txt:3', "stor:plain.txt:4")
    lines = unfiltered.machine.path(logschema.TRANSFER.path).read_text().splitlines()
    with pytest.raises(json.JSONDecodeError):
        json.loads(next(line for line in lines if "say" in line))
    assert parsed(logschema.TRANSFER, lines[-1])["Path"].endswith("/plain.txt")


def test_proftpd_own_log_has_the_declared_record_start(server: LocalServer) -> None:
    # Before and after the rotation above.
    files = [server.machine.path(logschema.SYSTEM.path + s) for s in ("", ".1")]
    lines = [x for f in files if f.exists() for x in f.read_text().splitlines()]
    assert lines and all(logschema.TEXT_TIMESTAMP_RE.match(line) for line in lines), lines[:3]
