"""L0: the settings model — every refused input gets one line naming the key, the value (masked
when secret) and the fix; what Azure or FTP would refuse is refused first, each rule with its
source in `ftpstack.azure_rules`."""

from __future__ import annotations

import base64
import functools
import struct
from typing import Any

import pytest

from ftpstack.settings import Settings, SettingsError
from tests.support import GOOD_USER, SSH_KEY, certificate_pair, load_key, settings

PASSWORD = GOOD_USER["password"]


def refused(**raw: Any) -> str:
    with pytest.raises(SettingsError) as caught:
        settings(**raw)
    message = str(caught.value)
    assert "\n" not in message, "an error is one line"
    assert message.startswith("ftpstack:"), "an error names the config key"
    return message


def rsa_key(bits: int) -> str:
    """An ssh-rsa public key line with a modulus of `bits` bits (not a usable key: the model
    only reads its size)."""

    def field(data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + data

    modulus = (1 << (bits - 1)) | 1
    blob = (
        field(b"ssh-rsa")
        + field(b"\x01\x00\x01")
        + field(b"\x00" + modulus.to_bytes(bits // 8, "big"))
    )
    return f"ssh-rsa {base64.b64encode(blob).decode()} test"


def test_defaults_are_valid_and_safe() -> None:
    s = settings()
    assert s.ssh_source_cidrs == [] and not s.ssh_open
    assert s.image_publisher == "Debian" and s.image_sku == "12-gen2"
    assert len(s.passive_ports) >= 2 * s.max_clients
    assert s.keepalive_idle_seconds + s.keepalive_interval_seconds < s.idle_timeout_seconds
    assert s.data_disk_size_gb > 0, "every stack keeps its files on a disk of their own"
    assert s.instances == 1 and not s.shared_storage


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
            "at most 297 ports",
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
            {"sshPublicKey": SSH_KEY.replace("ssh-ed25519", "ssh-rsa", 1)},
            "sshPublicKey",
            "damaged or truncated",
        ),
        (
            {"sshPublicKey": SSH_KEY.split()[0] + " " + SSH_KEY.split()[1][:-8]},
            "sshPublicKey",
            "damaged or truncated",
        ),
        ({"sshPublicKey": rsa_key(1024)}, "sshPublicKey", "at least 2048"),
        ({"sshPublicKey": "ecdsa-sha2-nistp256 AAAAE2VjZHNh test"}, "sshPublicKey", "ECDSA"),
        ({"colour": "blue"}, "colour", "not a setting"),
        ({"maxClient": 5}, "maxClient", "did you mean maxClients"),
        ({"users": [GOOD_USER, GOOD_USER]}, "users[1].name", "distinct name"),
        ({"users": [{"name": "Alice!", "password": "x" * 12}]}, "users[0].name", "lower-case"),
        ({"users": [{"name": "a" * 33, "password": "x" * 12}]}, "users[0].name", "1-32"),
        ({"users": [{"name": "-dash", "password": "x" * 12}]}, "users[0].name", "starting with"),
        (
            {"users": [GOOD_USER, {"name": "ftp", "password": "x" * 12}]},
            "users[1].name",
            "reserved",
        ),
        ({"users": [{"name": "bob", "password": "short"}]}, "users[0].password", "12"),
        ({"users": [{"name": "bob"}]}, "users[0].password", "not set"),
        (
            {"users": [{"name": "bob", "password": "new\nline-password"}]},
            "users[0].password",
            "control character",
        ),
        ({"exposure": "nat-gateway"}, "exposure", "public-ip"),
        ({"imagePublisher": "RedHat"}, "imagePublisher", "Debian"),
        ({"subnetPrefix": "10.99.0.0/24"}, "subnetPrefix", "inside the VNet"),
        ({"subnetPrefix": "10.20.1.0/30"}, "subnetPrefix", "/29"),
        (
            {"vnetAddressSpace": "169.254.0.0/16", "subnetPrefix": "169.254.1.0/24"},
            "vnetAddressSpace",
            "reserves",
        ),
        ({"existingSubnetId": "subnet-1"}, "existingSubnetId", "subnet resource id"),
        ({"useExistingResourceGroup": True}, "resourceGroupName", "name the existing"),
        ({"resourceGroupName": "ends-with-dot."}, "resourceGroupName", "can't end"),
        ({"resourceGroupName": "x" * 91}, "resourceGroupName", "1-90"),
        ({"dnsLabel": "Has_Capitals"}, "dnsLabel", "lower-case"),
        ({"keepaliveCount": 0}, "keepaliveCount", "greater than or equal to 1"),
        ({"maxClients": 0}, "maxClients", "greater than or equal to 1"),
        ({"passwordHashRounds": 1000}, "passwordHashRounds", "5000"),
        ({"passwordHashRounds": 10_000_000}, "passwordHashRounds", "100000"),
        ({"location": ""}, "location", "not an Azure region"),
        ({"location": "westeuropa"}, "location", "did you mean westeurope"),
        ({"vmSize": ""}, "vmSize", "Standard_B2s"),
        ({"vmSize": "B2s"}, "vmSize", "Standard_B2s"),
        ({"adminUsername": "admin"}, "adminUsername", "reserves"),
        ({"adminUsername": "root"}, "adminUsername", "reserves"),
        ({"adminUsername": "Admin1"}, "adminUsername", "lower-case"),
        ({"sshSourceCidrs": ["0.0.0.0/0"]}, "sshSourceCidrs[0]", "whole Internet"),
        ({"sshSourceCidrs": ["*"]}, "sshSourceCidrs[0]", "whole Internet"),
        ({"sshSourceCidrs": ["Internet"]}, "sshSourceCidrs[0]", "whole Internet"),
        ({"sshSourceCidrs": ["0.0.0.0/1"]}, "sshSourceCidrs[0]", "nearly the whole Internet"),
        ({"tags": {f"t{i}": "x" for i in range(48)}}, "tags", "at most 45 tags"),
        ({"tags": {"a/b": "x"}}, "tags", "can't contain '/'"),
        ({"tags": {"a": "x" * 257}}, "tags.a", "at most 256"),
        ({"instances": 2}, "instances", "load-balancer"),
        ({"zones": [1, 1]}, "zones", "twice"),
        ({"zones": [4]}, "zones[0]", "less than or equal to 3"),
        ({"location": "westus", "zones": [1, 2]}, "zones", "no availability zones"),
        ({"adminUsername": "alice", "users": [GOOD_USER]}, "adminUsername", "different"),
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


def test_an_error_names_the_users_index_not_a_value_it_shows() -> None:
    message = refused(users=[GOOD_USER, {"name": "anonymous", "password": "x" * 12}])
    assert message.startswith("ftpstack:users[1].name = 'anonymous'"), message


def test_rsa_keys_of_2048_bits_and_ed25519_keys_are_accepted() -> None:
    assert settings(sshPublicKey=rsa_key(2048)).ssh_public_key.startswith("ssh-rsa")
    assert settings().ssh_public_key.startswith("ssh-ed25519")


# -- the SSH key: one public key, on one line ---------------------------------------------------


def ed25519_key(size: int) -> str:
    """An ssh-ed25519 line whose key field holds `size` bytes (32 is a well-formed key)."""
    blob = b"".join(struct.pack(">I", len(f)) + f for f in (b"ssh-ed25519", bytes(range(size))))
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} test"


def new_key_pair() -> tuple[str, str]:
    """(the .pub line, the OpenSSH private key file) of a fresh ed25519 key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    return public.decode() + " admin@laptop", private.decode()


@pytest.mark.parametrize(
    ("value", "fix"),
    [
        (f"{SSH_KEY}\n{SSH_KEY}", "one key, on one line: the .pub file's line"),
        (f"{SSH_KEY}\nssh-ed25519 AAAAC3Nza", "one key, on one line"),
        (f"{SSH_KEY}\r\n{rsa_key(2048)}", "holds 2 lines"),
        ("ssh-ed25519", "has no key after ssh-ed25519; copy the whole line"),
        ("ssh-ed25519 admin@laptop", "has no key after ssh-ed25519"),
        (ed25519_key(31), "an ed25519 key is 32 bytes, this one has 31"),
        (ed25519_key(33), "an ed25519 key is 32 bytes, this one has 33"),
        (ed25519_key(0), "this one has 0"),
    ],
)
def test_an_ssh_key_that_is_not_one_whole_public_key_is_refused(value: str, fix: str) -> None:
    message = refused(sshPublicKey=value)
    assert message.startswith("ftpstack:sshPublicKey = "), message
    assert fix in message, message


def test_negative_control_one_whole_key_passes_with_or_without_its_line_end() -> None:
    public, _ = new_key_pair()
    assert settings(sshPublicKey=ed25519_key(32)).ssh_public_key == ed25519_key(32)
    assert settings(sshPublicKey=public + "\n").ssh_public_key == public
    assert settings(sshPublicKey=f"{SSH_KEY}\r\n").ssh_public_key == SSH_KEY


@functools.cache
def private_keys() -> list[str]:
    """Private keys as people paste them: OpenSSH, PKCS#8, PKCS#1 RSA, PuTTY, a bare body."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    _, openssh = new_key_pair()
    _, pkcs8 = certificate_pair("x.example.com")
    pkcs1 = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        .decode()
    )
    body = "".join(openssh.splitlines()[1:-1])
    putty = (
        "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: admin\n"
        "Public-Lines: 2\nAAAAC3NzaC1lZDI1NTE5AAAAIPCeVSa2TooV0N8hzSmBcp+qFRo4mijl3wRorZpdT9eF\n"
        "Private-Lines: 1\nAAAAIHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4\n"
    )
    return [openssh, pkcs8, pkcs1, putty, body]


