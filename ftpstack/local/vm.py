"""The local VM (L4): the exact user-data booting Debian 12 under qemu behind the local Azure model,
deployed the way Azure deploys it.

- `LocalVm`: qemu (KVM where it works, else `-accel tcg`) with the cached image
  (`ftpstack.local.image`) under a throw-away OS disk, a NoCloud seed holding exactly the plan's
  user-data, the data disk (a qcow2 kept across boots and VM replacements, serial lun0), and the
  NIC as a tap bridged into `LocalAzure`'s VM namespace: every client reaches it through the
  declared public IP or load balancer, NSG and idle timeout.
- `Guest` (`ftpstack.local.qga`): the VM through its qemu guest agent, a virtio-serial channel
  on a host unix socket, the stand-in for Azure's VM agent. `Guest.run_command` is the Run
  Command stand-in, with the handler's semantics: the declared script run by bash as root, each
  parameter (public or protected) an environment variable, exit code, stdout and stderr back.
  The script goes in through `input-data` (`bash -s`) with the parameters exported at its top:
  the agent logs argv, so secrets are never in it. Never SSH over the public path.
- `VmDeployment`: `pulumi up` as Azure runs it. The VM boots; as soon as its agent answers
  guest-ping (long before cloud-init's runcmd ends: the race Azure has too), each declared
  `narrow` step, then each `configure` step runs with the parameters `LocalAzure` gives it (times
  scaled by its edit of the bundle); in load-balancer mode the probe starts after. `apply()` is a
  later live `pulumi up`, `reboot()` Azure's restart, `replace()` a VM replacement (a new OS disk
  from the image, the same data disk, the steps again).

The guest's apt reaches only the Debian archive the host uses (`ftpstack.local.aptproxy`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from ftpstack.local import steps as deployment
from ftpstack.local.aptproxy import AptProxy
from ftpstack.local.azure import LocalAzure
from ftpstack.local.image import Image, Say, build_image, choose_accel, run_tool, say
from ftpstack.local.netns import end_process
from ftpstack.local.network import VM_NETS, vm_address
from ftpstack.local.qga import Guest, GuestAgent, GuestAgentError
from ftpstack.local.steps import Bundle, DeployFailed
from ftpstack.offline.declared import DISK, VM
from ftpstack.offline.plan import Plan, Resource

MAC = "52:54:00:f7:00:02"
# A sparse qcow2, but mkfs still writes a journal sized by the disk: large declared disks are
# attached smaller locally (said so when it happens).
LOCAL_DISK_CAP_GB = 64


@dataclasses.dataclass
class LocalVm:
    """One VM in qemu, its NIC in `az`'s first VM namespace."""

    az: LocalAzure
    image: Image
    workdir: Path
    user_data: str
    data_disk: Path | None = None
    data_disk_gb: int = 4
    accel: str = ""
    # qemu's CPU model. Emulated: qemu64, not max, whose AVX/AVX2 make glibc and Python take
    # paths that emulation runs slowly (measured here: a first deployment 152 s vs 220 s).
    cpu: str = ""
    qemu: subprocess.Popen[str] | None = None
    launches: int = 0
    generation: int = 0  # one per OS disk: a new Azure VM has a new instance id

    def __post_init__(self) -> None:
        self.guest = Guest(GuestAgent(self.workdir / "qga.sock"))

    @property
    def console(self) -> Path:
        return self.workdir / f"console-{self.launches}.log"

    def seed(self) -> Path:
        seed = self.workdir / "seed"
        seed.mkdir(exist_ok=True)
        (seed / "user-data").write_text(self.user_data)  # exactly the declared user-data
        digest = hashlib.sha256(self.user_data.encode()).hexdigest()[:12]
        (seed / "meta-data").write_text(
            f"instance-id: ftpstack-{digest}-{self.generation}\nlocal-hostname: ftpstack-vm\n"
        )
        # What Azure's DHCP gives the NIC: the private address and the gateway (the router),
        # in cloud-init's v1 format, which Debian's ifupdown renderer handles completely.
        subnet = {
            "type": "static",
            "address": f"{vm_address(0)}/{VM_NETS[0].prefixlen}",
            "gateway": str(VM_NETS[0][1]),
        }
        nic = {"type": "physical", "name": "eth0", "mac_address": MAC, "subnets": [subnet]}
        network = {"version": 1, "config": [nic]}
        (seed / "network-config").write_text(yaml.safe_dump(network))
        iso = self.workdir / "seed.iso"
        files = [str(seed / name) for name in ("user-data", "meta-data", "network-config")]
        run_tool(
            "genisoimage",
            "-quiet",
            "-output",
            str(iso),
            "-volid",
            "cidata",
            "-joliet",
            "-rock",
            *files,
        )
        return iso

    def _bridge(self) -> None:
        """The VM's address moves from the namespace to the guest: veth and tap on one bridge."""
        ns = self.az.vm_netns(0)
        ns.ip("addr", "flush", "dev", "v0p")
        ns.ip("link", "add", "br0", "type", "bridge")
        ns.ip("tuntap", "add", "tap0", "mode", "tap")
        for dev in ("v0p", "tap0"):
            ns.ip("link", "set", dev, "master", "br0")
        for dev in ("br0", "tap0"):
            ns.ip("link", "set", dev, "up")

    def start(self, progress: Say = say, timeout: float = 600) -> float:
        """Boot; seconds until the guest agent answered."""
        if self.launches == 0:
            self._bridge()
            self._new_os_disk()
            if self.data_disk is not None and not self.data_disk.exists():
                run_tool(
                    "qemu-img",
                    "create",
                    "-q",
                    "-f",
                    "qcow2",
                    str(self.data_disk),
                    f"{self.data_disk_gb}G",
                )
        if not self.accel:
            self.accel = choose_accel(self.image, progress)
        self.launches += 1
        self._launch()
        progress(f"booting (accel {self.accel}, console {self.console})")
        return self.guest.agent.wait_ready(
            timeout,
            alive=lambda: self.qemu is not None and self.qemu.poll() is None,
            tick=lambda s: progress(f"booting: {_stage(self.console)} ({s:.0f} s)"),
        )

    def _launch(self) -> None:
        iso = self.seed()
        self.guest.agent.close()
        (self.workdir / "qga.sock").unlink(missing_ok=True)
        cpu = self.cpu or ("qemu64" if self.accel == "tcg" else "host")
        argv = ["qemu-system-x86_64", "-accel", self.accel, "-m", "1536", "-smp", "2", "-cpu", cpu]
        argv += ["-display", "none", "-nodefaults", "-no-user-config"]
        argv += ["-kernel", str(self.image.kernel), "-initrd", str(self.image.initrd)]
        argv += ["-append", "root=LABEL=root rw console=ttyS0 net.ifnames=0"]
        # cache=unsafe: the guest's flushes cost nothing (dpkg flushes every file, which doubles
        # a first boot under emulation); writes still reach the host's page cache, so a guest
        # reboot or a qemu exit loses nothing, only a host crash would.
        argv += ["-drive", f"file={self.workdir / 'os.qcow2'},if=virtio,format=qcow2,cache=unsafe"]
        argv += ["-drive", f"file={iso},if=virtio,format=raw,readonly=on"]
        argv += ["-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no"]
        argv += ["-device", f"virtio-net-pci,netdev=n0,mac={MAC}"]
        argv += ["-serial", f"file:{self.console}"]
        # The guest agent's channel: Azure's VM agent talks to the platform out of band too.
        argv += ["-chardev", f"socket,path={self.workdir / 'qga.sock'},server=on,wait=off,id=qga0"]
        argv += ["-device", "virtio-serial"]
        argv += ["-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0"]
        if self.data_disk is not None:
            argv += ["-drive", f"file={self.data_disk},if=none,id=data,format=qcow2"]
            argv += ["-device", "virtio-blk-pci,drive=data,serial=lun0"]
        with (self.workdir / "qemu.log").open("a") as log:
            self.qemu = self.az.vm_netns(0).popen(*argv, stdout=log, stderr=log)

    def stop(self, graceful: bool = True) -> None:
        """Power off: the guest shuts down (its disks clean), else qemu ends by its PID."""
        if self.qemu is None:
            return
        if graceful and self.qemu.poll() is None:
            try:
                self.guest.power("poweroff")
                self.qemu.wait(timeout=120)
            except (GuestAgentError, subprocess.TimeoutExpired):
                pass
        end_process(self.qemu, timeout=20)
        self.qemu = None
        self.guest.agent.close()

    def reboot(self, progress: Say = say, timeout: float = 600) -> float:
        """Azure's restart: the guest reboots, qemu stays. Seconds until its agent answered
        from the new boot."""
        before = self.guest.boot_id()
        started = told = time.monotonic()
        self.guest.power("reboot")
        while True:
            now = time.monotonic()
            if now - started > timeout:
                raise GuestAgentError(f"no new boot within {timeout:.0f} s; see {self.console}")
            with contextlib.suppress(GuestAgentError):
                if self.guest.agent.sync(timeout=3) and self.guest.boot_id() not in {"", before}:
                    return time.monotonic() - started
            if now - told >= 10:
                told = now
                progress(f"rebooting ({now - started:.0f} s)")
            time.sleep(2)

    def replace_os_disk(self) -> None:
        """A VM replacement as Azure does it: the old VM is deleted (taken here as a power cut,
        the harsher case: nothing promises the guest a clean shutdown, so the data disk's
        filesystem must cope), a new OS disk from the image comes (a new instance), the data
        disk stays."""
        self.stop(graceful=False)
        self._new_os_disk()
        self.generation += 1

    def _new_os_disk(self) -> None:
        overlay = self.workdir / "os.qcow2"
        overlay.unlink(missing_ok=True)
        base = ["-F", "qcow2", "-b", str(self.image.disk)]  # read only: the image is shared
        run_tool("qemu-img", "create", "-q", "-f", "qcow2", *base, str(overlay))


