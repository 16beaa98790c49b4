"""The edges of a change that `make diff` judges: what one `pulumi up` cannot do without losing
files or breaking transfers (refused, with the steps that can), what restarts servers together
(rolled), and which instance steps aside while its passive slice moves.

The passive slices come from the outputs contract (`instances[].passivePorts`): a change keeps a
server serving when its new slice overlaps its old one (the narrowing step announces the overlap
until the network changed); a server that keeps no port steps aside while the others serve; when
no server keeps a port, or servers go away, one `pulumi up` cannot do it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ftpstack import outputs as contract
from ftpstack.offline import declared as d


@dataclass
class Change:
    type: str
    name: str
    kind: str  # "add", "remove", "change"
    properties: list[tuple[str, Any, Any]] = field(default_factory=list)
    replaced_by: list[str] = field(default_factory=list)


VM_SIZE = "hardwareProfile.vmSize"


def endpoint_warnings(changes: list[Change], new: d.Declared) -> list[str]:
    """The share's private endpoint replaced (itself, or with the subnet it sits in): a new
    address under the same name."""
    replaced = {c.name: c.replaced_by for c in changes if c.replaced_by}
    out = []
    for endpoint in new.of(d.PRIVATE_ENDPOINT):
        subnet_id = str((endpoint["inputs"].get("subnet") or {}).get("id", ""))
        subnet = next((s["name"] for s in new.of(d.SUBNET) if s.get("id") == subnet_id), "")
        why = replaced.get(endpoint["name"]) or replaced.get(subnet)
        if why:
            out.append(
                f"the share's private endpoint {endpoint['name']} will be REPLACED "
                f"({', '.join(why)} changed): its address changes, and a server's mounted share "
                "waits for the old one until it mounts again: afterwards restart the VMs one at "
                "a time (`az vm restart -g <resourceGroupName> -n <vmName>`, the next once the "
                "first serves again)"
            )
    return out


def rolling_warnings(changes: list[Change]) -> list[str]:
    """Several VMs replaced or restarted by one `pulumi up` are down together: say how to roll."""
    out = []
    replaced = [c.name for c in changes if c.type == d.VM and c.replaced_by]
    if len(replaced) >= 2:
        out.append(
            f"{len(replaced)} VMs will be REPLACED in this one `pulumi up` "
            f"({', '.join(replaced)}), so no instance serves meanwhile; to keep serving, replace "
            f"one at a time: `pulumi up --target '<urn of {replaced[0]}>' --target-dependents`, "
            "then the next (README: Replacing VMs one at a time)"
        )
    resized = [
        c.name
        for c in changes
        if c.type == d.VM and not c.replaced_by and any(p == VM_SIZE for p, _, _ in c.properties)
    ]
    if len(resized) >= 2:
        out.append(
            f"{len(resized)} VMs will RESTART in this one `pulumi up` ({', '.join(resized)}), "
            "so no instance may serve for minutes; to keep serving, resize one at a time: "
            f"`pulumi up --target '<urn of {resized[0]}>'`, then the next "
            "(`pulumi stack --show-urns` lists them)"
        )
    return out


def _slices(view: d.Declared) -> list[tuple[int, int]]:
    """Each instance's passive slice, from the outputs contract."""
    found = []
    for entry in view.outputs.get(contract.INSTANCES) or []:
        first, _, last = str(entry.get("passivePorts", "")).partition("-")
        if first.isdigit() and last.isdigit():
            found.append((int(first), int(last)))
    return found


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return max(a[0], b[0]) <= min(a[1], b[1])


def _text(ports: tuple[int, int]) -> str:
    return f"{ports[0]}-{ports[1]}"


def slice_notes(old: d.Declared, new: d.Declared) -> list[str]:
    """An instance that keeps no port of its slice steps aside while the others serve."""
    before, after = _slices(old), _slices(new)
    both = range(min(len(before), len(after)))
    if not any(_overlap(before[i], after[i]) for i in both):
        return []  # nobody keeps a port: refused (refusals)
    return [
        f"instance {i} keeps no port of its slice {_text(before[i])} (now {_text(after[i])}): "
        "during the change it leaves the load balancer's rotation while the others serve, "
        "then comes back with its new slice"
        for i in both
        if before[i] != after[i] and not _overlap(before[i], after[i])
    ]


def _range_refusals(changes: list[Change], old: d.Declared, new: d.Declared) -> list[str]:
    before, after = _slices(old), _slices(new)
    out = []
    gone = [c.name for c in changes if c.type == d.VM and c.kind == "remove"]
    if before and after and len(after) < len(before) and gone:
        out.append(
            f"instances {len(before)} -> {len(after)}: the VMs that go ({', '.join(gone)}) would "
            "keep announcing passive ports that move to the others until they are deleted at the "
            "end of `pulumi up`. Do it in two steps: first `pulumi destroy --target '<urn of "
            f"{gone[0]}>' --target-dependents` for each (the VM leaves the load balancer as it "
            "stops), then `pulumi up`"
        )
    both = range(min(len(before), len(after)))
    moved = [i for i in both if before[i] != after[i]]
    if moved and not any(_overlap(before[i], after[i]) for i in both):
        was, now = old.passive_range, new.passive_range
        cover = f"{min(was[0], now[0])}-{max(was[-1], now[-1])}"
        out.append(
            f"the passive range changes from {was[0]}-{was[-1]} to {now[0]}-{now[-1]} and no "
            "server keeps any of its ports: during the change every server would announce ports "
            "no longer forwarded to it. Do it in two steps: first a range that overlaps both "
            f"(e.g. {cover}), `pulumi up`, then {now[0]}-{now[-1]}"
        )
    return out


def refusals(changes: list[Change], old: d.Declared, new: d.Declared) -> list[str]:
    """What one `pulumi up` cannot do without losing files or breaking transfers, each with the
    steps that can."""
    out = _range_refusals(changes, old, new)
    for change in changes:
        if change.type == d.DISK and change.replaced_by:
            creation = new.by_name(change.name)["inputs"].get("creationData") or {}
            if not creation.get("sourceResourceId"):
                out.append(
                    f"data disk {change.name} would be REPLACED ({', '.join(change.replaced_by)} "
                    "changed) and start empty: the customers' files on it would be lost (Azure "
                    "moves no disk between zones). Move them in two steps: snapshot it (`az "
                    "snapshot create -g <resourceGroupName> -n ftp-data-move --incremental true "
                    "--source <the disk's id>`; `az disk list -g <resourceGroupName> -o table` "
                    "names it), then set dataDiskSourceId to the snapshot's id with this change "
                    "and `pulumi up`: the new disk is made from the snapshot"
                )
        squash = [(a, b) for path, a, b in change.properties if path == "rootSquash"]
        if change.type == d.FILE_SHARE and squash and squash[0] == ("NoRootSquash", "RootSquash"):
            out.append(
                f"share {change.name} turns root squash on: its root belongs to root, so the "
                "servers, squashed, could no longer make a new user's home. Do it in two steps: "
                "first `pulumi up` with shareRootSquash: false (the configuration gives the "
                "share's root to the FTP users' uid), then shareRootSquash: true"
            )
        if change.type == d.STORAGE_ACCOUNT and change.replaced_by:
            out.append(
                f"storage account {change.name} would be REPLACED "
                f"({', '.join(change.replaced_by)} changed; Azure converts no premium account "
                "holding NFS shares between LRS and ZRS): the share and every file on it would "
                "be lost. Keep zones as they are, or move the files: a new stack with the new "
                "zones, copy the files across, switch the clients, destroy the old stack"
            )
    return out
