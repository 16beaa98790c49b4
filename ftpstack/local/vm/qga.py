"""A client of the qemu guest agent (qemu-ga) on the host's end of its virtio-serial channel: the
L4 VM's out-of-band channel, the stand-in for what Azure's VM agent gives the platform.

Wire protocol (qemu-ga-ref(7), qemu 7.2): JSON commands on a unix socket, one client at a time.
The channel keeps whatever was written while nobody listened in the guest (before the agent
started, across a reboot), so every conversation starts with `guest-sync-delimited`: a 0xFF byte
resets the agent's parser, the reply carries our random id after a 0xFF sentinel, and every
reply before it (answers to stale requests) is dropped.

`guest-exec` runs a program as root; the agent logs its argv (syslog), never its `input-data`,
so secrets travel only in `input-data` (the program's stdin).

`Guest` is the VM through its agent: the Run Command stand-in (`run_command`) and what the tests
and `make up-local` ask the VM (cloud-init's status, units, sysctl, the served certificate).
"""

from __future__ import annotations

import base64
import json
import random
import re
import shlex
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftpstack.local.vm.image import Say, say

SENTINEL = b"\xff"
POLL_SECONDS = 0.5
PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SERVED_CERTIFICATE = (
    "openssl s_client -starttls ftp -connect 127.0.0.1:21 </dev/null 2>/dev/null | openssl x509"
)


class GuestAgentError(Exception):
    """The agent refused a command, or is not reachable; str() says which and why."""


@dataclass(frozen=True)
class Exited:
    """What `guest-exec-status` reports for a finished program."""

    exitcode: int | None
    signal: int | None
    stdout: str
    stderr: str
    truncated: bool


