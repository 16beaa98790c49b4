"""What the tests share: one set of test credentials, the tests' own stacks and their SSH key,
plan and settings helpers, a throw-away certificate. No test module imports another test module;
they import this.

"dev" and "prod" here are the tests' own stack files (`tests/fixtures/`): the committed
`Pulumi.dev.yaml` and `Pulumi.prod.yaml` are examples the operator edits (README: their SSH key,
their customers' CIDRs, their passwords), so only the tests that document them read them
(`tests/product/test_layout.py` keeps it so).
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import select
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from ftpstack import outputs
from ftpstack.identity import Identity
from ftpstack.local.net.azure import LocalAzure
from ftpstack.local.net.client import READY, last_json, start_client
from ftpstack.local.net.netns import Netns, NetnsError, end_process
from ftpstack.local.net.sftpclient import Login, SftpClients
from ftpstack.offline.plan import PROJECT_DIR, Plan, Secret, plan_stack
from ftpstack.offline.standins import identity as identity_stand_in
from ftpstack.offline.standins import pem_pair
from ftpstack.settings import Settings, parse_settings

ROOT = PROJECT_DIR
USER, PASSWORD = "alice", "alice-password-1"
OTHER_USER, OTHER_PASSWORD = "bob", "bob-password-222"
USERS = Secret([{"name": USER, "password": PASSWORD}])
# The tests' stacks, as the planner reads them (`plan_test_stack`).
FIXTURES = ROOT / "tests" / "fixtures"
STACK_FILES = {stack: FIXTURES / f"Pulumi.{stack}.yaml" for stack in ("dev", "prod")}
# The tests' SSH key: made for the test stacks, its private half never kept.
SSH_KEY: str = yaml.safe_load(STACK_FILES["dev"].read_text())["config"]["ftpstack:sshPublicKey"]
GOOD_USER = {"name": USER, "password": PASSWORD}
# prod's load balancer in front of a single server (prod itself runs two: see test_ha).
ONE_SERVER = {"instances": 1, "zones": []}
# A second admin key, for key rotations.
OTHER_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGbK1D5pf6PXoPXXcEIg4mJv9w0M0WpCh5ZbXn0vZvF0 rotated"
)


# The stack identity the tests render with (the offline plans' stand-in, made from a seed).
IDENTITY = Identity.from_json(identity_stand_in("tests/ftp-identity"))


def settings(**raw: Any) -> Settings:
    """Settings from raw keys (camelCase), with the test stacks' SSH key."""
    return parse_settings({"sshPublicKey": SSH_KEY, **raw})


def plan_test_stack(stack: str, overrides: dict[str, Any] | None = None) -> Plan:
    """The tests' own stack ("dev" or "prod") planned as it is, or with keys overridden."""
    return plan_stack(stack, overrides=overrides, stack_file=STACK_FILES[stack])


def plan(stack: str = "dev", **overrides: Any) -> Plan:
    """A test stack's plan with the test user (and any other keys) overridden."""
    return plan_test_stack(stack, {"users": USERS, **overrides})


def many_users(count: int) -> list[dict[str, Any]]:
    """Users with the longest names a user may have (32 characters)."""
    return [
        {"name": f"p{i:05d}".ljust(32, "x"), "password": f"partner-password-{i:06d}"}
        for i in range(count)
    ]


@functools.cache
def thousands_plan(count: int = 5000) -> Plan:
    """Prod with `count` users (5,000 rounds: each hash is made in pure Python, ~7 ms), planned
    once per test run: L1, L3 and the bench read the same plan."""
    users = Secret(many_users(count))
    return plan("prod", users=users, maxClients=50, passwordHashRounds=5000)


def needs_root() -> None:
    """Skip locally when not root; in CI the skip itself fails the run (conftest.py)."""
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, proftpd on its own ports)")


def certificate_pair(
    common_name: str,
    days: int = 30,
    issuer: tuple[str, Any] | None = None,
    ca: bool = False,
    ips: tuple[str, ...] | list[str] = (),
    rsa_bits: int = 0,
) -> tuple[str, str]:
    """A throw-away certificate and its key, as PEM text; self-signed unless `issuer` is a
    (certificate PEM, key object) pair; an ECDSA P-256 key, or RSA of `rsa_bits`. Returns
    (certificate PEM, key PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID

    key: Any = (
        rsa.generate_private_key(65537, rsa_bits)
        if rsa_bits
        else ec.generate_private_key(ec.SECP256R1())
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, signer = name, key
    if issuer is not None:
        issuer_name = x509.load_pem_x509_certificate(issuer[0].encode()).subject
        signer = issuer[1]
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=max(1, 1 - days)))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        import ipaddress

        names: list[x509.GeneralName] = [x509.DNSName(common_name)]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return pem_pair(builder.sign(signer, hashes.SHA256()), key)


def load_key(pem: str) -> Any:
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_private_key(pem.encode(), password=None)


def stack_file(tmp_path: Path, name: str, config: dict[str, Any]) -> Path:
    """A stack file `Pulumi.<name>.yaml` holding `config` (keys without namespace get one)."""
    path = tmp_path / f"Pulumi.{name}.yaml"
    document = {"config": {(k if ":" in k else f"ftpstack:{k}"): v for k, v in config.items()}}
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


# -- live changes under load (L3) -----------------------------------------------------------------


def wait_ready(proc: subprocess.Popen[str], timeout: float = 60) -> None:
    """Until a loop started by `start_client` (login-loop, pasv-loop) says its first round is
    done (its first line, READY): a test that starts its change only then knows the loop runs
    across it (under load a client takes seconds to start). When it does not say so in
    `timeout` seconds: the loop ended (by its PID), then NetnsError."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else ""
    if not line.strip() or json.loads(line) != READY:
        end_process(proc)
        raise NetnsError(f"the loop was not ready within {timeout:.0f} s: {line.strip()!r}")


