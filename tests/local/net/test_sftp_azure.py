"""L3: SFTP through the local Azure model — prod's load balancer with two instances, port 22
balanced over the healthy ones: every instance presents the stack's host keys (and a client that
checks them would refuse one that did not); an idle SFTP session outlives the idle timeout, and
without keepalive it is lost; a failed instance, then its replacement, keep new logins working.

Times are scaled by 1/30 as in test_network (the 240 s idle timeout becomes 8 s, keepalive
60 s/30 s becomes 2 s/1 s). Every login is OpenSSH's sftp with StrictHostKeyChecking=yes against
the plan's `sftpHostKeys`.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ftpstack import outputs, paths
from ftpstack.local.net import steps as deployment
from ftpstack.local.net.azure import LocalAzure
from ftpstack.local.net.netns import Netns
from ftpstack.local.net.sftpclient import HeldSession, Login, SftpClients
from ftpstack.offline.plan import Plan
from ftpstack.sftp import host_key_path
from tests.support import USER, needs_root, plan, sftp_clients, sftp_login, ssh_keypair

pytestmark = pytest.mark.l3

SCALE = 1 / 30
HA = {"instances": 2, "zones": [1, 2], "tls": "allowed", "maxClients": 50}
SFTP_LOG = f"{paths.LOG_DIR}/sftp.log"
LOGINS = 12  # through the balancer: all on one instance by chance with p = 2 * 2^-12


def ha_plan(**overrides: Any) -> Plan:
    return plan("prod", **{**HA, **overrides})


@pytest.fixture(scope="module")
def az() -> Iterator[LocalAzure]:
    needs_root()
    with LocalAzure(ha_plan(), time_scale=SCALE) as model:
        yield model


@pytest.fixture
def sftp(az: LocalAzure, tmp_path: Path) -> tuple[SftpClients, Path]:
    tmp_path.chmod(0o755)
    return sftp_clients(az.client, tmp_path / "sftp", az.plan)


def alice(az: LocalAzure, known: Path, *options: str) -> Login:
    return sftp_login(az.public_ip, known, USER, options=options)


def stack_keys(stack: Plan) -> set[str]:
    return {" ".join(line.split()[1:3]) for line in stack.outputs[outputs.SFTP_HOST_KEYS]}


def keyscan(ns: Netns, host: str) -> set[str]:
    """The host keys a server presents ("ssh-ed25519 AAAA..."), read by ssh-keyscan."""
    out = ns.run("ssh-keyscan", "-T", "5", "-t", "ed25519,ecdsa,rsa", host, timeout=30).stdout
    return {" ".join(line.split()[1:3]) for line in out.splitlines() if not line.startswith("#")}


def served(az: LocalAzure) -> list[int]:
    """Each instance's SFTP logins so far (its own log)."""
    logs = [vm.path(SFTP_LOG) for vm in az.vms]
    return [log.read_text().count("authenticated via") if log.exists() else 0 for log in logs]


def logins(clients: SftpClients, login: Login, count: int = LOGINS) -> list[str]:
    """`count` logins through the balancer; the error of each one that failed ("" if none)."""
    found = []
    for _ in range(count):
        done = clients.sftp(login, "ls")
        found.append("" if done.returncode == 0 else done.stderr.strip()[-300:])
    return found


def reconfigure(az: LocalAzure, index: int, edit: Callable[[str], str] | None, path: str) -> None:
    """Instance `index` applies its declared configuration again as a live change, `path`
    changed by `edit` (None: as declared). (mod_sftp reads its host key files for each new
    session; a changed proftpd.conf is reloaded by the agent.)"""
    step = az.steps(az.plan, "configure")[index]

    def edited(bundle: dict[str, Any]) -> dict[str, Any]:
        bundle = az.edit(bundle)
        return deployment.edit_file(bundle, path, edit) if edit else bundle

    deployment.run_step(az.vms[index], step, edited)


# -- one host key everywhere ---------------------------------------------------------------------


def test_every_instance_presents_the_stack_host_keys(az: LocalAzure) -> None:
    wanted = stack_keys(az.plan)
    assert {k.split()[0] for k in wanted} == {"ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa"}
    for index in range(2):
        assert keyscan(az.vm_netns(index), "127.0.0.1") == wanted, f"instance {index}"
    for _ in range(4):
        assert keyscan(az.client, az.public_ip) == wanted, "through the balancer"


def test_logins_through_the_balancer_land_on_both_instances_and_verify_the_host_key(
    az: LocalAzure, sftp: tuple[SftpClients, Path]
) -> None:
    clients, known = sftp
    before = served(az)
    assert logins(clients, alice(az, known)) == [""] * LOGINS
    assert all(after > b for after, b in zip(served(az), before, strict=True)), "both served"


def test_negative_control_an_instance_with_a_key_of_its_own_fails_checking_clients(
    az: LocalAzure, sftp: tuple[SftpClients, Path], tmp_path: Path
) -> None:
    """Instance 1 with another ed25519 key: the logins the balancer sends there are refused,
    as a partner's client would refuse an instance whose key was made on the VM."""
    clients, known = sftp
    other = ssh_keypair(tmp_path / "other", "ssh_host_ed25519_key")[0].read_text()
    key = host_key_path("ed25519")
    reconfigure(az, 1, lambda _: other, key)
    try:
        assert keyscan(az.vm_netns(1), "127.0.0.1") != stack_keys(az.plan)
        found = logins(clients, alice(az, known))
        failed = [error for error in found if error]
        assert 0 < len(failed) < LOGINS, found
        assert all(e.endswith("Host key verification failed.\nConnection closed") for e in failed)
    finally:
        reconfigure(az, 1, None, key)
    assert keyscan(az.vm_netns(1), "127.0.0.1") == stack_keys(az.plan)


