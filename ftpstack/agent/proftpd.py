"""The daemon: its master, its sessions, reloading it, and the load balancer's probe."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import signal
import socket
import time
from pathlib import Path
from typing import Any

from ftpstack import paths
from ftpstack.agent.base import ApplyFailed, run, say, systemd

SESSION_TITLE = re.compile(r"^proftpd: (\S+) - [^:]+: (.*)$")
# A session that has not logged in yet ("proftpd: connected: 203.0.113.10 (...)").
CONNECTED_TITLE = re.compile(r"^proftpd: connected: ")
# Sessions younger than this are left to end by themselves (a login that quits at once).
NARROW_GRACE_SECONDS = 2.0


def configtest(conf: Path) -> None:
    result = run("proftpd", "--configtest", "-c", str(conf), check=False)
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if "fatal" in line or "error" in line]
        raise ApplyFailed(f"proftpd refused the new configuration: {' | '.join(lines[-3:])}")


def master_pid(pid_file: str) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        pid = int(Path(pid_file).read_text().split()[0])
        os.kill(pid, 0)
        return pid
    return None


def greeting(port: int, timeout: float = 5) -> str:
    """The server's 220 greeting on this machine, or "" when nothing answers."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout) as s:
        return s.recv(512).decode(errors="replace")
    return ""


def reload_proftpd(pid_file: str, port: int, log: str, timeout: float = 20) -> None:
    """SIGHUP: the master re-reads its configuration and re-opens its logs; its listening socket
    and the running sessions are kept. Returns once the master has taken up the new
    configuration: it logged the reload, and then greeted a new connection (it accepts only
    between reloads)."""
    pid = master_pid(pid_file)
    if pid is None:
        raise ApplyFailed("proftpd is not running, so it cannot be reloaded")
    offset = Path(log).stat().st_size if Path(log).exists() else 0
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), Path(log).open("rb") as f:
            f.seek(offset)
            if b"received SIGHUP" in f.read() and greeting(port).startswith("220"):
                return
        if master_pid(pid_file) is None:
            raise ApplyFailed("proftpd exited while reloading its configuration")
        if time.monotonic() > deadline:
            raise ApplyFailed(f"proftpd did not take up its configuration within {timeout:.0f} s")
        time.sleep(0.05)


def start_proftpd(conf: str, pid_file: str, port: int, marker: str) -> None:
    Path(marker).parent.mkdir(parents=True, exist_ok=True)
    Path(marker).touch()
    if systemd():
        run("systemctl", "reset-failed", "proftpd", check=False)
        run("systemctl", "start", "proftpd")
    else:  # the local stand-in for a VM has no systemd: start the daemon itself
        run("proftpd", "-c", conf)
    deadline = time.monotonic() + 30
    while not greeting(port).startswith("220") or master_pid(pid_file) is None:
        if time.monotonic() > deadline:
            raise ApplyFailed(f"proftpd did not listen on {port} within 30 s")
        time.sleep(0.1)


def sessions(pid_file: str) -> list[tuple[int, str, str, float]]:
    """(pid, user, state, start time in seconds since boot) of every session of the master."""
    master = master_pid(pid_file)
    found: list[tuple[int, str, str, float]] = []
    if master is None:
        return found
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[1]) != master:
                continue
            title = (entry / "cmdline").read_text().replace("\0", " ").strip()
            match = SESSION_TITLE.match(title)
            start = int(fields[19]) / ticks
            if match:
                found.append((int(entry.name), match.group(1), match.group(2), start))
            elif CONNECTED_TITLE.match(title):
                found.append((int(entry.name), "", "IDLE (not logged in)", start))
    return found


def uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


def end_sessions(pid_file: str, users: set[str]) -> int:
    ended = 0
    for pid, user, _, _ in sessions(pid_file):
        if user in users:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
                ended += 1
    return ended


