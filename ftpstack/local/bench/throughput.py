"""`make bench`'s throughput section: one large file downloaded by the same client (curl, to
/dev/null) through the same path (the public address: DNAT, NSG, conntrack) from this stack's
proftpd over FTP and FTPS (PROT P; TLS 1.3 and 1.2) and from nginx in the same VM over HTTP
(sendfile) and HTTPS (TLS 1.3, the stack's certificate: `nginx`), beside the path's synthetic
ceiling, iperf3 (one stream, reverse: server to client like a download) with its server in the
VM on a port of the passive range. Rates are over the data phase (curl: total time less its
pre-transfer time: connect, TLS handshake, login; iperf3: its own stream time); ratios are the
medians of the rounds' own ratios; each server's CPU seconds per GiB sent are counted. Python's
ftplib (which also hashes what it reads) and FTP from one source address throughout (the others
take a fresh one each time; `source_strategies` compares the two alone) are secondary figures.

Also what the sftp section reuses: the test file (`blob_file`), iperf3's measure and the CPU
counters (`children_cpu`, `proftpd_master`).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ftpstack import paths
from ftpstack.local.bench import nginx
from ftpstack.local.bench.live import PASSWORD, USER, Sources, client
from ftpstack.local.net.azure import LocalAzure
from ftpstack.local.net.netns import NetnsError, end_process
from ftpstack.offline.declared import Declared

BLOB = "blob.bin"
SETTLE = 0.5  # seconds of quiet before each throughput sample
Sample = Mapping[str, float | str]  # a download's rates (bytes/s) and what it negotiated


def _curl(
    az: LocalAzure, source: str, url: str, size: int, done: str, *extra: str
) -> dict[str, float | str]:
    """One download with curl to /dev/null from `source`: its rates over the data
    phase (total time less the time before the first byte could flow: connect, TLS handshake,
    login) and over the whole session, and the TLS version and cipher it negotiated."""
    fields = "%{response_code} %{size_download} %{time_pretransfer} %{time_total}"
    argv = ["curl", "--silent", "--show-error", "--verbose", "--output", "/dev/null", *extra]
    result = az.client.run(*argv, "--interface", source, "--write-out", fields, url,
                           timeout=600)  # fmt: skip
    if result.returncode != 0:
        raise NetnsError(f"curl {url}: {result.stderr.strip()[-500:]}")
    code, got, pre, total = result.stdout.split()
    if code != done or int(got) != size:
        raise NetnsError(f"curl {url}: reply {code}, {got} of {size} bytes")
    tls = [line.split("using", 1)[1].strip() for line in result.stderr.splitlines()
           if "SSL connection using" in line]  # fmt: skip
    return {
        "data": size / (float(total) - float(pre)),
        "session": size / float(total),
        "tls": tls[-1] if tls else "",
    }


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


def children_cpu(pid: int) -> float:
    """CPU seconds of the ended children that `pid` reaped (cutime + cstime: a session's
    process, with what its own children used)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def own_cpu(pid: int) -> float:
    """CPU seconds `pid` itself used (utime + stime): a long-lived server process's."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proftpd_master(az: LocalAzure) -> int:
    """The VM's proftpd daemon: the proftpd whose parent is not one."""
    comm = {pid: Path(f"/proc/{pid}/comm").read_text().strip() for pid in az.vm_netns(0).pids()}
    for pid, name in comm.items():
        parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        if name == "proftpd" and comm.get(parent) != "proftpd":
            return pid
    raise NetnsError("no proftpd in the VM")


def blob_file(stage: Path, size_mib: int) -> Path:
    # Real pages, not a sparse file: the server must read what it sends.
    blob, chunk = stage / BLOB, bytes(range(256)) * 4096
    with blob.open("wb") as f:
        for _ in range(size_mib):
            f.write(chunk)
    return blob


