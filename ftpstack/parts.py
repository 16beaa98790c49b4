"""Builders for the parts of an `FtpServer`: each declares one part's azure-native resources from
the settings and the parts it needs, and returns what later parts reference.

Every reference to another resource is an output of that resource (so the engine orders them and
ARM never sees a reference to something that does not exist yet); only a load balancer's
references to its own children are spelled out, because one request creates them together.
Children of one parent that are separate resources (NSG rules, NAT rules) are chained, because
Azure refuses concurrent writes under one parent (AnotherOperationInProgress).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, overload

import pulumi
from pulumi_azure_native import network, resources

from ftpstack import paths
from ftpstack import rules as r
from ftpstack.settings import FTP_CONTROL_PORT, MAX_INSTANCES, Settings

T = TypeVar("T")
LB_FRONTEND = "frontend"
LB_POOL = "backend"
LB_RULE = "ftp-control"
LB_SFTP_RULE = "sftp"
# The load balancer's API version in azure-native 3 (its SDK's `network.LoadBalancer`), so that
# both writers of the load balancer speak the same shape.
LB_API_VERSION = "2024-05-01"
ARM_TEMPLATE_SCHEMA = (
    "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"
)


def instance_suffix(index: int) -> str:
    """Instance 0 keeps the names a single server always had; the others are numbered."""
    return "" if index == 0 else f"-{index}"


@overload
def child_id(parent_id: str, kind: str, name: str) -> str: ...
@overload
def child_id(parent_id: pulumi.Output[str], kind: str, name: str) -> pulumi.Output[str]: ...
@overload
def child_id(parent_id: pulumi.Input[str], kind: str, name: str) -> pulumi.Input[str]: ...
def child_id(parent_id: pulumi.Input[str], kind: str, name: str) -> pulumi.Input[str]:
    """The id of a child (`kind`/`name`) of the resource `parent_id`."""
    if isinstance(parent_id, str):
        return f"{parent_id}/{kind}/{name}"
    return pulumi.Output.from_input(parent_id).apply(lambda i: f"{i}/{kind}/{name}")  # type: ignore[arg-type]


def instance_pool(index: int) -> str:
    return f"instance-{index}"


def located(
    parent: pulumi.Resource, replace: Sequence[str] = (), **options: Any
) -> pulumi.ResourceOptions:
    """Options of a resource that has a location: Azure never moves a resource to another
    region in place (azure-native would try an update), so a new location replaces it."""
    return pulumi.ResourceOptions(
        parent=parent, replace_on_changes=["location", *replace], **options
    )


# -- resource group and network ---------------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    rg_name: pulumi.Input[str]
    subnet_id: pulumi.Input[str]
    vnet_id: pulumi.Input[str] | None  # None when the subnet is an existing one
    # The VNet's group and name (where the share's endpoint gets a subnet of its own), the
    # servers' subnet when this stack declares it (subnets of one VNet are written one by one),
    # and the servers' application security group (the share's NSG admits only its members).
    vnet_rg: pulumi.Input[str] = ""
    vnet_name: pulumi.Input[str] = ""
    subnet: pulumi.Resource | None = None
    servers: network.ApplicationSecurityGroup | None = None


EXISTING_SUBNET = re.compile(
    r"/subscriptions/[^/]+/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Network/"
    r"virtualNetworks/(?P<vnet>[^/]+)/subnets/[^/]+",
    re.IGNORECASE,
)


def placement(name: str, s: Settings, parent: pulumi.Resource) -> Placement:
    if s.use_existing_resource_group:
        rg_name: pulumi.Input[str] = s.resource_group_name
    else:
        rg = resources.ResourceGroup(
            f"{name}-rg",
            resource_group_name=s.resource_group_name or None,
            location=s.location,
            tags=s.tags,
            opts=pulumi.ResourceOptions(parent=parent),
        )
        rg_name = rg.name
    servers = None
    if s.shared_storage:
        servers = network.ApplicationSecurityGroup(
            f"{name}-servers",
            resource_group_name=rg_name,
            location=s.location,
            tags=s.tags,
            opts=located(parent),
        )
    if s.existing_subnet_id:
        found = EXISTING_SUBNET.fullmatch(s.existing_subnet_id)
        assert found, "the settings refuse any other id"
        return Placement(
            rg_name, s.existing_subnet_id, None, found["rg"], found["vnet"], None, servers
        )
    vnet = network.VirtualNetwork(
        f"{name}-vnet",
        resource_group_name=rg_name,
        location=s.location,
        address_space={"address_prefixes": [s.vnet_address_space]},
        tags=s.tags,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    subnet = network.Subnet(
        f"{name}-subnet",
        resource_group_name=rg_name,
        virtual_network_name=vnet.name,
        address_prefix=s.subnet_prefix,
        opts=pulumi.ResourceOptions(parent=vnet),
    )
    return Placement(rg_name, subnet.id, vnet.id, rg_name, vnet.name, subnet, servers)


# -- network security group ---------------------------------------------------------------------


def security_rule_args(rule: r.InboundRule) -> dict[str, Any]:
    return {
        "security_rule_name": rule.name,
        "priority": rule.priority,
        "direction": "Inbound",
        "access": rule.access,
        "protocol": rule.protocol,
        "source_port_range": "*",
        "source_address_prefix": rule.source_prefix,
        "source_address_prefixes": rule.source_prefixes,
        "destination_address_prefix": "*",
        "destination_port_range": rule.port_spec,
        "description": rule.description,
    }


@dataclass(frozen=True)
class Firewall:
    nsg: network.NetworkSecurityGroup
    last_rule: network.SecurityRule


def firewall(name: str, s: Settings, where: Placement, parent: pulumi.Resource) -> Firewall:
    """The NSG with every rule but the passive one, as separate, chained rule resources (the NSG
    declares none inline, so an update of the NSG keeps them)."""
    nsg = network.NetworkSecurityGroup(
        f"{name}-nsg",
        resource_group_name=where.rg_name,
        location=s.location,
        tags=s.tags,
        opts=located(parent),
    )
    previous: pulumi.Resource = nsg
    for rule in r.inbound_rules(s):
        if rule.name == r.PASSIVE_RULE:
            continue
        previous = network.SecurityRule(
            f"{name}-nsg-{rule.name}",
            resource_group_name=where.rg_name,
            network_security_group_name=nsg.name,
            **security_rule_args(rule),
            opts=pulumi.ResourceOptions(parent=nsg, depends_on=[previous]),
        )
    assert isinstance(previous, network.SecurityRule)
    return Firewall(nsg, previous)


def passive_rule(
    name: str, s: Settings, where: Placement, fw: Firewall, after: Sequence[pulumi.Resource]
) -> network.SecurityRule:
    """The passive range's rule, changed only after every instance announces no port it closes
    (`after`: the instances' narrowing steps) and before any announces a port it opens."""
    (rule,) = [x for x in r.inbound_rules(s) if x.name == r.PASSIVE_RULE]
    return network.SecurityRule(
        f"{name}-nsg-{rule.name}",
        resource_group_name=where.rg_name,
        network_security_group_name=fw.nsg.name,
        **security_rule_args(rule),
        opts=pulumi.ResourceOptions(parent=fw.nsg, depends_on=[fw.last_rule, *after]),
    )


# -- public address and load balancer -----------------------------------------------------------


def public_ip(
    name: str, s: Settings, where: Placement, parent: pulumi.Resource
) -> network.PublicIPAddress:
    return network.PublicIPAddress(
        f"{name}-ip",
        resource_group_name=where.rg_name,
        location=s.location,
        sku={"name": "Standard", "tier": "Regional"},
        public_ip_allocation_method="Static",
        public_ip_address_version="IPv4",
        # Behind a load balancer the rules carry the idle timeout (the address's own applies
        # only to flows to a NIC, and is limited to 30 minutes).
        idle_timeout_in_minutes=s.idle_timeout_minutes if s.exposure == "public-ip" else None,
        dns_settings={"domain_name_label": s.dns_label} if s.dns_label else None,
        zones=[str(z) for z in (1, 2, 3)] if s.zones else None,
        tags=s.tags,
        opts=located(parent, replace=["zones"]),
    )


def lb_name(name: str, s: Settings) -> str:
    """The load balancer's name in Azure, fixed so that its rules can name its own children
    before it exists. In a resource group of its own the component's name is unique; in a shared
    (existing) one the stack's name keeps two stacks' load balancers apart."""
    if not s.use_existing_resource_group:
        return f"{name}-lb"
    return f"{name}-{re.sub('[^A-Za-z0-9-]', '-', pulumi.get_stack())}-lb"[:80]


def lb_id(name: str, s: Settings, where: Placement) -> pulumi.Output[str]:
    """The load balancer's id, known before it exists: its rules name its own children by it."""
    return pulumi.Output.concat(
        "/subscriptions/",
        _subscription_id(),
        "/resourceGroups/",
        where.rg_name,
        "/providers/Microsoft.Network/loadBalancers/",
        lb_name(name, s),
    )


def balancing_rules(s: Settings, lb: pulumi.Input[str]) -> list[dict[str, Any]]:
    """Port 21 (and SFTP's 22) over the instances whose probe passes."""
    names = {FTP_CONTROL_PORT: LB_RULE, r.SFTP_PORT: LB_SFTP_RULE}
    return [control_rule(s, lb, names[port], port) for port in r.load_balancer_rule_ports(s)]


def control_rule(
    s: Settings, lb: pulumi.Input[str], name: str = LB_RULE, port: int = FTP_CONTROL_PORT
) -> dict[str, Any]:
    """A port over the instances whose probe passes; outbound traffic goes through the explicit
    outbound rule instead."""
    return {
        "name": name,
        "protocol": "Tcp",
        "frontendPort": port,
        "backendPort": port,
        "frontendIPConfiguration": {"id": child_id(lb, "frontendIPConfigurations", LB_FRONTEND)},
        "backendAddressPool": {"id": child_id(lb, "backendAddressPools", LB_POOL)},
        "probe": {"id": child_id(lb, "probes", r.PROBE_NAME)},
        "enableFloatingIP": False,
        "loadDistribution": "Default",
        "disableOutboundSnat": True,
        "idleTimeoutInMinutes": s.idle_timeout_minutes,
        "enableTcpReset": s.lb_tcp_reset,
    }


def lb_body(s: Settings, lb: pulumi.Input[str], ip: pulumi.Input[str]) -> dict[str, Any]:
    """The load balancer's properties in ARM's names, without its NAT rules: one definition that
    both writers of the load balancer use (`load_balancer` and `nat_deployment`). A Standard LB:
    port 21 balanced over the instances that pass the probe, and an outbound rule (a VM behind a
    Standard LB has no outbound access otherwise, and the bootstrap needs the Debian archive)."""
    frontend = {"id": child_id(lb, "frontendIPConfigurations", LB_FRONTEND)}
    return {
        "frontendIPConfigurations": [{"name": LB_FRONTEND, "publicIPAddress": {"id": ip}}],
        # A pool for every instance a stack may have, used or not (pools are free): a pool that
        # goes away while a NAT rule or a NIC still names it is refused by Azure, and the
        # removed instance's NIC and NAT rules go only later in the same `pulumi up`.
        "backendAddressPools": [
            {"name": pool} for pool in [LB_POOL, *map(instance_pool, range(MAX_INSTANCES))]
        ],
        "probes": [
            {
                "name": r.PROBE_NAME,
                "protocol": "Tcp",
                "port": paths.HEALTH_PORT,
                "intervalInSeconds": r.PROBE_INTERVAL_SECONDS,
                "probeThreshold": r.PROBE_THRESHOLD,
            }
        ],
        "loadBalancingRules": balancing_rules(s, lb),
        "outboundRules": [
            {
                "name": "outbound",
                "protocol": "All",
                "frontendIPConfigurations": [frontend],
                "backendAddressPool": {"id": child_id(lb, "backendAddressPools", LB_POOL)},
                "idleTimeoutInMinutes": s.idle_timeout_minutes,
                "enableTcpReset": s.lb_tcp_reset,
            }
        ],
    }


def nat_rule_bodies(s: Settings, lb: pulumi.Input[str]) -> list[dict[str, Any]]:
    """One inbound NAT rule per passive port (and SSH), each to its instance's own pool."""
    return [
        {
            "name": rule.name,
            "protocol": "Tcp",
            "frontendIPConfiguration": {
                "id": child_id(lb, "frontendIPConfigurations", LB_FRONTEND)
            },
            "backendAddressPool": {
                "id": child_id(lb, "backendAddressPools", instance_pool(rule.instance))
            },
            "frontendPortRangeStart": rule.frontend_port,
            "frontendPortRangeEnd": rule.frontend_port,
            "backendPort": rule.backend_port,
            "enableFloatingIP": False,
            "idleTimeoutInMinutes": s.idle_timeout_minutes,
            "enableTcpReset": s.lb_tcp_reset,
        }
        for rule in r.nat_rules(s)
    ]


def load_balancer(
    name: str, s: Settings, where: Placement, ip: network.PublicIPAddress, parent: pulumi.Resource
) -> network.LoadBalancer:
    """The load balancer as the NICs need it: frontend, pools, probe, the rule for 21, outbound.
    It declares no NAT rules: azure-native keeps the ones Azure has when an update leaves them
    unset, and `nat_deployment` writes them all, later in the graph."""
    body = lb_body(s, lb_id(name, s, where), ip.id)
    return network.LoadBalancer(
        f"{name}-lb",
        load_balancer_name=lb_name(name, s),
        resource_group_name=where.rg_name,
        location=s.location,
        sku={"name": "Standard", "tier": "Regional"},
        frontend_ip_configurations=body["frontendIPConfigurations"],
        backend_address_pools=body["backendAddressPools"],
        probes=body["probes"],
        load_balancing_rules=body["loadBalancingRules"],
        outbound_rules=body["outboundRules"],
        tags=s.tags,
        opts=located(parent, replace=["sku"]),
    )


def arm_template(s: Settings, lb: str, body: dict[str, Any]) -> dict[str, Any]:
    """An ARM template whose one resource is the whole load balancer: one PUT of it, its NAT
    rules inline. ARM's own form nests each child's settings under "properties"."""

    def child(entry: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": entry["name"],
            "properties": {k: v for k, v in entry.items() if k != "name"},
        }

    return {
        "$schema": ARM_TEMPLATE_SCHEMA,
        "contentVersion": "1.0.0.0",
        "resources": [
            {
                "type": "Microsoft.Network/loadBalancers",
                "apiVersion": LB_API_VERSION,
                "name": lb,
                "location": s.location,
                "sku": {"name": "Standard", "tier": "Regional"},
                "tags": s.tags,
                "properties": {key: [child(e) for e in entries] for key, entries in body.items()},
            }
        ],
    }


def nat_deployment(
    name: str,
    s: Settings,
    where: Placement,
    lb: network.LoadBalancer,
    ip: network.PublicIPAddress,
    after: Sequence[pulumi.Resource],
) -> resources.Deployment:
    """Every NAT rule in one write of the load balancer (an ARM deployment of its whole body),
    after every instance's narrowing step (`after`): a port moves to another instance, or stops
    being forwarded, only once no instance announces it any more; a new port is forwarded before
    any instance announces it (the configuration steps come after this). One write instead of
    one per rule: Azure refuses concurrent writes under one load balancer, so separate NAT rules
    are written one after the other, each an operation the provider polls every 10 s."""
    own = lb_id(name, s, where)
    template = pulumi.Output.all(own, ip.id).apply(
        lambda ids: arm_template(
            s,
            lb_name(name, s),
            {**lb_body(s, ids[0], ids[1]), "inboundNatRules": nat_rule_bodies(s, ids[0])},
        )
    )
    properties: Any = {"mode": "Incremental", "template": template}  # the SDK types it as Any
    return resources.Deployment(
        f"{name}-lb-nat",
        resource_group_name=where.rg_name,
        properties=properties,
        opts=pulumi.ResourceOptions(parent=lb, depends_on=[lb, *after]),
    )


def _subscription_id() -> pulumi.Output[str]:
    from pulumi_azure_native import authorization

    return authorization.get_client_config_output().subscription_id