@contextmanager
def under_load(az: LocalAzure, tls: bool = False) -> Iterator[dict[str, Any]]:
    """A login loop, a download and a passive-port loop running across the change."""
    with tempfile.TemporaryDirectory(prefix="ftpstack-live-") as tmp:
        yield from _under_load(az, tls, Path(tmp) / "stop")


def _under_load(az: LocalAzure, tls: bool, stop: Path) -> Iterator[dict[str, Any]]:
    """A login every 200 ms, a PASV loop opening a data connection to every port announced, and
    a 4-second download of `movie.bin` (the model's tests upload it first), across the change;
    none may fail, be cut or be announced a closed port."""
    encrypted = ["--tls"] if tls else []

    def start(command: str, *args: str) -> subprocess.Popen[str]:
        return start_client(
            az.client, az.public_ip, command, *args, *encrypted, user=USER, password=PASSWORD
        )

    procs = {
        "logins": start("login-loop", "--interval", "0.2", "--stop-file", str(stop)),
        "passive": start("pasv-loop", "--interval", "0.2", "--stop-file", str(stop)),
        "download": start("slow-download", "--name", "movie.bin", "--seconds", "4"),
    }
    found: dict[str, Any] = {}
    try:
        for loop in ("logins", "passive"):  # each has done a round: the change starts under load
            wait_ready(procs[loop])
    except NetnsError:
        for proc in procs.values():
            end_process(proc)
        raise
    try:
        yield found
    finally:
        time.sleep(0.8)
        stop.touch()
        for name, proc in procs.items():
            found[name] = last_json(proc.communicate(timeout=120)[0])
    downloaded = found["download"]
    assert (downloaded["reply"] or "").startswith("226") and downloaded["bytes"] == 4 << 20, (
        downloaded
    )
    assert found["logins"]["failures"] == [], found["logins"]
    assert found["passive"]["closed"] == [], found["passive"]


def applied(az: LocalAzure, new: Plan, tls: bool = False) -> dict[str, Any]:
    with under_load(az, tls) as found:
        started = time.monotonic()
        az.apply(new)
        found["seconds"] = time.monotonic() - started
    return found


# -- SFTP (L2, L3) --------------------------------------------------------------------------------


def ssh_keypair(directory: Path, name: str, kind: str = "ed25519") -> tuple[Path, str]:
    """A throw-away SSH key made by ssh-keygen: (private key file, public key line)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", f"{name}@ftpstack-tests", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path, path.with_name(f"{name}.pub").read_text().strip()


def sftp_clients(ns: Netns, workdir: Path, stack: Plan) -> tuple[SftpClients, Path]:
    """SFTP clients in `ns`, and a known_hosts file holding the plan's `sftpHostKeys` (so every
    login also checks the host key)."""
    clients = SftpClients(ns, workdir)
    return clients, clients.known_hosts(list(stack.outputs[outputs.SFTP_HOST_KEYS]))


SFTP_PASSWORDS = {USER: PASSWORD, OTHER_USER: OTHER_PASSWORD, "carl": "carl-password-33"}
Keys = dict[str, tuple[Path, str]]


def sftp_keys(folder: Path) -> Keys:
    """Throw-away ed25519 keys: alice's and bob's (`sftp_users` gives them), a stranger's and a
    newcomer's (nobody has them at first)."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    return {name: ssh_keypair(folder, name) for name in (USER, OTHER_USER, "stranger", "newcomer")}


def sftp_users(
    keys: Keys,
    drop: tuple[str, ...] = (),
    more_keys: dict[str, str] | None = None,
    add: tuple[dict[str, Any], ...] = (),
) -> Secret:
    """alice (password and key), bob (read-only: password and key), carl (a 1 MB upload limit,
    password only); without `drop`, with `more_keys` (user: one more public key), and `add`."""
    found: list[dict[str, Any]] = [
        {"name": USER, "password": PASSWORD, "sshKeys": [keys[USER][1]]},
        {
            "name": OTHER_USER,
            "password": OTHER_PASSWORD,
            "readOnly": True,
            "sshKeys": [keys[OTHER_USER][1]],
        },
        {"name": "carl", "password": SFTP_PASSWORDS["carl"], "maxUploadMb": 1},
    ]
    for user in found:
        extra = (more_keys or {}).get(user["name"])
        if extra:
            user["sshKeys"] = [*user.get("sshKeys", []), extra]
    return Secret([u for u in found if u["name"] not in drop] + list(add))


def sftp_plan(keys: Keys, **overrides: Any) -> Plan:
    """dev with the SFTP users and anonymous FTP, without TLS and bans (wrong passwords must not
    lock the next test out), and any other keys overridden."""
    base = {"tls": "off", "ban": False, "anonymous": True, "users": sftp_users(keys)}
    return plan("dev", **{**base, **overrides})


def sftp_login(host: str, known: Path, user: str, key: Path | None = None, **kw: Any) -> Login:
    """`user`'s login with their password (or `password=`), or with `key` and no password."""
    if key is not None:
        return Login(host, user, known, key=key, **kw)
    return Login(host, user, known, password=kw.pop("password", SFTP_PASSWORDS.get(user)), **kw)


def refused(done: subprocess.CompletedProcess[str]) -> bool:
    """An OpenSSH client the server did not let in."""
    return done.returncode != 0 and "Permission denied" in done.stderr
