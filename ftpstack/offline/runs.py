"""A resource's property changes: every one (`property_changes`, what `make diff` judges), and
as people read them (`rows`, `line`), where a run of keyed list items that change alike is one
row: 50 NAT rules whose pool moves are one line, 100 added rules another.

A keyed list is a list whose items all have distinct "name"s (NSG rules, NAT rules, probes, a
template's resources). Its items are taken in the order of their names (numbers by value); a
run is items next to each other in that order that change alike: the same properties from the
same values to the same values, or all added (or removed) with the same distinguishing values:
those that some items of the list have and others do not (a NAT rule's pool: each rule's own
port is not, every rule's protocol is not).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ftpstack.offline import text

# Keyed lists by what people call their items.
LABELS = {
    "inboundNatRules": "NAT rules",
    "securityRules": "NSG rules",
    "loadBalancingRules": "balancing rules",
    "backendAddressPools": "backend pools",
    "outboundRules": "outbound rules",
    "frontendIPConfigurations": "frontends",
    "probes": "probes",
}
# ARM's nesting of every resource's settings, left out where paths are shown.
ARM_PROPERTIES = "properties"


def keyed(items: list[Any]) -> dict[str, Any] | None:
    """List elements by their "name", when every element has a distinct one (rules, probes)."""
    if not items or not all(isinstance(i, dict) and "name" in i for i in items):
        return None
    found = {str(i["name"]): i for i in items}
    return found if len(found) == len(items) else None


def property_changes(old: Any, new: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """Every changed property as (path, old, new); keyed list items by name ("rules[http]")."""
    if isinstance(old, dict) and isinstance(new, dict):
        changes = []
        for key in sorted(set(old) | set(new), key=str):
            sub = f"{path}.{key}" if path else str(key)
            changes += property_changes(old.get(key), new.get(key), sub)
        return changes
    if isinstance(old, list) and isinstance(new, list):
        old_keyed, new_keyed = keyed(old), keyed(new)
        if old_keyed is not None and new_keyed is not None:
            changes = []
            for name in sorted(set(old_keyed) | set(new_keyed)):
                changes += property_changes(
                    old_keyed.get(name), new_keyed.get(name), f"{path}[{name}]"
                )
            return changes
        if len(old) == len(new):
            changes = []
            for index, (a, b) in enumerate(zip(old, new, strict=True)):
                changes += property_changes(a, b, f"{path}[{index}]")
            return changes
    return [] if old == new else [(path, old, new)]


@dataclass(frozen=True)
class Row:
    """One line of a resource's changes: a property, or a run of keyed list items."""

    path: str  # the property; for a run, the keyed list that holds it
    old: Any
    new: Any
    keys: tuple[str, ...] = ()  # a run: its items' names, in order
    rest: str = ""  # a run of changes: the property inside each item
    kind: str = "change"  # a run: "change", or its items "add"ed or "remove"d
    distinct: dict[str, Any] = field(default_factory=dict)  # an add/remove run's values


def rows(old: Any, new: Any, path: str = "") -> list[Row]:
    if isinstance(old, dict) and isinstance(new, dict):
        return [
            row
            for key in sorted(set(old) | set(new), key=str)
            for row in rows(old.get(key), new.get(key), f"{path}.{key}" if path else str(key))
        ]
    if isinstance(old, list) and isinstance(new, list):
        a, b = keyed(old), keyed(new)
        if (a is not None or not old) and (b is not None or not new) and (a or b):
            return _keyed_rows(a or {}, b or {}, path)
        if len(old) == len(new):
            return [
                row
                for index, (x, y) in enumerate(zip(old, new, strict=True))
                for row in rows(x, y, f"{path}[{index}]")
            ]
    return [] if old == new else [Row(path, old, new)]


def leaves(data: Any, path: str = "") -> dict[str, str]:
    """Every scalar in `data` by its path, as JSON."""
    if isinstance(data, dict):
        return {
            p: v
            for k, x in data.items()
            for p, v in leaves(x, f"{path}.{k}" if path else k).items()
        }
    if isinstance(data, list):
        return {p: v for i, x in enumerate(data) for p, v in leaves(x, f"{path}[{i}]").items()}
    return {path: text.value(data)}


