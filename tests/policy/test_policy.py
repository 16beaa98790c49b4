"""The policy pack's checks (`policy/`) on constructed resources: each passes what is compliant
and rejects each way of breaking it (the negative controls). The same checks over the real
program's plans, and through pulumi-policy's analyzer, are in test_policy_plans.py."""

from __future__ import annotations

import gzip
from typing import Any

import pytest

from tests.policy.support import (
    FTP_RULES,
    HASH,
    b64,
    bundle,
    g,
    load_balancer,
    nat,
    net,
    nsg,
    public_ip,
    rule,
    run_command,
    separate,
    server,
    v,
    vm,
)
from tests.support import certificate_pair

SHAPES = ["inline", "separate"]


def inbound(resources: list[dict[str, Any]], passive: str | None = None) -> list[str]:
    """What `ftp-only-internet-inbound` reports for each NSG or SecurityRule resource."""
    return [
        message
        for r in resources
        for message in net.internet_inbound_violations(net.security_rules(r), passive)
    ]


def ssh(resources: list[dict[str, Any]]) -> list[str]:
    return [m for r in resources for m in net.ssh_violations(net.security_rules(r))]


# -- 1. only 21 and the passive range open to the Internet ----------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_ftp_rules_from_anywhere_pass(shape: str) -> None:
    assert inbound(nsg(FTP_RULES, shape)) == []


@pytest.mark.parametrize("shape", SHAPES)
def test_customer_networks_and_azure_tags_are_not_the_internet(shape: str) -> None:
    rules = [
        rule("allow-ftp-control", "21", ["203.0.113.0/24", "192.0.2.0/25"]),
        rule("admin-rdp", "3389", "198.51.100.7/32"),
        rule("allow-lb-health-probe", "10021", "AzureLoadBalancer"),
        rule("vnet", "*", "VirtualNetwork"),
    ]
    assert inbound(nsg(rules, shape)) == []


@pytest.mark.parametrize("shape", SHAPES)
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
        rule("no-source", "8443", None),
    ],
    ids=lambda r: r["name"],
)
def test_anything_else_open_to_the_internet_is_rejected(shape: str, bad: dict[str, Any]) -> None:
    violations = inbound(nsg([*FTP_RULES, bad], shape))
    assert len(violations) == 1 and bad["name"] in violations[0], violations


def test_deny_and_outbound_rules_open_nothing() -> None:
    rules = [
        *FTP_RULES,
        rule("deny-rdp", "3389", access="Deny"),
        rule("out", "443", direction="Outbound"),
    ]
    assert net.internet_inbound_violations(rules) == []
    assert net.internet_open(rules) == net.internet_open(FTP_RULES)


def test_the_passive_marker_cannot_open_everything() -> None:
    low = [rule("allow-ftp-control", "21"), rule("allow-ftp-passive", "1-65535")]
    huge = [rule("allow-ftp-control", "21"), rule("allow-ftp-passive", "1024-65535")]
    assert any("claims to be the FTP passive range" in x for x in inbound(nsg(low, "inline")))
    assert any("more than 1000" in x for x in inbound(nsg(huge, "separate")))
    assert net.internet_inbound_violations(huge, max_passive_ports=70000) == []


def test_the_policy_config_range_overrides_the_marker() -> None:
    assert net.internet_inbound_violations(FTP_RULES, "50000-50099") == []
    narrow = net.internet_inbound_violations(FTP_RULES, "50000-50049")
    assert len(narrow) == 1 and "allow-ftp-passive" in narrow[0]
    assert "is not a range" in net.internet_inbound_violations(FTP_RULES, "21-30")[0]


def test_without_a_passive_rule_only_21_is_allowed() -> None:
    rules = [rule("allow-ftp-control", "21"), rule("data", "50000-50099")]
    assert len(net.internet_inbound_violations(rules)) == 1


def test_a_separate_rule_is_known_by_its_azure_name() -> None:
    """The marker is securityRuleName (the Azure name), not the Pulumi resource name."""
    marked = separate(rule("allow-ftp-passive", "50000-50099"))
    assert marked["name"] != "allow-ftp-passive"
    assert inbound([marked]) == []
    impostor = separate(rule("data", "50000-50099"))
    impostor["name"] = "allow-ftp-passive"  # the resource name alone marks nothing
    assert len(inbound([impostor])) == 1


