"""`FtpServer`: proftpd on Azure Linux VMs that works through Azure's network, and changes live.

The component wires; it does not compute. What is open comes from `ftpstack.rules`, what a VM
boots with from `ftpstack.bootstrap`, what it serves from `ftpstack.live`, all pure functions of
the validated `Settings`; `ftpstack.parts` turns them into azure-native resources.

The order of a deployment, per instance: the VM (created once, from a secret-free bootstrap);
`narrow` (a Run Command: before the network closes passive ports, the server stops announcing
them); the passive exposure (the NSG's passive rule, the load balancer's NAT rules); `configure`
(a Run Command applying the configuration, one instance after the other); the post-deploy check.
A change to users, passwords, limits, TLS, keepalive or the passive range updates the Run
Commands and the rules in place. Only what Azure cannot change (image, admin user, zone, the
bootstrap) replaces a VM, and the data disk and the TLS identity survive it.

Logs, alerts and backups: `ftpstack.operations`. Deliberately not here: DNS zones beyond Azure's
own label.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
from pulumi_azure_native import compute
from pulumi_command import local, remote

from ftpstack import (
    bootstrap,
    checks,
    ftpcheck,
    instance,
    live,
    operations,
    parts,
    render,
    sftp,
    storage,
)
from ftpstack.identity import Identity, certificate
from ftpstack.rules import SFTP_PORT, passive_slices, ssh_port
from ftpstack.settings import FTP_CONTROL_PORT, Settings

TYPE_TOKEN = "ftpstack:azure:FtpServer"


@dataclass(frozen=True)
class FtpServerArgs:
    settings: Settings


@dataclass(frozen=True)
class Instance:
    vm: compute.VirtualMachine
    private_ip: pulumi.Output[str]
    narrow: compute.VirtualMachineRunCommandByVirtualMachine
    disk: compute.Disk | None


class FtpServer(pulumi.ComponentResource):
    """FTP servers (proftpd) on Azure VMs behind a static public IP or a Standard LB."""

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
    """The Azure resource id of the (first) VM."""
    vm_name: pulumi.Output[str]
    """The (first) VM's name in Azure."""
    resource_group_name: pulumi.Output[str]
    """The resource group holding every resource of the server."""
    instances: pulumi.Output[list[dict[str, str]]]
    """Each instance: its VM name, private address and passive slice."""
    sftp_endpoint: pulumi.Output[str]
    """sftp://<fqdn or public IP>:22, "" without SFTP."""
    sftp_host_keys: pulumi.Output[list[str]]
    """The SSH host keys as known_hosts lines (FQDN and public IP), [] without SFTP."""

    def __init__(
        self, name: str, args: FtpServerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE_TOKEN, name, None, opts)
        s = self._settings = args.settings
        self._name = name
        where = parts.placement(name, s, self)
        fw = parts.firewall(name, s, where, self)
        ip = parts.public_ip(name, s, where, self)
        lb = (
            parts.load_balancer(name, s, where, ip, self) if s.exposure == "load-balancer" else None
        )
        address = ip.ip_address.apply(lambda a: a or "")
        self._identity = self._made_once()
        custom_data, ready = self._bootstrap(where)
        machines = [
            self._instance(i, where, fw, ip, lb, custom_data, ready) for i in range(s.instances)
        ]
        narrowed = [m.narrow for m in machines]
        # After every instance stopped announcing the ports that close or move, and before any
        # announces a port that opens: the NSG's passive rule and the load balancer's NAT rules
        # (both at once: they are independent writes).
        exposed: list[pulumi.Resource] = [parts.passive_rule(name, s, where, fw, narrowed)]
        if lb is not None:
            exposed.append(parts.nat_deployment(name, s, where, lb, ip, narrowed))
        configured = self._configure(where, machines, address, exposed)
        self._checks(machines, address, configured)
        shared = self._shared
        served = operations.Served(
            vms=[m.vm for m in machines],
            disks=[m.disk for m in machines],
            lb=lb,  # type: ignore[arg-type]
            account=shared.account if shared else None,
            share=shared.resource if shared else None,
        )
        operations.declare(name, s, where, served, self)
        self._outputs(ip, address, machines, where)

    def _made_once(self) -> pulumi.Output[Identity]:
        """The server's identity (TLS key, SFTP host keys, the check's password), made once on
        the deploying machine and kept, secret, in the state (`ftpstack.identity`): never on a
        VM's disk or the shared storage, the same for every instance and every replacement."""
        made = local.Command(
            f"{self._name}-identity",
            create=f"{checks.PYTHON} -m ftpstack.identity",
            opts=pulumi.ResourceOptions(
                parent=self,
                additional_secret_outputs=["stdout"],
                # Made once: a new command line (another venv path) must not make new keys.
                ignore_changes=["create"],
            ),
        )
        return made.stdout.apply(Identity.from_json)

    def _bootstrap(self, where: parts.Placement) -> tuple[pulumi.Input[str], list[pulumi.Resource]]:
        """The VMs' customData, and what must exist before they boot (the shared share)."""
        s = self._settings
        self._shared: storage.SharedStorage | None = None
        if not s.shared_storage:
            return base64.b64encode(bootstrap.cloud_config(s).encode()).decode(), []
        shared = self._shared = storage.shared_storage(self._name, s, where, self)
        data = shared.share.apply(
            lambda share: base64.b64encode(bootstrap.cloud_config(s, share).encode()).decode()
        )
        return data, shared.ready

    def _instance(
        self,
        index: int,
        where: parts.Placement,
        fw: parts.Firewall,
        ip: object,
        lb: object,
        custom_data: pulumi.Input[str],
        ready: list[pulumi.Resource],
    ) -> Instance:
        s, name = self._settings, self._name
        nic = instance.nic(name, index, s, where, fw.nsg, ip, lb, self)  # type: ignore[arg-type]
        disk = instance.data_disk(name, index, s, where, self)
        vm = instance.virtual_machine(name, index, s, where, nic, custom_data, disk, self, ready)
        narrow = instance.run_command(
            f"{name}-vm{parts.instance_suffix(index)}",
            vm,
            s,
            where,
            role="narrow",
            script=live.run_command_script(),
            parameters={
                live.PHASE_PARAMETER: "narrow",
                live.PASSIVE_PARAMETER: str(passive_slices(s)[index]),
                **live.parameters(live.encode(live.narrow_bundle(s))),
            },
            protected=None,
            after=[],
        )
        private_ip = nic.ip_configurations.apply(
            lambda c: (c[0].private_ip_address or "") if c else ""
        )
        return Instance(vm, private_ip, narrow, disk)

    def _configure(
        self,
        where: parts.Placement,
        machines: list[Instance],
        address: pulumi.Output[str],
        exposed: Sequence[pulumi.Resource],
    ) -> list[pulumi.Resource]:
        """One configuration step per instance, one after the other: a change reaches the next
        instance only once the previous one serves it."""
        s, name = self._settings, self._name
        seed = f"{pulumi.get_project()}/{pulumi.get_stack()}/{name}"
        done: list[pulumi.Resource] = []
        self._bundles: list[pulumi.Output[str]] = []
        for index, machine in enumerate(machines):
            bundle = pulumi.Output.all(address, self._identity).apply(
                lambda v, i=index: live.encode(live.bundle(s, v[0], seed, v[1], i))  # type: ignore[misc]
            )
            self._bundles.append(bundle)
            done.append(
                instance.run_command(
                    f"{name}-vm{parts.instance_suffix(index)}",
                    machine.vm,
                    s,
                    where,
                    role="configure",
                    script=live.run_command_script(),
                    parameters={},
                    protected=bundle,
                    after=[*exposed, *done[-1:]],
                )
            )
        return done

    def _checks(
        self,
        machines: list[Instance],
        address: pulumi.Output[str],
        configured: list[pulumi.Resource],
    ) -> None:
        """`pulumi up` must not report success for a server that does not serve: the smoke
        check runs after every configuration change, from the deploying machine."""
        s = self._settings
        first = machines[0].vm
        after: list[pulumi.Resource] = [*configured]
        if s.cloud_init_check:
            after.append(
                remote.Command(
                    f"{self._name}-cloud-init-check",
                    connection=remote.ConnectionArgs(
                        host=address,
                        port=ssh_port(s, 0),
                        user=s.admin_username,
                        agent_socket_path=os.environ.get("SSH_AUTH_SOCK"),
                        dial_error_limit=60,
                        per_dial_timeout=10,
                    ),
                    # `status --wait` exits non-zero on errors; --long says which module failed.
                    create="cloud-init status --wait --long",
                    # After the configuration, which moves sshd to its port while SFTP has 22
                    # (it too waits for cloud-init); then this reports cloud-init's errors.
                    opts=pulumi.ResourceOptions(parent=first, depends_on=[first, *configured]),
                )
            )
        if not s.post_deploy_check:
            return
        # Runs again whenever any configuration changes (a digest of a secret stays secret).
        digest: pulumi.Output[str] = pulumi.Output.all(*self._bundles).apply(
            lambda v: hashlib.sha256("".join(v).encode()).hexdigest()
        )
        trigger = instance.secret(digest)
        environment: dict[str, pulumi.Input[str]] = {}
        if s.tls != "off" or s.sftp:
            environment[ftpcheck.PASSWORD_ENV] = instance.secret(
                self._identity.apply(lambda i: i.check_password)
            )
        if s.tls != "off" and not s.tls_certificate:
            environment[ftpcheck.CA_PEM_ENV] = pulumi.Output.all(address, self._identity).apply(
                lambda v: certificate(v[1], *_named(render.certificate_names(s, v[0])))
            )
        if s.sftp:
            environment[ftpcheck.KNOWN_HOSTS_ENV] = pulumi.Output.all(
                address, self._identity
            ).apply(lambda v: "".join(f"{line}\n" for line in sftp.known_hosts([v[0]], v[1])))
        local.Command(
            f"{self._name}-smoke-check",
            create=address.apply(lambda a: checks.smoke_command(s, a)),
            environment=environment,
            triggers=[trigger],
            opts=pulumi.ResourceOptions(parent=first, depends_on=after),
        )

    def _outputs(
        self,
        ip: object,
        address: pulumi.Output[str],
        machines: list[Instance],
        where: parts.Placement,
    ) -> None:
        s = self._settings
        self.public_ip = address
        self.fqdn = ip.dns_settings.apply(lambda d: (d.fqdn or "") if d else "")  # type: ignore[attr-defined]
        self.ftp_endpoint = pulumi.Output.all(self.fqdn, address).apply(
            lambda p: f"ftp://{p[0] or p[1]}:{FTP_CONTROL_PORT}"
        )
        self.control_port = pulumi.Output.from_input(FTP_CONTROL_PORT)
        names = pulumi.Output.all(self.fqdn, address).apply(lambda p: [n for n in p if n])
        self.sftp_endpoint = pulumi.Output.all(self.fqdn, address).apply(
            lambda p: f"sftp://{p[0] or p[1]}:{SFTP_PORT}" if s.sftp else ""
        )
        # Public keys: not secret, though the identity they come from is.
        self.sftp_host_keys = pulumi.Output.unsecret(
            pulumi.Output.all(names, self._identity).apply(
                lambda v: sftp.known_hosts(v[0], v[1]) if s.sftp else []
            )
        )
        self.passive_port_range = pulumi.Output.from_input(
            f"{s.passive_port_start}-{s.passive_port_end}"
        )
        self.vm_id, self.vm_name = machines[0].vm.id, machines[0].vm.name
        self.resource_group_name = pulumi.Output.from_input(where.rg_name)
        slices = passive_slices(s)
        self.instances = pulumi.Output.all(
            *[pulumi.Output.all(m.vm.name, m.private_ip) for m in machines]
        ).apply(
            lambda pairs: [
                {"name": n, "privateIp": p, "passivePorts": str(slices[i])}
                for i, (n, p) in enumerate(pairs)
            ]
        )
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
                "instances": self.instances,
                "sftp_endpoint": self.sftp_endpoint,
                "sftp_host_keys": self.sftp_host_keys,
            }
        )


def _named(names: list[str]) -> tuple[str, list[str]]:
    """(subject, names) of the stack's own certificate."""
    return names[0], names
