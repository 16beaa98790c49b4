"""The deployment's critical path: the longest chain of writes that must happen one after another.

Pulumi starts a resource's write as soon as everything it depends on is written, so a deployment
lasts at least as long as its longest chain of dependent writes. Each write to Azure is a
long-running operation that azure-native polls every 10 s (`updatePollingIntervalSeconds` in
pulumi-azure-native's `provider/pkg/azure/client_azcore.go`), so a chain of N Azure writes takes
at least N x 10 s, and in practice longer (a VM takes minutes). Resources the engine only records
(components) are not writes.

For a change, only what changes counts: resources added, updated or replaced (a replacement is
two writes: the new one and the deletion of the old), then the deletions of what was removed,
which Pulumi runs after everything else, in reverse order of their dependencies.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ftpstack.offline import declared as d

POLL_SECONDS = 10


@dataclass(frozen=True)
class Path:
    """A chain of writes, in the order they happen."""

    steps: tuple[str, ...]

    @property
    def writes(self) -> int:
        return len(self.steps)

    def __str__(self) -> str:
        chain = " -> ".join(self.steps) if self.steps else "nothing"
        return (
            f"{self.writes} write(s) in series (at least {self.writes * POLL_SECONDS} s of "
            f"polling): {chain}"
        )


def is_write(resource: Mapping[str, Any]) -> bool:
    """A resource a provider writes (not a component the engine only records)."""
    return bool(resource.get("id")) or resource["type"].startswith(("azure-native:", "command:"))


def longest(
    resources: Sequence[Mapping[str, Any]], weight: Mapping[str, int], reverse: bool = False
) -> tuple[str, ...]:
    """The heaviest chain along dependencies (or against them, `reverse`), as names in order;
    a resource of weight 2 (a replacement) appears twice."""
    names = {r["name"] for r in resources}
    deps: dict[str, set[str]] = {
        r["name"]: set(r.get("dependencies", [])) & names for r in resources
    }
    if reverse:
        flipped: dict[str, set[str]] = {n: set() for n in names}
        for name, before in deps.items():
            for dep in before:
                flipped[dep].add(name)
        deps = flipped
    best: dict[str, tuple[str, ...]] = {}

    def chain(name: str) -> tuple[str, ...]:
        if name not in best:
            best[name] = ()  # a cycle cannot make a chain longer than what it already found
            before = max((chain(dep) for dep in sorted(deps[name])), key=_heft, default=())
            best[name] = before + (name,) * weight.get(name, 0)
        return best[name]

    return max((chain(name) for name in sorted(names)), key=_heft, default=())


def _heft(steps: tuple[str, ...]) -> int:
    return len(steps)


def first_deploy(document: Mapping[str, Any]) -> Path:
    """Every write of a new stack."""
    view = d.Declared(document)
    weight = {r["name"]: 1 for r in view.resources if is_write(r)}
    return Path(longest(view.resources, weight))


def change(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    changed: Collection[str],
    replaced: Collection[str],
) -> Path:
    """The writes of a change from `old` to `new`: `changed` names resources added or updated
    in `new`, `replaced` those among them that are replaced; what `old` has and `new` does not
    is deleted at the end."""
    after = d.Declared(new)
    weight = {
        r["name"]: (2 if r["name"] in replaced else 1)
        for r in after.resources
        if r["name"] in changed and is_write(r)
    }
    forward = longest(after.resources, weight)
    before = d.Declared(old)
    kept = {r["name"] for r in after.resources}
    gone = {r["name"]: 1 for r in before.resources if r["name"] not in kept and is_write(r)}
    return Path(forward + longest(before.resources, gone, reverse=True))
