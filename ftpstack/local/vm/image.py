"""The L4 test VM's boot image (Debian 12, built once and cached under `.cache/l4/`) and how qemu
runs here (`choose_accel`).

debootstrap of Debian 12 with systemd, cloud-init, the cloud kernel, openssh-server and the qemu
guest agent, turned into an ext4 disk image with `mkfs.ext4 -d` (no loop mounts). proftpd is not
in it: the user-data installs it, as on Azure. What the image adds stands in for Azure's platform,
never for the user-data:

- qemu-guest-agent stands in for Azure's VM agent: the out-of-band channel the Run Command
  stand-in (`ftpstack.local.vm.deployment`) uses, never SSH over the public path;
- cloud-init limited to NoCloud (never probes a metadata address);
- Azure's udev name for the data disk (/dev/disk/azure/scsi1/lun0; the test VM's data disk has
  the serial lun0);
- resolvconf, so the resolver the NoCloud network config names (`dns_nameservers`) is the one
  the guest uses, as Azure's DHCP hands every VM the VNet's resolver (never the host's own);
- apt pointed at the host-side proxy (`ftpstack.local.vm.aptproxy`) and at the host's own archive.

Beside it, `preinstalled-<key>.qcow2`: the same tree with one stack kind's bootstrap packages
already installed as cloud-init installs them (recommends included; proftpd left disabled, as the
package's own start is refused by the unit guard on a stock image), one disk for each package
list the bootstrap declares (with and without the NFS client). They are for the boots that test
something other than the package install, which costs about a minute of emulation per boot (a
replacement, a restore, the two instances of a share): the first boot of `tests/local/vm` keeps
the stock image, and checks that the packages cloud-init installed there are the ones the
matching `preinstalled-<key>.txt` lists.

    python -m ftpstack.local.vm.image     # build (or find) the image; prints its directory
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ftpstack.bootstrap import NFS_PACKAGES, PACKAGES
from ftpstack.local.net.netns import end_process
from ftpstack.local.net.topology import VM_NETS
from ftpstack.offline.plan import PROJECT_DIR

CACHE = PROJECT_DIR / ".cache" / "l4"
PROXY_PORT = 3142
# Bump to rebuild cached images when the recipe below changes.
IMAGE_RECIPE = 10
BASE_PACKAGES = "systemd-sysv,udev,iproute2,ifupdown,netbase,ca-certificates,sudo,procps,python3"
# locales: Azure's Debian image has them, and cloud-init's locale module needs them.
# qemu-guest-agent: the stand-in for Azure's VM agent (Run Command arrives through it).
# resolvconf: ifupdown hands it the network config's resolver (Azure's DHCP does this there).
GUEST_PACKAGES = [
    "cloud-init",
    "linux-image-cloud-amd64",
    "openssh-server",
    "e2fsprogs",
    "locales",
    "qemu-guest-agent",
    "resolvconf",
]
LUN_RULE = (
    "# Azure names data disks by LUN; the test VM's data disk has the serial lun0.\n"
    'SUBSYSTEM=="block", KERNEL=="vd*", ATTRS{serial}=="lun0", '
    'SYMLINK+="disk/azure/scsi1/lun0"\n'
)
NOCLOUD_ONLY = "datasource_list: [ NoCloud, None ]\n"
# The preinstalled disks: each package list a stack's user-data may install.
PREINSTALLED = (PACKAGES, (*PACKAGES, *NFS_PACKAGES))
# Every package's state and name (`ii ` for installed), on the host or in the guest.
PACKAGE_QUERY = ("dpkg-query", "-W", "-f", "${db:Status-Abbrev} ${Package}\\n")
# cloud-init's own apt-get options (cloudinit/distros/debian.py): recommends are installed.
CLOUD_INIT_APT = (
    "apt-get",
    "--option=Dpkg::Options::=--force-confold",
    "--option=Dpkg::options::=--force-unsafe-io",
    "--assume-yes",
    "--quiet",
)
PROGRESS_EVERY = 10.0

Say = Callable[[str], None]


def say(message: str) -> None:
    print(f"[l4] {message}", file=sys.stderr, flush=True)


def run_tool(
    *argv: str,
    label: str = "",
    progress: Say | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 3600,
) -> str:
    """A host command; its stdout. While it runs, `progress` hears about it every 10 s (long
    stages must never look hung). RuntimeError with its stderr's tail when it fails."""
    started = time.monotonic()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, text=True, env=env)
        while True:
            try:
                proc.wait(timeout=PROGRESS_EVERY)
                break
            except subprocess.TimeoutExpired:
                elapsed = time.monotonic() - started
            if elapsed > timeout:
                proc.kill()
                proc.wait()
                raise RuntimeError(f"{label or argv[0]}: no result within {timeout:.0f} s")
            if progress is not None:
                progress(f"{label or argv[0]}: still running ({elapsed:.0f} s)")
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:6])} ({proc.returncode}): {stderr.strip()[-2000:]}")
    return stdout


