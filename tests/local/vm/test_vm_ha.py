"""L4 for high availability: the prod stack's two VMs booting their exact user-data under qemu
behind the local Azure model, mounting the Azure Files NFS share through it — nfs-ganesha at the
private endpoint's address, the name resolved by the VNet's resolver stand-in
(`ftpstack.local.net.files`) — and serving one tree through the load balancer.

Both VMs boot once, in parallel, for the module, from the image with the bootstrap's packages
already installed (two emulated installs less here). tests/local/vm/test_vm.py's first boot
installs dev's list from the stock image and checks that its preinstalled disk agrees; the disk
used here is made the same way, with nfs-common added. Then, in order: the mounts and proftpd's
ordering after them on both, a file uploaded through one instance downloaded through the other,
the commands `make up-local` prints for this stack, the negative control (the share's name
unresolvable while instance 0 boots: proftpd never serves the OS disk's tree there, the other
instance serves everything; nothing brings instance 0 back by itself) and last a reboot with the
share reachable, which mounts it again from fstab and serves the file again.

Times are scaled by 1/5, not L3's 1/30: the probe runs every second with a 0.8 s timeout, which
an emulated guest answers reliably (at 1/30, 0.2 s, it may not).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ftpstack import live, paths
from ftpstack.bootstrap import NFS_OPTIONS
from ftpstack.local.net import steps
from ftpstack.local.net.files import Share, dnsmasq_argv, ganesha_conf, mounted
from ftpstack.local.net.steps import DeployFailed
from ftpstack.local.net.topology import endpoint_address
from ftpstack.local.vm import uplocal
from ftpstack.local.vm.deployment import Deployed, VmDeployment
from ftpstack.local.vm.qga import Guest
from ftpstack.offline.declared import FILE_SHARE
from ftpstack.offline.plan import Plan
from tests.support import PASSWORD, USER, needs_root, plan

# Two emulated VMs take both cores: `make test` runs this module after the others.
pytestmark = pytest.mark.alone

SCALE = 1 / 5
# What the earlier tests leave for the later ones.
KEPT: dict[str, str] = {}
# The kernel's defaults for what /proc/mounts leaves out (nfs(5)).
NFS_DEFAULTS = {"acregmin": "3", "acregmax": "60", "acdirmin": "30", "acdirmax": "60"}


def ha_plan() -> Plan:
    """The prod stack as declared (two instances in zones 1 and 2, the NFS share, FTPS
    required, the load balancer), with the test user."""
    return plan("prod")


@pytest.fixture(scope="module")
def dep() -> Iterator[VmDeployment]:
    needs_root()
    with VmDeployment(ha_plan(), time_scale=SCALE, preinstalled="always") as deployment:
        yield deployment


@pytest.fixture(scope="module")
def first(dep: VmDeployment) -> Deployed:
    return dep.deploy()


def slices(p: Plan) -> list[range]:
    """Each instance's passive ports, as its declared narrow step names them."""
    out = []
    for step in steps.steps(p, "narrow"):
        first, last = steps.parameters(step)[live.PASSIVE_PARAMETER].split("-")
        out.append(range(int(first), int(last) + 1))
    return out


def instance_of(dep: VmDeployment, port: int) -> int:
    return next(i for i, ports in enumerate(slices(dep.plan)) if port in ports)


def client(dep: VmDeployment, command: str, *args: str) -> dict[str, Any]:
    return dep.az.client_cmd(command, "--tls", *args, user=USER, password=PASSWORD)


def on_instance(dep: VmDeployment, wanted: int, *actions: str) -> list[dict[str, Any]]:
    """`actions` in a session that landed on instance `wanted` (the LB decides: retry)."""
    for _ in range(40):
        todo = [a for x in ("pasv", *actions) for a in ("--do", x)]
        out = client(dep, "session", *todo)["results"]
        if instance_of(dep, out[0]["port"]) == wanted:
            return list(out[1:])
    raise AssertionError(f"no session landed on instance {wanted} in 40 tries")


def kernel_view(options: str) -> dict[str, str]:
    """What /proc/mounts shows for these fstab options: vers + minorversion as one version,
    actimeo as its four attribute-cache times; _netdev and nofail are for mount and systemd."""
    given = dict(o.partition("=")[::2] for o in options.split(","))
    shown: dict[str, str] = {}
    for key, value in given.items():
        if key == "minorversion":
            shown["vers"] = f"{given['vers']}.{value}"
        elif key == "actimeo":
            shown |= dict.fromkeys(NFS_DEFAULTS, value)
        elif key not in {"vers", "_netdev", "nofail"}:
            shown[key] = value
    return shown


