"""The policy pack (`policy/`): each guardrail passes compliant and rejects violating resources.

Three layers, none needing the Pulumi CLI: the plain check functions with constructed dicts; the
same checks over every resource the real program declares (`plan_stack`), for dev and prod and for
deliberately broken variants of them; and the pack as pulumi-policy runs it (its analyzer service
called with the engine's wire format, secrets and unknowns included).
"""

from __future__ import annotations

import base64
import importlib
import runpy
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format, struct_pb2

from ftpstack.plan import MASK, Plan, Secret, plan_stack

POLICY_DIR = Path(__file__).resolve().parents[1] / "policy"
# The pack's modules are top-level modules of the pack directory, as the Pulumi CLI runs them.
sys.path.insert(0, str(POLICY_DIR))
g = importlib.import_module("ftpstack_guardrails")
pack = importlib.import_module("ftpstack_pack")

USERS = Secret([{"name": "alice", "password": "alice-password-1"}])


# -- helpers ------------------------------------------------------------------------------------


def rule(name: str, port: str, source: Any = "*", **extra: Any) -> dict[str, Any]:
    sources = {"sourceAddressPrefixes": source} if isinstance(source, list) else {}
    single = {} if sources else {"sourceAddressPrefix": source}
    return {
        "name": name,
        "priority": extra.pop("priority", 100),
        "direction": extra.pop("direction", "Inbound"),
        "access": extra.pop("access", "Allow"),
        "protocol": "Tcp",
        "sourcePortRange": "*",
        "destinationAddressPrefix": "*",
        "destinationPortRange": port,
        **sources,
        **single,
        **extra,
    }


FTP_RULES = [
    rule("allow-ftp-control", "21"),
    rule("allow-ftp-passive", "50000-50099", priority=110),
    rule("deny-all-inbound", "*", access="Deny", priority=4096),
]


def vm(
    custom_data: Any = None,
    tags: Mapping[str, str] | None = None,
    linux: Mapping[str, Any] | None = None,
    name: str = "ftp-vm",
    parent: str | None = "ftp",
    **os_profile: Any,
) -> dict[str, Any]:
    profile: dict[str, Any] = {
        "adminUsername": "ftpadmin",
        "linuxConfiguration": {"disablePasswordAuthentication": True} if linux is None else linux,
        **os_profile,
    }
    if custom_data is not None:
        profile["customData"] = custom_data
    return {
        "type": g.VM,
        "name": name,
        "id": name,
        "parent": parent,
        "props": {"osProfile": profile, "tags": dict(tags or {})},
    }


def cloud_init(*lines: str) -> str:
    return base64.b64encode("\n".join(lines).encode()).decode()


KEEPALIVE_60_30 = cloud_init(
    "net.ipv4.tcp_keepalive_time = 60",
    "net.ipv4.tcp_keepalive_intvl = 30",
    "SocketOptions keepalive 60:4:30",
)


def server(*children: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"type": g.FTP_SERVER, "name": "ftp", "id": "ftp", "parent": None, "props": {}},
        *children,
    ]


def public_ip(minutes: int | None = 4) -> dict[str, Any]:
    props = {} if minutes is None else {"idleTimeoutInMinutes": minutes}
    return {"type": g.PUBLIC_IP, "name": "ftp-ip", "id": "ftp-ip", "parent": "ftp", "props": props}


def load_balancer(*minutes: int | None) -> dict[str, Any]:
    rules = [
        {"name": f"ftp-{i}", **({} if m is None else {"idleTimeoutInMinutes": m})}
        for i, m in enumerate(minutes)
    ]
    return {
        "type": g.LOAD_BALANCER,
        "name": "ftp-lb",
        "id": "ftp-lb",
        "parent": "ftp",
        "props": {"loadBalancingRules": rules},
    }


# -- 1. only 21 and the passive range open to the Internet --------------------------------------


def test_ftp_rules_from_anywhere_pass() -> None:
    assert g.internet_inbound_violations(FTP_RULES) == []


def test_customer_networks_and_azure_tags_are_not_the_internet() -> None:
    rules = [
        rule("allow-ftp-control", "21", ["203.0.113.0/24", "192.0.2.0/25"]),
        rule("admin-rdp", "3389", "198.51.100.7/32"),
        rule("allow-lb-health-probe", "21", "AzureLoadBalancer"),
        rule("vnet", "*", "VirtualNetwork"),
    ]
    assert g.internet_inbound_violations(rules) == []


