"""The offline diff for pull requests: the plan at a base git ref against the working tree.

    python -m ftpstack.diff --base origin/main [--stack dev]      (make diff BASE=<ref>)

Both sides are planned by their own code (the base ref is exported with `git archive` into a
temporary directory and planned there), so a change to the program shows up exactly like a change
to a stack file. The output is written for reviewers: what is added, removed and changed, with
the changed properties (secrets masked, but a changed secret still shows as changed), and loud
warnings for what costs users something: the VM being replaced, the public IP changing, the data
disk being replaced or deleted, a port opened to the Internet.

Exit code: 0 no changes, 1 changes, 2 errors. It complements `pulumi preview`, which knows the
real state and every provider rule; this needs no cloud account, so every pull request gets it.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import secrets
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftpstack.plan import FINGERPRINT_KEY_ENV, PROJECT_DIR

INTERNET = {"*", "0.0.0.0/0", "Internet", "Any"}
VM = "azure-native:compute:VirtualMachine"
PUBLIC_IP = "azure-native:network:PublicIPAddress"
NSG = "azure-native:network:NetworkSecurityGroup"
DISKS = {"azure-native:compute:Disk"}
# Properties Azure cannot change in place (the resource is replaced), beyond the program's own
# replaceOnChanges. A short list of the ones that matter here; `pulumi preview` knows them all.
FORCE_NEW = {
    PUBLIC_IP: ("location", "resourceGroupName", "sku", "publicIPAddressVersion", "zones"),
    VM: ("location", "resourceGroupName", "osProfile.adminUsername", "osProfile.computerName"),
    "azure-native:compute:Disk": ("location", "resourceGroupName", "creationData", "zones"),
}


class DiffError(Exception):
    """The diff cannot be made; str() is the one line for people."""


@dataclass
class Change:
    type: str
    name: str
    kind: str  # "add", "remove", "change"
    properties: list[tuple[str, Any, Any]] = field(default_factory=list)
    replaced_by: list[str] = field(default_factory=list)


@dataclass
class StackDiff:
    stack: str
    changes: list[Change]
    warnings: list[str]
    cloud_init: list[str]
    outputs: list[tuple[str, Any, Any]]

    @property
    def changed(self) -> bool:
        return bool(self.changes or self.outputs or self.cloud_init)


# -- planning one side -------------------------------------------------------------------------


def plan_json(project_dir: Path, stack: str, python: str, key: str) -> dict[str, Any] | None:
    """The --json plan of `stack` as the code in `project_dir` declares it; None: no stack file."""
    if not (project_dir / f"Pulumi.{stack}.yaml").is_file():
        return None
    if not (project_dir / "ftpstack" / "plan.py").is_file():
        raise DiffError(f"{project_dir} has no offline plan (ftpstack/plan.py) to compare with")
    result = subprocess.run(
        [python, "-m", "ftpstack.plan", "--json", "--stack", stack],
        cwd=project_dir,
        env={**os.environ, FINGERPRINT_KEY_ENV: key, "PYTHONPATH": str(project_dir)},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or [f"exit code {result.returncode}"]
        raise DiffError(f"planning {stack} in {project_dir.name}: {lines[-1]}")
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def export_ref(repo: Path, ref: str, into: Path) -> None:
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", "--format=tar", ref],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        raise DiffError(f"cannot read git ref {ref!r}: {archive.stderr.decode().strip()}")
    with tempfile.TemporaryFile() as tmp:
        tmp.write(archive.stdout)
        tmp.seek(0)
        with tarfile.open(fileobj=tmp) as tar:
            tar.extractall(into, filter="data")


def stacks_in(*dirs: Path) -> list[str]:
    names = set()
    for directory in dirs:
        names |= {p.name[len("Pulumi.") : -len(".yaml")] for p in directory.glob("Pulumi.*.yaml")}
    return sorted(names)


# -- comparing ---------------------------------------------------------------------------------


def _keyed(items: list[Any]) -> dict[str, Any] | None:
    """List elements by their "name", when every element has a distinct one (rules, probes)."""
    if not items or not all(isinstance(i, dict) and "name" in i for i in items):
        return None
    keyed = {str(i["name"]): i for i in items}
    return keyed if len(keyed) == len(items) else None


def property_changes(old: Any, new: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    if isinstance(old, dict) and isinstance(new, dict):
        changes = []
        for key in sorted(set(old) | set(new), key=str):
            sub = f"{path}.{key}" if path else str(key)
            changes += property_changes(old.get(key), new.get(key), sub)
        return changes
    if isinstance(old, list) and isinstance(new, list):
        old_keyed, new_keyed = _keyed(old), _keyed(new)
        if old_keyed is not None and new_keyed is not None:
            changes = []
            for name in sorted(set(old_keyed) | set(new_keyed)):
                sub = f"{path}[{name}]"
                changes += property_changes(old_keyed.get(name), new_keyed.get(name), sub)
            return changes
        if len(old) == len(new):
            changes = []
            for index, (a, b) in enumerate(zip(old, new, strict=True)):
                changes += property_changes(a, b, f"{path}[{index}]")
            return changes
    return [] if old == new else [(path, old, new)]


def _replacing(resource: dict[str, Any], paths: list[str]) -> list[str]:
    triggers = list(resource.get("options", {}).get("replaceOnChanges", []))
    triggers += FORCE_NEW.get(resource["type"], ())
    return sorted(
        {t for t in triggers for p in paths if p == t or p.startswith((f"{t}.", f"{t}["))}
    )


def _open_to_internet(nsg: dict[str, Any] | None) -> dict[str, str]:
    """Allowed inbound ports per rule name, for rules whose source is the whole Internet."""
    if not nsg:
        return {}
    opened = {}
    for rule in nsg.get("inputs", {}).get("securityRules", []):
        sources = rule.get("sourceAddressPrefixes") or [rule.get("sourceAddressPrefix")]
        if (
            rule.get("access") == "Allow"
            and rule.get("direction", "Inbound") == "Inbound"
            and INTERNET & set(sources)
        ):
            opened[rule["name"]] = str(rule.get("destinationPortRange"))
    return opened


def compare(stack: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> StackDiff:
    old_resources = {(r["type"], r["name"]): r for r in (old or {}).get("resources", [])}
    new_resources = {(r["type"], r["name"]): r for r in (new or {}).get("resources", [])}
    changes: list[Change] = []
    warnings: list[str] = []
    for key in sorted(set(old_resources) | set(new_resources)):
        before, after = old_resources.get(key), new_resources.get(key)
        type_, name = key
        if before is None:
            changes.append(Change(type_, name, "add"))
            continue
        if after is None:
            changes.append(Change(type_, name, "remove"))
            if type_ == PUBLIC_IP:
                warnings.append(
                    f"public IP {name} will be DELETED: the FTP endpoint changes for every client"
                )
            if type_ in DISKS:
                warnings.append(f"data disk {name} will be DELETED, and the customers' files too")
            if type_ == VM:
                warnings.append(f"VM {name} will be DELETED")
            continue
        props = property_changes(before.get("inputs", {}), after.get("inputs", {}))
        if not props:
            continue
        replaced_by = _replacing(after, [p for p, _, _ in props])
        changes.append(Change(type_, name, "change", props, replaced_by))
        if replaced_by and type_ == VM:
            reason = (
                "the cloud-init user-data changed"
                if any(r.endswith("customData") for r in replaced_by)
                else ", ".join(replaced_by) + " changed"
            )
            warnings.append(
                f"VM {name} will be REPLACED ({reason}): it is deleted and created anew, "
                "FTP is down meanwhile and anything on its OS disk is lost"
            )
        if replaced_by and type_ == PUBLIC_IP:
            warnings.append(
                f"public IP {name} will be REPLACED: the FTP endpoint address changes for "
                "every client"
            )
        if replaced_by and type_ in DISKS:
            warnings.append(
                f"data disk {name} will be REPLACED: the customers' files on it are lost"
            )
    old_nsgs = {r["name"]: r for r in (old or {}).get("resources", []) if r["type"] == NSG}
    for nsg in (r for r in (new or {}).get("resources", []) if r["type"] == NSG):
        before_open = _open_to_internet(old_nsgs.get(nsg["name"]))
        for rule, ports in _open_to_internet(nsg).items():
            if before_open.get(rule) != ports:
                warnings.append(
                    f"port {ports} will be OPEN TO THE INTERNET (NSG {nsg['name']}, rule {rule})"
                )
    old_out, new_out = (old or {}).get("outputs", {}), (new or {}).get("outputs", {})
    outputs = [
        (k, old_out.get(k), new_out.get(k))
        for k in sorted(set(old_out) | set(new_out))
        if old_out.get(k) != new_out.get(k)
    ]
    cloud_init = list(
        difflib.unified_diff(
            (old or {}).get("cloud_init", "").splitlines(),
            (new or {}).get("cloud_init", "").splitlines(),
            "base",
            "head",
            lineterm="",
            n=1,
        )
    )
    return StackDiff(stack, changes, warnings, cloud_init, outputs)


# -- presenting --------------------------------------------------------------------------------


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


def render(diff: StackDiff, base: str) -> str:
    out = [f"## ftpstack offline diff: stack `{diff.stack}` ({base} -> working tree)", ""]
    if not diff.changed:
        return "\n".join([*out, "No changes.", ""])
    if diff.warnings:
        out += ["**Warnings**", ""]
        out += [f"- WARNING: {w}" for w in diff.warnings]
        out.append("")
    symbols = {"add": "+", "remove": "-", "change": "~"}
    out += ["```diff"]
    for change in diff.changes:
        tail = f"  (REPLACE: {', '.join(change.replaced_by)})" if change.replaced_by else ""
        out.append(f"{symbols[change.kind]} {change.kind:<6} {change.type}  {change.name}{tail}")
        for path, before, after in change.properties:
            out.append(f"    {path}: {_short(before)} => {_short(after)}")
    for name, before, after in diff.outputs:
        out.append(f"~ output {name}: {_short(before)} => {_short(after)}")
    out += ["```", ""]
    if diff.cloud_init:
        out += ["cloud-init user-data (secrets masked):", "```diff", *diff.cloud_init[2:]]
        out += ["```", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make diff", description="Offline plan at a base git ref vs. the working tree."
    )
    parser.add_argument("--base", required=True, help="git ref to compare with, e.g. origin/main")
    parser.add_argument("--stack", help="one stack (default: every Pulumi.<stack>.yaml)")
    args = parser.parse_args(argv)
    key = secrets.token_hex(16)  # one key for both sides: equal secrets, equal fingerprints
    try:
        with tempfile.TemporaryDirectory(prefix="ftpstack-diff-") as tmp:
            base_dir = Path(tmp)
            export_ref(PROJECT_DIR, args.base, base_dir)
            stacks = [args.stack] if args.stack else stacks_in(base_dir, PROJECT_DIR)
            diffs = [
                compare(
                    stack,
                    plan_json(base_dir, stack, sys.executable, key),
                    plan_json(PROJECT_DIR, stack, sys.executable, key),
                )
                for stack in stacks
            ]
    except DiffError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for diff in diffs:
        print(render(diff, args.base))
    return 1 if any(d.changed for d in diffs) else 0


if __name__ == "__main__":
    sys.exit(main())
