"""The one settings model of ftpstack: every stack config key, validated once at the edge.

Everything the VM and the network need is derived from a `Settings` by pure functions
(`ftpstack.network`, `ftpstack.render`); the component only wires those derivations into
azure-native resources. A bad value is refused here, before any resource is registered, with one
line that names the config key, the value and the fix (`SettingsError`).

Deliberately not here: anything that needs Azure (the public IP address is only known once Azure
allocated it) and any Pulumi `Output`.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import ipaddress
import re
import struct
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

NAMESPACE = "ftpstack"
FTP_CONTROL_PORT = 21
SSH_PORT = 22
# Azure: "Load balancing rules per NIC (across all IPs on a NIC)": 300.
AZURE_MAX_LB_RULES_PER_NIC = 300
# Azure accepts 4-30 minutes on a public IP and 4-100 minutes on a load-balancer rule.
AZURE_IDLE_TIMEOUT_MINUTES = {"public-ip": (4, 30), "load-balancer": (4, 100)}
# Keepalive idle + interval must stay at or below this share of the idle timeout: one lost probe
# must still leave a second one inside the timeout, with room for clock and queueing jitter.
KEEPALIVE_HEADROOM = 0.75
SSH_KEY_TYPES = ("ssh-ed25519", "ssh-rsa")
MIN_PASSWORD_LENGTH = 12
# proftpd's anonymous logins, the OS's superuser, and the accounts ftpstack itself creates.
RESERVED_USER_NAMES = {"ftp", "anonymous", "root", "ftpvirtual", "ftpanon", "public"}
# Azure managed disks: 4 GiB (the smallest billed size) to 32 TiB.
AZURE_DISK_GB = (4, 32767)


class SettingsError(ValueError):
    """A stack config value that cannot be deployed; str() is the one line shown to people."""


def refuse(key: str, value: Any, problem: str, fix: str) -> PydanticCustomError:
    """The one error shape: the key, the value, what goes wrong, what to do."""
    return PydanticCustomError(
        "ftpstack", "{line}", {"line": f"{NAMESPACE}:{key} = {value!r}: {problem}; {fix}"}
    )


def _cidr(value: str) -> str:
    try:
        net = ipaddress.IPv4Network(value, strict=False)
    except ValueError:
        raise PydanticCustomError(
            "cidr", "not an IPv4 CIDR; write it like 203.0.113.0/24 (0.0.0.0/0 means any)"
        ) from None
    if str(net) != value and f"{net.network_address}" != value:
        raise PydanticCustomError(
            "cidr", "host bits are set; did you mean {net}?", {"net": str(net)}
        )
    return str(net)


Cidr = Annotated[str, AfterValidator(_cidr)]


def _passive_port(value: int) -> int:
    if not 1024 <= value <= 65535:
        raise PydanticCustomError(
            "port",
            "a passive port must be within 1024-65535 (below 1024 are FTP control 21, SSH 22 and "
            "other services); choose a range such as 50000-50099",
        )
    return value


Port = Annotated[int, AfterValidator(_passive_port)]
AZURE_TAG_VALUE = Annotated[str, Field(max_length=256)]


def _ssh_public_key(value: str) -> str:
    value = value.strip()
    if "PRIVATE KEY" in value:
        raise PydanticCustomError(
            "ssh_key", "this is a private key; give the .pub file's one line (ssh-ed25519 AAAA…)"
        )
    parts = value.split()
    if len(parts) < 2 or parts[0] not in SSH_KEY_TYPES:
        raise PydanticCustomError(
            "ssh_key",
            "not an OpenSSH public key; give one line starting with ssh-ed25519 or ssh-rsa",
        )
    try:
        blob = base64.b64decode(parts[1], validate=True)
        (length,) = struct.unpack(">I", blob[:4])
        embedded = blob[4 : 4 + length].decode()
    except (binascii.Error, struct.error, UnicodeDecodeError):
        raise PydanticCustomError(
            "ssh_key", "the key's base64 body is damaged; copy the .pub file again"
        ) from None
    if embedded != parts[0]:
        raise PydanticCustomError(
            "ssh_key",
            "the key body says {embedded} but the line says {kind}; copy it again",
            {"embedded": embedded, "kind": parts[0]},
        )
    return value


SshPublicKey = Annotated[str, AfterValidator(_ssh_public_key)]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        hide_input_in_errors=True,
    )


class FtpUser(_Model):
    """One virtual FTP user, jailed to its home directory under the FTP root."""

    # proftpd's AuthUserFile and the OS both accept this shape; "ftp"/"anonymous" are proftpd's
    # anonymous logins and must not become virtual users.
    name: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_-]{0,31}$")]
    password: SecretStr
    read_only: bool = False
    max_upload_mb: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def read_only_has_no_upload_limit(self) -> FtpUser:
        if self.read_only and self.max_upload_mb is not None:
            raise refuse(
                f"users[{self.name}].maxUploadMb",
                self.max_upload_mb,
                "is set on a read-only user, who cannot upload at all",
                "drop maxUploadMb or readOnly",
            )
        return self

    @model_validator(mode="after")
    def password_is_long_enough(self) -> FtpUser:
        length = len(self.password.get_secret_value())
        if length < MIN_PASSWORD_LENGTH:
            raise refuse(
                f"users[{self.name}].password",
                "[secret]",
                f"has {length} characters; bots on the Internet guess short ones",
                f"use at least {MIN_PASSWORD_LENGTH} characters",
            )
        return self

    @model_validator(mode="after")
    def name_is_not_reserved(self) -> FtpUser:
        if self.name in RESERVED_USER_NAMES:
            raise refuse(
                "users[].name", self.name, "is reserved by proftpd or the OS", "choose another name"
            )
        return self


class Settings(_Model):
    """Every config key of the `ftpstack` namespace; field names are the keys in camelCase."""

    location: str = Field("westeurope", description="Azure region of every resource.")
    resource_group_name: str = Field(
        "", description="Resource group name; empty lets Pulumi name a new one."
    )
    use_existing_resource_group: bool = Field(
        False, description="Deploy into the existing resource group resourceGroupName."
    )
    vnet_address_space: Cidr = Field("10.20.0.0/16", description="Address space of the new VNet.")
    subnet_prefix: Cidr = Field("10.20.1.0/24", description="Prefix of the new subnet.")
    existing_subnet_id: str = Field(
        "", description="Resource id of an existing subnet; set, no VNet is created."
    )
    vm_size: str = Field("Standard_B2s", description="Azure VM size.")
    image_publisher: Literal["Debian", "Canonical"] = Field(
        "Debian", description="Image publisher: Debian (default) or Canonical (Ubuntu)."
    )
    image_offer: str = Field("debian-12", description="Image offer.")
    image_sku: str = Field(
        "12-gen2", description="Image SKU; Debian 12 ships proftpd 1.3.8 (per-socket keepalive)."
    )
    image_version: str = Field("latest", description="Image version.")
    admin_username: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_-]{0,31}$")] = Field(
        "ftpadmin", description="Admin user on the VM (SSH key only, no password)."
    )
    ssh_public_key: SshPublicKey = Field(
        description="The admin's OpenSSH public key (ssh-ed25519 or ssh-rsa), one line."
    )
    ssh_source_cidrs: list[Cidr] = Field(
        [], description="CIDRs allowed to reach SSH (22); empty keeps port 22 closed."
    )
    ftp_source_cidrs: Annotated[list[Cidr], Field(min_length=1)] = Field(
        ["0.0.0.0/0"], description="CIDRs allowed to reach FTP (21 and the passive range)."
    )
    passive_port_start: Port = Field(50000, description="First port of the passive range.")
    passive_port_end: Port = Field(50099, description="Last port of the passive range.")
    max_clients: Annotated[int, Field(ge=1)] = Field(
        50, description="Most simultaneous logged-in clients; at most half the passive range."
    )
    exposure: Literal["public-ip", "load-balancer"] = Field(
        "public-ip",
        description="public-ip (static IP on the NIC) or load-balancer (Standard LB).",
    )
    lb_tcp_reset: bool = Field(
        False, description="load-balancer mode: send RST when a flow idles out (enableTcpReset)."
    )
    idle_timeout_minutes: int = Field(
        4, description="Azure's idle timeout of the public IP / LB rules (4-30, LB 4-100)."
    )
    keepalive_idle_seconds: Annotated[int, Field(ge=1, le=32767)] = Field(
        60, description="Seconds of silence before the first TCP keepalive probe."
    )
    keepalive_interval_seconds: Annotated[int, Field(ge=1, le=32767)] = Field(
        30, description="Seconds between TCP keepalive probes."
    )
    keepalive_count: Annotated[int, Field(ge=1, le=127)] = Field(
        4, description="Unanswered probes before the connection is declared dead."
    )
    dns_label: Annotated[str, Field(pattern=r"^$|^[a-z][a-z0-9-]{1,61}[a-z0-9]$")] = Field(
        "", description="DNS label: <label>.<region>.cloudapp.azure.com; empty for none."
    )
    users: list[FtpUser] = Field(
        [],
        description="FTP users: [{name, password}]; set passwords with "
        "pulumi config set --secret --path 'users[0].password'.",
    )
    password_hash_rounds: Annotated[int, Field(ge=5000, le=999_999_999)] = Field(
        5000, description="SHA-512-crypt rounds of the password hashes stored on the VM."
    )
    tags: dict[Annotated[str, Field(max_length=512)], AZURE_TAG_VALUE] = Field(
        {}, description="Azure tags on every resource."
    )
    tls: Literal["off", "allowed", "required"] = Field(
        "allowed",
        description="FTPS (explicit, AUTH TLS): off, allowed, or required (control and data).",
    )
    tls_certificate: str = Field(
        "", description="PEM certificate (chain); empty: a self-signed one made on first boot."
    )
    tls_private_key: SecretStr = Field(
        SecretStr(""), description="PEM private key of tlsCertificate; a secret."
    )
    anonymous: bool = Field(
        False, description="Anonymous read-only downloads from /srv/ftp/public."
    )
    ban: bool = Field(True, description="Ban addresses after repeated failed logins (mod_ban).")
    ban_max_failed_logins: Annotated[int, Field(ge=1)] = Field(
        5, description="Failed logins from one address, within banWindowSeconds, before a ban."
    )
    ban_window_seconds: Annotated[int, Field(ge=1, le=86399)] = Field(
        600, description="The window in which failed logins are counted."
    )
    ban_seconds: Annotated[int, Field(ge=1, le=86399)] = Field(
        3600, description="How long a banned address stays banned."
    )
    data_disk_size_gb: int = Field(
        0, description="A managed data disk mounted at the FTP root (0: none; 4-32767)."
    )
    data_disk_sku: Literal["Standard_LRS", "StandardSSD_LRS", "Premium_LRS"] = Field(
        "StandardSSD_LRS", description="Storage type of the data disk."
    )
    data_disk_protect: bool = Field(
        False, description="Protect the data disk from deletion by Pulumi."
    )
    post_deploy_check: bool = Field(
        True,
        description="After the VM, run the FTP smoke check from the deploying machine; turn off "
        "where that machine is not in ftpSourceCidrs.",
    )
    post_deploy_wait_seconds: Annotated[int, Field(ge=60, le=3600)] = Field(
        900, description="How long the smoke check waits for the VM to serve FTP."
    )
    cloud_init_check: bool = Field(
        False,
        description="Over SSH (ssh-agent), wait for cloud-init and fail on its errors; "
        "needs sshSourceCidrs.",
    )

    # -- derived values ------------------------------------------------------------------------

    @property
    def passive_ports(self) -> range:
        return range(self.passive_port_start, self.passive_port_end + 1)

    @property
    def idle_timeout_seconds(self) -> int:
        return self.idle_timeout_minutes * 60

    @property
    def ssh_open(self) -> bool:
        return bool(self.ssh_source_cidrs)

    @property
    def fqdn(self) -> str:
        """The public IP's DNS name as Azure forms it, or "" without a DNS label."""
        if not self.dns_label:
            return ""
        return f"{self.dns_label}.{self.location.lower().replace(' ', '')}.cloudapp.azure.com"

    # -- cross-field rules, each named for what it protects -------------------------------------

    @model_validator(mode="after")
    def passive_range_is_ordered(self) -> Settings:
        if self.passive_port_start > self.passive_port_end:
            raise refuse(
                "passivePortStart",
                self.passive_port_start,
                f"is above passivePortEnd ({self.passive_port_end})",
                "swap the two values",
            )
        return self

    @model_validator(mode="after")
    def passive_range_fits_max_clients(self) -> Settings:
        size = len(self.passive_ports)
        if size < 2 * self.max_clients:
            raise refuse(
                "passivePortStart..passivePortEnd",
                f"{self.passive_port_start}-{self.passive_port_end}",
                f"{size} ports is fewer than 2 x maxClients ({self.max_clients}); when the range "
                "runs out proftpd silently picks a random port outside it, which the NSG blocks",
                f"widen the range to at least {2 * self.max_clients} ports or lower maxClients",
            )
        return self

    @model_validator(mode="after")
    def load_balancer_rules_fit_a_nic(self) -> Settings:
        rules = len(self.passive_ports) + 1
        if self.exposure == "load-balancer" and rules > AZURE_MAX_LB_RULES_PER_NIC:
            raise refuse(
                "passivePortStart..passivePortEnd",
                f"{self.passive_port_start}-{self.passive_port_end}",
                f"load-balancer mode needs one rule per port ({rules} with port 21) and Azure "
                f"allows {AZURE_MAX_LB_RULES_PER_NIC} per NIC",
                f"narrow the range to at most {AZURE_MAX_LB_RULES_PER_NIC - 1} ports "
                "or use exposure: public-ip",
            )
        return self

    @model_validator(mode="after")
    def idle_timeout_is_in_azure_range(self) -> Settings:
        low, high = AZURE_IDLE_TIMEOUT_MINUTES[self.exposure]
        if not low <= self.idle_timeout_minutes <= high:
            raise refuse(
                "idleTimeoutMinutes",
                self.idle_timeout_minutes,
                f"Azure accepts {low}-{high} minutes in {self.exposure} mode",
                f"choose a value between {low} and {high}",
            )
        return self

    @model_validator(mode="after")
    def keepalive_beats_idle_timeout(self) -> Settings:
        # A control connection idle for longer than the idle timeout is forgotten by Azure
        # without a word; the first probe (idle) and a retry (interval) must both land inside it.
        budget = int(self.idle_timeout_seconds * KEEPALIVE_HEADROOM)
        used = self.keepalive_idle_seconds + self.keepalive_interval_seconds
        if used > budget:
            raise refuse(
                "keepaliveIdleSeconds",
                self.keepalive_idle_seconds,
                f"idle + interval ({used} s) is not comfortably below the "
                f"{self.idle_timeout_seconds} s idle timeout, so Azure may drop the control "
                "connection during a long transfer",
                f"keep keepaliveIdleSeconds + keepaliveIntervalSeconds at or below {budget} s",
            )
        return self

    @model_validator(mode="after")
    def tls_certificate_is_a_whole_pair(self) -> Settings:
        cert, key = self.tls_certificate.strip(), self.tls_private_key.get_secret_value().strip()
        if bool(cert) != bool(key):
            missing = "tlsPrivateKey" if cert else "tlsCertificate"
            raise refuse(
                missing,
                "",
                "is empty but its other half is set; proftpd needs the certificate and its key",
                f"set {missing} too (pulumi config set --secret for the key), or neither "
                "for a self-signed certificate",
            )
        if cert:
            check_certificate_pair(cert, key)
        if self.tls == "off" and cert:
            raise refuse(
                "tls", self.tls, "is off but a certificate is set", "set tls to allowed or required"
            )
        return self

    @model_validator(mode="after")
    def data_disk_size_is_in_azure_range(self) -> Settings:
        low, high = AZURE_DISK_GB
        if self.data_disk_size_gb and not low <= self.data_disk_size_gb <= high:
            raise refuse(
                "dataDiskSizeGb",
                self.data_disk_size_gb,
                f"Azure managed disks are {low}-{high} GiB",
                f"choose {low}-{high}, or 0 for no data disk",
            )
        return self

    @model_validator(mode="after")
    def cloud_init_check_can_reach_ssh(self) -> Settings:
        if self.cloud_init_check and not self.ssh_open:
            raise refuse(
                "cloudInitCheck",
                self.cloud_init_check,
                "SSH is closed (sshSourceCidrs is empty), so the check cannot reach the VM",
                "add the deploying machine's CIDR to sshSourceCidrs or set cloudInitCheck false",
            )
        return self

    @model_validator(mode="after")
    def user_names_are_unique(self) -> Settings:
        seen: set[str] = set()
        for user in self.users:
            if user.name in seen:
                raise refuse(
                    "users", user.name, "appears twice", "give each FTP user a distinct name"
                )
            seen.add(user.name)
        return self

    @model_validator(mode="after")
    def subnet_inside_vnet(self) -> Settings:
        if self.existing_subnet_id:
            if not re.fullmatch(
                r"/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Network/"
                r"virtualNetworks/[^/]+/subnets/[^/]+",
                self.existing_subnet_id,
            ):
                raise refuse(
                    "existingSubnetId",
                    self.existing_subnet_id,
                    "is not an Azure subnet resource id",
                    "copy the id from `az network vnet subnet show --query id`",
                )
            return self
        vnet = ipaddress.IPv4Network(self.vnet_address_space)
        subnet = ipaddress.IPv4Network(self.subnet_prefix)
        if not subnet.subnet_of(vnet):
            raise refuse(
                "subnetPrefix",
                self.subnet_prefix,
                f"is not inside vnetAddressSpace ({self.vnet_address_space})",
                "pick a subnet inside the VNet's address space",
            )
        return self

    @model_validator(mode="after")
    def resource_group_is_named_when_existing(self) -> Settings:
        if self.use_existing_resource_group and not self.resource_group_name:
            raise refuse(
                "resourceGroupName",
                self.resource_group_name,
                "is empty but useExistingResourceGroup is true",
                "name the existing resource group",
            )
        return self