@pytest.mark.parametrize(
    "bad",
    [
        rule("rdp", "3389"),
        rule("wide", "20-22"),
        rule("everything", "*", "Internet"),
        rule("zero", "80", "0.0.0.0/0"),
        rule("half-the-internet", "8080", ["0.0.0.0/1", "128.0.0.0/1"]),
        rule("ipv6", "443", "::/0"),
        rule("ranges", None, "*", destinationPortRanges=["21", "443"]),
        rule("passive-plus-one", "50000-50100"),
    ],
    ids=lambda r: r["name"],
)
def test_anything_else_open_to_the_internet_is_rejected(bad: dict[str, Any]) -> None:
    violations = g.internet_inbound_violations([*FTP_RULES, bad])
    assert len(violations) == 1 and bad["name"] in violations[0], violations


def test_deny_and_outbound_rules_open_nothing() -> None:
    rules = [
        *FTP_RULES,
        rule("deny-rdp", "3389", access="Deny"),
        rule("out", "443", direction="Outbound"),
    ]
    assert g.internet_inbound_violations(rules) == []


def test_the_passive_marker_cannot_open_everything() -> None:
    low = [rule("allow-ftp-control", "21"), rule("allow-ftp-passive", "1-65535")]
    huge = [rule("allow-ftp-control", "21"), rule("allow-ftp-passive", "1024-65535")]
    assert any(
        "claims to be the FTP passive range" in v for v in g.internet_inbound_violations(low)
    )
    assert any("more than 1000" in v for v in g.internet_inbound_violations(huge))
    assert g.internet_inbound_violations(huge, max_passive_ports=70000) == []


def test_the_policy_config_range_overrides_the_marker() -> None:
    assert g.internet_inbound_violations(FTP_RULES, "50000-50099") == []
    narrow = g.internet_inbound_violations(FTP_RULES, "50000-50049")
    assert len(narrow) == 1 and "allow-ftp-passive" in narrow[0]
    assert "is not a range" in g.internet_inbound_violations(FTP_RULES, "21-30")[0]


def test_without_a_passive_rule_only_21_is_allowed() -> None:
    rules = [rule("allow-ftp-control", "21"), rule("data", "50000-50099")]
    assert len(g.internet_inbound_violations(rules)) == 1


def test_a_standalone_security_rule_is_checked_too() -> None:
    standalone = {"type": g.SECURITY_RULE, "name": "rdp", "props": rule("rdp", "3389")}
    assert g.internet_inbound_violations(g.security_rules(standalone))


# -- 2. no SSH from the Internet ----------------------------------------------------------------


@pytest.mark.parametrize("source", ["*", "0.0.0.0/0", "Internet", ["10.0.0.0/8", "0.0.0.0/0"]])
@pytest.mark.parametrize("port", ["22", "20-25", "*"])
def test_ssh_from_the_internet_is_rejected(source: Any, port: str) -> None:
    violations = g.ssh_violations([*FTP_RULES, rule("ssh", port, source)])
    assert len(violations) == 1 and "SSH (22)" in violations[0]


def test_ssh_from_listed_admins_or_denied_passes() -> None:
    rules = [
        *FTP_RULES,
        rule("allow-ssh", "22", ["198.51.100.7/32", "203.0.113.0/28"]),
        rule("deny-ssh", "22", access="Deny"),
    ]
    assert g.ssh_violations(rules) == []


# -- 3. password authentication disabled --------------------------------------------------------


def test_key_only_vm_passes() -> None:
    assert g.password_auth_violations(vm()) == []


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (vm(linux={"disablePasswordAuthentication": False}), "disablePasswordAuthentication"),
        (vm(linux={}), "disablePasswordAuthentication"),
        (vm(adminPassword=g.secret("Hunter2Hunter2")), "adminPassword"),
    ],
)
def test_password_logins_are_rejected(bad: dict[str, Any], expected: str) -> None:
    violations = g.password_auth_violations(bad)
    assert violations and expected in violations[0]


