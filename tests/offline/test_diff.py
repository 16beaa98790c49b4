"""L1: `make diff` — the offline plan at a git ref against the working tree, as a reviewer reads
it: what changes live ("in place, no downtime"), what replaces a VM, what opens to the Internet,
and a changed secret shown as changed without its value.

Each command test works in a fresh clone of this repository (the working tree committed as the
base), changes it the way a pull request would, and runs the real command.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ftpstack.offline.diff import compare
from tests.support import ROOT


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    target = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(target)], check=True)
    skip = shutil.ignore_patterns(".git", "venv", ".cache", "*_cache", "__pycache__", "bench")
    shutil.copytree(ROOT, target, ignore=skip, dirs_exist_ok=True)
    git = ["git", "-C", str(target), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "base", "--allow-empty"], check=True)
    return target


def diff(repo: Path, *args: str, base: str = "HEAD") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ftpstack.offline.diff", "--base", base, *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


def test_no_change_exits_0(clone: Path) -> None:
    result = diff(clone, "--stack", "dev")
    assert result.returncode == 0, result.stderr
    assert "No changes." in result.stdout


def test_a_limit_change_is_live_and_shows_the_new_directive(clone: Path) -> None:
    edit(clone / "Pulumi.dev.yaml", "ftpstack:maxClients: 20", "ftpstack:maxClients: 19")
    result = diff(clone, "--stack", "dev")
    assert result.returncode == 1, result.stderr
    assert "ftp-vm-configure: the configuration changes in place, no downtime" in result.stdout
    assert "REPLACE" not in result.stdout
    assert (
        "-MaxClients            20" in result.stdout
        and "+MaxClients            19" in result.stdout
    )


def test_a_password_rotation_shows_as_a_changed_secret(clone: Path) -> None:
    stack = clone / "Pulumi.dev.yaml"
    old = next(line for line in stack.read_text().splitlines() if "secure:" in line)
    edit(stack, old, old.replace(old.split("secure: ")[1], "v1:bmV3Y2lwaGVydGV4dA==:cm90YXRlZA=="))
    result = diff(clone, "--stack", "dev")
    assert result.returncode == 1, result.stderr
    assert "no downtime" in result.stdout and "No changes." not in result.stdout
    changed = [line for line in result.stdout.splitlines() if line.startswith(("-demo:", "+demo:"))]
    assert len(changed) == 2 and changed[0] != changed[1], result.stdout
    assert all("[secret:" in line for line in changed) and "$6$" not in result.stdout


def test_a_program_change_shows_like_a_config_change(clone: Path) -> None:
    edit(
        clone / "ftpstack" / "render.py", "TimeoutIdle           1200", "TimeoutIdle           900"
    )
    result = diff(clone, "--stack", "dev")
    assert result.returncode == 1
    assert "+TimeoutIdle           900" in result.stdout and "REPLACE" not in result.stdout


def test_an_image_change_replaces_the_vm_and_says_what_survives(clone: Path) -> None:
    stack = clone / "Pulumi.dev.yaml"
    stack.write_text(stack.read_text() + "  ftpstack:imageVersion: 0.20261101.1\n")
    result = diff(clone, "--stack", "dev")
    assert result.returncode == 1
    assert (
        "WARNING: VM ftp-vm will be REPLACED (storageProfile.imageReference changed)"
        in result.stdout
    )
    assert "the data disk and the TLS identity on it are kept" in result.stdout


def test_opening_ftp_to_the_internet_is_loud(clone: Path) -> None:
    edit(clone / "Pulumi.prod.yaml", "    - 192.0.2.0/25", "    - 0.0.0.0/0")
    result = diff(clone, "--stack", "prod")
    assert result.returncode == 1
    assert "port 21 will be OPEN TO THE INTERNET" in result.stdout
    assert "REPLACED" not in result.stdout, "an NSG change updates in place"


def test_a_tag_change_is_a_change_without_warnings(clone: Path) -> None:
    edit(clone / "Pulumi.dev.yaml", "environment: dev", "environment: development")
    result = diff(clone, "--stack", "dev")
    assert result.returncode == 1
    assert "tags.environment" in result.stdout and "WARNING" not in result.stdout


def test_an_unknown_ref_exits_2_with_one_line(clone: Path) -> None:
    result = diff(clone, base="no-such-ref")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "no-such-ref" in result.stderr


def test_a_base_from_before_the_package_moved_still_plans(clone: Path) -> None:
    """`make diff BASE=<old ref>` runs the base's own planner, wherever it lived then."""
    deleted = subprocess.run(
        ["git", "-C", str(clone), "rev-list", "-1", "HEAD", "--", "ftpstack/plan.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert deleted, "this repository's history has the old planner"
    result = diff(clone, "--stack", "dev", base=f"{deleted}^")
    assert result.returncode == 1, result.stderr
    assert "ftp-vm-configure" in result.stdout


def test_a_base_from_before_make_plan_had_its_own_module_still_plans(clone: Path) -> None:
    """Before `ftpstack.offline.show`, `ftpstack.offline.plan` was the command."""
    added = subprocess.run(
        [
            "git",
            "-C",
            str(clone),
            "log",
            "--diff-filter=A",
            "--format=%H",
            "--",
            "ftpstack/offline/show.py",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert added, "this repository's history adds the command"
    result = diff(clone, "--stack", "dev", base=f"{added[-1]}^")
    assert result.returncode in (0, 1), result.stderr
    assert "No changes." in result.stdout or "ftp-vm" in result.stdout


# -- compare(), on constructed plans ---------------------------------------------------------------


def _plan(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resources": resources, "outputs": {}, "cloud_init": ""}


def _resource(type_: str, name: str, **inputs: Any) -> dict[str, Any]:
    return {"type": type_, "name": name, "inputs": inputs, "options": {"replaceOnChanges": []}}


def test_deleting_the_public_ip_warns_that_the_endpoint_changes() -> None:
    ip = _resource("azure-native:network:PublicIPAddress", "ftp-ip", sku={"name": "Standard"})
    assert any("endpoint changes" in w for w in compare("dev", _plan([ip]), _plan([])).warnings)


def test_a_public_ip_sku_change_is_a_replacement() -> None:
    before = _resource("azure-native:network:PublicIPAddress", "ftp-ip", sku={"name": "Basic"})
    after = _resource("azure-native:network:PublicIPAddress", "ftp-ip", sku={"name": "Standard"})
    result = compare("dev", _plan([before]), _plan([after]))
    assert result.changes[0].replaced_by == ["sku"]
    assert any("address changes for every client" in w for w in result.warnings)


def test_a_data_disk_deletion_or_shrink_warns_about_customer_files() -> None:
    disk = _resource("azure-native:compute:Disk", "ftp-data", diskSizeGB=64)
    smaller = _resource("azure-native:compute:Disk", "ftp-data", diskSizeGB=32)
    assert any("customers' files" in w for w in compare("d", _plan([disk]), _plan([])).warnings)
    assert any(
        "SHRINK from 64 to 32 GiB" in w
        for w in compare("d", _plan([disk]), _plan([smaller])).warnings
    )


def test_an_ignored_property_is_not_a_replacement() -> None:
    def vm(key: str) -> dict[str, Any]:
        r = _resource(
            "azure-native:compute:VirtualMachine",
            "ftp-vm",
            osProfile={"linuxConfiguration": {"ssh": {"publicKeys": [key]}}},
        )
        r["options"] = {
            "replaceOnChanges": ["osProfile"],
            "ignoreChanges": ["osProfile.linuxConfiguration.ssh.publicKeys"],
        }
        return r

    result = compare("d", _plan([vm("a")]), _plan([vm("b")]))
    assert result.changes[0].replaced_by == [] and not result.warnings


def test_replacing_every_instance_at_once_says_how_to_roll_them() -> None:
    def vms(image: str, count: int) -> dict[str, Any]:
        names = ["ftp-vm", *(f"ftp-vm-{i}" for i in range(1, count))]
        out = [_resource("azure-native:compute:VirtualMachine", n, image=image) for n in names]
        for r in out:
            r["options"] = {"replaceOnChanges": ["image"]}
        return _plan(out)

    two = compare("prod", vms("a", 2), vms("b", 2)).warnings
    assert any("2 VMs will be REPLACED" in w and "--target '<urn of ftp-vm>'" in w for w in two)
    one = compare("dev", vms("a", 1), vms("b", 1)).warnings
    assert one and not any("VMs will be REPLACED" in w for w in one), "one VM: nothing to roll"
