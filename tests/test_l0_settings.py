"""L0: the settings model — every refused input gets one line naming the key, value and fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ftpstack import project
from ftpstack.config import settings_from_config
from ftpstack.settings import Settings, SettingsError, parse_settings

KEY = (Path(__file__).parent.parent / "Pulumi.dev.yaml").read_text()
SSH_KEY = yaml.safe_load(KEY)["config"]["ftpstack:sshPublicKey"]
GOOD_USER = {"name": "alice", "password": "alice-password-1"}


def settings(**raw: Any) -> Settings:
    return parse_settings({"sshPublicKey": SSH_KEY, **raw})


def refused(**raw: Any) -> str:
    with pytest.raises(SettingsError) as caught:
        settings(**raw)
    message = str(caught.value)
    assert "\n" not in message, "an error is one line"
    assert message.startswith("ftpstack:"), "an error names the config key"
    return message


def test_defaults_are_valid_and_safe() -> None:
    s = settings()
    assert s.ssh_source_cidrs == [] and not s.ssh_open
    assert s.image_publisher == "Debian" and s.image_offer == "debian-12"
    assert s.image_sku == "12-gen2"
    assert len(s.passive_ports) >= 2 * s.max_clients
    assert s.keepalive_idle_seconds + s.keepalive_interval_seconds < s.idle_timeout_seconds


@pytest.mark.parametrize(
    ("raw", "key", "fix"),
    [
        ({"passivePortStart": 50100, "passivePortEnd": 50000}, "passivePortStart", "swap"),
        ({"passivePortStart": 80}, "passivePortStart", "1024-65535"),
        ({"passivePortEnd": 70000}, "passivePortEnd", "1024-65535"),
        (
            {"passivePortStart": 30000, "passivePortEnd": 30005, "maxClients": 10},
            "passivePortStart..passivePortEnd",
            "at least 20 ports",
        ),
        (
            {"exposure": "load-balancer", "passivePortStart": 40000, "passivePortEnd": 40299},
            "passivePortStart..passivePortEnd",
            "at most 299 ports",
        ),
        ({"keepaliveIdleSeconds": 200}, "keepaliveIdleSeconds", "at or below 180 s"),
        (
            {"keepaliveIdleSeconds": 150, "keepaliveIntervalSeconds": 60},
            "keepaliveIdleSeconds",
            "at or below 180 s",
        ),
        ({"idleTimeoutMinutes": 3}, "idleTimeoutMinutes", "between 4 and 30"),
        ({"idleTimeoutMinutes": 31}, "idleTimeoutMinutes", "between 4 and 30"),
        (
            {"exposure": "load-balancer", "idleTimeoutMinutes": 101},
            "idleTimeoutMinutes",
            "between 4 and 100",
        ),
        ({"ftpSourceCidrs": ["10.0.0.0/33"]}, "ftpSourceCidrs[0]", "IPv4 CIDR"),
        ({"ftpSourceCidrs": ["not-a-cidr"]}, "ftpSourceCidrs[0]", "IPv4 CIDR"),
        ({"sshSourceCidrs": ["10.1.2.3/16"]}, "sshSourceCidrs[0]", "did you mean 10.1.0.0/16"),
        ({"ftpSourceCidrs": []}, "ftpSourceCidrs", "at least 1"),
        ({"sshPublicKey": "ssh-rsa AAAA"}, "sshPublicKey", "copy the .pub file"),
        ({"sshPublicKey": "hello"}, "sshPublicKey", "ssh-ed25519 or ssh-rsa"),
        (
            {"sshPublicKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn==\n-----END"},
            "sshPublicKey",
            "private key",
        ),
        (
            {"sshPublicKey": SSH_KEY.replace("ssh-ed25519", "ssh-rsa", 1)},
            "sshPublicKey",
            "says ssh-ed25519",
        ),
        ({"colour": "blue"}, "colour", "not a setting"),
        ({"maxClient": 5}, "maxClient", "did you mean maxClients"),
        ({"users": [GOOD_USER, GOOD_USER]}, "users", "distinct name"),
        ({"users": [{"name": "Alice!", "password": "x" * 12}]}, "users[0].name", "pattern"),
        ({"users": [{"name": "ftp", "password": "x" * 12}]}, "users[].name", "reserved"),
        ({"users": [{"name": "bob", "password": "short"}]}, "users[bob].password", "12"),
        ({"users": [{"name": "bob"}]}, "users[0].password", "not set"),
        ({"exposure": "nat-gateway"}, "exposure", "public-ip"),
        ({"imagePublisher": "RedHat"}, "imagePublisher", "Debian"),
        ({"subnetPrefix": "10.99.0.0/24"}, "subnetPrefix", "inside the VNet"),
        ({"existingSubnetId": "subnet-1"}, "existingSubnetId", "subnet resource id"),
        ({"useExistingResourceGroup": True}, "resourceGroupName", "name the existing"),
        ({"dnsLabel": "Has_Capitals"}, "dnsLabel", "pattern"),
        ({"keepaliveCount": 0}, "keepaliveCount", "greater than or equal to 1"),
        ({"maxClients": 0}, "maxClients", "greater than or equal to 1"),
        ({"passwordHashRounds": 1000}, "passwordHashRounds", "5000"),
    ],
)
def test_refused_with_one_line_naming_key_and_fix(raw: dict[str, Any], key: str, fix: str) -> None:
    message = refused(**raw)
    assert message.startswith(f"ftpstack:{key}"), message
    assert fix in message, message


@pytest.mark.parametrize(("start", "end"), [(21, 2000), (20, 23), (1, 1023)])
def test_passive_range_overlapping_ftp_or_ssh_is_refused(start: int, end: int) -> None:
    message = refused(passivePortStart=start, passivePortEnd=end)
    assert message.startswith("ftpstack:passivePortStart") and "21" in message


def test_the_error_shows_the_value_but_never_a_password() -> None:
    message = refused(users=[{"name": "bob", "password": "hunter2"}])
    assert "hunter2" not in message
    message = refused(users=[{"name": "BAD NAME", "password": "correct-horse-battery"}])
    assert "correct-horse-battery" not in message


def test_plaintext_passwords_are_refused_before_validation() -> None:
    config = {"ftpstack:sshPublicKey": SSH_KEY, "ftpstack:users": '[{"name":"a","password":"p"}]'}
    with pytest.raises(
        SettingsError, match=r"users\[0\]\.password is stored in plaintext.*--secret"
    ):
        settings_from_config(config, is_secret=lambda key: False)


def test_secret_users_are_accepted_and_engine_strings_decoded() -> None:
    config = {
        "ftpstack:sshPublicKey": SSH_KEY,
        "ftpstack:users": '[{"name":"alice","password":"alice-password-1"}]',
        "ftpstack:maxClients": "10",
        "ftpstack:lbTcpReset": "true",
        "ftpstack:ftpSourceCidrs": '["203.0.113.0/24"]',
        "azure-native:location": "westeurope",  # another namespace is not ours to judge
    }
    s = settings_from_config(config, is_secret=lambda key: key == "ftpstack:users")
    assert s.users[0].password.get_secret_value() == "alice-password-1"
    assert s.max_clients == 10 and s.lb_tcp_reset is True
    assert s.ftp_source_cidrs == ["203.0.113.0/24"]


def test_settings_repr_never_shows_a_password() -> None:
    s = settings(users=[GOOD_USER])
    assert "alice-password-1" not in repr(s) and "alice-password-1" not in str(s.model_dump())


def test_pulumi_yaml_is_generated_from_the_model() -> None:
    committed = (Path(__file__).parent.parent / "Pulumi.yaml").read_text()
    assert committed == project.render(), "Pulumi.yaml is stale: run `make pulumi-yaml`"


def test_every_key_is_declared_with_description_and_default() -> None:
    declared = project.project_file()["config"]
    assert set(declared) == {f.alias for f in Settings.model_fields.values()}
    for key, spec in declared.items():
        assert spec["description"], key
        assert spec["type"] in {"string", "integer", "boolean", "array", "object"}, key
        if key != "sshPublicKey":  # the one setting every stack must choose
            assert "default" in spec, key
    assert "default" not in declared["sshPublicKey"]
    assert project.project_file()["runtime"]["options"]["virtualenv"] == "venv"


def test_model_defaults_round_trip_through_pulumi_yaml() -> None:
    declared = project.project_file()["config"]
    raw = {key: spec["default"] for key, spec in declared.items() if "default" in spec}
    assert settings(**raw) == settings()


def test_readme_documents_every_key_and_output() -> None:
    from ftpstack import outputs

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for field in Settings.model_fields.values():
        assert f"| `{field.alias}` |" in readme, field.alias
    for name in outputs.ALL:
        assert f"| `{name}` |" in readme, name


# -- production settings (FTPS, users, anonymous, bans, data disk) ----------------------------


def certificate_pair(common_name: str) -> tuple[str, str]:
    """A throw-away self-signed certificate and its key, as PEM text."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem


