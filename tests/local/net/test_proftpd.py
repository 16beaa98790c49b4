"""L2: real tools on what is declared — cloud-init's schema on the bootstrap, the agent applying
the configuration to a real proftpd (configtest, atomic swap, reload), real FTP clients (ftplib,
curl, lftp) through the public address, the control socket's keepalive read back with `ss -o`.

The server is `ftpstack.local.net.server.LocalServer`: a VM stand-in in a namespace of this
test's own, deployed by the plan's own Run Command steps; nothing is written outside it.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ftpstack import paths
from ftpstack.local.net.client import environment, module_argv, start_client
from ftpstack.local.net.server import LocalServer
from ftpstack.local.net.steps import DeployFailed, edit_file, without_file
from ftpstack.offline.plan import Plan
from tests.support import PASSWORD, USER, needs_root, plan

pytestmark = pytest.mark.l2


@pytest.fixture(scope="module")
def dev() -> Plan:
    # Bans are tested in test_production; here wrong passwords must not lock the next test out.
    return plan("dev", tls="off", ban=False)


@pytest.fixture(scope="module")
def server(dev: Plan) -> Iterator[LocalServer]:
    needs_root()
    with LocalServer(dev) as running:
        yield running


def served(dev: Plan, **kw: object) -> LocalServer:
    needs_root()
    return LocalServer(dev, **kw)  # type: ignore[arg-type]


# -- cloud-init ------------------------------------------------------------------------------------


def cloud_init_schema(text: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    path = tmp / "user-data"
    path.write_text(text)
    return subprocess.run(
        ["cloud-init", "schema", "--config-file", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_bootstrap_passes_cloud_init_schema(stack: str, tmp_path: Path) -> None:
    result = cloud_init_schema(plan(stack).user_data, tmp_path)
    assert result.returncode == 0 and "Valid cloud-config" in result.stdout, (
        result.stdout + result.stderr
    )


def test_cloud_init_schema_rejects_a_broken_user_data(dev: Plan, tmp_path: Path) -> None:
    """Negative control: the schema check really reads the file."""
    broken = dev.user_data.replace("runcmd:", "runcmd: 7\nunused:")
    assert cloud_init_schema(broken, tmp_path).returncode != 0


# -- the configuration applied -------------------------------------------------------------------


def test_the_applied_configuration_passes_proftpd_configtest(server: LocalServer) -> None:
    result = server.machine.exec("proftpd", "--configtest", "-c", paths.PROFTPD_CONF)
    assert result.returncode == 0, result.stderr
    assert "masquerading as 198.51.100.10" in result.stderr


def test_a_configuration_proftpd_refuses_is_not_applied_and_the_old_one_serves(
    server: LocalServer, dev: Plan
) -> None:
    """Negative control of the apply: an injected unknown directive fails configtest, the step
    fails (so would `pulumi up`), and the running configuration is untouched."""
    before = server.machine.path(paths.PROFTPD_CONF).read_text()
    broken = plan("dev", tls="off", maxClients=19)

    def inject(bundle: dict[str, object]) -> dict[str, object]:
        return edit_file(bundle, paths.PROFTPD_CONF, lambda c: c + "\nPassivePortz 1 2\n")  # type: ignore[arg-type]

    with pytest.raises(DeployFailed, match="proftpd refused the new configuration"):
        server.apply(broken, inject)  # type: ignore[arg-type]
    assert server.machine.path(paths.PROFTPD_CONF).read_text() == before
    assert not server.machine.path(paths.PROFTPD_CONF + ".ftpstack-new").exists()
    assert server.client("try-login", user=USER, password=PASSWORD)["ok"]


def test_ftplib_smoke_through_the_public_address(server: LocalServer, dev: Plan) -> None:
    env = environment(PASSWORD)
    result = server.run(
        *module_argv("ftpstack.ftpcheck"),
        "--host",
        server.public_ip,
        "--user",
        USER,
        "--expect-public-ip",
        server.public_ip,
        "--expect-passive-range",
        str(dev.outputs["passivePortRange"]),
        env=env,
    )
    assert result.returncode == 0 and "OK" in result.stdout, result.stdout + result.stderr


def test_pasv_and_epsv_replies_name_the_public_address_and_a_port_in_range(
    server: LocalServer, dev: Plan
) -> None:
    out = server.client("pasv", "--count", "5", user=USER, password=PASSWORD)
    first, last = (int(p) for p in str(dev.outputs["passivePortRange"]).split("-"))
    assert {host for host, _ in out["pasv"]} == {server.public_ip}
    assert all(first <= port <= last for _, port in out["pasv"])
    assert all(first <= port <= last for port in out["epsv"])


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    path = tmp_path / "payload.bin"
    path.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    path.chmod(0o644)
    tmp_path.chmod(0o755)
    return path


def test_curl_uploads_and_downloads_in_passive_mode(
    server: LocalServer, payload: Path, tmp_path: Path
) -> None:
    url, auth = f"ftp://{server.public_ip}/curl.bin", f"{USER}:{PASSWORD}"
    assert (
        server.run("curl", "-sS", "--ftp-pasv", "--user", auth, "-T", str(payload), url).returncode
        == 0
    )
    back = tmp_path / "back.bin"
    result = server.run("curl", "-sS", "--ftp-pasv", "--user", auth, "-o", str(back), url)
    assert result.returncode == 0, result.stderr
    assert sha256(back) == sha256(payload)


def test_lftp_uploads_and_downloads_in_passive_mode(
    server: LocalServer, payload: Path, tmp_path: Path
) -> None:
    back = tmp_path / "lftp-back.bin"
    script = (
        "set ftp:ssl-allow no; set ftp:passive-mode on; set ftp:prefer-epsv no; "
        f"set net:max-retries 1; put {payload} -o lftp.bin; get lftp.bin -o {back}; cls -1; bye"
    )
    result = server.run("lftp", "-u", f"{USER},{PASSWORD}", "-e", script, server.public_ip)
    assert result.returncode == 0, result.stderr
    assert "lftp.bin" in result.stdout and sha256(back) == sha256(payload)


def test_a_wrong_password_is_refused(server: LocalServer) -> None:
    out = server.client("try-login", user=USER, password="not-the-password")
    assert not out["ok"] and out["reply"].startswith("530")


def jail_probe(server: LocalServer) -> dict[str, int]:
    """Put a file beside alice's home, then ask alice's session to fetch it by every path (and,
    as a control, her own file by name)."""
    server.machine.write(f"{paths.FTP_ROOT}/outside.txt", "not alice's\n")
    server.client("upload", "--name", "mine.txt", "--size", "10", user=USER, password=PASSWORD)
    names = ("mine.txt", "/outside.txt", "../outside.txt", "/../outside.txt")
    return {
        name: server.client_run("download", "--name", name, user=USER, password=PASSWORD).returncode
        for name in names
    }


def test_a_user_is_jailed_to_their_home(server: LocalServer) -> None:
    found = jail_probe(server)
    assert found.pop("mine.txt") == 0, "the control: her own file downloads"
    assert set(found.values()) == {1}, "no path leads out of the home"


def test_negative_control_without_defaultroot_the_user_escapes(dev: Plan) -> None:
    def unjailed(bundle: dict[str, object]) -> dict[str, object]:
        return edit_file(
            bundle, paths.PROFTPD_CONF, lambda c: re.sub(r"^\s*DefaultRoot.*$", "", c, flags=re.M)
        )  # type: ignore[arg-type]

    with served(dev, edit=unjailed) as loose:
        found = jail_probe(loose)
    assert found["mine.txt"] == 0 and found["../outside.txt"] == 0, found


# -- keepalive on the control socket --------------------------------------------------------------

_TIMER = re.compile(r"timer:\(keepalive,(?:(\d+)min)?(?:(\d+)(?:\.\d+)?sec)?,\d+\)")


def control_keepalive_seconds(server: LocalServer) -> float | None:
    """Hold a logged-in control connection, read the server side's timer back with `ss -o`;
    None when the socket has no keepalive timer."""
    hold = start_client(
        server.ns, server.public_ip, "hold", user=USER, password=PASSWORD, stdin=subprocess.PIPE
    )
    try:
        assert hold.stdout is not None and hold.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            out = server.ns.run("ss", "-Htno", "state", "established", "( sport = :21 )").stdout
            match = _TIMER.search(out)
            if match:
                minutes, seconds = match.groups()
                return int(minutes or 0) * 60 + int(seconds or 0)
            time.sleep(0.2)
        return None
    finally:
        hold.kill()
        hold.wait()


def test_proftpd_itself_sets_the_keepalive_on_its_control_socket(dev: Plan) -> None:
    """The kernel's default (7200 s) left in place: the timer is proftpd's own SocketOptions."""
    with served(dev, edit=lambda b: without_file(b, paths.SYSCTL_FILE)) as server:
        seconds = control_keepalive_seconds(server)
    assert seconds is not None and 50 <= seconds <= 60, seconds


def test_the_kernel_setting_covers_sockets_that_ask_for_keepalive(server: LocalServer) -> None:
    sysctl = server.ns.run("sysctl", "-n", "net.ipv4.tcp_keepalive_time").stdout.strip()
    assert sysctl == "60"
    seconds = control_keepalive_seconds(server)
    assert seconds is not None and 50 <= seconds <= 60


def test_negative_control_without_either_setting_the_socket_waits_two_hours(dev: Plan) -> None:
    """proftpd turns keepalive on by itself, with the kernel's default timer: 7200 s, far
    beyond Azure's idle timeout."""

    def inert(bundle: dict[str, object]) -> dict[str, object]:
        bundle = edit_file(
            bundle, paths.PROFTPD_CONF, lambda c: re.sub(r"^SocketOptions.*$", "", c, flags=re.M)
        )  # type: ignore[arg-type]
        return without_file(bundle, paths.SYSCTL_FILE)  # type: ignore[arg-type]

    with served(dev, edit=inert) as server:
        seconds = control_keepalive_seconds(server)
    assert seconds is not None and seconds > 7000


