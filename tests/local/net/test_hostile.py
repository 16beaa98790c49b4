"""L2: what a hostile or broken client cannot do to a real proftpd running the rendered files —
set a file's mode bits with MFF, leave half an upload behind, negotiate TLS without forward
secrecy or below TLS 1.2 — and what a local account cannot read (the logs).

Each claim has its negative control on a second server, `weakened`, whose proftpd.conf lacks the
directive that makes it (the `unix\\.mode=` alternative of DenyFilter, DeleteAbortedStores,
TLSCipherSuite: three unrelated features, so one server without all three shows each failure)
and whose agent skips securing the logs; TLS 1.1 needs a server of its own (below).
"""

from __future__ import annotations

import grp
import re
import stat
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ftpstack import paths
from ftpstack.agent.proftpd import sessions
from ftpstack.local.net.server import LocalServer
from ftpstack.local.net.steps import Bundle, edit_file
from ftpstack.offline.plan import Plan, Secret
from tests.support import PASSWORD, USER, certificate_pair, needs_root, plan

pytestmark = pytest.mark.l2

CUT = 1 << 20  # bytes sent before an upload is cut
SECURE_LOGS = "secure_logs(Path(paths.LOG_DIR), paths.LOGS)"


# An RSA certificate of the stack's own: with it a client could pick a suite without forward
# secrecy (static RSA key exchange), which the cipher suites must refuse. (The stack's own
# identity is ECDSA, for which every suite is ECDHE.)
RSA_CERT, RSA_KEY = certificate_pair("files.example.com", rsa_bits=2048)


def stack() -> Plan:
    return plan("dev", tls="allowed", tlsCertificate=RSA_CERT, tlsPrivateKey=Secret(RSA_KEY))


def without_the_directives(bundle: Bundle) -> Bundle:
    def change(conf: str) -> str:
        conf, a = re.subn(r"^(\s*DenyFilter\s+\S+)\|unix\\\.mode=", r"\1", conf, flags=re.M)
        conf, b = re.subn(r"^\s*DeleteAbortedStores\s.*\n", "", conf, flags=re.M)
        conf, c = re.subn(r"^\s*TLSCipherSuite\s.*\n", "", conf, flags=re.M)
        assert (a, b, c) == (1, 1, 1), "the edit removed what it means to"
        return conf

    return edit_file(bundle, paths.PROFTPD_CONF, change)


def without_securing_logs(script: str) -> str:
    assert SECURE_LOGS in script, "the agent's step is where the edit expects it"
    return script.replace(SECURE_LOGS, "pass  # (logs left to proftpd)")


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    needs_root()
    with LocalServer(stack()) as running:
        yield running


@pytest.fixture(scope="module")
def weakened() -> Iterator[LocalServer]:
    needs_root()
    with LocalServer(
        stack(), edit=without_the_directives, script_edit=without_securing_logs
    ) as running:
        yield running


def session(server: LocalServer, *actions: str) -> list[dict[str, Any]]:
    out = server.client(
        "session", *[a for x in actions for a in ("--do", x)], user=USER, password=PASSWORD
    )
    results: list[dict[str, Any]] = out["results"]
    return results


def home_file(server: LocalServer, name: str) -> Any:
    return server.machine.path(f"{paths.FTP_ROOT}/{USER}/{name}")


# -- MFF: a file's modification time, never its mode ---------------------------------------------


@pytest.mark.parametrize("mode", ["4777", "2755", "1777"])
def test_mff_cannot_change_a_file_mode(server: LocalServer, mode: str) -> None:
    name = f"mff-{mode}.txt"
    stored, upper, lower = session(
        server,
        f"stor:{name}:10",
        f"raw:MFF UNIX.mode={mode}; {name}",
        f"raw:MFF unix.mode={mode}; {name}",
    )
    assert stored["ok"]
    for refused in (upper, lower):
        assert not refused["ok"] and refused["reply"].startswith("550"), refused
    assert stat.S_IMODE(home_file(server, name).stat().st_mode) == 0o644


def test_mff_still_sets_the_modification_time(server: LocalServer) -> None:
    stored, touched = session(
        server, "stor:mtime.txt:10", "raw:MFF modify=20200101000000; mtime.txt"
    )
    assert stored["ok"] and touched["reply"].startswith("213"), touched
    assert home_file(server, "mtime.txt").stat().st_mtime == 1577836800  # 2020-01-01T00:00:00Z


def test_negative_control_without_the_filter_mff_sets_the_setuid_bit(weakened: LocalServer) -> None:
    stored, changed = session(weakened, "stor:suid.txt:10", "raw:MFF UNIX.mode=4777; suid.txt")
    assert stored["ok"] and changed["reply"].startswith("213"), changed
    assert stat.S_IMODE(home_file(weakened, "suid.txt").stat().st_mode) == 0o4777


# -- an upload cut mid-way leaves nothing behind ---------------------------------------------------


def cut_upload(server: LocalServer, cut: str) -> dict[str, Any]:
    """stor-cut: the data connection is reset after 1 MiB (the session goes on, and hears why);
    stor-vanish: the client dies, both connections reset. Returns once the server's session
    has ended (whatever it does with the partial file is done)."""
    (result,) = session(server, f"{cut}:{cut}.bin:{CUT}")
    pid_file, deadline = str(server.machine.path(paths.PID_FILE)), time.monotonic() + 20
    while sessions(pid_file):
        assert time.monotonic() < deadline, "the session never ended"
        time.sleep(0.05)
    return result