# -- 2. no SSH from the Internet -----------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("source", ["*", "0.0.0.0/0", "Internet", ["10.0.0.0/8", "0.0.0.0/0"]])
@pytest.mark.parametrize("port", ["22", "20-25", "*"])
def test_ssh_from_the_internet_is_rejected(shape: str, source: Any, port: str) -> None:
    violations = ssh(nsg([*FTP_RULES, rule("ssh", port, source)], shape))
    assert len(violations) == 1 and "SSH (22" in violations[0]


@pytest.mark.parametrize("shape", SHAPES)
def test_ssh_from_listed_admins_or_denied_passes(shape: str) -> None:
    rules = [
        *FTP_RULES,
        rule("allow-ssh", "22", ["198.51.100.7/32", "203.0.113.0/28"]),
        rule("deny-ssh", "22", access="Deny"),
    ]
    assert ssh(nsg(rules, shape)) == []


# -- 3. behind a load balancer: only 21 balanced, passive ports per slice ------------------------

PASSIVE_NSG = nsg([rule("allow-ftp-passive", "50000-50019")], "separate")
TWO_SLICES = [nat(p, "instance-0") for p in range(50000, 50010)] + [
    nat(p, "instance-1") for p in range(50010, 50020)
]
SSH_NAT = [nat(22, "instance-0", front=2200), nat(22, "instance-1", front=2201)]


def forwarding(*children: dict[str, Any]) -> list[str]:
    found: list[str] = net.stack_forwarding_violations(server(*PASSIVE_NSG, *children))
    return found


def test_ftp_behind_a_load_balancer_passes() -> None:
    assert forwarding(load_balancer((21, 21, 4)), *TWO_SLICES, *SSH_NAT) == []
    assert forwarding(load_balancer(), nat(21), *TWO_SLICES) == []  # 21 by NAT to one server
    assert net.stack_forwarding_violations(server(public_ip(), *nsg(FTP_RULES, "inline"))) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"lb": (80, 80, 4)}, "balances port 80"),
        ({"lb": (0, 0, 4)}, "every port (HA ports)"),
        ({"nat": nat(3389)}, "forwards to port 3389"),
        ({"nat": nat(21, front=2121)}, "forwards to port 21"),
        ({"nat": nat(50000, front=60000)}, "forwards frontend port 60000 to passive port 50000"),
        ({"nat": nat(50020, "instance-1")}, "neither SSH (22, 2200) nor in the passive range"),
        ({"move": 50000}, "pool instance-1 receives passive ports 50000-50019 with gaps"),
        ({"nat": nat(50010, "instance-0")}, "ports 50010 are forwarded to several pools"),
    ],
    ids=[
        "lb-80",
        "ha-ports",
        "nat-rdp",
        "nat-ftp-elsewhere",
        "nat-other-front",
        "outside-range",
        "gap",
        "shared",
    ],
)
def test_anything_else_behind_the_load_balancer_is_rejected(
    change: dict[str, Any], expected: str
) -> None:
    lb = load_balancer((21, 21, 4), *([change["lb"]] if "lb" in change else []))
    rules = [*TWO_SLICES, *([change["nat"]] if "nat" in change else [])]
    if "move" in change:
        rules = [r for r in rules if r["props"]["backendPort"] != change["move"]]
        rules.append(nat(change["move"], "instance-1"))
    violations = forwarding(lb, *rules)
    assert len(violations) == 1 and expected in violations[0], violations


def test_inline_nat_rules_and_pools_are_checked_too() -> None:
    inline = {"inboundNatRules": [{"name": "rdp", "frontendPort": 3389, "backendPort": 3389}]}
    pools = {"inboundNatPools": [{"name": "p", "frontendPortRangeStart": 3000, "backendPort": 80}]}
    for props in (inline, pools):
        violations = forwarding(load_balancer((21, 21, 4), **props), *TWO_SLICES)
        assert len(violations) == 1 and "neither SSH" in violations[0], violations


