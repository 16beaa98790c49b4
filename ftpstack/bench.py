"""`make bench`: measured on the local Azure model, peers side by side, medians of interleaved
rounds (these machines are noisy: ±30-40 % between runs of the same transfer).

- throughput: a 512 MiB passive download through the public address, and raw TCP over the very
  same path (DNAT, NSG, conntrack) in the same rounds, read by the same client code;
- login latency: connect + login + PASV + 1-byte RETR + QUIT, for this stack's proftpd, vsftpd
  (same passive range and public address; its binary taken from Debian's .deb, since vsftpd and
  proftpd-core conflict as packages), Debian's stock proftpd.conf with only the passive range,
  the masquerade address and a test user added, and this stack again with the VM's resolver
  silent; logins spaced 500 ms apart, plus this stack's back-to-back p90. proftpd serves the next
  connection only some 0.4 s after the previous session ended (measured here: 155 ms p50 at a
  250 ms spacing, 355 ms at 50 ms, 4 ms at 600 ms; the master's 0.2 s pause after a session
  exits is a compile-time constant, no directive changes it), so medians of spaced logins show
  the per-login cost and the back-to-back p90 shows the pause;
- concurrency: `maxClients` simultaneous transfers, and what client `maxClients + 1` receives.

Writes bench/results.json and prints a markdown table. Needs root (namespaces).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

from ftpstack.localazure import LocalAzure, tmpfs_lines
from ftpstack.plan import PROJECT_DIR, Plan, Secret, plan_stack
from ftpstack.render import FTP_ROOT, VIRTUAL_UID, password_hash

USER, PASSWORD = "alice", "alice-password-1"
VSFTPD_DEB_DIR = PROJECT_DIR / ".cache" / "vsftpd"
RESULTS = PROJECT_DIR / "bench" / "results.json"
SPACING = 0.5  # seconds between spaced logins (see the module docstring)


def _client(az: LocalAzure, code: str, timeout: float = 1800) -> dict[str, Any]:
    """Run client code in the client namespace; it prints one JSON line last."""
    result = az.run(
        az.client,
        sys.executable,
        "-c",
        textwrap.dedent(code),
        env={**os.environ, "PYTHONPATH": str(PROJECT_DIR)},
        timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(f"bench client failed: {result.stderr.strip()[-2000:]}")
    parsed: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return parsed


READER = """
import ftplib, json, socket, time
buf = bytearray(1 << 20)
def drain(sock):
    n = 0
    view = memoryview(buf)
    while True:
        got = sock.recv_into(view)
        if not got:
            return n
        n += got
"""


def throughput(az: LocalAzure, size_mib: int, rounds: int, raw_port: int) -> dict[str, Any]:
    """FTP and raw TCP, interleaved round by round, same client code."""
    size = size_mib * 1024 * 1024
    stage = Path(tempfile.mkdtemp(prefix="ftpstack-bench-", dir="/dev/shm"))
    try:
        blob = stage / "blob.bin"
        chunk = bytes(range(256)) * 4096  # 1 MiB; real pages, not a sparse file: the raw
        with blob.open("wb") as f:  # stream reads this file, FTP reads the uploaded copy
            for _ in range(size_mib):
                f.write(chunk)
        upload = _client(
            az,
            READER
            + f"""
from ftpstack.ftpcheck import connect
ftp = connect({az.public_ip!r}, {USER!r}, {PASSWORD!r}, timeout=120)
with open({str(blob)!r}, "rb") as f:
    reply = ftp.storbinary("STOR blob.bin", f, blocksize=1 << 20)
print(json.dumps({{"reply": reply}}))
""",
        )
        assert upload["reply"].startswith("226"), upload
        server = az.popen(
            az.vm,
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import os, socket
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", {raw_port}))
            s.listen(4)
            while True:
                conn, _ = s.accept()
                with open({str(blob)!r}, "rb") as f:
                    os.sendfile(conn.fileno(), f.fileno(), 0, {size})
                conn.close()
            """),
        )
        try:
            ftp_rates, raw_rates = [], []
            for _ in range(rounds):
                ftp = _client(
                    az,
                    READER
                    + f"""
from ftpstack.ftpcheck import connect, parse_pasv
ftp = connect({az.public_ip!r}, {USER!r}, {PASSWORD!r}, timeout=120)
ftp.voidcmd("TYPE I")
start = time.perf_counter()
conn = ftp.transfercmd("RETR blob.bin")
n = drain(conn)
conn.close()
reply = ftp.voidresp()
elapsed = time.perf_counter() - start
print(json.dumps({{"bytes": n, "seconds": elapsed, "reply": reply}}))
""",
                )
                raw = _client(
                    az,
                    READER
                    + f"""
start = time.perf_counter()
conn = socket.create_connection(({az.public_ip!r}, {raw_port}), timeout=120)
n = drain(conn)
conn.close()
print(json.dumps({{"bytes": n, "seconds": time.perf_counter() - start}}))
""",
                )
                assert ftp["bytes"] == size and raw["bytes"] == size, (ftp, raw)
                ftp_rates.append(size_mib / ftp["seconds"])
                raw_rates.append(size_mib / raw["seconds"])
        finally:
            server.kill()
            server.wait()
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    ftp_mib_s, raw_mib_s = statistics.median(ftp_rates), statistics.median(raw_rates)
    return {
        "size_mib": size_mib,
        "rounds": rounds,
        "ftp_mib_s": round(ftp_mib_s, 1),
        "raw_tcp_mib_s": round(raw_mib_s, 1),
        "ratio": round(ftp_mib_s / raw_mib_s, 3),
        "ftp_samples": [round(r, 1) for r in ftp_rates],
        "raw_samples": [round(r, 1) for r in raw_rates],
    }