@pytest.mark.parametrize("kind", ["openssh", "pkcs8", "pkcs1", "putty", "bare body"])
def test_a_private_key_pasted_as_the_public_key_is_refused_and_never_shown(kind: str) -> None:
    index = ["openssh", "pkcs8", "pkcs1", "putty", "bare body"].index(kind)
    private = private_keys()[index]
    message = refused(sshPublicKey=private)
    assert message.startswith("ftpstack:sshPublicKey = [secret]: this is a private key"), message
    assert "paste the .pub file (e.g. ~/.ssh/id_ed25519.pub)" in message, message
    for line in private.splitlines():
        if len(line) > 8:
            assert line not in message, "no line of the private key is echoed"


def test_regions_are_normalised_as_azure_names_them() -> None:
    assert settings(location="West Europe").location == "westeurope"


def test_settings_repr_never_shows_a_password() -> None:
    s = settings(users=[GOOD_USER])
    assert PASSWORD not in repr(s) and PASSWORD not in str(s.model_dump())


# -- several instances ---------------------------------------------------------------------------


def test_several_instances_behind_a_load_balancer_are_accepted() -> None:
    s = settings(instances=2, exposure="load-balancer", zones=[1, 2])
    assert s.shared_storage and s.instances == 2


def test_each_slice_must_hold_twice_its_share_of_max_clients() -> None:
    # 40 ports over 2 instances: 20 each; maxClients 30 means 15 each, which needs 30 ports.
    message = refused(
        instances=2,
        exposure="load-balancer",
        passivePortStart=50000,
        passivePortEnd=50039,
        maxClients=30,
    )
    assert "each instance's slice of 20 ports (40 over 2 instances)" in message, message
    assert "2 x its share of maxClients (15 of 30)" in message, message
    assert "at least 60 ports" in message, message