def test_a_certificate_and_its_key_are_accepted() -> None:
    cert, key = certificate_pair("ftp.example.com")
    s = settings(tls="required", tlsCertificate=cert, tlsPrivateKey=key)
    assert s.tls_private_key.get_secret_value() == key
    assert "PRIVATE" not in repr(s)


@pytest.mark.parametrize(
    ("raw", "key", "fix"),
    [
        ({"tls": "required", "tlsCertificate": "CERT"}, "tlsPrivateKey", "set tlsPrivateKey"),
        ({"tls": "required", "tlsPrivateKey": "KEY"}, "tlsCertificate", "set tlsCertificate"),
        ({"tls": "sometimes"}, "tls", "allowed"),
        ({"users": [{**GOOD_USER, "readOnly": True, "maxUploadMb": 10}]}, "users[alice]", "drop"),
        ({"users": [{**GOOD_USER, "maxUploadMb": 0}]}, "users[0].maxUploadMb", "greater than"),
        ({"users": [{"name": "ftpanon", "password": "x" * 12}]}, "users[].name", "reserved"),
        ({"users": [{"name": "-dash", "password": "x" * 12}]}, "users[0].name", "pattern"),
        ({"users": [{"name": "a" * 33, "password": "x" * 12}]}, "users[0].name", "pattern"),
        ({"banMaxFailedLogins": 0}, "banMaxFailedLogins", "greater than or equal to 1"),
        ({"banWindowSeconds": -5}, "banWindowSeconds", "greater than or equal to 1"),
        ({"banSeconds": 0}, "banSeconds", "greater than or equal to 1"),
        ({"dataDiskSizeGb": 2}, "dataDiskSizeGb", "4-32767"),
        ({"dataDiskSizeGb": 40000}, "dataDiskSizeGb", "4-32767"),
        ({"dataDiskSizeGb": -1}, "dataDiskSizeGb", "4-32767"),
        ({"dataDiskSku": "UltraSSD_LRS"}, "dataDiskSku", "Premium_LRS"),
    ],
)
def test_production_settings_refused(raw: dict[str, Any], key: str, fix: str) -> None:
    message = refused(**raw)
    assert message.startswith(f"ftpstack:{key}"), message
    assert fix in message, message