@pytest.mark.parametrize("cut", ["stor-cut", "stor-vanish"])
def test_an_upload_cut_midway_leaves_no_partial_file(server: LocalServer, cut: str) -> None:
    result = cut_upload(server, cut)
    if cut == "stor-cut":
        assert result["reply"].startswith("426"), result
    assert not home_file(server, f"{cut}.bin").exists()


@pytest.mark.parametrize("cut", ["stor-cut", "stor-vanish"])
def test_negative_control_without_delete_aborted_stores_the_partial_file_stays(
    weakened: LocalServer, cut: str
) -> None:
    result = cut_upload(weakened, cut)
    partial = home_file(weakened, f"{cut}.bin")
    assert partial.exists() and 0 < partial.stat().st_size <= CUT, result


# -- TLS: forward secrecy and TLS 1.2 at least ---------------------------------------------------


def handshake(server: LocalServer, *options: str) -> tuple[bool, str]:
    """openssl s_client's AUTH TLS handshake from the client side: (it succeeded, its output)."""
    done = server.ns.run(
        "openssl", "s_client", "-starttls", "ftp", "-connect", f"{server.public_ip}:21",
        *options, input="", timeout=30,
    )  # fmt: skip
    return done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("cipher", ["AES128-SHA", "AES256-GCM-SHA384"])
def test_tls12_without_forward_secrecy_is_refused(server: LocalServer, cipher: str) -> None:
    ok, out = handshake(server, "-tls1_2", "-cipher", cipher)
    assert not ok and "alert handshake failure" in out, out[-600:]


def test_tls12_with_ecdhe_and_aead_is_accepted(server: LocalServer) -> None:
    ok, out = handshake(server, "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256")
    assert ok and "Cipher is ECDHE-RSA-AES128-GCM-SHA256" in out, out[-600:]


def test_tls11_is_refused(server: LocalServer) -> None:
    ok, out = handshake(server, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
    assert not ok and "alert protocol version" in out, out[-600:]


@pytest.mark.parametrize("cipher", ["AES128-SHA", "AES256-GCM-SHA384"])
def test_negative_control_without_the_cipher_suite_no_forward_secrecy_is_accepted(
    weakened: LocalServer, cipher: str
) -> None:
    ok, out = handshake(weakened, "-tls1_2", "-cipher", cipher)
    assert ok and f"Cipher is {cipher}" in out, out[-600:]


def with_tls11(bundle: Bundle) -> Bundle:
    """TLS 1.1 allowed, and suites it can use at OpenSSL's lowest security level (Debian's
    OpenSSL refuses TLS 1.1's SHA-1 handshake otherwise: widening TLSProtocol alone still ends
    in a handshake failure, not in a session)."""

    def change(conf: str) -> str:
        conf, a = re.subn(r"^(\s*TLSProtocol\s+)", r"\1TLSv1.1 ", conf, flags=re.M)
        conf, b = re.subn(r"^(\s*TLSCipherSuite\s+).*$", r"\1DEFAULT@SECLEVEL=0", conf, flags=re.M)
        assert (a, b) == (1, 1)
        return conf

    return edit_file(bundle, paths.PROFTPD_CONF, change)


def test_negative_control_with_tls11_allowed_a_tls11_client_gets_in() -> None:
    needs_root()
    with LocalServer(stack(), edit=with_tls11) as old:
        ok, out = handshake(old, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
    assert ok and "Protocol  : TLSv1.1" in out, out[-600:]


# -- logs: root and the adm group only -------------------------------------------------------------


def log_modes(server: LocalServer) -> dict[str, tuple[int, int]]:
    """Each log's (permission bits, group), after an upload (proftpd writes xferlog lazily)."""
    assert session(server, "stor:logged.txt:10")[0]["ok"]
    found = {}
    for name in paths.LOGS:
        info = server.machine.path(f"{paths.LOG_DIR}/{name}").stat()
        found[name] = (stat.S_IMODE(info.st_mode), info.st_gid)
    return found


def test_logs_are_root_adm_0640_and_the_applied_record_0600(server: LocalServer) -> None:
    adm = grp.getgrnam("adm").gr_gid
    assert log_modes(server) == {name: (0o640, adm) for name in paths.LOGS}
    assert stat.S_IMODE(server.machine.path(paths.APPLIED).stat().st_mode) == 0o600


def test_a_log_opened_up_is_closed_again_by_the_next_apply(server: LocalServer) -> None:
    log = server.machine.path(f"{paths.LOG_DIR}/auth.log")
    log.chmod(0o644)
    server.apply(stack())
    assert stat.S_IMODE(log.stat().st_mode) == 0o640


def test_negative_control_proftpd_alone_makes_logs_anyone_can_read(weakened: LocalServer) -> None:
    modes = log_modes(weakened)
    assert modes["auth.log"][0] & stat.S_IROTH and modes["xferlog"][0] & stat.S_IROTH, modes