@pytest.mark.parametrize(("end", "passes"), [(50049, False), (50100, False), (50101, True)])
def test_the_slice_message_says_what_each_number_is(end: int, passes: bool) -> None:
    """maxClients 50 over 3 instances is 17 each, so each slice needs 34 ports: 102 in all."""
    raw = {
        "instances": 3,
        "exposure": "load-balancer",
        "passivePortStart": 50000,
        "passivePortEnd": end,
        "maxClients": 50,
    }
    if passes:  # negative control: the range the message asks for is accepted
        assert settings(**raw).passive_port_end == end
        return
    message = refused(**raw)
    ports = end - 50000 + 1
    assert message.startswith(
        f"ftpstack:passivePortStart..passivePortEnd = '50000-{end}': each instance's slice of "
        f"{ports // 3} ports ({ports} over 3 instances) is fewer than 2 x its share of "
        "maxClients (17 of 50);"
    ), message
    assert message.endswith("widen the range to at least 102 ports or lower maxClients"), message


def test_one_instance_names_the_range_and_max_clients() -> None:
    message = refused(passivePortStart=30000, passivePortEnd=30005, maxClients=10)
    assert "'30000-30005': holds 6 ports, fewer than 2 x maxClients (10);" in message, message
    assert settings(passivePortStart=30000, passivePortEnd=30019, maxClients=10)