def test_without_a_passive_rule_no_passive_port_may_be_forwarded() -> None:
    violations = net.stack_forwarding_violations(server(load_balancer((21, 21, 4)), nat(50000)))
    assert len(violations) == 1 and "no passive range" in violations[0]


def test_unknown_values_during_preview_are_not_judged() -> None:
    unknown = next(iter(v.UNKNOWNS))
    pool_unknown = nat(50005, "instance-1")
    pool_unknown["props"]["backendAddressPool"] = {"id": unknown}
    port_unknown = nat(50006)
    port_unknown["props"]["frontendPortRangeStart"] = unknown
    assert forwarding(load_balancer((21, 21, 4)), *TWO_SLICES, pool_unknown, port_unknown) == []


# -- 4. password authentication disabled ---------------------------------------------------------


def test_key_only_vm_passes() -> None:
    assert g.password_auth_violations(vm()) == []


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (vm(linux={"disablePasswordAuthentication": False}), "disablePasswordAuthentication"),
        (vm(linux={}), "disablePasswordAuthentication"),
        (vm(adminPassword=v.secret("Hunter2Hunter2")), "adminPassword"),
    ],
)
def test_password_logins_are_rejected(bad: dict[str, Any], expected: str) -> None:
    violations = g.password_auth_violations(bad)
    assert violations and expected in violations[0]


def test_missing_linux_configuration_and_scale_sets_are_rejected() -> None:
    bad = vm()
    del bad["props"]["osProfile"]["linuxConfiguration"]
    assert "linuxConfiguration is missing" in g.password_auth_violations(bad)[0]
    profile = {"osProfile": {"linuxConfiguration": {"disablePasswordAuthentication": False}}}
    assert g.password_auth_violations({"type": v.VMSS, "props": {"virtualMachineProfile": profile}})


# -- 5. secret-free bootstrap and Run Command inputs ---------------------------------------------

BOOTSTRAP = '#cloud-config\npackages: [proftpd-core]\nruncmd:\n- echo "$1$2" > /dev/null\n'
CERT, KEY = certificate_pair("ftp.example.com")


def test_a_secret_free_bootstrap_passes() -> None:
    assert g.custom_data_violations(vm(b64(BOOTSTRAP + CERT))) == []  # a certificate is public
    assert g.custom_data_violations(vm()) == []
    assert g.custom_data_violations(vm(next(iter(v.UNKNOWNS)))) == []  # known by the update


@pytest.mark.parametrize(
    ("custom_data", "expected"),
    [
        (b64(f"{BOOTSTRAP}- echo 'alice:{HASH}' > /etc/ftpd.passwd\n"), "a password hash"),
        (b64(BOOTSTRAP + KEY), "a private key"),
        (
            b64(f"write_files:\n- encoding: b64\n  content: {b64('alice:' + HASH)}\n"),
            "a password hash",
        ),
    ],
    ids=["hash", "key", "b64-write-file"],
)
def test_secrets_in_the_bootstrap_are_rejected(custom_data: str, expected: str) -> None:
    violations = g.custom_data_violations(vm(custom_data))
    assert len(violations) == 1 and expected in violations[0], violations
    assert "customData" in violations[0]


def test_compressed_and_user_data_secrets_are_found() -> None:
    import base64

    gzipped = base64.b64encode(gzip.compress((BOOTSTRAP + KEY).encode())).decode()
    assert "a private key" in g.custom_data_violations(vm(gzipped))[0]
    with_user_data = vm(b64(BOOTSTRAP))
    with_user_data["props"]["userData"] = bundle(f"alice:{HASH}:2001")
    (violation,) = g.custom_data_violations(with_user_data)
    assert violation.startswith("userData carries a password hash")


