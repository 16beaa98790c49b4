"""L4: the restore rehearsal — files deleted after a backup of the data disk come back on a new
VM made with a disk from that backup (the last step of docs/operations.md's disk restore:
`dataDiskSourceId` replaces the data disk and the VM). The backup is stood in for by a copy of
the data disk while the guest's file system is frozen (Azure Disk Backup's incremental snapshots
are crash-consistent); Azure's own steps (recovery points, the restore job) are not modelled.
Negative control: a plain replacement with the same disk does not bring the files back.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ftpstack.local.net.netns import NetnsError
from ftpstack.local.vm.deployment import VmDeployment
from tests.support import PASSWORD, USER, needs_root, plan

pytestmark = pytest.mark.l4

SCALE = 1 / 30


@pytest.fixture(scope="module")
def dep() -> Iterator[VmDeployment]:
    needs_root()
    stack = plan(dataDiskSizeGb=4, tls="allowed", backups="on")
    with VmDeployment(stack, time_scale=SCALE) as deployment:
        deployment.deploy()
        yield deployment


def client(dep: VmDeployment, command: str, *args: str) -> dict[str, Any]:
    return dep.az.client_cmd(command, *args, user=USER, password=PASSWORD)


def sha(dep: VmDeployment, name: str) -> str:
    """The file's sha256 as downloaded through the public address, or the client's error."""
    try:
        return str(client(dep, "download", "--name", name)["sha256"])
    except NetnsError as error:
        return str(error)


def test_files_deleted_after_a_backup_come_back_on_a_new_vm(
    dep: VmDeployment, tmp_path: Path
) -> None:
    kept = client(dep, "upload", "--name", "contract.pdf", "--size", str(2 << 20))
    assert kept["reply"].startswith("226"), kept
    point = dep.recovery_point(tmp_path / "recovery-point.qcow2")
    later = client(dep, "upload", "--name", "after-the-backup.txt", "--size", "1000")
    assert later["reply"].startswith("226"), later
    deleted = client(dep, "session", "--do", "dele:contract.pdf")["results"][0]
    assert deleted["reply"].startswith("250"), deleted
    assert "550" in sha(dep, "contract.pdf")
    # The deletion on disk before the power cut a replacement is (measured: within ext4's 5 s
    # commit interval a replacement brought the deleted file back).
    assert dep.guest.sh("sync").returncode == 0
    # Negative control: a new VM with the same disk does not bring the file back.
    dep.replace()
    assert "550" in sha(dep, "contract.pdf"), "the file came back without a restore"
    assert sha(dep, "after-the-backup.txt") != kept["sha256"]
    before = dep.guest.boot_id()
    restored = dep.restore(point)
    assert restored.configure.returncode == 0 and dep.guest.boot_id() != before
    assert sha(dep, "contract.pdf") == kept["sha256"], "the deleted file is back"
    # What was written after the recovery point is not on it (the runbook says so).
    assert "550" in sha(dep, "after-the-backup.txt")