def logins(az: LocalAzure, user: str, password: str, count: int, spacing: float) -> list[float]:
    """Milliseconds for connect + login + PASV + 1-byte RETR + QUIT, `count` times."""
    result = _client(
        az,
        f"""
        import ftplib, json, time
        samples = []
        for _ in range({count}):
            start = time.perf_counter()
            ftp = ftplib.FTP({az.public_ip!r}, timeout=60)
            ftp.login({user!r}, {password!r})
            chunks = []
            ftp.retrbinary("RETR one.bin", chunks.append)
            ftp.quit()
            samples.append((time.perf_counter() - start) * 1000)
            assert b"".join(chunks) == b"x"
            time.sleep({spacing})
        print(json.dumps({{"ms": samples}}))
        """,
    )
    samples: list[float] = result["ms"]
    return samples


def _one_byte_file(home: str) -> list[str]:
    return [
        f"install -d -o {VIRTUAL_UID} -g {VIRTUAL_UID} -m 0755 {home}",
        f"printf x > {home}/one.bin && chown {VIRTUAL_UID}:{VIRTUAL_UID} {home}/one.bin",
    ]


def stock_proftpd_script(az: LocalAzure, plan: Plan, stage: Path) -> str:
    """Debian's own proftpd.conf, plus only the passive range, masquerade and a test user."""
    first, last = plan.outputs["passivePortRange"].split("-")
    conf_dir = stage / "etc-proftpd"
    shutil.copytree("/etc/proftpd", conf_dir)
    hashed = password_hash(_settings(plan), "bench", USER, PASSWORD)
    (conf_dir / "ftpd.passwd").write_text(
        f"{USER}:{hashed}:{VIRTUAL_UID}:{VIRTUAL_UID}::{FTP_ROOT}/{USER}:/bin/false\n"
    )
    (conf_dir / "ftpd.passwd").chmod(0o600)
    with (conf_dir / "proftpd.conf").open("a") as conf:
        conf.write(
            f"\nPassivePorts {first} {last}\nMasqueradeAddress {az.public_ip}\n"
            f"AuthUserFile /etc/proftpd/ftpd.passwd\nRequireValidShell off\n"
        )
    return "\n".join(
        [
            "set -e",
            *tmpfs_lines(),
            f"mount --bind {conf_dir} /etc/proftpd",
            "install -d /run/proftpd",
            *_one_byte_file(f"{FTP_ROOT}/{USER}"),
            "exec proftpd -n -q -c /etc/proftpd/proftpd.conf",
        ]
    )


def vsftpd_binary() -> Path:
    binary = VSFTPD_DEB_DIR / "root" / "usr" / "sbin" / "vsftpd"
    if binary.exists():
        return binary
    VSFTPD_DEB_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", "vsftpd"], cwd=VSFTPD_DEB_DIR, check=True)
    deb = next(VSFTPD_DEB_DIR.glob("vsftpd_*.deb"))
    subprocess.run(["dpkg", "-x", str(deb), str(VSFTPD_DEB_DIR / "root")], check=True)
    return binary