def test_missing_linux_configuration_is_rejected() -> None:
    bad = vm()
    del bad["props"]["osProfile"]["linuxConfiguration"]
    assert "linuxConfiguration is missing" in g.password_auth_violations(bad)[0]


def test_scale_sets_are_checked_too() -> None:
    profile = {"osProfile": {"linuxConfiguration": {"disablePasswordAuthentication": False}}}
    vmss = {"type": g.VMSS, "props": {"virtualMachineProfile": profile}}
    assert g.password_auth_violations(vmss)


# -- 4. user-data is a secret -------------------------------------------------------------------


def test_secret_user_data_passes_and_plaintext_is_rejected() -> None:
    assert g.user_data_secret_violations(vm(g.secret(KEEPALIVE_60_30))) == []
    assert g.user_data_secret_violations(vm()) == []  # no user-data at all
    assert "not marked secret" in g.user_data_secret_violations(vm(KEEPALIVE_60_30))[0]


def test_the_remediation_marks_plaintext_user_data_secret() -> None:
    fixed = g.mark_user_data_secret(vm(KEEPALIVE_60_30)["props"])
    assert fixed is not None and g.is_secret(fixed["osProfile"]["customData"])
    assert g.reveal(fixed["osProfile"]["customData"]) == KEEPALIVE_60_30
    assert fixed["osProfile"]["adminUsername"] == "ftpadmin"
    assert g.mark_user_data_secret(vm(g.secret(KEEPALIVE_60_30))["props"]) is None


# -- 5. idle timeout longer than keepalive idle + interval --------------------------------------


def test_idle_timeout_longer_than_keepalive_passes() -> None:
    assert g.idle_timeout_violations(server(public_ip(4), vm(g.secret(KEEPALIVE_60_30)))) == []
    tagged = vm(tags={g.TAG_KEEPALIVE_IDLE: "200", g.TAG_KEEPALIVE_INTERVAL: "30"})
    assert g.idle_timeout_violations(server(public_ip(4), tagged)) == []


@pytest.mark.parametrize(
    "front",
    [public_ip(4), public_ip(None), load_balancer(30, 4)],
    ids=["public-ip-4", "public-ip-default", "one-lb-rule-4"],
)
def test_idle_timeout_not_longer_than_keepalive_is_rejected(front: dict[str, Any]) -> None:
    slow = vm(tags={g.TAG_KEEPALIVE_IDLE: "200", g.TAG_KEEPALIVE_INTERVAL: "40"})  # 240 s
    violations = g.idle_timeout_violations(server(front, slow))
    assert len(violations) == 1 and "240 s" in violations[0], violations


def test_keepalive_is_read_from_the_user_data_conservatively() -> None:
    # The sysctl says 60+30 but proftpd's socket option says 200+40: the larger one counts.
    data = cloud_init(
        "net.ipv4.tcp_keepalive_time = 60",
        "net.ipv4.tcp_keepalive_intvl = 30",
        "SocketOptions keepalive 200:4:40",
    )
    assert g.keepalive_seconds(vm(g.secret(data))) == (240, "the user-data")
    assert g.idle_timeout_violations(server(public_ip(4), vm(g.secret(data))))


def test_unknown_keepalive_is_reported_not_passed() -> None:
    no_keepalive = vm(g.secret(cloud_init("#cloud-config", "packages: [proftpd-core]")))
    violations = g.idle_timeout_violations(server(public_ip(4), no_keepalive))
    assert len(violations) == 1 and "cannot tell the keepalive" in violations[0]


def test_each_ftp_server_is_judged_with_its_own_timeouts() -> None:
    other_ip = {**public_ip(4), "id": "b-ip", "name": "b-ip", "parent": "b"}
    other_vm = {**vm(g.secret(KEEPALIVE_60_30)), "id": "b-vm", "name": "b-vm", "parent": "b"}
    slow = vm(tags={g.TAG_KEEPALIVE_IDLE: "200", g.TAG_KEEPALIVE_INTERVAL: "40"})
    stack = [
        *server(public_ip(10), slow),
        {"type": g.FTP_SERVER, "name": "b", "id": "b", "parent": None, "props": {}},
        other_ip,
        other_vm,
    ]
    assert g.idle_timeout_violations(stack) == []