def archive_hosts() -> set[str]:
    """The hosts of the host's own Debian apt sources: the only places the guest may fetch from."""
    hosts = set()
    for path in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]:
        if path.is_file():
            for url in re.findall(r"https?://[^\s]+", path.read_text()):
                if "debian" in url:
                    hosts.add(urlsplit(url).hostname or "")
    return hosts - {""}


def guest_sources() -> str:
    """The host's Debian archive, over plain http (the guest does not trust the host's CAs; apt
    checks the archive's signatures either way)."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if not sources.is_file():
        raise RuntimeError(f"{sources} is missing: the test image uses the host's Debian archive")
    return re.sub(r"https://", "http://", sources.read_text())


@dataclass(frozen=True)
class Image:
    disk: Path  # qcow2, the read-only base of every OS disk
    kernel: Path
    initrd: Path

    def preinstalled(self, packages: Sequence[str], suffix: str = ".qcow2") -> Path:
        """The disk with `packages` installed (with suffix .txt: their names, one a line)."""
        path = self.disk.parent / preinstalled_name(packages, suffix)
        if not path.exists():
            raise FileNotFoundError(f"no preinstalled test image holds exactly {list(packages)}")
        return path


def preinstalled_name(packages: Sequence[str], suffix: str) -> str:
    key = hashlib.sha256(" ".join(sorted(packages)).encode()).hexdigest()[:8]
    return f"preinstalled-{key}{suffix}"


def recipe_key() -> str:
    parts = [str(IMAGE_RECIPE), BASE_PACKAGES, *GUEST_PACKAGES, LUN_RULE, NOCLOUD_ONLY]
    parts += [*(" ".join(p) for p in PREINSTALLED), *CLOUD_INIT_APT]
    text = "\n".join([*parts, guest_sources(), str(VM_NETS[0][1]), str(PROXY_PORT)])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def build_image(cache: Path = CACHE, progress: Say = say) -> Image:
    """The cached test image, built when missing (a few minutes, reported every 10 s)."""
    out = cache / f"debian12-{recipe_key()}"
    image = Image(out / "disk.qcow2", out / "vmlinuz", out / "initrd.img")
    if image.disk.exists():  # renamed into place last
        return image
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="image-", dir=cache))
    try:
        started = time.monotonic()
        root = work / "root"
        _bootstrap(root, progress)
        # The preinstalled trees: copies (cp -a keeps /dev's nodes), their packages fetched from
        # the host's archive before any tree is pointed at the guest-side proxy.
        trees = {packages: work / f"preinstalled-{n}" for n, packages in enumerate(PREINSTALLED)}
        for packages, tree in trees.items():
            run_tool("cp", "-a", str(root), str(tree))
            _preinstall(tree, packages, progress)
        for tree in (root, *trees.values()):
            _configure_guest(tree)
        kernel = sorted((root / "boot").glob("vmlinuz-*"))[-1]
        staging = work / "out"
        staging.mkdir()
        shutil.copy(kernel, staging / "vmlinuz")
        shutil.copy(
            root / "boot" / kernel.name.replace("vmlinuz", "initrd.img"), staging / "initrd.img"
        )
        _make_disk(root, work, staging / "disk.qcow2", progress)
        for packages, tree in trees.items():
            listing = run_tool("chroot", str(tree), *PACKAGE_QUERY)
            (staging / preinstalled_name(packages, ".txt")).write_text(package_names(listing))
            _make_disk(tree, work, staging / preinstalled_name(packages, ".qcow2"), progress)
        # The disk last, by rename: a half-built image is never taken for a finished one.
        out.mkdir(parents=True, exist_ok=True)
        for path in sorted(staging.iterdir(), key=lambda p: p.name == "disk.qcow2"):
            os.replace(path, out / path.name)
        for old in cache.glob("debian12-*"):  # earlier recipes' images (half a GB each)
            if old != out:
                shutil.rmtree(old, ignore_errors=True)
        progress(f"image ready in {time.monotonic() - started:.0f} s: {out}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return image


def _make_disk(root: Path, work: Path, into: Path, progress: Say) -> None:
    progress(f"making {into.name} (mkfs.ext4 -d, no loop mount) ...")
    raw = work / "disk.raw"
    raw.unlink(missing_ok=True)
    run_tool(
        *("mkfs.ext4", "-q", "-L", "root", "-d", str(root), str(raw), "3G"),
        label="mkfs.ext4",
        progress=progress,
    )
    run_tool(
        *("qemu-img", "convert", "-O", "qcow2", str(raw), str(into)),
        label="qemu-img convert",
        progress=progress,
    )
    raw.unlink()


@contextlib.contextmanager
def _no_services(root: Path) -> Iterator[None]:
    """No package's service starts inside the chroot (policy-rc.d)."""
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    try:
        yield
    finally:
        policy.unlink()


