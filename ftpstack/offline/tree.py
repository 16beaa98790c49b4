"""The plan's resources as people read them: a tree by parent, one line per resource or per run
of siblings alike (the same type, options and children, and either names that differ only in
their numbers, as each instance's NIC or VM, or at least RUN_AT of them, as an NSG's rules), each
line within the summary's width.

A run's children are shown once, with the names under every member. A resource's options (what
replaces it, what is kept as created, protection) are cut short and counted when the line is
tight; `full` shows them whole.
"""

from __future__ import annotations

import re
from typing import Any

from ftpstack.offline import text
from ftpstack.offline.plan import Plan, Resource

AZURE_NATIVE = "azure-native:"
# Siblings alike in all but name are one line from this many on.
RUN_AT = 3
# `full`: no width to keep.
UNBOUNDED = 10**6


def roots(plan: Plan) -> list[str]:
    """The parents that are not resources of the plan (the stack)."""
    names = {r.name for r in plan.resources}
    return sorted({r.parent for r in plan.resources if r.parent not in names})


def lines(
    plan: Plan,
    full: bool = False,
    top: list[str] | None = None,
    hide: frozenset[str] = frozenset(),
) -> list[str]:
    """The tree under `top` (default: the roots), one line per resource or run of alike ones;
    resources of the types in `hide` are left out, with what is under them."""
    children: dict[str, list[Resource]] = {}
    for r in plan.resources:
        if r.type not in hide:
            children.setdefault(r.parent, []).append(r)
    shapes: dict[str, tuple[Any, ...]] = {}

    def shape(r: Resource) -> tuple[Any, ...]:
        if r.name not in shapes:
            kids = tuple(shape(k) for k in children.get(r.name, []))
            shapes[r.name] = (r.type, notes(r.options, UNBOUNDED, full=True), kids)
        return shapes[r.name]

    out: list[str] = []

    def walk(parents: list[str], depth: int) -> None:
        kids = children.get(parents[0], [])
        for positions in _runs(kids, shape):
            members = [children[p][at].name for p in parents for at in positions]
            out.append(_line(kids[positions[0]], members, depth, full))
            walk(members, depth + 1)

    for root in top if top is not None else roots(plan):
        walk([root], 0)
    return out


def _runs(kids: list[Resource], shape: Any) -> list[list[int]]:
    """Positions of `kids` in runs of alike ones, in the order of each run's first."""
    alike: dict[tuple[Any, ...], list[int]] = {}
    for i, r in enumerate(kids):
        alike.setdefault(shape(r), []).append(i)
    runs: list[list[int]] = []
    for positions in alike.values():
        if len(positions) >= RUN_AT:
            runs.append(positions)
            continue
        by_stem: dict[str, list[int]] = {}
        for at in positions:
            by_stem.setdefault(re.sub(r"-?\d+", "", kids[at].name), []).append(at)
        runs += by_stem.values()
    return sorted(runs)


def short_type(type_: str) -> str:
    """azure-native's types by their last name ("SecurityRule"), others whole."""
    return type_.rsplit(":", 1)[-1] if type_.startswith(AZURE_NATIVE) else type_


def _line(r: Resource, names: list[str], depth: int, full: bool) -> str:
    count = f" x{len(names)}" if len(names) > 1 else ""
    head = f"  {'  ' * depth}{short_type(r.type)}{count}  "
    if full:
        return f"{head}{', '.join(names)}{notes(r.options, UNBOUNDED, full=True)}"
    room = text.WIDTH - len(head)
    said = notes(r.options, room - len(", ".join(names)), full=False)
    return f"{head}{text.fit(names, room - len(said))}{said}"


def notes(options: dict[str, Any], budget: int, full: bool) -> str:
    """What replaces, keeps and protects a resource, within `budget` characters where it can:
    the longest list is cut short (and counted) until it fits; in short, each input by its last
    name."""
    labels = (
        (
            "replaced when ",
            " change",
            "kept as created: ",
            "delete before replace",
            "protected from deletion",
        )
        if full
        else ("replaced on: ", "", "kept: ", "deletes first", "protected")
    )

    def name(path: str) -> str:
        return path if full else path.rsplit(".", 1)[-1]

    lists = [
        (labels[0], labels[1], [name(p) for p in options.get("replaceOnChanges") or []]),
        (labels[2], "", [name(p) for p in options.get("ignoreChanges") or []]),
    ]
    flags = [
        *([labels[3]] if options.get("deleteBeforeReplace") else []),
        *([labels[4]] if options.get("protect") else []),
    ]
    shown = [len(items) for _, _, items in lists]
    while True:
        parts = [
            f"{label}{', '.join(items[:n])}{f' +{len(items) - n}' if n < len(items) else ''}{end}"
            for (label, end, items), n in zip(lists, shown, strict=True)
            if items
        ]
        said = f"{'   ' if full else '  '}({'; '.join([*parts, *flags])})" if parts or flags else ""
        longest = max(range(len(shown)), key=lambda i: shown[i])
        if len(said) <= budget or shown[longest] <= 1:
            return said
        shown[longest] -= 1