def test_a_pem_that_does_not_parse_is_refused() -> None:
    cert, key = certificate_pair("ftp.example.com")
    message = refused(
        tls="required", tlsCertificate="-----BEGIN CERTIFICATE-----\nnope\n", tlsPrivateKey=key
    )
    assert message.startswith("ftpstack:tlsCertificate") and "does not parse" in message
    message = refused(tls="required", tlsCertificate=cert, tlsPrivateKey="garbage")
    assert message.startswith("ftpstack:tlsPrivateKey") and "does not parse" in message
    assert "garbage" not in message


def test_a_key_of_another_certificate_is_refused() -> None:
    cert, _ = certificate_pair("ftp.example.com")
    _, other_key = certificate_pair("other.example.com")
    message = refused(tls="required", tlsCertificate=cert, tlsPrivateKey=other_key)
    assert message.startswith("ftpstack:tlsPrivateKey") and "does not belong" in message


def test_a_plaintext_tls_key_is_refused() -> None:
    _, key = certificate_pair("ftp.example.com")
    config = {"ftpstack:sshPublicKey": SSH_KEY, "ftpstack:tlsPrivateKey": key}
    with pytest.raises(SettingsError, match="tlsPrivateKey is stored in plaintext"):
        settings_from_config(config, is_secret=lambda k: False)
