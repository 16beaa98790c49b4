"""L1: `make diff` — the offline plan at a git ref against the working tree, as a reviewer reads
it: what changes live ("in place, no downtime"), what replaces a VM, what opens to the Internet,
and a changed secret shown as changed without its value.

Each command test works in a fresh clone of this repository (the working tree committed as the
base), changes it the way a pull request would, and runs the real command. The clone's dev and
prod stacks are the tests' own (`tests/fixtures`), whatever the operator made of the examples.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ftpstack.offline import costs, explain, runs, text
from ftpstack.offline.diff import LIVE_LINES, StackDiff, compare, render
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
        "-  MaxClients            20" in result.stdout
        and "+  MaxClients            19" in result.stdout
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
    assert "+  TimeoutIdle           900" in result.stdout and "REPLACE" not in result.stdout


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


# -- as a reviewer reads it: grouped, short, what each change costs ---------------------------


def shown(result: StackDiff) -> list[str]:
    return render(result, "base").splitlines()


def test_widening_prods_range_reads_in_40_lines_with_each_run_of_nat_rules_one_line() -> None:
    result = changed("prod", {}, {"passivePortEnd": 50199})
    lines = shown(result)
    text_ = "\n".join(lines)
    assert len(lines) <= 40, text_
    for expected in (
        '    NAT rules passive-50050 … passive-50099 (50): backendAddressPool.id "…/instance-1" '
        '=> "…/instance-0"',
        '    + NAT rules passive-50100 … passive-50199 (100): backendAddressPool.id "…/instance-1"',
        "- NSG rule allow-ftp-passive: opens 50000-50199 (was 50000-50099), in place, after every "
        "server narrowed",
        "- the load balancer's NAT rules (ftp-lb-nat): 50 move instance-1 → instance-0, 100 new → "
        "instance-1; one write, after every server narrowed",
        "- ftp-vm-configure, ftp-vm-1-configure: the configuration changes in place, no downtime",
        "- ftp-vm-1-narrow: ftp-vm-1 keeps none of its ports: it steps aside during the change",
        "- Critical path of this change: 4 write(s)",
    ):
        assert expected in text_, expected
    assert re.search(r"^- Monthly cost: ~\$\d+ \(unchanged\)$", text_, re.M), text_
    assert "inboundNatRules[passive-" not in text_, "no rule on a line of its own"
    # Negative control: the load balancer's deployment changes 150 properties, one per rule.
    nat = next(c for c in result.changes if c.name == "ftp-lb-nat")
    assert len(nat.properties) == 150


def test_a_third_instance_reads_well_and_says_what_it_costs() -> None:
    result = changed("prod", {}, {"instances": 3, "maxClients": 48})
    lines = shown(result)
    text_ = "\n".join(lines)
    assert result.refusals == [] and len(lines) <= 60, text_
    cost = re.search(
        r"Monthly cost: ~\$(\d+) → ~\$(\d+) \(\+\$(\d+): VM Standard_D2s_v5 2 → 3", text_
    )
    assert cost, text_
    before, after, delta = map(int, cost.groups())
    assert after - before == delta and 80 <= delta <= 90, "one D2s_v5 VM and its OS disk"
    for expected in (
        "- VM ftp-vm-2: new (Standard_D2s_v5",
        "17 move instance-0 → instance-1, 33 move instance-1 → instance-2, 1 removed",
        '(17): backendAddressPool.id "…/instance-0" => "…/instance-1"',
        '(33): backendAddressPool.id "…/instance-1" => "…/instance-2"',
        '    - NAT rules passive-50099: backendAddressPool.id "…/instance-1"',
        "- ftp-vm-narrow: ftp-vm announces only 50000-50032 of 50000-50049 until the network",
        "- ftp-vm-2-configure: new, configures the new server",
    ):
        assert expected in text_, expected
    assert re.search(r"^instance 2: new, \d+ files \(make plan-full shows them\)$", text_, re.M)
    for change in result.changes:
        assert any(change.name in note for note in result.notes), change.name


def test_the_live_configuration_shows_a_few_changed_lines_per_file_directives_first() -> None:
    three = "\n".join(shown(changed("prod", {}, {"instances": 3, "maxClients": 48})))
    conf = three.split("instance 0 /etc/proftpd/proftpd.conf:\n")[1].split("\ninstance ")[0]
    changes = conf.splitlines()
    assert len(changes) == LIVE_LINES + 1, conf
    assert re.fullmatch(r"… \d+ more changed lines", changes[-1]), conf
    assert (
        "+PassivePorts          50000 50032" in changes and "+MaxInstances          192" in conf
    )  # 2 servers x (16 + 8 x 10)
    assert not any(line[1:].startswith("#") for line in changes[:-1]), "directives first"
    # Negative control: a file with fewer changed lines shows them all, with no count.
    wide = "\n".join(shown(changed("prod", {}, {"passivePortEnd": 50199})))
    assert "+PassivePorts          50100 50199" in wide and "more changed lines" not in wide


def test_a_file_that_changes_alike_on_every_instance_is_shown_once() -> None:
    check = "\n".join(shown(changed("prod", {}, {"postDeployCheck": True})))
    assert check.count("/etc/proftpd/ftpd.passwd:") == 1, check
    assert "instances 0, 1 /etc/proftpd/ftpd.passwd:\n+ftpstack-check:[secret:" in check
    # Negative control: files that differ per instance are shown per instance.
    wide = "\n".join(shown(changed("prod", {}, {"passivePortEnd": 50199})))
    assert "instance 0 /etc/proftpd/proftpd.conf:" in wide
    assert "instance 1 /etc/proftpd/proftpd.conf:" in wide


def test_the_cost_line_says_before_after_and_the_difference() -> None:
    result = changed("prod", {}, {"vmSize": "Standard_D4s_v5"})
    hourly = costs.VM_HOURLY["Standard_D4s_v5"] - costs.VM_HOURLY["Standard_D2s_v5"]
    delta = round(2 * hourly * costs.HOURS)
    assert re.fullmatch(
        rf"Monthly cost: ~\$(\d+) → ~\$(\d+) \(\+\${delta}: VM Standard_D2s_v5 2 → 0; "
        r"VM Standard_D4s_v5 0 → 2\)",
        result.cost,
    ), result.cost
    assert (
        "VM ftp-vm, VM ftp-vm-1: restarts (vmSize Standard_D2s_v5 → Standard_D4s_v5): down for "
        "minutes" in result.notes
    )
    assert any("will RESTART" in w for w in result.warnings), "the loud line stays"
    assert changed("prod", {}, {"maxClients": 40}).cost.endswith("(unchanged)")


def test_resources_that_change_alike_are_one_entry_and_every_one_is_explained() -> None:
    result = changed("dev", {}, {"tags": {"environment": "development"}})
    text_ = "\n".join(shown(result))
    assert text_.count('tags.environment: "dev" => "development"') == 1, text_
    assert "VirtualMachine ftp-vm" in text_ and "ResourceGroup ftp-rg" in text_
    (said,) = [n for n in result.notes if "tags change" in n]
    assert said.endswith(": tags change, in place, no downtime")
    assert all(c.name in said for c in result.changes), said
    # Negative control: rows that differ keep their resources apart.
    wide = "\n".join(shown(changed("prod", {}, {"passivePortEnd": 50199})))
    assert "~ change VirtualMachineRunCommandByVirtualMachine  ftp-vm-narrow" in wide
    assert "~ change VirtualMachineRunCommandByVirtualMachine  ftp-vm-1-narrow" in wide


def test_a_type_nobody_explains_still_gets_its_plain_line() -> None:
    nic = "azure-native:network:NetworkInterface"
    asg = "azure-native:network:ApplicationSecurityGroup"
    before = _plan([_resource(nic, "ftp-nic", tags={"a": "1"}, enableIPForwarding=False)])
    after = _plan(
        [
            _resource(nic, "ftp-nic", tags={"a": "2"}, enableIPForwarding=True),
            _resource(asg, "ftp-servers"),
        ]
    )
    notes = compare("dev", before, after).notes
    assert "NetworkInterface ftp-nic: enableIPForwarding, tags updated in place" in notes
    assert "ApplicationSecurityGroup ftp-servers: new" in notes


# -- runs and elision ----------------------------------------------------------------------------


def _rules(pools: list[str | None]) -> list[dict[str, Any]]:
    return [
        {"name": f"rule-{i}", "port": 100 + i, "pool": pool, "protocol": "Tcp"}
        for i, pool in enumerate(pools)
        if pool is not None
    ]


def test_a_run_is_alike_changes_of_items_next_to_each_other() -> None:
    before = _rules(["a", "a", "a", "a", "a", "a", "b", None, None])
    after = _rules(["b", "b", "a", "b", "b", "c", "b", "c", "c"])
    found = runs.rows({"rules": before}, {"rules": after})
    shown_ = [runs.line(r) for r in found]
    assert shown_ == [
        'rules rule-0, rule-1 (2): pool "a" => "b"',
        'rules rule-3, rule-4 (2): pool "a" => "b"',
        'rules[rule-5].pool: "a" => "c"',
        '+ rules rule-7, rule-8 (2): pool "c"',
    ], shown_
    # Negative control: with nothing unchanged between them, one run.
    joined = runs.rows({"rules": _rules(["a"] * 4)}, {"rules": _rules(["b"] * 4)})
    assert [runs.line(r) for r in joined] == ['rules rule-0 … rule-3 (4): pool "a" => "b"']


ARM_ID = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/ftp-rg/providers/"
    "Microsoft.Network/loadBalancers/ftp-lb/backendAddressPools/instance-"
)


def test_long_values_are_shown_around_what_differs_and_never_read_the_same() -> None:
    pairs: list[tuple[Any, Any]] = [
        (ARM_ID + "1", ARM_ID + "0"),
        ("x" * 90 + "a" + "y" * 90, "x" * 90 + "b" + "y" * 90),
        ("x" * 200, "x" * 200 + "tail"),
        (None, {"name": "passive-50100", "properties": {"id": ARM_ID + "1"}}),
        ([{"name": "ftp-vm", "ports": "50000-50049"}] * 3, [{"name": "ftp-vm", "ports": "5"}] * 3),
    ]
    rng = random.Random(23)
    for _ in range(500):
        common = "".join(rng.choices("ab/", k=rng.randrange(0, 120)))
        end = "".join(rng.choices("ab/", k=rng.randrange(0, 120)))
        a, b = (common + "".join(rng.choices("ab/", k=rng.randrange(0, 5))) + end for _ in "ab")
        if a != b:
            pairs.append((a, b))
    for old, new in pairs:
        before, after = text.values(old, new)
        assert before != after, (old, new)
        assert len(before) <= 60 and len(after) <= 60, (before, after)
    assert text.values(ARM_ID + "1", ARM_ID + "0") == ('"…/instance-1"', '"…/instance-0"')
    # Negative control: cutting both at a fixed length (what the diff did) reads the same.
    cut = [json.dumps(v)[:77] + "..." for v in (ARM_ID + "1", ARM_ID + "0")]
    assert cut[0] == cut[1]


# -- operations ----------------------------------------------------------------------------------


def test_turning_the_operations_on_is_told_plainly_with_its_cost() -> None:
    result = changed("prod", {"logs": "off", "alerts": "off", "backups": "off"}, {})
    notes = "\n".join(result.notes)
    for said in (
        "ftp-logs: new, the logs' Log Analytics workspace (kept 30 days); no downtime for FTP",
        "ftp-alerts: new, who the alerts mail (ops@example.com)",
        "ftp-alert-none-healthy: new, alert: No FTP server passes the load balancer's health probe",
        "ftp-share-snapshots: new, the daily snapshots of the NFS share",
    ):
        assert said in notes, notes
    (agents,) = [n for n in result.notes if "the Azure Monitor Agent on a VM" in n]
    assert {"ftp-vm-monitor-agent", "ftp-vm-1-monitor-agent"} <= set(
        agents.split(": ")[0].split(", ")
    )
    assert "Log Analytics (est. 1 GB)" in result.cost and "→" in result.cost, result.cost
    # The VMs gain an identity in place: no replacement.
    assert not any(c.replaced_by for c in result.changes if c.name.startswith("ftp-vm"))


def test_losing_the_backups_or_the_logs_is_a_loud_warning() -> None:
    result = changed(
        "prod",
        ONE_SERVER | {"exposure": "public-ip"},
        {"backups": "off", **ONE_SERVER, "exposure": "public-ip", "logs": "off"},
    )
    warned = "\n".join(result.warnings)
    assert "ftp-backup will be DELETED, and the disk's backups" in warned, warned
    assert "workspace ftp-logs will be DELETED, and the logs in it" in warned, warned
    # Negative control: the same stack unchanged warns of neither.
    same = changed(
        "prod", ONE_SERVER | {"exposure": "public-ip"}, ONE_SERVER | {"exposure": "public-ip"}
    )
    assert not any("DELETED" in w for w in same.warnings)


def test_resources_sharing_a_line_are_named_in_their_natural_order() -> None:
    """The plan registers instances concurrently (their declared order varies between runs; a CI
    run under load printed "VM ftp-vm-1, VM ftp-vm"): the shared line sorts them."""
    names = ["VM ftp-vm-10", "VM ftp-vm-2", "VM ftp-vm", "VM ftp-vm-1"]
    assert sorted(names, key=explain.natural) == [
        "VM ftp-vm",
        "VM ftp-vm-1",
        "VM ftp-vm-2",
        "VM ftp-vm-10",
    ]
    steps = ["ftp-vm-1-configure", "ftp-vm-configure"]  # instance 0 has no number
    assert sorted(steps, key=explain.natural) == ["ftp-vm-configure", "ftp-vm-1-configure"]
