"""L1: `make diff` — the offline plan at a git ref against the working tree, as a reviewer reads
it: what changes live ("in place, no downtime"), what replaces a VM, what opens to the Internet,
and a changed secret shown as changed without its value.

Each command test works in a fresh clone of this repository (the working tree committed as the
base), changes it the way a pull request would, and runs the real command. The clone's dev and
prod stacks are the tests' own (`tests/fixtures`), whatever the operator made of the examples.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ftpstack.offline.diff import StackDiff, compare
from ftpstack.offline.stackfile import FINGERPRINT_KEY_ENV
from tests.support import ONE_SERVER, ROOT, STACK_FILES, plan


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    target = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(target)], check=True)
    skip = shutil.ignore_patterns(".git", "venv", ".cache", "*_cache", "__pycache__", "bench")
    shutil.copytree(ROOT, target, ignore=skip, dirs_exist_ok=True)
    for path in STACK_FILES.values():
        shutil.copyfile(path, target / path.name)
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
    assert "the files on the data disk or the share are kept" in result.stdout


def test_opening_ftp_to_the_internet_is_loud(clone: Path) -> None:
    edit(clone / "Pulumi.prod.yaml", "    - 192.0.2.0/25", "    - 0.0.0.0/0")
    result = diff(clone, "--stack", "prod")
    assert result.returncode == 1
    assert "port 21 will be OPEN TO THE INTERNET" in result.stdout
    assert "REPLACED" not in result.stdout, "an NSG change updates in place"


def test_a_tag_change_is_a_quiet_change(clone: Path) -> None:
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


# -- the edges: what one `pulumi up` cannot do, and what it costs ----------------------------


def changed(stack: str, before: dict[str, Any], after: dict[str, Any]) -> StackDiff:
    """compare() of two plans as `make diff` makes them: secrets fingerprinted with one key."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(FINGERPRINT_KEY_ENV, "one key for both sides")
        return compare(stack, plan(stack, **before).to_json(), plan(stack, **after).to_json())


def test_widening_prods_range_is_one_step_and_short() -> None:
    """50000-50099 -> 50000-50199: instance 1's slice moves entirely (50050-50099 ->
    50100-50199), so it steps aside during the change while instance 0 keeps serving."""
    result = changed("prod", {}, {"passivePortEnd": 50199})
    assert result.refusals == []
    assert any("instance 1 keeps no port of its slice 50050-50099" in n for n in result.notes)
    assert result.path.writes <= 10, str(result.path)
    assert result.path.steps[-2:] == ("ftp-vm-configure", "ftp-vm-1-configure")


def test_a_range_no_server_keeps_a_port_of_is_refused_with_the_two_steps() -> None:
    result = changed("dev", {}, {"passivePortStart": 51000, "passivePortEnd": 51039})
    (refusal,) = result.refusals
    assert "from 50000-50039 to 51000-51039" in refusal and "e.g. 50000-51039" in refusal
    negative = changed("dev", {}, {"passivePortStart": 50020, "passivePortEnd": 50059})
    assert negative.refusals == [], "an overlapping move is one step"


def test_fewer_instances_are_refused_with_the_two_steps() -> None:
    result = changed("prod", {"instances": 3, "maxClients": 48}, {"maxClients": 48})
    (refusal,) = result.refusals
    assert "instances 3 -> 2" in refusal and "--target '<urn of ftp-vm-2>'" in refusal
    more = changed("prod", {"maxClients": 48}, {"instances": 3, "maxClients": 48})
    assert more.refusals == [], "adding an instance is one step"
    assert "ftp-vm-2" in {c.name for c in more.changes if c.kind == "add"}


def test_a_zone_move_of_a_data_disk_is_refused_unless_it_starts_from_a_snapshot() -> None:
    snapshot = (
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/snapshots/ftp-data-move"
    )
    one = {**ONE_SERVER, "zones": [1]}
    result = changed("prod", one, {**one, "zones": [2]})
    assert any("data disk ftp-data would be REPLACED" in r for r in result.refusals)
    assert any("dataDiskSourceId" in r for r in result.refusals)
    moved = changed("prod", one, {**one, "zones": [2], "dataDiskSourceId": snapshot})
    assert moved.refusals == []
    assert any("VM ftp-vm will be REPLACED" in w for w in moved.warnings)


def test_zones_that_change_the_shares_storage_sku_are_refused() -> None:
    result = changed("prod", {}, {"zones": []})
    assert any(
        "storage account ftpfiles would be REPLACED" in r and "sku" in r for r in result.refusals
    )


def test_a_resize_restarts_each_vm_and_says_how_to_roll() -> None:
    result = changed("prod", {}, {"vmSize": "Standard_D4s_v5"})
    assert (
        sum(
            "will RESTART (vmSize Standard_D2s_v5 => Standard_D4s_v5)" in w for w in result.warnings
        )
        == 2
    )
    assert any(
        "2 VMs will RESTART" in w and "--target '<urn of ftp-vm>'" in w for w in result.warnings
    )
    assert not any(c.replaced_by for c in result.changes if c.name.startswith("ftp-vm"))
    one = changed("dev", {}, {"vmSize": "Standard_B2ms"})
    assert not any("VMs will RESTART" in w for w in one.warnings), "one VM: nothing to roll"


def test_a_refused_change_exits_2_and_says_why_on_stderr(clone: Path) -> None:
    edit(
        clone / "Pulumi.dev.yaml",
        "ftpstack:passivePortStart: 50000",
        "ftpstack:passivePortStart: 51000",
    )
    edit(
        clone / "Pulumi.dev.yaml",
        "ftpstack:passivePortEnd: 50039",
        "ftpstack:passivePortEnd: 51039",
    )
    result = diff(clone, "--stack", "dev")
    assert result.returncode == 2, result.stdout
    assert result.stderr.startswith("error: dev: the passive range changes from 50000-50039")
    assert "Refused: not in one step" in result.stdout


def test_root_squash_on_an_existing_share_is_refused_with_the_two_steps() -> None:
    result = changed("prod", {"shareRootSquash": False}, {})
    assert any(
        "turns root squash on" in r and "shareRootSquash: false" in r for r in result.refusals
    )
    assert changed("prod", {}, {"shareRootSquash": False}).refusals == [], "off is one step"


def test_a_replaced_share_endpoint_says_to_restart_the_servers() -> None:
    result = changed("prod", {}, {"filesSubnetPrefix": "10.20.3.0/28"})
    assert any("private endpoint ftp-files-endpoint will be REPLACED" in w for w in result.warnings)
    assert any("az vm restart" in w for w in result.warnings)
