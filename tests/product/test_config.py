"""L0: the edge where input enters — engine strings decoded, secrets stored in plaintext refused
(by key and by value), and no secret ever echoed in an error line."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ftpstack.config import plaintext_secrets, settings_from_config
from ftpstack.settings import SettingsError
from tests.support import PASSWORD, SSH_KEY, USER, certificate_pair

SECRET_PASSWORD = "very-secret-password-42"


def config(**values: Any) -> dict[str, str]:
    out = {"ftpstack:sshPublicKey": SSH_KEY}
    for key, value in values.items():
        out[f"ftpstack:{key}"] = value if isinstance(value, str) else json.dumps(value)
    return out


def refused(values: dict[str, str], secret: set[str] = frozenset(), stack: Any = None) -> str:  # type: ignore[assignment]
    with pytest.raises(SettingsError) as caught:
        settings_from_config(values, lambda key: key in secret, stack)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("ftpstack:"), message
    return message


def test_engine_strings_are_decoded_and_other_namespaces_left_alone() -> None:
    values = config(
        users=[{"name": USER, "password": PASSWORD}],
        maxClients="10",
        lbTcpReset="true",
        ftpSourceCidrs=["203.0.113.0/24"],
    )
    values["azure-native:location"] = "westeurope"
    s = settings_from_config(values, lambda key: key == "ftpstack:users")
    assert s.users[0].password.get_secret_value() == PASSWORD
    assert s.max_clients == 10 and s.lb_tcp_reset is True
    assert s.ftp_source_cidrs == ["203.0.113.0/24"]


def test_a_password_in_a_key_the_engine_does_not_call_secret_is_refused() -> None:
    message = refused(config(users=[{"name": "a", "password": SECRET_PASSWORD}]))
    assert "users[0].password is stored in plaintext" in message and "--secret" in message
    assert SECRET_PASSWORD not in message


def test_a_plaintext_tls_key_is_refused_without_showing_it() -> None:
    _, key = certificate_pair("ftp.example.com")
    message = refused({"ftpstack:sshPublicKey": SSH_KEY, "ftpstack:tlsPrivateKey": key})
    assert "tlsPrivateKey is stored in plaintext" in message and "PRIVATE" not in message


def test_a_plaintext_password_beside_a_secret_one_is_refused_by_the_stack_file() -> None:
    """The engine marks all of `users` secret once one password is; the stack file tells."""
    users = [{"name": "a", "password": SECRET_PASSWORD}, {"name": "b", "password": PASSWORD}]
    stack = {
        "ftpstack:users": [
            {"name": "a", "password": {"secure": "v1:abc"}},
            {"name": "b", "password": PASSWORD},
        ]
    }
    message = refused(config(users=users), {"ftpstack:users"}, stack)
    assert message.startswith("ftpstack:users[1].password is stored in plaintext"), message
    assert PASSWORD not in message and SECRET_PASSWORD not in message


def test_negative_control_without_the_stack_file_the_engine_cannot_tell() -> None:
    users = [{"name": "a", "password": SECRET_PASSWORD}, {"name": "bb", "password": PASSWORD}]
    s = settings_from_config(config(users=users), lambda key: key == "ftpstack:users")
    assert len(s.users) == 2


def test_plaintext_secrets_are_found_anywhere_in_a_stack_file() -> None:
    _, key = certificate_pair("x.example.com")
    found = plaintext_secrets(
        {
            "ftpstack:users": [
                {"name": "a", "password": {"secure": "v1:x"}},
                {"name": "b", "password": 1234},
            ],
            "ftpstack:tlsPrivateKey": {"secure": "v1:y"},
            "ftpstack:tags": {"note": key},
            "azure-native:clientSecret": "not ours",
        }
    )
    assert found == ["users[1].password", "tags.note"]


@pytest.mark.parametrize(
    ("values", "secret", "fragment"),
    [
        # a user entry of the wrong shape (its password sits beside the bad field)
        (
            config(users=[{"name": "bob", "password": SECRET_PASSWORD, "readOnly": "maybe"}]),
            {"ftpstack:users"},
            "users[0].readOnly",
        ),
        (
            config(users=[{"name": "Bad Name", "password": SECRET_PASSWORD}]),
            {"ftpstack:users"},
            "users[0].name",
        ),
        (config(users={"name": "bob", "password": SECRET_PASSWORD}), {"ftpstack:users"}, "users"),
        (config(users=[[SECRET_PASSWORD]]), {"ftpstack:users"}, "users[0]"),
        (
            config(tlsPrivateKey=["-----BEGIN PRIVATE KEY-----", SECRET_PASSWORD]),
            {"ftpstack:tlsPrivateKey"},
            "tlsPrivateKey",
        ),
        (
            config(tlsPrivateKey={"key": SECRET_PASSWORD}),
            {"ftpstack:tlsPrivateKey"},
            "tlsPrivateKey",
        ),
        (
            {"ftpstack:sshPublicKey": f"-----BEGIN OPENSSH PRIVATE KEY-----\n{SECRET_PASSWORD}"},
            set(),
            "sshPublicKey",
        ),
        (
            config(users=[{"name": "b", "password": f"{SECRET_PASSWORD}\n"}]),
            {"ftpstack:users"},
            "users[0].password",
        ),
        (config(tags={"x": SECRET_PASSWORD * 20}), {"ftpstack:tags"}, "tags.x"),
    ],
)
def test_a_refused_secret_is_never_echoed(
    values: dict[str, str], secret: set[str], fragment: str
) -> None:
    message = refused(values, secret)
    assert message.startswith(f"ftpstack:{fragment}"), message
    assert SECRET_PASSWORD not in message and "PRIVATE" not in message, message


def test_negative_control_a_non_secret_value_is_shown() -> None:
    message = refused(config(maxClients="many"))
    assert "'many'" in message


def test_a_private_key_as_the_ssh_key_is_told_to_paste_the_pub_file_not_to_encrypt_it() -> None:
    """A private key has no business in sshPublicKey, encrypted or not: the line says what
    belongs there, and shows nothing of the key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    private = (
        ed25519.Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        .decode()
    )
    body = private.splitlines()[1]
    values = {"ftpstack:sshPublicKey": private}
    stack = {"ftpstack:sshPublicKey": private}
    assert plaintext_secrets(stack) == []
    for message in (refused(values), refused(values, stack=stack)):
        assert message.startswith("ftpstack:sshPublicKey = [secret]: this is a private key")
        assert "id_ed25519.pub" in message and "plaintext" not in message, message
        assert body not in message and "PRIVATE" not in message, message
    # Negative control: the same key anywhere else is a secret stored in plaintext.
    elsewhere = {**config(), "ftpstack:tags": json.dumps({"note": private})}
    assert plaintext_secrets({"ftpstack:tags": {"note": private}}) == ["tags.note"]
    message = refused(elsewhere)
    assert message.startswith("ftpstack:tags.note is stored in plaintext"), message
    assert body not in message


def test_a_cidr_list_set_as_one_string_is_refused_with_the_list_to_write() -> None:
    """`pulumi config set ftpSourceCidrs 203.0.113.0/24` stores a string; the CLI itself refuses
    it for a key Pulumi.yaml declares an array, and so do the settings, with the fix."""
    message = refused({**config(), "ftpstack:ftpSourceCidrs": "203.0.113.0/24"})
    assert message == (
        "ftpstack:ftpSourceCidrs = '203.0.113.0/24': is one value, not a list; write a list: "
        "[203.0.113.0/24] (pulumi config set --path 'ftpSourceCidrs[0]' 203.0.113.0/24)"
    )
    # Negative control: what `pulumi config set --path 'ftpSourceCidrs[0]' ...` stores passes.
    s = settings_from_config(config(ftpSourceCidrs=["203.0.113.0/24"]), lambda key: False)
    assert s.ftp_source_cidrs == ["203.0.113.0/24"]
