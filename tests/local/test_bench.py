"""`make bench` (ftpstack.local.bench): the harness on the local Azure model with tiny sizes writes
every key of every section (L3), and its targets decide the exit code: each one flips when its
measure is on the wrong side (pure, with a results document made up here)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ftpstack.local import bench
from tests.support import needs_root

KEYS = {
    "throughput": {
        "size_mib",
        "rounds",
        "iperf3_port",
        "limit_iperf3_mib_s",
        "ftp_curl_mib_s",
        "ratio",
        "ftp_curl_with_login_mib_s",
        "ftp_python_ftplib_mib_s",
        "samples",
        "proftpd_directives",
        "limit_iperf3_zerocopy_mib_s",
        "ratio_zerocopy",
    },
    "login_ms": {
        f"{name}_{stat}"
        for name in ("ftpstack", "vsftpd", "stock_proftpd", "ftpstack_dns_down")
        for stat in ("p50", "n")
    }
    | {"ftpstack_burst_p90", "ftpstack_burst_n"},
    "concurrency": {
        "clients",
        "simultaneous",
        "succeeded",
        "next_client_reply",
        "refused_ms",
        "errors",
    },
    "reconfigure": {
        "changes",
        "apply_to_login_s",
        "apply_to_login_max_s",
        "apply_to_login_samples",
        "apply_s_samples",
        "login_attempts_during_change",
        "failed_logins_during_change",
        "login_failures",
        "transfers_spanning_change",
        "transfers_broken",
        "broken_transfers",
    },
}
TOP = {"cpus", "load_average_start", "load_average_end", "targets", "ha", *KEYS}


def _namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in out.stdout.splitlines() if line.strip()}


@pytest.mark.l3
def test_every_key_is_written(tmp_path: Path) -> None:
    needs_root()
    before = _namespaces()
    out = tmp_path / "results.json"
    code = bench.main(
        [
            "--size-mib",
            "4",
            "--rounds",
            "2",
            "--logins",
            "1",
            "--login-rounds",
            "1",
            "--hold-seconds",
            "3",
            "--changes",
            "1",
            "--slow-seconds",
            "2",
            "--out",
            str(out),
        ]
    )
    results = json.loads(out.read_text())
    assert set(results) == TOP
    for section, keys in KEYS.items():
        assert set(results[section]) == keys, section
    assert results["ha"] is None  # the place for the HA section, not measured yet
    samples = results["throughput"]["samples"]
    assert {len(v) for v in samples.values()} == {2}
    assert results["reconfigure"]["changes"] == 1
    assert len(results["targets"]) == len(bench.TARGETS)
    assert code == (0 if all(results["targets"].values()) else 1)
    # Every namespace it made is gone (names carry this process's id).
    mine = f"fs{os.getpid() % 100000}x"
    assert {n for n in _namespaces() - before if n.startswith(mine)} == set()


MET: dict[str, Any] = {
    "throughput": {"ratio": 0.97},
    "login_ms": {
        "ftpstack_p50": 8.0,
        "vsftpd_p50": 15.0,
        "stock_proftpd_p50": 2000.0,
        "ftpstack_dns_down_p50": 8.5,
    },
    "concurrency": {
        "clients": 20,
        "simultaneous": 20,
        "succeeded": 20,
        "refused_ms": 80.0,
        "next_client_reply": "530 Too many users",
    },
    "reconfigure": {
        "changes": 5,
        "apply_to_login_s": 0.8,
        "login_attempts_during_change": 150,
        "failed_logins_during_change": 0,
        "transfers_spanning_change": 5,
        "transfers_broken": 0,
    },
}
# Ways to miss each target: (its index in TARGETS, section, the change).
MISSES: list[tuple[int, str, dict[str, Any]]] = [
    (0, "throughput", {"ratio": 0.94}),
    (1, "login_ms", {"vsftpd_p50": 7.9}),
    (2, "login_ms", {"stock_proftpd_p50": 799.0}),
    (3, "login_ms", {"ftpstack_dns_down_p50": 9.7}),
    (4, "concurrency", {"simultaneous": 19}),
    (4, "concurrency", {"succeeded": 19}),
    (5, "concurrency", {"refused_ms": 1000.0}),
    (5, "concurrency", {"next_client_reply": "logged in"}),
    (6, "reconfigure", {"apply_to_login_s": 10.5}),
    (6, "reconfigure", {"apply_to_login_s": None}),  # a new user that never logged in
    (7, "reconfigure", {"failed_logins_during_change": 1}),
    (7, "reconfigure", {"login_attempts_during_change": 0}),  # nothing was tried
    (8, "reconfigure", {"transfers_broken": 1}),
    (8, "reconfigure", {"transfers_spanning_change": 4}),  # one ended before its change
]


def test_targets_met_by_good_results() -> None:
    assert bench.targets(MET) == {name: True for _, name, _ in bench.TARGETS}
    assert {index for index, _, _ in MISSES} == set(range(len(bench.TARGETS)))


@pytest.mark.parametrize(("index", "section", "change"), MISSES)
def test_each_target_fails_on_its_own_miss(
    index: int, section: str, change: dict[str, Any]
) -> None:
    results = copy.deepcopy(MET)
    results[section].update(change)
    met = bench.targets(results)
    assert [name for name, ok in met.items() if not ok] == [bench.TARGETS[index][1]]


def test_a_section_not_run_has_no_targets() -> None:
    partial = {"throughput": MET["throughput"]}
    assert list(bench.targets(partial)) == [bench.TARGETS[0][1]]
