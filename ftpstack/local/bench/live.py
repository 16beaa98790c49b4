"""`make bench`'s sections about a running server: `maxClients` simultaneous transfers and the next
client's refusal; live changes (`LocalAzure.apply`) under a steady stream of logins and across
running downloads. (The `ha` section is in `ha`.)

Also what every section shares: the test user, fresh client source addresses, running
`python -m ftpstack.local.net.client` in the client namespace (in the foreground or in the
background) and a series of spaced logins.
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from ftpstack.local.bench.peers import ONE_BYTE
from ftpstack.local.net import topology as net
from ftpstack.local.net.azure import LocalAzure
from ftpstack.local.net.client import environment, last_json, module_argv
from ftpstack.local.net.netns import NetnsError, end_process
from ftpstack.offline.declared import Declared
from ftpstack.offline.plan import Plan, Secret, plan_stack

USER, PASSWORD = "alice", "alice-password-1"
CONCURRENT = "concurrent.bin"
CONCURRENT_BYTES = 16 << 20
SLOW = "slow.bin"
SLOW_BYTES = 8 << 20
# One login every LOOP_INTERVAL / LOOPS seconds in all (every 200 ms), from LOOPS addresses: 30
# connections a minute each stay far below the stack's flood rule (`banConnectsPerMinute`, 600
# by default; at its former 60 one address at this rate was banned), and the point is many
# customers logging in while the configuration changes.
LOOPS, LOOP_INTERVAL = 10, 2.0
LOGIN_DEADLINE = 60  # seconds after an apply within which the new user must log in
SPACING = 0.5  # seconds between spaced logins (see `bench`'s docstring)


class Sources:
    """Fresh source addresses in each model's client network, one per client run (proftpd counts
    connections per address: MaxConnectionsPerHost, BanOnEvent ClientConnectRate)."""

    def __init__(self) -> None:
        self.used: dict[str, int] = {}

    def take(self, az: LocalAzure) -> str:
        ns = az.client
        if ns.name not in self.used:
            self.used[ns.name] = 0
        # The client's own address is net.CLIENT_NET[10]; these start well above it.
        index = 20 + self.used[ns.name]
        if index >= net.CLIENT_NET.num_addresses - 1:
            raise NetnsError("no client source address left")
        self.used[ns.name] += 1
        address = str(net.CLIENT_NET[index])
        ns.ip("addr", "add", f"{address}/32", "dev", _client_device(az))
        return address


def _client_device(az: LocalAzure) -> str:
    for line in az.client.ip("-o", "-4", "addr", "show").splitlines():
        if f" {az.client_address()}/" in line:
            return line.split()[1]
    raise NetnsError("the client namespace has no client address")


def client(
    az: LocalAzure, command: str, *args: str, user: str = USER, password: str = PASSWORD
) -> dict[str, Any]:
    """A client command in the client namespace, to its end; its JSON."""
    return az.client_cmd(command, *args, user=user, password=password)


def spawn(
    az: LocalAzure, command: str, *args: str, user: str = USER, password: str = PASSWORD
) -> subprocess.Popen[str]:
    """A client command in the client namespace, in the background (see `result`)."""
    return az.client.popen(
        *module_argv(
            "ftpstack.local.net.client", command, "--host", az.public_ip, "--user", user, *args
        ),
        env=environment(password),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def result(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise NetnsError(f"client failed ({proc.returncode}): {err.strip()[-2000:]}")
    return last_json(out)


def logins(az: LocalAzure, sources: Sources, count: int, spacing: float) -> list[float]:
    """`count` logins (connect, login, PASV, 1-byte RETR, QUIT) `spacing` s apart from one fresh
    address; each one's milliseconds."""
    argv = f"--count {count} --spacing {spacing} --name {ONE_BYTE}".split()
    got = client(az, "logins", *argv, "--source", sources.take(az))
    return [float(ms) for ms in got["ms"]]


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


def data_connections(az: LocalAzure) -> int:
    """Established connections on the VM's passive ports: transfers in progress."""
    span = Declared(az.plan.to_json()).passive_range
    ss = az.vm_netns(0).run(
        "ss", "-Htn", "state", "established", f"( sport >= :{span[0]} and sport <= :{span[-1]} )"
    )
    return len(ss.stdout.splitlines())


def wait_transfers(az: LocalAzure, count: int, timeout: float) -> int:
    """Until `count` transfers run at once (or time is up); the most seen at once."""
    deadline, most = time.monotonic() + timeout, 0
    while time.monotonic() < deadline:
        most = max(most, data_connections(az))
        if most >= count:
            break
        time.sleep(0.05)
    return most


def _intact(got: dict[str, Any], sent: dict[str, Any]) -> bool:
    return bool(
        str(got.get("reply") or "").startswith("226")
        and got["bytes"] == sent["bytes"]
        and got["sha256"] == sent["sha256"]
    )


