"""L3: the declared stack serving FTP through a local stand-in for Azure's network.

Everything the router enforces (DNAT of the public IP, NSG rules in priority order, the idle
timeout) and everything the VM runs (proftpd.conf, users file, sysctl.d) comes from the plan —
what the program declares — via `ftpstack.localazure`. Times are scaled by 1/30 (the 240 s idle
timeout becomes 8 s, keepalive 60 s/30 s becomes 2 s/1 s), which keeps the deciding ratios.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from ftpstack.ftpcheck import parse_epsv, parse_pasv
from ftpstack.localazure import Declared, LocalAzure
from ftpstack.plan import Plan, Secret, plan_stack
from tests.conftest import needs_root

pytestmark = pytest.mark.l3

SCALE = 1 / 30
USER, PASSWORD = "alice", "alice-password-1"
USERS = Secret([{"name": USER, "password": PASSWORD}])
REPO = Path(__file__).resolve().parent.parent
BIG = 8 * 1024 * 1024


def dev_plan(**overrides: object) -> Plan:
    return plan_stack("dev", overrides={"users": USERS, "tls": "off", **overrides})


def prod_plan(**overrides: object) -> Plan:
    # prod's own TLS and data disk are covered at L2/L4; here: its load balancer and CIDRs.
    return plan_stack(
        "prod", overrides={"users": USERS, "tls": "off", "dataDiskSizeGb": 0, **overrides}
    )


def model(plan: Plan, **kw: object) -> Iterator[LocalAzure]:
    needs_root()
    with LocalAzure(plan, time_scale=SCALE, **kw) as az:  # type: ignore[arg-type]
        yield az


@pytest.fixture(scope="module")
def dev() -> Iterator[LocalAzure]:
    yield from model(dev_plan())


@pytest.fixture(scope="module")
def lb() -> Iterator[LocalAzure]:
    yield from model(prod_plan())


def client_python(az: LocalAzure, code: str, ns: str | None = None, timeout: float = 180) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = az.run(
        ns or az.client, sys.executable, "-c", textwrap.dedent(code), env=env, timeout=timeout
    )
    return result.stdout + result.stderr


def passive_range(plan: Plan) -> range:
    first, last = (int(p) for p in plan.outputs["passivePortRange"].split("-"))
    return range(first, last + 1)


def upload_big(az: LocalAzure, name: str = "big.bin", tls: bool = False) -> str:
    """Upload BIG random bytes through the public address; return their sha256."""
    out = client_python(
        az,
        f"""
        import hashlib, io, os
        from ftpstack.ftpcheck import Tls, connect
        data = os.urandom({BIG})
        tls = Tls(verify=False) if {tls} else None
        ftp = connect({az.public_ip!r}, {USER!r}, {PASSWORD!r}, timeout=30, tls=tls)
        print("UP", ftp.storbinary("STOR {name}", io.BytesIO(data)))
        print("SHA", hashlib.sha256(data).hexdigest())
        ftp.quit()
        """,
    )
    assert "UP 226" in out, out
    return re.search(r"SHA (\w+)", out).group(1)  # type: ignore[union-attr]


# -- 1. passive transfers through the public address -------------------------------------------


def round_trip_with_every_client(az: LocalAzure, plan: Plan, tmp_path: Path) -> None:
    sha = upload_big(az)
    out = client_python(
        az,
        f"""
        from ftpstack.ftpcheck import connect
        ftp = connect({az.public_ip!r}, {USER!r}, {PASSWORD!r})
        for _ in range(3):
            print(ftp.sendcmd("PASV"))
            print(ftp.sendcmd("EPSV"))
        """,
    )
    pasv = [parse_pasv(line) for line in out.splitlines() if line.startswith("227")]
    epsv = [parse_epsv(line) for line in out.splitlines() if line.startswith("229")]
    assert len(pasv) == 3 and len(epsv) == 3, out
    assert {p.host for p in pasv} == {az.public_ip}
    assert all(p.port in passive_range(plan) for p in pasv)
    assert all(port in passive_range(plan) for port in epsv)
    tmp_path.chmod(0o755)
    url = f"ftp://{az.public_ip}/big.bin"
    curl = tmp_path / "curl.bin"
    result = az.run(az.client, "curl", "-sS", "--user", f"{USER}:{PASSWORD}", "-o", str(curl), url)
    assert result.returncode == 0, result.stderr
    assert hashlib.sha256(curl.read_bytes()).hexdigest() == sha
    lftp = tmp_path / "lftp.bin"
    script = f"set ftp:ssl-allow no; set net:max-retries 1; get big.bin -o {lftp}; bye"
    result = az.run(az.client, "lftp", "-u", f"{USER},{PASSWORD}", "-e", script, az.public_ip)
    assert result.returncode == 0, result.stderr
    assert hashlib.sha256(lftp.read_bytes()).hexdigest() == sha
    result = az.run(
        az.client, "curl", "-sS", "--user", f"{USER}:{PASSWORD}", "-T", str(curl), f"{url}.copy"
    )
    assert result.returncode == 0, result.stderr


def test_passive_transfers_through_the_public_ip(dev: LocalAzure, tmp_path: Path) -> None:
    round_trip_with_every_client(dev, dev.plan, tmp_path)


def test_passive_transfers_through_the_load_balancer(lb: LocalAzure, tmp_path: Path) -> None:
    round_trip_with_every_client(lb, lb.plan, tmp_path)


# -- 2. what the NSG does not open is unreachable -----------------------------------------------


def reach(az: LocalAzure, ns: str, port: int) -> str:
    """ "open", "refused" (reached the VM, nothing listens) or "silent" (dropped on the way)."""
    out = client_python(
        az,
        f"""
        import socket
        s = socket.socket()
        s.settimeout(1.5)
        try:
            s.connect(({az.public_ip!r}, {port}))
            print("open")
        except ConnectionRefusedError:
            print("refused")
        except (TimeoutError, socket.timeout):
            print("silent")
        """,
        ns=ns,
    )
    return out.strip().splitlines()[-1]


def test_only_the_declared_ports_are_reachable(dev: LocalAzure) -> None:
    last = passive_range(dev.plan)[-1]
    assert reach(dev, dev.client, 21) == "open"
    assert reach(dev, dev.client, 22) == "silent", "SSH is closed without sshSourceCidrs"
    assert reach(dev, dev.client, last + 1) == "silent", "just outside the passive range"
    assert reach(dev, dev.client, last) == "refused", "inside the range: reaches the VM"


def test_ssh_opens_for_its_cidr_only() -> None:
    plan = dev_plan(sshSourceCidrs=["203.0.113.0/24"])
    for az in model(plan):
        assert reach(az, az.client, 22) == "refused", "let through to the VM (nothing listens)"
        assert reach(az, az.outsider, 22) == "silent"


def test_a_client_outside_the_ftp_cidrs_is_refused(lb: LocalAzure) -> None:
    assert reach(lb, lb.client, 21) == "open"
    assert reach(lb, lb.outsider, 21) == "silent"
    assert reach(lb, lb.client, 22) == "silent", "no LB rule for 22"


# -- 3. the seed's failure: a long transfer with an idle control connection ---------------------


def slow_download(az: LocalAzure, sha: str, tls: bool = False) -> str:
    """RETR paced to last ~3.5 x the idle timeout, control connection idle meanwhile."""
    seconds = 3.5 * az.idle_timeout
    rate = BIG / seconds
    out = client_python(
        az,
        f"""
        import ftplib, hashlib, socket, time
        from ftpstack.ftpcheck import Tls, connect
        tls = Tls(verify=False) if {tls} else None
        wait = {2 * az.idle_timeout}
        ftp = connect({az.public_ip!r}, {USER!r}, {PASSWORD!r}, timeout=wait, tls=tls)
        ftp.voidcmd("TYPE I")
        started = time.monotonic()
        conn = ftp.transfercmd("RETR big.bin")
        digest, n = hashlib.sha256(), 0
        while chunk := conn.recv(65536):
            digest.update(chunk)
            n += len(chunk)
            ahead = n / {rate} - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        if hasattr(conn, "unwrap"):
            conn.unwrap()  # TLS close_notify, as ftplib does
        conn.close()
        print("DATA", digest.hexdigest() == {sha!r}, n, round(time.monotonic() - started, 1))
        try:
            print("REPLY", ftp.voidresp())
        except (TimeoutError, socket.timeout, OSError, EOFError, ftplib.Error) as error:
            print("NO-226", type(error).__name__, error)
        """,
        timeout=seconds * 3 + 60,
    )
    data = re.search(r"DATA (\w+) (\d+) ([\d.]+)", out)
    assert data, out
    assert data.group(1) == "True" and int(data.group(2)) == BIG, "the data itself is intact"
    assert float(data.group(3)) >= 3 * az.idle_timeout, "the transfer outlasted the timeout"
    return out


def test_long_transfer_completes_with_the_stack_configuration(dev: LocalAzure) -> None:
    out = slow_download(dev, upload_big(dev))
    assert "REPLY 226" in out, out


def test_long_transfer_completes_through_the_load_balancer(lb: LocalAzure) -> None:
    out = slow_download(lb, upload_big(lb))
    assert "REPLY 226" in out, out


def without_keepalive(conf: str) -> str:
    return re.sub(r"^SocketOptions.*$", "", conf, flags=re.MULTILINE)


def late_keepalive(conf: str) -> str:
    # Keepalive idle 300 s (10 s scaled): above the 240 s idle timeout.
    return re.sub(r"keepalive \d+:(\d+):(\d+)", r"keepalive 300:\1:\2", conf)


@pytest.mark.parametrize(
    ("edit", "sysctl"),
    [(without_keepalive, False), (late_keepalive, True)],
    ids=["no-keepalive-kernel-default", "keepalive-idle-above-timeout"],
)
def test_negative_control_the_226_is_lost(edit: object, sysctl: bool) -> None:
    for az in model(dev_plan(), conf_edit=edit, apply_sysctl=sysctl):
        out = slow_download(az, upload_big(az))
        assert "NO-226" in out and "REPLY 226" not in out, out


# -- 4. passive-range saturation --------------------------------------------------------------


def test_max_clients_transfer_and_the_next_is_refused_fast() -> None:
    plan = dev_plan(passivePortStart=50000, passivePortEnd=50005, maxClients=3)
    for az in model(plan):
        upload_big(az)
        holders = [
            az.popen(
                az.client,
                sys.executable,
                "-c",
                textwrap.dedent(f"""
                import ftplib, sys, time
                ftp = ftplib.FTP({az.public_ip!r}, timeout=30)
                ftp.login({USER!r}, {PASSWORD!r})
                print(ftp.sendcmd("PASV"), flush=True)
                ftp.voidcmd("TYPE I")
                conn = ftp.transfercmd("RETR big.bin")
                n = 0
                while chunk := conn.recv(65536):
                    n += len(chunk)
                    if n < 4 * 1024 * 1024:
                        time.sleep(0.05)
                conn.close()
                print("DONE", n, ftp.voidresp(), flush=True)
                """),
                stdout=subprocess.PIPE,
                env={**os.environ, "PYTHONPATH": str(REPO)},
            )
            for _ in range(3)
        ]
        try:
            pasv = [parse_pasv(h.stdout.readline()) for h in holders]  # type: ignore[union-attr]
            assert all(p.port in passive_range(plan) for p in pasv)
            out = client_python(
                az,
                f"""
                import ftplib, time
                started = time.monotonic()
                ftp = ftplib.FTP({az.public_ip!r}, timeout=10)
                try:
                    ftp.login({USER!r}, {PASSWORD!r})
                    print("LOGGED IN")
                except ftplib.Error as error:
                    print("REFUSED", error)
                print("ELAPSED", time.monotonic() - started)
                """,
            )
            assert re.search(r"REFUSED (421|530)", out), out
            elapsed = float(re.search(r"ELAPSED ([\d.]+)", out).group(1))  # type: ignore[union-attr]
            assert elapsed < 1, f"refused after {elapsed:.2f} s, not at once"
            results = [h.communicate(timeout=120)[0] for h in holders]
            assert all(f"DONE {BIG} 226" in r for r in results), results
        finally:
            for h in holders:
                h.kill()
                h.wait()


# -- the post-deploy smoke check against the model (issue: delivery) ---------------------------


def smoke(az: LocalAzure) -> subprocess.CompletedProcess[str]:
    first, last = az.plan.outputs["passivePortRange"].split("-")
    env = {**os.environ, "PYTHONPATH": str(REPO), "FTP_PASSWORD": PASSWORD}
    return az.run(
        az.client, sys.executable, "-m", "ftpstack.ftpcheck",
        "--host", az.public_ip, "--user", USER, "--timeout", "3",
        "--expect-public-ip", az.public_ip, "--expect-passive-range", f"{first}-{last}",
        env=env,
    )  # fmt: skip


def test_smoke_check_passes_on_the_declared_stack(dev: LocalAzure) -> None:
    result = smoke(dev)
    assert result.returncode == 0 and "OK" in result.stdout, result.stdout + result.stderr


def test_smoke_check_fails_clearly_on_a_wrong_masquerade_address() -> None:
    def wrong(conf: str) -> str:
        return re.sub(r"^MasqueradeAddress.*$", "MasqueradeAddress 198.51.100.99", conf, flags=re.M)

    for az in model(dev_plan(), conf_edit=wrong):
        result = smoke(az)
        assert result.returncode == 1
        assert "PASV names 198.51.100.99, not the public IP" in result.stderr, result.stderr


def test_smoke_check_fails_clearly_when_the_passive_range_is_not_open() -> None:
    def close_passive(declared: Declared) -> Declared:
        kept = tuple(r for r in declared.nsg if not (r.allow and r.ports and r.ports[0] > 1024))
        return dataclasses.replace(declared, nsg=kept)

    for az in model(dev_plan(), declared_edit=close_passive):
        result = smoke(az)
        assert result.returncode == 1
        assert "is the passive range open in the NSG" in result.stderr, result.stderr


# -- FTPS through the public address (issue: production) ---------------------------------------


@pytest.fixture(scope="module")
def ftps() -> Iterator[LocalAzure]:
    yield from model(dev_plan(tls="required"))


def test_ftps_through_the_public_address(ftps: LocalAzure, tmp_path: Path) -> None:
    sha = upload_big(ftps, tls=True)
    out = client_python(
        ftps,
        f"""
        from ftpstack.ftpcheck import Tls, connect
        ftp = connect({ftps.public_ip!r}, {USER!r}, {PASSWORD!r}, tls=Tls(verify=False))
        print(ftp.sendcmd("PASV"))
        """,
    )
    passive = parse_pasv(out)
    assert passive.host == ftps.public_ip and passive.port in passive_range(ftps.plan), out
    tmp_path.chmod(0o755)
    back = tmp_path / "curl.bin"
    # Certificate trust is tested at L2; here, that encrypted passive mode crosses the NAT.
    result = ftps.run(
        ftps.client, "curl", "-sS", "--ssl-reqd", "--insecure", "--user", f"{USER}:{PASSWORD}",
        "-o", str(back), f"ftp://{ftps.public_ip}/big.bin",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert hashlib.sha256(back.read_bytes()).hexdigest() == sha
    lftp = tmp_path / "lftp.bin"
    script = (
        "set ftp:ssl-force yes; set ftp:ssl-protect-data yes; set ssl:verify-certificate no; "
        f"set net:max-retries 1; get big.bin -o {lftp}; bye"
    )
    result = ftps.run(ftps.client, "lftp", "-u", f"{USER},{PASSWORD}", "-e", script, ftps.public_ip)
    assert result.returncode == 0, result.stderr
    assert hashlib.sha256(lftp.read_bytes()).hexdigest() == sha


def test_long_ftps_transfer_completes(ftps: LocalAzure) -> None:
    out = slow_download(ftps, upload_big(ftps, tls=True), tls=True)
    assert "REPLY 226" in out, out


# -- the benchmark harness itself (figures are measured by `make bench`, not asserted here) ----


def test_bench_runs_and_writes_every_key(tmp_path: Path) -> None:
    needs_root()
    out = tmp_path / "results.json"
    result = subprocess.run(
        [sys.executable, "-m", "ftpstack.bench", "--size-mib", "8", "--rounds", "1",
         "--logins", "5", "--out", str(out)],
        capture_output=True, text=True, timeout=600, cwd=REPO, check=False,
    )  # fmt: skip
    assert result.returncode in (0, 1), result.stderr[-2000:]
    import json

    results = json.loads(out.read_text())
    for section, keys in {
        "throughput": ("ftp_mib_s", "raw_tcp_mib_s", "ratio"),
        "login_ms": (
            "ftpstack_p50", "vsftpd_p50", "stock_proftpd_p50", "ftpstack_dns_down_p50",
            "ftpstack_burst_p90",
        ),
        "concurrency": ("clients", "succeeded", "refused_ms"),
    }.items():  # fmt: skip
        for key in keys:
            assert isinstance(results[section][key], (int, float)), (section, key)
    assert "| target | met |" in result.stdout
