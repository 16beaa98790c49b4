"""The rules across settings, each named for what it protects: a value that is fine alone but
not with another (a passive range too small for maxClients, keepalive slower than the idle
timeout, a subnet outside its VNet). `Settings` runs them in this order once its fields are valid;
each refuses with one line naming the key, the value and the fix."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from ftpstack import azure_rules as azure
from ftpstack.settings import operations, tls
from ftpstack.settings.errors import SHOWN_SECRET, refuse

if TYPE_CHECKING:
    from ftpstack.settings.model import Settings

MIN_PASSWORD_LENGTH = 12
# Users whose configuration fits the Run Command's environment (ftpstack.live.BUNDLE_LIMIT):
# about 125 bytes each with 32-character names, measured; 10,000 leave room for the rest.
MAX_USERS = 10_000
# Keepalive idle + interval must stay at or below this share of the idle timeout: one lost probe
# must still leave a second one inside the timeout, with room for clock and queueing jitter.
KEEPALIVE_HEADROOM = 0.75
# proftpd's anonymous logins, the OS's superuser, and the accounts ftpstack itself creates.
RESERVED_USER_NAMES = {"ftp", "anonymous", "root", "ftpvirtual", "ftpanon", "public", "proftpd"}
# Tags the component adds to every VM (what the policy pack reads).
COMPONENT_TAGS = 5

# Used with fullmatch; a segment holds no "/" and no white space (a pasted id's newline).
SUBNET_ID = re.compile(
    r"/subscriptions/[^/\s]+/resourceGroups/[^/\s]+/providers/Microsoft\.Network/"
    r"virtualNetworks/[^/\s]+/subnets/[^/\s]+"
)


def passive_range_holds_max_clients(s: Settings) -> None:
    key, shown = (
        "passivePortStart..passivePortEnd",
        f"{s.passive_port_start}-{s.passive_port_end}",
    )
    if s.passive_port_start > s.passive_port_end:
        raise refuse(
            "passivePortStart",
            s.passive_port_start,
            f"is above passivePortEnd ({s.passive_port_end})",
            "swap the two values",
        )
    # Each instance announces its own slice; a slice must hold 2 x its share of maxClients,
    # because when the ports run out proftpd silently picks one outside the range.
    share = -(-s.max_clients // s.instances)
    slice_size = len(s.passive_ports) // s.instances
    if slice_size < 2 * share:
        if s.instances > 1:
            short = (
                f"each instance's slice of {slice_size} ports ({len(s.passive_ports)} over "
                f"{s.instances} instances) is fewer than 2 x its share of maxClients ({share} of "
                f"{s.max_clients})"
            )
        else:
            short = f"holds {slice_size} ports, fewer than 2 x maxClients ({s.max_clients})"
        raise refuse(
            key,
            shown,
            f"{short}; when the ports run out proftpd silently picks a random port outside the "
            "range, which the NSG blocks",
            f"widen the range to at least {2 * share * s.instances} ports or lower maxClients",
        )
    # One inbound NAT rule per passive port of each instance's slice, plus port 21, SFTP's 22
    # and SSH (counted even while closed: opening it later must not fail); Azure allows 300
    # rules per NIC and 1,500 per load balancer.
    others = 3 if s.sftp else 2
    rules = slice_size + others
    if s.exposure == "load-balancer" and rules > azure.RULES_PER_NIC:
        raise refuse(
            key,
            shown,
            f"load-balancer mode needs one rule per passive port and NIC ({rules} with 21, "
            f"{'SFTP and ' if s.sftp else ''}SSH) and Azure allows {azure.RULES_PER_NIC} per NIC",
            f"narrow each slice to at most {azure.RULES_PER_NIC - others} ports "
            "or use exposure: public-ip",
        )


def idle_timeout_is_in_azure_range(s: Settings) -> None:
    limit = (
        azure.PUBLIC_IP_IDLE_MINUTES if s.exposure == "public-ip" else azure.LB_RULE_IDLE_MINUTES
    )
    if s.idle_timeout_minutes not in limit:
        raise refuse(
            "idleTimeoutMinutes",
            s.idle_timeout_minutes,
            f"Azure accepts {limit} minutes in {s.exposure} mode",
            f"choose a value between {limit.low} and {limit.high}",
        )


def keepalive_beats_idle_timeout(s: Settings) -> None:
    # A control connection idle for longer than the idle timeout is forgotten by Azure
    # without a word; the first probe (idle) and a retry (interval) must both land inside it.
    budget = int(s.idle_timeout_seconds * KEEPALIVE_HEADROOM)
    used = s.keepalive_idle_seconds + s.keepalive_interval_seconds
    if used > budget:
        raise refuse(
            "keepaliveIdleSeconds",
            s.keepalive_idle_seconds,
            f"idle + interval ({used} s) is not comfortably below the "
            f"{s.idle_timeout_seconds} s idle timeout, so Azure may drop the control "
            "connection during a long transfer",
            f"keep keepaliveIdleSeconds + keepaliveIntervalSeconds at or below {budget} s",
        )


def idle_connections_get_banned(s: Settings) -> None:
    # An address that holds every connection it may and never logs in ends maxClientsPerHost
    # of them by login timeout every loginTimeoutSeconds; unless banMaxFailedLogins of those
    # fit in the ban's window, such an address keeps its connections for ever.
    if not s.ban:
        return
    rounds = -(-s.ban_max_failed_logins // s.max_clients_per_host)
    needed = rounds * s.login_timeout_seconds
    if needed > s.ban_window_seconds:
        raise refuse(
            "banWindowSeconds",
            s.ban_window_seconds,
            f"an address holding maxClientsPerHost ({s.max_clients_per_host}) connections that "
            f"never log in reaches banMaxFailedLogins ({s.ban_max_failed_logins}) login timeouts "
            f"only after {needed} s, so it is never banned",
            f"raise banWindowSeconds to at least {needed}, or lower loginTimeoutSeconds or "
            "banMaxFailedLogins",
        )


def users_are_distinct_and_sound(s: Settings) -> None:
    if len(s.users) > MAX_USERS:
        raise refuse(
            "users",
            f"{len(s.users)} users",
            "the configuration reaches each server in its Run Command's environment, which "
            f"Linux limits to 2 MiB per program (ARG_MAX, execve(2)): at most {MAX_USERS:,} users "
            "fit (about 125 bytes each)",
            f"keep at most {MAX_USERS:,} users per stack",
        )
    seen: set[str] = set()
    for index, user in enumerate(s.users):
        at = f"users[{index}]"
        if user.name in RESERVED_USER_NAMES:
            raise refuse(
                f"{at}.name", user.name, "is reserved by proftpd or the OS", "choose another name"
            )
        if user.name in seen:
            raise refuse(
                f"{at}.name", user.name, "appears twice", "give each FTP user a distinct name"
            )
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
            raise refuse(
                f"{at}.maxUploadMb",
                user.max_upload_mb,
                "is set on a read-only user, who cannot upload at all",
                "drop maxUploadMb or readOnly",
            )


def ssh_keys_log_in_one_user(s: Settings) -> None:
    """A key is a partner's identity: on two users it would open both homes to whoever holds
    it (and SFTP would log it in as whichever user the client names)."""
    owner: dict[str, str] = {}
    for index, user in enumerate(s.users):
        for number, line in enumerate(user.ssh_keys):
            blob = line.split()[1]
            at = f"users[{index}].sshKeys[{number}]"
            if blob in owner and owner[blob] != user.name:
                raise refuse(
                    at,
                    " ".join(line.split()[:2])[:40] + "…",
                    f"is also a key of {owner[blob]}: whoever holds it could log in as both",
                    "give each partner a key of their own",
                )
            owner[blob] = user.name
    if not s.sftp and any(u.ssh_keys for u in s.users):
        raise refuse(
            "sftp",
            False,
            "is off while users have sshKeys, which only SFTP uses",
            "set sftp: true, or drop the users' sshKeys",
        )


def tls_material_is_whole_and_valid(s: Settings) -> None:
    cert, key = s.tls_certificate.strip(), s.tls_private_key.get_secret_value().strip()
    if bool(cert) != bool(key):
        missing = "tlsPrivateKey" if cert else "tlsCertificate"
        raise refuse(
            missing,
            "",
            "is empty but its other half is set; proftpd needs the certificate and its key",
            f"set {missing} too (pulumi config set --secret for the key), or neither "
            "for a self-signed certificate",
        )
    if s.tls == "off" and cert:
        raise refuse(
            "tls", s.tls, "is off but a certificate is set", "set tls to allowed or required"
        )
    if cert:
        tls.check_certificate(cert)
        tls.check_key_pair(cert, key)


def storage_fits_azure(s: Settings) -> None:
    size = s.data_disk_size_gb
    if size and size not in azure.DISK_GB:
        raise refuse(
            "dataDiskSizeGb",
            size,
            f"Azure managed disks are {azure.DISK_GB} GiB",
            f"choose {azure.DISK_GB}, or 0 for none (files on the OS disk, lost on replacement)",
        )
    if s.shared_storage and s.shared_storage_gb not in azure.PREMIUM_SHARE_GB:
        raise refuse(
            "sharedStorageGb",
            s.shared_storage_gb,
            f"premium Azure Files NFS shares are {azure.PREMIUM_SHARE_GB} GiB",
            f"choose {azure.PREMIUM_SHARE_GB} GiB",
        )


def instances_fit_the_exposure(s: Settings) -> None:
    if s.instances > 1 and s.exposure != "load-balancer":
        raise refuse(
            "instances",
            s.instances,
            "several servers share one address only behind a load balancer",
            "set exposure: load-balancer (or instances: 1)",
        )
    if s.zones and s.location not in azure.REGIONS_WITH_ZONES:
        raise refuse(
            "zones",
            s.zones,
            f"region {s.location} has no availability zones",
            "drop zones or choose a region with zones (e.g. westeurope)",
        )
    if len(set(s.zones)) != len(s.zones):
        raise refuse("zones", s.zones, "lists a zone twice", "list each zone once")


def ssh_paths_exist(s: Settings) -> None:
    if s.cloud_init_check and not s.ssh_open:
        raise refuse(
            "cloudInitCheck",
            s.cloud_init_check,
            "SSH is closed (sshSourceCidrs is empty), so the check cannot reach the VM",
            "add the deploying machine's CIDR to sshSourceCidrs or set cloudInitCheck false",
        )
    if s.cloud_init_check and s.instances > 1:
        raise refuse(
            "cloudInitCheck",
            s.cloud_init_check,
            "with several instances SSH reaches only one of them through the load balancer",
            "set cloudInitCheck false (the configuration step reports cloud-init errors)",
        )


def network_fits_azure(s: Settings) -> None:
    if s.existing_subnet_id:
        if not SUBNET_ID.fullmatch(s.existing_subnet_id):
            raise refuse(
                "existingSubnetId",
                s.existing_subnet_id,
                "is not an Azure subnet resource id",
                "copy the id from `az network vnet subnet show --query id`",
            )
        return
    vnet = ipaddress.IPv4Network(s.vnet_address_space)
    subnet = ipaddress.IPv4Network(s.subnet_prefix)
    reserved = azure.vnet_reserved_overlap(vnet)
    if reserved is not None:
        raise refuse(
            "vnetAddressSpace",
            s.vnet_address_space,
            f"overlaps {reserved}, which Azure reserves",
            "use a private range such as 10.20.0.0/16",
        )
    if not subnet.subnet_of(vnet):
        raise refuse(
            "subnetPrefix",
            s.subnet_prefix,
            f"is not inside vnetAddressSpace ({s.vnet_address_space})",
            "pick a subnet inside the VNet's address space",
        )
    if subnet.prefixlen not in azure.SUBNET_PREFIX:
        raise refuse(
            "subnetPrefix",
            s.subnet_prefix,
            "Azure subnets are /2 to /29",
            "use a /29 or larger (a /29 leaves 3 usable addresses)",
        )
    usable = subnet.num_addresses - azure.SUBNET_RESERVED_ADDRESSES
    if usable < s.instances:
        raise refuse(
            "subnetPrefix",
            s.subnet_prefix,
            f"leaves {usable} usable addresses",
            "use a larger subnet (Azure reserves 5 in each)",
        )


def files_subnet_fits(s: Settings) -> None:
    """The share's private endpoint gets a subnet of its own (its NSG admits only the servers)."""
    if not s.shared_storage:
        return
    files = ipaddress.IPv4Network(s.files_subnet_prefix)
    if s.existing_subnet_id:
        if "files_subnet_prefix" not in s.model_fields_set:
            raise refuse(
                "filesSubnetPrefix",
                s.files_subnet_prefix,
                "is the default, but with existingSubnetId the share's endpoint gets a subnet "
                "of its own in that subnet's VNet, whose free ranges only you know",
                "set filesSubnetPrefix to a free /28 (or larger) of that VNet",
            )
    else:
        vnet = ipaddress.IPv4Network(s.vnet_address_space)
        if not files.subnet_of(vnet) or files.overlaps(ipaddress.IPv4Network(s.subnet_prefix)):
            raise refuse(
                "filesSubnetPrefix",
                s.files_subnet_prefix,
                f"must lie inside vnetAddressSpace ({s.vnet_address_space}) and outside "
                f"subnetPrefix ({s.subnet_prefix})",
                "pick a free /28 of the VNet, e.g. 10.20.2.0/28",
            )
    if files.prefixlen not in azure.SUBNET_PREFIX:
        raise refuse(
            "filesSubnetPrefix",
            s.files_subnet_prefix,
            "Azure subnets are /2 to /29",
            "use a /29 or larger (the endpoint needs one address; Azure reserves 5)",
        )