def local_port(pid: int) -> int | None:
    """The local TCP port of session `pid`'s connection (its standard input is the client's
    socket): the FTP control port, or SFTP's; None when it cannot be read (it ended)."""
    with contextlib.suppress(OSError):
        match = re.fullmatch(r"socket:\[(\d+)\]", os.readlink(f"/proc/{pid}/fd/0"))
        if match is None:
            return None
        for table in ("tcp", "tcp6"):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                if fields[9] == match.group(1):
                    return int(fields[1].rsplit(":", 1)[1], 16)
    return None


def end_wider_sessions(pid_file: str, since: float, wait: float, port: int) -> None:
    """Sessions started before the narrowing keep the wider range and may announce a port about
    to close: end each once it is idle (a running transfer first finishes with its 226), giving
    a young one a moment to end by itself (a login that quits at once). Only FTP's sessions
    (those on the control port, `port`): an SFTP session has no passive port, and its title
    says IDLE between two transfers as an FTP session's does."""
    deadline, ended = time.monotonic() + wait, 0
    while True:
        # A session whose port cannot be read counts as FTP's: waiting for one too many is
        # safe, announcing a closed port is not.
        old = [s for s in sessions(pid_file) if s[3] < since and local_port(s[0]) in {port, None}]
        now = uptime()
        for pid, _, state, start in old:
            if state.startswith("IDLE") and now - start >= NARROW_GRACE_SECONDS:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
                    ended += 1
        busy = [s for s in old if not s[2].startswith("IDLE") or now - s[3] < NARROW_GRACE_SECONDS]
        if not busy or time.monotonic() > deadline:
            say(f"ended {ended} idle session(s) of the wider range; {len(busy)} still transferring")
            return
        time.sleep(0.2)


def health(bundle: dict[str, Any], on: bool) -> None:
    """Answer the load balancer's probe (on) or stop answering it (drain)."""
    spec = bundle.get("health")
    if not spec:
        return
    if systemd():
        run("systemctl", "start" if on else "stop", spec["unit"])
    elif on:
        run("nft", "-f", spec["nft"])
    else:
        run("nft", "delete", "table", "inet", paths.HEALTH_TABLE, check=False)


# How long `settle` must see no login under way before it returns: a connection the load
# balancer sent just before its verdict may still wait in the listen queue, its session not yet
# forked (seen under load: the stop then reset that customer's login).
SETTLE_QUIET_SECONDS = 1.0


def settle(pid_file: str, timeout: float = 30) -> None:
    """Out of the load balancer's rotation, let the logins already under way finish: wait until
    every session is an established one (logged in a while ago) for SETTLE_QUIET_SECONDS in a
    row, at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    quiet_since: float | None = None
    while time.monotonic() < deadline:
        now = uptime()
        fresh = [x for x in sessions(pid_file) if not x[1] or now - x[3] < NARROW_GRACE_SECONDS]
        if fresh:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= SETTLE_QUIET_SECONDS:
            return
        time.sleep(0.1)


def ban_address(text: str) -> str:
    """`text` when it is one IP address as written, else ApplyFailed: nothing else reaches
    ftpdctl (no option, no second word, no line end, no IPv6 zone, which may hold any of those)."""
    try:
        ipaddress.ip_address(text)
        valid = "%" not in text
    except ValueError:
        valid = False
    if not valid:
        raise ApplyFailed(f"unban: {text!r} is not an IP address; give one, e.g. unban 203.0.113.7")
    return text


def unban(address: str) -> None:
    """Lift mod_ban's ban of an address (ftpdctl exits 0 even when it refuses: read its words)."""
    host = ban_address(address)
    out = run("ftpdctl", "-s", paths.CONTROLS_SOCKET, "permit", "host", host).stdout
    if "permitted" not in out and "unnecessary" not in out:
        raise ApplyFailed(f"ftpdctl did not lift the ban: {out.strip()}")
    say(f"{host} may connect again")
