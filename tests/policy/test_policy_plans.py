"""The policy pack over what the real program declares (`plan_stack`): dev, prod and a
two-instance prod pass every check, a deliberately broken variant of each fails exactly the check
it breaks, the pack's view of the network agrees with the program's own vocabulary
(`ftpstack.offline.declared`), and the pack runs as pulumi-policy runs it (its analyzer service
called with the engine's wire format, secrets and unknowns included)."""

from __future__ import annotations

import base64
import runpy
from collections.abc import Callable
from typing import Any

import pytest

from ftpstack.offline import declared
from tests.policy.support import (
    HASH,
    POLICY_DIR,
    STACKS,
    all_violations,
    analyze,
    analyze_stack,
    find,
    g,
    net,
    plan_json,
    planned,
    remediate,
    rule,
    separate,
    servicer,
    v,
)
from tests.support import certificate_pair

Resources = list[dict[str, Any]]
PROD_TAGS = {"environment": "production"}


def stack_tags(name: str) -> dict[str, str]:
    return PROD_TAGS if STACKS[name][0] == "prod" else {}


# -- the pack's view agrees with the program's ---------------------------------------------------

SOURCES = [
    "*",
    " * ",
    "Internet",
    "INTERNET",
    "Any",
    "0.0.0.0/0",
    "::/0",
    "0.0.0.0/1",
    "128.0.0.0/1",
    "10.0.0.0/7",
    "10.0.0.0/8",
    "203.0.113.0/24",
    "198.51.100.7/32",
    "::/1",
    "2001:db8::/32",
    "AzureLoadBalancer",
    "VirtualNetwork",
    "Storage.WestEurope",
    "not-an-address",
]


def test_the_pack_and_the_plan_agree_on_the_internet() -> None:
    verdicts = {s: v.is_internet(s) for s in SOURCES}
    assert verdicts == {s: declared.is_internet(s) for s in SOURCES}
    assert any(verdicts.values()) and not all(verdicts.values())  # both kinds are covered
    assert v.INTERNET_SOURCES == declared.INTERNET_SOURCES
    assert v.BROADEST_SPECIFIC_PREFIX == declared.BROADEST_SPECIFIC_PREFIX


EXTRA_RULES = [
    rule("oops-rdp", "3389", "Internet", priority=300),
    rule("oops-half", "8080", ["0.0.0.0/1", "128.0.0.0/1"], priority=310),
    rule("oops-every-port", "*", "0.0.0.0/0", priority=320),
    rule("customer-https", "443", "203.0.113.0/24", priority=330),
    rule("probe", "10021", "AzureLoadBalancer", priority=340),
    rule("denied", "3389", "*", access="Deny", priority=350),
]


@pytest.mark.parametrize("extra", [False, True], ids=["as-planned", "with-extra-rules"])
@pytest.mark.parametrize("name", sorted(STACKS))
def test_the_pack_and_the_plan_agree_on_the_open_ports(name: str, extra: bool) -> None:
    """The pack reads the plan's JSON (`make plan ARGS=--json`) as the program's vocabulary
    does: the same rules open to the Internet, on the same ports."""
    document = plan_json(name)
    if extra:  # separate rules, and one inline in the NSG
        document["resources"] += [
            {**separate(r), "inputs": separate(r)["props"]} for r in EXTRA_RULES
        ]
        nsg = next(r for r in document["resources"] if r["type"] == v.NSG)
        nsg["inputs"]["securityRules"] = [rule("oops-inline-telnet", "23", "Any", priority=360)]
    resources = [{**r, "id": r["name"], "props": r["inputs"]} for r in document["resources"]]
    pack_view = {
        (str(r["name"]), spec) for r, spec, _ in net.internet_open(net.group_rules(resources))
    }
    plan_view = {(r.name, r.port_text) for r in declared.Declared(document).open_to_internet()}
    assert pack_view == plan_view
    if name == "dev" or extra:
        assert pack_view, "nothing open: the comparison would pass vacuously"


# -- the real plans pass, their broken variants fail ---------------------------------------------