def test_shared_storage_size_fits_premium_files() -> None:
    message = refused(instances=2, exposure="load-balancer", sharedStorageGb=50)
    assert message.startswith("ftpstack:sharedStorageGb = 50") and "100-102400" in message


# -- production settings (FTPS, users, anonymous, bans, data disk) -------------------------------


def test_a_certificate_and_its_key_are_accepted() -> None:
    cert, key = certificate_pair("ftp.example.com")
    s = settings(tls="required", tlsCertificate=cert, tlsPrivateKey=key)
    assert s.tls_private_key.get_secret_value() == key
    assert "PRIVATE" not in repr(s)


def test_a_certificate_with_its_chain_in_order_is_accepted_and_out_of_order_refused() -> None:
    ca, ca_key = certificate_pair("Example CA", ca=True)
    leaf, key = certificate_pair("ftp.example.com", issuer=(ca, load_key(ca_key)))
    assert settings(tls="required", tlsCertificate=leaf + ca, tlsPrivateKey=key)
    message = refused(tls="required", tlsCertificate=ca + leaf, tlsPrivateKey=key)
    assert message.startswith("ftpstack:tlsCertificate") and "leaf first" in message


def test_an_expired_certificate_is_refused() -> None:
    cert, key = certificate_pair("ftp.example.com", days=-1)
    message = refused(tls="required", tlsCertificate=cert, tlsPrivateKey=key)
    assert message.startswith("ftpstack:tlsCertificate") and "expired" in message


@pytest.mark.parametrize(
    ("raw", "key", "fix"),
    [
        ({"tls": "required", "tlsCertificate": "CERT"}, "tlsPrivateKey", "set tlsPrivateKey"),
        ({"tls": "required", "tlsPrivateKey": "KEY"}, "tlsCertificate", "set tlsCertificate"),
        ({"tls": "sometimes"}, "tls", "allowed"),
        (
            {"users": [{**GOOD_USER, "readOnly": True, "maxUploadMb": 10}]},
            "users[0].maxUploadMb",
            "drop",
        ),
        ({"users": [{**GOOD_USER, "maxUploadMb": 0}]}, "users[0].maxUploadMb", "greater than"),
        ({"users": [{"name": "ftpanon", "password": "x" * 12}]}, "users[0].name", "reserved"),
        ({"banMaxFailedLogins": 0}, "banMaxFailedLogins", "greater than or equal to 1"),
        ({"banWindowSeconds": -5}, "banWindowSeconds", "greater than or equal to 1"),
        ({"banSeconds": 0}, "banSeconds", "greater than or equal to 1"),
        ({"dataDiskSizeGb": 2}, "dataDiskSizeGb", "4-32767"),
        ({"dataDiskSizeGb": 40000}, "dataDiskSizeGb", "4-32767"),
        ({"dataDiskSizeGb": -1}, "dataDiskSizeGb", "4-32767"),
        ({"dataDiskSku": "UltraSSD_LRS"}, "dataDiskSku", "Premium_LRS"),
        ({"loginTimeoutSeconds": 1}, "loginTimeoutSeconds", "greater than or equal to 5"),
        ({"maxClientsPerHost": 0}, "maxClientsPerHost", "greater than or equal to 1"),
        ({"idleFloodHosts": 0}, "idleFloodHosts", "greater than or equal to 1"),
        ({"idleFloodHosts": 101}, "idleFloodHosts", "less than or equal to 100"),
    ],
)
def test_production_settings_refused(raw: dict[str, Any], key: str, fix: str) -> None:
    message = refused(**raw)
    assert message.startswith(f"ftpstack:{key}"), message
    assert fix in message, message


