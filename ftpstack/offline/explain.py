"""What each changed resource means, in one plain line for a reviewer: what it does and what it
costs the people the server serves (in place, restarts, replaced) and the owner (per month).

The loud lines (a VM replaced, the endpoint changing, files at risk, refusals) stay with
`diff` and `edges`; these say, for every change, the ordinary rest. Lines that would say the
same thing of several resources are one line naming them all.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ftpstack import live
from ftpstack.offline import costs, explain_ops, text, tree
from ftpstack.offline import declared as d
from ftpstack.offline.edges import VM_SIZE, Change

IN_PLACE = "in place, no downtime"
CONFIGURED = (
    "the configuration changes in place, no downtime (applied live, proftpd reloaded only if its "
    "configuration changed)"
)
NARROW_SUFFIX = "-narrow"
CONFIGURE_SUFFIX = "-configure"


class Sides:
    """A change with its resource as declared before and after (either may be empty)."""

    def __init__(self, change: Change, old: d.Declared, new: d.Declared) -> None:
        self.change = change
        self.old, self.new = old, new
        self.before = _find(old, change.type, change.name)
        self.after = _find(new, change.type, change.name)

    @property
    def inputs(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return self.before.get("inputs", {}), self.after.get("inputs", {})

    def paths(self) -> list[str]:
        return [p for p, _, _ in self.change.properties]

    def after_narrowing(self) -> str:
        """ ", after every server narrowed" when this write waits for every narrowing step."""
        steps = {r["name"] for r in self.new.of(d.RUN_COMMAND) if r["name"].endswith(NARROW_SUFFIX)}
        waits = set(self.after.get("dependencies", []))
        return ", after every server narrowed" if steps and steps <= waits else ""


def _find(view: d.Declared, type_: str, name: str) -> dict[str, Any]:
    return next((r for r in view.of(type_) if r["name"] == name), {})


def generic(s: Sides) -> str:
    kind = tree.short_type(s.change.type)
    if s.change.kind == "add":
        return f"{kind} {s.change.name}: new"
    if s.change.kind == "remove":
        return f"{kind} {s.change.name}: deleted"
    if s.change.replaced_by:
        return f"{kind} {s.change.name}: replaced ({', '.join(s.change.replaced_by)} changed)"
    return f"{kind} {s.change.name}: {_updated(s)}"


def _updated(s: Sides) -> str:
    """What an in-place update changes, by its top-level inputs ("tags", "securityRules")."""
    tops = list(dict.fromkeys(p.split("[")[0].split(".")[0] or p for p in s.paths()))
    if tops == ["tags"]:
        return f"tags change, {IN_PLACE}"
    return f"{text.fit(tops, 60)} updated in place"


def security_rule(s: Sides) -> str:
    old, new = s.inputs
    if not old or not new:
        rule = d.SecurityRule.from_inputs(new or old)
        what = "new" if new else "removed"
        return (
            f"NSG rule {rule.name}: {what}, {rule.access.lower()}s port {rule.port_text} from "
            f"{text.fit(rule.sources, 50)}"
        )
    a, b = d.SecurityRule.from_inputs(old), d.SecurityRule.from_inputs(new)
    said = []
    if a.ports != b.ports:
        verb = "opens" if b.allows else "closes"
        said.append(f"{verb} {b.port_text} (was {a.port_text})")
    if a.sources != b.sources:
        said.append(f"from {text.fit(b.sources, 40)} (was {text.fit(a.sources, 40)})")
    if a.access != b.access or a.priority != b.priority:
        said.append(f"{b.access} at {b.priority} (was {a.access} at {a.priority})")
    said = said or [f"{text.fit(s.paths(), 50)} change"]
    return f"NSG rule {b.name}: {'; '.join(said)}, in place{s.after_narrowing()}"


def virtual_machine(s: Sides) -> str:
    name, change = s.change.name, s.change
    size = str((s.inputs[1].get("hardwareProfile") or {}).get("vmSize", ""))
    if change.kind == "add":
        zones = s.inputs[1].get("zones") or []
        hourly = costs.VM_HOURLY.get(size)
        price = f", ~${hourly * costs.HOURS:,.0f}/month" if hourly else ""
        return f"VM {name}: new ({size}{f', zone {zones[0]}' if zones else ''}{price})"
    if change.kind == "remove":
        return f"VM {name}: deleted"
    if change.replaced_by:
        return f"VM {name}: replaced ({', '.join(change.replaced_by)} changed): down for minutes"
    resized = [(a, b) for p, a, b in change.properties if p == VM_SIZE]
    if resized:
        return f"VM {name}: restarts (vmSize {resized[0][0]} → {resized[0][1]}): down for minutes"
    return f"VM {name}: {_updated(s)}"


def disk(s: Sides) -> str:
    old, new = (i.get("diskSizeGB") for i in s.inputs)
    name = s.change.name
    if s.change.kind == "add":
        return f"data disk {name}: new ({new} GiB)"
    if s.change.kind == "remove":
        return f"data disk {name}: DELETED, with the files on it"
    if s.change.replaced_by:
        return f"data disk {name}: REPLACED ({', '.join(s.change.replaced_by)} changed)"
    if isinstance(old, int) and isinstance(new, int) and old != new:
        verb = "grows" if new > old else "would shrink (Azure refuses)"
        return f"data disk {name}: {verb} {old} → {new} GiB, in place"
    return generic(s)


def file_share(s: Sides) -> str:
    old, new = s.inputs
    name = s.change.name
    if s.change.kind == "add":
        return f"share {name}: new ({new.get('shareQuota')} GiB)"
    said = []
    if old.get("shareQuota") != new.get("shareQuota"):
        said.append(f"{old.get('shareQuota')} → {new.get('shareQuota')} GiB")
    if old.get("rootSquash") != new.get("rootSquash"):
        said.append(f"root squash {old.get('rootSquash')} → {new.get('rootSquash')}")
    return f"share {name}: {', '.join(said)}, {IN_PLACE}" if said else generic(s)


def _passive(inputs: dict[str, Any]) -> tuple[int, int] | None:
    for p in inputs.get("parameters") or []:
        if p.get("name") == live.PASSIVE_PARAMETER:
            first, _, last = str(p.get("value", "")).partition("-")
            if first.isdigit() and last.isdigit():
                return int(first), int(last)
    return None


def run_command(s: Sides) -> str:
    name, change = s.change.name, s.change
    if change.kind != "change" or change.replaced_by:
        what = (
            "configures the new server"
            if name.endswith(CONFIGURE_SUFFIX)
            else "nothing to narrow on a new server"
            if name.endswith(NARROW_SUFFIX)
            else "runs once"
        )
        return f"{name}: new, {what}" if change.kind == "add" else generic(s)
    if name.endswith(CONFIGURE_SUFFIX) and "protectedParameters" in s.paths():
        return f"{name}: {CONFIGURED}"
    was, now = (_passive(i) for i in s.inputs)
    if not name.endswith(NARROW_SUFFIX) or was is None or now is None or was == now:
        return generic(s)
    vm, low, high = name.removesuffix(NARROW_SUFFIX), max(was[0], now[0]), min(was[1], now[1])
    if (low, high) == was:
        return f"{name}: {vm} keeps its ports {was[0]}-{was[1]} through the change, {IN_PLACE}"
    if low > high:
        return f"{name}: {vm} keeps none of its ports: it steps aside during the change"
    return (
        f"{name}: {vm} announces only {low}-{high} of {was[0]}-{was[1]} until the network "
        "changes, no downtime"
    )


def deployment(s: Sides) -> str:
    before = {n.name: n.pool for n in s.old.nat_rules()}
    after = {n.name: n.pool for n in s.new.nat_rules()}
    moved: dict[tuple[str, str], int] = {}
    added: dict[str, int] = {}
    for name, pool in after.items():
        if name not in before:
            added[pool] = added.get(pool, 0) + 1
        elif before[name] != pool:
            moved[before[name], pool] = moved.get((before[name], pool), 0) + 1
    said = [f"{n} move {a} → {b}" for (a, b), n in moved.items()]
    said += [f"{n} new → {pool}" for pool, n in added.items()]
    removed = len(set(before) - set(after))
    said += [f"{removed} removed"] if removed else []
    if not said:
        return generic(s)
    return (
        f"the load balancer's NAT rules ({s.change.name}): {', '.join(said)}; one write"
        f"{s.after_narrowing()}"
    )


def local_command(s: Sides) -> str:
    name, change = s.change.name, s.change
    if name.endswith(d.IDENTITY_SUFFIX) and (change.kind == "add" or change.replaced_by):
        return (
            f"the server's identity ({name}): made anew on the deploying machine (a new TLS "
            "key: clients that pinned the certificate must trust the new one)"
        )
    if name.endswith(d.SMOKE_CHECK_SUFFIX) and change.kind != "remove":
        return f"the post-deploy check ({name}): runs again after the change"
    return generic(s)


def operation(s: Sides) -> str:
    return explain_ops.line(s.change, s.before, s.after)


EXPLAIN: dict[str, Callable[[Sides], str]] = {
    **{type_: operation for type_ in d.OPERATIONS},
    d.SECURITY_RULE: security_rule,
    d.VM: virtual_machine,
    d.DISK: disk,
    d.FILE_SHARE: file_share,
    d.RUN_COMMAND: run_command,
    d.DEPLOYMENT: deployment,
    d.LOCAL_COMMAND: local_command,
}


def lines(changes: list[Change], old: d.Declared, new: d.Declared) -> list[str]:
    """A line per changed resource, in the order the new plan declares them (the deleted last);
    "a: X" and "b: X" are one line "a, b: X"."""
    order = {r["name"]: i for i, r in enumerate(new.resources)}
    said: dict[str, list[str]] = {}
    for change in sorted(changes, key=lambda c: order.get(c.name, len(order))):
        line = EXPLAIN.get(change.type, generic)(Sides(change, old, new))
        subject, _, rest = line.partition(": ")
        said.setdefault(rest, []).append(subject)
    return [
        f"{', '.join(sorted(subjects, key=natural))}: {rest}" for rest, subjects in said.items()
    ]


def natural(subject: str) -> tuple[list[int], str]:
    """By the numbers in the name, then the name: "ftp-vm" (instance 0) before "ftp-vm-1" and
    "ftp-vm-2" before "ftp-vm-10". The plan registers instances concurrently, so their declared
    order varies from run to run; the line they share must not."""
    return [int(n) for n in re.findall(r"\d+", subject)] or [0], subject


def monthly(old: d.Declared, new: d.Declared) -> str:
    """The monthly cost before and after, and which units make the difference."""
    (units_a, total_a, _), (units_b, total_b, _) = costs.summary(old), costs.summary(new)
    if round(total_a) == round(total_b):
        return f"Monthly cost: ~${total_b:,.0f} (unchanged)"
    count_a = {u.what: u.count for u in units_a}
    count_b = {u.what: u.count for u in units_b}
    free = {u.what for u in [*units_a, *units_b] if u.monthly == 0}
    moved = [
        f"{what} {count_a.get(what, 0)} → {count_b.get(what, 0)}"
        for what in dict.fromkeys([*count_a, *count_b])
        if count_a.get(what, 0) != count_b.get(what, 0) and what not in free
    ]
    delta = round(total_b) - round(total_a)
    return (
        f"Monthly cost: ~${total_a:,.0f} → ~${total_b:,.0f} ({'+' if delta > 0 else '-'}"
        f"${abs(delta):,.0f}{': ' + '; '.join(moved) if moved else ''})"
    )