def test_run_command_secrets_belong_in_protected_parameters() -> None:
    step = run_command(
        parameters={"FTPSTACK_PHASE": "narrow", "FTPSTACK_CONFIG": bundle("no secret here")},
        protected=v.secret([{"name": "FTPSTACK_CONFIG", "value": bundle(f"alice:{HASH}")}]),
    )
    assert g.run_command_plain_violations(step) == []
    leaked = run_command(parameters={"FTPSTACK_CONFIG": bundle(f"alice:{HASH}")})
    assert (
        "parameters[FTPSTACK_CONFIG] carries a password hash"
        in (g.run_command_plain_violations(leaked)[0])
    )
    in_script = run_command(script=f"#!/bin/bash\ncat > /etc/key <<EOF\n{KEY}EOF\n")
    assert "source.script carries a private key" in g.run_command_plain_violations(in_script)[0]


def test_plaintext_protected_parameters_are_remediated() -> None:
    params = [{"name": "FTPSTACK_CONFIG", "value": bundle(f"alice:{HASH}")}]
    plaintext = run_command(protected=params)
    assert "not marked secret" in g.protected_parameters_violations(plaintext)[0]
    fixed = g.mark_protected_parameters_secret(plaintext["props"])
    assert fixed is not None and fixed["protectedParameters"] == v.secret(params)
    assert fixed["source"] == plaintext["props"]["source"]
    for fine in (v.secret(params), [{"name": "X", "value": v.secret("x")}], None):
        assert g.protected_parameters_violations(run_command(protected=fine)) == []
        assert g.mark_protected_parameters_secret(run_command(protected=fine)["props"]) is None


# -- 6. idle timeout longer than keepalive idle + interval ---------------------------------------

KEEPALIVE_60_30 = {g.TAG_KEEPALIVE_IDLE: "60", g.TAG_KEEPALIVE_INTERVAL: "30"}
SLOW = {g.TAG_KEEPALIVE_IDLE: "200", g.TAG_KEEPALIVE_INTERVAL: "40"}  # 240 s
SLOW_CONFIG = bundle(
    "net.ipv4.tcp_keepalive_time = 60\nnet.ipv4.tcp_keepalive_intvl = 30\n",
    "ServerType standalone\nSocketOptions keepalive 200:4:40\n",
)


def test_idle_timeout_longer_than_keepalive_passes() -> None:
    assert g.idle_timeout_violations(server(public_ip(4), vm(tags=KEEPALIVE_60_30))) == []
    behind_lb = [load_balancer((21, 21, 30)), public_ip(None), nat(50000, minutes=30)]
    assert g.idle_timeout_violations(server(*behind_lb, vm(tags=SLOW))) == []


@pytest.mark.parametrize(
    "front",
    [
        [public_ip(4)],
        [public_ip(None)],
        [load_balancer((21, 21, 30), (21, 21, 4))],
        [load_balancer((21, 21, 30)), nat(50000, minutes=4)],
        [load_balancer((21, 21, 30)), nat(50000, minutes=30), nat(22, front=2200, minutes=4)],
    ],
    ids=["public-ip-4", "public-ip-default", "one-lb-rule-4", "nat-rule-4", "ssh-nat-rule-4"],
)
def test_idle_timeout_not_longer_than_keepalive_is_rejected(front: list[dict[str, Any]]) -> None:
    violations = g.idle_timeout_violations(server(*front, vm(tags=SLOW)))
    assert len(violations) == 1 and "240 s" in violations[0], violations


def test_a_public_ip_counts_when_a_nic_carries_it() -> None:
    """A public IP that fronts a load balancer has no say; on a NIC it has (negative control)."""
    behind_lb = [load_balancer((21, 21, 30)), public_ip(None)]
    assert g.idle_timeout_violations(server(*behind_lb, vm(tags=SLOW))) == []
    nic_props = {"ipConfigurations": [{"name": "ip", "publicIPAddress": {"id": "ftp-ip"}}]}
    nic = {"type": v.NIC, "name": "nic", "id": "nic", "parent": "ftp", "props": nic_props}
    assert len(g.idle_timeout_violations(server(*behind_lb, nic, vm(tags=SLOW)))) == 1


