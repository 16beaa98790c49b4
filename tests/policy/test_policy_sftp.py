"""The policy pack's SFTP checks on constructed resources: port 22 is open for SFTP only by the
component's SFTP rules, only where every server really serves SFTP there (else it is the VM's own
sshd), and only from FTP's sources; sshd's own ports (22, and 2200 while SFTP has 22) are never
open to the Internet. Each passing case has the failing variants beside it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.policy.support import (
    FTP_RULES,
    bundle,
    g,
    load_balancer,
    nat,
    net,
    nsg,
    rule,
    run_command,
    server,
    v,
    vm,
)

CUSTOMERS = ["203.0.113.0/24", "192.0.2.0/25"]
SFTP = rule("allow-sftp", "22", priority=115)
SERVES = {g.TAG_SFTP: "on"}


def resource_checks(rules: list[dict[str, Any]]) -> list[str]:
    """What the two per-rule policies (Internet inbound, SSH) report, for both NSG shapes."""
    found = []
    for shape in ("inline", "separate"):
        for r in nsg(rules, shape):
            found += net.internet_inbound_violations(net.security_rules(r))
            found += net.ssh_violations(net.security_rules(r))
    return found


def configured(sftp: bool) -> dict[str, Any]:
    conf = "ServerType standalone\n" + ("<VirtualHost 0.0.0.0>\n  SFTPEngine on\n" if sftp else "")
    return run_command(protected=v.secret([{"name": "FTPSTACK_CONFIG", "value": bundle(conf)}]))


def test_the_sftp_rule_passes_the_per_rule_checks_and_nothing_else_on_22_does() -> None:
    assert resource_checks([*FTP_RULES, SFTP]) == []
    # Negative controls: the same port by another name is SSH; the SFTP name on more than 22
    # is not the SFTP rule; sshd's moved port is SSH too.
    for bad, expected in [
        (rule("oops", "22"), "lets SSH (22)"),
        (rule("allow-sftp", "20-25"), "lets SSH (22)"),
        (rule("allow-sftp", "2200"), "lets SSH (2200)"),
        (rule("admin", "2200"), "lets SSH (2200)"),
    ]:
        found = resource_checks([*FTP_RULES, bad])
        assert found and any(expected in x for x in found), (bad, found)


def test_sftp_from_ftp_sources_where_every_vm_serves_it_passes() -> None:
    ftp = [rule("allow-ftp-control", "21", CUSTOMERS), rule("allow-sftp", "22", CUSTOMERS)]
    assert g.sftp_violations(server(*nsg(ftp, "separate"), vm(tags=SERVES))) == []
    # Told by the configuration alone (no tag), as during an upgrade.
    assert g.sftp_violations(server(*nsg(ftp, "inline"), vm(), configured(True))) == []
    # Narrower than FTP's is fine: a customer's host inside a customer's network, anything
    # inside the Internet.
    narrower = [ftp[0], rule("allow-sftp", "22", "203.0.113.7/32")]
    assert g.sftp_violations(server(*nsg(narrower, "inline"), vm(tags=SERVES))) == []
    anyone = [rule("allow-ftp-control", "21", "Internet"), narrower[1]]
    assert g.sftp_violations(server(*nsg(anyone, "inline"), vm(tags=SERVES))) == []
    # Negative control: SFTP's sources wider than FTP's.
    wider = [ftp[0], rule("allow-sftp", "22", [*CUSTOMERS, "198.51.100.0/24"])]
    (found,) = g.sftp_violations(server(*nsg(wider, "inline"), vm(tags=SERVES)))
    assert "lets SFTP in from 198.51.100.0/24, which FTP does not" in found


@pytest.mark.parametrize(
    "server_side",
    [
        [vm(tags={g.TAG_SFTP: "off"})],
        [vm()],  # nothing tells: not judged as serving
        [vm(), configured(False)],
        [vm(tags=SERVES), vm(name="ftp-vm-1", tags={g.TAG_SFTP: "off"})],
    ],
    ids=["tag-off", "untold", "configured-without", "one-of-two"],
)
def test_port_22_for_sftp_where_sshd_listens_is_rejected(server_side: list[dict[str, Any]]) -> None:
    for opened in ([*nsg([*FTP_RULES, SFTP], "inline")], [load_balancer((22, 22, 4))]):
        if "loadBalancingRules" in opened[0]["props"]:
            opened[0]["props"]["loadBalancingRules"][0]["name"] = "sftp"
        found = g.sftp_violations(server(*opened, *server_side))
        assert any("but not every VM serves SFTP there" in x for x in found), found
    # Negative control: without the SFTP rules nothing is judged.
    assert g.sftp_violations(server(*nsg(FTP_RULES, "inline"), *server_side)) == []


def test_a_tag_that_contradicts_the_configuration_is_rejected() -> None:
    liar = server(*nsg([*FTP_RULES, SFTP], "inline"), vm(tags=SERVES), configured(False))
    found = g.sftp_violations(liar)
    assert any("tag ftpstack:sftp=on but the configuration has no SFTP" in x for x in found)


def test_behind_a_load_balancer_sftp_is_balanced_22_to_22_by_its_rule_only() -> None:
    passive = nsg([rule("allow-ftp-passive", "50000-50019", priority=110)], "inline")

    def forwarding(*children: dict[str, Any]) -> list[str]:
        return list(net.stack_forwarding_violations(server(*passive, *children)))

    def balancer(name: str, front: int, back: int) -> dict[str, Any]:
        lb = load_balancer((21, 21, 4), (front, back, 4))
        lb["props"]["loadBalancingRules"][1]["name"] = name
        return lb

    admin = [nat(2200, "instance-0", front=2200), nat(2200, "instance-1", front=2201)]
    assert forwarding(balancer("sftp", 22, 22), *admin) == []
    for name, front, back in [("other", 22, 22), ("sftp", 22, 2200), ("sftp", 2222, 22)]:
        (found,) = forwarding(balancer(name, front, back))
        assert f"rule {name} balances port {front}" in found
