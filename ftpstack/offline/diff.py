"""The offline diff for pull requests: the plan at a base git ref against the working tree.

    python -m ftpstack.offline.diff --base origin/main [--stack dev]      (make diff BASE=<ref>)

Both sides are planned by their own code (the base ref is exported with `git archive` into a
temporary directory and planned there, by whichever planner it has), so a change to the program
shows up exactly like a change to a stack file. The output is written for reviewers, to be read
at a glance: the monthly cost before and after, the critical path of the change, a plain line
for every changed resource saying what it does and costs in downtime (`explain`), then what is
added, removed and changed, property by property, where runs of alike changes are one line
(`runs`: 50 NAT rules that move, 100 added) and long values are shown around what differs
(secrets masked, but a changed secret shows as changed: both sides fingerprint with one key per
run), and a few changed lines of each live configuration file. Loud warnings say what costs
users something: a VM replaced, the public IP changing, the data disk replaced, shrunk or
deleted, a port opened to the Internet.

Exit code: 0 no changes, 1 changes, 2 errors, among them a change that cannot be made in one
`pulumi up` without losing files or breaking transfers (a zone move of a data disk, a storage
account Azure cannot convert, a passive range no server keeps a port of, fewer instances), which
it refuses with the steps that can. It complements `pulumi preview`, which knows the
real state; this needs no cloud account, so every pull request gets it.
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

from ftpstack import azure_rules as azure
from ftpstack.offline import declared as d
from ftpstack.offline import edges, explain, explain_ops, graph, runs, text, tree
from ftpstack.offline.edges import VM_SIZE, Change
from ftpstack.offline.mocks import ARM_PATHS, RESOURCE_GROUP_NAME
from ftpstack.offline.runs import Row, property_changes
from ftpstack.offline.stackfile import FINGERPRINT_KEY_ENV

PROJECT_DIR = Path(__file__).resolve().parents[2]
# Planner commands, newest first: a base ref from before a move still plans with its own.
PLANNERS = (
    ("ftpstack/offline/show.py", "ftpstack.offline.show"),
    ("ftpstack/offline/plan.py", "ftpstack.offline.plan"),
    ("ftpstack/plan.py", "ftpstack.plan"),
)
# Changed lines shown per file of the live configuration; a count says how many more there are.
LIVE_LINES = 6
# Inputs that name a resource in Azure's path: a change makes azure-native replace it.
NAME_INPUTS = {RESOURCE_GROUP_NAME, *(name for _, name in ARM_PATHS.values())}


class DiffError(Exception):
    """The diff cannot be made; str() is the one line for people."""


@dataclass
class StackDiff:
    stack: str
    changes: list[Change]
    warnings: list[str]
    notes: list[str]
    cloud_init: list[str]
    live: list[str]
    outputs: list[tuple[str, Any, Any]]
    refusals: list[str] = field(default_factory=list)  # what cannot be done in one step
    path: graph.Path = field(default_factory=lambda: graph.Path(()))
    cost: str = ""  # the monthly cost before and after
    rows: dict[str, list[Row]] = field(default_factory=dict)  # each change's, by name

    @property
    def changed(self) -> bool:
        return bool(self.changes or self.outputs or self.cloud_init or self.live)


# -- planning one side -----------------------------------------------------------------------------


def plan_json(project_dir: Path, stack: str, python: str, key: str) -> dict[str, Any] | None:
    """The --json plan of `stack` as the code in `project_dir` declares it; None: no stack file."""
    if not (project_dir / f"Pulumi.{stack}.yaml").is_file():
        return None
    module = next((m for path, m in PLANNERS if (project_dir / path).is_file()), None)
    if module is None:
        raise DiffError(f"{project_dir} has no offline planner to compare with")
    result = subprocess.run(
        [python, "-m", module, "--json", "--stack", stack],
        cwd=project_dir,
        env={**os.environ, FINGERPRINT_KEY_ENV: key, "PYTHONPATH": str(project_dir)},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode not in (0, 3) or not result.stdout.strip():  # 3: ARM findings, planned
        lines = result.stderr.strip().splitlines() or [f"exit code {result.returncode}"]
        raise DiffError(f"planning {stack} in {project_dir.name}: {lines[-1]}")
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def export_ref(repo: Path, ref: str, into: Path) -> None:
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", "--format=tar", ref], capture_output=True, check=False
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


# -- comparing -------------------------------------------------------------------------------------


def _replacing(resource: dict[str, Any], paths: list[str]) -> list[str]:
    options = resource.get("options", {})
    triggers = [
        *options.get("replaceOnChanges", []),
        *azure.PROVIDER_FORCE_NEW.get(resource["type"], ()),
    ]
    triggers += [n for n in NAME_INPUTS if n in resource.get("inputs", {})]
    ignored = options.get("ignoreChanges", [])
    hits = set()
    for p in paths:
        if any(p == i or p.startswith((f"{i}.", f"{i}[")) for i in ignored):
            continue
        hits |= {t for t in triggers if p == t or p.startswith((f"{t}.", f"{t}["))}
    return sorted(hits)


def _removal_warnings(type_: str, name: str) -> list[str]:
    if type_ == d.PUBLIC_IP:
        return [f"public IP {name} will be DELETED: the FTP endpoint changes for every client"]
    if type_ == d.DISK:
        return [f"data disk {name} will be DELETED, and the customers' files on it"]
    if type_ == d.VM:
        return [f"VM {name} will be DELETED"]
    return explain_ops.removal_warnings(type_, name)


def _change_warnings(change: Change, before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    out = []
    if change.replaced_by and change.type == d.VM:
        reason = (
            "the bootstrap (customData) changed"
            if any(r.endswith("customData") for r in change.replaced_by)
            else ", ".join(change.replaced_by) + " changed"
        )
        out.append(
            f"VM {change.name} will be REPLACED ({reason}): it is deleted and created "
            "anew; FTP on it is down meanwhile and its OS disk is lost (the files on the data "
            "disk or the share are kept)"
        )
    size = [(a, b) for p, a, b in change.properties if p == VM_SIZE]
    if change.type == d.VM and size and not change.replaced_by:
        out.append(
            f"VM {change.name} will RESTART (vmSize {size[0][0]} => {size[0][1]}): Azure resizes "
            "a running VM by restarting it; FTP on it is down for a few minutes"
        )
    if change.replaced_by and change.type == d.PUBLIC_IP:
        out.append(
            f"public IP {change.name} will be REPLACED: the FTP endpoint address changes for "
            "every client"
        )
    if change.replaced_by and change.type == d.DISK:
        out.append(f"data disk {change.name} will be REPLACED: the customers' files on it are lost")
    old_size, new_size = before["inputs"].get("diskSizeGB"), after["inputs"].get("diskSizeGB")
    if (
        change.type == d.DISK
        and isinstance(old_size, int)
        and isinstance(new_size, int)
        and new_size < old_size
    ):
        out.append(
            f"data disk {change.name} would SHRINK from {old_size} to {new_size} GiB, "
            "which Azure refuses"
        )
    return out


def compare_resources(old: d.Declared, new: d.Declared) -> tuple[list[Change], list[str]]:
    before = {(r["type"], r["name"]): r for r in old.resources}
    after = {(r["type"], r["name"]): r for r in new.resources}
    changes, warnings = [], []
    for key in sorted(set(before) | set(after)):
        type_, name = key
        if key not in before:
            changes.append(Change(type_, name, "add"))
        elif key not in after:
            changes.append(Change(type_, name, "remove"))
            warnings += _removal_warnings(type_, name)
        else:
            props = property_changes(before[key].get("inputs", {}), after[key].get("inputs", {}))
            if props:
                change = Change(
                    type_, name, "change", props, _replacing(after[key], [p for p, _, _ in props])
                )
                changes.append(change)
                warnings += _change_warnings(change, before[key], after[key])
    return changes, warnings


def _exposure_warnings(old: d.Declared, new: d.Declared) -> list[str]:
    was = {(r.name, r.port_text) for r in old.open_to_internet()}
    return [
        f"port {r.port_text} will be OPEN TO THE INTERNET (rule {r.name})"
        for r in new.open_to_internet()
        if (r.name, r.port_text) not in was
    ]


def _text_diff(old: str, new: str, label: str) -> list[str]:
    """The changed lines, at most LIVE_LINES of them (directives before comments), then how many
    more there are."""
    changed = [
        line
        for line in difflib.unified_diff(
            old.splitlines(), new.splitlines(), f"base {label}", f"head {label}", lineterm="", n=0
        )
        if line.startswith(("-", "+")) and not line.startswith(("---", "+++"))
    ]
    if len(changed) <= LIVE_LINES:
        return changed
    comment = [line[1:].lstrip().startswith("#") for line in changed]
    first = [i for i, c in enumerate(comment) if not c] + [i for i, c in enumerate(comment) if c]
    kept = sorted(first[:LIVE_LINES])
    return [changed[i] for i in kept] + [f"… {len(changed) - len(kept)} more changed lines"]


def _live_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Each instance's changed files; a file that changes alike on several instances once; an
    instance added or removed as one line."""
    before, after = old.get("live", []), new.get("live", [])
    same: dict[tuple[str, tuple[str, ...]], list[int]] = {}
    out = []
    whole = []
    for index in range(max(len(before), len(after))):
        if index >= len(before) or index >= len(after):
            files = after[index] if index < len(after) else before[index]
            what = "new" if index < len(after) else "removed"
            whole.append(
                f"instance {index}: {what}, {len(files)} files (make plan-full shows them)"
            )
            continue
        files_a = {f["path"]: f["content"] for f in before[index]}
        files_b = {f["path"]: f["content"] for f in after[index]}
        for path in sorted(set(files_a) | set(files_b)):
            lines = _text_diff(files_a.get(path, ""), files_b.get(path, ""), path)
            if lines:
                same.setdefault((path, tuple(lines)), []).append(index)
    for (path, changed), instances in same.items():
        which = "instances " + ", ".join(map(str, instances)) if len(instances) > 1 else ""
        out += [f"{which or f'instance {instances[0]}'} {path}:", *changed]
    return out + whole


