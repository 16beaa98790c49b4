"""The local VM (L4): the exact user-data booting a Debian 12 VM, behind the local Azure model.

- An image built once and cached under `.cache/l4/`: debootstrap of Debian 12 with systemd,
  cloud-init, the cloud kernel and openssh-server (not proftpd: the user-data installs it, as on
  Azure), turned into an ext4 disk image with `mkfs.ext4 -d` (no loop mounts). What the image
  adds stands in for Azure's platform, never for the user-data: cloud-init limited to NoCloud,
  apt pointed at an HTTP proxy on the host side, Azure's udev name for the data disk
  (/dev/disk/azure/scsi1/lun0), and a report on the serial console once cloud-init is done.
- Each boot gets a throw-away qcow2 overlay and a NoCloud seed (`cidata`) holding exactly the
  rendered user-data, a meta-data, and the network config the platform would give.
- qemu with KVM where it works, software emulation (`-accel tcg`) otherwise; kernel and initrd
  from the image; the serial console logged to a file.
- The VM's network card is a tap device bridged into the VM namespace of `LocalAzure`, so every
  client reaches it through the declared NSG, public IP and idle timeout. For packages the guest
  reaches only the Debian archive the host's apt uses: a proxy on the host (a unix socket, so the
  machine's own firewall and routes are untouched) relayed into the router namespace, which
  forwards only to the archive hosts named in the host's apt sources.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import http.server
import os
import re
import shutil
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

import yaml

from ftpstack.localazure import VM_NET, LocalAzure, end_process
from ftpstack.plan import PROJECT_DIR, Plan

CACHE = PROJECT_DIR / ".cache" / "l4"
PROXY_PORT = 3142
MAC = "52:54:00:f7:00:02"
REPORT_BEGIN, REPORT_END = "FTPSTACK-REPORT-BEGIN", "FTPSTACK-REPORT-END"
# Bump to rebuild cached images when the recipe below changes.
IMAGE_RECIPE = 6
BASE_PACKAGES = "systemd-sysv,udev,iproute2,ifupdown,netbase,ca-certificates,sudo,procps,python3"
# locales: Azure's Debian image has them, and cloud-init's locale module needs them.
GUEST_PACKAGES = [
    "cloud-init", "linux-image-cloud-amd64", "openssh-server", "e2fsprogs", "locales",
]  # fmt: skip
REPORT_SCRIPT = f"""#!/bin/sh
# ftpstack test image: once cloud-init is done, tell the serial console what the tests check.
# boot-finished is written at the very end of cloud-init's final stage, even after errors.
while [ ! -e /var/lib/cloud/instance/boot-finished ]; do sleep 1; done
cloud-init status --wait >/dev/null 2>&1
{{
  echo {REPORT_BEGIN}
  cloud-init status --long
  echo "cloud-init-errors: $(cloud-init status --format json 2>/dev/null | tr -d '\\n')"
  echo "keepalive-time: $(sysctl -n net.ipv4.tcp_keepalive_time)"
  echo "proftpd-active: $(systemctl is-active proftpd)"
  echo "proftpd-enabled: $(systemctl is-enabled proftpd)"
  echo "ftp-root: $(findmnt -n -o SOURCE,FSTYPE /srv/ftp || echo os-disk)"
  echo "boot-id: $(cat /proc/sys/kernel/random/boot_id)"
  echo "--- routes"
  ip -4 route
  echo "--- ftp root"
  ls -la /srv/ftp /srv/ftp/* 2>&1 | head -20
  echo "--- disk setup"
  grep -iE "mkfs|disk_setup|fs_setup|file system|mount" /var/log/cloud-init.log | tail -12
  echo "--- proftpd journal"
  journalctl -u proftpd --no-pager -n 15 -o cat 2>&1
  echo "--- cloud-init warnings"
  grep -E "WARNING|ERROR|Traceback" /var/log/cloud-init.log | tail -15
  echo {REPORT_END}
}} > /dev/ttyS0
"""
# Type=simple and no ordering: cloud-final runs after multi-user.target, so a unit that
# multi-user.target waited for could never see it finish; the script polls instead.
REPORT_UNIT = """[Unit]
Description=ftpstack test image: report cloud-init's outcome on the serial console

[Service]
Type=simple
ExecStart=/usr/local/sbin/ftpstack-report

[Install]
WantedBy=multi-user.target
"""


def say(message: str) -> None:
    print(f"[localvm] {message}", file=sys.stderr, flush=True)


def _run(*argv: str, **kw: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, **kw)  # type: ignore[call-overload]
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:6])}: {result.stderr.strip()[-2000:]}")
    return result  # type: ignore[no-any-return]


def archive_hosts() -> set[str]:
    """The hosts of the host's own apt sources: the only places the guest may fetch from."""
    hosts = set()
    for path in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]:
        if path.is_file():
            for url in re.findall(r"https?://[^\s]+", path.read_text()):
                if "debian" in url:
                    hosts.add(urlsplit(url).hostname or "")
    return hosts - {""}


def guest_sources() -> str:
    """The host's Debian archive, over plain http (the guest does not trust the host's CAs)."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    return re.sub(r"https://", "http://", sources.read_text())


# -- the image -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Image:
    disk: Path  # qcow2, read-only base of every overlay
    kernel: Path
    initrd: Path


def _recipe_key() -> str:
    parts = [str(IMAGE_RECIPE), BASE_PACKAGES, *GUEST_PACKAGES, REPORT_SCRIPT, REPORT_UNIT]
    text = "\n".join([*parts, guest_sources()])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def build_image(cache: Path = CACHE) -> Image:
    """The cached test image, built when missing (a few minutes)."""
    key = _recipe_key()
    out = cache / f"debian12-{key}"
    image = Image(out / "disk.qcow2", out / "vmlinuz", out / "initrd.img")
    if image.disk.exists():
        return image
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="image-", dir=cache))
    try:
        root = work / "root"
        say("debootstrap Debian 12 (minbase) ...")
        started = time.monotonic()
        mirror = re.search(r"URIs:\s*(\S+)", guest_sources())
        _run(
            "debootstrap", "--variant=minbase", f"--include={BASE_PACKAGES}", "bookworm",
            str(root), mirror.group(1) if mirror else "http://deb.debian.org/debian",
        )  # fmt: skip
        (root / "etc/apt/sources.list.d/debian.sources").write_text(guest_sources())
        (root / "etc/apt/sources.list").write_text("")
        policy = root / "usr/sbin/policy-rc.d"
        policy.write_text("#!/bin/sh\nexit 101\n")  # no services start inside the chroot
        policy.chmod(0o755)
        say("installing cloud-init, the cloud kernel, openssh-server ...")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        _run("chroot", str(root), "apt-get", "update", "-qq", env=env)
        _run(
            "chroot", str(root), "apt-get", "install", "-y", "-qq", "--no-install-recommends",
            *GUEST_PACKAGES, env=env,
        )  # fmt: skip
        _run("chroot", str(root), "apt-get", "clean")
        # Azure's Debian image comes with its locale generated; cloud-init's locale module
        # fails on an image without it.
        (root / "etc/locale.gen").write_text("en_US.UTF-8 UTF-8\n")
        _run("chroot", str(root), "locale-gen", env=env)
        _run("chroot", str(root), "update-locale", "LANG=en_US.UTF-8", env=env)
        policy.unlink()
        _configure_guest(root)
        boot = sorted((root / "boot").glob("vmlinuz-*"))[-1]
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(boot, image.kernel)
        shutil.copy(root / "boot" / boot.name.replace("vmlinuz", "initrd.img"), image.initrd)
        say("making the disk image (mkfs.ext4 -d, no loop mount) ...")
        raw = work / "disk.raw"
        _run("mkfs.ext4", "-q", "-L", "root", "-d", str(root), str(raw), "3G")
        _run("qemu-img", "convert", "-O", "qcow2", str(raw), str(image.disk))
        say(f"image ready in {time.monotonic() - started:.0f} s: {out}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return image


def _configure_guest(root: Path) -> None:
    """What Azure's platform provides, for the local stand-in; nothing of the user-data."""
    (root / "etc/fstab").write_text("LABEL=root / ext4 defaults 0 1\n")
    (root / "etc/hostname").write_text("ftpstack-vm\n")
    cloud = root / "etc/cloud/cloud.cfg.d"
    cloud.mkdir(parents=True, exist_ok=True)
    # Only the NoCloud seed: never probe a metadata address.
    (cloud / "90-ftpstack-nocloud.cfg").write_text("datasource_list: [ NoCloud, None ]\n")
    apt = root / "etc/apt/apt.conf.d/90-ftpstack-proxy"
    apt.write_text(f'Acquire::http::Proxy "http://{VM_NET[1]}:{PROXY_PORT}/";\n')
    rules = root / "etc/udev/rules.d/66-ftpstack-azure-lun.rules"
    rules.write_text(
        "# Azure names data disks by LUN; the test VM's data disk has the serial lun0.\n"
        'SUBSYSTEM=="block", KERNEL=="vd*", ATTRS{serial}=="lun0", '
        'SYMLINK+="disk/azure/scsi1/lun0"\n'
    )
    script = root / "usr/local/sbin/ftpstack-report"
    script.write_text(REPORT_SCRIPT)
    script.chmod(0o755)
    (root / "etc/systemd/system/ftpstack-report.service").write_text(REPORT_UNIT)
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / "ftpstack-report.service"
    if not link.exists():
        link.symlink_to("/etc/systemd/system/ftpstack-report.service")
    (root / "etc/machine-id").write_text("")  # a fresh one per boot
    # The serial console carries the report; a login prompt there would hang it up mid-way.
    getty = root / "etc/systemd/system/serial-getty@ttyS0.service"
    if not getty.exists():
        getty.symlink_to("/dev/null")


# -- the package proxy ---------------------------------------------------------------------------


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    allowed: ClassVar[set[str]] = set()

    def log_message(self, *args: object) -> None:
        pass

    def address_string(self) -> str:
        return "guest"

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.scheme != "http" or url.hostname not in self.allowed:
            self.send_error(403, "only the Debian archive")
            return
        conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=60)
        headers = {
            k: v
            for k, v in self.headers.items()
            if k.lower() in {"range", "if-modified-since", "cache-control"}
        }
        path = url.path + (f"?{url.query}" if url.query else "")
        try:
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            self.send_response(response.status)
            for name, value in response.getheaders():
                if name.lower() in {
                    "content-length",
                    "content-type",
                    "last-modified",
                    "etag",
                    "content-range",
                }:
                    self.send_header(name, value)
            self.end_headers()
            shutil.copyfileobj(response, self.wfile, 1 << 16)
        except OSError as error:
            with contextlib.suppress(OSError):
                self.send_error(502, str(error))
        finally:
            conn.close()


@dataclass
class AptProxy:
    """An HTTP proxy on a unix socket of the host, relayed to `router_ip:PROXY_PORT` in the router
    namespace; it fetches only from the host's Debian archive hosts."""

    az: LocalAzure
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ftpstack-apt-")))
    server: _UnixHTTPServer | None = None
    relay: subprocess.Popen[str] | None = None

    def __enter__(self) -> AptProxy:
        sock = str(self.directory / "proxy.sock")
        _ProxyHandler.allowed = archive_hosts()
        self.server = _UnixHTTPServer(sock, _ProxyHandler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        relay = f"""
import socket, threading
def pipe(a, b):
    try:
        while data := a.recv(65536):
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(({str(VM_NET[1])!r}, {PROXY_PORT}))
listener.listen(16)
while True:
    guest, _ = listener.accept()
    host = socket.socket(socket.AF_UNIX)
    host.connect({sock!r})
    for a, b in ((guest, host), (host, guest)):
        threading.Thread(target=pipe, args=(a, b), daemon=True).start()
"""
        self.relay = self.az.popen(self.az.router, sys.executable, "-c", relay)
        _run(
            "ip", "netns", "exec", self.az.router, "nft", "insert", "rule", "inet", "azure",
            "router", "iifname", "vr", "tcp", "dport", str(PROXY_PORT), "accept",
        )  # fmt: skip
        return self

    def __exit__(self, *exc: object) -> None:
        if self.relay is not None:
            self.relay.kill()
            self.relay.wait()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        shutil.rmtree(self.directory, ignore_errors=True)


# -- a VM ------------------------------------------------------------------------------------------


@dataclass
class Report:
    """What the guest says on its serial console once cloud-init is done."""

    status: str
    errors_json: str
    keepalive_time: int
    proftpd_active: str
    proftpd_enabled: str
    ftp_root: str
    boot_id: str
    raw: str = field(repr=False, default="")

    def __str__(self) -> str:
        return self.raw

    @classmethod
    def parse(cls, text: str) -> Report:
        values = dict(re.findall(r"^([a-z-]+): ?(.*?)\r?$", text, re.MULTILINE))
        status = re.search(r"^status: (\S+)", text, re.MULTILINE)
        return cls(
            status=status.group(1) if status else "unknown",
            errors_json=values.get("cloud-init-errors", ""),
            keepalive_time=int(values.get("keepalive-time") or 0),
            proftpd_active=values.get("proftpd-active", ""),
            proftpd_enabled=values.get("proftpd-enabled", ""),
            ftp_root=values.get("ftp-root", ""),
            boot_id=values.get("boot-id", ""),
            raw=text,
        )


@dataclass
class LocalVm:
    """The plan's user-data booted in qemu, its NIC in `az`'s VM namespace.

    `data_disk`: a qcow2 kept across boots (and VM replacements), attached with serial lun0."""

    plan: Plan
    az: LocalAzure
    image: Image
    workdir: Path
    data_disk: Path | None = None
    accel: str = ""
    qemu: subprocess.Popen[bytes] | None = None
    boots: int = 0

    @property
    def console(self) -> Path:
        return self.workdir / f"console-{self.boots}.log"

    def seed(self) -> Path:
        seed = self.workdir / "seed"
        seed.mkdir(exist_ok=True)
        # Exactly the user-data the program declares.
        (seed / "user-data").write_text(self.plan.user_data)
        # A new instance id per user-data, as a new Azure VM gets.
        instance = hashlib.sha256(self.plan.user_data.encode()).hexdigest()[:12]
        (seed / "meta-data").write_text(
            f"instance-id: ftpstack-{instance}\nlocal-hostname: ftpstack-vm\n"
        )
        # What Azure's DHCP gives the NIC: the private address and the gateway (the router),
        # in cloud-init's v1 format, which Debian's ifupdown renderer handles completely.
        network = {
            "version": 1,
            "config": [
                {
                    "type": "physical",
                    "name": "eth0",
                    "mac_address": MAC,
                    "subnets": [
                        {
                            "type": "static",
                            "address": f"{self.az.vm_address}/{VM_NET.prefixlen}",
                            "gateway": str(VM_NET[1]),
                        }
                    ],
                }
            ],
        }
        (seed / "network-config").write_text(yaml.safe_dump(network))
        iso = self.workdir / "seed.iso"
        _run(
            "genisoimage", "-quiet", "-output", str(iso), "-volid", "cidata", "-joliet", "-rock",
            str(seed / "user-data"), str(seed / "meta-data"), str(seed / "network-config"),
        )  # fmt: skip
        return iso

    def _bridge(self) -> None:
        """Move the VM's address from the namespace to the guest: veth and tap on one bridge."""
        vm = self.az.vm
        _run("ip", "-n", vm, "addr", "flush", "dev", "vp")
        _run("ip", "-n", vm, "link", "add", "br0", "type", "bridge")
        _run("ip", "-n", vm, "tuntap", "add", "tap0", "mode", "tap")
        for dev in ("vp", "tap0"):
            _run("ip", "-n", vm, "link", "set", dev, "master", "br0")
        for dev in ("br0", "tap0"):
            _run("ip", "-n", vm, "link", "set", dev, "up")

    def start(self) -> None:
        if self.boots == 0:
            self._bridge()
            self._new_os_disk()
            if self.data_disk is not None and not self.data_disk.exists():
                _run("qemu-img", "create", "-q", "-f", "qcow2", str(self.data_disk), "2G")
        self.boots += 1
        if not self.accel:
            # KVM fails or hangs on some machines: try it briefly, else emulate (-accel tcg).
            self.accel = "kvm" if os.access("/dev/kvm", os.W_OK) else "tcg"
            if self.accel == "kvm":
                self._launch()
                if self._kernel_started(within=20):
                    return
                say("KVM did not boot the kernel within 20 s: software emulation (tcg)")
                self.stop()
                self.accel = "tcg"
                self.boots += 1
        self._launch()

    def _kernel_started(self, within: float) -> bool:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.qemu is None or self.qemu.poll() is not None:
                return False
            if self.console.exists() and "Linux version" in self.console.read_text(
                errors="replace"
            ):
                return True
            time.sleep(0.5)
        return False

    def _launch(self) -> None:
        iso = self.seed()
        argv = [
            "qemu-system-x86_64", "-accel", self.accel, "-m", "1536", "-smp", "2",
            "-cpu", "max" if self.accel == "tcg" else "host",
            "-display", "none", "-nodefaults", "-no-user-config",
            "-kernel", str(self.image.kernel), "-initrd", str(self.image.initrd),
            "-append", "root=LABEL=root rw console=ttyS0 net.ifnames=0",
            "-drive", f"file={self.workdir / 'os.qcow2'},if=virtio,format=qcow2",
            "-drive", f"file={iso},if=virtio,format=raw,readonly=on",
            "-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no",
            "-device", f"virtio-net-pci,netdev=n0,mac={MAC}",
            "-serial", f"file:{self.console}",
        ]  # fmt: skip
        if self.data_disk is not None:
            argv += [
                "-drive", f"file={self.data_disk},if=none,id=data,format=qcow2",
                "-device", "virtio-blk-pci,drive=data,serial=lun0",
            ]  # fmt: skip
        self.qemu = subprocess.Popen(
            ["ip", "netns", "exec", self.az.vm, *argv],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def wait_report(self, timeout: float = 900, progress: Callable[[str], None] = say) -> Report:
        """Block until the guest reported (cloud-init done) or `timeout` s passed."""
        started = time.monotonic()
        last = ""
        while time.monotonic() - started < timeout:
            if self.qemu is not None and self.qemu.poll() is not None:
                raise RuntimeError(f"qemu exited ({self.qemu.returncode}); see {self.console}")
            text = self.console.read_text(errors="replace") if self.console.exists() else ""
            if REPORT_END in text:
                return Report.parse(text[text.index(REPORT_BEGIN) :])
            stage = _stage(text)
            if stage != last:
                progress(f"{stage} ({time.monotonic() - started:.0f} s, accel {self.accel})")
                last = stage
            time.sleep(2)
        raise TimeoutError(f"no report within {timeout:.0f} s; see {self.console}")

    def stop(self) -> None:
        """Power off hard (the data disk's ext4 journal copes), by PID."""
        if self.qemu is not None:
            end_process(self.qemu, timeout=20)
            self.qemu = None

    def replace_os_disk(self) -> None:
        """A VM replacement as Azure does it: a new OS disk from the image, the same data disk."""
        self.stop()
        self._new_os_disk()

    def _new_os_disk(self) -> None:
        """A throw-away overlay on the cached image: the image itself is never written."""
        overlay = self.workdir / "os.qcow2"
        overlay.unlink(missing_ok=True)
        disk = str(self.image.disk)
        _run("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", disk, str(overlay))


def _stage(console: str) -> str:
    for marker, stage in (
        ("Cloud-init v. ", "cloud-init running"),
        ("Reached target", "systemd starting"),
        ("Linux version", "kernel booting"),
    ):
        if marker in console:
            if stage == "cloud-init running":
                finished = console.count("Cloud-init v. ")
                return f"cloud-init running (stage {finished})"
            return stage
    return "starting qemu"


@contextlib.contextmanager
def running_vm(
    plan: Plan, data_disk: bool = False, time_scale: float = 1.0
) -> Iterator[tuple[LocalAzure, LocalVm]]:
    """The local Azure model with the plan's VM booted behind it, cloud-init finished."""
    image = build_image()
    workdir = Path(tempfile.mkdtemp(prefix="ftpstack-l4-"))
    vm: LocalVm | None = None
    try:
        with LocalAzure(plan, time_scale=time_scale, serve=False) as az, AptProxy(az):
            vm = LocalVm(plan, az, image, workdir, workdir / "data.qcow2" if data_disk else None)
            vm.start()
            yield az, vm
    finally:
        if vm is not None:
            vm.stop()
        shutil.rmtree(workdir, ignore_errors=True)


# -- make up-local / make down-local -------------------------------------------------------------

STATE = CACHE / "up-local.json"


def _local_plan(stack: str) -> tuple[Plan, list[tuple[str, str]]]:
    """The stack's plan with fresh local passwords (its `secure:` values stay with the CLI)."""
    import json
    import secrets

    from ftpstack.plan import Secret, plan_stack, stack_config

    config, _ = stack_config(stack)
    users = json.loads(config.get("ftpstack:users", "[]"))
    local = [(u["name"], secrets.token_urlsafe(12)) for u in users] or [
        ("demo", secrets.token_urlsafe(12))
    ]
    overrides = {
        "users": Secret(
            [
                {**u, "password": p}
                for u, (_, p) in zip(users or [{"name": "demo"}], local, strict=True)
            ]
        ),
        "postDeployCheck": False,
    }
    return plan_stack(stack, overrides=overrides), local


def serve(stack: str) -> None:
    """The process behind `make up-local`: the stack's VM behind the local Azure model, until
    SIGTERM (`make down-local`) ends it and everything it made."""
    import json
    import signal

    plan, users = _local_plan(stack)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with running_vm(plan, data_disk=bool(re.search(r"fs_setup", plan.user_data))) as (az, vm):
        STATE.write_text(
            json.dumps({"pid": os.getpid(), "namespaces": az.namespaces, "ready": False})
        )
        report = vm.wait_report()
        STATE.write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "namespaces": az.namespaces,
                    "ready": True,
                    "status": report.status,
                    "public_ip": az.public_ip,
                    "client": az.client,
                    "users": users,
                    "console": str(vm.console),
                }
            )
        )
        say(f"cloud-init {report.status}; proftpd {report.proftpd_active}")
        stop.wait()


def up(stack: str) -> int:
    import json

    if STATE.exists():
        print(f"already up (see {STATE}); run `make down-local` first", file=sys.stderr)
        return 2
    CACHE.mkdir(parents=True, exist_ok=True)
    log = CACHE / "up-local.log"
    with log.open("w") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "ftpstack.localvm", "serve", "--stack", stack],
            stdout=out, stderr=out, start_new_session=True, cwd=PROJECT_DIR,
        )  # fmt: skip
    shown = 0
    while True:
        text = log.read_text()
        if len(text) > shown:
            sys.stderr.write(text[shown:])
            shown = len(text)
        state = json.loads(STATE.read_text()) if STATE.exists() else {}
        if state.get("ready"):
            break
        if child.poll() is not None:
            print(f"failed; see {log}", file=sys.stderr)
            STATE.unlink(missing_ok=True)
            return 1
        time.sleep(1)
    ip, ns = state["public_ip"], state["client"]
    name, password = state["users"][0]
    print(f"\nFTP endpoint: ftp://{ip}:21 (stack {stack}, through the local Azure model)")
    print(f"users (local passwords): {', '.join(f'{u}:{p}' for u, p in state['users'])}")
    print("From this shell, as a client on the Internet would:")
    print(f"  ip netns exec {ns} curl --user '{name}:{password}' ftp://{ip}/")
    print("Stop and clean up: make down-local")
    return 0


def down() -> int:
    import json

    if not STATE.exists():
        print("nothing is up", file=sys.stderr)
        return 0
    state = json.loads(STATE.read_text())
    with contextlib.suppress(ProcessLookupError):
        os.kill(state["pid"], 15)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and Path(f"/proc/{state['pid']}").exists():
        time.sleep(0.5)
    with contextlib.suppress(ProcessLookupError):
        os.kill(state["pid"], 9)
    for ns in state["namespaces"]:  # whatever a killed server left behind
        for pid in subprocess.run(
            ["ip", "netns", "pids", ns], capture_output=True, text=True
        ).stdout.split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), 9)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    STATE.unlink()
    print("down: namespaces, VM and overlays removed")
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m ftpstack.localvm")
    parser.add_argument("command", choices=["up", "down", "serve", "image"])
    parser.add_argument("--stack", default="dev")
    args = parser.parse_args(argv)
    if args.command == "up":
        return up(args.stack)
    if args.command == "down":
        return down()
    if args.command == "image":
        print(build_image())
        return 0
    serve(args.stack)
    return 0


if __name__ == "__main__":
    sys.exit(main())
