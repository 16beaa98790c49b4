"""`make bench`'s abuse section, and the L3 test's attack (tests/local/net/test_abuse.py):
customers logging in while hostile addresses hold idle connections.

Several addresses each hold every connection proftpd lets one address hold
(`MaxConnectionsPerHost`), never send a word, and open each one again as soon as the server ends
it (`python -m ftpstack.local.net.client idle-flood`). Meanwhile a customer logs in every 200 ms
from an address of its own. Measured: the customer's logins (how many failed, p50 and p95 of
the others) and what the attack achieved (the most connections it held at once, how many the
login timeout ended, how many the ban refused).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from ftpstack.local.bench.live import Sources, directive, percentile, result, spawn
from ftpstack.local.net.azure import LocalAzure
from ftpstack.local.net.netns import NetnsError, end_process
from ftpstack.offline.plan import Plan

ATTACKERS = 5  # hostile addresses
INTERVAL = 0.2  # seconds between the customer's logins
TIMED_OUT = "421 Login timeout"
BANNED = "530 Banned"


def measure(plan: Plan, sources: Sources, seconds: float) -> dict[str, Any]:
    """The bench's section: the flood against the stack on a model of its own (its bans and
    spent processes touch no other section)."""
    with LocalAzure(plan) as az:
        return under_idle_flood(az, sources, seconds)


def under_idle_flood(
    az: LocalAzure, sources: Sources, seconds: float, attackers: int = ATTACKERS
) -> dict[str, Any]:
    """`attackers` addresses flood for `seconds` while a customer logs in every 200 ms."""
    per_source = int(directive(az, "MaxConnectionsPerHost").split()[0])
    hostile = [sources.take(az) for _ in range(attackers)]
    customer = sources.take(az)
    with tempfile.TemporaryDirectory(prefix="ftpstack-abuse-") as tmp:
        stop = Path(tmp) / "stop"
        until = ("--stop-file", str(stop))
        flood = spawn(az, "idle-flood", "--sources", ",".join(hostile),
                      "--per-source", str(per_source), *until)  # fmt: skip
        loop = None
        try:
            assert flood.stdout is not None
            if flood.stdout.readline().strip() != "ready":
                raise NetnsError(f"the flood never got going: {result(flood, timeout=10)}")
            loop = spawn(az, "login-loop", "--interval", str(INTERVAL), *until,
                         "--source", customer)  # fmt: skip
            time.sleep(seconds)
            stop.touch()
            logins, attack = result(loop, timeout=60), result(flood, timeout=60)
        finally:
            stop.touch()
            for proc in (flood, loop):
                if proc is not None:
                    end_process(proc, timeout=5)
    return _results(logins, attack, attackers, per_source, seconds, az)


def _results(
    logins: dict[str, Any],
    attack: dict[str, Any],
    attackers: int,
    per_source: int,
    seconds: float,
    az: LocalAzure,
) -> dict[str, Any]:
    ms = [s * 1000 for s in logins["seconds"]] or [float("inf")]
    said: dict[str, int] = attack["said"]
    return {
        "attackers": attackers,
        "per_source": per_source,
        "flood_seconds": seconds,
        "max_instances": int(directive(az, "MaxInstances")),
        "login_timeout_s": int(directive(az, "TimeoutLogin")),
        "customer_logins": logins["attempts"],
        "customer_failed_logins": len(logins["failures"]),
        "customer_failures": logins["failures"][:10],
        "customer_login_ms_p50": round(percentile(ms, 0.5), 1),
        "customer_login_ms_under_idle_flood": round(percentile(ms, 0.95), 1),
        "flood_held_max": attack["held_max"],
        "flood_connections": attack["opened"],
        "flood_timed_out": sum(n for words, n in said.items() if words.startswith(TIMED_OUT)),
        "flood_banned": sum(n for words, n in said.items() if words.startswith(BANNED)),
        "flood_said": said,
    }


def rows(ab: dict[str, Any]) -> list[str]:
    """The section's row of the bench table."""
    return [
        f"| customer login p95 ms, {ab['attackers']} addresses x {ab['per_source']} idle "
        f"connections | {ab['customer_login_ms_under_idle_flood']} | | p50 "
        f"{ab['customer_login_ms_p50']}; {ab['customer_failed_logins']} of "
        f"{ab['customer_logins']} failed; the flood held {ab['flood_held_max']}, "
        f"{ab['flood_timed_out']} timed out, {ab['flood_banned']} refused by the ban in "
        f"{ab['flood_seconds']:g} s |",
    ]
