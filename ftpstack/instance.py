"""Builders for one instance of an `FtpServer`: its NIC, its data disk, its VM and the managed
Run Commands that configure it (see `ftpstack.parts` for the parts the instances share)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import pulumi
from pulumi_azure_native import compute, network

from ftpstack import checks, paths
from ftpstack.parts import (
    LB_POOL,
    Placement,
    child_id,
    instance_pool,
    instance_suffix,
    located,
)
from ftpstack.settings import Settings

T = TypeVar("T")


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
    if where.servers is not None:  # the share's NSG admits this group's members
        config["application_security_groups"] = [{"id": where.servers.id}]
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
        creation_data=(
            {"create_option": "Copy", "source_resource_id": s.data_disk_source_id}
            if s.data_disk_source_id
            else {"create_option": "Empty"}
        ),
        zones=[zone] if zone else None,
        tags=s.tags,
        opts=located(parent, replace=["creationData", "zones"], protect=s.data_disk_protect),
    )


def os_profile(
    name: str, index: int, s: Settings, custom_data: pulumi.Input[str]
) -> compute.OSProfileArgsDict:
    """SSH key login only; the customData is the secret-free bootstrap."""
    key: compute.SshPublicKeyArgsDict = {
        "path": f"/home/{s.admin_username}/.ssh/authorized_keys",
        "key_data": s.ssh_public_key,
    }
    return {
        "computer_name": f"{name}-ftp{instance_suffix(index)}",
        "admin_username": s.admin_username,
        "custom_data": custom_data,
        "linux_configuration": {
            "disable_password_authentication": True,
            "provision_vm_agent": True,
            "ssh": {"public_keys": [key]},
        },
    }


def storage_profile(s: Settings, disk: compute.Disk | None) -> compute.StorageProfileArgsDict:
    """The image on a disk that goes with the VM, and the data disk that outlives it."""
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
    return {
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
    }


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
    return compute.VirtualMachine(
        f"{name}-vm{instance_suffix(index)}",
        resource_group_name=where.rg_name,
        location=s.location,
        hardware_profile={"vm_size": s.vm_size},
        os_profile=os_profile(name, index, s, custom_data),
        storage_profile=storage_profile(s, disk),
        network_profile={"network_interfaces": [{"id": nic_.id, "primary": True}]},
        # A failed bootstrap is then visible in the portal's serial log.
        diagnostics_profile={"boot_diagnostics": {"enabled": True}},
        # The Azure Monitor Agent signs in with the VM's managed identity.
        identity=(
            compute.VirtualMachineIdentityArgs(type=compute.ResourceIdentityType.SYSTEM_ASSIGNED)
            if s.operations["logs"]
            else None
        ),
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
    """A managed Run Command: synchronous, and its failure fails the deployment. `protected` is
    an encoded bundle, passed in parts as protected parameters (never returned by Azure's API,
    secret in the state)."""
    from ftpstack import live

    parameter = compute.RunCommandInputParameterArgs
    secret_parameters = None
    if protected is not None:
        secret_parameters = secret(
            pulumi.Output.from_input(protected).apply(
                lambda v: [parameter(name=k, value=x) for k, x in live.parameters(v).items()]
            )
        )
    public = {**parameters, live.RETRY_PARAMETER: str(s.apply_retry)}
    return compute.VirtualMachineRunCommandByVirtualMachine(
        f"{name}-{role}",
        resource_group_name=where.rg_name,
        vm_name=vm.name,
        location=s.location,
        run_command_name=f"ftpstack-{role}",
        source=compute.VirtualMachineRunCommandScriptSourceArgs(script=script),
        parameters=[parameter(name=k, value=v) for k, v in public.items()],
        protected_parameters=secret_parameters,
        async_execution=False,
        treat_failure_as_deployment_failure=True,
        timeout_in_seconds=3600,
        tags=s.tags,
        opts=located(
            vm, depends_on=[vm, *after], additional_secret_outputs=["protected_parameters"]
        ),
    )