def check_certificate_pair(cert_pem: str, key_pem: str) -> None:
    """Both PEMs parse and belong together; a refusal names the key that is wrong."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        cert = x509.load_pem_x509_certificates(cert_pem.encode())[0]
    except ValueError:
        raise refuse(
            "tlsCertificate", "[PEM]", "does not parse as a PEM certificate",
            "give the -----BEGIN CERTIFICATE----- block(s), leaf first",
        ) from None  # fmt: skip
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError):
        raise refuse(
            "tlsPrivateKey", "[secret]", "does not parse as an unencrypted PEM private key",
            "give the -----BEGIN PRIVATE KEY----- block, without a passphrase",
        ) from None  # fmt: skip
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    encoding = serialization.Encoding.PEM
    if key.public_key().public_bytes(encoding, public) != cert.public_key().public_bytes(
        encoding, public
    ):
        raise refuse(
            "tlsPrivateKey", "[secret]", "does not belong to tlsCertificate",
            "give the key that the certificate was issued for",
        )  # fmt: skip


def _loc(loc: tuple[int | str, ...]) -> str:
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key


def _value_at(raw: dict[str, Any], loc: tuple[int | str, ...]) -> Any:
    value: Any = raw
    for part in loc:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def explain(error: ValidationError, raw: dict[str, Any]) -> str:
    """One line for people from pydantic's first error: key, value, problem, fix."""
    first = error.errors()[0]
    loc = tuple(first["loc"])
    if first["type"] == "ftpstack":
        return str(first["msg"])
    key = f"{NAMESPACE}:{_loc(loc)}"
    if first["type"] == "extra_forbidden":
        known = [to_camel(name) for name in Settings.model_fields]
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"did you mean {close[0]}?" if close else "see Pulumi.yaml for the known keys"
        return f"{key} is not a setting of ftpstack; {hint}"
    if first["type"] == "missing":
        return f"{key} is not set; set it with `pulumi config set {_loc(loc)} <value>`"
    value = _value_at(raw, loc)
    if (loc and loc[-1] == "password") or "password" in key:
        value = "[secret]"
    return f"{key} = {value!r}: {first['msg']}"


def parse_settings(raw: dict[str, Any]) -> Settings:
    """Validate the stack config (keys without namespace); raise SettingsError with one line."""
    try:
        return Settings.model_validate(raw)
    except ValidationError as error:
        raise SettingsError(explain(error, raw)) from None