def names_and_tags_fit_azure(s: Settings) -> None:
    if s.use_existing_resource_group and not s.resource_group_name:
        raise refuse(
            "resourceGroupName",
            s.resource_group_name,
            "is empty but useExistingResourceGroup is true",
            "name the existing resource group",
        )
    if len(s.tags) + COMPONENT_TAGS > azure.TAGS_PER_RESOURCE:
        raise refuse(
            "tags",
            f"{len(s.tags)} tags",
            f"ftpstack adds {COMPONENT_TAGS} of its own and Azure allows "
            f"{azure.TAGS_PER_RESOURCE} per resource",
            f"keep at most {azure.TAGS_PER_RESOURCE - COMPONENT_TAGS} tags",
        )
    if s.admin_username in {u.name for u in s.users}:
        raise refuse(
            "adminUsername",
            s.admin_username,
            "is also an FTP user name",
            "choose different names",
        )


def references_name_what_they_must(s: Settings) -> None:
    if s.data_disk_source_id:
        if not azure.DISK_SOURCE_ID.fullmatch(s.data_disk_source_id):
            raise refuse(
                "dataDiskSourceId",
                s.data_disk_source_id,
                "is not the resource id of a managed disk or snapshot",
                "copy it from `az snapshot show --query id` (or `az disk show --query id`)",
            )
        if s.shared_storage or not s.data_disk_size_gb:
            raise refuse(
                "dataDiskSourceId",
                s.data_disk_source_id,
                "is set but this stack has no data disk (instances 2+ share an NFS share, "
                "or dataDiskSizeGb is 0)",
                "drop dataDiskSourceId",
            )
    if s.private_dns_zone_id:
        if not azure.PRIVATE_FILES_ZONE_ID.fullmatch(s.private_dns_zone_id):
            raise refuse(
                "privateDnsZoneId",
                s.private_dns_zone_id,
                f"is not the resource id of a private DNS zone named {azure.PRIVATE_FILES_ZONE}",
                "copy it from `az network private-dns zone show -n "
                f"{azure.PRIVATE_FILES_ZONE} -g <group> --query id`",
            )
        if not s.shared_storage:
            raise refuse(
                "privateDnsZoneId",
                s.private_dns_zone_id,
                "is set but only a stack with instances 2+ reaches storage through a private "
                "endpoint",
                "drop privateDnsZoneId",
            )


RULES: list[Callable[[Settings], None]] = [
    passive_range_holds_max_clients,
    idle_timeout_is_in_azure_range,
    keepalive_beats_idle_timeout,
    idle_connections_get_banned,
    users_are_distinct_and_sound,
    ssh_keys_log_in_one_user,
    tls_material_is_whole_and_valid,
    storage_fits_azure,
    instances_fit_the_exposure,
    ssh_paths_exist,
    network_fits_azure,
    files_subnet_fits,
    names_and_tags_fit_azure,
    references_name_what_they_must,
    *operations.RULES,
]
