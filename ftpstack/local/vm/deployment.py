"""The local VMs (L4): the exact user-data booting Debian 12 under qemu behind the local Azure
model, deployed the way Azure deploys it.

- `LocalVm` (`ftpstack.local.vm.qemu`): one instance in qemu, its NIC bridged into its instance's
  namespace of the model, its data disk (a qcow2 kept across boots and VM replacements, serial
  lun0) when the plan declares one.
- `Guest` (`ftpstack.local.vm.qga`): a VM through its qemu guest agent, a virtio-serial channel on a
  host unix socket, the stand-in for Azure's VM agent. `Guest.run_command` is the Run Command
  stand-in, with the handler's semantics: the declared script run by bash as root, each
  parameter (public or protected) an environment variable, exit code, stdout and stderr back.
  The script goes in through `input-data` (`bash -s`) with the parameters exported at its top:
  the agent logs argv, so secrets are never in it. Never SSH over the public path.
- `VmDeployment`: `pulumi up` as Azure runs it, for every instance the plan declares. The VMs
  boot in parallel; as soon as an instance's agent answers guest-ping (long before cloud-init's
  runcmd ends: the race Azure has too) its `narrow` step runs (it depends on its VM only); then
  each `configure` step, one instance after the other, with the parameters `LocalAzure` gives it
  (times scaled by its edit of the bundle); in load-balancer mode the probe starts after.
  `apply()` is a later live `pulumi up`, `reboot(i)` Azure's restart of one VM, `replace(i)` a
  VM replacement (a new OS disk from the image, the same data disk or share, its steps again).
  With an Azure Files share the model runs the share and the VNet's resolver
  (`ftpstack.local.net.files`), and the VMs mount it through their own user-data.

The guests' apt reaches only the Debian archive the host uses (`ftpstack.local.vm.aptproxy`).
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from ftpstack import paths
from ftpstack.local.net import steps
from ftpstack.local.net.azure import LocalAzure
from ftpstack.local.net.netns import StandIn
from ftpstack.local.net.steps import Bundle, DeployFailed
from ftpstack.local.net.topology import resolver_address
from ftpstack.local.vm.aptproxy import AptProxy
from ftpstack.local.vm.image import Say, build_image, run_tool, say
from ftpstack.local.vm.qemu import LocalVm, Preinstalled, last_line
from ftpstack.local.vm.qga import Guest
from ftpstack.offline.declared import DISK, FILE_SHARE, VM
from ftpstack.offline.plan import Plan, Resource

# A sparse qcow2, but mkfs still writes a journal sized by the disk: large declared disks are
# attached smaller locally (said so when it happens).
LOCAL_DISK_CAP_GB = 64
T = TypeVar("T")


@dataclasses.dataclass
class Deployed:
    """What one deployment (boot + steps) took and said."""

    agent_ready_s: float  # from qemu's start until the (slowest) guest agent answered
    total_s: float  # until the last configure step ended and the probe passed
    results: dict[str, subprocess.CompletedProcess[str]]  # per step name

    @property
    def configure(self) -> subprocess.CompletedProcess[str]:
        """The first deployed instance's configure step."""
        return next(r for n, r in self.results.items() if n.endswith("-configure"))

    @property
    def waited_for_bootstrap(self) -> bool:
        """The configure step started before cloud-init had finished and had to wait."""
        return "waiting for the bootstrap" in self.configure.stdout


