"""`make bench`'s throughput figure does not depend on how its clients pick their source address
(L3): curl downloading over FTP from a fresh address each time (what the bench does, so that
the stack's per-address limits and bans never touch it) and from one address throughout run
alike, round by round on the same model. Nothing on the path keys on the address: the router's
NSG rules and DNAT match every client of the allowed sources alike, conntrack keeps a flow per
connection either way, and the server's TCP metrics for a known address (kept between
connections) change nothing on a path without loss.

Negative control: the same comparison with the one address slowed down at the router (its
packets over 20 MB/s dropped) sees the difference."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ftpstack.local.bench import suite
from ftpstack.local.bench import throughput as bench_throughput
from ftpstack.local.bench.live import Sources
from ftpstack.local.net.azure import LocalAzure
from tests.support import needs_root, plan_test_stack

SIZE_MIB = 128  # long enough that the data phase, not the login, decides the rate
ROUNDS = 7
# On this 2-core machine with other work running (load average 4), a single round's ratio
# ranged 0.5-2 and the median of 5-9 rounds 0.82-1.12 over four runs; under heavier load (four
# test workers beside an emulated VM) one median was 0.64. An address-keyed difference worth the
# name lands far outside (the control's: 0.04).
ALIKE = (0.5, 2.0)


@pytest.fixture(scope="module")
def model() -> Iterator[tuple[LocalAzure, Sources]]:
    needs_root()
    plan = plan_test_stack("dev", suite.OVERRIDES)
    with tempfile.TemporaryDirectory(prefix="ftpstack-test-", dir="/dev/shm") as tmp:
        storage = Path(tmp) / "storage"  # the file stays in memory
        storage.mkdir()
        Path(tmp).chmod(0o755)
        with LocalAzure(plan, storage=storage) as az:
            yield az, Sources()


@pytest.mark.l3
def test_one_address_and_fresh_addresses_download_alike(
    model: tuple[LocalAzure, Sources],
) -> None:
    az, sources = model
    got = bench_throughput.source_strategies(az, sources, SIZE_MIB, ROUNDS, sources.take(az))
    assert len(got["one"]) == len(got["fresh"]) == ROUNDS
    assert ALIKE[0] <= got["ratio"] <= ALIKE[1], got


@pytest.mark.l3
def test_a_slower_address_is_seen(model: tuple[LocalAzure, Sources]) -> None:
    az, sources = model
    one = sources.take(az)
    rules = f"""table ip ftpstack_test_slow {{
  chain forward {{
    type filter hook forward priority -10; policy accept;
    ip daddr {one} limit rate over 20 mbytes/second drop
  }}
}}
"""
    added = az.router.run("nft", "-f", "-", input=rules)
    assert added.returncode == 0, added.stderr
    try:
        got = bench_throughput.source_strategies(az, sources, 32, 1, one)
    finally:
        az.router.run("nft", "delete", "table", "ip", "ftpstack_test_slow")
    assert got["ratio"] < ALIKE[0], got