def vsftpd_script(az: LocalAzure, plan: Plan, stage: Path) -> str:
    """vsftpd with the same passive range and public address, and the same user and hash."""
    first, last = plan.outputs["passivePortRange"].split("-")
    hashed = password_hash(_settings(plan), "bench", USER, PASSWORD)
    etc = stage / "etc"
    etc.mkdir()
    for name, line in (
        ("passwd", f"{USER}:x:{VIRTUAL_UID}:{VIRTUAL_UID}::{FTP_ROOT}/{USER}:/bin/sh"),
        ("shadow", f"{USER}:{hashed}:20000:0:99999:7:::"),
        ("group", f"ftpvirtual:x:{VIRTUAL_UID}:"),
    ):
        (etc / name).write_text(Path(f"/etc/{name}").read_text() + line + "\n")
    (etc / "shadow").chmod(0o640)
    pam = stage / "pam.d"
    shutil.copytree("/etc/pam.d", pam)
    (pam / "vsftpd").write_text(
        "auth required pam_unix.so\naccount required pam_unix.so\nsession optional pam_unix.so\n"
    )
    conf = stage / "vsftpd.conf"
    conf.write_text(
        "\n".join(
            [
                "listen=YES",
                "listen_ipv6=NO",
                "background=NO",
                "anonymous_enable=NO",
                "local_enable=YES",
                "write_enable=YES",
                "chroot_local_user=YES",
                "allow_writeable_chroot=YES",
                "pasv_enable=YES",
                f"pasv_min_port={first}",
                f"pasv_max_port={last}",
                f"pasv_address={az.public_ip}",
                "pam_service_name=vsftpd",
                "secure_chroot_dir=/run/vsftpd/empty",
                "",
            ]
        )
    )
    return "\n".join(
        [
            "set -e",
            *tmpfs_lines(),
            *(f"mount --bind {etc}/{n} /etc/{n}" for n in ("passwd", "shadow", "group")),
            f"mount --bind {pam} /etc/pam.d",
            "install -d -m 0755 /run/vsftpd/empty",
            *_one_byte_file(f"{FTP_ROOT}/{USER}"),
            f"exec {vsftpd_binary()} {conf}",
        ]
    )


def _settings(plan: Plan) -> Any:
    from ftpstack.config import settings_from_config
    from ftpstack.plan import stack_config

    config, secret = stack_config(plan.stack, overrides=_OVERRIDES)
    return settings_from_config(config, lambda key: key in secret)


def _percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


_OVERRIDES: dict[str, Any] = {
    "users": Secret([{"name": USER, "password": PASSWORD}]),
    "tls": "off",
}


