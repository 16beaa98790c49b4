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

from ftpstack import azure_ops as ops
from ftpstack import azure_rules as azure
from ftpstack.settings.coherence import (
    COMPONENT_TAGS,
    KEEPALIVE_HEADROOM,
    MAX_USERS,
    MIN_PASSWORD_LENGTH,
    RULES,
)
from ftpstack.settings.types import (
    AdminCidr,
    AdminUsername,
    Cidr,
    DnsLabel,
    EmailAddress,
    PassivePort,
    Password,
    Region,
    ResourceGroupName,
    SftpUserKey,
    SshPublicKey,
    Switch,
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
# The tag values that make a stack production (as the policy pack reads the same tag).
ENVIRONMENT_TAG = "environment"
PRODUCTION_VALUES = ("prod", "production")
PRODUCTION = f"a production stack (2+ `instances`, or the tag `{ENVIRONMENT_TAG}: prod`)"


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

    name: UserName = Field(
        description="Login name: 1-32 lower-case letters, digits, `_` and `-`, starting with a "
        "letter or `_`; distinct, not a name proftpd or the OS reserves. Home: "
        "`/srv/ftp/<name>`, the user's jail."
    )
    password: Password = Field(
        description=f"At least {MIN_PASSWORD_LENGTH} characters, no control characters; set only "
        "as a secret (`pulumi config set --secret --path 'users[0].password' …`). The VM gets "
        "a SHA-512-crypt hash."
    )
    read_only: bool = Field(False, description="`true`: lists and downloads only.")
    max_upload_mb: Annotated[int, Field(ge=1)] | None = Field(
        None,
        description="Aborts any single upload larger than this many MB; none: no limit (not "
        "with `readOnly`).",
    )
    ssh_keys: list[SftpUserKey] = Field(
        [],
        description="OpenSSH public keys (`ssh-ed25519 …`, `ecdsa-sha2-nistp256 …`, `ssh-rsa …` of "
        "at least 2048 bits), one per line of the `.pub` file, that log this user in over SFTP "
        "instead of the password; a key belongs to one user.",
    )


class Settings(_Model):
    """Every config key of the `ftpstack` namespace; field names are the keys in camelCase.

    Each description is the key's documentation: `Pulumi.yaml` and `docs/configuration.md` are
    generated from it (`make pulumi-yaml`, `make docs`), so what a key means is written once.
    """

    # -- where it runs ----------------------------------------------------------------------------
    location: Region = Field(
        "westeurope",
        description="Azure region of every resource (checked against Azure's region names).",
    )
    resource_group_name: ResourceGroupName = Field(
        "", description="Resource group name; empty lets Pulumi name a new one."
    )
    use_existing_resource_group: bool = Field(
        False, description="Deploy into the existing resource group `resourceGroupName`."
    )
    instances: Annotated[int, Field(ge=1, le=MAX_INSTANCES)] = Field(
        1,
        description=f"FTP servers behind one address (1-{MAX_INSTANCES}); 2 or more need "
        "`exposure: load-balancer` and share their files on an Azure Files NFS share.",
    )
    zones: Annotated[
        list[Annotated[int, Field(ge=1, le=3)]], written_as_list("zones", "1, 2, 3")
    ] = Field(
        [],
        description="Availability zones the instances are spread over, e.g. `[1, 2, 3]` "
        "(regions with zones only); `[]` for none.",
    )
    # -- network ----------------------------------------------------------------------------------
    vnet_address_space: Cidr = Field(
        "10.20.0.0/16",
        description="Address space of the new VNet (not in Azure's reserved ranges).",
    )
    subnet_prefix: Cidr = Field(
        "10.20.1.0/24",
        description=f"Prefix of the new subnet (inside the VNet, "
        f"/{azure.SUBNET_PREFIX.high} or larger).",
    )
    files_subnet_prefix: Cidr = Field(
        "10.20.2.0/28",
        description="With 2+ `instances`: the subnet of the file share's private endpoint, "
        "behind an NSG that lets only the FTP servers mount it (in the VNet of "
        "`existingSubnetId`, if set: then set it to a free range there).",
    )
    existing_subnet_id: Trimmed = Field(
        "", description="Resource id of an existing subnet; when set, no VNet is created."
    )
    exposure: Literal["public-ip", "load-balancer"] = Field(
        "public-ip",
        description="`public-ip` (static Standard IP on the NIC) or `load-balancer` (Standard LB).",
    )
    lb_tcp_reset: bool = Field(
        False,
        description="Load-balancer mode: send RST to both ends when a flow idles out "
        "(enableTcpReset).",
    )
    idle_timeout_minutes: int = Field(
        4,
        description=f"Azure's idle timeout: {azure.PUBLIC_IP_IDLE_MINUTES} on a public IP, "
        f"{azure.LB_RULE_IDLE_MINUTES} on LB and NAT rules.",
    )
    ftp_source_cidrs: Annotated[
        list[Cidr], Field(min_length=1), written_as_list("ftpSourceCidrs", "203.0.113.0/24")
    ] = Field(["0.0.0.0/0"], description="CIDRs allowed to reach FTP (21 and the passive range).")
    ssh_source_cidrs: Annotated[
        list[AdminCidr], written_as_list("sshSourceCidrs", "203.0.113.7/32")
    ] = Field(
        [],
        description="CIDRs allowed to reach the VMs' own SSH, for administrators (port 22; "
        "2200 while SFTP has 22, 2200+i behind a load balancer); empty keeps it closed; the "
        "whole Internet is refused.",
    )
    dns_label: DnsLabel = Field(
        "",
        description="DNS label: `<label>.<region>.cloudapp.azure.com`, unique in the region; "
        "empty for none.",
    )
    # -- the VM -----------------------------------------------------------------------------------
    vm_size: VmSize = Field(
        "Standard_B2s",
        description="Azure VM size (`Standard_<family><vCPUs>…`); NVMe-only sizes find the data "
        "disk as a namespace.",
    )
    image_publisher: Literal["Debian", "Canonical"] = Field(
        "Debian", description="Image publisher: `Debian` or `Canonical` (Ubuntu)."
    )
    image_offer: Trimmed = Field("debian-12", description="Image offer.")
    image_sku: Trimmed = Field(
        "12-gen2",
        description="Image SKU. Debian 12 ships proftpd 1.3.8, whose per-socket keepalive works.",
    )
    image_version: Trimmed = Field("latest", description="Image version.")
    admin_username: AdminUsername = Field(
        "ftpadmin",
        description="Admin user on the VM (SSH key only, no password); Azure's reserved names "
        "are refused.",
    )
    ssh_public_key: SshPublicKey = Field(
        description="The admin's OpenSSH public key (`ssh-ed25519`, or `ssh-rsa` of 2048 bits "
        "or more), one line; changes live."
    )
    # -- FTP --------------------------------------------------------------------------------------
    passive_port_start: PassivePort = Field(
        50000, description="First port of the passive range (1024-65535)."
    )
    passive_port_end: PassivePort = Field(
        50099, description="Last port of the passive range (1024-65535)."
    )
    max_clients: Annotated[int, Field(ge=1)] = Field(
        50,
        description="Most simultaneous logged-in clients (split over the instances); the "
        "passive range must hold at least 2 x this.",
    )
    max_clients_per_host: Annotated[int, Field(ge=1)] = Field(
        10, description="Most simultaneous connections from one address (per instance)."
    )
    login_timeout_seconds: Annotated[int, Field(ge=5, le=300)] = Field(
        15,
        description="Seconds a connection may take to log in (5-300); one that does not is "
        "closed and, with `ban`, counts like a failed login.",
    )
    idle_flood_hosts: Annotated[int, Field(ge=1, le=100)] = Field(
        8,
        description="Addresses that may each hold `maxClientsPerHost` connections that never log "
        "in, all at once, while customers still get in (1-100; proftpd's process cap is "
        "`maxClients` per instance + this x `maxClientsPerHost`, about 1.5 MB each).",
    )
    keepalive_idle_seconds: Annotated[int, Field(ge=1, le=32767)] = Field(
        60, description="Seconds of silence before the first TCP keepalive probe."
    )
    keepalive_interval_seconds: Annotated[int, Field(ge=1, le=32767)] = Field(
        30,
        description="Seconds between TCP keepalive probes; idle + interval must be at most "
        f"{KEEPALIVE_HEADROOM:.0%} of the idle timeout.",
    )
    keepalive_count: Annotated[int, Field(ge=1, le=127)] = Field(
        4, description="Unanswered probes before the connection is declared dead."
    )
    users: list[FtpUser] = Field(
        [],
        description="FTP users `[{name, password, readOnly, maxUploadMb}]` (each key below); "
        f"passwords only as secrets; at most {MAX_USERS:,}.",
    )
    password_hash_rounds: Annotated[int, Field(ge=HASH_ROUNDS[0], le=HASH_ROUNDS[1])] = Field(
        5000,
        description="SHA-512-crypt rounds of the password hashes stored on the VM "
        f"({HASH_ROUNDS[0]}-{HASH_ROUNDS[1]}: a login stays under ~100 ms).",
    )
    anonymous: bool = Field(
        False, description="Anonymous read-only downloads from `/srv/ftp/public`."
    )
    ban: bool = Field(
        True,
        description="Ban an address after repeated failed logins or a connection flood (mod_ban).",
    )
    ban_max_failed_logins: Annotated[int, Field(ge=1)] = Field(
        5,
        description="Failed logins (or connections that never log in) from one address, within "
        "`banWindowSeconds`, that trigger a ban.",
    )
    ban_window_seconds: Annotated[int, Field(ge=1, le=86399)] = Field(
        600, description="The window in which failed logins (and login timeouts) are counted."
    )
    ban_seconds: Annotated[int, Field(ge=1, le=86399)] = Field(
        3600, description="How long a banned address stays banned."
    )
    ban_connects_per_minute: Annotated[int, Field(ge=0)] = Field(
        600,
        description="Connections from one address within a minute that ban it (0: no such ban).",
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
        description="FTPS (explicit, AUTH TLS): `off`, `allowed`, or `required` (control and "
        "data).",
    )
    tls_certificate: str = Field(
        "",
        description="PEM certificate, leaf first, then its chain; empty: the stack's own "
        "self-signed certificate, made from its identity.",
    )
    tls_private_key: SecretStr = Field(
        SecretStr(""),
        description="PEM private key of `tlsCertificate`, a secret: `pulumi config set --secret "
        "tlsPrivateKey < key.pem`.",
    )
    # -- storage ----------------------------------------------------------------------------------
    data_disk_size_gb: int = Field(
        32,
        description=f"A managed data disk at `/srv/ftp` ({azure.DISK_GB} GiB) that outlives the "
        "VM; `0` opts out (files on the OS disk, lost on replacement: plan and diff warn).",
    )
    data_disk_sku: Literal["Standard_LRS", "StandardSSD_LRS", "Premium_LRS"] = Field(
        "StandardSSD_LRS",
        description="Storage type of the data disk: `Standard_LRS`, `StandardSSD_LRS` or "
        "`Premium_LRS`.",
    )
    data_disk_protect: bool = Field(
        False,
        description="Pulumi refuses to delete the files' storage (`protect`): the data disk, or "
        "with 2+ `instances` the storage account and its share.",
    )
    shared_storage_gb: int = Field(
        100,
        description="With 2+ `instances`: GiB of the shared Azure Files NFS share "
        f"({azure.PREMIUM_SHARE_GB}).",
    )
    share_root_squash: bool = Field(
        True,
        description="With 2+ `instances`: root on a server that mounts the share acts as nobody "
        "there (RootSquash); turning it on for an existing share is a step of its own (`make "
        "diff` says which).",
    )
    data_disk_source_id: Trimmed = Field(
        "",
        description="Resource id of a snapshot or disk the data disk is created from (a zone "
        "move, a restore); set, it replaces the data disk.",
    )
    private_dns_zone_id: Trimmed = Field(
        "",
        description="With 2+ `instances`: resource id of an existing "
        "`privatelink.file.core.windows.net` zone (hub-and-spoke); empty: one is created and "
        "linked to the VNet.",
    )
    # -- operations -------------------------------------------------------------------------------
    logs: Switch = Field(
        "auto",
        description="Ship the transfer, login, ban and proftpd logs of every VM to Log Analytics "
        f"(the Azure Monitor Agent, a data collection rule): `auto` is on in {PRODUCTION}, `on`, "
        "or `off` (an explicit opt-out the policy pack accepts).",
    )
    log_workspace_id: Trimmed = Field(
        "", description="Resource id of an existing Log Analytics workspace; empty: a new one."
    )
    log_retention_days: Annotated[
        int, Field(ge=ops.LOG_RETENTION_DAYS.low, le=ops.LOG_RETENTION_DAYS.high)
    ] = Field(
        30,
        description=f"Days a new workspace keeps the logs ({ops.LOG_RETENTION_DAYS}; the first "
        "31 are in the ingestion price).",
    )
    alerts: Switch = Field(
        "auto",
        description="E-mail `alertEmails` when an instance fails its health probe (or its VM is "
        "unavailable) for 5 minutes, when no instance is healthy, when the files' storage is "
        f"{ops.SHARE_FULL_PERCENT}% full, when a configuration step fails: `auto` is on in "
        f"{PRODUCTION}, `on`, or `off`.",
    )
    alert_emails: Annotated[
        list[EmailAddress], written_as_list("alertEmails", "ops@example.com")
    ] = Field([], description="Who the alerts mail (needed while alerts are on).")
    backups: Switch = Field(
        "auto",
        description="Back up the files once a day: the data disk with Azure Backup, the NFS share "
        f"with share snapshots (Azure Backup has no NFS support): `auto` is on in {PRODUCTION}, "
        "`on`, or `off`.",
    )
    backup_retention_days: Annotated[
        int, Field(ge=ops.BACKUP_RETENTION_DAYS.low, le=ops.BACKUP_RETENTION_DAYS.high)
    ] = Field(30, description=f"Days each daily backup is kept ({ops.BACKUP_RETENTION_DAYS}).")
    # -- checks and tags --------------------------------------------------------------------------
    apply_retry: Annotated[int, Field(ge=0)] = Field(
        0,
        description="Change it (any new number) to run the configuration steps again after a "
        "failed apply: Azure never reruns an unchanged Run Command.",
    )
    post_deploy_check: bool = Field(
        True,
        description="After each change, `pulumi up` runs the FTP smoke check from the deploying "
        "machine.",
    )
    post_deploy_wait_seconds: Annotated[int, Field(ge=60, le=3600)] = Field(
        900, description="How long the smoke check waits for the server to serve (60-3600)."
    )
    cloud_init_check: bool = Field(
        False,
        description="Over SSH (your ssh-agent), wait for cloud-init and fail on its errors; "
        "needs `sshSourceCidrs`.",
    )
    tags: dict[TagName, TagValue] = Field(
        {},
        description=f"Azure tags on every resource (ftpstack adds {COMPONENT_TAGS} to its VMs; "
        f"{azure.TAGS_PER_RESOURCE} at most).",
    )

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

    @property
    def production(self) -> bool:
        """Several instances, or tagged production: operations are on unless opted out."""
        tagged = self.tags.get(ENVIRONMENT_TAG, "").lower() in PRODUCTION_VALUES
        return self.instances > 1 or tagged

    def _on(self, switch: str) -> bool:
        return switch == "on" or (switch == "auto" and self.production)

    @property
    def operations(self) -> dict[str, bool]:
        """Which of logs, alerts and backups are on (backups only where files are: a data disk or
        the share)."""
        files = self.shared_storage or bool(self.data_disk_size_gb)
        return {
            "logs": self._on(self.logs),
            "alerts": self._on(self.alerts),
            "backups": self._on(self.backups) and files,
        }

    @property
    def opted_out(self) -> list[str]:
        """The operations switched off explicitly (what the policy pack accepts)."""
        return [k for k in ("logs", "alerts", "backups") if getattr(self, k) == "off"]

    @model_validator(mode="after")
    def coherent(self) -> Settings:
        """The rules across fields (`ftpstack.settings.coherence`), in order."""
        for rule in RULES:
            rule(self)
        return self