@pytest.mark.parametrize("name", sorted(STACKS))
def test_the_planned_stacks_pass_every_policy(name: str) -> None:
    resources = planned(name)
    assert {r["type"] for r in resources} >= {v.VM, v.SECURITY_RULE, v.RUN_COMMAND}
    assert all_violations(resources, stack_tags(name)) == []


def add_rule(resources: Resources, inline: dict[str, Any]) -> None:
    resources.append(separate(inline))


def inline_rule(resources: Resources, inline: dict[str, Any]) -> None:
    find(resources, v.NSG)["props"]["securityRules"] = [inline]


def custom_data(resources: Resources, extra: str) -> None:
    profile = find(resources, v.VM)["props"]["osProfile"]
    text = base64.b64decode(profile["customData"]).decode() + extra
    profile["customData"] = base64.b64encode(text.encode()).decode()


def configure_step(resources: Resources) -> dict[str, Any]:
    return next(r for r in resources if r["name"].endswith("-configure"))


def protected_in_clear(resources: Resources) -> None:
    step = configure_step(resources)["props"]
    step["parameters"] += v.reveal(step.pop("protectedParameters"))


def protected_not_secret(resources: Resources) -> None:
    step = configure_step(resources)["props"]
    step["protectedParameters"] = v.reveal(step["protectedParameters"])


def slow_keepalive(resources: Resources) -> None:
    for vm in (r for r in resources if r["type"] == v.VM):
        vm["props"]["tags"] |= {g.TAG_KEEPALIVE_IDLE: "230", g.TAG_KEEPALIVE_INTERVAL: "30"}


def password_login(resources: Resources) -> None:
    find(resources, v.VM)["props"]["osProfile"]["linuxConfiguration"][
        "disablePasswordAuthentication"
    ] = False


def nat_rule(resources: Resources, index: int) -> dict[str, Any]:
    """The settings of the load balancer's `index`-th NAT rule, in the template that writes
    them (ARM's form: the settings under "properties")."""
    (lb,) = v.template_resources(find(resources, v.DEPLOYMENT))
    props: dict[str, Any] = lb["properties"]["inboundNatRules"][index]["properties"]
    return props


def template_writes_an_nsg_rule(resources: Resources) -> None:
    template = find(resources, v.DEPLOYMENT)["props"]["properties"]["template"]
    template["resources"].append(
        {"type": "Microsoft.Network/networkSecurityGroups/securityRules", "name": "nsg/oops"}
    )


def nat_to_rdp(resources: Resources) -> None:
    nat_rule(resources, 0)["backendPort"] = 3389


def nat_gap(resources: Resources) -> None:
    """Port 50001 to instance-1: instance 0 then announces a port another server receives."""
    pool = nat_rule(resources, 1)["backendAddressPool"]
    pool["id"] = pool["id"].rsplit("/", 1)[0] + "/instance-1"


def lb_balances_80(resources: Resources) -> None:
    lb = find(resources, v.LOAD_BALANCER)["props"]["loadBalancingRules"]
    lb.append({**lb[0], "name": "oops-http", "frontendPort": 80, "backendPort": 80})


def sftp_where_sshd_listens(resources: Resources) -> None:
    """The SFTP rules stay, but nothing says the servers serve SFTP (tag gone, and no readable
    configuration): 22 would be the VMs' own sshd."""
    for resource in resources:
        if resource["type"] == v.VM:
            del resource["props"]["tags"][g.TAG_SFTP]
        if resource["name"].endswith("-configure"):
            resource["props"]["protectedParameters"] = v.secret([])


def sftp_wider_than_ftp(resources: Resources) -> None:
    props = find(resources, v.SECURITY_RULE, "ftp-nsg-allow-sftp")["props"]
    props.pop("sourceAddressPrefixes", None)
    props["sourceAddressPrefix"] = "198.51.100.99/32"