# -- 6. TLS required on production stacks -------------------------------------------------------


TLS_REQUIRED = cloud_init("TLSEngine on", "TLSRequired on")
TLS_ALLOWED = cloud_init("TLSEngine on", "TLSRequired off")


def test_dev_stacks_need_no_tls() -> None:
    assert g.tls_violations(server(vm(tags={"environment": "dev"})), {}) == []


@pytest.mark.parametrize(
    ("stack_tags", "vm_tags"),
    [({"environment": "production"}, {}), ({}, {"environment": "prod"})],
    ids=["stack-tag", "azure-tag"],
)
def test_production_without_tls_required_is_rejected(
    stack_tags: dict[str, str], vm_tags: dict[str, str]
) -> None:
    for custom_data in (None, g.secret(TLS_ALLOWED)):
        violations = g.tls_violations(server(vm(custom_data, tags=vm_tags)), stack_tags)
        assert len(violations) == 1 and "production" in violations[0]


def test_production_with_tls_required_passes() -> None:
    prod = {"environment": "production"}
    tagged = vm(tags={g.TAG_TLS: "required"})
    assert g.tls_violations(server(tagged), prod) == []
    assert g.tls_violations(server(vm(g.secret(TLS_REQUIRED))), prod) == []


def test_a_tls_tag_that_contradicts_the_user_data_is_rejected() -> None:
    liar = vm(g.secret(TLS_ALLOWED), tags={g.TAG_TLS: "required"})
    violations = g.tls_violations(server(liar), {"environment": "production"})
    assert len(violations) == 1 and "but the user-data configures TLS allowed" in violations[0]


def test_the_production_tag_is_configurable() -> None:
    stack = server(vm(tags={"stage": "live"}))
    assert g.tls_violations(stack, {}, key="stage", values=["live"])
    assert g.tls_violations(stack, {}) == []


# -- the real program's resources (make plan) ---------------------------------------------------


def plain_resources(p: Plan) -> list[dict[str, Any]]:
    """The plan's resources in the pack's plain form: where the masked inputs show a secret, the
    unmasked value is wrapped in the engine's secret marker."""

    def merge(masked: Any, raw: Any) -> Any:
        if isinstance(masked, str) and masked.startswith(MASK[:-1]):
            return g.secret(raw)
        if isinstance(masked, dict) and isinstance(raw, dict):
            return {k: merge(v, raw.get(k)) for k, v in masked.items()}
        if isinstance(masked, list) and isinstance(raw, list):
            return [merge(m, r) for m, r in zip(masked, raw, strict=True)]
        return raw

    return [
        {
            "type": r.type,
            "name": r.name,
            "id": r.name,
            "parent": r.parent or None,
            "props": merge(r.inputs, r.raw_inputs),
        }
        for r in p.resources
    ]


def all_violations(
    resources: list[dict[str, Any]], stack_tags: Mapping[str, str] | None = None
) -> list[str]:
    found = []
    for r in resources:
        if r["type"] in (g.NSG, g.SECURITY_RULE):
            rules = g.security_rules(r)
            found += g.internet_inbound_violations(rules) + g.ssh_violations(rules)
        if r["type"] in (g.VM, g.VMSS):
            found += g.password_auth_violations(r) + g.user_data_secret_violations(r)
    found += g.idle_timeout_violations(resources)
    found += g.tls_violations(resources, stack_tags or {})
    return found


def planned(stack: str, **overrides: Any) -> list[dict[str, Any]]:
    return plain_resources(plan_stack(stack, overrides={"users": USERS, **overrides}))


# Prod must require TLS (the policy's point); its stack file is run with ftpstack:tls=required.
PROD = {"tls": "required"}


def test_dev_plan_passes_every_policy() -> None:
    assert all_violations(planned("dev")) == []


def test_prod_plan_passes_every_policy() -> None:
    resources = planned("prod", **PROD)
    assert any(r["type"] == g.LOAD_BALANCER for r in resources)
    assert all_violations(resources, {"environment": "production"}) == []


def find(resources: list[dict[str, Any]], type_: str) -> dict[str, Any]:
    return next(r for r in resources if r["type"] == type_)


def break_ssh(resources: list[dict[str, Any]]) -> None:
    nsg = find(resources, g.NSG)
    nsg["props"]["securityRules"].append(rule("oops-ssh", "22", priority=300))