def login_latency(models: dict[str, LocalAzure], count: int) -> dict[str, Any]:
    """Contenders interleaved in rounds, each on its own model (one server per port 21)."""
    samples: dict[str, list[float]] = {name: [] for name in models}
    bursts: list[float] = []
    rounds = 5
    for _ in range(rounds):
        for name, az in models.items():
            # Every contender the same number of samples (stock proftpd's ~2 s PAM failure per
            # login makes its share take about two minutes).
            samples[name] += logins(az, USER, PASSWORD, count // rounds, SPACING)
        bursts += logins(models["ftpstack"], USER, PASSWORD, count // rounds, 0)
    results: dict[str, Any] = {}
    for name, values in samples.items():
        results[f"{name}_p50"] = round(statistics.median(values), 2)
        results[f"{name}_n"] = len(values)
    results["ftpstack_burst_p90"] = round(_percentile(bursts, 0.9), 2)
    return results


def concurrency(az: LocalAzure, clients: int) -> dict[str, Any]:
    """`clients` simultaneous downloads of the 512 MiB file's first 64 MiB, then one more login."""
    result = _client(
        az,
        READER
        + f"""
import threading
from ftpstack.ftpcheck import connect
results, ready = [], threading.Barrier({clients} + 1)
def one():
    try:
        ftp = connect({az.public_ip!r}, {USER!r}, {PASSWORD!r}, timeout=120)
        ftp.voidcmd("TYPE I")
        conn = ftp.transfercmd("RETR blob.bin")
        ready.wait()
        n = 0
        view = memoryview(buf := bytearray(1 << 20))
        while n < 64 << 20 and (got := conn.recv_into(view)):
            n += got
        conn.close()
        results.append(n)
        ftp.close()
    except Exception as error:
        results.append(repr(error))
        ready.abort()
threads = [threading.Thread(target=one) for _ in range({clients})]
for t in threads:
    t.start()
ready.wait()
start = time.perf_counter()
extra_start = time.perf_counter()
try:
    extra = ftplib.FTP({az.public_ip!r}, timeout=30)
    extra.login({USER!r}, {PASSWORD!r})
    extra_reply = "logged in"
except ftplib.Error as error:
    extra_reply = str(error)
extra_ms = (time.perf_counter() - extra_start) * 1000
for t in threads:
    t.join()
elapsed = time.perf_counter() - start
ok = [r for r in results if isinstance(r, int) and r >= 64 << 20]
errors = [r for r in results if not isinstance(r, int)]
print(json.dumps({{"succeeded": len(ok), "aggregate_mib_s": len(ok) * 64 / elapsed,
                  "refusal": extra_reply, "refused_ms": extra_ms, "errors": errors}}))
""",
    )
    return {
        "clients": clients,
        "succeeded": result["succeeded"],
        "aggregate_mib_s": round(result["aggregate_mib_s"], 1),
        "next_client_reply": result["refusal"],
        "refused_ms": round(result["refused_ms"], 1),
        "errors": result["errors"],
    }


TARGETS = {
    "throughput ratio >= 0.9": lambda r: r["throughput"]["ratio"] >= 0.9,
    "ftpstack login p50 <= vsftpd p50": lambda r: (
        r["login_ms"]["ftpstack_p50"] <= r["login_ms"]["vsftpd_p50"]
    ),
    ">= 100x faster than stock proftpd p50": lambda r: (
        r["login_ms"]["stock_proftpd_p50"] >= 100 * r["login_ms"]["ftpstack_p50"]
    ),
    "DNS-down p50 <= 1.2 x normal": lambda r: (
        r["login_ms"]["ftpstack_dns_down_p50"] <= 1.2 * r["login_ms"]["ftpstack_p50"]
    ),
    "all maxClients transfers succeed": lambda r: (
        r["concurrency"]["succeeded"] == r["concurrency"]["clients"]
    ),
    "next client refused in < 1 s": lambda r: (
        r["concurrency"]["refused_ms"] < 1000
        and r["concurrency"]["next_client_reply"][:3] in {"421", "530"}
    ),
}


def table(results: dict[str, Any]) -> str:
    t, login, c = results["throughput"], results["login_ms"], results["concurrency"]
    rows = [
        "| measure | ftpstack | peer | note |",
        "|---|---|---|---|",
        f"| 512 MiB passive download, MiB/s | {t['ftp_mib_s']} | raw TCP {t['raw_tcp_mib_s']} "
        f"| ratio {t['ratio']} (median of {t['rounds']} interleaved rounds) |",
        f"| login + PASV + 1-byte RETR, p50 ms | {login['ftpstack_p50']} | vsftpd "
        f"{login['vsftpd_p50']} | stock proftpd {login['stock_proftpd_p50']} |",
        f"| same, resolver silent, p50 ms | {login['ftpstack_dns_down_p50']} | | |",
        f"| same, back to back, p90 ms | {login['ftpstack_burst_p90']} | | |",
        f"| {c['clients']} simultaneous transfers | {c['succeeded']} succeeded, "
        f"{c['aggregate_mib_s']} MiB/s | | next client: {c['next_client_reply'][:40]!r} "
        f"in {c['refused_ms']} ms |",
        "",
        "| target | met |",
        "|---|---|",
        *(f"| {name} | {'yes' if ok else 'NO'} |" for name, ok in results["targets"].items()),
    ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--logins", type=int, default=50)
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes")
    args = parser.parse_args(argv)
    plan = plan_stack("dev", overrides=_OVERRIDES)
    max_clients = int(_settings(plan).max_clients)
    first, last = (int(p) for p in plan.outputs["passivePortRange"].split("-"))
    with tempfile.TemporaryDirectory(prefix="ftpstack-bench-") as tmp:
        stage = Path(tmp)
        stage.chmod(0o755)
        with (
            LocalAzure(plan) as az,
            LocalAzure(plan, silent_resolver=True) as dns_down,
            LocalAzure(plan, serve=False) as vs,
            LocalAzure(plan, serve=False) as stock,
        ):
            servers = []
            try:
                for model, script, name in (
                    (vs, vsftpd_script, "vsftpd"),
                    (stock, stock_proftpd_script, "stock_proftpd"),
                ):
                    sub = stage / name
                    sub.mkdir()
                    sub.chmod(0o755)
                    servers.append(model.start_in_vm(script(model, plan, sub), sub / "log"))
                print("throughput ...", file=sys.stderr)
                results: dict[str, Any] = {
                    "throughput": throughput(az, args.size_mib, args.rounds, last)
                }
                print("login latency ...", file=sys.stderr)
                for model in (az, dns_down):
                    _client(
                        model,
                        f"""
                        import io, json
                        from ftpstack.ftpcheck import connect
                        ftp = connect({model.public_ip!r}, {USER!r}, {PASSWORD!r})
                        print(json.dumps({{"r": ftp.storbinary("STOR one.bin", io.BytesIO(b"x"))}}))
                        """,
                    )
                login = login_latency(
                    {"ftpstack": az, "vsftpd": vs, "stock_proftpd": stock}, args.logins
                )
                login["ftpstack_dns_down_p50"] = round(
                    statistics.median(logins(dns_down, USER, PASSWORD, args.logins, SPACING)), 2
                )
                results["login_ms"] = login
                print("concurrency ...", file=sys.stderr)
                results["concurrency"] = concurrency(az, max_clients)
            finally:
                for server in servers:
                    server.kill()
                    server.wait()
    results["passive_range"] = f"{first}-{last}"
    results["targets"] = {name: bool(check(results)) for name, check in TARGETS.items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    return 0 if all(results["targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
