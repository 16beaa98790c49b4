"""One local VM (L4): qemu (KVM where it works, else `-accel tcg`) with the cached image
(`ftpstack.local.vm.image`) under a throw-away OS disk, a NoCloud seed holding exactly the plan's
user-data, and its NIC as a tap bridged into its instance's namespace of `LocalAzure`: every
client reaches it through the declared public IP or load balancer, NSG and idle timeout.

The seed's network configuration is what Azure's DHCP gives a NIC: the instance's private
address, the gateway (the router), and the VNet's resolver (on Azure 168.63.129.16; here the
model's stand-in, `ftpstack.local.net.files`, when the plan has one). `Guest`
(`ftpstack.local.vm.qga`) reaches the VM through its qemu guest agent, the stand-in for Azure's VM
agent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import re
import subprocess
import time
from pathlib import Path
from typing import Literal

import yaml

from ftpstack.local.net.azure import LocalAzure
from ftpstack.local.net.netns import end_process
from ftpstack.local.net.topology import VM_NETS, vm_address
from ftpstack.local.vm.image import Image, Say, choose_accel, run_tool, say
from ftpstack.local.vm.qga import Guest, GuestAgent, GuestAgentError

Preinstalled = Literal["never", "replacements", "always"]


def mac(index: int) -> str:
    return f"52:54:00:f7:{index:02x}:02"


@dataclasses.dataclass
class LocalVm:
    """Instance `index` of the plan in qemu, its NIC in `az.vm_netns(index)`."""

    az: LocalAzure
    image: Image
    workdir: Path
    user_data: str
    index: int = 0
    data_disk: Path | None = None
    data_disk_gb: int = 4
    nameservers: tuple[str, ...] = ()  # the VNet's resolver, as the NIC's DHCP lease names it
    accel: str = ""
    # qemu's CPU model. Emulated: qemu64, not max, whose AVX/AVX2 make glibc and Python take
    # paths that emulation runs slowly (measured here: a first deployment 152 s vs 220 s).
    cpu: str = ""
    smp: int = 2
    qemu: subprocess.Popen[str] | None = None
    launches: int = 0
    generation: int = 0  # one per OS disk: a new Azure VM has a new instance id
    # Which OS disks come from the image with the bootstrap's packages already installed
    # (`ftpstack.local.vm.image`): never, replacements (generation > 0) or always.
    preinstalled: Preinstalled = "never"

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.guest = Guest(GuestAgent(self.workdir / "qga.sock"))

    @property
    def console(self) -> Path:
        return self.workdir / f"console-{self.launches}.log"

    def seed(self) -> Path:
        seed = self.workdir / "seed"
        seed.mkdir(exist_ok=True)
        (seed / "user-data").write_text(self.user_data)  # exactly the declared user-data
        digest = hashlib.sha256(self.user_data.encode()).hexdigest()[:12]
        suffix = f"-{self.index}" if self.index else ""
        (seed / "meta-data").write_text(
            f"instance-id: ftpstack-{digest}{suffix}-{self.generation}\n"
            f"local-hostname: ftpstack-vm{suffix}\n"
        )
        # What Azure's DHCP gives the NIC: the private address, the gateway (the router) and the
        # VNet's resolver, in cloud-init's v1 format, which Debian's ifupdown renderer handles
        # completely (the resolver through resolvconf).
        link = VM_NETS[self.index]
        subnet: dict[str, object] = {
            "type": "static",
            "address": f"{vm_address(self.index)}/{link.prefixlen}",
            "gateway": str(link[1]),
        }
        if self.nameservers:
            subnet["dns_nameservers"] = list(self.nameservers)
        nic = {"type": "physical", "name": "eth0", "mac_address": mac(self.index)}
        network = {"version": 1, "config": [{**nic, "subnets": [subnet]}]}
        (seed / "network-config").write_text(yaml.safe_dump(network))
        iso = self.workdir / "seed.iso"
        files = [str(seed / name) for name in ("user-data", "meta-data", "network-config")]
        run_tool(
            *("genisoimage", "-quiet", "-output", str(iso), "-volid", "cidata"),
            *("-joliet", "-rock", *files),
        )
        return iso

    def _bridge(self) -> None:
        """The VM's address moves from the namespace to the guest: veth and tap on one bridge."""
        ns = self.az.vm_netns(self.index)
        veth = f"v{self.index}p"
        ns.ip("addr", "flush", "dev", veth)
        ns.ip("link", "add", "br0", "type", "bridge")
        ns.ip("tuntap", "add", "tap0", "mode", "tap")
        for dev in (veth, "tap0"):
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
                    *("qemu-img", "create", "-q", "-f", "qcow2"),
                    *(str(self.data_disk), f"{self.data_disk_gb}G"),
                )
        if not self.accel:
            self.accel = choose_accel(self.image, progress)
        self.launches += 1
        self._launch()
        progress(f"booting (accel {self.accel}, console {self.console})")
        return self.guest.agent.wait_ready(
            timeout,
            alive=lambda: self.qemu is not None and self.qemu.poll() is None,
            tick=lambda s: progress(f"booting: {stage(self.console)} ({s:.0f} s)"),
        )

    def _launch(self) -> None:
        iso = self.seed()
        self.guest.agent.close()
        (self.workdir / "qga.sock").unlink(missing_ok=True)
        cpu = self.cpu or ("qemu64" if self.accel == "tcg" else "host")
        argv = ["qemu-system-x86_64", "-accel", self.accel, "-m", "1536", "-smp", str(self.smp)]
        argv += ["-cpu", cpu, "-display", "none", "-nodefaults", "-no-user-config"]
        argv += ["-kernel", str(self.image.kernel), "-initrd", str(self.image.initrd)]
        argv += ["-append", "root=LABEL=root rw console=ttyS0 net.ifnames=0"]
        # cache=unsafe: the guest's flushes cost nothing (dpkg flushes every file, which doubles
        # a first boot under emulation); writes still reach the host's page cache, so a guest
        # reboot or a qemu exit loses nothing, only a host crash would.
        argv += ["-drive", f"file={self.workdir / 'os.qcow2'},if=virtio,format=qcow2,cache=unsafe"]
        argv += ["-drive", f"file={iso},if=virtio,format=raw,readonly=on"]
        argv += ["-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no"]
        argv += ["-device", f"virtio-net-pci,netdev=n0,mac={mac(self.index)}"]
        argv += ["-serial", f"file:{self.console}"]
        # The guest agent's channel: Azure's VM agent talks to the platform out of band too.
        argv += ["-chardev", f"socket,path={self.workdir / 'qga.sock'},server=on,wait=off,id=qga0"]
        argv += ["-device", "virtio-serial"]
        argv += ["-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0"]
        if self.data_disk is not None:
            argv += ["-drive", f"file={self.data_disk},if=none,id=data,format=qcow2"]
            argv += ["-device", "virtio-blk-pci,drive=data,serial=lun0"]
        with (self.workdir / "qemu.log").open("a") as log:
            self.qemu = self.az.vm_netns(self.index).popen(*argv, stdout=log, stderr=log)

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
        self.generation += 1
        self._new_os_disk()

    def _new_os_disk(self) -> None:
        overlay = self.workdir / "os.qcow2"
        overlay.unlink(missing_ok=True)
        wanted = {"never": False, "replacements": self.generation > 0, "always": True}
        base = self.image.disk  # read only: the image is shared
        if wanted[self.preinstalled]:
            base = self.image.preinstalled(yaml.safe_load(self.user_data).get("packages", []))
        run_tool(
            "qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(base), str(overlay)
        )


def stage(console: Path) -> str:
    text = console.read_text(errors="replace") if console.exists() else ""
    for marker, name in (
        ("Cloud-init v. ", "cloud-init running"),
        ("Reached target", "systemd"),
        ("Linux version", "kernel booting"),
    ):
        if marker in text:
            return name
    return "starting qemu"


def last_line(console: Path) -> str:
    """The console's last line, without the kernel's timestamp: what the guest is doing."""
    text = console.read_text(errors="replace")[-4000:] if console.exists() else ""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in text.splitlines() if line.strip()]
    last = re.sub(r"^\[\s*[\d.]+\]\s*", "", lines[-1]) if lines else "(nothing yet)"
    return f"console: {last[:100]}"
