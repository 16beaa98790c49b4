"""The benchmark's peers: vsftpd and Debian's stock proftpd, each serving from a VM stand-in
(`VmHost`) of its own model (`LocalAzure(plan, serve=False)`: the same router, public address,
NSG, DNAT and conntrack as this stack's proftpd, without the stack's own server).

- vsftpd: the same passive range, public address (`pasv_address`), user and password hash (its
  binary is taken from Debian's .deb, since vsftpd and proftpd-core conflict as packages);
- stock proftpd: Debian's own proftpd.conf, plus only the passive range, the masquerade address
  and an AuthUserFile with the same user line as the stack's users file.

Each peer's files are written into the VM's private directories (tmpfs) or bind-mounted there
inside the VM's own mount namespace: nothing of the machine's own configuration changes.
"""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

from ftpstack import paths
from ftpstack.local.net.azure import LocalAzure
from ftpstack.local.net.netns import NetnsError, end_process
from ftpstack.local.net.vmhost import VmHost
from ftpstack.offline.plan import PROJECT_DIR

VSFTPD_DEB_DIR = PROJECT_DIR / ".cache" / "vsftpd"
STAGE = "/run/ftpstack-bench"  # inside the VM (/run is its private tmpfs)
ONE_BYTE = "one.bin"  # what each login fetches
VSFTPD_PAM = "auth required pam_unix.so\naccount required pam_unix.so\n"


@dataclasses.dataclass
class Peer:
    """A server running in a VM stand-in; `close()` ends it by PID, then the VM."""

    vm: VmHost
    server: subprocess.Popen[str] | None = None

    def close(self) -> None:
        if self.server is not None:
            end_process(self.server, timeout=5)
            self.server = None
        self.vm.close()


def vsftpd_binary() -> Path:
    """vsftpd from Debian's package, unpacked once into the project's cache."""
    binary = VSFTPD_DEB_DIR / "root" / "usr" / "sbin" / "vsftpd"
    if binary.exists():
        return binary
    VSFTPD_DEB_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", "vsftpd"], cwd=VSFTPD_DEB_DIR, check=True)
    deb = sorted(VSFTPD_DEB_DIR.glob("vsftpd_*.deb"))[-1]
    subprocess.run(["dpkg", "-x", str(deb), str(VSFTPD_DEB_DIR / "root")], check=True)
    return binary


def _exec(vm: VmHost, *argv: str) -> None:
    result = vm.exec(*argv)
    if result.returncode != 0:
        raise NetnsError(f"{' '.join(argv)} in the VM: {result.stderr.strip()}")


def _home_with_one_byte(vm: VmHost, user: str) -> None:
    home, uid = f"{paths.FTP_ROOT}/{user}", str(paths.VIRTUAL_UID)
    _exec(vm, "install", "-d", "-o", uid, "-g", uid, "-m", "0755", home)
    vm.write(f"{home}/{ONE_BYTE}", "x")
    _exec(vm, "chown", f"{uid}:{uid}", f"{home}/{ONE_BYTE}")


def _vsftpd(vm: VmHost, az: LocalAzure, passive: range, user_line: str) -> list[str]:
    user, hashed = user_line.split(":")[:2]
    uid, home = paths.VIRTUAL_UID, f"{paths.FTP_ROOT}/{user}"
    # The machine's accounts (vsftpd runs its unprivileged parts as `nobody`) plus the test user;
    # the shadow file holds only the test user's hash.
    accounts = {
        "passwd": Path("/etc/passwd").read_text() + f"{user}:x:{uid}:{uid}::{home}:/bin/sh\n",
        "group": Path("/etc/group").read_text() + f"{paths.VIRTUAL_GROUP}:x:{uid}:\n",
        "shadow": f"{user}:{hashed}:20000:0:99999:7:::\n",
    }
    for name, content in accounts.items():
        vm.write(f"{STAGE}/{name}", content, "0640" if name == "shadow" else "0644")
        _exec(vm, "mount", "--bind", f"{STAGE}/{name}", f"/etc/{name}")
    vm.write(f"{STAGE}/pam.d/vsftpd", VSFTPD_PAM)
    _exec(vm, "mount", "--bind", f"{STAGE}/pam.d", "/etc/pam.d")
    _exec(vm, "install", "-d", "-m", "0755", "/run/vsftpd/empty")
    conf = [
        "listen=YES",
        "listen_ipv6=NO",
        "background=NO",
        "anonymous_enable=NO",
        "local_enable=YES",
        "write_enable=YES",
        "chroot_local_user=YES",
        "allow_writeable_chroot=YES",
        "pasv_enable=YES",
        f"pasv_min_port={passive[0]}",
        f"pasv_max_port={passive[-1]}",
        f"pasv_address={az.public_ip}",
        "pam_service_name=vsftpd",
        "secure_chroot_dir=/run/vsftpd/empty",
    ]
    vm.write(f"{STAGE}/vsftpd.conf", "\n".join(conf) + "\n")
    return [str(vsftpd_binary()), f"{STAGE}/vsftpd.conf"]


def _stock_proftpd(vm: VmHost, az: LocalAzure, passive: range, user_line: str) -> list[str]:
    conf = Path("/etc/proftpd/proftpd.conf").read_text()
    conf += (
        f"\nPassivePorts {passive[0]} {passive[-1]}\nMasqueradeAddress {az.public_ip}\n"
        f"AuthUserFile {paths.USERS_FILE}\nRequireValidShell off\n"
    )
    vm.write(paths.PROFTPD_CONF, conf)
    vm.write("/etc/proftpd/modules.conf", Path("/etc/proftpd/modules.conf").read_text())
    vm.write(paths.USERS_FILE, user_line, "0600")
    _exec(vm, "install", "-d", "/etc/proftpd/conf.d", "/run/proftpd")
    return ["proftpd", "--nodaemon", "--quiet", "--config", paths.PROFTPD_CONF]


SETUPS = {"vsftpd": _vsftpd, "stock_proftpd": _stock_proftpd}


def start_peer(name: str, az: LocalAzure, passive: range, user_line: str, log: Path) -> Peer:
    """Peer `name` serving on port 21 of `az`'s VM address; `user_line` is the user's line of
    the stack's users file (name:hash:...), so every peer checks the very same hash."""
    vm = VmHost(az.vm_netns(0))
    vm.start()
    peer = Peer(vm)
    try:
        _home_with_one_byte(vm, user_line.split(":")[0])
        argv = SETUPS[name](vm, az, passive, user_line)
        with log.open("w") as out:
            peer.server = vm.popen(*argv, stdout=out, stderr=subprocess.STDOUT)
        az.vm_netns(0).wait_listening(21, peer.server, log)
    except BaseException:
        peer.close()
        raise
    return peer