def _stage(console: Path) -> str:
    text = console.read_text(errors="replace") if console.exists() else ""
    for marker, stage in (
        ("Cloud-init v. ", "cloud-init running"),
        ("Reached target", "systemd"),
        ("Linux version", "kernel booting"),
    ):
        if marker in text:
            return stage
    return "starting qemu"


def _last_line(console: Path) -> str:
    """The console's last line, without the kernel's timestamp: what the guest is doing."""
    text = console.read_text(errors="replace")[-4000:] if console.exists() else ""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in text.splitlines() if line.strip()]
    last = re.sub(r"^\[\s*[\d.]+\]\s*", "", lines[-1]) if lines else "(nothing yet)"
    return f"console: {last[:100]}"


@dataclasses.dataclass
class Deployed:
    """What one deployment (boot + steps) took and said."""

    agent_ready_s: float  # from qemu's start until the guest agent answered
    total_s: float  # until the last configure step ended
    results: dict[str, subprocess.CompletedProcess[str]]  # per step name

    @property
    def configure(self) -> subprocess.CompletedProcess[str]:
        return next(r for n, r in self.results.items() if n.endswith("-configure"))

    @property
    def waited_for_bootstrap(self) -> bool:
        """The configure step started before cloud-init had finished and had to wait."""
        return "waiting for the bootstrap" in self.configure.stdout


