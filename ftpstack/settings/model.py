"""The one settings model of ftpstack: every stack config key, validated once at the edge.

Everything the VMs and the network need is derived from a `Settings` by pure functions
(`ftpstack.rules`, `ftpstack.render`, `ftpstack.bootstrap`); the component only wires those
derivations into azure-native resources. A bad value is refused here, before any resource is
registered, with one line that names the config key, the value (masked when secret) and the fix.

Deliberately not here: anything that needs Azure (the public IP address is known only once Azure
allocated it), any Pulumi `Output`, and the check that a password was stored as a secret (that
needs the stack file or the engine's list of secret keys: `ftpstack.config`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic.alias_generators import to_camel

from ftpstack import azure_rules as azure
from ftpstack.settings.coherence import RULES
from ftpstack.settings.types import (
    AdminCidr,
    AdminUsername,
    Cidr,
    DnsLabel,
    PassivePort,
    Password,
    Region,
    ResourceGroupName,
    SftpUserKey,
    SshPublicKey,
    TagName,
    TagValue,
    Trimmed,
    UserName,
    VmSize,
    written_as_list,
)

# SHA-512-crypt rounds: glibc's default, up to what keeps a login under ~100 ms on a small VM
# (measured: 100,000 rounds take about 60 ms on one core here).
HASH_ROUNDS = (5000, 100_000)
# Servers behind one load balancer (each has a backend pool of its own, declared in advance).
MAX_INSTANCES = 10


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

    name: UserName
    password: Password
    read_only: bool = False
    max_upload_mb: Annotated[int, Field(ge=1)] | None = None
    # OpenSSH public keys that log this user in over SFTP instead of the password.
    ssh_keys: list[SftpUserKey] = []


class Settings(_Model):
    """Every config key of the `ftpstack` namespace; field names are the keys in camelCase."""

    # -- where it runs ----------------------------------------------------------------------------
    location: Region = Field("westeurope", description="Azure region of every resource.")
    resource_group_name: ResourceGroupName = Field(
        "", description="Resource group name; empty lets Pulumi name a new one."
    )
    use_existing_resource_group: bool = Field(
        False, description="Deploy into the existing resource group resourceGroupName."
    )
    instances: Annotated[int, Field(ge=1, le=MAX_INSTANCES)] = Field(
        1,
        description="FTP servers behind one address (2+: load-balancer exposure, shared storage).",
    )
    zones: Annotated[
        list[Annotated[int, Field(ge=1, le=3)]], written_as_list("zones", "1, 2, 3")
    ] = Field(
        [],
        description="Availability zones to spread instances over, e.g. [1, 2, 3]; [] for none.",
    )
    # -- network ----------------------------------------------------------------------------------
    vnet_address_space: Cidr = Field("10.20.0.0/16", description="Address space of the new VNet.")
    subnet_prefix: Cidr = Field("10.20.1.0/24", description="Prefix of the new subnet.")
    files_subnet_prefix: Cidr = Field(
        "10.20.2.0/28",
        description="instances 2+: the subnet of the file share's private endpoint, behind an NSG "
        "that lets only the FTP servers mount it (in the VNet of existingSubnetId, if set).",
    )
    existing_subnet_id: Trimmed = Field(
        "", description="Resource id of an existing subnet; set, no VNet is created."
    )
    exposure: Literal["public-ip", "load-balancer"] = Field(
        "public-ip", description="public-ip (static IP on the NIC) or load-balancer (Standard LB)."
    )
    lb_tcp_reset: bool = Field(
        False, description="load-balancer mode: send RST when a flow idles out (enableTcpReset)."
    )
    idle_timeout_minutes: int = Field(
        4, description="Azure's idle timeout of the public IP / LB rules (4-30, LB 4-100)."
    )
    ftp_source_cidrs: Annotated[
        list[Cidr], Field(min_length=1), written_as_list("ftpSourceCidrs", "203.0.113.0/24")
    ] = Field(["0.0.0.0/0"], description="CIDRs allowed to reach FTP (21 and the passive range).")
    ssh_source_cidrs: Annotated[
        list[AdminCidr], written_as_list("sshSourceCidrs", "203.0.113.7/32")
    ] = Field([], description="CIDRs allowed to reach SSH (22); empty keeps port 22 closed.")
    dns_label: DnsLabel = Field(
        "", description="DNS label: <label>.<region>.cloudapp.azure.com; empty for none."
    )
    # -- the VM -----------------------------------------------------------------------------------
    vm_size: VmSize = Field("Standard_B2s", description="Azure VM size.")
    image_publisher: Literal["Debian", "Canonical"] = Field(
        "Debian", description="Image publisher: Debian (default) or Canonical (Ubuntu)."
    )
    image_offer: Trimmed = Field("debian-12", description="Image offer.")
    image_sku: Trimmed = Field(
        "12-gen2", description="Image SKU; Debian 12 ships proftpd 1.3.8 (per-socket keepalive)."
    )
    image_version: Trimmed = Field("latest", description="Image version.")
    admin_username: AdminUsername = Field(
        "ftpadmin", description="Admin user on the VM (SSH key only, no password)."
    )
    ssh_public_key: SshPublicKey = Field(
        description="The admin's OpenSSH public key (ssh-ed25519 or ssh-rsa), one line."
    )
    # -- FTP --------------------------------------------------------------------------------------
    passive_port_start: PassivePort = Field(50000, description="First port of the passive range.")
    passive_port_end: PassivePort = Field(50099, description="Last port of the passive range.")
    max_clients: Annotated[int, Field(ge=1)] = Field(
        50, description="Most simultaneous logged-in clients; at most half the passive range."
    )
    max_clients_per_host: Annotated[int, Field(ge=1)] = Field(
        10, description="Most simultaneous connections from one address."
    )
    login_timeout_seconds: Annotated[int, Field(ge=5, le=300)] = Field(
        15,
        description="Seconds a connection may take to log in; one that does not is closed "
        "(and, with ban, counts like a failed login).",
    )
    idle_flood_hosts: Annotated[int, Field(ge=1, le=100)] = Field(
        8,
        description="Addresses that may each hold maxClientsPerHost connections that never log "
        "in, all at once, while customers still get in (about 1.5 MB a connection).",
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
    users: list[FtpUser] = Field(
        [],
        description="FTP users [{name, password, readOnly, maxUploadMb}]; passwords as secrets.",
    )
    password_hash_rounds: Annotated[int, Field(ge=HASH_ROUNDS[0], le=HASH_ROUNDS[1])] = Field(
        5000,
        description="SHA-512-crypt rounds of the password hashes stored on the VM (5000-100000).",
    )
    anonymous: bool = Field(
        False, description="Anonymous read-only downloads from /srv/ftp/public."
    )
    ban: bool = Field(
        True,
        description="Ban addresses after repeated failed logins or connection floods (mod_ban).",
    )
    ban_max_failed_logins: Annotated[int, Field(ge=1)] = Field(
        5,
        description="Failed logins (or connections that never log in) from one address, within "
        "banWindowSeconds, before a ban.",
    )
    ban_window_seconds: Annotated[int, Field(ge=1, le=86399)] = Field(
        600, description="The window in which failed logins (and login timeouts) are counted."
    )
    ban_seconds: Annotated[int, Field(ge=1, le=86399)] = Field(
        3600, description="How long a banned address stays banned."
    )
    ban_connects_per_minute: Annotated[int, Field(ge=0)] = Field(
        600,
        description="Connections from one address in a minute that ban it (0: no such ban).",
    )
    sftp: bool = Field(
        True,
        description="Serve SFTP on port 22 of the same address, from the same proftpd (the "
        "same users, files and limits); admin SSH then listens on 2200 (2200+i behind a load "
        "balancer).",
    )
    # -- FTPS -------------------------------------------------------------------------------------
    tls: Literal["off", "allowed", "required"] = Field(
        "required",
        description="FTPS (explicit, AUTH TLS): off, allowed, or required (control and data).",
    )
    tls_certificate: str = Field(
        "",
        description="PEM certificate, leaf first, then its chain; empty: a self-signed one.",
    )
    tls_private_key: SecretStr = Field(
        SecretStr(""), description="PEM private key of tlsCertificate; a secret."
    )
    # -- storage ----------------------------------------------------------------------------------
    data_disk_size_gb: int = Field(
        32,
        description="Data disk (GiB) for the FTP tree, kept across VM replacements; 0: none.",
    )
    data_disk_sku: Literal["Standard_LRS", "StandardSSD_LRS", "Premium_LRS"] = Field(
        "StandardSSD_LRS", description="Storage type of the data disk."
    )
    data_disk_protect: bool = Field(
        False,
        description="Protect the files' storage from deletion by Pulumi (the data disk, or "
        "with instances 2+ the shared storage account and share).",
    )
    shared_storage_gb: int = Field(
        100,
        description="instances 2+: GiB of the shared Azure Files NFS share (100-102400).",
    )
    share_root_squash: bool = Field(
        True,
        description="instances 2+: root on a server that mounts the share acts as nobody there "
        "(RootSquash); turning it on for an existing share is a step of its own.",
    )
    data_disk_source_id: Trimmed = Field(
        "",
        description="Resource id of a snapshot or disk the data disk is created from (a zone "
        "move, a restore); set, it replaces the data disk.",
    )
    private_dns_zone_id: Trimmed = Field(
        "",
        description="instances 2+: resource id of an existing privatelink.file.core.windows.net "
        "zone (hub-and-spoke); empty: one is created and linked to the VNet.",
    )
    # -- checks and tags --------------------------------------------------------------------------
    apply_retry: Annotated[int, Field(ge=0)] = Field(
        0,
        description="Change it (any new number) to run the configuration steps again after a "
        "failed apply: Azure never reruns an unchanged Run Command.",
    )
    post_deploy_check: bool = Field(
        True,
        description="After each change, run the FTP smoke check from the deploying machine.",
    )
    post_deploy_wait_seconds: Annotated[int, Field(ge=60, le=3600)] = Field(
        900, description="How long the smoke check waits for the server to serve."
    )
    cloud_init_check: bool = Field(
        False,
        description="Over SSH (ssh-agent), wait for cloud-init; needs sshSourceCidrs.",
    )
    tags: dict[TagName, TagValue] = Field({}, description="Azure tags on every resource.")

    # -- derived values ---------------------------------------------------------------------------

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
        return f"{self.dns_label}.{self.location}.cloudapp.azure.com" if self.dns_label else ""

    @property
    def shared_storage(self) -> bool:
        """Several instances share their files on Azure Files NFS instead of a data disk."""
        return self.instances > 1

    @property
    def nvme(self) -> bool:
        return bool(azure.NVME_SIZE.fullmatch(self.vm_size))

    @model_validator(mode="after")
    def coherent(self) -> Settings:
        """The rules across fields (`ftpstack.settings.coherence`), in order."""
        for rule in RULES:
            rule(self)
        return self