def test_a_pem_that_does_not_parse_is_refused_without_echoing_it() -> None:
    cert, key = certificate_pair("ftp.example.com")
    message = refused(
        tls="required", tlsCertificate="-----BEGIN CERTIFICATE-----\nnope\n", tlsPrivateKey=key
    )
    assert message.startswith("ftpstack:tlsCertificate") and "does not parse" in message
    message = refused(tls="required", tlsCertificate=cert, tlsPrivateKey="garbage-key-text")
    assert message.startswith("ftpstack:tlsPrivateKey") and "does not parse" in message
    assert "garbage-key-text" not in message


def test_a_key_of_another_certificate_is_refused() -> None:
    cert, _ = certificate_pair("ftp.example.com")
    _, other_key = certificate_pair("other.example.com")
    message = refused(tls="required", tlsCertificate=cert, tlsPrivateKey=other_key)
    assert message.startswith("ftpstack:tlsPrivateKey") and "does not belong" in message


def test_the_model_is_frozen() -> None:
    s = settings()
    with pytest.raises(Exception):  # noqa: B017 (pydantic's frozen error)
        s.max_clients = 3  # type: ignore[misc]
    assert isinstance(s, Settings)


# -- a value with its line end ----------------------------------------------------------------

SUBNET_ID = (
    "/subscriptions/0000/resourceGroups/net-rg/providers/Microsoft.Network/"
    "virtualNetworks/vnet/subnets/ftp"
)


def at_key(key: str, value: str) -> dict[str, Any]:
    """The raw settings that put `value` at `key` (and nothing else odd)."""
    if key.startswith("users[0]."):
        return {"users": [{**GOOD_USER, key.removeprefix("users[0]."): value}]}
    if key == "tags":
        return {"tags": {value: "x"}}
    if key == "ftpSourceCidrs[0]":
        return {"ftpSourceCidrs": [value]}
    return {key: value}


@pytest.mark.parametrize(
    ("key", "valid"),
    [
        ("users[0].name", "alice"),
        ("users[0].password", PASSWORD),
        ("adminUsername", "ftpadmin"),
        ("dnsLabel", "acme-ftp-dev"),
        ("resourceGroupName", "rg-ftp"),
        ("vmSize", "Standard_B2s"),
        ("existingSubnetId", SUBNET_ID),
        ("ftpSourceCidrs[0]", "203.0.113.0/24"),
        ("tags", "environment"),
    ],
)
def test_a_value_with_a_trailing_newline_is_refused_and_without_it_passes(
    key: str, valid: str
) -> None:
    message = refused(**at_key(key, valid + "\n"))
    assert message.startswith(f"ftpstack:{key}"), message
    if "password" in key:
        assert valid not in message and "control character" in message, message
    else:
        assert repr(valid + "\n") in message, "the line shows the value, newline and all"
    assert settings(**at_key(key, valid)), "negative control: the value itself passes"