class GuestAgent:
    """`agent = GuestAgent(path)`; `agent.call("guest-ping")`; `agent.exec([...])`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sock: socket.socket | None = None
        self._buffer = b""
        self._synced = False

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock, self._buffer, self._synced = None, b"", False

    # -- the wire ------------------------------------------------------------------------------

    def _connected(self) -> socket.socket:
        if self._sock is None:
            sock = socket.socket(socket.AF_UNIX)
            try:
                sock.connect(str(self.path))
            except OSError as error:
                sock.close()
                raise GuestAgentError(f"the agent's socket {self.path}: {error}") from None
            self._sock = sock
        return self._sock

    def _send(self, data: bytes) -> None:
        try:
            self._connected().sendall(data)
        except OSError as error:  # qemu went away: the next call reconnects
            self.close()
            raise GuestAgentError(f"writing to the agent: {error}") from None

    def _next(self, deadline: float) -> dict[str, Any] | None:
        """The next JSON object from the channel, or None when the deadline passes first."""
        decoder = json.JSONDecoder()
        while True:
            text = self._buffer.lstrip(SENTINEL + b" \r\n\t")
            self._buffer = text
            if text:
                try:  # latin-1: one character per byte, so `end` is a byte offset too
                    value, end = decoder.raw_decode(text.decode("latin-1"))
                except json.JSONDecodeError:
                    pass  # incomplete: read more
                else:
                    self._buffer = text[end:]
                    return value if isinstance(value, dict) else {}
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            sock = self._connected()
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(1 << 16)
            except TimeoutError:
                return None
            except OSError as error:
                self.close()
                raise GuestAgentError(f"reading from the agent: {error}") from None
            if not chunk:
                self.close()
                raise GuestAgentError("the agent's channel closed (qemu exited)")
            self._buffer += chunk

    def sync(self, timeout: float) -> bool:
        """True once the agent answered our sync (all earlier replies dropped)."""
        token = random.randrange(1, 1 << 62)
        request = {"execute": "guest-sync-delimited", "arguments": {"id": token}}
        self._send(SENTINEL + json.dumps(request).encode() + b"\n")
        deadline = time.monotonic() + timeout
        while (reply := self._next(deadline)) is not None:
            if reply.get("return") == token:
                self._synced = True
                return True
        self._synced = False
        return False

    def call(
        self,
        command: str,
        arguments: dict[str, Any] | None = None,
        timeout: float = 30,
        reply: bool = True,
    ) -> Any:
        """One command; its `return` value. `reply=False` for the commands that send none on
        success (guest-shutdown)."""
        deadline = time.monotonic() + timeout
        if not self._synced and not self.sync(min(timeout, 10)):
            raise GuestAgentError(f"{command}: the agent does not answer")
        request: dict[str, Any] = {"execute": command}
        if arguments is not None:
            request["arguments"] = arguments
        self._send(json.dumps(request).encode() + b"\n")
        if not reply:
            self._synced = False
            return None
        answer = self._next(deadline)
        if answer is None:
            self._synced = False
            raise GuestAgentError(f"{command}: no answer within {timeout:.0f} s")
        if "error" in answer:
            raise GuestAgentError(f"{command}: {answer['error'].get('desc', answer['error'])}")
        return answer.get("return")

    # -- what the stand-ins use ----------------------------------------------------------------

    def wait_ready(
        self,
        timeout: float,
        alive: Callable[[], bool] = lambda: True,
        tick: Callable[[float], None] | None = None,
    ) -> float:
        """Seconds until the agent answered guest-ping; GuestAgentError when `alive()` turns
        false (qemu exited) or `timeout` passes. `tick(elapsed)` about every 10 s."""
        started = time.monotonic()
        told = started
        while True:
            elapsed = time.monotonic() - started
            if not alive():
                raise GuestAgentError(
                    f"qemu exited before the guest agent answered ({elapsed:.0f} s)"
                )
            if elapsed > timeout:
                raise GuestAgentError(f"the guest agent did not answer within {timeout:.0f} s")
            try:
                if self.sync(timeout=3):
                    self.call("guest-ping", timeout=10)
                    return time.monotonic() - started
            except GuestAgentError:
                time.sleep(1)  # qemu's socket not there yet, or the channel was reset
            if tick is not None and time.monotonic() - told >= 10:
                told = time.monotonic()
                tick(told - started)

    def exec(
        self,
        argv: Sequence[str],
        stdin: bytes = b"",
        env: Sequence[str] = (),
        timeout: float = 600,
        tick: Callable[[float], None] | None = None,
    ) -> Exited:
        """Run `argv` in the guest as root, `stdin` as its input; wait for it to end.
        `tick(elapsed)` about every 10 s while it runs (it may use this agent too)."""
        arguments: dict[str, Any] = {"path": argv[0], "arg": list(argv[1:]), "capture-output": True}
        if env:
            arguments["env"] = list(env)
        if stdin:
            arguments["input-data"] = base64.b64encode(stdin).decode()
        pid = self.call("guest-exec", arguments)["pid"]
        started = told = time.monotonic()
        while True:
            status = self.call("guest-exec-status", {"pid": pid})
            if status.get("exited"):
                return Exited(
                    status.get("exitcode"),
                    status.get("signal"),
                    _text(status.get("out-data")),
                    _text(status.get("err-data")),
                    bool(status.get("out-truncated") or status.get("err-truncated")),
                )
            now = time.monotonic()
            if now - started > timeout:
                raise GuestAgentError(f"{argv[0]} did not end within {timeout:.0f} s (pid {pid})")
            if tick is not None and now - told >= 10:
                told = now
                tick(now - started)
            time.sleep(POLL_SECONDS)

    def spawn(self, argv: Sequence[str], env: Sequence[str] = ()) -> int:
        """Start `argv` in the guest and do not wait (what ends the agent itself: a reboot)."""
        arguments: dict[str, Any] = {"path": argv[0], "arg": list(argv[1:])}
        if env:
            arguments["env"] = list(env)
        pid: int = self.call("guest-exec", arguments)["pid"]
        return pid


def _text(data: str | None) -> str:
    return base64.b64decode(data).decode(errors="replace") if data else ""


class Guest:
    """The VM seen through its guest agent."""

    def __init__(self, agent: GuestAgent) -> None:
        self.agent = agent

    def run_command(
        self,
        script: str,
        parameters: Mapping[str, str],
        timeout: float = 3600,
        tick: Callable[[float], None] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """The Run Command stand-in: `script` with every non-empty parameter exported at its
        top, fed to `bash -s` as root; what Azure's instance view reports."""
        for name in parameters:
            if not _NAME.match(name):
                raise ValueError(f"{name!r} cannot be an environment variable")
        exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in parameters.items() if v)
        done = self.agent.exec(
            ["/bin/bash", "-s"],
            stdin=(exports + script).encode(),
            env=[PATH, "HOME=/root", "LANG=C.UTF-8"],
            timeout=timeout,
            tick=tick,
        )
        code = done.exitcode if done.exitcode is not None else 128 + (done.signal or 0)
        return subprocess.CompletedProcess(["run-command"], code, done.stdout, done.stderr)

    def sh(self, command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """A shell command as root (no secrets: the agent logs it)."""
        done = self.agent.exec(
            ["/bin/sh", "-c", command], env=[PATH, "LANG=C.UTF-8"], timeout=timeout
        )
        code = done.exitcode if done.exitcode is not None else 128 + (done.signal or 0)
        return subprocess.CompletedProcess(["sh", "-c", command], code, done.stdout, done.stderr)

    def out(self, command: str, timeout: float = 120) -> str:
        return self.sh(command, timeout).stdout.strip()

    def cloud_init(self) -> dict[str, Any]:
        """`cloud-init status --format json`: status and errors."""
        # cloud-init is Python: under emulation on a busy host, one call can take minutes.
        text = self.out("cloud-init status --format json 2>/dev/null", timeout=300)
        document: dict[str, Any] = json.loads(text) if text.startswith("{") else {}
        return document

    def wait_cloud_init(self, timeout: float = 900, progress: Say = say) -> dict[str, Any]:
        """Until cloud-init finished (done, error or degraded); its status."""
        started = told = time.monotonic()
        while True:
            status = self.cloud_init()
            if status.get("status") not in {None, "running", "not run", "not started"}:
                return status
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"cloud-init still {status.get('status')} after {timeout:.0f} s")
            if time.monotonic() - told >= 10:
                told = time.monotonic()
                progress(f"cloud-init {status.get('status')} ({told - started:.0f} s)")
            time.sleep(2)

    def unit(self, unit: str) -> tuple[str, str]:
        """(is-active, is-enabled) of a systemd unit."""
        return (
            self.out(f"systemctl is-active {shlex.quote(unit)}"),
            self.out(f"systemctl is-enabled {shlex.quote(unit)}"),
        )

    def sysctl(self, key: str) -> str:
        return self.out(f"sysctl -n {shlex.quote(key)}")

    def boot_id(self) -> str:
        return self.out("cat /proc/sys/kernel/random/boot_id")

    def served_certificate(self) -> str:
        """The certificate proftpd presents after AUTH TLS on port 21, as PEM."""
        return self.out(SERVED_CERTIFICATE)

    def fingerprint(self) -> str:
        """SHA-256 fingerprint of the served certificate."""
        return self.out(f"{SERVED_CERTIFICATE} -noout -fingerprint -sha256")

    def power(self, action: str) -> None:
        """`systemctl reboot` or `poweroff`, started and not waited for: it ends the agent.
        (qemu-ga's guest-shutdown runs `shutdown +0`, which schedules through logind over
        D-Bus; neither is in this image, so it fails.)"""
        self.agent.spawn(["/bin/systemctl", "--no-block", action], env=[PATH])

    def kill_master(self) -> int:
        """kill -9 proftpd's master process; its PID."""
        pid = int(self.out("cat /run/proftpd.pid"))
        self.out(f"kill -9 {pid}")
        return pid