class VmDeployment(StandIn):
    """`with VmDeployment(plan) as d: d.deploy()`: the plan's VMs in qemu behind `LocalAzure`."""

    def __init__(
        self,
        plan: Plan,
        time_scale: float = 1 / 30,
        progress: Say = say,
        bundle_edit: Callable[[Bundle], Bundle] | None = None,
        workdir: Path | None = None,
        step_timeout: float = 900,
        preinstalled: Preinstalled = "never",
    ) -> None:
        self.plan, self.progress, self.step_timeout = plan, progress, step_timeout
        # OS disks from the image with the bootstrap's packages installed: never, for
        # replacements, or always (`ftpstack.local.vm.image`: the stock image's first boot proves
        # the install; the others test what comes after it, a minute of emulation sooner).
        self.preinstalled = preinstalled
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="ftpstack-l4-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        # With an Azure Files share the model exports this directory over NFS.
        share = self.workdir / "share" if plan.find(FILE_SHARE) else None
        self.az = LocalAzure(
            plan, time_scale=time_scale, serve=False, bundle_edit=bundle_edit, storage=share
        )
        self.proxy: AptProxy | None = None
        self.machines: list[LocalVm] = []

    @property
    def count(self) -> int:
        return len(self.plan.find(VM))

    def start(self) -> None:
        image = build_image(progress=self.progress)
        self.az.started()
        if self.az.files is not None:
            self.progress(self.az.files.describe())
        self.proxy = AptProxy(self.az).started()
        size = data_disk_gb(self.plan)
        if size > LOCAL_DISK_CAP_GB:
            self.progress(f"data disk: {LOCAL_DISK_CAP_GB} GiB locally ({size} GiB declared)")
        # Azure's DHCP names the VNet's resolver (168.63.129.16); here the model's stand-in.
        resolvers = (resolver_address(),) if self.az.files is not None else ()
        for index in range(self.count):
            home = self.workdir / f"vm{index}"
            self.machines.append(
                LocalVm(
                    self.az,
                    image,
                    home,
                    self.plan.user_data,
                    index,
                    home / "data.qcow2" if size else None,
                    min(size, LOCAL_DISK_CAP_GB),
                    resolvers,
                    preinstalled=self.preinstalled,
                )
            )

    def close(self, graceful: bool = False) -> None:
        parallel([m.index for m in self.machines], lambda i: self.machines[i].stop(graceful))
        if self.proxy is not None:
            self.proxy.close()
        self.az.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def machine(self) -> LocalVm:
        """Instance 0."""
        assert self.machines, "use VmDeployment as a context manager"
        return self.machines[0]

    @property
    def guest(self) -> Guest:
        """Instance 0's guest agent."""
        return self.machine.guest

    @property
    def guests(self) -> list[Guest]:
        return [m.guest for m in self.machines]

    def say(self, index: int) -> Say:
        """Progress, naming the instance when there are several."""
        if self.count == 1:
            return self.progress
        return lambda message: self.progress(f"vm{index}: {message}")

    def deploy(self) -> Deployed:
        """Every instance booted and configured: the first `pulumi up`."""
        return self._deploy(list(range(self.count)))

    def _deploy(self, indices: list[int]) -> Deployed:
        """Boot `indices` in parallel, each narrowed as soon as its agent answers; then their
        configure steps one after the other, in the declared order; then the probe."""
        started = time.monotonic()
        narrow = steps.steps(self.plan, "narrow")
        configure = steps.steps(self.plan, "configure")

        def boot(index: int) -> tuple[float, subprocess.CompletedProcess[str]]:
            ready = self.machines[index].start(self.say(index))
            self.say(index)(f"guest agent ready after {ready:.0f} s: running the Run Commands")
            return ready, self.run_step(narrow[index], index)

        booted = parallel(indices, boot)
        results = {narrow[i].name: r for i, (_, r) in zip(indices, booted, strict=True)}
        results |= {configure[i].name: self.run_step(configure[i], i) for i in indices}
        if self.az.topology.balanced is not None:
            if self.az.prober is None:
                self.az._start_prober()
            for index in indices:
                self.az.wait_healthy(index, up=True, timeout=120)
        total = time.monotonic() - started
        self.progress(f"deployed in {total:.0f} s")
        return Deployed(max(ready for ready, _ in booted), total, results)

    def run_step(self, step: Resource, index: int = 0) -> subprocess.CompletedProcess[str]:
        """One declared Run Command on instance `index`, with the parameters `LocalAzure` gives
        it; DeployFailed (as `pulumi up` reports it, treatFailureAsDeploymentFailure) when it
        fails."""
        started = time.monotonic()
        machine, progress = self.machines[index], self.say(index)

        def tick(elapsed: float) -> None:  # the console costs the guest nothing to read
            progress(f"{step.name}: running ({elapsed:.0f} s); {last_line(machine.console)}")

        timeout = min(float(step.raw_inputs.get("timeoutInSeconds") or 3600), self.step_timeout)
        parameters = steps.parameters(step, self.az.edit)
        result = machine.guest.run_command(
            step.raw_inputs["source"]["script"], parameters, timeout, tick
        )
        progress(f"{step.name}: exit {result.returncode} ({time.monotonic() - started:.0f} s)")
        if result.returncode != 0:
            output = f"{result.stdout}{result.stderr}"
            raise DeployFailed(f"{step.name} failed ({result.returncode}): {output}")
        return result

    def apply(self, new: Plan) -> list[subprocess.CompletedProcess[str]]:
        """A later `pulumi up` that changes the configuration live (as `LocalAzure.apply`)."""
        if new.user_data != self.plan.user_data:
            raise DeployFailed("the bootstrap changed: this plan replaces the VMs")
        results = [self.run_step(s, i) for i, s in enumerate(steps.steps(new, "narrow"))]
        self.plan = self.az.plan = new
        self.az.topology = self.az._topology(new)
        self.az.publish_rules([i for i, up in self.az.healthy.items() if up])
        if self.proxy is not None:
            self.proxy.allow()  # the new ruleset replaced the router's whole table
        configure = steps.steps(new, "configure")
        return results + [self.run_step(s, i) for i, s in enumerate(configure)]

    def reboot(self, index: int = 0) -> float:
        return self.machines[index].reboot(self.say(index))

    def replace(self, index: int = 0, user_data: str | None = None) -> Deployed:
        """A VM replacement: new OS disk, same data disk or share, bootstrap and steps again."""
        machine = self.machines[index]
        machine.user_data = self.plan.user_data if user_data is None else user_data
        machine.replace_os_disk()
        return self._deploy([index])

    def recovery_point(self, into: Path, index: int = 0) -> Path:
        """Azure Disk Backup's recovery point, stood in for: an incremental snapshot is
        crash-consistent, so the guest's file system is frozen (its writes on disk) while the
        data disk is copied, then thawed; the VM keeps running."""
        machine = self.machines[index]
        assert machine.data_disk is not None, "a recovery point of a VM without a data disk"
        frozen = self.guests[index].sh(f"sync && fsfreeze -f {paths.FTP_ROOT}")
        if frozen.returncode != 0:
            raise RuntimeError(f"fsfreeze: {frozen.stderr.strip()}")
        try:  # -U: qemu holds the image open; the frozen file system does not change it
            run_tool("qemu-img", "convert", "-U", "-O", "qcow2", str(machine.data_disk), str(into))
        finally:
            self.guests[index].sh(f"fsfreeze -u {paths.FTP_ROOT}")
        return into

    def restore(self, point: Path, index: int = 0) -> Deployed:
        """The restore runbook's last step (docs/operations.md): a disk made from the recovery
        point (`dataDiskSourceId`) replaces the data disk, and the VM is replaced with it."""
        machine = self.machines[index]
        assert machine.data_disk is not None, "a restore of a VM without a data disk"
        machine.user_data = self.plan.user_data
        machine.replace_os_disk()
        shutil.copyfile(point, machine.data_disk)
        return self._deploy([index])

    def keepalive(self) -> dict[str, int]:
        """The kernel keepalive values the deployment declares, as this model applies them."""
        bundle = self.az.edit(self.plan.bundles()[0])
        (sysctl,) = [f["content"] for f in bundle["files"] if f["path"] == bundle["sysctl"]]
        return {k: int(v) for k, v in re.findall(r"^(net\.\S+)\s*=\s*(\d+)", sysctl, re.M)}


def parallel(indices: Sequence[int], work: Callable[[int], T]) -> list[T]:
    """`work(i)` for each index at once (one inline), its results in order; the first index's
    error when any failed. Daemon threads: a signal ends the caller without waiting for them
    (closing the deployment then ends their VMs, and with them the work)."""
    if len(indices) == 1:
        return [work(indices[0])]
    results: dict[int, T] = {}
    errors: dict[int, BaseException] = {}

    def run(index: int) -> None:
        try:
            results[index] = work(index)
        except BaseException as error:  # re-raised in the caller
            errors[index] = error

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in indices]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[min(errors)]
    return [results[i] for i in indices]


def data_disk_gb(plan: Plan) -> int:
    """The declared data disk's size (GiB) at LUN 0, or 0 without one."""
    disks = plan.find(DISK)
    return int(disks[0].raw_inputs.get("diskSizeGB") or 0) if disks else 0