def test_keepalive_is_read_from_the_configuration_step_conservatively() -> None:
    """Without tags the configuration step's bundle tells; with both, the larger sum counts, so
    a tag cannot hide a slower configuration."""
    step = run_command(protected=v.secret([{"name": "FTPSTACK_CONFIG", "value": SLOW_CONFIG}]))
    for tags in ({}, KEEPALIVE_60_30):
        machine = vm(tags=tags)
        texts = g.configuration_texts(machine, [machine, step])
        assert g.keepalive_seconds(machine, texts) == (240, "the configuration")
        assert g.idle_timeout_violations(server(public_ip(4), machine, step))
    assert g.keepalive_seconds(vm(tags=KEEPALIVE_60_30)) == (90, "the VM's tags")


def test_another_vms_configuration_is_not_read() -> None:
    step = run_command(parent="other-vm", parameters={"FTPSTACK_CONFIG": SLOW_CONFIG})
    machine = vm(tags=KEEPALIVE_60_30)
    assert g.idle_timeout_violations(server(public_ip(4), machine, step)) == []


def test_unknown_keepalive_is_reported_not_passed() -> None:
    no_keepalive = vm(b64(BOOTSTRAP))
    violations = g.idle_timeout_violations(server(public_ip(4), no_keepalive))
    assert len(violations) == 1 and "cannot tell the keepalive" in violations[0]


def test_each_ftp_server_is_judged_with_its_own_timeouts() -> None:
    other_ip = {**public_ip(4), "id": "b-ip", "name": "b-ip", "parent": "b"}
    other_vm = {**vm(tags=KEEPALIVE_60_30), "id": "b-vm", "name": "b-vm", "parent": "b"}
    stack = [
        *server(public_ip(10), vm(tags=SLOW)),
        {"type": v.FTP_SERVER, "name": "b", "id": "b", "parent": None, "props": {}},
        other_ip,
        other_vm,
    ]
    assert g.idle_timeout_violations(stack) == []
    other_vm["props"]["tags"] = SLOW
    assert len(g.idle_timeout_violations(stack)) == 1


# -- 7. TLS required on production stacks --------------------------------------------------------

PROD = {"environment": "production"}


def configured(tls: str) -> dict[str, Any]:
    lines = {"required": "TLSEngine on\nTLSRequired on", "allowed": "TLSEngine on", "off": ""}
    conf = f"ServerType standalone\n{lines[tls]}\n"
    return run_command(protected=v.secret([{"name": "FTPSTACK_CONFIG", "value": bundle(conf)}]))


def test_dev_stacks_need_no_tls() -> None:
    assert g.tls_violations(server(vm(tags={"environment": "dev"})), {}) == []


@pytest.mark.parametrize(
    ("stack_tags", "vm_tags"),
    [(PROD, {}), ({}, {"environment": "prod"})],
    ids=["stack-tag", "azure-tag"],
)
@pytest.mark.parametrize("tls", ["off", "allowed"])
def test_production_without_tls_required_is_rejected(
    stack_tags: dict[str, str], vm_tags: dict[str, str], tls: str
) -> None:
    for tagged in ({g.TAG_TLS: tls}, {}):
        stack = server(vm(b64(BOOTSTRAP), tags={**vm_tags, **tagged}), configured(tls))
        violations = g.tls_violations(stack, stack_tags)
        assert len(violations) == 1 and f"TLS {tls} on a production" in violations[0]


def test_production_with_tls_required_passes() -> None:
    assert g.tls_violations(server(vm(tags={g.TAG_TLS: "required"})), PROD) == []
    assert g.tls_violations(server(vm(b64(BOOTSTRAP)), configured("required")), PROD) == []
    untold = g.tls_violations(server(vm(b64(BOOTSTRAP))), PROD)  # the bootstrap sets no TLS
    assert len(untold) == 1 and "TLS unknown" in untold[0]


def test_a_tls_tag_that_contradicts_the_configuration_is_rejected() -> None:
    liar = server(vm(tags={g.TAG_TLS: "required"}), configured("allowed"))
    violations = g.tls_violations(liar, PROD)
    assert len(violations) == 1 and "but the configuration sets TLS allowed" in violations[0]


def test_the_production_tag_is_configurable() -> None:
    stack = server(vm(tags={"stage": "live"}))
    assert g.tls_violations(stack, {}, key="stage", values=["live"])
    assert g.tls_violations(stack, {}) == []
