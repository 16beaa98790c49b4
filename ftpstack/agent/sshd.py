"""The VM's own sshd, for administrators: on port 22, or on another port while proftpd serves
SFTP there. Only on a real VM (systemd): a stand-in shares the host's /etc/ssh."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

from ftpstack.agent.base import ApplyFailed, run, say, systemd
from ftpstack.agent.files import write_atomically

SFTP_PORT = 22


def listening(port: int) -> bool:
    """Whether anything on this machine accepts connections on `port`."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def move(spec: dict[str, Any] | None, leaving_sftp_port: bool) -> None:
    """sshd to `spec["port"]`, when this is the moment: before proftpd takes port 22
    (`leaving_sftp_port`: sshd leaves 22), or after proftpd gave it up (sshd returns to 22)."""
    if not spec or not systemd() or (spec["port"] != SFTP_PORT) != leaving_sftp_port:
        return
    port = int(spec["port"])
    dropin = Path(spec["dropin"])
    text = (
        "# Written by ftpstack: administrators' SSH; 22 is SFTP's while the stack serves it.\n"
        f"Port {port}\n"
    )
    if dropin.exists() and dropin.read_text() == text and listening(port):
        return
    dropin.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(dropin, text, 0o644)
    run("sshd", "-t")
    socket_unit = run("systemctl", "is-enabled", "ssh.socket", check=False).stdout.strip()
    if socket_unit == "enabled":  # socket activation (Ubuntu): the socket has the port
        override = Path(spec["socket_dropin"])
        override.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(override, f"[Socket]\nListenStream=\nListenStream={port}\n", 0o644)
        run("systemctl", "daemon-reload")
        run("systemctl", "restart", "ssh.socket")
    else:
        run("systemctl", "reload-or-restart", "ssh")
    deadline = time.monotonic() + 30
    while not listening(port) or (port != SFTP_PORT and _sshd_on(SFTP_PORT)):
        if time.monotonic() > deadline:
            raise ApplyFailed(f"sshd did not move to port {port} within 30 s")
        time.sleep(0.2)
    say(f"sshd listens on {port}")


def _sshd_on(port: int) -> bool:
    """Whether sshd (not proftpd) still holds `port`."""
    out = run("ss", "-Hltnp", f"sport = :{port}", check=False).stdout
    return "sshd" in out
