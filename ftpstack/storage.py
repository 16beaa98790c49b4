"""Shared storage for several instances: an Azure Files NFS 4.1 share every VM mounts at the FTP
root, so a file uploaded through one server is there for all (the TLS identity is not on it: it
comes with the configuration, from the state).

- A premium FileStorage account (NFS needs premium; zone-redundant when the instances are spread
  over zones), with no public network access: it is reached from the subnet through a private
  endpoint, whose name resolves through a private DNS zone linked to the VNet.
- "Secure transfer required" is off: Azure refuses plain NFS mounts otherwise, and encryption in
  transit for NFS needs Microsoft's aznfs mount helper (stunnel), which does not support Debian.
  The traffic never leaves the VNet (private endpoint, no public access), which is the trade-off
  docs/high-availability.md documents.
- The private endpoint sits in a subnet of its own behind an NSG that admits NFS only from the
  servers' application security group, and root is squashed on the share by default
  (`shareRootSquash`): the agent then makes the users' homes as their own uid.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi
from pulumi_azure_native import network, privatedns, storage

from ftpstack import azure_rules as azure
from ftpstack.bootstrap import NfsShare
from ftpstack.parts import Placement, located
from ftpstack.settings import Settings

SHARE = "ftp"
NFS_PORT = 2049
DNS_ZONE = azure.PRIVATE_FILES_ZONE


@dataclass(frozen=True)
class SharedStorage:
    share: pulumi.Output[NfsShare]
    ready: list[pulumi.Resource]  # what must exist before a VM boots and mounts the share
    account: storage.StorageAccount
    resource: storage.FileShare


def vnet_of(subnet_id: str) -> str:
    """An existing subnet's VNet id (the DNS zone is linked to the VNet)."""
    return re.sub(r"/subnets/[^/]+$", "", subnet_id)


def shared_storage(
    name: str, s: Settings, where: Placement, parent: pulumi.Resource
) -> SharedStorage:
    account = storage.StorageAccount(
        f"{re.sub('[^a-z0-9]', '', name.lower())}files",
        resource_group_name=where.rg_name,
        location=s.location,
        kind="FileStorage",
        sku={"name": share_sku(s)},
        enable_https_traffic_only=False,
        public_network_access="Disabled",
        allow_blob_public_access=False,
        allow_shared_key_access=False,
        network_rule_set={"default_action": storage.DefaultAction.DENY, "bypass": "None"},
        tags=s.tags,
        # Azure converts no premium account holding NFS shares to or from zone-redundancy: a new
        # SKU is a new account (and a new, empty share); `make diff` refuses such a change.
        opts=located(parent, replace=["kind", "sku"], protect=s.data_disk_protect),
    )
    share = storage.FileShare(
        f"{name}-share",
        resource_group_name=where.rg_name,
        account_name=account.name,
        share_name=SHARE,
        enabled_protocols="NFS",
        # Root on a server acts as nobody on the share: nothing on it belongs to root, and the
        # agent makes the users' homes as the users' own uid (what AUTH_SYS trusts any host to
        # claim; that no other host reaches the share is the endpoint's NSG, below).
        root_squash="RootSquash" if s.share_root_squash else "NoRootSquash",
        share_quota=s.shared_storage_gb,
        opts=pulumi.ResourceOptions(parent=account, protect=s.data_disk_protect),
    )
    endpoint = network.PrivateEndpoint(
        f"{name}-files-endpoint",
        resource_group_name=where.rg_name,
        location=s.location,
        subnet={"id": endpoint_subnet(name, s, where, parent).id},
        private_link_service_connections=[
            {"name": "files", "private_link_service_id": account.id, "group_ids": ["file"]}
        ],
        tags=s.tags,
        opts=located(parent),
    )
    nfs = account.name.apply(lambda a: NfsShare(f"{a}.file.core.windows.net", f"/{a}/{SHARE}"))
    ready = [share, endpoint, *private_dns(name, s, where, endpoint, parent)]
    return SharedStorage(nfs, ready, account, share)


