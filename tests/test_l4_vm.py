"""L4: the exact user-data booting a Debian 12 VM (qemu) behind the local Azure model.

One VM for the whole module, booted four times: first boot (cloud-init installs and configures
everything, formats and mounts the data disk), a reboot (everything persists), a VM replacement
(a new OS disk from the image, the same data disk: the customers' files survive and nothing is
reformatted), and last the negative control of that replacement: the same user-data with
cloud-init's `partition: none` instead of `auto` reformats the disk and the files are gone.

Keepalive at L4: the guest's kernel and proftpd use the declared values as they are, so this plan
declares keepalive 2 s idle / 1 s interval and the router's 240 s idle timeout is scaled by 1/30
to 8 s: the ratio of keepalive to idle timeout is the one the dev stack declares (60+30 : 240).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator

import pytest

from ftpstack.localazure import LocalAzure
from ftpstack.localvm import LocalVm, Report, running_vm
from ftpstack.plan import Plan, Secret, plan_stack
from tests.conftest import needs_root
from tests.test_l3_local_azure import PASSWORD, USER, client_python, slow_download, upload_big

pytestmark = pytest.mark.l4

KEEPALIVE_IDLE = 2
# What the first boot's tests leave for the later boots to find.
KEPT: dict[str, str] = {}


@pytest.fixture(scope="module")
def plan() -> Plan:
    return plan_stack(
        "dev",
        overrides={
            "users": Secret([{"name": USER, "password": PASSWORD}]),
            "keepaliveIdleSeconds": KEEPALIVE_IDLE,
            "keepaliveIntervalSeconds": 1,
            "dataDiskSizeGb": 4,
        },
    )


@pytest.fixture(scope="module")
def vm(plan: Plan) -> Iterator[tuple[LocalAzure, LocalVm]]:
    needs_root()
    with running_vm(plan, data_disk=True, time_scale=1 / 30) as booted:
        yield booted


@pytest.fixture(scope="module")
def first_boot(vm: tuple[LocalAzure, LocalVm]) -> Report:
    return vm[1].wait_report()


def assert_healthy(report: Report, keepalive: int) -> None:
    assert report.status == "done", str(report)
    errors = json.loads(report.errors_json)
    assert errors.get("errors") == [], str(report)
    assert report.proftpd_active == "active" and report.proftpd_enabled == "enabled", str(report)
    assert report.keepalive_time == keepalive, report
    assert re.match(r"/dev/vd\w+ ext4", report.ftp_root), "the FTP root is the data disk"


def test_cloud_init_installs_configures_and_tunes_the_kernel(first_boot: Report) -> None:
    assert_healthy(first_boot, KEEPALIVE_IDLE)


def test_ftp_through_the_public_address(vm: tuple[LocalAzure, LocalVm], first_boot: Report) -> None:
    az, _ = vm
    out = client_python(
        az,
        f"""
        import io, os
        from ftpstack.ftpcheck import connect, download, upload
        data = os.urandom(3 * 1024 * 1024)
        ftp = connect({az.public_ip!r}, {USER!r}, {PASSWORD!r}, timeout=60)
        print("PASV", ftp.sendcmd("PASV"))
        print("UP", upload(ftp, "keep.bin", data))
        back, reply = download(ftp, "keep.bin")
        print("DOWN", reply, back == data)
        print("SHA", __import__("hashlib").sha256(data).hexdigest())
        """,
    )
    assert "UP 226" in out and "DOWN 226" in out and "True" in out, out
    KEPT["sha"] = re.search(r"SHA (\w+)", out).group(1)  # type: ignore[union-attr]
    assert f"({az.public_ip.replace('.', ',')}," in out, "PASV names the public address"


def test_long_transfer_completes_against_the_vm(
    vm: tuple[LocalAzure, LocalVm], first_boot: Report
) -> None:
    az, _ = vm
    out = slow_download(az, upload_big(az))
    assert "REPLY 226" in out, out


def kept_file(az: LocalAzure) -> str:
    sha = KEPT["sha"]
    out = client_python(
        az,
        f"""
        import hashlib
        from ftpstack.ftpcheck import connect, download
        ftp = connect({az.public_ip!r}, {USER!r}, {PASSWORD!r}, timeout=60)
        back, reply = download(ftp, "keep.bin")
        print("SAME", hashlib.sha256(back).hexdigest() == {sha!r}, reply)
        """,
    )
    return out


def test_reboot_keeps_sysctl_proftpd_and_files(
    vm: tuple[LocalAzure, LocalVm], first_boot: Report
) -> None:
    az, machine = vm
    machine.stop()
    machine.start()
    again = machine.wait_report()
    assert again.boot_id != first_boot.boot_id, "a real reboot"
    assert_healthy(again, KEEPALIVE_IDLE)
    assert "SAME True 226" in kept_file(az), str(again)


def test_vm_replacement_keeps_the_data_disk_without_reformatting(
    vm: tuple[LocalAzure, LocalVm], first_boot: Report
) -> None:
    az, machine = vm
    machine.replace_os_disk()
    machine.start()
    replaced = machine.wait_report()
    assert_healthy(replaced, KEEPALIVE_IDLE)
    out = kept_file(az)
    assert "SAME True 226" in out, f"the customers' files must survive: {out}\n{replaced}"


def test_negative_control_partition_none_reformats_the_data_disk(
    vm: tuple[LocalAzure, LocalVm], first_boot: Report
) -> None:
    """Without `partition: auto` in fs_setup, cloud-init runs mkfs on every new instance.

    Runs last: it destroys the files the tests above kept."""
    az, machine = vm
    assert "SAME True 226" in kept_file(az), "the file is there before the replacement"
    auto = "partition: auto"
    assert machine.plan.user_data.count(auto) == 1
    machine.replace_os_disk()
    machine.plan = dataclasses.replace(
        machine.plan, user_data=machine.plan.user_data.replace(auto, "partition: none")
    )
    machine.start()
    replaced = machine.wait_report()
    assert_healthy(replaced, KEEPALIVE_IDLE)
    out = kept_file(az)
    assert "SAME" not in out and "550" in out, f"the reformatted disk has no keep.bin: {out}"
