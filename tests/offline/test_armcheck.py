"""L1: the local ARM check — what Azure Resource Manager would refuse — on every plan (dev, prod,
generated edge stacks), each rule with a negative control: a deliberately broken plan is caught."""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import pytest

from ftpstack import azure_rules
from ftpstack.offline import armcheck, costs
from ftpstack.offline import declared as d
from ftpstack.offline.plan import Plan
from tests.support import ONE_SERVER, plan

EDGE_STACKS: dict[str, tuple[str, dict[str, Any]]] = {
    "dev": ("dev", {}),
    "prod": ("prod", {}),
    "prod-one": ("prod", ONE_SERVER),
    "prod-ssh": (
        "prod",
        {**ONE_SERVER, "sshSourceCidrs": ["203.0.113.7/32"], "cloudInitCheck": True},
    ),
    "ha": ("prod", {"instances": 2, "zones": [1, 2, 3], "maxClients": 50}),
    "no-disk": ("dev", {"dataDiskSizeGb": 0}),
    "idle-100": ("prod", {"idleTimeoutMinutes": 100, "lbTcpReset": True}),
    "widest-lb": (
        "prod",
        {**ONE_SERVER, "passivePortStart": 40000, "passivePortEnd": 40296, "maxClients": 100},
    ),
    "existing-net": (
        "dev",
        {
            "useExistingResourceGroup": True,
            "resourceGroupName": "rg",
            "existingSubnetId": "/subscriptions/s/resourceGroups/n/providers/"
            "Microsoft.Network/virtualNetworks/v/subnets/s",
        },
    ),
    "many-tags": ("dev", {"tags": {f"t{i}": "x" for i in range(45)}}),
}


@cache
def edge(name: str) -> Plan:
    stack, overrides = EDGE_STACKS[name]
    return plan(stack, **overrides)


def findings(document: dict[str, Any]) -> list[armcheck.Finding]:
    return armcheck.check(document)


@pytest.mark.parametrize("name", sorted(EDGE_STACKS))
def test_every_plan_passes_the_arm_check(name: str) -> None:
    p = edge(name)
    assert armcheck.check(p.to_json(), {r.name: r.raw_inputs for r in p.resources}) == []


def test_prod_declares_at_most_the_five_included_load_balancing_rules() -> None:
    lb = d.Declared(edge("prod").to_json()).one(d.LOAD_BALANCER)["inputs"]
    assert len(lb["loadBalancingRules"]) + len(lb["outboundRules"]) <= azure_rules.LB_RULES_INCLUDED


def test_every_reference_in_every_plan_is_a_dependency() -> None:
    for name in EDGE_STACKS:
        assert (
            armcheck.references(
                d.Declared(edge(name).to_json()),
                {r.name: r.raw_inputs for r in edge(name).resources},
            )
            == []
        )


# -- negative controls: each table catches a broken plan ----------------------------------------


def broken(name: str = "prod") -> dict[str, Any]:
    return copy.deepcopy(edge(name).to_json())


def test_a_reference_built_from_strings_is_caught() -> None:
    """The defect of the first version: the NIC named the LB's pool by an id built from strings
    and did not depend on the LB, so ARM could see the NIC before its pool existed."""
    document = broken()
    nic = next(r for r in document["resources"] if r["type"] == d.NIC)
    nic["dependencies"] = [x for x in nic["dependencies"] if x != "ftp-lb"]
    found = findings(document)
    assert any(
        f.rule == "references" and f.resource == nic["name"] and "ftp-lb" in f.problem
        for f in found
    )


def test_an_immutable_property_without_replacement_is_caught() -> None:
    document = broken()
    vm = next(r for r in document["resources"] if r["type"] == d.VM)
    vm["options"]["replaceOnChanges"].remove("osProfile.adminUsername")
    vm["options"]["ignoreChanges"] = []
    found = {(f.rule, f.problem.split(" ")[0]) for f in findings(document)}
    assert ("immutable", "osProfile.adminUsername") in found
    assert ("immutable", "osProfile.linuxConfiguration.ssh.publicKeys") in found


def test_a_location_change_must_replace_everything_located() -> None:
    document = broken("dev")
    nsg = next(r for r in document["resources"] if r["type"] == d.NSG)
    nsg["options"]["replaceOnChanges"] = []
    assert any(f.rule == "immutable" and f.resource == nsg["name"] for f in findings(document))


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda doc: _first(doc, d.PUBLIC_IP)["inputs"].update(idleTimeoutInMinutes=31), "4-30"),
        (
            lambda doc: _first(doc, d.LOAD_BALANCER)["inputs"]["loadBalancingRules"][0].update(
                idleTimeoutInMinutes=101
            ),
            "4-100",
        ),
        (
            lambda doc: _first(doc, d.LOAD_BALANCER)["inputs"]["outboundRules"][0].update(
                idleTimeoutInMinutes=121
            ),
            "4-120",
        ),
        (
            lambda doc: _first(doc, d.LOAD_BALANCER)["inputs"]["probes"][0].update(
                intervalInSeconds=2
            ),
            "probe interval",
        ),
        (lambda doc: _nat(doc)[0]["properties"].update(idleTimeoutInMinutes=3), "4-100"),
        (lambda doc: _first(doc, d.SECURITY_RULE)["inputs"].update(priority=50), "100-4096"),
        (lambda doc: _first(doc, d.DISK)["inputs"].update(diskSizeGB=40000), "4-32767"),
        (
            lambda doc: _first(doc, d.VM)["inputs"].update(tags={f"t{i}": "x" for i in range(51)}),
            "51 tags",
        ),
        (lambda doc: _first(doc, d.VM)["inputs"].update(tags={"a?b": "x"}), "tag 'a?b'"),
    ],
)
def test_a_value_out_of_azures_range_is_caught(mutate: Any, fragment: str) -> None:
    document = broken("prod-one") if "PUBLIC_IP" not in str(mutate) else broken("dev")
    mutate(document)
    found = [f for f in findings(document) if f.rule == "ranges"]
    assert any(fragment in f.problem for f in found), [str(f) for f in found]