def _preinstall(root: Path, packages: Sequence[str], progress: Say) -> None:
    """The bootstrap's packages, as cloud-init's package module installs them on a first boot;
    then the lists and caches as the stock image has them."""
    progress(f"preinstalled disk: installing {', '.join(packages)} ...")
    with _no_services(root):
        _apt_install(root, (*CLOUD_INIT_APT, "install", *packages), progress)
        # On a stock image the package's own start is refused by the bootstrap's unit guard
        # (ConditionPathExists); here the unit would start at boot, before cloud-init wrote the
        # guard. The bootstrap's runcmd enables it, the configuration step starts it.
        run_tool("chroot", str(root), "systemctl", "disable", "proftpd.service")


def _apt_install(root: Path, install: Sequence[str], progress: Say) -> None:
    """`install` (an apt-get command line) in the chroot; then the downloaded packages dropped
    and apt's package cache built: `clean` drops that cache too, which every boot's `apt-get
    update` would then rebuild (half a minute emulated), and the lists are there."""
    chroot = ("chroot", str(root))
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run_tool(*chroot, *install, env=env, label="apt-get install", progress=progress)
    run_tool(*chroot, "apt-get", "clean")
    run_tool(*chroot, "apt-cache", "gencaches")


def package_names(listing: str) -> str:
    """The installed packages' names in PACKAGE_QUERY's output, sorted, one a line."""
    names = (line.split()[1] for line in listing.splitlines() if line.startswith("ii "))
    return "".join(f"{name}\n" for name in sorted(names))


def _bootstrap(root: Path, progress: Say) -> None:
    progress("debootstrap Debian 12 (minbase) ...")
    mirror = re.search(r"URIs:\s*(\S+)", guest_sources())
    run_tool(
        "debootstrap",
        "--variant=minbase",
        f"--include={BASE_PACKAGES}",
        "bookworm",
        str(root),
        mirror.group(1) if mirror else "http://deb.debian.org/debian",
        label="debootstrap",
        progress=progress,
    )
    (root / "etc/apt/sources.list.d/debian.sources").write_text(guest_sources())
    (root / "etc/apt/sources.list").write_text("")
    with _no_services(root):
        _guest_packages(root, progress)


