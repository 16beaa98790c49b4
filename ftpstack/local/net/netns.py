"""Network namespaces of the local stand-ins: create, run inside, wait for a listener, tear down.

Every stand-in (the L2 server, the L3 network model, the L4 VM's attachment, the benchmark) makes
its namespaces through `Netns` and removes them with `Netns.delete()`, which first ends every
process still inside by its PID (never by name). Only namespaces this process created are touched.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Self


class NetnsError(Exception):
    """A namespace could not be made, or what was started in it did not come up."""


_counter = itertools.count()


def unique_name(role: str) -> str:
    """A namespace name unique to this process and call, short enough for interface names."""
    return f"fs{os.getpid() % 100000}x{next(_counter)}-{role}"


def run(*argv: str, check: bool = True, input: str | None = None) -> str:
    """A host command; its stdout, or NetnsError with its stderr when it fails and `check`."""
    result = subprocess.run(argv, capture_output=True, text=True, input=input, check=False)
    if check and result.returncode != 0:
        raise NetnsError(f"{shlex.join(argv)}: {result.stderr.strip()}")
    return result.stdout


def end_process(proc: subprocess.Popen[Any], timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL after `timeout` seconds: always by the process's own PID."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def kill_pid(pid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


class StandIn:
    """What a stand-in starts it also ends: `with X(...) as x:` (or `x = X(...).started()`) runs
    `start()`; a failure while starting, or leaving the block, runs `close()`, which must end
    whatever `start()` made so far and nothing else (it may run more than once)."""

    def start(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def started(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __enter__(self) -> Self:
        return self.started()

    def __exit__(self, *exc: object) -> None:
        self.close()


class Netns:
    """One network namespace with its loopback up."""

    def __init__(self, name: str) -> None:
        self.name = name

    @classmethod
    def create(cls, role: str) -> Netns:
        ns = cls(unique_name(role))
        run("ip", "netns", "add", ns.name)
        ns.ip("link", "set", "lo", "up")
        return ns

    def ip(self, *args: str) -> str:
        return run("ip", "-n", self.name, *args)

    def sysctl(self, key: str, value: str | int) -> None:
        run("ip", "netns", "exec", self.name, "sysctl", "-q", "-w", f"{key}={value}")

    def argv(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def run(
        self,
        *argv: str,
        timeout: float = 120,
        env: dict[str, str] | None = None,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            input=input,
            check=False,
        )

    def popen(self, *argv: str, **kw: Any) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv(*argv), text=True, **kw)

    def listening(self, port: int) -> bool:
        out = run("ip", "netns", "exec", self.name, "ss", "-Htln", f"sport = :{port}", check=False)
        return bool(out.strip())

    def wait_listening(
        self,
        port: int,
        proc: subprocess.Popen[Any] | None = None,
        log: Path | None = None,
        timeout: float = 20,
    ) -> None:
        """Return once something listens on `port`; NetnsError when `proc` exits first or time
        runs out (with the log's tail)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise NetnsError(f"exited before listening on {port}: {_tail(log)}")
            if self.listening(port):
                return
            time.sleep(0.1)
        raise NetnsError(f"nothing listened on {port} within {timeout:.0f} s: {_tail(log)}")

    def pids(self) -> list[int]:
        return [int(p) for p in run("ip", "netns", "pids", self.name, check=False).split()]

    def delete(self) -> None:
        """End every process still inside (by PID), then remove the namespace."""
        for pid in self.pids():
            kill_pid(pid)
        run("ip", "netns", "del", self.name, check=False)


def veth(a: Netns, a_dev: str, b: Netns, b_dev: str) -> None:
    """A veth pair between two namespaces, both ends up (addresses are the caller's)."""
    run("ip", "link", "add", a_dev, "netns", a.name, "type", "veth", "peer", b_dev, "netns", b.name)
    a.ip("link", "set", a_dev, "up")
    b.ip("link", "set", b_dev, "up")


def _tail(log: Path | None) -> str:
    if log is None or not log.exists():
        return ""
    return log.read_text(errors="replace")[-2000:]
