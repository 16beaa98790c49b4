"""L2: SFTP's share of bans and live changes — failed logins on either protocol ban the address
on both; a user or key added by a live change logs in at once with nothing restarted; a removed
user's open SFTP session ends; an idle SFTP session outlives a narrowing of the passive range
(which ends idle FTP sessions).

Same stand-in as test_proftpd; the clients are real OpenSSH sftp, checking the host key.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ftpstack import paths
from ftpstack.local.net import steps
from ftpstack.local.net.client import last_json, start_client
from ftpstack.local.net.server import LocalServer
from ftpstack.local.net.sftpclient import Login, SftpClients
from ftpstack.offline.plan import Plan
from tests.support import (
    PASSWORD,
    USER,
    Keys,
    needs_root,
    refused,
    sftp_clients,
    sftp_login,
    sftp_plan,
    sftp_users,
)

pytestmark = pytest.mark.l2

BAN_AFTER = 3
# An address that fails over SFTP, one that fails over FTP, a bystander.
SOURCES = ("192.0.2.11", "192.0.2.12", "192.0.2.13")


@pytest.fixture(scope="module")
def server(sftp_dev: Plan) -> Iterator[LocalServer]:
    needs_root()
    with LocalServer(sftp_dev) as running:
        yield running


@pytest.fixture
def sftp(server: LocalServer, sftp_dev: Plan, tmp_path: Path) -> tuple[SftpClients, Path]:
    tmp_path.chmod(0o755)
    return sftp_clients(server.ns, tmp_path / "sftp", sftp_dev)


def login(server: LocalServer, known: Path, user: str, **kw: Any) -> Login:
    return sftp_login(server.public_ip, known, user, **kw)


# -- bans: one address, both protocols ------------------------------------------------------------


@pytest.fixture(scope="module")
def guarded(keys: Keys) -> Iterator[tuple[LocalServer, Plan]]:
    """A server that bans."""
    needs_root()
    banning = sftp_plan(keys, ban=True, banMaxFailedLogins=BAN_AFTER)
    with LocalServer(banning, addresses=list(SOURCES)) as running:
        yield running, banning


def test_failed_logins_on_either_protocol_ban_the_address_on_both(
    guarded: tuple[LocalServer, Plan], tmp_path: Path
) -> None:
    server, banning = guarded
    clients, known = sftp_clients(server.ns, tmp_path / "sftp", banning)
    by_sftp, by_ftp, bystander = SOURCES

    def sftp_in(source: str, password: str = PASSWORD) -> bool:
        who = login(server, known, USER, password=password, source=source)
        return clients.sftp(who, "pwd").returncode == 0

    def ftp_in(source: str, password: str = PASSWORD) -> dict[str, Any]:
        return server.client("try-login", "--source", source, user=USER, password=password)

    for n in range(BAN_AFTER):
        assert not sftp_in(by_sftp, f"wrong-password-{n}")
        assert not ftp_in(by_ftp, f"wrong-password-{n}")["ok"]
    for source in (by_sftp, by_ftp):
        assert not sftp_in(source), f"{source} is banned over SFTP"
        banned = ftp_in(source)
        assert not banned["ok"] and "Banned" in banned["reply"], (source, banned)
    assert sftp_in(bystander) and ftp_in(bystander)["ok"], "only the failing addresses"


def test_negative_control_without_ban_failed_sftp_logins_lock_no_one_out(
    server: LocalServer, sftp: tuple[SftpClients, Path]
) -> None:
    clients, known = sftp
    for n in range(BAN_AFTER + 1):
        assert refused(clients.sftp(login(server, known, USER, password=f"wrong-{n}-x"), "pwd"))
    assert clients.sftp(login(server, known, USER), "pwd").returncode == 0


# -- live changes ------------------------------------------------------------------------------


def master(server: LocalServer) -> str:
    return server.machine.path(paths.PID_FILE).read_text().split()[0]


def test_a_user_and_a_key_added_live_log_in_at_once_and_nothing_restarts(
    server: LocalServer, sftp_dev: Plan, sftp: tuple[SftpClients, Path], keys: Keys
) -> None:
    clients, known = sftp
    dave = {"name": "dave", "password": "dave-password-44", "sshKeys": [keys["newcomer"][1]]}
    new = sftp_plan(
        keys, users=sftp_users(keys, more_keys={USER: keys["stranger"][1]}, add=(dave,))
    )
    logins = {
        "dave, password": login(server, known, "dave", password=dave["password"]),
        "dave, key": login(server, known, "dave", key=keys["newcomer"][0]),
        "alice, new key": login(server, known, USER, key=keys["stranger"][0]),
    }
    assert not any(clients.sftp(x, "pwd").returncode == 0 for x in logins.values()), "control"
    before, started = master(server), time.monotonic()
    try:
        server.apply(new)
        found = {what: clients.sftp(x, "pwd").returncode == 0 for what, x in logins.items()}
        seconds = time.monotonic() - started
        assert found == dict.fromkeys(logins, True) and seconds < 10, (found, seconds)
        assert master(server) == before, "proftpd was not restarted"
    finally:
        server.apply(sftp_dev)


def test_a_removed_users_open_sftp_session_ends_and_the_others_go_on(
    server: LocalServer, sftp_dev: Plan, sftp: tuple[SftpClients, Path], keys: Keys
) -> None:
    clients, known = sftp
    with (
        clients.open(login(server, known, "carl")) as carl,
        clients.open(login(server, known, USER, key=keys[USER][0])) as alice,
    ):
        try:
            server.apply(sftp_plan(keys, users=sftp_users(keys, drop=("carl",))))
            assert not carl.alive(10) and carl.ended(5), carl.output
            assert re.search(r"closed by remote host|Connection closed", carl.output)
            assert alice.alive(), alice.output
            assert refused(clients.sftp(login(server, known, "carl"), "pwd"))
        finally:
            server.apply(sftp_dev)


def test_an_idle_sftp_session_outlives_a_passive_range_narrowing(
    server: LocalServer, sftp_dev: Plan, sftp: tuple[SftpClients, Path], keys: Keys
) -> None:
    """The narrowing ends idle FTP sessions, which could announce a port about to close (the
    control); an SFTP session has no passive port and goes on."""
    clients, known = sftp
    narrowed = sftp_plan(keys, passivePortStart=50000, passivePortEnd=50019, maxClients=10)
    ftp = start_client(
        server.ns, server.public_ip, "hold", user=USER, password=PASSWORD, stdin=subprocess.PIPE
    )
    try:
        assert ftp.stdout is not None and ftp.stdout.readline().strip() == "ready"
        with clients.open(login(server, known, USER)) as held:
            time.sleep(2.5)  # older than the agent's grace for sessions that end by themselves
            (narrow,) = steps.steps(narrowed, "narrow")
            said = steps.run_step(server.machine, narrow).stdout
            server.apply(narrowed)
            assert "ended 1 idle session(s)" in said, said
            assert held.alive(), held.output
        assert last_json(ftp.communicate(input="", timeout=60)[0])["session"].startswith("ended")
    finally:
        ftp.kill()
        ftp.wait()
        server.apply(sftp_dev)
