"""`make bench`'s throughput section: curl's passive binary RETR of a large file to /dev/null
through the public address (DNAT, NSG, conntrack) against the path's own ceiling, iperf3 (one
stream, reverse: server to client like a download) with its server in the VM listening on a port
of the passive range, so both take the same path through the router. Both rates are over the
data phase (curl: total time less its pre-transfer time, the login; iperf3: its own stream
time). Python's ftplib (which also hashes what it reads) is a secondary figure.

Also what the sftp section reuses: the test file (`blob_file`) and iperf3's measure.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ftpstack.local.bench.live import PASSWORD, USER, Sources, client
from ftpstack.local.net.azure import LocalAzure
from ftpstack.local.net.netns import NetnsError, end_process
from ftpstack.offline.declared import Declared

BLOB = "blob.bin"
SETTLE = 0.5  # seconds of quiet before each throughput sample


def _curl(az: LocalAzure, sources: Sources, netrc: Path, size: int) -> dict[str, float]:
    fields = "%{response_code} %{size_download} %{time_pretransfer} %{time_total}"
    argv = f"curl --silent --show-error --disable-epsv --output /dev/null --netrc-file {netrc}"
    url = f"ftp://{az.public_ip}/{BLOB}"
    result = az.client.run(*argv.split(), "--interface", sources.take(az), "--write-out", fields,
                           url, timeout=600)  # fmt: skip
    if result.returncode != 0:
        raise NetnsError(f"curl failed: {result.stderr.strip()}")
    code, got, pre, total = result.stdout.split()
    if code != "226" or int(got) != size:
        raise NetnsError(f"curl: reply {code}, {got} of {size} bytes")
    return {"data": size / (float(total) - float(pre)), "session": size / float(total)}


def iperf3(az: LocalAzure, port: int, size: int, *extra: str) -> dict[str, float]:
    argv = f"iperf3 --client {az.public_ip} --port {port} --reverse --bytes {size} --json"
    result = az.client.run(*argv.split(), *extra, timeout=600)
    report = json.loads(result.stdout or "{}")
    if result.returncode != 0 or "error" in report:
        raise NetnsError(f"iperf3 failed: {report.get('error') or result.stderr.strip()}")
    received = report["end"]["sum_received"]
    return {"data": received["bytes"] / received["seconds"]}


def _ftplib(az: LocalAzure, sources: Sources, size: int) -> dict[str, float]:
    got = client(az, "download", "--name", BLOB, "--timeout", "120", "--source", sources.take(az))
    if not got["reply"].startswith("226") or got["bytes"] != size:
        raise NetnsError(f"ftplib download: {got}")
    return {"data": size / got["seconds"]}


def blob_file(stage: Path, size_mib: int) -> Path:
    # Real pages, not a sparse file: the server must read what it sends.
    blob, chunk = stage / BLOB, bytes(range(256)) * 4096
    with blob.open("wb") as f:
        for _ in range(size_mib):
            f.write(chunk)
    return blob


def measure(az: LocalAzure, sources: Sources, size_mib: int, rounds: int) -> dict[str, Any]:
    """curl, iperf3 (plain, and sending with sendfile(2) as proftpd does) and ftplib, interleaved
    round by round (the order flips every round, so a drift in the machine's load hits all)."""
    size, port = size_mib << 20, Declared(az.plan.to_json()).passive_range[-1]
    stage = Path(tempfile.mkdtemp(prefix="ftpstack-bench-", dir="/dev/shm"))
    samples: dict[str, list[dict[str, float]]] = {}
    try:
        blob = blob_file(stage, size_mib)
        source = sources.take(az)
        up = client(az, "upload", *f"--file {blob} --name {BLOB} --timeout 300".split(),
                    "--source", source)  # fmt: skip
        if not up["reply"].startswith("226"):
            raise NetnsError(f"upload of the test file: {up}")
        blob.unlink()
        netrc = stage / "netrc"  # the password stays off curl's command line
        netrc.write_text(f"machine {az.public_ip} login {USER} password {PASSWORD}\n")
        netrc.chmod(0o600)
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        server = az.vms[0].popen("iperf3", "--server", "--port", str(port), **quiet)
        measures: dict[str, Callable[[], dict[str, float]]] = {
            "curl": lambda: _curl(az, sources, netrc, size),
            "iperf3": lambda: iperf3(az, port, size),
            # The sender from the page cache with sendfile(2), as proftpd sends a file.
            "iperf3_zerocopy": lambda: iperf3(az, port, size, "--zerocopy"),
            "ftplib": lambda: _ftplib(az, sources, size),
        }
        try:
            az.vm_netns(0).wait_listening(port, server)
            for index in range(rounds):
                for name in list(measures)[:: 1 if index % 2 == 0 else -1]:
                    time.sleep(SETTLE)
                    samples.setdefault(name, []).append(measures[name]())
        finally:
            end_process(server, timeout=5)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return _results(samples, size_mib, rounds, port)


def _results(
    samples: dict[str, list[dict[str, float]]], size_mib: int, rounds: int, port: int
) -> dict[str, Any]:
    def mib(values: list[float]) -> list[float]:
        return [round(v / (1 << 20), 1) for v in values]

    curl = mib([s["data"] for s in samples["curl"]])
    limit = mib([s["data"] for s in samples["iperf3"]])
    zerocopy = mib([s["data"] for s in samples["iperf3_zerocopy"]])
    ftplib_ = mib([s["data"] for s in samples["ftplib"]])
    sessions = mib([s["session"] for s in samples["curl"]])
    return {
        "size_mib": size_mib,
        "rounds": rounds,
        "iperf3_port": port,
        "limit_iperf3_mib_s": statistics.median(limit),
        "ftp_curl_mib_s": statistics.median(curl),
        "ratio": round(statistics.median(curl) / statistics.median(limit), 3),
        "limit_iperf3_zerocopy_mib_s": statistics.median(zerocopy),
        "ratio_zerocopy": round(statistics.median(curl) / statistics.median(zerocopy), 3),
        "ftp_curl_with_login_mib_s": statistics.median(sessions),
        "ftp_python_ftplib_mib_s": statistics.median(ftplib_),
        "samples": {
            "iperf3": limit,
            "iperf3_zerocopy": zerocopy,
            "curl": curl,
            "curl_with_login": sessions,
            "python_ftplib": ftplib_,
        },
    }


def rows(t: dict[str, Any]) -> list[str]:
    return [
        f"| {t['size_mib']} MiB passive RETR (curl), MiB/s | {t['ftp_curl_mib_s']} | iperf3 "
        f"{t['limit_iperf3_mib_s']} | ratio {t['ratio']} (medians of {t['rounds']} rounds) |",
        f"| same, against iperf3 sending with sendfile(2) | | {t['limit_iperf3_zerocopy_mib_s']} "
        f"| ratio {t['ratio_zerocopy']} |",
        f"| same, Python ftplib (hashing what it reads) | {t['ftp_python_ftplib_mib_s']} | | |",
    ]
