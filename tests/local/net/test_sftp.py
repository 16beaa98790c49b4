"""L2: SFTP from the same proftpd (mod_sftp) with real clients — OpenSSH's sftp and scp (SFTP and
the old SCP protocol), lftp, rclone and curl — through the public address, each checking the host
key against the plan's `sftpHostKeys`: with a password and with a user's key; the jail, read-only
and upload-limited users, anonymous, modern algorithms only. Bans and live changes:
test_sftp_live.

Same stand-in as test_proftpd: the plan's own steps into a VM in a namespace of this test's own.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ftpstack import paths
from ftpstack.local.net import steps
from ftpstack.local.net.server import LocalServer
from ftpstack.local.net.sftpclient import TOOLS, Login, SftpClients
from ftpstack.offline.plan import Plan
from tests.support import (
    Keys,
    needs_root,
    refused,
    sftp_clients,
    sftp_login,
    ssh_keypair,
)

pytestmark = pytest.mark.l2


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def server(sftp_dev: Plan) -> Iterator[LocalServer]:
    needs_root()
    with LocalServer(sftp_dev) as running:
        running.machine.write(f"{paths.FTP_ROOT}/outside.txt", "not alice's\n")
        yield running


@pytest.fixture
def sftp(server: LocalServer, sftp_dev: Plan, tmp_path: Path) -> tuple[SftpClients, Path]:
    tmp_path.chmod(0o755)
    return sftp_clients(server.ns, tmp_path / "sftp", sftp_dev)


def login(server: LocalServer, known: Path, user: str, **kw: Any) -> Login:
    return sftp_login(server.public_ip, known, user, **kw)


@pytest.fixture(scope="module")
def payload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("payload") / "payload.bin"
    # WORKAROUND, under carl's 1 MB upload limit: the product applies it to every SFTP user
    # (see test_an_upload_limit_binds_only_its_own_user_over_sftp).
    path.write_bytes(os.urandom(512 * 1024 + 17))
    path.parent.chmod(0o755)
    return path


def home(server: LocalServer, user: str, name: str = "") -> Path:
    return server.machine.path(f"{paths.FTP_ROOT}/{user}/{name}")


# -- every client, with a password and with a key ---------------------------------------------


@pytest.mark.parametrize("auth", ["password", "key"])
@pytest.mark.parametrize("tool", TOOLS)
def test_each_client_uploads_lists_and_downloads(
    server: LocalServer,
    sftp: tuple[SftpClients, Path],
    keys: Keys,
    payload: Path,
    tool: str,
    auth: str,
) -> None:
    clients, known = sftp
    alice = login(server, known, "alice", key=keys["alice"][0] if auth == "key" else None)
    name = f"{tool}-{auth}.bin"
    put = clients.put(tool, alice, payload, name)
    assert put.returncode == 0, put.stderr
    assert sha256(home(server, "alice", name)) == sha256(payload), "stored whole"
    if tool not in ("scp", "scp-legacy"):  # scp cannot list
        listed = clients.ls(tool, alice)
        assert listed.returncode == 0 and name in listed.stdout.split(), listed
    back = clients.workdir / f"back-{name}"
    got = clients.get(tool, alice, name, back)
    assert got.returncode == 0 and sha256(back) == sha256(payload), got.stderr


# What each client says when the host key is not the one it was given.
REFUSED_KEY = re.compile(r"Host key verification failed|knownhosts: key mismatch|SSH remote key")


@pytest.mark.parametrize("tool", TOOLS)
def test_negative_control_every_client_refuses_a_host_key_it_was_not_given(
    server: LocalServer, sftp: tuple[SftpClients, Path], tmp_path: Path, tool: str
) -> None:
    """Other keys of each kind under the same address (a server that is not the stack's) fail
    the download that the stack's own keys let through."""
    clients, known = sftp
    server.machine.write(f"{paths.FTP_ROOT}/alice/known.txt", "known\n")
    done = clients.get(tool, login(server, known, "alice"), "known.txt", tmp_path / "ok.txt")
    assert done.returncode == 0 and (tmp_path / "ok.txt").read_text() == "known\n", done
    kinds = ("ed25519", "ecdsa")
    lines = [f"{server.public_ip} {ssh_keypair(tmp_path / 'other', k, k)[1]}" for k in kinds]
    other = clients.known_hosts(lines, "other_known_hosts")
    done = clients.get(tool, login(server, other, "alice"), "known.txt", tmp_path / "no.txt")
    assert done.returncode != 0 and not (tmp_path / "no.txt").exists(), done
    assert REFUSED_KEY.search(done.stdout + done.stderr), done


def test_a_key_logs_in_only_its_own_user(
    server: LocalServer, sftp: tuple[SftpClients, Path], keys: Keys
) -> None:
    clients, known = sftp
    own = clients.sftp(login(server, known, "alice", key=keys["alice"][0]), "pwd")
    assert own.returncode == 0, own.stderr
    for user, key in (("alice", "stranger"), ("alice", "bob"), ("carl", "alice")):
        done = clients.sftp(login(server, known, user, key=keys[key][0]), "pwd")
        assert refused(done), (user, key, done)


def test_a_wrong_password_is_refused(server: LocalServer, sftp: tuple[SftpClients, Path]) -> None:
    clients, known = sftp
    assert clients.sftp(login(server, known, "alice"), "pwd").returncode == 0
    assert refused(clients.sftp(login(server, known, "alice", password="not-it-at-all"), "pwd"))


def test_anonymous_never_logs_in_over_sftp(
    server: LocalServer, sftp: tuple[SftpClients, Path]
) -> None:
    """The stack serves anonymous FTP (the control); over SFTP neither anonymous nor ftp."""
    ftp = server.client("try-login", user="anonymous", password="guest@example.invalid")
    assert ftp["ok"], ftp
    clients, known = sftp
    for name in ("anonymous", "ftp"):
        done = clients.sftp(login(server, known, name, password="guest@example.invalid"), "pwd")
        assert refused(done), (name, done)


# -- the jail ------------------------------------------------------------------------------------

ESCAPES = (
    "/etc/passwd",
    f"{paths.FTP_ROOT}/outside.txt",
    "../outside.txt",
    "/../outside.txt",
    "planted",  # a symlink on the storage to the file beside the home
    "made",  # a symlink the session made itself
)


def jail_probe(server: LocalServer, clients: SftpClients, known: Path) -> dict[str, Any]:
    """alice's SFTP sessions try every way out of her home: which paths fetched a file, and
    what `/` and `..` list."""
    target = f"{paths.FTP_ROOT}/outside.txt"
    server.machine.write(f"{paths.FTP_ROOT}/alice/mine.txt", "mine\n")
    server.machine.exec("ln", "-sfn", target, f"{paths.FTP_ROOT}/alice/planted")
    alice = login(server, known, "alice")
    made = clients.sftp(alice, "-rm made", f"symlink {target} made")
    found: dict[str, Any] = {"symlinked": made.returncode == 0}
    for n, path in enumerate(("mine.txt", *ESCAPES)):
        local = clients.workdir / f"escape-{n}"
        done = clients.sftp(alice, f'get "{path}" "{local}"')
        found[path] = done.returncode == 0 and local.exists()
    listed = clients.sftp(alice, "cd /", "ls -1a", "cd ..", "ls -1a")
    found["listed"] = set(listed.stdout.split()) - {"sftp>", "cd", "ls", "-1a", "/", ".."}
    return found


def test_a_user_is_jailed_to_their_home_over_sftp(
    server: LocalServer, sftp: tuple[SftpClients, Path]
) -> None:
    found = jail_probe(server, *sftp)
    assert found.pop("mine.txt"), "the control: her own file downloads"
    # mod_sftp's SYMLINK request carries its two paths joined by a tab, which the DenyFilter
    # refuses (ftpstack.render.DENY_FILTER): no symlink is made, as over FTP.
    assert not found.pop("symlinked"), "SFTP made a symlink"
    listed = found.pop("listed")
    assert "mine.txt" in listed and not listed & {"outside.txt", "alice", "bob"}, listed
    assert not any(found.values()), found


def test_negative_control_without_defaultroot_sftp_escapes(
    server: LocalServer, sftp_dev: Plan, sftp: tuple[SftpClients, Path]
) -> None:
    def unjailed(bundle: dict[str, Any]) -> dict[str, Any]:
        """No DefaultRoot, and a DenyFilter that lets SFTP make a symlink."""

        def change(conf: str) -> str:
            conf = re.sub(r"^\s*DefaultRoot.*$", "", conf, flags=re.M)
            assert conf.count("|[[:cntrl:]]") == 1, "the edit removes what it means to"
            return conf.replace("|[[:cntrl:]]", "")

        return steps.edit_file(bundle, paths.PROFTPD_CONF, change)

    server.apply(sftp_dev, unjailed)
    try:
        found = jail_probe(server, *sftp)
    finally:
        server.apply(sftp_dev)
    escaped = {k for k, v in found.items() if v is True}
    assert found["symlinked"], found
    assert {f"{paths.FTP_ROOT}/outside.txt", "../outside.txt", "planted", "made"} <= escaped, found


# -- read-only and upload-limited users ------------------------------------------------------


def write_attempts(
    server: LocalServer, clients: SftpClients, known: Path, user: str
) -> dict[str, bool]:
    """`user` downloads, uploads (SFTP and the old SCP protocol), makes a directory, renames
    and deletes over SFTP; what happened, read on the server."""
    for name in ("new.txt", "scp.txt", "renamed.csv", "newdir"):
        server.machine.exec("rm", "-rf", f"{paths.FTP_ROOT}/{user}/{name}")
    for name in ("report.csv", "keep.csv"):
        server.machine.write(f"{paths.FTP_ROOT}/{user}/{name}", "a,b\n")
    small = clients.workdir / "small.txt"
    small.write_text("ten bytes\n")
    got = clients.workdir / f"{user}-report.csv"
    who = login(server, known, user)
    clients.sftp(
        who,
        f"-get report.csv {got}",
        f"-put {small} new.txt",
        "-mkdir newdir",
        "-rename report.csv renamed.csv",
        "-rm keep.csv",
    )
    clients.put("scp-legacy", who, small, "scp.txt")
    there = {name: home(server, user, name).exists() for name in ("new.txt", "scp.txt", "newdir")}
    return {
        "downloaded": got.exists() and got.read_text() == "a,b\n",
        **there,
        "renamed": home(server, user, "renamed.csv").exists(),
        "deleted": not home(server, user, "keep.csv").exists(),
    }


@pytest.mark.parametrize(
    ("user", "writes"), [("bob", False), ("carl", False), ("alice", True)], ids=str
)
def test_read_only_and_upload_limited_users_only_download_over_sftp(
    server: LocalServer, sftp: tuple[SftpClients, Path], user: str, writes: bool
) -> None:
    """bob is read-only, carl has an upload limit (which proftpd cannot hold over SFTP: he
    uploads over FTP only); alice, with neither, is the control: every change goes through."""
    found = write_attempts(server, *sftp, user)
    assert found.pop("downloaded")
    assert found == dict.fromkeys(found, writes), found


def test_an_upload_limit_binds_only_its_own_user_over_sftp(
    server: LocalServer, sftp: tuple[SftpClients, Path], tmp_path: Path
) -> None:
    """carl's limit is in the FTP server only: mod_sftp 1.3.8 ignores MaxStoreFileSize's `user`
    qualifier, and in <Global> it bound every SFTP user (alice's 2 MiB upload was cut)."""
    clients, known = sftp
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(2 * 1024 * 1024))
    done = clients.put("sftp", login(server, known, "alice"), big, "big.bin")
    assert done.returncode == 0, done.stderr