def _guest_packages(root: Path, progress: Say) -> None:
    progress(f"installing {', '.join(GUEST_PACKAGES)} ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    chroot = ("chroot", str(root))
    run_tool(
        *chroot, "apt-get", "update", "-qq", env=env, label="apt-get update", progress=progress
    )
    install = ("apt-get", "install", "-y", "-qq", "--no-install-recommends", *GUEST_PACKAGES)
    _apt_install(root, install, progress)
    # Azure's Debian image comes with its locale generated; cloud-init's locale module fails on
    # an image without it.
    (root / "etc/locale.gen").write_text("en_US.UTF-8 UTF-8\n")
    run_tool(*chroot, "locale-gen", env=env)
    run_tool(*chroot, "update-locale", "LANG=en_US.UTF-8", env=env)


def _configure_guest(root: Path) -> None:
    """What Azure's platform provides, for the local stand-in; nothing of the user-data."""
    (root / "etc/fstab").write_text("LABEL=root / ext4 defaults 0 1\n")
    (root / "etc/hostname").write_text("ftpstack-vm\n")
    cloud = root / "etc/cloud/cloud.cfg.d"
    cloud.mkdir(parents=True, exist_ok=True)
    (cloud / "90-ftpstack-nocloud.cfg").write_text(NOCLOUD_ONLY)
    apt = root / "etc/apt/apt.conf.d/90-ftpstack-proxy"
    apt.write_text(f'Acquire::http::Proxy "http://{VM_NETS[0][1]}:{PROXY_PORT}/";\n')
    (root / "etc/udev/rules.d/66-ftpstack-azure-lun.rules").write_text(LUN_RULE)
    (root / "etc/machine-id").write_text("")  # a fresh one per OS disk
    # debootstrap copied the host's resolver, which means nothing in the guest: the guest
    # resolves through what its network config names (resolvconf), like Azure's DHCP lease.
    (root / "etc/resolvconf/resolv.conf.d/original").unlink(missing_ok=True)
    resolv = root / "etc/resolv.conf"
    if not resolv.is_symlink():
        resolv.unlink(missing_ok=True)
        resolv.symlink_to("../run/resolvconf/resolv.conf")
    # The serial console is a log for people; nobody logs in there.
    getty = root / "etc/systemd/system/serial-getty@ttyS0.service"
    if not getty.exists():
        getty.symlink_to("/dev/null")


def choose_accel(image: Image, progress: Say = say) -> str:
    """`FTPSTACK_ACCEL` (kvm or tcg), else KVM when it boots a kernel within 20 s here. The
    verdict is kept per kernel and qemu (KVM hangs on some nested machines)."""
    forced = os.environ.get("FTPSTACK_ACCEL", "")
    if forced in {"kvm", "tcg"}:
        return forced
    if not os.access("/dev/kvm", os.W_OK):
        return "tcg"
    version = run_tool("qemu-system-x86_64", "--version").splitlines()[0]
    key = hashlib.sha256(f"{os.uname().release} {version}".encode()).hexdigest()[:12]
    verdict = CACHE / f"accel-{key}"
    if verdict.exists():
        return verdict.read_text().strip()
    progress("trying KVM (20 s at most, once per machine) ...")
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "console"
        proc = subprocess.Popen(
            [
                "qemu-system-x86_64",
                "-accel",
                "kvm",
                "-cpu",
                "host",
                "-m",
                "256",
                "-display",
                "none",
                "-nodefaults",
                "-kernel",
                str(image.kernel),
                "-append",
                "console=ttyS0",
                "-serial",
                f"file:{log}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline, works = time.monotonic() + 20, False
        while time.monotonic() < deadline and proc.poll() is None and not works:
            works = log.exists() and "Linux version" in log.read_text(errors="replace")
            time.sleep(0.5)
        end_process(proc, timeout=5)
    accel = "kvm" if works else "tcg"
    progress("KVM works" if works else "KVM did not boot a kernel: software emulation (tcg)")
    verdict.parent.mkdir(parents=True, exist_ok=True)
    verdict.write_text(accel + "\n")
    return accel


def main() -> int:
    print(build_image().disk.parent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
