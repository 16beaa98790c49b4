"""L2: real tools on the rendered files — cloud-init's schema, proftpd's configtest, and a real
proftpd serving real FTP clients (ftplib, curl, lftp) with the rendered configuration.

The server runs in a network namespace of this test's own, with the stack's public address on
its loopback: clients there connect to the public address as customers would, and nothing ever
leaves the namespace. proftpd runs in the foreground with an absolute `-c` path; only the file
locations are moved under a temporary directory (nothing is written under the machine's /etc,
/var or /run); every directive that decides behaviour is the rendered one.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from ftpstack import render
from ftpstack.ftpcheck import parse_epsv, parse_pasv
from ftpstack.localazure import end_process
from ftpstack.plan import Plan, Secret, plan_stack
from tests.conftest import needs_root

pytestmark = pytest.mark.l2

USER, PASSWORD = "alice", "alice-password-1"
OVERRIDES = {"users": Secret([{"name": USER, "password": PASSWORD}])}
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def plan() -> Plan:
    return plan_stack("dev", overrides=OVERRIDES)


def write_files(plan: Plan) -> dict[str, str]:
    """The user-data's write_files, path -> content: exactly what cloud-init writes."""
    document = yaml.safe_load(plan.user_data)
    return {entry["path"]: entry["content"] for entry in document["write_files"]}


# -- cloud-init --------------------------------------------------------------------------------