def _serve_file(az: LocalAzure, sources: Sources, stage: Path, size_mib: int) -> Path:
    """The test file uploaded to the bench user's home; curl's netrc for it (the password stays
    off curl's command line)."""
    blob = blob_file(stage, size_mib)
    try:
        up = client(az, "upload", *f"--file {blob} --name {BLOB} --timeout 300".split(),
                    "--source", sources.take(az))  # fmt: skip
    finally:
        blob.unlink()
    if not up["reply"].startswith("226"):
        raise NetnsError(f"upload of the test file: {up}")
    netrc = stage / "netrc"
    netrc.write_text(f"machine {az.public_ip} login {USER} password {PASSWORD}\n")
    netrc.chmod(0o600)
    return netrc


def source_strategies(
    az: LocalAzure, sources: Sources, size_mib: int, rounds: int, one: str
) -> dict[str, Any]:
    """curl's FTP download from a fresh source address each time (as `measure` does) against
    the same from `one` address throughout, interleaved round by round: the rates (MiB/s) and
    the median of the rounds' ratios one / fresh."""
    size, url = size_mib << 20, f"ftp://{az.public_ip}/{BLOB}"
    stage = Path(tempfile.mkdtemp(prefix="ftpstack-bench-", dir="/dev/shm"))
    got: dict[str, list[float]] = {"fresh": [], "one": []}
    try:
        ftp = f"--disable-epsv --netrc-file {_serve_file(az, sources, stage, size_mib)}".split()
        for index in range(rounds):
            for name in list(got)[:: 1 if index % 2 == 0 else -1]:
                time.sleep(SETTLE)
                source = sources.take(az) if name == "fresh" else one
                rate = float(_curl(az, source, url, size, "226", *ftp)["data"])
                got[name].append(round(rate / (1 << 20), 1))
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return {**got, "ratio": _paired(got["one"], got["fresh"])}


def _contenders(
    az: LocalAzure, sources: Sources, stage: Path, size: int, ports: tuple[int, int, int]
) -> dict[str, Callable[[], Sample]]:
    """Each contender's download of the file `_serve_file` put in `stage`'s netrc's account."""
    port, http_port, https_port = ports
    ftp = f"--disable-epsv --netrc-file {stage / 'netrc'}".split()
    pin = ["--cacert", str(nginx.certificate(az, stage))]
    ftps = [*ftp, "--ssl-reqd", *pin]  # AUTH TLS, PBSZ 0, PROT P
    ftp_url, web = f"ftp://{az.public_ip}/{BLOB}", f"{az.public_ip}:{{}}/{BLOB}"

    def get(url: str, done: str, *extra: str) -> Callable[[], Sample]:
        return lambda: _curl(az, sources.take(az), url, size, done, *extra)

    one = sources.take(az)
    return {
        "curl": get(ftp_url, "226", *ftp),
        # The same from one address throughout (every other contender: a fresh one each).
        "curl_one_source": lambda: _curl(az, one, ftp_url, size, "226", *ftp),
        "ftps_tls13": get(ftp_url, "226", *ftps, "--tlsv1.3", "--tls-max", "1.3"),
        "ftps_tls12": get(ftp_url, "226", *ftps, "--tlsv1.2", "--tls-max", "1.2"),
        "nginx_http": get("http://" + web.format(http_port), "200"),
        "nginx_https": get("https://" + web.format(https_port), "200", *pin, "--tlsv1.3"),
        "iperf3": lambda: iperf3(az, port, size),
        # The sender from the page cache with sendfile(2), as proftpd sends a file.
        "iperf3_zerocopy": lambda: iperf3(az, port, size, "--zerocopy"),
        "ftplib": lambda: _ftplib(az, sources, size),
    }