def test_a_public_ip_idle_timeout_is_caught_in_public_ip_mode() -> None:
    document = broken("dev")
    _first(document, d.PUBLIC_IP)["inputs"]["idleTimeoutInMinutes"] = 45
    assert any("4-30" in f.problem for f in findings(document))


def test_two_rules_with_one_priority_are_caught() -> None:
    document = broken("dev")
    rules = [r for r in document["resources"] if r["type"] == d.SECURITY_RULE]
    rules[1]["inputs"]["priority"] = rules[0]["inputs"]["priority"]
    assert any("share priority" in f.problem for f in findings(document))


def test_too_many_rules_on_one_nic_are_caught() -> None:
    document = broken("prod")
    rules = _nat(document)
    assert not any("per NIC" in f.problem for f in findings(document))
    for port in range(300):
        extra = copy.deepcopy(rules[0])
        extra["name"] = f"extra-{port}"
        extra["properties"]["frontendPortRangeStart"] = 60000 + port
        rules.append(extra)
    assert any("per NIC" in f.problem for f in findings(document))


def test_unordered_writes_under_one_parent_are_caught() -> None:
    document = broken("prod")
    rules = [r for r in document["resources"] if r["type"] == d.SECURITY_RULE]
    rules[2]["dependencies"] = ["ftp-nsg"]
    found = [f for f in findings(document) if f.rule == "concurrency"]
    assert found and "AnotherOperationInProgress" in found[0].problem


def test_the_nat_rules_are_written_after_the_load_balancer_by_one_writer_that_agrees() -> None:
    """The deployment that writes the NAT rules rewrites the whole load balancer: it must come
    after the load balancer's own resource and declare the same load balancer besides."""
    document = broken("prod")
    assert [f for f in findings(document) if f.rule == "writers"] == []
    deployment = _first(document, d.DEPLOYMENT)
    deployment["dependencies"] = ["ftp-ip", "ftp-rg"]  # nothing that comes after ftp-lb
    found = [f for f in findings(document) if f.rule == "writers"]
    assert found and "does not come after ftp-lb" in found[0].problem
    document = broken("prod")
    lb = d.Declared(document).deployed_load_balancers()[0][1]
    lb["properties"]["probes"][0]["properties"]["intervalInSeconds"] = 15
    found = [f for f in findings(document) if f.rule == "writers"]
    assert found and "other probes" in found[0].problem


def _first(document: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(r for r in document["resources"] if r["type"] == type_)


def _nat(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The NAT rules as the deployment's template writes them (ARM's form)."""
    rules: list[dict[str, Any]] = d.Declared(document).deployed_load_balancers()[0][1][
        "properties"
    ]["inboundNatRules"]
    return rules


# -- billable units ---------------------------------------------------------------------------


def test_the_plan_lists_what_is_billed_and_the_biggest_driver() -> None:
    units, total, biggest = costs.summary(d.Declared(edge("prod").to_json()))
    names = [u.what for u in units]
    assert "VM Standard_D2s_v5" in names and any(
        n.startswith("Standard load balancer (3 billed") for n in names
    )
    assert any(n.startswith("inbound NAT rules (free)") for n in names)
    assert biggest is not None and biggest.what == "VM Standard_D2s_v5"
    assert 100 < total < 300


def test_the_load_balancer_rule_count_before_and_after_nat_rules() -> None:
    """With one load-balancing rule per passive port (the first version) prod paid for 96 extra
    rules a month; with NAT rules it pays for none (21, SFTP's 22 and the outbound rule are
    within the 5 included)."""
    lb = d.Declared(edge("prod").to_json()).one(d.LOAD_BALANCER)["inputs"]
    before = 1 + 100 + 1  # 21, 100 passive ports, the outbound rule
    extra_before = before - azure_rules.LB_RULES_INCLUDED
    after = len(lb["loadBalancingRules"]) + len(lb["outboundRules"])
    assert after == 3 <= azure_rules.LB_RULES_INCLUDED and extra_before == 97
    assert round(extra_before * costs.LB_RULE_HOURLY * costs.HOURS) == 708
