"""`make bench`'s `ha` section: the prod stack with two instances behind the load balancer (zones
1 and 2, as `ha_plan` in tests/local/net/test_ha.py), measured unscaled. The probe runs as
declared (a TCP connect every 5 s; an instance goes out or in after 2 consecutive results), so
every time here is in Azure's seconds as measured, not converted from a faster model.

- failover: one instance's proftpd ended with SIGKILL (its master and every session, by PID, at
  once, as a host fault ends them: no drain) while a client logs in through the public address
  every 100 ms. `failover_s` runs from the kill to the start of the first login after which
  none failed (at least `RELIABLE` more logins, until `STEADY_S` after the probe took the
  instance out); its resolution is the 100 ms spacing. The logins that failed meanwhile are
  recorded as information: the load balancer keeps sending about half the new logins to the
  dead instance until its probe fails twice, which is the window this measures. A fault comes
  at any point of the probe's 5 s cycle, and the window is 2 x 5 s less the time from the last
  probe round to the fault: so the kills are spread over the cycle (trial k of n at (k + 1/2)/n
  of it), and their median estimates the expected failover rather than one phase's. After each
  trial the lost VM is replaced (`replace_instance(i, drain=False)`).
- rolling: both instances replaced one after the other (`LocalAzure.replace_instance`: drain,
  stop, a new VM from the same bootstrap, narrowed and configured, back in rotation) while a
  client logs in every 200 ms; every failed login counts.
- the login p50 with two instances and with one (the same stack, `instances: 1`), interleaved
  round by round in the same run, each login as the `login_ms` section's.

The logins are `python -m ftpstack.local.bench.ha watch` in the client namespace: one thread per
source address, each address trying once every 2 s (30 a minute: the stack bans an address
after `banConnectsPerMinute`, 600 by default, once 60), staggered so that one login starts every
interval in all; it records each attempt's start, duration and outcome.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from ftpstack import paths
from ftpstack.ftpcheck import connect
from ftpstack.local.bench.live import PASSWORD, SPACING, USER, Sources, client, logins
from ftpstack.local.bench.peers import ONE_BYTE
from ftpstack.local.net.azure import LocalAzure
from ftpstack.local.net.client import FAILURES, environment, last_json, module_argv
from ftpstack.local.net.netns import NetnsError, end_process, kill_pid
from ftpstack.local.net.rotation import PROBE_INTERVAL_S, PROBE_THRESHOLD
from ftpstack.offline.plan import Plan, plan_stack

HA: dict[str, Any] = {"instances": 2, "zones": [1, 2], "tls": "allowed", "maxClients": 50}
FAILOVER_SOURCES, FAILOVER_INTERVAL = 20, 0.1  # a login every 100 ms, each address every 2 s
ROLLING_SOURCES, ROLLING_INTERVAL = 10, 0.2  # a login every 200 ms, each address every 2 s
BASELINE_S = 1.0  # logins before the fault or the change (and after the change)
STEADY_S = 3.0  # logins after the probe took the dead instance out
RELIABLE = 20  # logins, all successful, that must follow the failover's end
ATTEMPT_TIMEOUT = 10.0


def plans(overrides: dict[str, Any]) -> dict[int, Plan]:
    """The HA stack with two instances, and the same stack with one."""
    return {n: plan_stack("prod", overrides={**overrides, **HA, "instances": n}) for n in (2, 1)}


def measure(
    overrides: dict[str, Any], sources: Sources, count: int, rounds: int, failovers: int
) -> dict[str, Any]:
    """The whole section: login p50 (2 against 1 instance), rolling replacement, failovers."""
    two, one = plans(overrides).values()
    results: dict[str, Any] = {
        "instances": HA["instances"],
        "time_scale": 1.0,
        "probe_interval_s": PROBE_INTERVAL_S,
        "probe_threshold": PROBE_THRESHOLD,
    }
    with LocalAzure(two, time_scale=1.0) as az:
        with LocalAzure(one, time_scale=1.0) as single:
            results |= login_p50s(az, single, sources, count, rounds)
        results |= rolling(az, sources)
        results |= failover(az, sources, failovers)
    return results


# -- login latency, two instances against one ----------------------------------------------------


def login_p50s(
    two: LocalAzure, one: LocalAzure, sources: Sources, count: int, rounds: int
) -> dict[str, Any]:
    models = {"2_instances": two, "1_instance": one}
    for az in models.values():
        client(az, "upload", "--size", "1", "--name", ONE_BYTE, "--source", sources.take(az))
    samples: dict[str, list[float]] = {name: [] for name in models}
    each = max(1, count // rounds)
    for _ in range(rounds):
        for name, az in models.items():
            samples[name] += logins(az, sources, each, SPACING)
    p50 = {name: round(statistics.median(values), 2) for name, values in samples.items()}
    return {
        "login_p50_2_instances_ms": p50["2_instances"],
        "login_p50_1_instance_ms": p50["1_instance"],
        "login_p50_ratio": round(p50["2_instances"] / p50["1_instance"], 3),
        "login_n": each * rounds,
    }


# -- the rolling replacement -------------------------------------------------------------------


def rolling(az: LocalAzure, sources: Sources) -> dict[str, Any]:
    """Every instance replaced in turn while a login starts every 200 ms; `rolling_replaced`
    counts the instances that run on a new VM (its anchor process) and are in rotation after."""
    addresses = [sources.take(az) for _ in range(ROLLING_SOURCES)]
    before = [vm.pid for vm in az.vms]
    with Watch(az, addresses, ROLLING_INTERVAL) as watch:
        time.sleep(BASELINE_S)
        started = time.monotonic()
        for index in range(az.topology.instances):
            az.replace_instance(index)
        took = time.monotonic() - started
        time.sleep(BASELINE_S)
    failures = [a for a in watch.attempts if not a["ok"]]
    replaced = [i for i, vm in enumerate(az.vms) if vm.pid != before[i] and az.in_rotation(i)]
    return {
        "rolling_replaced": len(replaced),
        "rolling_s": round(took, 1),
        "login_attempts_rolling": len(watch.attempts),
        "failed_logins_rolling": len(failures),
        "rolling_failures": failures[:20],
        "rolling_slowest_login_s": max((a["s"] for a in watch.attempts), default=None),
    }


# -- failover ------------------------------------------------------------------------------------


def kill_server(az: LocalAzure, index: int) -> list[int]:
    """SIGKILL to instance `index`'s proftpd master and every session, by PID: the master is
    stopped first (so it forks no session after the list is taken), then all are killed."""
    master = int(az.vms[index].path(paths.PID_FILE).read_text().split()[0])
    kill_pid(master, signal.SIGSTOP)
    sessions = [pid for pid in az.vm_netns(index).pids() if _parent(pid) == master]
    for pid in (master, *sessions):
        kill_pid(pid)
    return [master, *sessions]


def _parent(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # ended meanwhile
        return None
    return next((int(x.split()[1]) for x in status.splitlines() if x.startswith("PPid:")), None)


def failover_window(
    attempts: list[dict[str, Any]], killed: float, reliable: int = RELIABLE
) -> dict[str, Any]:
    """The logins around a kill at `killed` (epoch seconds): `failover_s` from the kill to the
    start of the first login after the last failed one, None unless at least `reliable` logins
    followed from there (all successful, by construction); `failed` counts every failed login
    of the watch (none is expected before the kill), `attempts` those that ended after it."""
    after = sorted((a for a in attempts if a["t"] + a["s"] >= killed), key=lambda a: a["t"])
    failed = [a for a in attempts if not a["ok"]]
    last = max((a["t"] for a in failed), default=None)
    tail = [a for a in after if last is None or a["t"] > last]
    recovered = max(0.0, tail[0]["t"] - killed) if len(tail) >= reliable else None
    return {
        "failover_s": None if recovered is None else round(recovered, 3),
        "failed": len(failed),
        "attempts": len(after),
    }


def kill_time(last_round: float, phase: float, earliest: float) -> float:
    """The first moment from `earliest` on that lies `phase` s after a probe round (the rounds
    start every PROBE_INTERVAL_S s from `last_round`, the time of one of them)."""
    rounds = math.ceil((earliest - last_round - phase) / PROBE_INTERVAL_S)
    return last_round + rounds * PROBE_INTERVAL_S + phase


def _failover_once(
    az: LocalAzure, addresses: list[str], index: int, phase: float
) -> dict[str, Any]:
    with Watch(az, addresses, FAILOVER_INTERVAL) as watch:
        # A reported change is a probe round's time (the prober keeps a steady cadence).
        at = kill_time(az.probe_events[-1]["t"], phase, time.time() + BASELINE_S)
        time.sleep(max(0.0, at - time.time()))
        killed = time.time()
        kill_server(az, index)
        az.wait_healthy(index, up=False)
        time.sleep(STEADY_S)
    window = failover_window(watch.attempts, killed)
    out = [e["t"] for e in az.probe_events if e["instance"] == index and not e["up"]]
    window["probe_s"] = round(out[-1] - killed, 3) if out and out[-1] >= killed else None
    window["phase_s"] = round(phase, 3)
    return window


def failover(az: LocalAzure, sources: Sources, trials: int) -> dict[str, Any]:
    """`trials` faults, each on the next instance, each lost VM replaced after its trial (so
    every trial starts, and the model ends, with every instance in rotation)."""
    addresses = [sources.take(az) for _ in range(FAILOVER_SOURCES)]
    windows = []
    for trial in range(trials):
        index = trial % az.topology.instances
        phase = (trial + 0.5) * PROBE_INTERVAL_S / trials
        windows.append(_failover_once(az, addresses, index, phase))
        az.replace_instance(index, drain=False)
    samples = [w["failover_s"] for w in windows]
    done = [s for s in samples if s is not None]
    complete = len(done) == len(samples) and bool(samples)
    return {
        "failovers": trials,
        "failover_s": statistics.median(done) if complete else None,
        "failover_max_s": max(done) if complete else None,
        "failover_samples_s": samples,
        "failover_probe_out_samples_s": [w["probe_s"] for w in windows],
        "failover_kill_phase_s": [w["phase_s"] for w in windows],
        "failover_resolution_s": FAILOVER_INTERVAL,
        "failover_attempts": sum(w["attempts"] for w in windows),
        "failed_logins_failover": sum(w["failed"] for w in windows),
    }


# -- the login watcher -------------------------------------------------------------------------


class Watch:
    """`with Watch(az, addresses, interval) as w:` the watcher runs in `az`'s client namespace
    (entered once its first login is done); afterwards `w.attempts` holds every attempt."""

    def __init__(self, az: LocalAzure, addresses: list[str], interval: float) -> None:
        self.az, self.addresses, self.interval = az, addresses, interval
        self.attempts: list[dict[str, Any]] = []
        self._dir = Path(tempfile.mkdtemp(prefix="ftpstack-bench-ha-"))
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> Watch:
        argv = ["watch", "--host", self.az.public_ip, "--user", USER]
        argv += ["--sources", ",".join(self.addresses), "--interval", str(self.interval)]
        argv += ["--stop-file", str(self._dir / "stop")]
        self._proc = self.az.client.popen(
            *module_argv("ftpstack.local.bench.ha", *argv),
            env=environment(PASSWORD),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self._proc.stdout is not None
        ready = select.select([self._proc.stdout], [], [], 60)[0]
        if not ready or self._proc.stdout.readline().strip() != "ready":
            self._close()
            raise NetnsError("the login watcher did not start")
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        (self._dir / "stop").touch()
        try:
            if kind is None and self._proc is not None:
                out, err = self._proc.communicate(timeout=60)
                if self._proc.returncode != 0:
                    raise NetnsError(f"the login watcher failed: {err.strip()[-2000:]}")
                self.attempts = last_json(out)["attempts"]
        finally:
            self._close()

    def _close(self) -> None:
        if self._proc is not None:
            end_process(self._proc, timeout=5)
        shutil.rmtree(self._dir, ignore_errors=True)


def _attempt(args: argparse.Namespace, source: str) -> dict[str, Any]:
    at, started = time.time(), time.perf_counter()
    error = None
    try:
        password = os.environ.get("FTP_PASSWORD", "")
        connect(args.host, args.user, password, timeout=args.timeout, source=source).quit()
    except FAILURES as failure:
        error = f"{type(failure).__name__}: {failure}"
    seconds = time.perf_counter() - started
    record = {"t": round(at, 4), "s": round(seconds, 4), "source": source, "ok": error is None}
    return record if error is None else {**record, "error": error}


def watch(args: argparse.Namespace) -> dict[str, Any]:
    """Logins from every source address in turn until the stop file exists."""
    sources = args.sources.split(",")
    period, stop = args.interval * len(sources), Path(args.stop_file)
    attempts: list[dict[str, Any]] = []
    first = threading.Event()

    def loop(source: str, offset: float) -> None:
        time.sleep(offset)
        due = time.monotonic()
        while not stop.exists():
            attempts.append(_attempt(args, source))
            first.set()
            due = max(due + period, time.monotonic())
            time.sleep(max(0.0, due - time.monotonic()))

    threads = [
        threading.Thread(target=loop, args=(source, i * args.interval), daemon=True)
        for i, source in enumerate(sources)
    ]
    for thread in threads:
        thread.start()
    if not first.wait(timeout=60):
        raise SystemExit("no login attempt finished within 60 s")
    print("ready", flush=True)
    for thread in threads:
        thread.join()
    return {"attempts": sorted(attempts, key=lambda a: a["t"])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ftpstack.local.bench.ha")
    parser.add_argument("command", choices=["watch"])
    parser.add_argument("--host", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--sources", required=True, help="comma-separated source addresses")
    parser.add_argument("--interval", type=float, default=0.2, help="between logins, in all")
    parser.add_argument("--stop-file", required=True)
    parser.add_argument("--timeout", type=float, default=ATTEMPT_TIMEOUT)
    args = parser.parse_args(argv)
    print(json.dumps(watch(args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