def ftp_root_mount(guest: Guest) -> tuple[str, str, dict[str, str]]:
    """(source, type, options) of what is mounted at the FTP root, from /proc/mounts."""
    line = guest.out(f"awk '$2 == \"{paths.FTP_ROOT}\"' /proc/mounts")
    assert line, f"nothing is mounted at {paths.FTP_ROOT}"
    source, _, fstype, options = line.split()[:4]
    return source, fstype, dict(o.partition("=")[::2] for o in options.split(","))


def assert_mounted_as_declared(dep: VmDeployment, guest: Guest) -> None:
    share = Share.from_plan(dep.plan)
    assert share is not None
    source, fstype, options = ftp_root_mount(guest)
    assert (source, fstype) == (share.nfs.source, "nfs4")
    assert options["addr"] == endpoint_address(), "through the private endpoint"
    for key, value in kernel_view(NFS_OPTIONS).items():
        assert options.get(key, NFS_DEFAULTS.get(key)) == value, (key, options)
    fstab = guest.out(f"awk '$2 == \"{paths.FTP_ROOT}\"' /etc/fstab")
    hardened = ",".join(paths.FTP_TREE_MOUNT_OPTIONS)  # the agent's remount, kept in fstab
    assert fstab == f"{share.nfs.source} {paths.FTP_ROOT} nfs {NFS_OPTIONS},{hardened} 0 0"
    assert guest.out("systemctl show -p SourcePath --value srv-ftp.mount") == "/etc/fstab"


def show(guest: Guest, unit: str, *properties: str) -> dict[str, str]:
    text = guest.out(f"systemctl show {unit} -p {','.join(properties)}")
    return dict(line.split("=", 1) for line in text.splitlines())


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- 0. what the stand-in serves, without root -----------------------------------------------------


def with_share(p: Plan, **inputs: str) -> Plan:
    """The plan with its FileShare's inputs changed (the VMs' user-data unchanged)."""
    resources = [
        dataclasses.replace(r, raw_inputs={**r.raw_inputs, **inputs}) if r.type == FILE_SHARE else r
        for r in p.resources
    ]
    return dataclasses.replace(p, resources=resources)


def test_the_stand_in_serves_what_the_vms_mount_as_azure_files_does() -> None:
    share = Share.from_plan(ha_plan())
    assert share is not None and Share.from_plan(plan("dev")) is None
    assert share.nfs == mounted(ha_plan().user_data)
    assert (
        share.nfs.source == f"{share.account}.file.core.windows.net:/{share.account}/{share.name}"
    )
    conf = ganesha_conf(share, Path("/export"), Path("/recovery"))
    for line in (
        f"Pseudo = /{share.account}/{share.name};",
        "Squash = Root_Squash;",  # the share's declared rootSquash: RootSquash
        "Anonymous_Uid = 65534; Anonymous_Gid = 65534;",
        "Protocols = 4;",
        "Minor_Versions = 1;",
        "SecType = sys;",
        "Transports = TCP;",
        "Enable_UDP = false;",
    ):
        assert line in conf, line
    squashed = Share.from_plan(with_share(ha_plan(), rootSquash="RootSquash"))
    assert squashed is not None
    assert "Squash = Root_Squash;" in ganesha_conf(squashed, Path("/e"), Path("/r"))
    argv = dnsmasq_argv(share, Path("/run"))
    assert f"--cname={share.nfs.host},{share.account}.privatelink.file.core.windows.net,10" in argv
    assert f"--host-record={share.privatelink},{endpoint_address()}" in argv
    assert "--no-resolv" in argv and "--local=/#/" in argv, "it recurses nowhere"


def test_negative_control_a_share_the_vms_do_not_mount_is_refused() -> None:
    with pytest.raises(ValueError, match="nothing would answer that mount"):
        Share.from_plan(with_share(ha_plan(), shareName="other"))


# -- 1. both instances boot and mount the share --------------------------------------------------


@pytest.mark.l4
def test_both_instances_boot_from_the_user_data_and_mount_the_share(
    dep: VmDeployment, first: Deployed
) -> None:
    assert dep.count == 2 and len(first.results) == 4, first.results
    assert all(r.returncode == 0 for r in first.results.values())
    for index, guest in enumerate(dep.guests):
        assert guest.out("cat /var/lib/cloud/instance/user-data.txt") == dep.plan.user_data.strip()
        status = guest.wait_cloud_init()
        assert status.get("status") == "done" and status.get("errors") == [], (index, status)
        assert_mounted_as_declared(dep, guest)
        # proftpd starts only once the share is mounted, and only with it.
        ordering = show(guest, "proftpd", "RequiresMountsFor", "Requires", "After")
        assert ordering["RequiresMountsFor"] == paths.FTP_ROOT, ordering
        assert "srv-ftp.mount" in ordering["Requires"].split(), ordering
        assert "srv-ftp.mount" in ordering["After"].split(), ordering
        assert guest.unit("proftpd") == ("active", "enabled")
        assert dep.az.in_rotation(index)