@pytest.mark.parametrize(
    ("pattern", "valid"),
    [
        ("RESOURCE_GROUP_NAME", "rg-ftp"),
        ("DNS_LABEL", "acme-ftp-dev"),
        ("ADMIN_USERNAME", "ftpadmin"),
        ("VM_SIZE", "Standard_B2s"),
        ("NVME_SIZE", "Standard_D2s_v6"),
    ],
)
def test_azure_name_patterns_end_at_the_end_not_before_a_newline(pattern: str, valid: str) -> None:
    """`$` matches before a final newline; the patterns must hold even under re.match."""
    from ftpstack import azure_rules

    regex = getattr(azure_rules, pattern)
    assert regex.match(valid), "negative control: the valid name matches"
    assert not regex.match(valid + "\n")


# -- "did you mean" ------------------------------------------------------------------------------


def with_key(key: str, value: Any) -> dict[str, Any]:
    """Raw settings with `value` under `key`; users[0].<k> is a key of the first user."""
    if key.startswith("users[0]."):
        return {"users": [{**GOOD_USER, key.removeprefix("users[0]."): value}]}
    return {key: value}


@pytest.mark.parametrize(
    ("key", "value", "meant"),
    [
        ("TLS", "required", "tls"),
        ("Tls", "required", "tls"),
        ("passiveportstart", 50000, "passivePortStart"),
        ("PassivePortEnd", 50099, "passivePortEnd"),
        ("maxClient", 5, "maxClients"),
        ("users[0].redOnly", True, "readOnly"),
        ("users[0].ReadOnly", True, "readOnly"),
        ("users[0].maxUploadMB", 10, "maxUploadMb"),
    ],
)
def test_an_unknown_key_is_refused_with_the_key_it_most_likely_meant(
    key: str, value: Any, meant: str
) -> None:
    message = refused(**with_key(key, value))
    assert message.startswith(f"ftpstack:{key} is not "), message
    assert message.endswith(f"did you mean {meant}?"), message
    fixed = key.rsplit(".", 1)[0] + "." + meant if "." in key else meant
    assert settings(**with_key(fixed, value)), "negative control: the key it meant passes"


def test_an_unknown_user_key_without_a_near_one_lists_the_user_keys() -> None:
    message = refused(users=[{**GOOD_USER, "colour": "blue"}])
    assert message == (
        "ftpstack:users[0].colour is not a key of users[0]; the keys are name, password, "
        "readOnly, maxUploadMb, sshKeys"
    )


@pytest.mark.parametrize(
    ("key", "value", "meant"),
    [
        ("tls", "Required", "required"),
        ("tls", "require", "required"),
        ("tls", "OFF", "off"),
        ("exposure", "loadbalancer", "load-balancer"),
        ("imagePublisher", "debian", "Debian"),
        ("dataDiskSku", "premium_lrs", "Premium_LRS"),
    ],
)
def test_a_choice_written_another_way_is_refused_with_the_choice_it_meant(
    key: str, value: str, meant: str
) -> None:
    message = refused(**{key: value})
    assert message.startswith(f"ftpstack:{key} = {value!r}: is not one of "), message
    assert message.endswith(f"; did you mean {meant}?"), message
    assert settings(**{key: meant}), "negative control: the choice it meant passes"


def test_a_choice_far_from_every_value_lists_them_without_a_guess() -> None:
    message = refused(tls="sometimes")
    assert message == "ftpstack:tls = 'sometimes': is not one of off, allowed or required"


def test_a_missing_user_password_is_set_with_path_and_secret() -> None:
    message = refused(users=[{"name": "bob"}])
    assert message == (
        "ftpstack:users[0].password is not set; set it with "
        "`pulumi config set --secret --path 'users[0].password' <value>`"
    )