def break_rdp(resources: list[dict[str, Any]]) -> None:
    nsg = find(resources, g.NSG)
    nsg["props"]["securityRules"].append(rule("oops-rdp", "3389", priority=310))


def break_password(resources: list[dict[str, Any]]) -> None:
    linux = find(resources, g.VM)["props"]["osProfile"]["linuxConfiguration"]
    linux["disablePasswordAuthentication"] = False


def break_secret(resources: list[dict[str, Any]]) -> None:
    profile = find(resources, g.VM)["props"]["osProfile"]
    profile["customData"] = g.reveal(profile["customData"])


def break_idle_timeout(resources: list[dict[str, Any]]) -> None:
    # What a hand-edited component would declare: Azure's idle timeout below the keepalive.
    vm_ = find(resources, g.VM)
    vm_["props"]["tags"] |= {g.TAG_KEEPALIVE_IDLE: "230", g.TAG_KEEPALIVE_INTERVAL: "30"}


BREAKS: dict[str, tuple[Callable[[list[dict[str, Any]]], None], str]] = {
    "ssh-open": (break_ssh, "SSH (22)"),
    "rdp-open": (break_rdp, "opens port 3389 to the Internet"),
    "password-login": (break_password, "disablePasswordAuthentication"),
    "plaintext-user-data": (break_secret, "not marked secret"),
    "idle-timeout": (break_idle_timeout, "not longer than keepalive"),
}


@pytest.mark.parametrize("stack", ["dev", "prod"])
@pytest.mark.parametrize("broken", sorted(BREAKS))
def test_broken_variants_of_the_plans_fail(stack: str, broken: str) -> None:
    resources = planned(stack, **(PROD if stack == "prod" else {}))
    breaker, expected = BREAKS[broken]
    breaker(resources)
    violations = all_violations(resources)
    assert any(expected in v for v in violations), violations
    assert all(expected in v or "oops" in v for v in violations), violations


def test_plans_that_break_settings_are_caught_too() -> None:
    """Variants the settings model allows are caught by the pack: prod without TLS, a passive
    range too wide for the pack's cap."""
    prod_plain_ftp = planned("prod", tls="allowed")
    assert any("production" in v for v in all_violations(prod_plain_ftp))
    dev = planned("dev")
    nsg = find(dev, g.NSG)
    nsg["props"]["securityRules"][1]["destinationPortRange"] = "1024-65535"
    assert any("more than 1000" in v for v in all_violations(dev))


def test_the_user_data_in_the_plan_is_what_the_idle_check_reads() -> None:
    resources = planned("dev", keepaliveIdleSeconds=100, keepaliveIntervalSeconds=80)
    vm = find(resources, g.VM)
    assert g.keepalive_seconds(vm) == (180, "the VM's tags")
    for tag in (g.TAG_KEEPALIVE_IDLE, g.TAG_KEEPALIVE_INTERVAL):
        del vm["props"]["tags"][tag]  # as a VM declared by another program would be
    assert g.keepalive_seconds(vm) == (180, "the user-data")
    assert g.idle_timeout_violations(resources) == []  # 180 s < 4 min


# -- the pack as pulumi-policy runs it ----------------------------------------------------------

URN = "urn:pulumi:dev::ftpstack::"


def servicer(stack_tags: Mapping[str, str] | None = None) -> Any:
    from pulumi.runtime.proto import analyzer_pb2
    from pulumi_policy import EnforcementLevel
    from pulumi_policy.policy import _PolicyAnalyzerServicer

    service = _PolicyAnalyzerServicer(
        pack.PACK_NAME, "0.0.1", pack.policies(), EnforcementLevel.MANDATORY
    )
    service.ConfigureStack(analyzer_pb2.AnalyzerStackConfigureRequest(tags=stack_tags or {}), None)
    return service


def struct(props: Mapping[str, Any]) -> struct_pb2.Struct:
    return json_format.ParseDict(props, struct_pb2.Struct())


