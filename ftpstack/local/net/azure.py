"""`LocalAzure`: the declared stack on the local Azure model, deployed as `pulumi up` would.

Namespaces for the clients (one inside the allowed FTP sources, one outside every one), the
router (the public IP or load balancer, the NSG, the idle timeout: `ftpstack.local.net.topology`),
the load balancer's probe, and one VM per instance (`VmHost`). A deployment runs the declared
steps in the declared order: the bootstrap (the user-data), each instance's `narrow` step, the
network's new rules, each instance's `configure` step one after the other — the Run Commands'
own scripts and parameters, through the Run Command stand-in. `apply(new_plan)` is a later
`pulumi up` (new VMs of a scale-out, then only the Run Commands that changed, as on Azure);
`replace_instance(i)` one step of a rolling replacement; `wait_healthy(i, up)` waits for the
probe's verdict on an instance.

With real VMs (`serve=False`, L4) and a plan whose storage is an Azure Files share behind a
private endpoint, the model also runs the share and its name inside the VNet
(`ftpstack.local.net.files`: nfs-ganesha at the endpoint's address, the VNet's resolver); at L3 one
directory bound into every VM stand-in is the share.

Times may be scaled by one factor applied to the idle timeout, the keepalive idle and interval
and the probe interval together, so the ratios that decide an outcome stay the declared ones.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ftpstack import paths
from ftpstack.local.net import steps as deployment
from ftpstack.local.net import topology as net
from ftpstack.local.net.client import run_client
from ftpstack.local.net.files import FilesStandIn, Share
from ftpstack.local.net.netns import Netns, NetnsError, StandIn, end_process, kill_pid, veth
from ftpstack.local.net.rotation import Rotation
from ftpstack.local.net.steps import Bundle, DeployFailed
from ftpstack.local.net.vmhost import VmHost
from ftpstack.offline.plan import Plan, Resource

__all__ = ["DeployFailed", "LocalAzure"]

# How long a draining VM waits for the load balancer to notice, as the agent's own drain does:
# the probe's threshold (2 probes at 5 s) and a margin.
DRAIN_S = 12.0


@dataclasses.dataclass
class LocalAzure(Rotation, StandIn):
    """`with LocalAzure(plan, time_scale=1/30) as az: ...`"""

    plan: Plan
    time_scale: float = 1.0
    serve: bool = True  # False: no VM stand-ins (the L4 qemu VM attaches to the namespace)
    bundle_edit: Callable[[Bundle], Bundle] | None = None
    topology_edit: Callable[[net.Topology], net.Topology] | None = None
    # The data disk (or shared share) stand-in: at L3 a directory, at L4 the NFS export;
    # default: temporary.
    storage: Path | None = None
    silent_resolver: bool = False
    race_bootstrap: float = 0.0  # seconds the bootstrap lags behind the first configuration
    script_edit: Callable[[str], str] | None = None  # the Run Commands' script, changed
    namespaces: list[Netns] = dataclasses.field(init=False, default_factory=list)
    vm_namespaces: list[Netns] = dataclasses.field(init=False, default_factory=list)
    neighbour: Netns | None = dataclasses.field(init=False, default=None)
    # What each Run Command last ran with (its script and parameters as declared): Azure runs an
    # unchanged Run Command never again, not even after it failed (Azure/azure-sdk-for-net#47307).
    ran: dict[str, str] = dataclasses.field(init=False, default_factory=dict)
    vms: list[VmHost] = dataclasses.field(init=False, default_factory=list)
    prober: subprocess.Popen[str] | None = dataclasses.field(init=False, default=None)
    files: FilesStandIn | None = dataclasses.field(init=False, default=None)
    topology: net.Topology = dataclasses.field(init=False)
    _temp: Path | None = dataclasses.field(init=False, default=None)
    healthy: dict[int, bool] = dataclasses.field(init=False, default_factory=dict)
    deployed: list[subprocess.CompletedProcess[str]] = dataclasses.field(
        init=False, default_factory=list
    )
    probe_events: list[dict[str, Any]] = dataclasses.field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.topology = self._topology(self.plan)

    def _topology(self, plan: Plan) -> net.Topology:
        t = net.Topology.from_plan(plan.to_json())
        return self.topology_edit(t) if self.topology_edit else t

    # -- names and addresses -------------------------------------------------------------------

    @property
    def public_ip(self) -> str:
        return self.topology.public_ip

    @property
    def client(self) -> Netns:
        return self.namespaces[1]

    @property
    def outsider(self) -> Netns:
        return self.namespaces[2]

    @property
    def router(self) -> Netns:
        return self.namespaces[0]

    def vm_netns(self, index: int = 0) -> Netns:
        return self.vm_namespaces[index]

    @property
    def idle_timeout(self) -> float:
        """The idle timeout the router enforces, in (scaled) seconds."""
        return max(1, round(self.topology.idle_timeout_s * self.time_scale))

    def client_address(self) -> str:
        """An address inside the allowed FTP sources (any, when FTP is open to all)."""
        return str(net.CLIENT_NET[10])

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        self._build()
        if self.serve:
            self.deploy()

    def close(self) -> None:
        if self.prober is not None:
            end_process(self.prober, timeout=5)
            self.prober = None
        for vm in self.vms:
            vm.close()
        self.vms.clear()
        if self.files is not None:
            self.files.close()
            self.files = None
        for ns in reversed(self.namespaces):
            ns.delete()
        self.namespaces.clear()
        self.vm_namespaces.clear()
        self.neighbour = None
        if self._temp is not None:
            shutil.rmtree(self._temp, ignore_errors=True)
            self._temp = None

    def _build(self) -> None:
        router, client, outsider, probe = (Netns.create(r) for r in ("rt", "cl", "out", "pr"))
        self.namespaces += [router, client, outsider, probe]
        edges = (
            (client, "c", net.CLIENT_NET),
            (outsider, "o", net.OUTSIDER_NET),
            (probe, "p", net.PROBE_NET),
        )
        for ns, tag, network in edges:
            self._link(ns, tag, network)
            ns.ip("route", "add", f"{self.public_ip}/32", "via", str(network[1]))
        for index in range(self.topology.instances):
            self._add_vm_netns(index)
        if self.topology.private_endpoint:  # another host of the VNet, not an FTP server
            self.neighbour = Netns.create("nb")
            self.namespaces.append(self.neighbour)
            self._link(self.neighbour, "n", net.NEIGHBOUR_NET)
            for inside in (net.ENDPOINT_NET, net.RESOLVER_NET):
                self.neighbour.ip("route", "add", str(inside), "via", str(net.NEIGHBOUR_NET[1]))
        router.ip("addr", "add", f"{self.public_ip}/32", "dev", "lo")
        self.publish_rules()
        router.sysctl("net.ipv4.ip_forward", 1)
        router.sysctl("net.netfilter.nf_conntrack_tcp_loose", 0)
        router.sysctl("net.netfilter.nf_conntrack_tcp_timeout_established", int(self.idle_timeout))
        if self.serve:
            self._start_vms()
        elif self.topology.private_endpoint:
            self._start_files()

    def _add_vm_netns(self, index: int) -> Netns:
        """Instance `index`'s network: its link to the router, routes to the clients and the
        probe (and the probe's route to it)."""
        vm = Netns.create(f"vm{index}")
        self.namespaces.append(vm)
        self.vm_namespaces.append(vm)
        gateway = str(net.VM_NETS[index][1])
        self._link(vm, f"v{index}", net.VM_NETS[index])
        for other in (net.CLIENT_NET, net.OUTSIDER_NET, net.PROBE_NET):
            vm.ip("route", "add", str(other), "via", gateway)
        if self.silent_resolver:
            vm.ip("route", "add", f"{net.SILENT_RESOLVER}/32", "via", gateway)
        self.namespaces[3].ip("route", "add", str(net.VM_NETS[index]), "via", str(net.PROBE_NET[1]))
        return vm

    def _start_files(self) -> None:
        """The share and the VNet's resolver, for real VMs to mount and resolve."""
        share = Share.from_plan(self.plan)
        if share is None:
            raise NetnsError("the plan declares a private endpoint but no file share")
        rundir = self.storage.with_name(f"{self.storage.name}-server") if self.storage else None
        self.files = FilesStandIn(
            share, self.router, self.topology.instances, self.storage, rundir
        ).started()
        self.namespaces += self.files.namespaces

    def _link(self, ns: Netns, tag: str, network: Any) -> None:
        veth(self.router, f"{tag}r", ns, f"{tag}p")
        prefix = network.prefixlen
        address = network[10] if network is net.CLIENT_NET else network[2]
        self.router.ip("addr", "add", f"{network[1]}/{prefix}", "dev", f"{tag}r")
        ns.ip("addr", "add", f"{address}/{prefix}", "dev", f"{tag}p")

    def publish_rules(self, healthy: list[int] | None = None) -> None:
        if healthy is None and self.topology.balanced is not None:
            healthy = []  # the prober puts instances in once their probes pass
        done = self.router.run("nft", "-f", "-", input=net.ruleset(self.topology, healthy))
        if done.returncode != 0:
            raise NetnsError(f"the router refused its rules: {done.stderr.strip()}")

    def _start_vms(self) -> None:
        self._temp = Path(tempfile.mkdtemp(prefix="ftpstack-l3-"))
        self._temp.chmod(0o755)
        for index in range(self.topology.instances):
            self.vms.append(self._new_vm(index, self._storage(index)))

    def _storage(self, index: int) -> Path:
        """What instance `index` mounts at the FTP root: the shared share (several instances, or
        one given), else its own data disk."""
        assert self._temp is not None
        shared = self.topology.instances > 1 or self.storage is not None
        path = (self.storage or self._temp / "share") if shared else self._temp / f"disk{index}"
        if not path.exists() and self.topology.private_endpoint:
            path.mkdir()
            path.chmod(0o777)  # a new Azure Files NFS share's root: root's, writable by all
        path.mkdir(exist_ok=True)
        return path

    def _new_vm(self, index: int, storage: Path) -> VmHost:
        vm = VmHost(self.vm_netns(index), {paths.FTP_ROOT: storage})
        vm.start()
        try:
            if self.silent_resolver:
                vm.write("/run/resolv.conf.silent", f"nameserver {net.SILENT_RESOLVER}\n")
                vm.exec("mount", "--bind", "/run/resolv.conf.silent", "/etc/resolv.conf")
        except BaseException:
            vm.close()
            raise
        return vm

    # -- deployments -----------------------------------------------------------------------------

    def edit(self, bundle: Bundle) -> Bundle:
        """The bundle as this model applies it: times scaled, then the test's own edit."""
        if self.time_scale != 1.0:
            bundle = deployment.scaled(self.time_scale)(bundle)
        return self.bundle_edit(bundle) if self.bundle_edit else bundle

    def steps(self, plan: Plan, role: str) -> list[Resource]:
        return deployment.steps(plan, role)

    @staticmethod
    def _declared(step: Resource) -> str:
        """What Azure compares to decide whether to run a Run Command again."""
        return json.dumps(
            [step.raw_inputs.get(k) for k in ("source", "parameters", "protectedParameters")],
            sort_keys=True,
        )

    def run_step(self, index: int, step: Resource) -> subprocess.CompletedProcess[str] | None:
        """One Run Command as Azure runs it: only when its script or parameters changed since it
        last ran (None: Azure left it alone). It counts as run even when it fails."""
        declared = self._declared(step)
        if self.ran.get(step.name) == declared:
            return None
        self.ran[step.name] = declared
        return deployment.run_step(self.vms[index], step, self.edit, self.script_edit)

    def deploy(self) -> None:
        """The first `pulumi up`: bootstrap, narrow, configure (network rules are up), probe."""
        self.deployed = deployment.deploy(self.vms, self.plan, self.edit, self.race_bootstrap)
        for role in ("narrow", "configure"):
            self.ran |= {s.name: self._declared(s) for s in self.steps(self.plan, role)}
        self._start_prober()

    def apply(self, new: Plan) -> list[subprocess.CompletedProcess[str]]:
        """A later `pulumi up` that changes the configuration live, in the declared order: new
        VMs boot and every instance narrows (`narrow`), the network's new rules (the NSG, the
        NAT rules: `publish`), each configuration step one after the other (`configure`). Only
        steps whose script or parameters changed run (as on Azure). Refuses a plan that replaces
        a VM or removes one (`make diff` refuses those in one step too)."""
        narrowed = self.narrow(new)
        self.publish(new)
        return narrowed + self.configure(new)

    def narrow(self, new: Plan) -> list[subprocess.CompletedProcess[str]]:
        """The first part of a change: new VMs boot, then each instance's narrowing step."""
        if new.user_data != self.plan.user_data:
            raise DeployFailed("the bootstrap changed: this plan replaces the VMs")
        count = len(self.steps(new, "configure"))
        if count < len(self.vms):
            raise DeployFailed("this plan removes instances: make diff refuses it in one step")
        for index in range(len(self.vms), count):
            self._add_instance(index, new)
        found = [self.run_step(i, s) for i, s in enumerate(self.steps(new, "narrow"))]
        return [r for r in found if r is not None]

    def publish(self, new: Plan) -> None:
        """The network's part of a change: the router enforces the new plan's rules."""
        self.plan, self.topology = new, self._topology(new)
        self.publish_rules([i for i, up in self.healthy.items() if up])
        if self.prober is not None and self.topology.instances > len(self.healthy):
            self._restart_prober()

    def configure(self, new: Plan) -> list[subprocess.CompletedProcess[str]]:
        """The last part of a change: each configuration step, then new instances in rotation."""
        found = [self.run_step(i, s) for i, s in enumerate(self.steps(new, "configure"))]
        if self.prober is not None:
            self.wait_balanced(len(self.vms))
        return [r for r in found if r is not None]

    def _add_instance(self, index: int, new: Plan) -> None:
        """A new VM of a scale-out: its network, its storage, its bootstrap."""
        self._add_vm_netns(index)
        vm = self._new_vm(index, self._storage(index))
        self.vms.append(vm)
        vm.install_bootstrap(new.user_data)

    def _agent(self, index: int, *command: str) -> None:
        """The agent's own command on instance `index`, as an administrator runs it."""
        done = self.vms[index].exec("/usr/bin/python3", paths.AGENT_PATH, *command)
        if done.returncode != 0:
            raise DeployFailed(f"agent {command[0]} on instance {index}: {done.stderr.strip()}")

    def replace_instance(self, index: int, drain: bool = True) -> None:
        """One VM replaced as a rolling change does it: out of the probe first (the health
        unit's stop on a real VM), then proftpd stops, then a new VM from the same bootstrap,
        narrowed and configured, back in rotation once its probes pass. `drain=False`: the old
        VM is already lost (a host fault), so there is nothing to drain or stop."""
        old = self.vms[index]
        if drain:
            self._agent(index, "drain", str(DRAIN_S * self.time_scale))
            # Scaled, the drain's margin over the probe is shorter than this machine's own lags:
            # wait for the load balancer's verdict, then let the logins it still sent finish.
            self.wait_healthy(index, up=False)
            self._agent(index, "settle")
            pid = old.path(paths.PID_FILE).read_text().split()[0]
            old.exec("kill", "-TERM", pid)
        storage = old.shared[paths.FTP_ROOT]
        old.close()
        for pid_ in self.vm_netns(index).pids():  # the old VM's processes are gone with it
            kill_pid(pid_)
        new = self._new_vm(index, storage)
        self.vms[index] = new
        new.install_bootstrap(self.plan.user_data)
        for role in ("narrow", "configure"):
            # A new VM's Run Commands are new resources (Pulumi replaces them with their VM).
            step = self.steps(self.plan, role)[index]
            self.ran.pop(step.name, None)
            self.run_step(index, step)
        self.wait_healthy(index, up=True)

    # -- running clients ----------------------------------------------------------------------

    def client_cmd(
        self,
        command: str,
        *args: str,
        ns: Netns | None = None,
        user: str = "",
        password: str = "",
        timeout: float = 600,
    ) -> dict[str, Any]:
        """`python -m ftpstack.local.net.client <command>` in a client namespace; its JSON."""
        return run_client(
            ns or self.client,
            self.public_ip,
            command,
            *args,
            user=user,
            password=password,
            timeout=timeout,
        )