class VmDeployment:
    """`with VmDeployment(plan) as d: d.deploy()`: the plan's VM in qemu behind `LocalAzure`."""

    def __init__(
        self,
        plan: Plan,
        time_scale: float = 1 / 30,
        progress: Say = say,
        bundle_edit: Callable[[Bundle], Bundle] | None = None,
        workdir: Path | None = None,
        step_timeout: float = 900,
    ) -> None:
        if len(plan.find(VM)) != 1:  # several share an Azure Files NFS share: no stand-in here
            raise DeployFailed(
                f"this stack declares {len(plan.find(VM))} VMs sharing an NFS share; the local "
                "VM (L4) is one qemu VM with a data disk: use a single-instance stack"
            )
        self.plan, self.progress, self.step_timeout = plan, progress, step_timeout
        self.az = LocalAzure(plan, time_scale=time_scale, serve=False, bundle_edit=bundle_edit)
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="ftpstack-l4-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proxy: AptProxy | None = None
        self.vm: LocalVm | None = None

    def __enter__(self) -> VmDeployment:
        try:
            image = build_image(progress=self.progress)
            self.az.__enter__()
            self.proxy = AptProxy(self.az).__enter__()
            size = data_disk_gb(self.plan)
            if size > LOCAL_DISK_CAP_GB:
                self.progress(f"data disk: {LOCAL_DISK_CAP_GB} GiB locally ({size} GiB declared)")
            self.vm = LocalVm(
                self.az,
                image,
                self.workdir,
                self.plan.user_data,
                self.workdir / "data.qcow2" if size else None,
                min(size, LOCAL_DISK_CAP_GB),
            )
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self, graceful: bool = False) -> None:
        if self.vm is not None:
            self.vm.stop(graceful=graceful)
        if self.proxy is not None:
            self.proxy.close()
        self.az.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def machine(self) -> LocalVm:
        assert self.vm is not None, "use VmDeployment as a context manager"
        return self.vm

    @property
    def guest(self) -> Guest:
        return self.machine.guest

    def deploy(self) -> Deployed:
        """Boot, then each narrow and configure step as soon as the agent answers."""
        started = time.monotonic()
        ready = self.machine.start(self.progress)
        self.progress(f"guest agent ready after {ready:.0f} s: running the Run Commands")
        results = {s.name: self.run_step(s) for s in deployment.steps(self.plan, "narrow")}
        results |= {s.name: self.run_step(s) for s in deployment.steps(self.plan, "configure")}
        if self.az.topology.balanced is not None:
            if self.az.prober is None:
                self.az._start_prober()
            else:
                self.az.wait_balanced(1, timeout=60)
        total = time.monotonic() - started
        self.progress(f"deployed in {total:.0f} s")
        return Deployed(ready, total, results)

    def run_step(self, step: Resource) -> subprocess.CompletedProcess[str]:
        """One declared Run Command, with the parameters `LocalAzure` gives it; DeployFailed
        (as `pulumi up` reports it, treatFailureAsDeploymentFailure) when it fails."""
        started = time.monotonic()

        def tick(elapsed: float) -> None:  # the console costs the guest nothing to read
            doing = _last_line(self.machine.console)
            self.progress(f"{step.name}: running ({elapsed:.0f} s); {doing}")

        timeout = min(float(step.raw_inputs.get("timeoutInSeconds") or 3600), self.step_timeout)
        parameters = deployment.parameters(step, self.az.edit)
        result = self.guest.run_command(
            step.raw_inputs["source"]["script"], parameters, timeout, tick
        )
        self.progress(f"{step.name}: exit {result.returncode} ({time.monotonic() - started:.0f} s)")
        if result.returncode != 0:
            output = f"{result.stdout}{result.stderr}"
            raise DeployFailed(f"{step.name} failed ({result.returncode}): {output}")
        return result

    def apply(self, new: Plan) -> list[subprocess.CompletedProcess[str]]:
        """A later `pulumi up` that changes the configuration live (as `LocalAzure.apply`)."""
        if new.user_data != self.plan.user_data:
            raise DeployFailed("the bootstrap changed: this plan replaces the VM")
        results = [self.run_step(s) for s in deployment.steps(new, "narrow")]
        self.plan = self.az.plan = new
        self.az.topology = self.az._topology(new)
        self.az.publish_rules([i for i, up in self.az.healthy.items() if up])
        if self.proxy is not None:
            self.proxy.allow()  # the new ruleset replaced the router's whole table
        return results + [self.run_step(s) for s in deployment.steps(new, "configure")]

    def reboot(self) -> float:
        return self.machine.reboot(self.progress)

    def replace(self, user_data: str | None = None) -> Deployed:
        """A VM replacement: new OS disk, same data disk, bootstrap and steps again."""
        self.machine.replace_os_disk()
        self.machine.user_data = self.plan.user_data if user_data is None else user_data
        return self.deploy()

    def keepalive(self) -> dict[str, int]:
        """The kernel keepalive values the deployment declares, as this model applies them."""
        bundle = self.az.edit(self.plan.bundles()[0])
        (sysctl,) = [f["content"] for f in bundle["files"] if f["path"] == bundle["sysctl"]]
        return {k: int(v) for k, v in re.findall(r"^(net\.\S+)\s*=\s*(\d+)", sysctl, re.M)}


def data_disk_gb(plan: Plan) -> int:
    """The declared data disk's size (GiB) at LUN 0, or 0 without one."""
    disks = plan.find(DISK)
    return int(disks[0].raw_inputs.get("diskSizeGB") or 0) if disks else 0
