"""L1: the critical path — the longest chain of writes that run one after another."""

from __future__ import annotations

from typing import Any

from ftpstack.offline import graph


def res(name: str, *deps: str, type_: str = "azure-native:network:Thing") -> dict[str, Any]:
    return {"type": type_, "name": name, "id": f"/x/{name}", "dependencies": list(deps)}


def doc(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resources": list(resources), "outputs": {}}


def test_the_longest_chain_of_dependent_writes_is_the_critical_path() -> None:
    plan = doc(res("a"), res("b", "a"), res("c", "b"), res("d", "a"), res("e", "c", "d"))
    assert graph.first_deploy(plan).steps == ("a", "b", "c", "e")


def test_components_are_not_writes() -> None:
    component = {"type": "ftpstack:azure:FtpServer", "name": "ftp", "id": "", "dependencies": []}
    plan = doc(component, res("a", "ftp"), res("b", "a"))
    assert graph.first_deploy(plan).steps == ("a", "b")


def test_a_change_counts_only_what_changes_replacements_twice_and_deletions_last() -> None:
    old = doc(res("a"), res("b", "a"), res("c", "b"), res("gone1", "a"), res("gone2", "gone1"))
    new = doc(res("a"), res("b", "a"), res("c", "b"))
    path = graph.change(old, new, changed={"a", "c"}, replaced={"c"})
    # a, then c twice (created anew, the old one deleted), then the removed ones, dependents
    # first: Pulumi deletes gone2 before gone1.
    assert path.steps == ("a", "c", "c", "gone2", "gone1")
    assert path.writes == 5 and "50 s of polling" in str(path)


def test_nothing_changed_is_an_empty_path() -> None:
    plan = doc(res("a"), res("b", "a"))
    assert graph.change(plan, plan, changed=set(), replaced=set()).writes == 0