def _keyed_rows(a: dict[str, Any], b: dict[str, Any], path: str) -> list[Row]:
    items = [*a.values(), *b.values()]
    counts = Counter(leaf for item in items for leaf in leaves(item).items())

    universal = {x for x, n in counts.items() if n == len(items)}

    def distinct(item: Any) -> frozenset[tuple[str, str]]:
        """What this item shares with some items of the list but not all."""
        return frozenset(x for x in leaves(item).items() if 2 <= counts[x] < len(items))

    def signature(name: str) -> tuple[Any, ...] | None:
        if name not in a:
            return ("add", distinct(b[name]))
        if name not in b:
            return ("remove", distinct(a[name]))
        inner = rows(a[name], b[name])
        if not inner:
            return None
        if any(r.keys for r in inner):
            return ("nested", name)  # runs within runs: each item on its own
        return ("change", tuple((r.path, text.value(r.old), text.value(r.new)) for r in inner))

    names = sorted(set(a) | set(b), key=text.natural)
    marks = [signature(n) for n in names]
    out: list[Row] = []
    start = 0
    for end in range(1, len(names) + 1):
        if end < len(names) and marks[end] == marks[start]:
            continue
        if marks[start] is not None:
            out += _run(a, b, path, names[start:end], marks[start], universal)
        start = end
    return out


def _run(
    a: dict[str, Any],
    b: dict[str, Any],
    path: str,
    names: list[str],
    mark: Any,
    every: set[tuple[str, str]],
) -> list[Row]:
    """The rows of one run (`every`: the values every item of the list has)."""
    keys = tuple(names)
    if mark[0] in ("add", "remove"):
        values = dict(sorted(mark[1]))
        if len(names) == 1:  # one item: its own values too, after what it shares
            item = (b if mark[0] == "add" else a)[names[0]]
            own = {p: v for p, v in leaves(item).items() if p != "name" and (p, v) not in every}
            values = {**values, **dict(sorted(own.items()))}
        return [Row(path, None, None, keys, kind=mark[0], distinct=values)]
    if len(names) == 1:
        return rows(a.get(names[0]), b.get(names[0]), f"{path}[{names[0]}]")
    return [Row(path, r.old, r.new, keys, r.path) for r in rows(a[names[0]], b[names[0]])]


def shown_path(path: str) -> str:
    """A path without ARM's "properties" nesting."""
    parts = [p for p in path.split(".") if p != ARM_PROPERTIES]
    return ".".join(parts) or path


def label(path: str) -> str:
    """A keyed list as people call its items: "NAT rules", else its path."""
    last = path.rsplit(".", 1)[-1]
    return LABELS.get(last, shown_path(path))


def _tail(value: str, width: int = 40) -> str:
    """A long JSON string by its end ("…/instance-1": where ids and paths name things)."""
    if len(value) <= width or not value.startswith('"'):
        return text.middle(value, width)
    last = value.rstrip('"').rsplit("/", 1)[-1]
    return f'"{text.ELLIPSIS}/{last}"' if "/" in value else text.middle(value, width)


def line(row: Row) -> str:
    """The row as one line: "path: old => new" (around what differs), or a run's."""
    if not row.keys:
        old, new = text.values(row.old, row.new)
        return f"{row.path}: {old} => {new}"
    what = f"{label(row.path)} {text.run(row.keys)}" + (
        f" ({len(row.keys)})" if 1 < len(row.keys) <= 3 else ""
    )
    if row.kind != "change":
        values = [f"{shown_path(p)} {_tail(v)}" for p, v in row.distinct.items()]
        tail = f": {text.fit(values, 70)}" if values else ""
        return f"{'+' if row.kind == 'add' else '-'} {what}{tail}"
    old, new = text.values(row.old, row.new)
    return f"{what}: {shown_path(row.rest)} {old} => {new}"