# -- modern algorithms only ----------------------------------------------------------------------

ALGORITHMS = [
    (("Ciphers=aes128-cbc",), ("Ciphers=aes128-ctr",), "no matching cipher"),
    (
        ("Ciphers=aes128-ctr", "MACs=hmac-sha1"),
        ("Ciphers=aes128-ctr", "MACs=hmac-sha2-256"),
        "no matching MAC",
    ),
    (("HostKeyAlgorithms=ssh-rsa",), ("HostKeyAlgorithms=rsa-sha2-512",), "no matching host key"),
    (
        ("KexAlgorithms=diffie-hellman-group1-sha1",),
        ("KexAlgorithms=curve25519-sha256",),
        "no matching key exchange",
    ),
    (
        ("KexAlgorithms=diffie-hellman-group14-sha1",),
        ("KexAlgorithms=diffie-hellman-group14-sha256",),
        "no matching key exchange",
    ),
]


@pytest.mark.parametrize(
    ("old", "modern", "said"), ALGORITHMS, ids=[a[0][-1].split("=")[1] for a in ALGORITHMS]
)
def test_a_client_offering_only_an_old_algorithm_is_refused(
    server: LocalServer,
    sftp: tuple[SftpClients, Path],
    old: tuple[str, ...],
    modern: tuple[str, ...],
    said: str,
) -> None:
    """The negative control: the same client offering only the modern counterpart logs in (and
    checks an RSA host key with a SHA-2 signature)."""
    clients, known = sftp
    done = clients.sftp(login(server, known, "alice", options=old), "pwd")
    assert done.returncode != 0 and said in done.stderr, done
    done = clients.sftp(login(server, known, "alice", options=modern), "pwd")
    assert done.returncode == 0, done.stderr