def cloud_init_schema(text: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    path = tmp / "user-data"
    path.write_text(text)
    return subprocess.run(
        ["cloud-init", "schema", "--config-file", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_user_data_passes_cloud_init_schema(plan: Plan, tmp_path: Path) -> None:
    result = cloud_init_schema(plan.user_data, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid cloud-config" in result.stdout


def test_cloud_init_schema_rejects_a_broken_user_data(plan: Plan, tmp_path: Path) -> None:
    """Negative control: the schema check really reads the file."""
    broken = plan.user_data.replace("- path: /etc/proftpd/proftpd.conf", "- path: 42")
    broken = broken.replace("runcmd:", "runcmd: 7\nunused:")
    result = cloud_init_schema(broken, tmp_path)
    assert result.returncode != 0


# -- proftpd, relocated under a temporary root -------------------------------------------------


# Where the rendered files put state, logs, keys and data: moved under a temporary root.
_MOVED = re.compile(r"(?<![\w/.-])(/(?:run|var/log|etc/proftpd|srv/ftp)\b[^\s>\":]*)")


def relocate(text: str, root: Path) -> str:
    """Move only file locations under `root`; every other directive stays as rendered."""
    return (
        "\n".join(
            line
            if line.lstrip().startswith("#")
            else _MOVED.sub(lambda m: f"{root}{m.group(1)}", line)
            for line in text.splitlines()
        )
        + "\n"
    )


@dataclass
class ServerFiles:
    root: Path
    conf: Path
    sysctl: Path


# runcmd steps that change the machine itself; the namespace and the test stand in for them.
_MACHINE_STEPS = ("sysctl", "getent", "systemctl")


def install_files(plan: Plan, root: Path, conf_text: str | None = None) -> ServerFiles:
    """Do what cloud-init would, under `root`: write the files, run the setup commands."""
    document = yaml.safe_load(plan.user_data)
    root.chmod(0o755)
    for sub in ("run", "var/log/proftpd", "srv/ftp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for entry in document["write_files"]:
        content = entry["content"]
        if entry["path"] == render.PROFTPD_CONF and conf_text is not None:
            content = conf_text
        target = root / entry["path"].lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(relocate(content, root))
        target.chmod(int(entry["permissions"], 8))
    for step in document["runcmd"]:
        argv = step.split() if isinstance(step, str) else step
        if argv[0] in _MACHINE_STEPS:
            continue
        if isinstance(step, str):
            subprocess.run(["sh", "-c", relocate(step, root)], check=True)
        else:
            subprocess.run([relocate(arg, root).strip() for arg in step], check=True)
    conf = root / render.PROFTPD_CONF.lstrip("/")
    return ServerFiles(root, conf, root / render.SYSCTL_FILE.lstrip("/"))


def test_rendered_config_passes_proftpd_configtest(plan: Plan) -> None:
    needs_root()
    with tempfile.TemporaryDirectory(prefix="ftpstack-l2-") as tmp:
        files = install_files(plan, Path(tmp))
        result = subprocess.run(
            ["proftpd", "--configtest", "-c", str(files.conf)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "masquerading as 198.51.100.10" in result.stderr


def test_configtest_rejects_a_broken_config(plan: Plan) -> None:
    """Negative control: configtest fails on a directive proftpd does not know."""
    needs_root()
    with tempfile.TemporaryDirectory(prefix="ftpstack-l2-") as tmp:
        conf = write_files(plan)[render.PROFTPD_CONF] + "\nPassivePortz 1 2\n"
        files = install_files(plan, Path(tmp), conf)
        result = subprocess.run(
            ["proftpd", "--configtest", "-c", str(files.conf)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode != 0


# -- a running server in a namespace of our own ------------------------------------------------


@dataclass
class Server:
    netns: str
    public_ip: str
    files: ServerFiles

    def run(
        self, *argv: str, timeout: float = 60, **kw: object
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.netns, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **kw,  # type: ignore[arg-type]
        )

    def python(self, code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        return self.run(sys.executable, "-c", code, timeout=timeout, env=env)


def _wait_listening(netns: str, port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"proftpd exited: {log.read_text() if log.exists() else ''}")
        out = subprocess.run(
            ["ip", "netns", "exec", netns, "ss", "-Htln", f"sport = :{port}"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        if out.strip():
            return
        time.sleep(0.1)
    raise AssertionError("proftpd did not listen within 15 s")


def start_server(
    plan: Plan, conf_text: str | None = None, apply_sysctl: bool = True
) -> Iterator[Server]:
    needs_root()
    netns = f"ftpstack-l2-{os.getpid()}-{int(time.monotonic() * 1000) % 100000}"
    public_ip = plan.outputs["publicIp"]
    tmp = Path(tempfile.mkdtemp(prefix="ftpstack-l2-"))
    proc: subprocess.Popen[bytes] | None = None
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
        subprocess.run(
            ["ip", "-n", netns, "addr", "add", f"{public_ip}/32", "dev", "lo"], check=True
        )
        files = install_files(plan, tmp, conf_text)
        if apply_sysctl:
            # tcp_keepalive_* are per network namespace; a new one starts at the 7200 s default.
            subprocess.run(
                ["ip", "netns", "exec", netns, "sysctl", "-q", "-p", str(files.sysctl)], check=True
            )
        log = tmp / "proftpd.stderr"
        with log.open("wb") as err:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", netns, "proftpd", "-n", "-q", "-c", str(files.conf)],
                stdout=err,
                stderr=err,
            )
        _wait_listening(netns, 21, proc, log)
        yield Server(netns, public_ip, files)
    finally:
        if proc is not None:
            end_process(proc)
        subprocess.run(["ip", "netns", "del", netns], check=False)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def server(plan: Plan) -> Iterator[Server]:
    yield from start_server(plan)


def passive_range(plan: Plan) -> range:
    first, last = (int(p) for p in plan.outputs["passivePortRange"].split("-"))
    return range(first, last + 1)


def ftpcheck(
    server: Server, *args: str, password: str = PASSWORD
) -> subprocess.CompletedProcess[str]:
    """`python -m ftpstack.ftpcheck --host <public address> ...` inside the namespace."""
    env = {**os.environ, "FTP_PASSWORD": password, "PYTHONPATH": str(REPO)}
    return server.run(
        sys.executable, "-m", "ftpstack.ftpcheck", "--host", server.public_ip, *args, env=env
    )


def test_ftplib_smoke_through_the_public_address(server: Server, plan: Plan) -> None:
    first, last = plan.outputs["passivePortRange"].split("-")
    result = ftpcheck(
        server,
        "--user", USER,
        "--expect-public-ip", server.public_ip,
        "--expect-passive-range", f"{first}-{last}",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout


def test_pasv_and_epsv_replies_name_the_public_address_and_a_port_in_range(
    server: Server, plan: Plan
) -> None:
    code = f"""
from ftpstack.ftpcheck import connect
ftp = connect({server.public_ip!r}, {USER!r}, {PASSWORD!r})
for _ in range(5):
    print(ftp.sendcmd("PASV"))
    print(ftp.sendcmd("EPSV"))
ftp.quit()
"""
    result = server.python(code)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    pasv = [parse_pasv(line) for line in lines if line.startswith("227")]
    epsv = [parse_epsv(line) for line in lines if line.startswith("229")]
    assert len(pasv) == 5 and len(epsv) == 5
    ports = passive_range(plan)
    assert all(p.host == plan.outputs["publicIp"] for p in pasv)
    assert all(p.port in ports for p in pasv)
    assert all(port in ports for port in epsv)


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    path = tmp_path / "payload.bin"
    path.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    path.chmod(0o644)
    tmp_path.chmod(0o755)
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_curl_uploads_and_downloads_in_passive_mode(
    server: Server, payload: Path, tmp_path: Path
) -> None:
    url = f"ftp://{server.public_ip}/curl.bin"
    auth = f"{USER}:{PASSWORD}"
    up = server.run("curl", "-sS", "--ftp-pasv", "--user", auth, "-T", str(payload), url)
    assert up.returncode == 0, up.stderr
    back = tmp_path / "back.bin"
    down = server.run("curl", "-sS", "--ftp-pasv", "--user", auth, "-o", str(back), url)
    assert down.returncode == 0, down.stderr
    assert sha256(back) == sha256(payload)
    listing = server.run("curl", "-sS", "--ftp-pasv", "--user", auth, f"ftp://{server.public_ip}/")
    assert "curl.bin" in listing.stdout


def test_lftp_uploads_and_downloads_in_passive_mode(
    server: Server, payload: Path, tmp_path: Path
) -> None:
    back = tmp_path / "lftp-back.bin"
    script = (
        "set ftp:ssl-allow no; set ftp:passive-mode on; set ftp:prefer-epsv no; "
        "set net:max-retries 1; "
        f"put {payload} -o lftp.bin; get lftp.bin -o {back}; cls -1; bye"
    )
    result = server.run("lftp", "-u", f"{USER},{PASSWORD}", "-e", script, server.public_ip)
    assert result.returncode == 0, result.stderr
    assert "lftp.bin" in result.stdout
    assert sha256(back) == sha256(payload)


def test_a_wrong_password_is_refused(server: Server) -> None:
    code = f"""
import ftplib
ftp = ftplib.FTP({server.public_ip!r}, timeout=10)
try:
    ftp.login({USER!r}, "not-the-password")
except ftplib.error_perm as e:
    print("refused", e)
"""
    result = server.python(code)
    assert "refused 530" in result.stdout, result.stdout + result.stderr


def test_user_is_jailed_to_home(server: Server) -> None:
    code = f"""
from ftpstack.ftpcheck import connect
ftp = connect({server.public_ip!r}, {USER!r}, {PASSWORD!r})
print("pwd", ftp.pwd())
ftp.cwd("/..")
print("after", ftp.pwd())
"""
    result = server.python(code)
    assert "pwd /" in result.stdout and "after /" in result.stdout, result.stdout + result.stderr


# -- keepalive on the control socket -----------------------------------------------------------

_TIMER = re.compile(r"timer:\(keepalive,(?:(\d+)min)?(?:(\d+)(?:\.\d+)?sec)?,\d+\)")


def control_keepalive_seconds(server: Server) -> float | None:
    """Open a control connection and read the server side's keepalive timer back with `ss -o`."""
    hold = subprocess.Popen(
        [
            "ip", "netns", "exec", server.netns, sys.executable, "-c",
            f"import ftplib, sys, time\n"
            f"f = ftplib.FTP({server.public_ip!r}, timeout=30)\n"
            f"f.login({USER!r}, {PASSWORD!r})\n"
            f"print('ready', flush=True)\n"
            f"sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert hold.stdout is not None and hold.stdout.readline().strip() == "ready"
        # Right after login the socket may still show its retransmit timer; the keepalive
        # timer is armed once the last reply is acknowledged.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            out = server.run("ss", "-Htno", "state", "established", "( sport = :21 )").stdout
            match = _TIMER.search(out)
            if match:
                minutes, seconds = match.groups()
                return int(minutes or 0) * 60 + int(seconds or 0)
            time.sleep(0.2)
        return None
    finally:
        hold.kill()
        hold.wait()


def test_control_socket_has_the_configured_keepalive(server: Server, plan: Plan) -> None:
    idle = plan_settings_idle(plan)
    seconds = control_keepalive_seconds(server)
    assert seconds is not None, "no keepalive timer on the control socket"
    assert idle - 10 <= seconds <= idle


def plan_settings_idle(plan: Plan) -> int:
    """The keepalive idle the stack declared, read from the rendered SocketOptions line."""
    conf = write_files(plan)[render.PROFTPD_CONF]
    match = re.search(r"^SocketOptions\s+keepalive\s+(\d+):(\d+):(\d+)$", conf, re.MULTILINE)
    assert match, "SocketOptions keepalive IDLE:COUNT:INTVL missing from proftpd.conf"
    return int(match.group(1))


def test_without_the_keepalive_settings_the_control_socket_waits_two_hours(plan: Plan) -> None:
    """Negative control: remove SocketOptions and the sysctl, and the timer is the kernel's
    7200 s default — far beyond Azure's idle timeout."""
    conf = write_files(plan)[render.PROFTPD_CONF]
    conf = re.sub(r"^SocketOptions.*$", "", conf, flags=re.MULTILINE)
    for server in start_server(plan, conf_text=conf, apply_sysctl=False):
        seconds = control_keepalive_seconds(server)
        assert seconds is not None and seconds > 7000


def test_the_server_fixture_leaves_no_namespace_behind(plan: Plan) -> None:
    for server in start_server(plan):
        netns = server.netns
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    assert netns not in listed.stdout


# -- the smoke check (the post-deploy check's code) against a real server ------------------------


def test_smoke_check_fails_clearly_on_a_wrong_masquerade_address(plan: Plan) -> None:
    conf = write_files(plan)[render.PROFTPD_CONF]
    broken = re.sub(r"^MasqueradeAddress.*$", "MasqueradeAddress 198.51.100.77", conf, flags=re.M)
    first, last = plan.outputs["passivePortRange"].split("-")
    for server in start_server(plan, conf_text=broken):
        result = ftpcheck(
            server,
            "--user", USER,
            "--expect-public-ip", server.public_ip,
            "--expect-passive-range", f"{first}-{last}",
        )  # fmt: skip
        assert result.returncode == 1
        assert "FAILED: PASV names 198.51.100.77, not the public IP 198.51.100.10" in result.stderr


def test_smoke_check_fails_clearly_on_a_passive_range_the_nsg_does_not_open(
    server: Server,
) -> None:
    result = ftpcheck(server, "--user", USER, "--expect-passive-range", "40000-40010")
    assert result.returncode == 1
    assert "outside the passive range 40000-40010 that the NSG opens" in result.stderr


def test_smoke_check_without_a_user_waits_for_the_banner(server: Server) -> None:
    result = ftpcheck(server, "--wait", "5")
    assert result.returncode == 0 and result.stdout.startswith("220"), result.stdout


def configtest_with_unresolvable_hostname(plan: Plan, conf_text: str | None = None) -> str:
    needs_root()
    with tempfile.TemporaryDirectory(prefix="ftpstack-l2-") as tmp:
        files = install_files(plan, Path(tmp), conf_text)
        result = subprocess.run(
            ["unshare", "--uts", "--net", "sh", "-c",
             f"ip link set lo up; hostname ftpstack-no-dns; proftpd --configtest -c {files.conf}"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        return result.stderr + f"\nrc={result.returncode}"


def test_proftpd_starts_when_the_hostname_does_not_resolve(plan: Plan) -> None:
    """A VM whose DNS is slow or down at boot must still serve FTP (found at L4: a fresh
    Debian VM's hostname is not in /etc/hosts)."""
    assert configtest_with_unresolvable_hostname(plan).endswith("rc=0")
    conf = write_files(plan)[render.PROFTPD_CONF]
    without = re.sub(r"^DefaultAddress.*$", "", conf, flags=re.MULTILINE)
    out = configtest_with_unresolvable_hostname(plan, without)
    assert "no valid servers configured" in out and not out.endswith("rc=0"), out