# -- the smoke check (the post-deploy check's code) against a real server -------------------------


def ftpcheck(server: LocalServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = environment(PASSWORD)
    return server.run(*module_argv("ftpstack.ftpcheck"), "--host", server.public_ip, *args, env=env)


def test_smoke_check_fails_clearly_on_a_wrong_masquerade_address(dev: Plan) -> None:
    def wrong(bundle: dict[str, object]) -> dict[str, object]:
        return edit_file(
            bundle,
            paths.PROFTPD_CONF,
            lambda c: re.sub(
                r"^MasqueradeAddress.*$", "MasqueradeAddress 198.51.100.77", c, flags=re.M
            ),
        )  # type: ignore[arg-type]

    with served(dev, edit=wrong) as server:
        result = ftpcheck(server, "--user", USER, "--expect-public-ip", server.public_ip)
    assert result.returncode == 1
    assert "FAILED: PASV names 198.51.100.77, not the public IP 198.51.100.10" in result.stderr


def test_smoke_check_fails_clearly_on_a_passive_range_the_nsg_does_not_open(
    server: LocalServer,
) -> None:
    result = ftpcheck(server, "--user", USER, "--expect-passive-range", "40000-40010")
    assert result.returncode == 1 and "outside the passive range 40000-40010" in result.stderr


def test_smoke_check_stops_at_once_on_a_refused_password(server: LocalServer) -> None:
    env = environment("wrong-password-1")
    started = time.monotonic()
    result = server.run(
        *module_argv("ftpstack.ftpcheck"),
        "--host",
        server.public_ip,
        "--user",
        USER,
        "--wait",
        "120",
        env=env,
    )
    assert result.returncode == 1 and time.monotonic() - started < 30, "never retried into a ban"
    assert f"the server refused {USER}'s password" in result.stderr, result.stderr


def test_smoke_check_without_a_user_waits_for_the_banner(server: LocalServer) -> None:
    result = ftpcheck(server, "--wait", "5")
    assert result.returncode == 0 and result.stdout.startswith("220"), result.stdout


# -- starting without DNS --------------------------------------------------------------------------


def configtest_without_dns(server: LocalServer, conf: str) -> str:
    server.machine.write("/etc/proftpd/nodns.conf", conf)
    result = server.machine.exec(
        "unshare",
        "--uts",
        "--net",
        "sh",
        "-c",
        "ip link set lo up; hostname ftpstack-no-dns; proftpd --configtest -c /etc/proftpd/nodns.conf",  # noqa: E501
    )
    return result.stderr + f"\nrc={result.returncode}"


def test_proftpd_starts_when_the_hostname_does_not_resolve(server: LocalServer) -> None:
    """A VM whose DNS is slow or down at boot must still serve FTP (found at L4: a fresh Debian
    VM's hostname is not in /etc/hosts); negative control without DefaultAddress."""
    conf = server.machine.path(paths.PROFTPD_CONF).read_text()
    assert configtest_without_dns(server, conf).endswith("rc=0")
    out = configtest_without_dns(server, re.sub(r"^DefaultAddress.*$", "", conf, flags=re.M))
    # proftpd gives up on the main server ("no valid servers configured"; with the SFTP
    # virtual host loaded, mod_sftp then takes it down with a crash): it never starts.
    assert "unable to determine IP address of 'ftpstack-no-dns'" in out, out
    assert not out.endswith("rc=0"), out


def test_the_server_leaves_no_namespace_behind(dev: Plan) -> None:
    with served(dev) as server:
        name = server.ns.name
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    assert name not in listed.stdout