_, KEY = certificate_pair("ftp.example.com")
Break = Callable[[Resources], None]
BREAKS: dict[str, tuple[Break, str]] = {
    "ssh-open": (lambda r: add_rule(r, rule("oops-ssh", "22", priority=300)), "SSH (22)"),
    "rdp-open": (lambda r: add_rule(r, rule("oops-rdp", "3389", priority=310)), "port 3389"),
    "inline-rdp": (lambda r: inline_rule(r, rule("oops-rdp", "3389", priority=310)), "port 3389"),
    "password-login": (password_login, "disablePasswordAuthentication"),
    "hash-in-bootstrap": (lambda r: custom_data(r, f"# {HASH}\n"), "customData carries a pass"),
    "key-in-bootstrap": (lambda r: custom_data(r, KEY), "customData carries a private key"),
    "bundle-in-parameters": (protected_in_clear, "parameters[FTPSTACK_CONFIG_0] carries a"),
    "protected-not-secret": (protected_not_secret, "not marked secret"),
    "idle-timeout": (slow_keepalive, "not longer than keepalive"),
    "sftp-where-sshd-listens": (sftp_where_sshd_listens, "not every VM serves SFTP there"),
}
# prod's FTP admits its customers only (dev's admits anyone: no source is wider).
PROD_BREAKS: dict[str, tuple[Break, str]] = {
    "sftp-wider-than-ftp": (sftp_wider_than_ftp, "lets SFTP in from 198.51.100.99/32"),
}
LB_BREAKS: dict[str, tuple[Break, str]] = {
    "nat-to-rdp": (nat_to_rdp, "forwards to port 3389"),
    "nat-gap": (nat_gap, "with gaps"),
    "lb-balances-80": (lb_balances_80, "balances port 80"),
    "template-writes-nsg": (template_writes_an_nsg_rule, "writes a Microsoft.Network/network"),
}
CASES = [(s, b) for s in sorted(STACKS) for b in BREAKS] + [
    (s, b) for s in ("prod", "ha") for b in {**LB_BREAKS, **PROD_BREAKS}
]


@pytest.mark.parametrize(("name", "broken"), CASES)
def test_broken_variants_of_the_plans_fail(name: str, broken: str) -> None:
    resources = planned(name)
    breaker, expected = {**BREAKS, **LB_BREAKS, **PROD_BREAKS}[broken]
    breaker(resources)
    violations = all_violations(resources, stack_tags(name))
    assert any(expected in x for x in violations), violations
    assert all(expected in x or "oops" in x for x in violations), violations


def test_settings_the_model_allows_are_caught_too() -> None:
    """prod with TLS only allowed (the settings model accepts it), a passive range wider than the
    pack's cap."""
    violations = all_violations(planned("prod-tls-allowed"))
    assert violations and all("TLS allowed on a production stack" in x for x in violations)
    passive = find(planned("dev"), v.SECURITY_RULE, "ftp-nsg-allow-ftp-passive")
    passive["props"]["destinationPortRange"] = "1024-65535"
    assert any("more than 1000" in x for x in all_violations([passive]))


def test_tags_are_cross_checked_with_the_configuration_step() -> None:
    """A TLS tag the configuration contradicts is caught; without the keepalive tags the
    configuration step still tells; without either, the pack says it cannot tell."""
    resources = planned("prod")
    for vm in (r for r in resources if r["type"] == v.VM):
        vm["props"]["tags"][g.TAG_TLS] = "allowed"
    assert any("but the configuration sets TLS required" in x for x in all_violations(resources))
    configure_step(resources)["props"]["protectedParameters"] = v.secret([])  # nothing else tells
    assert any("TLS allowed on a production" in x for x in all_violations(resources))
    dev = planned("dev")
    for tag in (g.TAG_KEEPALIVE_IDLE, g.TAG_KEEPALIVE_INTERVAL):
        del find(dev, v.VM)["props"]["tags"][tag]
    assert all_violations(dev) == []  # the configuration step tells: 60 + 30 s
    configure_step(dev)["props"]["protectedParameters"] = v.secret([])
    assert any("cannot tell the keepalive" in x for x in all_violations(dev))


