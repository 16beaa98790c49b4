"""`make bench`'s scale section: the same stack with 5,000 users and with 10, side by side.

- apply: a live change that adds one user, from `pulumi up`'s Run Commands to the end of the
  configuration step (the agent rewrites the users file and makes the new home), on each model;
- login: connect + login + PASV + 1-byte RETR + QUIT, p50, the two models interleaved round by
  round; proftpd reads its users file at each login, so a long file is what could cost.

The 5,000 users have 32-character names (the longest a name may be), like the plans of
`tests/product/test_scale.py`.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from typing import Any

from ftpstack.local.bench.live import PASSWORD, SPACING, USER, Sources, client, logins
from ftpstack.local.bench.peers import ONE_BYTE
from ftpstack.local.net.azure import LocalAzure
from ftpstack.offline.plan import Plan, Secret, plan_stack

BASE: dict[str, Any] = {"tls": "off", "passwordHashRounds": 5000}


def users(count: int) -> list[dict[str, str]]:
    """The bench's user first, then `count - 1` partners with the longest names."""
    partners = [
        {"name": f"p{i:05d}".ljust(32, "x"), "password": f"partner-password-{i:06d}"}
        for i in range(count - 1)
    ]
    return [{"name": USER, "password": PASSWORD}, *partners]


def with_users(people: list[dict[str, str]]) -> Plan:
    return plan_stack("dev", overrides={**BASE, "users": Secret(people)})


def apply_seconds(az: LocalAzure, count: int) -> float:
    """A live change adding one user to a stack of `count` users: the seconds `apply` takes."""
    grown = with_users([*users(count), {"name": "newcomer", "password": "newcomer-password-1"}])
    started = time.monotonic()
    az.apply(grown)
    return time.monotonic() - started


def measure(sources: Sources, count: int, rounds: int) -> dict[str, Any]:
    samples: dict[int, list[float]] = {5000: [], 10: []}
    applied: dict[int, float] = {}
    with contextlib.ExitStack() as stack:
        models = {n: stack.enter_context(LocalAzure(with_users(users(n)))) for n in samples}
        for az in models.values():
            client(az, "upload", "--size", "1", "--name", ONE_BYTE, "--source", sources.take(az))
        each = max(1, count // rounds)
        for _ in range(rounds):
            for n, az in models.items():
                samples[n] += logins(az, sources, each, SPACING)
        for n, az in models.items():
            applied[n] = apply_seconds(az, n)
    many, few = statistics.median(samples[5000]), statistics.median(samples[10])
    return {
        "users_5000_apply_s": round(applied[5000], 2),
        "users_10_apply_s": round(applied[10], 2),
        "login_p50_5000_ms": round(many, 2),
        "login_p50_10_ms": round(few, 2),
        "login_p50_ratio_5000_vs_10": round(many / few, 3),
        "login_n": len(samples[10]),
    }