def concurrency(az: LocalAzure, sources: Sources, seconds: float) -> dict[str, Any]:
    """`maxClients` downloads paced to last `seconds` (so they surely overlap), each from its
    own address; once all run at once, one more login from yet another address."""
    clients = _max_clients(az)
    upload = f"--size {CONCURRENT_BYTES} --name {CONCURRENT}".split()
    sent = client(az, "upload", *upload, "--source", sources.take(az))
    paced = f"--name {CONCURRENT} --seconds {seconds}".split()
    procs = [
        spawn(az, "slow-download", *paced, "--source", sources.take(az)) for _ in range(clients)
    ]
    try:
        at_once = wait_transfers(az, clients, timeout=seconds)
        extra = client(az, "try-login", "--source", sources.take(az))
        got = [result(p, timeout=seconds * 3 + 60) for p in procs]
    finally:
        for proc in procs:
            end_process(proc, timeout=5)
    return {
        "clients": clients,
        "simultaneous": at_once,
        "succeeded": sum(_intact(g, sent) for g in got),
        "next_client_reply": "logged in" if extra["ok"] else extra["reply"],
        "refused_ms": round(extra["seconds"] * 1000, 1),
        "errors": [g for g in got if not _intact(g, sent)],
    }


def _max_clients(az: LocalAzure) -> int:
    """MaxClients of the proftpd.conf this model applied."""
    return int(directive(az, "MaxClients").split()[0])


def directive(az: LocalAzure, name: str) -> str:
    """A directive's value in the proftpd.conf this model applied (its edits included)."""
    conf: str = next(
        f["content"]
        for f in az.edit(az.plan.bundles()[0])["files"]
        if f["path"].endswith("/proftpd.conf")
    )
    line = next(x for x in conf.splitlines() if x.split()[:1] == [name])
    return line.split(None, 1)[1]


def new_user(index: int) -> tuple[str, str]:
    return f"newuser{index}", f"newuser{index}-password"


def change_plans(overrides: dict[str, Any], changes: int) -> list[Plan]:
    """Plans that each add one more user to `overrides`' users (planned before any timing)."""
    base = list(overrides["users"].value)
    plans = []
    for index in range(1, changes + 1):
        added = [{"name": n, "password": p} for n, p in map(new_user, range(1, index + 1))]
        plans.append(plan_stack("dev", overrides={**overrides, "users": Secret(base + added)}))
    return plans


def _first_login(az: LocalAzure, sources: Sources, index: int, started: float) -> float | None:
    """Seconds from `started` to the new user's first successful login (each try from a fresh
    address: a refused try counts towards that address's failed-login ban)."""
    name, password = new_user(index)
    while time.monotonic() - started < LOGIN_DEADLINE:
        tried = client(az, "try-login", "--source", sources.take(az), user=name, password=password)
        if tried["ok"]:
            return time.monotonic() - started
        time.sleep(0.1)
    return None


def _one_change(
    az: LocalAzure, sources: Sources, plan: Plan, index: int, seconds: float, sent: dict[str, Any]
) -> dict[str, Any]:
    paced = f"--name {SLOW} --seconds {seconds}".split()
    slow = spawn(az, "slow-download", *paced, "--source", sources.take(az))
    try:
        if wait_transfers(az, 1, timeout=10) < 1:
            raise NetnsError("the slow download did not start")
        started = time.monotonic()
        az.apply(plan)
        applied = time.monotonic() - started
        spanning = slow.poll() is None  # still running when the change was live
        login = _first_login(az, sources, index, started)
        got = result(slow, timeout=seconds * 3 + 60)
    finally:
        end_process(slow, timeout=5)
    return {
        "apply_s": round(applied, 3),
        "login_s": None if login is None else round(login, 3),
        "spanning": spanning,
        "intact": _intact(got, sent),
        "download": got,
    }


def reconfigure(
    az: LocalAzure, sources: Sources, plans: list[Plan], seconds: float
) -> dict[str, Any]:
    """Each plan applied live while logins run every 200 ms and a slow download spans it."""
    upload = f"--size {SLOW_BYTES} --name {SLOW}".split()
    sent = client(az, "upload", *upload, "--source", sources.take(az))
    with tempfile.TemporaryDirectory(prefix="ftpstack-bench-") as tmp:
        stop = Path(tmp) / "stop"
        loop = f"--interval {LOOP_INTERVAL} --stop-file {stop}".split()
        loops: list[subprocess.Popen[str]] = []
        try:
            for _ in range(LOOPS):
                loops.append(spawn(az, "login-loop", *loop, "--source", sources.take(az)))
                time.sleep(LOOP_INTERVAL / LOOPS)
            changes = [
                _one_change(az, sources, plan, i, seconds, sent) for i, plan in enumerate(plans, 1)
            ]
            stop.touch()
            looped = [result(p, timeout=60) for p in loops]
        finally:
            stop.touch()
            for proc in loops:
                end_process(proc, timeout=5)
    return _reconfigure_results(changes, looped)


def _reconfigure_results(
    changes: list[dict[str, Any]], looped: list[dict[str, Any]]
) -> dict[str, Any]:
    logins = [c["login_s"] for c in changes]
    done = [s for s in logins if s is not None]
    return {
        "changes": len(changes),
        "apply_to_login_s": round(statistics.median(done), 3) if len(done) == len(logins) else None,
        "apply_to_login_max_s": max(done, default=None),
        "apply_to_login_samples": logins,
        "apply_s_samples": [c["apply_s"] for c in changes],
        "login_attempts_during_change": sum(r["attempts"] for r in looped),
        "failed_logins_during_change": sum(len(r["failures"]) for r in looped),
        "login_failures": [f for r in looped for f in r["failures"]][:20],
        "transfers_spanning_change": sum(c["spanning"] for c in changes),
        "transfers_broken": sum(not c["intact"] for c in changes),
        "broken_transfers": [c["download"] for c in changes if not c["intact"]],
    }
