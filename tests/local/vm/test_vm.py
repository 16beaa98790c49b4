"""L4: the exact user-data booting Debian 12 under qemu behind the local Azure model, configured the
way Azure does it: the Run Commands through the guest agent (the VM agent's stand-in), never over
the public path.

One VM for the module, booted five times, in order: the first boot (the configure step starts as
soon as the guest agent answers, long before cloud-init's runcmd ends, and waits for it), a
reboot, a VM replacement (a new OS disk, the same data disk, the steps again), the restore
rehearsal (a new VM with a data disk made from a backup) and last the negative control of the
replacement. The first boot is from the stock image, cloud-init installing the packages; the new
OS disks after it come from the image with those packages already installed (a minute of
emulation less each; the first boot checks that it holds exactly what cloud-init installed).
Between them, on the running VM: FTP through the public address, the long download, a live change
(a new user, no reboot), proftpd killed -9 (and its negative control), and the commands
`make up-local` prints, run verbatim.

Times are scaled by 1/30 as at L3: the dev stack's keepalive (60 s idle, 30 s interval) reaches
the VM as 2 s / 1 s (the bundle's files scaled by the model, as every apply does) and the router
forgets a flow after 8 s instead of 240 s, so the ratios the dev stack declares are kept.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ftpstack import outputs, paths
from ftpstack.local.net.netns import Netns, NetnsError
from ftpstack.local.vm import uplocal
from ftpstack.local.vm.deployment import Deployed, VmDeployment
from ftpstack.local.vm.image import PACKAGE_QUERY, package_names
from ftpstack.offline.plan import Plan, Secret
from tests.support import OTHER_PASSWORD, OTHER_USER, PASSWORD, USER, needs_root, plan

pytestmark = pytest.mark.l4

SCALE = 1 / 30
# What the earlier tests leave for the later boots to find.
KEPT: dict[str, str] = {}
KEEP = "keep.bin"
# Any ed25519 key that is not the stack's (this one is RFC 8032's first test vector's public key).
KEY_OF_ANOTHER_SERVER = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINdamAGCsQq31Uv+08lkBzoO4XLz2qYjJa8CGmj3B1Ea"
)


def l4_plan(**overrides: Any) -> Plan:
    return plan(dataDiskSizeGb=4, tls="allowed", **overrides)


@pytest.fixture(scope="module")
def dep() -> Iterator[VmDeployment]:
    needs_root()
    with VmDeployment(l4_plan(), time_scale=SCALE, preinstalled="replacements") as deployment:
        yield deployment


@pytest.fixture(scope="module")
def first(dep: VmDeployment) -> Deployed:
    return dep.deploy()


def client(
    dep: VmDeployment, command: str, *args: str, user: str = USER, password: str = PASSWORD
) -> dict[str, Any]:
    return dep.az.client_cmd(command, *args, user=user, password=password)


def logs_in(dep: VmDeployment, user: str = USER, password: str = PASSWORD) -> bool:
    return bool(client(dep, "try-login", "--timeout", "5", user=user, password=password)["ok"])


def sha(dep: VmDeployment, name: str) -> str:
    """The file's sha256 as downloaded through the public address, or the client's error."""
    try:
        return str(client(dep, "download", "--name", name)["sha256"])
    except NetnsError as error:
        return str(error)


def kept_file(dep: VmDeployment) -> str:
    return sha(dep, KEEP)


def assert_healthy(dep: VmDeployment) -> None:
    """cloud-init done without errors, proftpd active and enabled, the declared keepalive, the
    FTP tree on the data disk."""
    status = dep.guest.wait_cloud_init()
    assert status.get("status") == "done" and status.get("errors") == [], status
    dep.guest.out("systemctl is-system-running --wait", timeout=300)  # every unit has started
    assert dep.guest.unit("proftpd") == ("active", "enabled")
    for key, value in dep.keepalive().items():
        assert int(dep.guest.sysctl(key)) == value, key
    source = dep.guest.out(f"findmnt -n -o SOURCE,FSTYPE {paths.FTP_ROOT}")
    assert re.fullmatch(r"/dev/vd\w+\s+ext4", source), f"the FTP tree is on the data disk: {source}"


# -- 1. the first boot ---------------------------------------------------------------------------


def test_first_boot_configures_while_cloud_init_runs(dep: VmDeployment, first: Deployed) -> None:
    assert first.configure.returncode == 0, first.configure
    assert first.waited_for_bootstrap, f"configure ran before cloud-init ended: {first.configure}"
    assert "proftpd started" in first.configure.stdout
    assert dep.keepalive()["net.ipv4.tcp_keepalive_time"] == round(60 * SCALE)
    assert_healthy(dep)
    KEPT["fingerprint"] = dep.guest.fingerprint()
    assert KEPT["fingerprint"].startswith("sha256 Fingerprint="), KEPT["fingerprint"]


def test_the_preinstalled_image_holds_what_cloud_init_installed(
    dep: VmDeployment, first: Deployed
) -> None:
    """The later OS disks' image (`preinstalled`) stands in for the stock image plus the
    user-data's package install only if it holds the same packages as this first boot."""
    installed = package_names(dep.guest.out(shlex.join(PACKAGE_QUERY)))
    assert "proftpd-core\n" in installed and "openssl\n" in installed
    declared = yaml.safe_load(dep.plan.user_data)["packages"]
    assert installed == dep.machine.image.preinstalled(declared, ".txt").read_text()


