"""L2: the production features on a real proftpd — FTPS, read-only and size-limited users,
anonymous read-only downloads, brute-force bans — with real clients (curl, lftp, ftplib).

Same harness as test_l2_real_tools: the rendered files and setup commands under a temporary
root, proftpd in a namespace of its own whose loopback carries the public address and two
"customer" addresses (documentation ranges) to tell clients apart for the ban test.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ftpstack import render
from ftpstack.ftpcheck import parse_pasv
from ftpstack.plan import Plan, Secret, plan_stack
from tests.test_l2_real_tools import Server, ftpcheck, passive_range, start_server

pytestmark = pytest.mark.l2

USERS = [
    {"name": "alice", "password": "alice-password-1"},
    {"name": "bob", "password": "bob-password-222", "readOnly": True},
    {"name": "carl", "password": "carl-password-33", "maxUploadMb": 1},
]
BAN_AFTER = 3
CUSTOMER_A, CUSTOMER_B = "192.0.2.10", "192.0.2.20"


@pytest.fixture(scope="module")
def plan() -> Plan:
    return plan_stack(
        "dev",
        overrides={
            "users": Secret(USERS),
            "tls": "required",
            "anonymous": True,
            "banMaxFailedLogins": BAN_AFTER,
        },
    )


@pytest.fixture(scope="module")
def server(plan: Plan) -> Iterator[Server]:
    for running in start_server(plan):
        for address in (CUSTOMER_A, CUSTOMER_B):
            subprocess.run(
                ["ip", "-n", running.netns, "addr", "add", f"{address}/32", "dev", "lo"],
                check=True,
            )
        public = running.files.root / render.PUBLIC_DIR.lstrip("/")
        (public / "readme.txt").write_text("public file\n")
        yield running


def cert(server: Server) -> str:
    return str(server.files.root / render.TLS_CERT.lstrip("/"))


def ftps(server: Server, user: str, password: str, body: str, source: str | None = None) -> str:
    """Run `body` with `ftp` logged in over explicit TLS (PROT P) inside the namespace."""
    code = f"""
import ftplib, io
from ftpstack.ftpcheck import Tls, connect
tls = Tls(cafile={cert(server)!r})
ftp = connect({server.public_ip!r}, {user!r}, {password!r}, tls=tls, source={source!r})
{body}
"""
    result = server.python(code)
    return result.stdout + result.stderr


def test_self_signed_certificate_names_the_fqdn_and_the_public_ip(server: Server) -> None:
    text = subprocess.run(
        ["openssl", "x509", "-noout", "-subject", "-ext", "subjectAltName", "-in", cert(server)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "CN = ftpstack-dev-example.westeurope.cloudapp.azure.com" in text
    assert "IP Address:198.51.100.10" in text
    key = server.files.root / render.TLS_KEY.lstrip("/")
    assert oct(key.stat().st_mode & 0o777) == "0o600"


def test_pasv_inside_tls_names_the_public_ip_and_a_port_in_range(
    server: Server, plan: Plan
) -> None:
    out = ftps(server, "alice", "alice-password-1", 'print(ftp.sendcmd("PASV"))')
    passive = parse_pasv(out)
    assert passive.host == plan.outputs["publicIp"]
    assert passive.port in passive_range(plan)


def test_plaintext_login_is_refused_when_tls_is_required(server: Server) -> None:
    code = f"""
import ftplib
ftp = ftplib.FTP({server.public_ip!r}, timeout=10)
try:
    ftp.login("alice", "alice-password-1")
    print("LOGGED IN")
except ftplib.error_perm as error:
    print("refused", error)
"""
    result = server.python(code)
    assert "refused 550" in result.stdout or "refused 530" in result.stdout, result.stdout
    assert "LOGGED IN" not in result.stdout


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    path = tmp_path / "payload.bin"
    path.write_bytes(os.urandom(2 * 1024 * 1024 + 3))
    tmp_path.chmod(0o755)
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_curl_ftps_required_round_trip(server: Server, payload: Path, tmp_path: Path) -> None:
    url = f"ftp://{server.public_ip}/curl-tls.bin"
    tls = [
        "curl",
        "-sS",
        "--ssl-reqd",
        "--cacert",
        cert(server),
        "--user",
        "alice:alice-password-1",
    ]
    up = server.run(*tls, "-T", str(payload), url)
    assert up.returncode == 0, up.stderr
    back = tmp_path / "back.bin"
    down = server.run(*tls, "-o", str(back), url)
    assert down.returncode == 0, down.stderr
    assert sha(back) == sha(payload)


def test_lftp_ftps_forced_round_trip(server: Server, payload: Path, tmp_path: Path) -> None:
    back = tmp_path / "lftp-back.bin"
    script = (
        f"set ftp:ssl-force yes; set ftp:ssl-protect-data yes; set ssl:ca-file {cert(server)}; "
        "set ftp:passive-mode on; set net:max-retries 1; "
        f"put {payload} -o lftp-tls.bin; get lftp-tls.bin -o {back}; bye"
    )
    result = server.run("lftp", "-u", "alice,alice-password-1", "-e", script, server.public_ip)
    assert result.returncode == 0, result.stderr
    assert sha(back) == sha(payload)


def test_read_only_user_downloads_but_cannot_upload(server: Server) -> None:
    home = server.files.root / render.FTP_ROOT.lstrip("/") / "bob"
    (home / "report.csv").write_text("a,b\n")
    out = ftps(
        server,
        "bob",
        "bob-password-222",
        """