# -- 2. one tree for both ------------------------------------------------------------------------


def uploaded_through(dep: VmDeployment, wanted: int, size: int) -> tuple[str, str]:
    """(name, sha256) of random data uploaded through the load balancer that instance `wanted`
    received (its own transfer log says so)."""
    for attempt in range(20):
        name = f"shared-{attempt}.bin"
        up = client(dep, "upload", "--name", name, "--size", str(size))
        assert up["reply"].startswith("226"), up
        xferlog = f"{paths.LOG_DIR}/xferlog"
        if dep.guests[wanted].sh(f"grep -qF '/{name} b ' {xferlog}").returncode == 0:
            return name, str(up["sha256"])
    raise AssertionError(f"no upload landed on instance {wanted} in 20 tries")


@pytest.mark.l4
def test_a_file_uploaded_through_one_instance_is_downloaded_intact_through_the_other(
    dep: VmDeployment, first: Deployed
) -> None:
    name, sha = uploaded_through(dep, 1, 3 << 20)
    on_share = dep.az.files.export / USER / name if dep.az.files else Path("/nonexistent")
    assert sha256_of(on_share) == sha, "the file is on the NFS server's export"
    (fetched,) = on_instance(dep, 0, f"retr:{name}")
    assert fetched["ok"] and fetched["sha256"] == sha, fetched
    KEPT.update(name=name, sha=sha)
    fingerprints = {guest.fingerprint() for guest in dep.guests}
    assert len(fingerprints) == 1, fingerprints
    (KEPT["fingerprint"],) = fingerprints
    assert KEPT["fingerprint"].startswith("sha256 Fingerprint="), fingerprints


@pytest.mark.l4
def test_up_local_commands_run_verbatim_for_two_instances(
    dep: VmDeployment, first: Deployed, tmp_path: Path
) -> None:
    """What `up` prints for this stack, run as printed: the upload and the download may land on
    different instances, and work because both serve the share."""
    cert = tmp_path / "prod.crt"
    cert.write_text(dep.guest.served_certificate() + "\n")
    state: dict[str, Any] = {
        "stack": "prod",
        "public_ip": dep.az.public_ip,
        "client": dep.az.client.name,
        "users": [[USER, PASSWORD]],
        "cert": str(cert),
        "consoles": [str(m.console) for m in dep.machines],
        "share": dep.az.files.describe() if dep.az.files else "",
    }
    text = uplocal.instructions(state)
    assert "2 Debian 12 VMs in qemu behind it" in text
    assert f"over the 2 VMs; they share their files: {state['share']}" in text
    assert "`make down-local` removes the VMs and everything else." in text
    assert "The VMs' serial consoles: " + ", ".join(state["consoles"]) in text
    commands = [line.strip() for line in text.splitlines() if line.startswith("  ip netns exec")]
    assert len(commands) == 3 and all("--ssl-reqd" in c for c in commands), commands
    runs = [
        subprocess.run(["bash", "-c", c], capture_output=True, text=True, timeout=60)
        for c in commands
    ]
    assert [r.returncode for r in runs] == [0, 0, 0], [r.stderr for r in runs]
    assert runs[2].stdout == Path("/etc/os-release").read_text()


# -- 3. the share unreachable at boot: the negative control ---------------------------------------


def wait_for(guest: Guest, command: str, expected: str, timeout: float) -> str:
    """Until `command` prints `expected` in the guest; what it printed last."""
    deadline, out = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        out = guest.out(command)
        if out == expected:
            return out
        time.sleep(2)
    return out