# -- a list written as one value -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "fix", "items"),
    [
        (
            "ftpSourceCidrs",
            "203.0.113.0/24",
            "write a list: [203.0.113.0/24] "
            "(pulumi config set --path 'ftpSourceCidrs[0]' 203.0.113.0/24)",
            ["203.0.113.0/24"],
        ),
        (
            "ftpSourceCidrs",
            "203.0.113.0/24, 198.51.100.0/24",
            "write a list: [203.0.113.0/24, 198.51.100.0/24]",
            ["203.0.113.0/24", "198.51.100.0/24"],
        ),
        ("sshSourceCidrs", "203.0.113.7/32", "write a list: [203.0.113.7/32]", ["203.0.113.7/32"]),
        ("sshSourceCidrs", "", "write a list, e.g. [203.0.113.7/32]", []),
        ("zones", 1, "write a list: [1] (pulumi config set --path 'zones[0]' 1)", [1]),
        ("zones", "1", "write a list: [1]", [1]),
    ],
)
def test_a_list_written_as_one_value_is_refused_with_the_list_to_write(
    key: str, value: Any, fix: str, items: list[Any]
) -> None:
    """Not taken as a one-item list: the Pulumi CLI refuses a non-list value for a key that
    Pulumi.yaml declares an array, so the offline plan must not pass it."""
    message = refused(**{key: value})
    assert message.startswith(f"ftpstack:{key} = {value!r}: is "), message
    assert fix in message, message
    s = settings(**{key: items})  # negative control: the list it asks for passes
    assert s.model_dump(by_alias=True)[key] == items


SNAPSHOT = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/snapshots/ftp-data-move"
HUB_ZONE = (
    "/subscriptions/s/resourceGroups/hub/providers/Microsoft.Network/privateDnsZones/"
    "privatelink.file.core.windows.net"
)
HA = {"exposure": "load-balancer", "instances": 2, "maxClients": 40}


@pytest.mark.parametrize(
    ("raw", "key", "fix"),
    [
        ({"dataDiskSourceId": "ftp-data-move"}, "dataDiskSourceId", "az snapshot show"),
        ({"dataDiskSourceId": SNAPSHOT + "\n"}, "dataDiskSourceId", "newline"),
        ({"dataDiskSourceId": SNAPSHOT, "dataDiskSizeGb": 0}, "dataDiskSourceId", "drop"),
        ({"dataDiskSourceId": SNAPSHOT, **HA}, "dataDiskSourceId", "drop"),
        ({"privateDnsZoneId": HUB_ZONE.replace("file", "blob"), **HA}, "privateDnsZoneId", "zone"),
        ({"privateDnsZoneId": HUB_ZONE}, "privateDnsZoneId", "drop"),
        ({"applyRetry": -1}, "applyRetry", "greater than or equal to 0"),
    ],
)
def test_references_to_existing_resources_are_refused_unless_sound(
    raw: dict[str, Any], key: str, fix: str
) -> None:
    message = refused(**raw)
    assert message.startswith(f"ftpstack:{key}"), message
    assert fix in message, message


def test_negative_control_sound_references_pass() -> None:
    assert settings(dataDiskSourceId=SNAPSHOT).data_disk_source_id == SNAPSHOT
    assert settings(privateDnsZoneId=HUB_ZONE, **HA).private_dns_zone_id == HUB_ZONE
    assert settings(applyRetry=3).apply_retry == 3


def test_an_address_holding_idle_connections_must_reach_the_ban_within_its_window() -> None:
    # 2 connections per address, 5 timeouts to a ban: 3 rounds of 60 s, past a 120 s window.
    raw = {"maxClientsPerHost": 2, "loginTimeoutSeconds": 60, "banWindowSeconds": 120}
    message = refused(**raw)
    assert message.startswith("ftpstack:banWindowSeconds = 120: "), message
    assert "only after 180 s" in message and "at least 180" in message, message
    assert "\n" not in message
    # Negative controls: a window that holds the rounds, or no bans at all, pass.
    assert settings(**{**raw, "banWindowSeconds": 180}).ban_window_seconds == 180
    assert not settings(**raw, ban=False).ban


def test_login_timeouts_are_short_and_idle_floods_absorbed_by_default() -> None:
    s = settings()
    assert s.login_timeout_seconds == 15 and s.idle_flood_hosts == 8
