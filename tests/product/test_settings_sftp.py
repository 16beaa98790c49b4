"""L0: the SFTP settings — `sftp` and each user's `sshKeys` — accepted as a partner writes them,
and refused in one line naming the key, the value and the fix (a pasted private key masked)."""

from __future__ import annotations

import subprocess
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from ftpstack import sftp
from ftpstack.settings import SettingsError
from tests.support import GOOD_USER, settings


@cache
def key_pair(kind: str = "ed25519", bits: int = 0) -> tuple[str, str]:
    """(public line, private PEM) made by ssh-keygen, in a directory removed after."""
    with tempfile.TemporaryDirectory(prefix="ftpstack-keys-") as directory:
        where = Path(directory) / "key"
        size = ["-b", str(bits)] if bits else []
        subprocess.run(
            ["ssh-keygen", "-q", "-t", kind, *size, "-N", "", "-C", "partner", "-f", str(where)],
            check=True,
        )
        return where.with_suffix(".pub").read_text().strip(), where.read_text()


def refused(**raw: Any) -> str:
    with pytest.raises(SettingsError) as caught:
        settings(**raw)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("ftpstack:"), message
    return message


def with_keys(*keys: str, name: str = "alice") -> dict[str, Any]:
    return {**GOOD_USER, "name": name, "sshKeys": list(keys)}


@pytest.mark.parametrize(
    ("kind", "bits"),
    [("ed25519", 0), ("ecdsa", 256), ("ecdsa", 384), ("ecdsa", 521), ("rsa", 3072)],
)
def test_the_key_types_mod_sftp_takes_are_accepted_and_written_for_it(kind: str, bits: int) -> None:
    public, _ = key_pair(kind, bits)
    s = settings(users=[with_keys(public + "\n")])  # a trailing newline, as `cat` gives it
    (user,) = s.users
    text = sftp.rfc4716(user.ssh_keys[0])
    assert text.startswith("---- BEGIN SSH2 PUBLIC KEY ----\n") and "partner" in text
    # The RFC 4716 body is the same key: ssh-keygen reads it back to the same line.
    converted = subprocess.run(
        ["ssh-keygen", "-i", "-m", "RFC4716", "-f", "/dev/stdin"],
        input=text,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert converted[:2] == public.split()[:2]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("ssh-dss AAAAB3NzaC1kc3MAAACB x", "not an OpenSSH public key of a type the SFTP server"),
        ("sk-ssh-ed25519@openssh.com AAAAGnNr x", "not an OpenSSH public key of a type"),
        ('from="10.0.0.1" ssh-ed25519 AAAAC3Nz x', "not an OpenSSH public key of a type"),
        ("ssh-ed25519", "has no key after ssh-ed25519"),
        ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA== x", "damaged"),
    ],
    ids=["dsa", "security-key", "options", "no-body", "truncated"],
)
def test_keys_mod_sftp_cannot_take_are_refused(value: str, expected: str) -> None:
    message = refused(users=[with_keys(value)])
    assert message.startswith("ftpstack:users[0].sshKeys[0] = ") and expected in message


def test_a_weak_rsa_key_and_two_keys_on_one_line_are_refused() -> None:
    weak, _ = key_pair("rsa", 1024)
    assert "is an RSA key of 1024 bits" in refused(users=[with_keys(weak)])
    public, _ = key_pair()
    assert "holds 2 lines" in refused(users=[with_keys(f"{public}\n{public}")])


def test_a_pasted_private_key_is_refused_and_never_echoed() -> None:
    _, private = key_pair()
    message = refused(users=[with_keys(private)])
    assert "= [secret]: this is a private key" in message
    body = private.splitlines()[1]
    assert body[:20] not in message


def test_a_key_on_two_users_is_refused_and_a_user_may_repeat_their_own() -> None:
    public, _ = key_pair()
    other, _ = key_pair("ecdsa", 256)
    message = refused(users=[with_keys(public), with_keys(other, public, name="bob")])
    assert message.startswith("ftpstack:users[1].sshKeys[1] = 'ssh-ed25519 AAAA")
    assert "is also a key of alice" in message and "give each partner a key" in message
    # Negative control: distinct keys, and one user listing their key twice, plan.
    settings(users=[with_keys(public, public), with_keys(other, name="bob")])


def test_keys_without_sftp_are_refused() -> None:
    public, _ = key_pair()
    message = refused(sftp=False, users=[with_keys(public)])
    assert message.startswith("ftpstack:sftp = False: is off while users have sshKeys")
    settings(sftp=False, users=[GOOD_USER])  # negative control