@pytest.mark.l4
def test_a_vm_whose_share_comes_back_rejoins_by_itself_and_without_the_timer_it_stays_out(
    dep: VmDeployment, first: Deployed
) -> None:
    """Instance 0 reboots while the VNet's resolver is gone: the fstab mount gives up, proftpd's
    RequiresMountsFor keeps it from serving the OS disk's /srv/ftp, the probe takes the
    instance out, and instance 1 (its mount resolved once, long ago) serves every login and
    the file. Negative control first: with the configuration's rejoin timer stopped, nothing
    retries the mount once the name resolves again, and a configuration run refuses the
    instance. Then the timer (as the configuration left it): the mount is retried, proftpd
    starts, the probe takes the instance back — no reboot, no `pulumi up`."""
    share = Share.from_plan(dep.plan)
    assert dep.az.files is not None and share is not None
    guest, mounted = dep.guest, "systemctl show -p ActiveState --value srv-ftp.mount"
    timer = Path(paths.REJOIN_TIMER).name
    assert guest.unit(timer) == ("active", "enabled"), "the configuration enabled it"
    guest.out(f"systemctl disable --now {timer}")
    dep.az.files.resolver(False)
    try:
        dep.reboot(0)
        assert wait_for(guest, mounted, "failed", timeout=300) == "failed", "the mount gave up"
        assert guest.sh(f"mountpoint -q {paths.FTP_ROOT}").returncode != 0
        assert KEPT["name"] not in guest.out(f"ls -A {paths.FTP_ROOT}"), "the OS disk's tree"
        assert show(guest, "proftpd", "ActiveState")["ActiveState"] == "inactive"
        assert "Dependency failed" in guest.out("journalctl -b -u proftpd --no-pager")
        dep.az.wait_healthy(0, up=False)
        served = client(dep, "sessions", "--count", "12")
        assert served["failures"] == [] and len(served["ports"]) == 12, served
        assert {instance_of(dep, p) for p in served["ports"]} == {1}, "no login on instance 0"
        assert client(dep, "download", "--name", KEPT["name"])["sha256"] == KEPT["sha"]
        dep.az.files.resolver(True)
        resolved = guest.out(f"getent hosts {share.nfs.host}").split()
        assert resolved[:2] == [endpoint_address(), share.privatelink], resolved
        time.sleep(2 * paths.REJOIN_SECONDS)  # two of the timer's periods: nothing retries
        assert not dep.az.in_rotation(0) and guest.unit("proftpd")[0] != "active"
        configure = steps.steps(dep.plan, "configure")[0]
        with pytest.raises(DeployFailed, match="is not mounted"):
            dep.run_step(configure, 0)
        boot = guest.boot_id()
        guest.out(f"systemctl enable --now {timer}")
        dep.az.wait_healthy(0, up=True, timeout=4 * paths.REJOIN_SECONDS + 30)
        assert guest.boot_id() == boot, "no reboot"
        assert guest.sh(f"mountpoint -q {paths.FTP_ROOT}").returncode == 0
        said = guest.out("journalctl -b -u ftpstack-rejoin --no-pager")
        assert f"the storage at {paths.FTP_ROOT} is back: proftpd started" in said, said
        (fetched,) = on_instance(dep, 0, f"retr:{KEPT['name']}")
        assert fetched["ok"] and fetched["sha256"] == KEPT["sha"], fetched
    finally:
        dep.az.files.resolver(True)
        guest.sh(f"systemctl enable --now {timer}")


# -- 4. a reboot with the share reachable --------------------------------------------------------


@pytest.mark.l4
def test_a_reboot_mounts_the_share_from_fstab_and_serves_the_file_again(
    dep: VmDeployment, first: Deployed
) -> None:
    """cloud-init's runcmd ran on the first boot only: after a reboot the mount is fstab's, and
    proftpd (ordered after it) serves the same file and the same TLS identity."""
    before = dep.guest.boot_id()
    dep.reboot(0)
    assert dep.guest.boot_id() != before
    dep.guest.out("systemctl is-system-running --wait", timeout=300)
    assert_mounted_as_declared(dep, dep.guest)
    assert dep.guest.unit("proftpd") == ("active", "enabled")
    dep.az.wait_healthy(0, up=True, timeout=120)
    (fetched,) = on_instance(dep, 0, f"retr:{KEPT['name']}")
    assert fetched["ok"] and fetched["sha256"] == KEPT["sha"], fetched
    assert dep.guest.fingerprint() == KEPT["fingerprint"]


@pytest.mark.l4
def test_the_stand_ins_end_with_the_deployment() -> None:
    """ganesha, dnsmasq and their namespaces go with the deployment (by PID, with the
    namespaces), as `make down-local` relies on."""
    needs_root()
    with VmDeployment(ha_plan(), time_scale=SCALE) as deployment:
        files = deployment.az.files
        assert files is not None and files.ganesha is not None and files.dnsmasq is not None
        pids = [files.ganesha.pid, files.dnsmasq.pid]
        names = [ns.name for ns in deployment.az.namespaces]
        assert re.search(r"-pe$", names[-2]) and re.search(r"-dns$", names[-1]), names
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(name in listed for name in names)
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)
