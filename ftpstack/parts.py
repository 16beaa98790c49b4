"""Builders for the parts of an `FtpServer`: each declares one part's azure-native resources from
the settings and the parts it needs, and returns what later parts reference.

Every reference to another resource is an output of that resource (so the engine orders them and
ARM never sees a reference to something that does not exist yet); only a load balancer's
references to its own children are spelled out, because one request creates them together.
Children of one parent that are separate resources (NSG rules, NAT rules) are chained, because
Azure refuses concurrent writes under one parent (AnotherOperationInProgress).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pulumi
from pulumi_azure_native import network, resources

from ftpstack import paths
from ftpstack import rules as r
from ftpstack.settings import FTP_CONTROL_PORT, Settings

T = TypeVar("T")
LB_FRONTEND = "frontend"
LB_POOL = "backend"
LB_RULE = "ftp-control"


def instance_suffix(index: int) -> str:
    """Instance 0 keeps the names a single server always had; the others are numbered."""
    return "" if index == 0 else f"-{index}"


def child_id(parent_id: pulumi.Input[str], kind: str, name: str) -> pulumi.Output[str]:
    return pulumi.Output.from_input(parent_id).apply(lambda i: f"{i}/{kind}/{name}")


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
    if s.existing_subnet_id:
        return Placement(rg_name, s.existing_subnet_id, None)
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
    return Placement(rg_name, subnet.id, vnet.id)


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


def lb_id(name: str, where: Placement) -> pulumi.Output[str]:
    """The load balancer's id, known before it exists: its rules name its own children by it."""
    return pulumi.Output.concat(
        "/subscriptions/",
        _subscription_id(),
        "/resourceGroups/",
        where.rg_name,
        "/providers/Microsoft.Network/loadBalancers/",
        f"{name}-lb",
    )


def control_rule(s: Settings, lb: pulumi.Output[str]) -> network.LoadBalancingRuleArgsDict:
    """Port 21 over the instances whose probe passes; outbound traffic goes through the
    explicit outbound rule instead."""
    return {
        "name": LB_RULE,
        "protocol": "Tcp",
        "frontend_port": FTP_CONTROL_PORT,
        "backend_port": FTP_CONTROL_PORT,
        "frontend_ip_configuration": {"id": child_id(lb, "frontendIPConfigurations", LB_FRONTEND)},
        "backend_address_pool": {"id": child_id(lb, "backendAddressPools", LB_POOL)},
        "probe": {"id": child_id(lb, "probes", r.PROBE_NAME)},
        "enable_floating_ip": False,
        "load_distribution": "Default",
        "disable_outbound_snat": True,
        "idle_timeout_in_minutes": s.idle_timeout_minutes,
        "enable_tcp_reset": s.lb_tcp_reset,
    }


def load_balancer(
    name: str, s: Settings, where: Placement, ip: network.PublicIPAddress, parent: pulumi.Resource
) -> network.LoadBalancer:
    """A Standard LB: port 21 balanced over the instances that pass the probe; an outbound rule
    (a VM behind a Standard LB has no outbound access otherwise, and the bootstrap needs the
    Debian archive). Its NAT rules are separate resources (`nat_rules`)."""
    own = lb_id(name, where)
    return network.LoadBalancer(
        f"{name}-lb",
        load_balancer_name=f"{name}-lb",
        resource_group_name=where.rg_name,
        location=s.location,
        sku={"name": "Standard", "tier": "Regional"},
        frontend_ip_configurations=[{"name": LB_FRONTEND, "public_ip_address": {"id": ip.id}}],
        backend_address_pools=[
            {"name": pool_name} for pool_name in [LB_POOL, *map(instance_pool, range(s.instances))]
        ],
        probes=[
            {
                "name": r.PROBE_NAME,
                "protocol": "Tcp",
                "port": paths.HEALTH_PORT,
                "interval_in_seconds": r.PROBE_INTERVAL_SECONDS,
                "probe_threshold": r.PROBE_THRESHOLD,
            }
        ],
        load_balancing_rules=[control_rule(s, own)],
        outbound_rules=[
            {
                "name": "outbound",
                "protocol": "All",
                "frontend_ip_configurations": [
                    {"id": child_id(own, "frontendIPConfigurations", LB_FRONTEND)}
                ],
                "backend_address_pool": {"id": child_id(own, "backendAddressPools", LB_POOL)},
                "idle_timeout_in_minutes": s.idle_timeout_minutes,
                "enable_tcp_reset": s.lb_tcp_reset,
            }
        ],
        tags=s.tags,
        opts=located(parent, replace=["sku"]),
    )


def nat_rules(
    name: str, s: Settings, where: Placement, lb: network.LoadBalancer
) -> dict[int, list[network.InboundNatRule]]:
    """One inbound NAT rule per passive port (and SSH), each to its instance's own pool, chained.
    A rule for a port that leaves the range is deleted at the end of `pulumi up`, after every
    instance stopped announcing it; a new one exists before any instance announces it."""
    by_instance: dict[int, list[network.InboundNatRule]] = {i: [] for i in range(s.instances)}
    previous: pulumi.Resource = lb
    for rule in r.nat_rules(s):
        previous = network.InboundNatRule(
            f"{name}-nat-{rule.name}",
            resource_group_name=where.rg_name,
            load_balancer_name=lb.name,
            inbound_nat_rule_name=rule.name,
            protocol="Tcp",
            frontend_ip_configuration={
                "id": child_id(lb.id, "frontendIPConfigurations", LB_FRONTEND)
            },
            backend_address_pool={
                "id": child_id(lb.id, "backendAddressPools", instance_pool(rule.instance))
            },
            frontend_port_range_start=rule.frontend_port,
            frontend_port_range_end=rule.frontend_port,
            backend_port=rule.backend_port,
            enable_floating_ip=False,
            idle_timeout_in_minutes=s.idle_timeout_minutes,
            enable_tcp_reset=s.lb_tcp_reset,
            opts=pulumi.ResourceOptions(parent=lb, depends_on=[previous]),
        )
        by_instance[rule.instance].append(previous)  # type: ignore[arg-type]
    return by_instance


def _subscription_id() -> pulumi.Output[str]:
    from pulumi_azure_native import authorization

    return authorization.get_client_config_output().subscription_id