def test_the_configuration_step_is_what_the_checks_read() -> None:
    resources = planned("prod")
    vm = find(resources, v.VM)
    texts = g.configuration_texts(vm, resources)
    del vm["props"]["tags"][g.TAG_TLS]
    assert g.tls_mode(vm, texts) == ("required", [])
    assert g.keepalive_seconds(vm, texts) == (90, "the VM's tags")
    assert g.keepalive_seconds({"props": {}}, texts) == (90, "the configuration")


# -- the pack as pulumi-policy runs it -----------------------------------------------------------


@pytest.mark.parametrize("name", ["dev", "prod"])
def test_pack_passes_the_planned_stacks(name: str) -> None:
    resources = planned(name)
    service = servicer()
    found = [(r["name"], analyze(r, service)) for r in resources]
    assert [(resource, diagnostics) for resource, diagnostics in found if diagnostics] == []
    assert analyze_stack(resources, stack_tags(name)) == []


def test_pack_rejects_open_rules_inline_and_separate_as_mandatory() -> None:
    nsg = {"type": v.NSG, "name": "nsg", "props": {"securityRules": [rule("s", "22")]}}
    expected = {"ftp-only-internet-inbound", "no-ssh-from-internet"}
    assert {name for name, _ in analyze(nsg)} == expected
    assert {name for name, _ in analyze(separate(rule("s", "22")))} == expected
    assert analyze(separate(rule("allow-ftp-control", "21"))) == []


def test_pack_rejects_password_login_and_secrets_in_the_bootstrap() -> None:
    resources = planned("dev")
    password_login(resources)
    custom_data(resources, KEY)
    found = sorted(name for name, _ in analyze(find(resources, v.VM)))
    assert found == ["vm-custom-data-secret-free", "vm-password-auth-disabled"]
    protected_in_clear(resources)
    violations = analyze(configure_step(resources))
    assert {n for n, _ in violations} == {"run-command-plain-inputs-secret-free"}
    assert {m.split("carries ")[1].split(";")[0] for _, m in violations} == {
        "a password hash",
        "a private key",
    }, "the bundle carries both: the users file and the stack's TLS key"


def test_pack_remediation_marks_plaintext_protected_parameters_secret() -> None:
    step = configure_step(planned("dev"))
    assert remediate(step).remediations == []  # the program marks them secret
    protected_not_secret([step])
    response = remediate(step)
    assert [r.policyName for r in response.remediations] == [
        "run-command-protected-parameters-secret"
    ]
    from google.protobuf import json_format

    fixed = json_format.MessageToDict(response.remediations[0].properties)
    assert fixed["protectedParameters"] == v.secret(step["props"]["protectedParameters"])


def test_pack_rejects_broken_stacks_through_the_engine_format() -> None:
    resources = planned("prod")
    slow_keepalive(resources)
    nat_gap(resources)
    for vm in (r for r in resources if r["type"] == v.VM):
        vm["props"]["tags"]["environment"] = "production"
        vm["props"]["tags"][g.TAG_TLS] = "allowed"
    found = {name for name, _ in analyze_stack(resources)}
    assert found == {
        "idle-timeout-beats-keepalive",
        "lb-forwards-only-ftp",
        "tls-required-in-production",
    }


def test_unknown_values_during_preview_do_not_crash_the_pack() -> None:
    unknown = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # not known until the resource exists
    resources = planned("prod")
    vm = find(resources, v.VM)
    vm["props"]["osProfile"]["customData"] = unknown
    del vm["props"]["tags"][g.TAG_KEEPALIVE_IDLE]
    configure_step(resources)["props"]["protectedParameters"] = unknown
    nat_rule(resources, 0)["backendAddressPool"] = {"id": unknown}
    assert analyze(vm) == []
    found = analyze_stack(resources, PROD_TAGS)
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
        "lb-forwards-only-ftp",
        "no-ssh-from-internet",
        "vm-password-auth-disabled",
        "vm-custom-data-secret-free",
        "run-command-plain-inputs-secret-free",
        "run-command-protected-parameters-secret",
        "idle-timeout-beats-keepalive",
        "tls-required-in-production",
        "sftp-only-where-served-and-from-ftp-sources",
        "operations-in-production",
    }