def measure(az: LocalAzure, sources: Sources, size_mib: int, rounds: int) -> dict[str, Any]:
    """Every contender downloads the same file once a round, interleaved round by round (the
    order flips every round, so a drift in the machine's load hits all): curl over FTP and FTPS
    (TLS 1.3 and 1.2) from this stack's proftpd, curl over HTTP and HTTPS from nginx in the same
    VM, iperf3 (plain, and sending with sendfile(2) as proftpd does) and ftplib. `az` serves
    FTPS (`tls` allowed or required)."""
    size, passive = size_mib << 20, Declared(az.plan.to_json()).passive_range
    port, http_port, https_port = passive[-1], passive[-2], passive[-3]
    stage = Path(tempfile.mkdtemp(prefix="ftpstack-bench-", dir="/dev/shm"))
    samples: dict[str, list[Sample]] = {}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    try:
        _serve_file(az, sources, stage, size_mib)
        measures = _contenders(az, sources, stage, size, (port, http_port, https_port))
        with contextlib.ExitStack() as servers:
            iperf = az.vms[0].popen("iperf3", "--server", "--port", str(port), **quiet)
            servers.callback(end_process, iperf, timeout=5)
            az.vm_netns(0).wait_listening(port, iperf)
            anchor = nginx.start(az, f"{paths.FTP_ROOT}/{USER}", http_port, https_port)
            servers.callback(end_process, anchor, timeout=5)
            # Each server's CPU seconds for a download: proftpd's session, reaped by the daemon
            # (its cutime and cstime), nginx's one worker, iperf3's one server process.
            master, worker = proftpd_master(az), nginx.worker(anchor)
            cpu: dict[str, Callable[[], float]] = {
                "proftpd": lambda: children_cpu(master),
                "nginx": lambda: own_cpu(worker),
                "iperf3": lambda: own_cpu(iperf.pid),
            }
            time.sleep(SETTLE)
            for index in range(rounds):
                for name in list(measures)[:: 1 if index % 2 == 0 else -1]:
                    server = cpu[SERVERS[name]]
                    before = server()
                    sample = measures[name]()
                    time.sleep(SETTLE)  # quiet before the next; the session reaped meanwhile
                    samples.setdefault(name, []).append({**sample, "cpu": server() - before})
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    results = _results(samples, size_mib, rounds)
    results["iperf3_port"], results["nginx_ports"] = port, [http_port, https_port]
    return results


def _paired(over: list[float], under: list[float]) -> float:
    """The median of the round-by-round ratios: each round's two transfers ran back to back
    under the same load, so the ratio of a round is steadier than either rate."""
    return round(statistics.median(a / b for a, b in zip(over, under, strict=True)), 3)


