"""`FtpServer`: proftpd on an Azure Linux VM that works through Azure's network.

The component wires; it does not compute. What is open comes from `ftpstack.network`, what the VM
runs comes from `ftpstack.render`, both pure functions of the validated `Settings`.

Deliberately not here: DNS zones, certificates, backups, monitoring, or a second VM. The VM is
replaced (delete, then create) whenever its user-data changes, because Azure cannot update
customData in place; the public IP is a separate resource and survives that replacement.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shlex
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_azure_native import compute, network, resources
from pulumi_command import local, remote

from ftpstack import network as rules
from ftpstack.render import DATA_DISK_LUN, cloud_config
from ftpstack.settings import FTP_CONTROL_PORT, Settings

TYPE_TOKEN = "ftpstack:azure:FtpServer"
# The property that holds the user-data; a change to it must replace the VM.
CUSTOM_DATA = "osProfile.customData"


@dataclass(frozen=True)
class FtpServerArgs:
    settings: Settings


class FtpServer(pulumi.ComponentResource):
    """An FTP server (proftpd) on an Azure VM behind a static public IP or a Standard LB."""

    ftp_endpoint: pulumi.Output[str]
    """ftp://<fqdn or public IP>:21 — what clients connect to."""
    public_ip: pulumi.Output[str]
    """The static public IP address; also proftpd's MasqueradeAddress."""
    fqdn: pulumi.Output[str]
    """The DNS name of the public IP, or "" when no DNS label is set."""
    control_port: pulumi.Output[int]
    """The FTP control port (21)."""
    passive_port_range: pulumi.Output[str]
    """The passive data port range, "start-end", as opened and announced."""
    vm_id: pulumi.Output[str]
    """The Azure resource id of the VM."""
    vm_name: pulumi.Output[str]
    """The VM's name in Azure."""
    resource_group_name: pulumi.Output[str]
    """The resource group holding every resource of the server."""

    def __init__(
        self, name: str, args: FtpServerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE_TOKEN, name, None, opts)
        s = args.settings
        self._name = name
        self._settings = s
        child = pulumi.ResourceOptions(parent=self)

        rg_name = self._resource_group(child)
        subnet_id = self._subnet(rg_name, child)
        nsg = network.NetworkSecurityGroup(
            f"{name}-nsg",
            resource_group_name=rg_name,
            location=s.location,
            security_rules=[_security_rule(rule) for rule in rules.inbound_rules(s)],
            tags=s.tags,
            opts=child,
        )
        ip = network.PublicIPAddress(
            f"{name}-ip",
            resource_group_name=rg_name,
            location=s.location,
            sku={"name": "Standard", "tier": "Regional"},
            public_ip_allocation_method="Static",
            public_ip_address_version="IPv4",
            idle_timeout_in_minutes=s.idle_timeout_minutes,
            dns_settings={"domain_name_label": s.dns_label} if s.dns_label else None,
            tags=s.tags,
            opts=child,
        )
        exposure: dict[str, Any]
        if s.exposure == "load-balancer":
            # The public IP sits on the load balancer; the NIC only joins its backend pool.
            pool = network.BackendAddressPoolArgs(id=self._load_balancer(rg_name, ip))
            exposure = {"load_balancer_backend_address_pools": [pool]}
        else:
            exposure = {"public_ip_address": network.PublicIPAddressArgs(id=ip.id)}
        nic = network.NetworkInterface(
            f"{name}-nic",
            resource_group_name=rg_name,
            location=s.location,
            ip_configurations=[
                network.NetworkInterfaceIPConfigurationArgs(
                    name="ipconfig",
                    subnet=network.SubnetArgs(id=subnet_id),
                    private_ip_allocation_method="Dynamic",
                    primary=True,
                    **exposure,
                )
            ],
            network_security_group=network.NetworkSecurityGroupArgs(id=nsg.id),
            tags=s.tags,
            opts=child,
        )
        address = ip.ip_address.apply(lambda a: a or "")
        seed = f"{pulumi.get_project()}/{pulumi.get_stack()}/{name}"
        user_data = address.apply(
            lambda a: base64.b64encode(cloud_config(s, a, seed).encode()).decode()
        )
        data_disk = self._data_disk(rg_name)
        vm = self._vm(rg_name, nic, pulumi.Output.secret(user_data), data_disk)
        self._post_deploy_checks(vm, address, user_data)

        self.public_ip = address
        self.fqdn = ip.dns_settings.apply(lambda d: (d.fqdn or "") if d else "")
        self.ftp_endpoint = pulumi.Output.all(self.fqdn, self.public_ip).apply(
            lambda parts: f"ftp://{parts[0] or parts[1]}:{FTP_CONTROL_PORT}"
        )
        self.control_port = pulumi.Output.from_input(FTP_CONTROL_PORT)
        self.passive_port_range = pulumi.Output.from_input(
            f"{s.passive_port_start}-{s.passive_port_end}"
        )
        self.vm_id = vm.id
        self.vm_name = vm.name
        self.resource_group_name = pulumi.Output.from_input(rg_name)
        self.register_outputs(
            {
                "ftp_endpoint": self.ftp_endpoint,
                "public_ip": self.public_ip,
                "fqdn": self.fqdn,
                "control_port": self.control_port,
                "passive_port_range": self.passive_port_range,
                "vm_id": self.vm_id,
                "vm_name": self.vm_name,
                "resource_group_name": self.resource_group_name,
            }
        )

    def _resource_group(self, child: pulumi.ResourceOptions) -> pulumi.Input[str]:
        s = self._settings
        if s.use_existing_resource_group:
            return s.resource_group_name
        rg = resources.ResourceGroup(
            f"{self._name}-rg",
            resource_group_name=s.resource_group_name or None,
            location=s.location,
            tags=s.tags,
            opts=child,
        )
        return rg.name

    def _subnet(
        self, rg_name: pulumi.Input[str], child: pulumi.ResourceOptions
    ) -> pulumi.Input[str]:
        s = self._settings
        if s.existing_subnet_id:
            return s.existing_subnet_id
        vnet = network.VirtualNetwork(
            f"{self._name}-vnet",
            resource_group_name=rg_name,
            location=s.location,
            address_space={"address_prefixes": [s.vnet_address_space]},
            tags=s.tags,
            opts=child,
        )
        subnet = network.Subnet(
            f"{self._name}-subnet",
            resource_group_name=rg_name,
            virtual_network_name=vnet.name,
            address_prefix=s.subnet_prefix,
            opts=pulumi.ResourceOptions(parent=vnet),
        )
        return subnet.id

    def _load_balancer(
        self, rg_name: pulumi.Input[str], ip: network.PublicIPAddress
    ) -> pulumi.Output[str]:
        """A Standard LB: one rule per port (no port ranges on public LB rules), a probe on 21,
        and an outbound rule, because a VM behind a Standard LB has no outbound access otherwise
        (cloud-init must reach the Debian archive to install proftpd). Returns the pool's id."""
        s = self._settings
        lb_name = f"{self._name}-lb"
        lb_id = pulumi.Output.concat(
            "/subscriptions/",
            _subscription_id(),
            "/resourceGroups/",
            rg_name,
            "/providers/Microsoft.Network/loadBalancers/",
            lb_name,
        )
        frontend_id = lb_id.apply(lambda i: f"{i}/frontendIPConfigurations/frontend")
        pool_id = lb_id.apply(lambda i: f"{i}/backendAddressPools/backend")
        probe_id = lb_id.apply(lambda i: f"{i}/probes/ftp-control")
        network.LoadBalancer(
            lb_name,
            load_balancer_name=lb_name,
            resource_group_name=rg_name,
            location=s.location,
            sku=network.LoadBalancerSkuArgs(name="Standard", tier="Regional"),
            frontend_ip_configurations=[
                network.FrontendIPConfigurationArgs(
                    name="frontend", public_ip_address=network.PublicIPAddressArgs(id=ip.id)
                )
            ],
            backend_address_pools=[network.BackendAddressPoolArgs(name="backend")],
            probes=[
                network.ProbeArgs(
                    name="ftp-control",
                    protocol="Tcp",
                    port=FTP_CONTROL_PORT,
                    interval_in_seconds=5,
                    number_of_probes=2,
                    probe_threshold=1,
                )
            ],
            load_balancing_rules=[
                network.LoadBalancingRuleArgs(
                    name=f"ftp-{port}",
                    protocol="Tcp",
                    frontend_port=port,
                    backend_port=port,
                    frontend_ip_configuration=network.SubResourceArgs(id=frontend_id),
                    backend_address_pool=network.SubResourceArgs(id=pool_id),
                    probe=network.SubResourceArgs(id=probe_id),
                    idle_timeout_in_minutes=s.idle_timeout_minutes,
                    enable_tcp_reset=s.lb_tcp_reset,
                    enable_floating_ip=False,
                    # Outbound traffic goes through the explicit outbound rule below.
                    disable_outbound_snat=True,
                    load_distribution="Default",
                )
                for port in rules.load_balancer_ports(s)
            ],
            outbound_rules=[
                network.OutboundRuleArgs(
                    name="outbound",
                    protocol="All",
                    frontend_ip_configurations=[network.SubResourceArgs(id=frontend_id)],
                    backend_address_pool=network.SubResourceArgs(id=pool_id),
                    idle_timeout_in_minutes=s.idle_timeout_minutes,
                    enable_tcp_reset=s.lb_tcp_reset,
                )
            ],
            tags=s.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        return pool_id

    def _data_disk(self, rg_name: pulumi.Input[str]) -> compute.Disk | None:
        """The customers' files, on a disk of their own: a separate resource that a VM
        replacement (new user-data) does not touch, optionally protected from deletion."""
        s = self._settings
        if not s.data_disk_size_gb:
            return None
        return compute.Disk(
            f"{self._name}-data",
            resource_group_name=rg_name,
            location=s.location,
            disk_size_gb=s.data_disk_size_gb,
            sku=compute.DiskSkuArgs(name=s.data_disk_sku),
            creation_data=compute.CreationDataArgs(create_option="Empty"),
            tags=s.tags,
            opts=pulumi.ResourceOptions(parent=self, protect=s.data_disk_protect),
        )

    def _vm(
        self,
        rg_name: pulumi.Input[str],
        nic: network.NetworkInterface,
        custom_data: pulumi.Output[str],
        data_disk: compute.Disk | None,
    ) -> compute.VirtualMachine:
        s = self._settings
        return compute.VirtualMachine(
            f"{self._name}-vm",
            resource_group_name=rg_name,
            location=s.location,
            hardware_profile={"vm_size": s.vm_size},
            os_profile={
                "computer_name": f"{self._name}-ftp",
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
                "data_disks": (
                    [
                        {
                            "lun": DATA_DISK_LUN,
                            "create_option": "Attach",
                            "managed_disk": {"id": data_disk.id},
                            # Replacing the VM must leave the customers' files where they are.
                            "delete_option": "Detach",
                        }
                    ]
                    if data_disk
                    else []
                ),
            },
            network_profile={"network_interfaces": [{"id": nic.id, "primary": True}]},
            # A failed cloud-init is then visible in the portal's serial log.
            diagnostics_profile={"boot_diagnostics": {"enabled": True}},
            # What the policy pack checks before the user-data (which needs the IP) is known.
            tags={
                **s.tags,
                "ftpstack:tls": s.tls,
                "ftpstack:keepalive-idle-seconds": str(s.keepalive_idle_seconds),
                "ftpstack:keepalive-interval-seconds": str(s.keepalive_interval_seconds),
            },
            opts=pulumi.ResourceOptions(
                parent=self,
                # Azure cannot change customData of an existing VM and the provider would
                # otherwise report an update that changes nothing on the machine.
                replace_on_changes=[CUSTOM_DATA],
                delete_before_replace=True,
            ),
        )

    def _post_deploy_checks(
        self, vm: compute.VirtualMachine, address: pulumi.Output[str], user_data: pulumi.Output[str]
    ) -> None:
        """`pulumi up` must not report success for a server that does not serve. Both checks run
        again whenever the user-data changes (the VM is then a new machine)."""
        s = self._settings
        digest: pulumi.Output[str] = user_data.apply(
            lambda d: hashlib.sha256(d.encode()).hexdigest()
        )
        trigger: pulumi.Output[str] = pulumi.Output.secret(digest)  # type: ignore[arg-type]
        after: list[pulumi.Resource] = [vm]
        if s.cloud_init_check:
            after.append(
                remote.Command(
                    f"{self._name}-cloud-init-check",
                    connection=remote.ConnectionArgs(
                        host=address,
                        user=s.admin_username,
                        agent_socket_path=os.environ.get("SSH_AUTH_SOCK"),
                        dial_error_limit=60,
                        per_dial_timeout=10,
                    ),
                    # `status --wait` exits non-zero on errors; --long says which module failed.
                    create="cloud-init status --wait --long",
                    triggers=[trigger],
                    opts=pulumi.ResourceOptions(parent=vm, depends_on=[vm]),
                )
            )
        if not s.post_deploy_check:
            return
        args = [
            "venv/bin/python", "-m", "ftpstack.ftpcheck",
            "--expect-passive-range", f"{s.passive_port_start}-{s.passive_port_end}",
            "--wait", str(s.post_deploy_wait_seconds),
        ]  # fmt: skip
        environment: dict[str, pulumi.Input[str]] = {}
        if s.tls == "required":
            # Encrypted like every client must; the certificate may be the self-signed one
            # made at first boot, so this checks serving, not the certificate's trust chain.
            args += ["--tls", "--no-verify"]
        if s.users:
            args += ["--user", s.users[0].name]
            environment["FTP_PASSWORD"] = pulumi.Output.secret(
                s.users[0].password.get_secret_value()
            )
        command = address.apply(lambda a: shlex.join([*args, "--host", a, "--expect-public-ip", a]))
        local.Command(
            f"{self._name}-smoke-check",
            create=command,
            environment=environment,
            triggers=[trigger],
            opts=pulumi.ResourceOptions(parent=vm, depends_on=after),
        )


def _security_rule(rule: rules.InboundRule) -> network.SecurityRuleArgs:
    return network.SecurityRuleArgs(
        name=rule.name,
        priority=rule.priority,
        direction="Inbound",
        access=rule.access,
        protocol=rule.protocol,
        source_port_range="*",
        source_address_prefix=rule.source_prefix,
        source_address_prefixes=rule.source_prefixes,
        destination_address_prefix="*",
        destination_port_range=rule.port_spec,
        description=rule.description,
    )


def _subscription_id() -> pulumi.Output[str]:
    from pulumi_azure_native import authorization

    return authorization.get_client_config_output().subscription_id