def test_ftp_through_the_public_address(dep: VmDeployment, first: Deployed) -> None:
    up = client(dep, "upload", "--name", KEEP, "--size", str(3 << 20))
    assert up["reply"].startswith("226"), up
    assert kept_file(dep) == up["sha256"]
    KEPT["sha"] = up["sha256"]
    announced = client(dep, "pasv")["pasv"][0]
    assert announced[0] == dep.az.public_ip, f"PASV names the public address: {announced}"


def host_keys(dep: VmDeployment) -> set[str]:
    """The SFTP host keys the public address presents (`type base64`), by ssh-keyscan."""
    found = subprocess.run(
        ["ip", "netns", "exec", dep.az.client.name, "ssh-keyscan", "-T", "20", dep.az.public_ip],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    return {" ".join(line.split()[1:3]) for line in found.stdout.splitlines() if line.strip()}


def test_sftp_through_the_public_address_with_the_stacks_host_keys(
    dep: VmDeployment, first: Deployed
) -> None:
    """Port 22 is proftpd's SFTP with the exported keys; the VM's own sshd listens on 2200."""
    exported = {line.split(" ", 1)[1] for line in dep.plan.outputs[outputs.SFTP_HOST_KEYS]}
    assert host_keys(dep) == exported and len(exported) == 3
    KEPT["host_keys"] = " | ".join(sorted(exported))
    listening = dep.guest.out("ss -Hltnp")
    assert re.search(r":2200\b.*sshd", listening) and re.search(r":22\b.*proftpd", listening), (
        listening
    )


# -- 2. the long download ------------------------------------------------------------------------


def test_long_download_ends_with_226(dep: VmDeployment, first: Deployed) -> None:
    """The control connection idles for 3.5 x the idle timeout; keepalive keeps the router's
    flow, so the 226 arrives (L3 holds the negative controls of this)."""
    big = client(dep, "upload", "--name", "big.bin", "--size", str(8 << 20))
    seconds = 3.5 * dep.az.idle_timeout
    out = client(
        dep,
        "slow-download",
        "--name",
        "big.bin",
        "--seconds",
        str(seconds),
        "--reply-wait",
        str(2 * dep.az.idle_timeout),
    )
    assert out["seconds"] > 3 * dep.az.idle_timeout, out
    assert out["sha256"] == big["sha256"] and str(out["reply"]).startswith("226"), out


# -- 3. a live change through the Run Command stand-in ------------------------------------------


def test_a_new_user_arrives_live_without_a_reboot(dep: VmDeployment, first: Deployed) -> None:
    boot, qemu = dep.guest.boot_id(), dep.machine.qemu
    assert not logs_in(dep, OTHER_USER, OTHER_PASSWORD), "the user is not there before"
    both = Secret(
        [{"name": USER, "password": PASSWORD}, {"name": OTHER_USER, "password": OTHER_PASSWORD}]
    )
    results = dep.apply(l4_plan(users=both))
    assert all(r.returncode == 0 for r in results), results
    assert logs_in(dep, OTHER_USER, OTHER_PASSWORD) and logs_in(dep)
    assert dep.guest.boot_id() == boot and dep.machine.qemu is qemu, "no reboot, no new VM"


# -- 4. the commands `make up-local` prints ------------------------------------------------------


def test_up_local_commands_run_verbatim(dep: VmDeployment, first: Deployed, tmp_path: Path) -> None:
    """What `up` prints for this VM, run as printed; without the VM's certificate curl refuses
    the server (so the copied certificate is what makes the printed FTPS command work)."""
    cert = tmp_path / "dev.crt"
    cert.write_text(dep.guest.served_certificate() + "\n")
    state: dict[str, Any] = {
        "stack": "dev",
        "public_ip": dep.az.public_ip,
        "client": dep.az.client.name,
        "users": [[USER, PASSWORD]],
        "cert": str(cert),
        "known_hosts": str(tmp_path / "dev.known_hosts"),
        "console": "console.log",
    }
    Path(state["known_hosts"]).write_text(uplocal.known_hosts(dep.plan, dep.az.public_ip))
    printed = [
        line.strip()
        for line in uplocal.instructions(state).splitlines()
        if line.startswith("  ip netns exec")
    ]
    commands, (sftp,) = printed[:3], printed[3:]
    assert all("--ssl-reqd" in c for c in commands), commands
    runs = [
        subprocess.run(["bash", "-c", c], capture_output=True, text=True, timeout=60)
        for c in commands
    ]
    assert [r.returncode for r in runs] == [0, 0, 0], [r.stderr for r in runs]
    assert runs[2].stdout == Path("/etc/os-release").read_text()
    unverified = commands[0].replace(f"--cacert {cert}", "")
    refused = subprocess.run(["bash", "-c", unverified], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 60, refused.stderr  # curl: the peer's certificate is not trusted
    # The sftp command as printed, its password typed (askpass), its commands from stdin.
    askpass = tmp_path / "askpass"
    askpass.write_text(f"#!/bin/sh\necho '{PASSWORD}'\n")
    askpass.chmod(0o700)
    typed = {"SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force", "PATH": "/usr/bin:/bin"}

    fetched = tmp_path / "fetched"

    def session(command: str) -> subprocess.CompletedProcess[str]:
        fetched.unlink(missing_ok=True)
        return subprocess.run(
            ["bash", "-c", command],
            input=f"get os-release {fetched}\n",
            env=typed,
            capture_output=True,
            text=True,
            timeout=90,
        )

    served = session(sftp)
    assert served.returncode == 0 and fetched.read_text() == Path("/etc/os-release").read_text()
    Path(state["known_hosts"]).write_text(f"{dep.az.public_ip} {KEY_OF_ANOTHER_SERVER}\n")
    impostor = session(sftp)
    assert impostor.returncode != 0 and "Host key verification failed" in impostor.stderr, impostor
    assert not fetched.exists()


def test_up_local_down_removes_what_a_killed_serve_left(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`down` removes a dead serve's namespace (ending the process inside by its PID) and its
    disks; a live process that is not a serve, though its PID is recorded, is left alone."""
    needs_root()
    monkeypatch.setattr(uplocal, "HOME", tmp_path)
    monkeypatch.setattr(uplocal, "STATE", tmp_path / "state.json")
    ns = Netns.create("ul")
    try:
        inside = ns.popen("sleep", "600")
        bystander = subprocess.Popen(["sleep", "600"])
        workdir = tmp_path / "vm"
        workdir.mkdir()
        uplocal.write_state(
            {"pid": bystander.pid, "stack": "dev", "namespaces": [ns.name], "workdir": str(workdir)}
        )
        assert uplocal.down() == 0
        assert inside.wait(timeout=10) == -9 and not workdir.exists()
        assert (
            ns.name
            not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        )
        assert bystander.poll() is None and not uplocal.STATE.exists()
        bystander.kill()
        bystander.wait()
    finally:
        ns.delete()


# -- 5. a killed master comes back ---------------------------------------------------------------


def serving_within(dep: VmDeployment, seconds: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if logs_in(dep):
            return time.monotonic() - started
        time.sleep(0.5)
    return None


def test_a_killed_master_serves_again_within_10_s(dep: VmDeployment, first: Deployed) -> None:
    pid = dep.guest.kill_master()
    back = serving_within(dep, 10)
    assert back is not None, dep.guest.out("systemctl status proftpd --no-pager -n 20")
    assert int(dep.guest.out("cat /run/proftpd.pid")) != pid


def test_negative_control_without_the_restart_line_it_stays_down(
    dep: VmDeployment, first: Deployed
) -> None:
    """The drop-in's Restart=on-failure is what brings it back: without it (systemd's default,
    no restart) the killed master is still down 15 s later."""
    dropin, saved = paths.PROFTPD_DROPIN, "/run/ftpstack-dropin.saved"
    original = dep.guest.out(f"cat {dropin}")
    assert "Restart=on-failure" in original
    assert dep.guest.sh(f"cp -p {dropin} {saved}").returncode == 0
    try:
        dep.guest.sh(f"sed -i '/^Restart=/d' {dropin} && systemctl daemon-reload")
        assert dep.guest.out("systemctl show -p Restart --value proftpd") == "no"
        dep.guest.kill_master()
        assert serving_within(dep, 15) is None, "came back without Restart="
        assert dep.guest.unit("proftpd")[0] != "active"
    finally:
        restart = "systemctl reset-failed proftpd; systemctl start proftpd"
        restore = dep.guest.sh(f"cp -p {saved} {dropin} && systemctl daemon-reload && {restart}")
    assert restore.returncode == 0, restore
    assert dep.guest.out(f"cat {dropin}") == original
    assert serving_within(dep, 20) is not None


# -- 6. reboot and replacement --------------------------------------------------------------------


def test_reboot_keeps_the_configuration_and_the_files(dep: VmDeployment, first: Deployed) -> None:
    before = dep.guest.boot_id()
    dep.reboot()
    assert dep.guest.boot_id() != before, "a real reboot"
    assert_healthy(dep)
    assert serving_within(dep, 60) is not None
    assert kept_file(dep) == KEPT["sha"]
    assert dep.guest.fingerprint() == KEPT["fingerprint"]


# -- 7. a backup, a deletion, a replacement and a restore ---------------------------------------


def test_a_backup_then_a_file_written_and_one_deleted(
    dep: VmDeployment, first: Deployed, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A recovery point of the data disk (Azure Disk Backup's, stood in for: the disk copied
    while the guest's file system is frozen, as its snapshots are crash-consistent), then a
    file written after it and a customer's file deleted."""
    kept = client(dep, "upload", "--name", "contract.pdf", "--size", str(2 << 20))
    assert kept["reply"].startswith("226"), kept
    KEPT["contract"] = kept["sha256"]
    KEPT["point"] = str(dep.recovery_point(tmp_path_factory.mktemp("backup") / "point.qcow2"))
    later = client(dep, "upload", "--name", "after-the-backup.txt", "--size", "1000")
    assert later["reply"].startswith("226"), later
    deleted = client(dep, "session", "--do", "dele:contract.pdf")["results"][0]
    assert deleted["reply"].startswith("250"), deleted
    assert "550" in sha(dep, "contract.pdf")
    # The deletion on disk before the power cut a replacement is (measured: within ext4's 5 s
    # commit interval a replacement brought the deleted file back).
    assert dep.guest.sh("sync").returncode == 0


def test_vm_replacement_keeps_the_data_disk(dep: VmDeployment, first: Deployed) -> None:
    """A new OS disk from the image, the same data disk, bootstrap + narrow + configure again:
    the files, the certificate and every user are still there — and a deleted file stays
    deleted (the restore's negative control: a replacement alone brings nothing back)."""
    before = dep.guest.boot_id()
    replaced = dep.replace()
    assert replaced.configure.returncode == 0 and dep.guest.boot_id() != before
    assert_healthy(dep)
    assert kept_file(dep) == KEPT["sha"], "the customers' files survive a replacement"
    assert dep.guest.fingerprint() == KEPT["fingerprint"], "the same TLS identity"
    assert " | ".join(sorted(host_keys(dep))) == KEPT["host_keys"], "the same SFTP host keys"
    assert logs_in(dep) and logs_in(dep, OTHER_USER, OTHER_PASSWORD)
    assert "550" in sha(dep, "contract.pdf"), "the file came back without a restore"


def test_files_deleted_after_a_backup_come_back_on_a_new_vm(
    dep: VmDeployment, first: Deployed
) -> None:
    """docs/operations.md's disk restore, its last step: a disk made from the recovery point
    (`dataDiskSourceId`) replaces the data disk, and the VM is replaced with it. What was
    written after the recovery point is not on it (the runbook says so)."""
    before = dep.guest.boot_id()
    restored = dep.restore(Path(KEPT["point"]))
    assert restored.configure.returncode == 0 and dep.guest.boot_id() != before
    assert sha(dep, "contract.pdf") == KEPT["contract"], "the deleted file is back"
    assert "550" in sha(dep, "after-the-backup.txt")
    assert kept_file(dep) == KEPT["sha"]
    assert dep.guest.fingerprint() == KEPT["fingerprint"], "the same TLS identity"


def test_negative_control_mkfs_without_the_checks_loses_the_files(
    dep: VmDeployment, first: Deployed
) -> None:
    """The disk script's checks (format only a disk with no ftpstack label and no filesystem)
    are what keep the files: with mkfs run unconditionally, a replacement loses them (the
    certificate, from the state, survives even that). Runs last: it destroys what the tests
    above kept."""
    assert kept_file(dep) == KEPT["sha"], "the file is there before the replacement"
    user_data = dep.plan.user_data
    guard = 'if ! blkid -L "$label" >/dev/null 2>&1; then'
    emptiness = re.compile(r"^[ \t]*if \[ -n \"\$\(blkid -p .*?^[ \t]*fi\n", re.S | re.M)
    assert user_data.count(guard) == 1 and len(emptiness.findall(user_data)) == 1
    unguarded = emptiness.sub("", user_data.replace(guard, "if true; then"))
    # mkfs asks before overwriting a filesystem and cloud-init's stdin is /dev/null: -F.
    unguarded = unguarded.replace("mkfs.ext4 -q", "mkfs.ext4 -F -q")
    assert unguarded.count("mkfs.ext4 -F -q") == 1
    dep.replace(user_data=unguarded)
    assert_healthy(dep)
    gone = kept_file(dep)
    assert gone != KEPT["sha"] and "550" in gone, f"the reformatted disk has no {KEEP}: {gone}"
    # The certificate is the stack's identity, kept in the state: not even a lost disk changes it.
    assert dep.guest.fingerprint() == KEPT["fingerprint"]