# -- an idle session and the idle timeout ------------------------------------------------------

_TIMER = re.compile(r"timer:\(keepalive,(?:(\d+)min)?(?:([\d.]+)sec)?(?:(\d+)ms)?,\d+\)")
# The client sends nothing of its own while idle: what keeps the flow is the server's.
QUIET_CLIENT = ("ServerAliveInterval=0", "TCPKeepAlive=no")


def sftp_peers(az: LocalAzure, index: int) -> dict[str, str]:
    """Instance `index`'s SFTP connections: the client's address and port, and `ss -o`'s line."""
    out = az.vm_netns(index).run("ss", "-Htno", "state", "established", "( sport = :22 )").stdout
    return {line.split()[3]: line for line in out.splitlines() if line.strip()}


def keepalive_seconds(az: LocalAzure, index: int, peer: str) -> float | None:
    """The keepalive timer of instance `index`'s socket to `peer` once it is idle (`ss -o`), or
    None when it has none within 3 s."""
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        match = _TIMER.search(sftp_peers(az, index).get(peer, ""))
        if match:
            minutes, seconds, ms = (float(g or 0) for g in match.groups())
            return minutes * 60 + seconds + ms / 1000
        time.sleep(0.2)
    return None


def one_session_per_instance(az: LocalAzure, clients: SftpClients, login: Login) -> list[Any]:
    """Sessions opened until one landed on each instance: [(session, client address)] by
    instance."""
    found: dict[int, tuple[HeldSession, str]] = {}
    for _ in range(20):
        before = [sftp_peers(az, i) for i in range(2)]
        session = clients.open(login)
        new = [(i, p) for i in range(2) for p in sftp_peers(az, i).items() if p[0] not in before[i]]
        if len(new) == 1 and new[0][0] not in found:
            found[new[0][0]] = (session, new[0][1][0])
        else:
            session.close()
        if len(found) == 2:
            return [found[0], found[1]]
    for session, _ in found.values():
        session.close()
    raise AssertionError("no SFTP session landed on one of the instances in 20 tries")


def without_keepalive(conf: str) -> str:
    """The SFTP server without its keepalive: no SocketOptions (the vhost's, indented; the FTP
    server's stays) and no SFTPClientAlive."""
    conf, sockets = re.subn(r"^\s+SocketOptions\s+keepalive.*\n", "", conf, flags=re.M)
    conf, alive = re.subn(r"^\s+SFTPClientAlive.*\n", "", conf, flags=re.M)
    assert sockets == alive == 1, "the SFTP server's keepalive lines were not found"
    return conf


def test_an_idle_sftp_session_outlives_the_idle_timeout_and_without_keepalive_it_is_lost(
    az: LocalAzure, sftp: tuple[SftpClients, Path]
) -> None:
    """Instance 0 as declared, instance 1 without the SFTP server's keepalive and with the
    kernel's default timer (the negative control); one session on each, idle for twice the
    idle timeout, then asked for a listing."""
    clients, known = sftp
    reconfigure(az, 1, without_keepalive, paths.PROFTPD_CONF)
    az.vm_netns(1).sysctl("net.ipv4.tcp_keepalive_time", 7200)
    sessions = []
    try:
        sessions = one_session_per_instance(az, clients, alice(az, known, *QUIET_CLIENT))
        kept, lost = (keepalive_seconds(az, i, peer) for i, (_, peer) in enumerate(sessions))
        assert kept is not None and kept <= 60 * SCALE, kept
        assert lost is None or lost > 7000, lost
        time.sleep(2 * az.idle_timeout)
        assert sessions[0][0].alive(5), sessions[0][0].output
        assert not sessions[1][0].alive(5), "the negative control: the flow was forgotten"
    finally:
        for session, _ in sessions:
            session.close()
        reconfigure(az, 1, None, paths.PROFTPD_CONF)
        az.vms[1].exec("sysctl", "-q", "-p", paths.SYSCTL_FILE)


# -- failover and replacement ----------------------------------------------------------------


def test_a_failover_and_a_replacement_keep_new_sftp_logins_working(
    az: LocalAzure, sftp: tuple[SftpClients, Path]
) -> None:
    """Instance 0's proftpd dies. While the probe is held back the balancer still sends about
    half the logins there, and they fail (the control); once the probe takes it out every login
    works; then the instance is replaced by a new VM with the same host keys."""
    clients, known = sftp
    assert az.prober is not None
    pid = az.vms[0].path(paths.PID_FILE).read_text().split()[0]
    os.kill(az.prober.pid, signal.SIGSTOP)
    try:
        az.vms[0].exec("kill", "-KILL", pid)
        held_back = logins(clients, alice(az, known))
    finally:
        os.kill(az.prober.pid, signal.SIGCONT)
    assert 0 < sum(bool(e) for e in held_back) < LOGINS, held_back
    az.wait_healthy(0, up=False)
    assert logins(clients, alice(az, known)) == [""] * LOGINS, "all on the survivor"
    az.replace_instance(0, drain=False)
    assert keyscan(az.vm_netns(0), "127.0.0.1") == stack_keys(az.plan), "the same keys"
    before = served(az)
    assert logins(clients, alice(az, known)) == [""] * LOGINS
    assert all(after > b for after, b in zip(served(az), before, strict=True)), "both served"
