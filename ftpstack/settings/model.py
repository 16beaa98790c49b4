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

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic.alias_generators import to_camel

from ftpstack import azure_rules as azure
from ftpstack.settings import tls
from ftpstack.settings.errors import SHOWN_SECRET, refuse
from ftpstack.settings.types import (
    AdminCidr,
    AdminUsername,
    Cidr,
    DnsLabel,
    PassivePort,
    Password,
    Region,
    ResourceGroupName,
    SshPublicKey,
    TagName,
    TagValue,
    UserName,
    VmSize,
)

MIN_PASSWORD_LENGTH = 12
# Keepalive idle + interval must stay at or below this share of the idle timeout: one lost probe
# must still leave a second one inside the timeout, with room for clock and queueing jitter.
KEEPALIVE_HEADROOM = 0.75
# proftpd's anonymous logins, the OS's superuser, and the accounts ftpstack itself creates.
RESERVED_USER_NAMES = {"ftp", "anonymous", "root", "ftpvirtual", "ftpanon", "public", "proftpd"}
# SHA-512-crypt rounds: glibc's default, up to what keeps a login under ~100 ms on a small VM
# (measured: 100,000 rounds take about 60 ms on one core here).
HASH_ROUNDS = (5000, 100_000)
# Tags the component adds to every VM (what the policy pack reads).
COMPONENT_TAGS = 3


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
    instances: Annotated[int, Field(ge=1, le=10)] = Field(
        1,
        description="FTP servers behind one address (2+: load-balancer exposure, shared storage).",
    )
    zones: list[Annotated[int, Field(ge=1, le=3)]] = Field(
        [],
        description="Availability zones to spread instances over, e.g. [1, 2, 3]; [] for none.",
    )
    # -- network ----------------------------------------------------------------------------------
    vnet_address_space: Cidr = Field("10.20.0.0/16", description="Address space of the new VNet.")
    subnet_prefix: Cidr = Field("10.20.1.0/24", description="Prefix of the new subnet.")
    existing_subnet_id: str = Field(
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
    ftp_source_cidrs: Annotated[list[Cidr], Field(min_length=1)] = Field(
        ["0.0.0.0/0"], description="CIDRs allowed to reach FTP (21 and the passive range)."
    )
    ssh_source_cidrs: list[AdminCidr] = Field(
        [], description="CIDRs allowed to reach SSH (22); empty keeps port 22 closed."
    )
    dns_label: DnsLabel = Field(
        "", description="DNS label: <label>.<region>.cloudapp.azure.com; empty for none."
    )
    # -- the VM -----------------------------------------------------------------------------------
    vm_size: VmSize = Field("Standard_B2s", description="Azure VM size.")
    image_publisher: Literal["Debian", "Canonical"] = Field(
        "Debian", description="Image publisher: Debian (default) or Canonical (Ubuntu)."
    )
    image_offer: str = Field("debian-12", description="Image offer.")
    image_sku: str = Field(
        "12-gen2", description="Image SKU; Debian 12 ships proftpd 1.3.8 (per-socket keepalive)."
    )
    image_version: str = Field("latest", description="Image version.")
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
        30, description="Seconds a connection may take to log in."
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
        5, description="Failed logins from one address, within banWindowSeconds, before a ban."
    )
    ban_window_seconds: Annotated[int, Field(ge=1, le=86399)] = Field(
        600, description="The window in which failed logins are counted."
    )
    ban_seconds: Annotated[int, Field(ge=1, le=86399)] = Field(
        3600, description="How long a banned address stays banned."
    )
    ban_connects_per_minute: Annotated[int, Field(ge=0)] = Field(
        600,
        description="Connections from one address in a minute that ban it (0: no such ban).",
    )
    # -- FTPS -------------------------------------------------------------------------------------
    tls: Literal["off", "allowed", "required"] = Field(
        "allowed",
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
        False, description="Protect the data disk from deletion by Pulumi."
    )
    shared_storage_gb: int = Field(
        100,
        description="instances 2+: GiB of the shared Azure Files NFS share (100-102400).",
    )
    # -- checks and tags --------------------------------------------------------------------------
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
        return bool(azure.NVME_SIZE.match(self.vm_size))

    # -- cross-field rules, each named for what it protects -----------------------------------

    @model_validator(mode="after")
    def passive_range_holds_max_clients(self) -> Settings:
        key, shown = (
            "passivePortStart..passivePortEnd",
            f"{self.passive_port_start}-{self.passive_port_end}",
        )
        if self.passive_port_start > self.passive_port_end:
            raise refuse("passivePortStart", self.passive_port_start,
                         f"is above passivePortEnd ({self.passive_port_end})", "swap the two values")  # fmt: skip  # noqa: E501
        # Each instance announces its own slice; a slice must hold 2 x its share of maxClients,
        # because when the ports run out proftpd silently picks one outside the range.
        share = -(-self.max_clients // self.instances)
        slice_size = len(self.passive_ports) // self.instances
        if slice_size < 2 * share:
            per = (
                f" per instance ({self.instances} slices of {slice_size})"
                if self.instances > 1
                else ""
            )
            raise refuse(key, shown,
                f"{slice_size} ports{per} is fewer than 2 x maxClients ({share}); when the range "
                "runs out proftpd silently picks a random port outside it, which the NSG blocks",
                f"widen the range to at least {2 * share * self.instances} ports or lower maxClients")  # fmt: skip  # noqa: E501
        # One inbound NAT rule per passive port of each instance's slice, plus port 21 (and SSH);
        # Azure allows 300 rules per NIC and 1,500 per load balancer.
        rules = slice_size + 2
        if self.exposure == "load-balancer" and rules > azure.RULES_PER_NIC:
            raise refuse(key, shown,
                f"load-balancer mode needs one rule per passive port and NIC ({rules} with 21 and "
                f"SSH) and Azure allows {azure.RULES_PER_NIC} per NIC",
                f"narrow each slice to at most {azure.RULES_PER_NIC - 2} ports or use exposure: public-ip")  # fmt: skip  # noqa: E501
        return self

    @model_validator(mode="after")
    def idle_timeout_is_in_azure_range(self) -> Settings:
        limit = (
            azure.PUBLIC_IP_IDLE_MINUTES
            if self.exposure == "public-ip"
            else azure.LB_RULE_IDLE_MINUTES
        )
        if self.idle_timeout_minutes not in limit:
            raise refuse(
                "idleTimeoutMinutes",
                self.idle_timeout_minutes,
                f"Azure accepts {limit} minutes in {self.exposure} mode",
                f"choose a value between {limit.low} and {limit.high}",
            )
        return self

    @model_validator(mode="after")
    def keepalive_beats_idle_timeout(self) -> Settings:
        # A control connection idle for longer than the idle timeout is forgotten by Azure
        # without a word; the first probe (idle) and a retry (interval) must both land inside it.
        budget = int(self.idle_timeout_seconds * KEEPALIVE_HEADROOM)
        used = self.keepalive_idle_seconds + self.keepalive_interval_seconds
        if used > budget:
            raise refuse("keepaliveIdleSeconds", self.keepalive_idle_seconds,
                f"idle + interval ({used} s) is not comfortably below the "
                f"{self.idle_timeout_seconds} s idle timeout, so Azure may drop the control "
                "connection during a long transfer",
                f"keep keepaliveIdleSeconds + keepaliveIntervalSeconds at or below {budget} s")  # fmt: skip  # noqa: E501
        return self

    @model_validator(mode="after")
    def users_are_distinct_and_sound(self) -> Settings:
        seen: set[str] = set()
        for index, user in enumerate(self.users):
            at = f"users[{index}]"
            if user.name in RESERVED_USER_NAMES:
                raise refuse(f"{at}.name", user.name, "is reserved by proftpd or the OS", "choose another name")  # fmt: skip  # noqa: E501
            if user.name in seen:
                raise refuse(f"{at}.name", user.name, "appears twice", "give each FTP user a distinct name")  # fmt: skip  # noqa: E501
            seen.add(user.name)
            length = len(user.password.get_secret_value())
            if length < MIN_PASSWORD_LENGTH:
                raise refuse(
                    f"{at}.password",
                    SHOWN_SECRET,
                    f"has {length} characters; bots on the Internet guess short ones",
                    f"use at least {MIN_PASSWORD_LENGTH} characters",
                )
            if user.read_only and user.max_upload_mb is not None:
                raise refuse(f"{at}.maxUploadMb", user.max_upload_mb,
                    "is set on a read-only user, who cannot upload at all", "drop maxUploadMb or readOnly")  # fmt: skip  # noqa: E501
        return self

    @model_validator(mode="after")
    def tls_material_is_whole_and_valid(self) -> Settings:
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
        if self.tls == "off" and cert:
            raise refuse("tls", self.tls, "is off but a certificate is set", "set tls to allowed or required")  # fmt: skip  # noqa: E501
        if cert:
            tls.check_certificate(cert)
            tls.check_key_pair(cert, key)
        return self

    @model_validator(mode="after")
    def storage_fits_azure(self) -> Settings:
        size = self.data_disk_size_gb
        if size and size not in azure.DISK_GB:
            raise refuse("dataDiskSizeGb", size, f"Azure managed disks are {azure.DISK_GB} GiB",
                         f"choose {azure.DISK_GB}, or 0 for none (files on the OS disk, lost on replacement)")  # fmt: skip  # noqa: E501
        if self.shared_storage and self.shared_storage_gb not in azure.PREMIUM_SHARE_GB:
            raise refuse(
                "sharedStorageGb",
                self.shared_storage_gb,
                f"premium Azure Files NFS shares are {azure.PREMIUM_SHARE_GB} GiB",
                f"choose {azure.PREMIUM_SHARE_GB} GiB",
            )
        return self

    @model_validator(mode="after")
    def instances_fit_the_exposure(self) -> Settings:
        if self.instances > 1 and self.exposure != "load-balancer":
            raise refuse(
                "instances",
                self.instances,
                "several servers share one address only behind a load balancer",
                "set exposure: load-balancer (or instances: 1)",
            )
        if self.zones and self.location not in azure.REGIONS_WITH_ZONES:
            raise refuse(
                "zones",
                self.zones,
                f"region {self.location} has no availability zones",
                "drop zones or choose a region with zones (e.g. westeurope)",
            )
        if len(set(self.zones)) != len(self.zones):
            raise refuse("zones", self.zones, "lists a zone twice", "list each zone once")
        return self

    @model_validator(mode="after")
    def ssh_paths_exist(self) -> Settings:
        if self.cloud_init_check and not self.ssh_open:
            raise refuse("cloudInitCheck", self.cloud_init_check,
                "SSH is closed (sshSourceCidrs is empty), so the check cannot reach the VM",
                "add the deploying machine's CIDR to sshSourceCidrs or set cloudInitCheck false")  # fmt: skip  # noqa: E501
        if self.cloud_init_check and self.instances > 1:
            raise refuse("cloudInitCheck", self.cloud_init_check,
                "with several instances SSH reaches only one of them through the load balancer",
                "set cloudInitCheck false (the configuration step reports cloud-init errors)")  # fmt: skip  # noqa: E501
        return self

    @model_validator(mode="after")
    def network_fits_azure(self) -> Settings:
        if self.existing_subnet_id:
            if not SUBNET_ID.fullmatch(self.existing_subnet_id):
                raise refuse("existingSubnetId", self.existing_subnet_id, "is not an Azure subnet resource id",  # noqa: E501
                             "copy the id from `az network vnet subnet show --query id`")  # fmt: skip  # noqa: E501
            return self
        vnet = ipaddress.IPv4Network(self.vnet_address_space)
        subnet = ipaddress.IPv4Network(self.subnet_prefix)
        reserved = azure.vnet_reserved_overlap(vnet)
        if reserved is not None:
            raise refuse("vnetAddressSpace", self.vnet_address_space,
                         f"overlaps {reserved}, which Azure reserves", "use a private range such as 10.20.0.0/16")  # fmt: skip  # noqa: E501
        if not subnet.subnet_of(vnet):
            raise refuse(
                "subnetPrefix",
                self.subnet_prefix,
                f"is not inside vnetAddressSpace ({self.vnet_address_space})",
                "pick a subnet inside the VNet's address space",
            )
        if subnet.prefixlen not in azure.SUBNET_PREFIX:
            raise refuse(
                "subnetPrefix",
                self.subnet_prefix,
                "Azure subnets are /2 to /29",
                "use a /29 or larger (a /29 leaves 3 usable addresses)",
            )
        usable = subnet.num_addresses - azure.SUBNET_RESERVED_ADDRESSES
        if usable < self.instances + 1:  # the VMs, and a private endpoint for shared storage
            raise refuse(
                "subnetPrefix",
                self.subnet_prefix,
                f"leaves {usable} usable addresses",
                "use a larger subnet (Azure reserves 5 in each)",
            )
        return self

    @model_validator(mode="after")
    def names_and_tags_fit_azure(self) -> Settings:
        if self.use_existing_resource_group and not self.resource_group_name:
            raise refuse(
                "resourceGroupName",
                self.resource_group_name,
                "is empty but useExistingResourceGroup is true",
                "name the existing resource group",
            )
        if len(self.tags) + COMPONENT_TAGS > azure.TAGS_PER_RESOURCE:
            raise refuse("tags", f"{len(self.tags)} tags",
                         f"ftpstack adds {COMPONENT_TAGS} of its own and Azure allows {azure.TAGS_PER_RESOURCE} per resource",  # noqa: E501
                         f"keep at most {azure.TAGS_PER_RESOURCE - COMPONENT_TAGS} tags")  # fmt: skip  # noqa: E501
        if self.admin_username in {u.name for u in self.users}:
            raise refuse(
                "adminUsername",
                self.admin_username,
                "is also an FTP user name",
                "choose different names",
            )
        return self


SUBNET_ID = re.compile(
    r"/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Network/"
    r"virtualNetworks/[^/]+/subnets/[^/]+"
)
