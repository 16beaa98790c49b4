"""The pack's `operations-in-production` guardrail on the real plans: prod passes with its logs,
alerts and backups; each one taken away is a violation naming it, unless the stack opted out of
it explicitly (the component's VM tag); a stack that is not production needs none; the same
through pulumi-policy's analyzer."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ftpstack.checks import TAG_OPTED_OUT
from ftpstack.offline import declared as d
from tests.policy.support import ops, plain_resources, v
from tests.support import ONE_SERVER, plan

Resources = list[dict[str, Any]]
PROD_TAGS = {"environment": "production"}
SINGLE = {**ONE_SERVER, "exposure": "public-ip"}


def resources(stack: str = "prod", **overrides: Any) -> Resources:
    return copy.deepcopy(plain_resources(plan(stack, **overrides)))


def without(found: Resources, *types: str) -> Resources:
    return [r for r in found if r["type"] not in types]


def violations(found: Resources, tags: dict[str, str] | None = None) -> list[str]:
    found_violations: list[str] = ops.operations_violations(
        found, PROD_TAGS if tags is None else tags
    )
    return found_violations


def test_prod_passes_with_its_operations() -> None:
    assert violations(resources()) == []
    assert violations(resources("prod", **SINGLE)) == []


BREAKS = {
    "logs": (d.COLLECTION_ASSOCIATION,),
    "alerts": (d.ACTION_GROUP,),
    "backups": (d.WORKFLOW,),
}


@pytest.mark.parametrize("operation", sorted(BREAKS))
def test_each_missing_operation_is_a_violation(operation: str) -> None:
    found = violations(without(resources(), *BREAKS[operation]))
    assert len(found) == 1 and f"without {operation}" in found[0], found


def test_the_disk_without_its_backup_instance_is_a_violation() -> None:
    found = violations(without(resources("prod", **SINGLE), d.BACKUP_INSTANCE))
    assert found and "0 backup instance(s) for 1 data disk(s)" in found[0], found


def test_alerts_that_mail_nobody_are_a_violation() -> None:
    found = resources()
    for group in (r for r in found if r["type"] == d.ACTION_GROUP):
        group["props"]["emailReceivers"] = []
    assert any("no action group mails anyone" in x for x in violations(found))
    # The settings accept it (alerts still fire in the portal); the plan warns.
    assert violations(resources("prod", alertEmails=[])) != []


@pytest.mark.parametrize("operation", sorted(BREAKS))
def test_an_explicit_opt_out_is_accepted(operation: str) -> None:
    found = resources("prod", **{operation: "off"})
    assert {r["props"]["tags"][TAG_OPTED_OUT] for r in found if r["type"] == v.VM} == {operation}
    assert violations(found) == []
    # Negative control: the same stack without the tag is refused.
    for vm in (r for r in found if r["type"] == v.VM):
        vm["props"]["tags"][TAG_OPTED_OUT] = "none"
    assert any(f"without {operation}" in x for x in violations(found))


def test_an_opt_out_holds_only_when_every_vm_says_it() -> None:
    found = without(resources(), d.WORKFLOW)
    vms = [r for r in found if r["type"] == v.VM]
    vms[0]["props"]["tags"][TAG_OPTED_OUT] = "backups"
    assert violations(found) != []
    vms[1]["props"]["tags"][TAG_OPTED_OUT] = "backups"
    assert violations(found) == []


def test_a_stack_that_is_not_production_needs_none() -> None:
    dev = resources("dev")
    assert {r["type"] for r in dev} & d.OPERATIONS == set()
    assert violations(dev, {}) == []
    # Negative control: the same stack tagged production is refused on all three.
    assert len(violations(dev, PROD_TAGS)) == 3