def endpoint_subnet(
    name: str, s: Settings, where: Placement, parent: pulumi.Resource
) -> network.Subnet:
    """The share's private endpoint in a subnet of its own, whose NSG admits NFS only from the
    FTP servers (their application security group) and nothing else: another VM of the VNet, a
    peered network or a VPN cannot even open a connection to it. Azure applies a subnet's NSG to
    its private endpoints only with the subnet's private endpoint network policies enabled."""
    assert where.servers is not None, "shared storage has a servers' group"
    nsg = network.NetworkSecurityGroup(
        f"{name}-files-nsg",
        resource_group_name=where.rg_name,
        location=s.location,
        security_rules=[
            {
                "name": "allow-nfs-from-the-ftp-servers",
                "priority": 100,
                "direction": "Inbound",
                "access": "Allow",
                "protocol": "Tcp",
                "source_port_range": "*",
                "source_application_security_groups": [{"id": where.servers.id}],
                "destination_address_prefix": "*",
                "destination_port_range": str(NFS_PORT),
                "description": "NFS 4.1 from the FTP servers only",
            },
            {
                "name": "deny-all-inbound",
                "priority": 4096,
                "direction": "Inbound",
                "access": "Deny",
                "protocol": "*",
                "source_port_range": "*",
                "source_address_prefix": "*",
                "destination_address_prefix": "*",
                "destination_port_range": "*",
                "description": "Nothing else, not even from the VNet (Azure's defaults allow it)",
            },
        ],
        tags=s.tags,
        opts=located(parent),
    )
    return network.Subnet(
        f"{name}-files-subnet",
        resource_group_name=where.vnet_rg,
        virtual_network_name=where.vnet_name,
        address_prefix=s.files_subnet_prefix,
        private_endpoint_network_policies="Enabled",
        network_security_group={"id": nsg.id},
        # Azure writes one subnet of a VNet at a time, and refuses a new prefix for a subnet
        # that holds anything (InUseSubnetCannotBeUpdated): a new prefix is a new subnet, and
        # the endpoint moves with it.
        opts=pulumi.ResourceOptions(
            parent=parent,
            depends_on=[where.subnet] if where.subnet else [],
            replace_on_changes=["addressPrefix"],
        ),
    )


def share_sku(s: Settings) -> str:
    """Premium (NFS needs it), zone-redundant when the instances are spread over zones."""
    return "Premium_ZRS" if s.zones else "Premium_LRS"


def private_dns(
    name: str,
    s: Settings,
    where: Placement,
    endpoint: network.PrivateEndpoint,
    parent: pulumi.Resource,
) -> list[pulumi.Resource]:
    """The account's name resolves to the private endpoint inside the VNet: the endpoint's zone
    group registers it in a private zone — an existing one (`privateDnsZoneId`: in a
    hub-and-spoke network the hub's DNS answers for every spoke, and a VNet may be linked to only
    one zone of a name), or one created here and linked to the VNet."""
    if s.private_dns_zone_id:
        return [zone_group(name, where, endpoint, s.private_dns_zone_id)]
    zone = privatedns.PrivateZone(
        f"{name}-files-dns",
        resource_group_name=where.rg_name,
        private_zone_name=DNS_ZONE,
        location="global",
        tags=s.tags,
        opts=located(parent),
    )
    vnet = where.vnet_id if where.vnet_id is not None else vnet_of(s.existing_subnet_id)
    link = privatedns.VirtualNetworkLink(
        f"{name}-files-dns-link",
        resource_group_name=where.rg_name,
        private_zone_name=zone.name,
        location="global",
        virtual_network={"id": vnet},
        registration_enabled=False,
        tags=s.tags,
        opts=located(zone),
    )
    return [link, zone_group(name, where, endpoint, zone.id)]


def zone_group(
    name: str, where: Placement, endpoint: network.PrivateEndpoint, zone: pulumi.Input[str]
) -> network.PrivateDnsZoneGroup:
    return network.PrivateDnsZoneGroup(
        f"{name}-files-dns-group",
        resource_group_name=where.rg_name,
        private_endpoint_name=endpoint.name,
        private_dns_zone_group_name="files",
        private_dns_zone_configs=[{"name": "files", "private_dns_zone_id": zone}],
        opts=pulumi.ResourceOptions(parent=endpoint),
    )
