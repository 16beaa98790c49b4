"""L2: the production features on a real proftpd with real clients — FTPS (self-signed and a
CA-issued certificate with its chain), read-only and size-limited users, anonymous downloads,
bans (failed logins and connection floods), one address unable to hold every slot, removed users
ending their sessions, log rotation that keeps transfers running.

Same stand-in as test_proftpd: the plan's own steps into a VM in a namespace of its own, whose
loopback carries the public address and two "customer" addresses to tell clients apart.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ftpstack import paths
from ftpstack.local.net.client import environment, last_json, module_argv, start_client
from ftpstack.local.net.server import LocalServer
from ftpstack.local.net.steps import edit_file
from ftpstack.offline.plan import Plan, Secret
from tests.support import certificate_pair, load_key, needs_root, plan

pytestmark = pytest.mark.l2

USERS: list[dict[str, Any]] = [
    {"name": "alice", "password": "alice-password-1"},
    {"name": "bob", "password": "bob-password-222", "readOnly": True},
    {"name": "carl", "password": "carl-password-33", "maxUploadMb": 1},
]
PW = {u["name"]: u["password"] for u in USERS}
BAN_AFTER, PER_HOST = 3, 4
CUSTOMER_A, CUSTOMER_B = "192.0.2.10", "192.0.2.20"


def production(**overrides: Any) -> Plan:
    settings = {
        "users": Secret(USERS),
        "tls": "required",
        "anonymous": True,
        "banMaxFailedLogins": BAN_AFTER,
        "maxClientsPerHost": PER_HOST,
        "loginTimeoutSeconds": 5,
        "banConnectsPerMinute": 40,
        "dnsLabel": "files-acme",
    }
    return plan("dev", **{**settings, **overrides})


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    needs_root()
    with LocalServer(production(), addresses=[CUSTOMER_A, CUSTOMER_B]) as running:
        running.machine.write(f"{paths.PUBLIC_DIR}/readme.txt", "public file\n")
        yield running


def cert(server: LocalServer) -> str:
    return str(server.machine.path(paths.SELF_SIGNED_CERT))


def ftps(
    server: LocalServer,
    user: str,
    *actions: str,
    source: str = CUSTOMER_B,
    cafile: str | None = None,
) -> list[dict[str, Any]]:
    password = PW.get(user, "guest@example.invalid")
    out = server.client(
        "session",
        "--tls",
        "--cafile",
        cafile or cert(server),
        "--source",
        source,
        *[a for x in actions for a in ("--do", x)],
        user=user,
        password=password,
    )
    results: list[dict[str, Any]] = out["results"]
    return results


def test_the_self_signed_certificate_names_the_fqdn_and_the_address_and_its_key_is_private(
    server: LocalServer,
) -> None:
    text = subprocess.run(
        ["openssl", "x509", "-noout", "-subject", "-ext", "subjectAltName", "-in", cert(server)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "CN = files-acme.westeurope.cloudapp.azure.com" in text
    assert "IP Address:198.51.100.10" in text
    assert oct(server.machine.path(paths.SELF_SIGNED_KEY).stat().st_mode & 0o777) == "0o600"


def test_the_identity_is_kept_when_the_configuration_is_applied_again(server: LocalServer) -> None:
    before = server.machine.path(paths.SELF_SIGNED_CERT).read_bytes()
    server.apply(production(maxClients=19))
    assert server.machine.path(paths.SELF_SIGNED_CERT).read_bytes() == before


def test_pasv_inside_tls_names_the_public_ip(server: LocalServer) -> None:
    out = server.client(
        "pasv", "--tls", "--cafile", cert(server), user="alice", password=PW["alice"]
    )
    assert {host for host, _ in out["pasv"]} == {server.public_ip}


def test_plaintext_login_is_refused_when_tls_is_required(server: LocalServer) -> None:
    out = server.client("try-login", "--source", CUSTOMER_B, user="alice", password=PW["alice"])
    assert not out["ok"] and out["reply"][:3] in {"550", "530"}, out


def test_curl_and_lftp_ftps_round_trip(server: LocalServer, tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    payload = tmp_path / "payload.bin"
    payload.write_bytes(bytes(range(256)) * 8192)
    url = f"ftp://{server.public_ip}/curl-tls.bin"
    tls = ["curl", "-sS", "--ssl-reqd", "--cacert", cert(server), "--user", f"alice:{PW['alice']}"]
    assert server.run(*tls, "-T", str(payload), url).returncode == 0
    back = tmp_path / "back.bin"
    assert server.run(*tls, "-o", str(back), url).returncode == 0
    lftp = tmp_path / "lftp.bin"
    script = (
        f"set ftp:ssl-force yes; set ftp:ssl-protect-data yes; set ssl:ca-file {cert(server)}; "
        f"set net:max-retries 1; get curl-tls.bin -o {lftp}; bye"
    )
    assert (
        server.run("lftp", "-u", f"alice,{PW['alice']}", "-e", script, server.public_ip).returncode
        == 0
    )
    digest = hashlib.sha256(payload.read_bytes()).hexdigest()
    assert (
        hashlib.sha256(back.read_bytes()).hexdigest()
        == digest
        == hashlib.sha256(lftp.read_bytes()).hexdigest()
    )


def test_a_read_only_user_downloads_but_changes_nothing(server: LocalServer) -> None:
    server.machine.write(f"{paths.FTP_ROOT}/bob/report.csv", "a,b\n")
    results = ftps(
        server,
        "bob",
        "retr:report.csv",
        "stor:new.txt",
        "stor:report.csv",
        "dele:report.csv",
        "rnfr:report.csv:r.csv",
    )
    assert results[0]["ok"] and results[0]["text"] == "a,b\n"
    assert [r["reply"][:3] for r in results[1:]] == ["550"] * 4, results
    assert not server.machine.path(f"{paths.FTP_ROOT}/bob/new.txt").exists()


def test_an_upload_over_the_limit_is_aborted(server: LocalServer) -> None:
    big, small = ftps(server, "carl", f"stor:big.bin:{2 * 1024 * 1024}", "stor:small.bin:1000")
    assert not big["ok"] and "552" in big["reply"], big
    assert small["ok"]


def test_anonymous_downloads_and_cannot_upload_or_escape(server: LocalServer) -> None:
    listing, read, upload, escape = ftps(
        server, "anonymous", "nlst", "retr:readme.txt", "stor:upload.txt", "cwd:/../alice"
    )
    assert "readme.txt" in listing["names"] and read["text"] == "public file\n"
    assert not upload["ok"] and upload["reply"].startswith("550")
    assert not escape["ok"] or escape["pwd"] == "/", escape


def fail_logins(server: LocalServer, times: int, source: str = CUSTOMER_A) -> list[str]:
    return [
        server.client(
            "try-login", "--tls", "--source", source, user="alice", password=f"wrong-password-{n}"
        )["reply"][:3]
        for n in range(times)
    ]


def test_failed_logins_ban_the_address_and_only_that_address(server: LocalServer) -> None:
    assert fail_logins(server, BAN_AFTER) == ["530"] * BAN_AFTER
    banned = server.client(
        "try-login", "--tls", "--source", CUSTOMER_A, user="alice", password=PW["alice"]
    )
    assert not banned["ok"] and "Banned: too many failed logins" in banned["reply"], banned
    assert server.client(
        "try-login", "--tls", "--source", CUSTOMER_B, user="alice", password=PW["alice"]
    )["ok"]


def test_a_ban_is_lifted_by_the_documented_command(server: LocalServer) -> None:
    """README, Bans: `agent.py unban <address>` (over Run Command on Azure)."""
    result = server.machine.exec("/usr/bin/python3", paths.AGENT_PATH, "unban", CUSTOMER_A)
    assert result.returncode == 0, result.stdout + result.stderr
    assert server.client(
        "try-login", "--tls", "--source", CUSTOMER_A, user="alice", password=PW["alice"]
    )["ok"]


def test_the_smoke_check_says_it_is_banned_instead_of_retrying(server: LocalServer) -> None:
    fail_logins(server, BAN_AFTER, CUSTOMER_A)
    env = environment(PW["alice"])
    started = time.monotonic()
    result = server.run(
        *module_argv("ftpstack.ftpcheck"),
        "--host",
        server.public_ip,
        "--user",
        "alice",
        "--tls",
        "--no-verify",
        "--wait",
        "120",
        "--source",
        CUSTOMER_A,
        env=env,
    )
    assert result.returncode == 1 and time.monotonic() - started < 30
    assert "bans this machine's address" in result.stderr and "README, Bans" in result.stderr
    server.machine.exec("/usr/bin/python3", paths.AGENT_PATH, "unban", CUSTOMER_A)


def test_without_ban_the_same_failures_lock_no_one_out() -> None:
    """Negative control: the ban above comes from mod_ban, not from the failures themselves."""
    needs_root()
    with LocalServer(production(ban=False), addresses=[CUSTOMER_A, CUSTOMER_B]) as unbanned:
        assert fail_logins(unbanned, BAN_AFTER + 1) == ["530"] * (BAN_AFTER + 1)
        assert unbanned.client(
            "try-login", "--tls", "--source", CUSTOMER_A, user="alice", password=PW["alice"]
        )["ok"]


def hold(server: LocalServer, count: int, source: str) -> subprocess.Popen[str]:
    proc = start_client(
        server.ns,
        server.public_ip,
        "hold",
        *("--no-login", "--count", str(count), "--source", source),
        stdin=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def test_one_address_cannot_take_every_slot_and_idle_connections_are_dropped_and_banned(
    server: LocalServer,
) -> None:
    holder = hold(server, PER_HOST, CUSTOMER_A)
    try:
        extra = server.client(
            "try-login", "--tls", "--source", CUSTOMER_A, user="alice", password=PW["alice"]
        )
        assert not extra["ok"] and "Too many connections from your address" in extra["reply"], extra
        assert server.client(
            "try-login", "--tls", "--source", CUSTOMER_B, user="alice", password=PW["alice"]
        )["ok"]
        time.sleep(7)  # loginTimeoutSeconds 5: connections that never log in are closed
    finally:
        out, _ = holder.communicate(input="", timeout=60)
    states = last_json(out)["session"]
    assert len(states) == PER_HOST and all(s.startswith("ended") for s in states), states
    # PER_HOST (4) login timeouts reach BAN_AFTER (3): the address that held them is banned.
    banned = server.client(
        "try-login", "--tls", "--source", CUSTOMER_A, user="alice", password=PW["alice"]
    )
    assert not banned["ok"] and "Banned: connections that never logged in" in banned["reply"]
    server.machine.exec("/usr/bin/python3", paths.AGENT_PATH, "unban", CUSTOMER_A)


def test_a_connection_flood_bans_its_address(server: LocalServer) -> None:
    greetings = server.client("connects", "--count", "45", "--source", CUSTOMER_A)["greetings"]
    assert any("Banned: too many connections" in g for g in greetings), greetings[-3:]
    assert server.client(
        "try-login", "--tls", "--source", CUSTOMER_B, user="alice", password=PW["alice"]
    )["ok"]
    server.machine.exec("/usr/bin/python3", paths.AGENT_PATH, "unban", CUSTOMER_A)


def test_a_removed_user_is_refused_and_their_open_session_ended(server: LocalServer) -> None:
    sessions = {
        name: start_client(
            server.ns,
            server.public_ip,
            "hold",
            *("--tls", "--source", CUSTOMER_B),
            user=name,
            password=PW[name],
            stdin=subprocess.PIPE,
        )
        for name in ("alice", "carl")
    }
    for proc in sessions.values():
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    server.apply(production(users=Secret([u for u in USERS if u["name"] != "carl"])))
    states = {}
    for name, proc in sessions.items():
        states[name] = proc.communicate(input="", timeout=60)[0]
    assert '"alive"' in states["alice"], "a session of a kept user goes on"
    assert '"ended' in states["carl"], states["carl"]
    refused = server.client(
        "try-login", "--tls", "--source", CUSTOMER_B, user="carl", password=PW["carl"]
    )
    assert not refused["ok"] and refused["reply"].startswith("530")
    server.apply(production())


# -- log rotation ----------------------------------------------------------------------------------


def rotate_during_a_download(server: LocalServer) -> dict[str, Any]:
    server.client(
        "upload",
        "--tls",
        "--cafile",
        cert(server),
        "--name",
        "rot.bin",
        "--size",
        str(4 * 1024 * 1024),
        user="alice",
        password=PW["alice"],
    )
    download = start_client(
        server.ns,
        server.public_ip,
        "slow-download",
        *("--tls", "--cafile", cert(server), "--name", "rot.bin", "--seconds", "4"),
        user="alice",
        password=PW["alice"],
    )
    time.sleep(1.5)
    result = server.machine.exec(
        "logrotate", "--force", "--state", "/var/lib/logrotate.state", paths.LOGROTATE_FILE
    )
    assert result.returncode == 0, result.stderr
    out, _ = download.communicate(timeout=120)
    return last_json(out)


def test_log_rotation_reopens_the_logs_and_a_running_transfer_ends_with_226(
    server: LocalServer,
) -> None:
    result = rotate_during_a_download(server)
    assert result["reply"] and result["reply"].startswith("226"), result
    assert server.machine.path(f"{paths.LOG_DIR}/proftpd.log.1").exists(), "it did rotate"


def test_negative_control_a_restart_on_rotation_cuts_the_transfer() -> None:
    needs_root()

    def restarting(bundle: dict[str, Any]) -> dict[str, Any]:
        restart = (
            "kill -TERM $(cat /run/proftpd.pid); sleep 1; proftpd -c /etc/proftpd/proftpd.conf"
        )
        return edit_file(
            bundle,
            paths.LOGROTATE_FILE,
            lambda c: re.sub(r"\t\t/usr/bin/python3 .*reload.*", f"\t\t{restart}", c),
        )

    with LocalServer(production(), edit=restarting) as server:
        result = rotate_during_a_download(server)
    assert not result.get("reply"), result


# -- a certificate issued by a CA, served with its chain -------------------------------------------


def chained_stack(tmp_path: Path) -> tuple[Plan, Path]:
    root, root_key = certificate_pair("Example Root CA", ca=True, days=365)
    inter, inter_key = certificate_pair(
        "Example Issuing CA", ca=True, days=365, issuer=(root, load_key(root_key))
    )
    leaf, key = certificate_pair(
        "files-acme.westeurope.cloudapp.azure.com",
        issuer=(inter, load_key(inter_key)),
        ips=["198.51.100.10"],
    )
    ca = tmp_path / "root.pem"
    ca.write_text(root)
    tmp_path.chmod(0o755)
    return production(tlsCertificate=leaf + inter, tlsPrivateKey=Secret(key)), ca


def list_trusting(server: LocalServer, ca: Path) -> subprocess.CompletedProcess[str]:
    """alice lists her home over FTPS, trusting only `ca`."""
    tls = ("--tls", "--cafile", str(ca), "--do", "nlst")
    return server.client_run("session", *tls, user="alice", password=PW["alice"])


def test_a_client_trusting_only_the_root_verifies_the_served_chain(tmp_path: Path) -> None:
    needs_root()
    stack, ca = chained_stack(tmp_path)
    with LocalServer(stack) as server:
        result = list_trusting(server, ca)
    assert result.returncode == 0 and last_json(result.stdout)["results"][0]["ok"]


def test_negative_control_without_the_chain_file_verification_fails(tmp_path: Path) -> None:
    needs_root()
    stack, ca = chained_stack(tmp_path)

    def no_chain(bundle: dict[str, Any]) -> dict[str, Any]:
        return edit_file(
            bundle,
            paths.PROFTPD_CONF,
            lambda c: re.sub(r"^\s*TLSCertificateChainFile.*$", "", c, flags=re.M),
        )

    with LocalServer(stack, edit=no_chain) as server:
        result = list_trusting(server, ca)
    assert result.returncode != 0 and "CERTIFICATE_VERIFY_FAILED" in result.stderr