def _rows(changes: list[Change], old: d.Declared, new: d.Declared) -> dict[str, list[Row]]:
    """Each changed resource's properties as people read them (runs of alike items grouped)."""
    shown = {}
    for change in changes:
        if change.kind == "change":
            before, after = (
                next(r for r in view.of(change.type) if r["name"] == change.name)
                for view in (old, new)
            )
            shown[change.name] = runs.rows(before.get("inputs", {}), after.get("inputs", {}))
    return shown


def compare(stack: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> StackDiff:
    a, b = d.Declared(old or {}), d.Declared(new or {})
    changes, warnings = compare_resources(a, b)
    warnings += edges.rolling_warnings(changes) + edges.endpoint_warnings(changes, b)
    warnings += _exposure_warnings(a, b)
    notes = explain.lines(changes, a, b) + edges.slice_notes(a, b)
    path = graph.change(
        old or {},
        new or {},
        {c.name for c in changes if c.kind != "remove"},
        {c.name for c in changes if c.replaced_by},
    )
    outputs = [
        (k, a.outputs.get(k), b.outputs.get(k))
        for k in sorted(set(a.outputs) | set(b.outputs))
        if a.outputs.get(k) != b.outputs.get(k)
    ]
    cloud_init = _text_diff(
        (old or {}).get("cloud_init", ""), (new or {}).get("cloud_init", ""), "cloud-init"
    )
    return StackDiff(
        stack,
        changes,
        warnings,
        notes,
        cloud_init,
        _live_diff(old or {}, new or {}),
        outputs,
        edges.refusals(changes, a, b) if old and new else [],
        path,
        explain.monthly(a, b),
        _rows(changes, a, b),
    )


# -- presenting ------------------------------------------------------------------------------------


def _changes(diff: StackDiff) -> list[str]:
    """The ```diff block: each resource added, removed or changed, with its rows; resources
    whose rows read the same are one entry naming them all."""
    symbols = {"add": "+", "remove": "-", "change": "~"}
    alike: dict[tuple[Any, ...], tuple[list[str], list[Change]]] = {}
    for change in diff.changes:
        shown = [runs.line(row) for row in diff.rows.get(change.name, [])]
        key = (change.kind, tuple(change.replaced_by), *shown) if shown else (id(change),)
        alike.setdefault(key, (shown, []))[1].append(change)
    out = []
    for shown, members in alike.values():
        first = members[0]
        tail = f"  (REPLACE: {', '.join(first.replaced_by)})" if first.replaced_by else ""
        head = f"{symbols[first.kind]} {first.kind:<6} "
        if len(members) == 1:
            out.append(f"{head}{tree.short_type(first.type)}  {first.name}{tail}")
        else:
            names = ", ".join(f"{tree.short_type(c.type)} {c.name}" for c in members)
            out += text.wrap(f"{names} ({len(members)}){tail}", head, " " * len(head))
        out += [f"    {line}" for line in shown]
    for name, old, new in diff.outputs:
        before, after = text.values(old, new)
        out.append(f"~ output {name}: {before} => {after}")
    return out


def render(diff: StackDiff, base: str) -> str:
    out = [f"## ftpstack offline diff: stack `{diff.stack}` ({base} -> working tree)", ""]
    if not diff.changed:
        return "\n".join([*out, "No changes.", ""])
    if diff.refusals:
        out += ["**Refused: not in one step**", "", *[f"- ERROR: {r}" for r in diff.refusals], ""]
    if diff.warnings:
        out += ["**Warnings**", "", *[f"- WARNING: {w}" for w in diff.warnings], ""]
    out += [f"- {diff.cost}", f"- Critical path of this change: {diff.path}"]
    out += [*[f"- {n}" for n in diff.notes], ""]
    out += ["```diff", *_changes(diff), "```", ""]
    if diff.live:
        out += [
            "Live configuration (secrets masked; [secret:…] fingerprints change with the secret):",
            "```diff",
            *diff.live,
            "```",
            "",
        ]
    if diff.cloud_init:
        out += ["Bootstrap (cloud-init user-data):", "```diff", *diff.cloud_init, "```", ""]
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
    refused = [f"{diff.stack}: {r}" for diff in diffs for r in diff.refusals]
    for line in refused:
        print(f"error: {line}", file=sys.stderr)
    if refused:
        return 2
    return 1 if any(d.changed for d in diffs) else 0


if __name__ == "__main__":
    sys.exit(main())
