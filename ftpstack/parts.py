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
from pulumi_azure_native import compute, network, resources

from ftpstack import checks, paths
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


def load_balancer(
    name: str, s: Settings, where: Placement, ip: network.PublicIPAddress, parent: pulumi.Resource
) -> network.LoadBalancer:
    """A Standard LB: port 21 balanced over the instances that pass the probe; an outbound rule
    (a VM behind a Standard LB has no outbound access otherwise, and the bootstrap needs the
    Debian archive). Its NAT rules are separate resources (`nat_rules`)."""
    lb_name = f"{name}-lb"
    lb_id = pulumi.Output.concat(
        "/subscriptions/",
        _subscription_id(),
        "/resourceGroups/",
        where.rg_name,
        "/providers/Microsoft.Network/loadBalancers/",
        lb_name,
    )
    frontend: network.SubResourceArgsDict = {
        "id": child_id(lb_id, "frontendIPConfigurations", LB_FRONTEND)
    }
    pool: network.SubResourceArgsDict = {"id": child_id(lb_id, "backendAddressPools", LB_POOL)}
    return network.LoadBalancer(
        lb_name,
        load_balancer_name=lb_name,
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
        load_balancing_rules=[
            {
                "name": LB_RULE,
                "protocol": "Tcp",
                "frontend_port": FTP_CONTROL_PORT,
                "backend_port": FTP_CONTROL_PORT,
                "frontend_ip_configuration": frontend,
                "backend_address_pool": pool,
                "probe": {"id": child_id(lb_id, "probes", r.PROBE_NAME)},
                "enable_floating_ip": False,
                "load_distribution": "Default",
                # Outbound traffic goes through the explicit outbound rule below.
                "disable_outbound_snat": True,
                "idle_timeout_in_minutes": s.idle_timeout_minutes,
                "enable_tcp_reset": s.lb_tcp_reset,
            }
        ],
        outbound_rules=[
            {
                "name": "outbound",
                "protocol": "All",
                "frontend_ip_configurations": [frontend],
                "backend_address_pool": pool,
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


# -- one instance ---------------------------------------------------------------------------------


def nic(
    name: str,
    index: int,
    s: Settings,
    where: Placement,
    nsg: network.NetworkSecurityGroup,
    ip: network.PublicIPAddress,
    lb: network.LoadBalancer | None,
    parent: pulumi.Resource,
) -> network.NetworkInterface:
    config: network.NetworkInterfaceIPConfigurationArgsDict = {
        "name": "ipconfig",
        "subnet": {"id": where.subnet_id},
        "private_ip_allocation_method": "Dynamic",
        "primary": True,
    }
    if lb is not None:  # the public IP sits on the load balancer; the NIC joins its pools
        config["load_balancer_backend_address_pools"] = [
            {"id": child_id(lb.id, "backendAddressPools", pool)}
            for pool in (LB_POOL, instance_pool(index))
        ]
    else:
        config["public_ip_address"] = {"id": ip.id}
    return network.NetworkInterface(
        f"{name}-nic{instance_suffix(index)}",
        resource_group_name=where.rg_name,
        location=s.location,
        ip_configurations=[config],
        network_security_group={"id": nsg.id},
        tags=s.tags,
        opts=located(parent),
    )


def zone_of(s: Settings, index: int) -> str | None:
    return str(s.zones[index % len(s.zones)]) if s.zones else None


def data_disk(
    name: str, index: int, s: Settings, where: Placement, parent: pulumi.Resource
) -> compute.Disk | None:
    """The customers' files and the TLS identity, on a disk of their own: a VM replacement
    detaches it and the new VM mounts it again."""
    if not s.data_disk_size_gb or s.shared_storage:
        return None
    zone = zone_of(s, index)
    return compute.Disk(
        f"{name}-data{instance_suffix(index)}",
        resource_group_name=where.rg_name,
        location=s.location,
        disk_size_gb=s.data_disk_size_gb,
        sku={"name": s.data_disk_sku},
        creation_data={"create_option": "Empty"},
        zones=[zone] if zone else None,
        tags=s.tags,
        opts=located(parent, replace=["creationData", "zones"], protect=s.data_disk_protect),
    )


def virtual_machine(
    name: str,
    index: int,
    s: Settings,
    where: Placement,
    nic_: network.NetworkInterface,
    custom_data: pulumi.Input[str],
    disk: compute.Disk | None,
    parent: pulumi.Resource,
    after: Sequence[pulumi.Resource] = (),
) -> compute.VirtualMachine:
    zone = zone_of(s, index)
    disks: list[compute.DataDiskArgsDict] = []
    if disk is not None:
        disks.append(
            {
                "lun": paths.DATA_DISK_LUN,
                "create_option": "Attach",
                "managed_disk": {"id": disk.id},
                "delete_option": "Detach",
            }
        )
    return compute.VirtualMachine(
        f"{name}-vm{instance_suffix(index)}",
        resource_group_name=where.rg_name,
        location=s.location,
        hardware_profile={"vm_size": s.vm_size},
        os_profile={
            "computer_name": f"{name}-ftp{instance_suffix(index)}",
            "admin_username": s.admin_username,
            "custom_data": custom_data,
            "linux_configuration": {
                "disable_password_authentication": True,
                "provision_vm_agent": True,
                "ssh": {
                    "public_keys": [
                        {
                            "path": f"/home/{s.admin_username}/.ssh/authorized_keys",
                            "key_data": s.ssh_public_key,
                        }
                    ]
                },
            },
        },
        storage_profile={
            "image_reference": {
                "publisher": s.image_publisher,
                "offer": s.image_offer,
                "sku": s.image_sku,
                "version": s.image_version,
            },
            "os_disk": {
                "create_option": "FromImage",
                "delete_option": "Delete",
                "managed_disk": {"storage_account_type": "StandardSSD_LRS"},
            },
            "data_disks": disks,
        },
        network_profile={"network_interfaces": [{"id": nic_.id, "primary": True}]},
        # A failed bootstrap is then visible in the portal's serial log.
        diagnostics_profile={"boot_diagnostics": {"enabled": True}},
        zones=[zone] if zone else None,
        tags=checks.vm_tags(s),
        opts=pulumi.ResourceOptions(
            parent=parent,
            replace_on_changes=checks.vm_replaced_on(),
            ignore_changes=list(checks.VM_IGNORED),
            depends_on=list(after),
            # The new VM attaches the same NIC and data disk: the old one must let go first.
            delete_before_replace=True,
        ),
    )


def secret(value: pulumi.Output[T]) -> pulumi.Output[T]:
    """`pulumi.Output.secret`, typed: mypy solves its `Input[U]` against an `Output` as Never."""
    return pulumi.Output.secret(value)  # type: ignore[arg-type]


def run_command(
    name: str,
    vm: compute.VirtualMachine,
    s: Settings,
    where: Placement,
    *,
    role: str,
    script: str,
    parameters: dict[str, str],
    protected: pulumi.Input[str] | None,
    after: Sequence[pulumi.Resource],
) -> compute.VirtualMachineRunCommandByVirtualMachine:
    """A managed Run Command: synchronous, and its failure fails the deployment."""
    from ftpstack.live import CONFIG_PARAMETER

    parameter = compute.RunCommandInputParameterArgs
    secret_parameters = None
    if protected is not None:
        secret_parameters = secret(
            pulumi.Output.from_input(protected).apply(
                lambda v: [parameter(name=CONFIG_PARAMETER, value=v)]
            )
        )
    return compute.VirtualMachineRunCommandByVirtualMachine(
        f"{name}-{role}",
        resource_group_name=where.rg_name,
        vm_name=vm.name,
        location=s.location,
        run_command_name=f"ftpstack-{role}",
        source=compute.VirtualMachineRunCommandScriptSourceArgs(script=script),
        parameters=[parameter(name=k, value=v) for k, v in parameters.items()],
        protected_parameters=secret_parameters,
        async_execution=False,
        treat_failure_as_deployment_failure=True,
        timeout_in_seconds=3600,
        tags=s.tags,
        opts=located(
            vm, depends_on=[vm, *after], additional_secret_outputs=["protected_parameters"]
        ),
    )