chunks = []
ftp.retrbinary("RETR report.csv", chunks.append)
print("GOT", b"".join(chunks))
for command in ("STOR new.txt", "STOR report.csv"):
    try:
        ftp.storbinary(command, io.BytesIO(b"x"))
        print("STORED")
    except ftplib.error_perm as error:
        print("denied", error)
for action in (lambda: ftp.delete("report.csv"), lambda: ftp.rename("report.csv", "r.csv")):
    try:
        action()
        print("CHANGED")
    except ftplib.error_perm as error:
        print("denied", error)
""",
    )
    assert "GOT b'a,b\\n'" in out, out
    assert out.count("denied 550") == 4 and "STORED" not in out and "CHANGED" not in out, out
    assert not (home / "new.txt").exists()


def test_upload_size_limit_aborts_a_larger_upload(server: Server) -> None:
    body = """
import ssl
try:
    ftp.storbinary("STOR big.bin", io.BytesIO(b"x" * (2 * 1024 * 1024)))
    print("STORED")
except ftplib.error_perm as error:
    print("denied", error)
except (ssl.SSLError, OSError):
    # The server may cut the data connection before we read its reply: read it now.
    try:
        print("reply", ftp.getresp())
    except ftplib.error_perm as error:
        print("denied", error)
ftp.storbinary("STOR small.bin", io.BytesIO(b"x" * 1000))
print("small ok")
"""
    out = ftps(server, "carl", "carl-password-33", body)
    assert "denied 552" in out and "STORED" not in out, out
    assert "small ok" in out
    big = server.files.root / render.FTP_ROOT.lstrip("/") / "carl" / "big.bin"
    assert not big.exists() or big.stat().st_size <= 1024 * 1024


def test_anonymous_downloads_and_cannot_upload(server: Server) -> None:
    out = ftps(
        server,
        "anonymous",
        "guest@example.invalid",
        """
print("LIST", ftp.nlst())
chunks = []
ftp.retrbinary("RETR readme.txt", chunks.append)
print("GOT", b"".join(chunks))
try:
    ftp.storbinary("STOR upload.txt", io.BytesIO(b"x"))
    print("STORED")
except ftplib.error_perm as error:
    print("denied", error)
try:
    ftp.cwd("/../alice")
    print("ESCAPED", ftp.pwd())
except ftplib.error_perm as error:
    print("jailed", error)
""",
    )
    assert "readme.txt" in out and "GOT b'public file\\n'" in out, out
    assert "denied 550" in out and "STORED" not in out, out
    assert "ESCAPED" not in out


def fail_logins(server: Server, times: int) -> str:
    """`times` wrong passwords from CUSTOMER_A (run from CUSTOMER_B's session)."""
    wrong = "\n".join(
        f"""
try:
    connect({server.public_ip!r}, "alice", "wrong-password-{n}", tls=tls, source={CUSTOMER_A!r})
except (ftplib.Error, OSError, EOFError) as error:
    print("attempt {n}:", error)"""
        for n in range(times)
    )
    return ftps(server, "alice", "alice-password-1", wrong, source=CUSTOMER_B)


def test_failed_logins_ban_the_address_and_only_that_address(server: Server) -> None:
    out = fail_logins(server, BAN_AFTER)
    assert out.count("530") >= BAN_AFTER, out
    banned = ftps(server, "alice", "alice-password-1", 'print("IN")', source=CUSTOMER_A)
    assert "IN" not in banned, "a banned address must not log in, even with the password"
    assert "530 Banned: too many failed logins" in banned, banned
    other = ftps(server, "alice", "alice-password-1", 'print("IN")', source=CUSTOMER_B)
    assert "IN" in other, other


def test_without_ban_the_same_failures_do_not_lock_anyone_out(plan: Plan) -> None:
    """Negative control: the ban above comes from mod_ban, not from the failures themselves."""
    unbanned = plan_stack(
        "dev",
        overrides={"users": Secret(USERS), "tls": "required", "ban": False},
    )
    for server in start_server(unbanned):
        for address in (CUSTOMER_A, CUSTOMER_B):
            subprocess.run(
                ["ip", "-n", server.netns, "addr", "add", f"{address}/32", "dev", "lo"], check=True
            )
        assert fail_logins(server, BAN_AFTER + 1).count("530") >= BAN_AFTER + 1
        after = ftps(server, "alice", "alice-password-1", 'print("IN")', source=CUSTOMER_A)
        assert "IN" in after, after


def test_smoke_check_over_ftps_passes_and_plaintext_smoke_is_refused(server: Server) -> None:
    def base(*args: str) -> subprocess.CompletedProcess[str]:
        return ftpcheck(server, "--user", "alice", *args, password="alice-password-1")

    good = base("--tls", "--cafile", cert(server))
    assert good.returncode == 0 and "OK" in good.stdout, good.stdout + good.stderr
    unverified = base("--tls", "--no-verify")
    assert unverified.returncode == 0, unverified.stderr
    untrusted = base("--tls")
    assert untrusted.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
    plain = base("--wait", "0")
    assert plain.returncode == 1, "TLS is required: a plaintext login must fail"