def analyze(resource: dict[str, Any]) -> list[tuple[str, str]]:
    from pulumi.runtime.proto import analyzer_pb2

    request = analyzer_pb2.AnalyzeRequest(
        type=resource["type"],
        properties=struct(resource["props"]),
        urn=f"{URN}{resource['type']}::{resource['name']}",
        name=resource["name"],
    )
    response = servicer().Analyze(request, None)
    return [(d.policyName, d.message) for d in response.diagnostics]


def analyze_stack(
    resources: list[dict[str, Any]], stack_tags: Mapping[str, str] | None = None
) -> list[tuple[str, str]]:
    from pulumi.runtime.proto import analyzer_pb2

    urns = {r["id"]: f"{URN}{r['type']}::{r['name']}" for r in resources}
    request = analyzer_pb2.AnalyzeStackRequest(
        resources=[
            analyzer_pb2.AnalyzerResource(
                type=r["type"],
                properties=struct(r["props"]),
                urn=urns[r["id"]],
                name=r["name"],
                parent=urns.get(r["parent"] or "", ""),
            )
            for r in resources
        ]
    )
    response = servicer(stack_tags).AnalyzeStack(request, None)
    return [(d.policyName, d.message) for d in response.diagnostics]


def test_pack_rejects_an_open_nsg_as_mandatory() -> None:
    nsg = {"type": g.NSG, "name": "nsg", "props": {"securityRules": [*FTP_RULES, rule("s", "22")]}}
    found = analyze(nsg)
    assert {name for name, _ in found} == {"ftp-only-internet-inbound", "no-ssh-from-internet"}
    assert analyze({**nsg, "props": {"securityRules": FTP_RULES}}) == []


def test_pack_rejects_password_login_and_passes_the_planned_vm() -> None:
    resources = planned("dev")
    good = find(resources, g.VM)
    assert analyze(good) == []
    break_password(resources)
    assert [name for name, _ in analyze(good)] == ["vm-password-auth-disabled"]


def test_pack_remediation_marks_plaintext_user_data_secret() -> None:
    from pulumi.runtime.proto import analyzer_pb2

    def remediate(resource: dict[str, Any]) -> Any:
        request = analyzer_pb2.AnalyzeRequest(
            type=g.VM, properties=struct(resource["props"]), urn=f"{URN}vm", name="vm"
        )
        return servicer().Remediate(request, None)

    response = remediate(vm(KEEPALIVE_60_30))
    assert [r.policyName for r in response.remediations] == ["vm-user-data-secret"]
    fixed = json_format.MessageToDict(response.remediations[0].properties)
    assert fixed["osProfile"]["customData"] == g.secret(KEEPALIVE_60_30)
    assert remediate(vm(g.secret(KEEPALIVE_60_30))).remediations == []


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_pack_passes_the_planned_stacks(stack: str) -> None:
    resources = planned(stack, **(PROD if stack == "prod" else {}))
    assert analyze_stack(resources, {"environment": "production"} if stack == "prod" else {}) == []


def test_pack_rejects_broken_stacks_through_the_engine_format() -> None:
    resources = planned("prod", tls="allowed")
    break_idle_timeout(resources)
    found = {name for name, _ in analyze_stack(resources)}
    assert found == {"idle-timeout-beats-keepalive", "tls-required-in-production"}


def test_unknown_user_data_during_preview_does_not_crash_the_pack() -> None:
    preview = vm("04da6b54-80e4-46f7-96ec-b56ff0331ba9")  # customData unknown until the IP exists
    found = analyze_stack(server(public_ip(4), preview))
    assert [name for name, _ in found] == ["idle-timeout-beats-keepalive"]
    assert "cannot tell the keepalive" in found[0][1]


def test_the_pack_entry_point_builds_the_pack(monkeypatch: pytest.MonkeyPatch) -> None:
    import pulumi_policy

    built: dict[str, Any] = {}
    monkeypatch.setattr(pulumi_policy, "PolicyPack", lambda **kwargs: built.update(kwargs))
    runpy.run_path(str(POLICY_DIR / "__main__.py"), run_name="__main__")
    assert built["name"] == "ftpstack-guardrails"
    assert {p.name for p in built["policies"]} == {
        "ftp-only-internet-inbound",
        "no-ssh-from-internet",
        "vm-password-auth-disabled",
        "vm-user-data-secret",
        "idle-timeout-beats-keepalive",
        "tls-required-in-production",
    }