def _interval(over: list[float], under: list[float], draws: int = 2000) -> list[float]:
    """A 90 % bootstrap interval of `_paired` (the rounds drawn again with replacement; a fixed
    seed, so one run's samples give one interval): how far this run's noise leaves the median,
    i.e. whether a target's verdict is the machine's or the servers'."""
    ratios = [a / b for a, b in zip(over, under, strict=True)]
    pick = random.Random(0).choices
    medians = sorted(statistics.median(pick(ratios, k=len(ratios))) for _ in range(draws))
    return [round(medians[draws // 20], 3), round(medians[draws - 1 - draws // 20], 3)]


def _results(samples: dict[str, list[Sample]], size_mib: int, rounds: int) -> dict[str, Any]:
    def mib(name: str, key: str = "data") -> list[float]:
        return [round(float(s[key]) / (1 << 20), 1) for s in samples[name]]

    got = {name: mib(name) for name in samples}
    median = {name: statistics.median(values) for name, values in got.items()}
    curl, limit, zerocopy = median["curl"], median["iperf3"], median["iperf3_zerocopy"]
    return {
        "size_mib": size_mib,
        "rounds": rounds,
        "limit_iperf3_mib_s": limit,
        "ftp_curl_mib_s": curl,
        "ratio": round(curl / limit, 3),
        "limit_iperf3_zerocopy_mib_s": zerocopy,
        "ratio_zerocopy": round(curl / zerocopy, 3),
        "ftp_curl_with_login_mib_s": statistics.median(mib("curl", "session")),
        "ftp_python_ftplib_mib_s": median["ftplib"],
        "nginx_http_mib_s": median["nginx_http"],
        "nginx_https_mib_s": median["nginx_https"],
        "ftps_curl_mib_s": median["ftps_tls13"],
        "ftps_tls12_curl_mib_s": median["ftps_tls12"],
        "ratio_vs_nginx_http": _paired(got["curl"], got["nginx_http"]),
        "ftp_curl_one_source_mib_s": median["curl_one_source"],
        "ratio_one_vs_fresh_source": _paired(got["curl_one_source"], got["curl"]),
        "ratio_ftps_vs_nginx_https": _paired(got["ftps_tls13"], got["nginx_https"]),
        "ratio_vs_nginx_http_ci90": _interval(got["curl"], got["nginx_http"]),
        "ratio_ftps_vs_nginx_https_ci90": _interval(got["ftps_tls13"], got["nginx_https"]),
        "ratio_ftps_tls12_vs_nginx_https": _paired(got["ftps_tls12"], got["nginx_https"]),
        "tls": {name: str(samples[name][0]["tls"]) for name in TLS_CONTENDERS},
        # The server's CPU seconds per GiB sent (median of the rounds): what a download costs the
        # VM, steadier than a rate on a shared machine, where rates follow the other work.
        "server_cpu_s_per_gib": {
            name: round(statistics.median(float(s["cpu"]) for s in values) * 1024 / size_mib, 3)
            for name, values in samples.items()
        },
        "samples": {**got, "curl_with_login": mib("curl", "session")},
    }


TLS_CONTENDERS = ("ftps_tls13", "ftps_tls12", "nginx_https")
SERVERS = {  # which server process sends each contender's download
    **dict.fromkeys(("curl", "curl_one_source", "ftps_tls13", "ftps_tls12", "ftplib"), "proftpd"),
    **dict.fromkeys(("nginx_http", "nginx_https"), "nginx"),
    **dict.fromkeys(("iperf3", "iperf3_zerocopy"), "iperf3"),
}


def _span(interval: list[float]) -> str:
    return f"{interval[0]}-{interval[1]}"


def rows(t: dict[str, Any]) -> list[str]:
    tls = t["tls"]
    return [
        f"| {t['size_mib']} MiB passive RETR (curl), MiB/s | {t['ftp_curl_mib_s']} | iperf3 "
        f"{t['limit_iperf3_mib_s']} | ratio {t['ratio']} (medians of {t['rounds']} rounds) |",
        f"| same, against iperf3 sending with sendfile(2) | | {t['limit_iperf3_zerocopy_mib_s']} "
        f"| ratio {t['ratio_zerocopy']} |",
        f"| same, against nginx over HTTP (sendfile), MiB/s | | {t['nginx_http_mib_s']} | ratio "
        f"{t['ratio_vs_nginx_http']} (median of the rounds' ratios; 90 % interval "
        f"{_span(t['ratio_vs_nginx_http_ci90'])}) |",
        f"| same over FTPS (PROT P, {tls['ftps_tls13']}), MiB/s | {t['ftps_curl_mib_s']} | nginx "
        f"HTTPS ({tls['nginx_https']}) {t['nginx_https_mib_s']} | ratio "
        f"{t['ratio_ftps_vs_nginx_https']} ({_span(t['ratio_ftps_vs_nginx_https_ci90'])}) |",
        f"| same over FTPS, {tls['ftps_tls12']} | {t['ftps_tls12_curl_mib_s']} | | ratio "
        f"{t['ratio_ftps_tls12_vs_nginx_https']} |",
        f"| same, Python ftplib (hashing what it reads) | {t['ftp_python_ftplib_mib_s']} | | |",
        f"| same (curl), one source address throughout | {t['ftp_curl_one_source_mib_s']} | "
        f"a fresh one each time {t['ftp_curl_mib_s']} | ratio {t['ratio_one_vs_fresh_source']} |",
        "| server CPU s per GiB sent (median) | "
        + ", ".join(f"{name} {cpu}" for name, cpu in t["server_cpu_s_per_gib"].items())
        + " | | |",
    ]
