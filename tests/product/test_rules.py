"""L0: what the network lets in — NSG rules, passive slices, NAT rules — and the component's pure
helpers (post-deploy check command, VM tags, replacement lists)."""

from __future__ import annotations

from ftpstack import azure_rules, checks, paths, rules
from ftpstack.settings.coherence import COMPONENT_TAGS
from tests.support import GOOD_USER, settings


def test_nsg_opens_21_the_passive_range_and_sftp_and_denies_the_rest() -> None:
    found = rules.inbound_rules(settings())
    allowed = {(r.port_spec, r.sources) for r in found if r.access == "Allow"}
    anyone = ("0.0.0.0/0",)
    assert allowed == {("21", anyone), ("50000-50099", anyone), ("22", anyone)}
    without = rules.inbound_rules(settings(sftp=False))
    assert {r.port_spec for r in without if r.access == "Allow"} == {"21", "50000-50099"}
    last = found[-1]
    assert last.access == "Deny" and last.port_spec == "*" and last.sources == ("*",)
    assert [r.priority for r in found] == sorted(r.priority for r in found)
    assert len({r.priority for r in found}) == len(found)


def test_ssh_opens_only_from_its_cidrs() -> None:
    found = rules.inbound_rules(settings(sshSourceCidrs=["203.0.113.7/32"]))
    ssh = [r for r in found if r.port_spec == "2200"]
    assert len(ssh) == 1 and ssh[0].sources == ("203.0.113.7/32",)
    assert ssh[0].source_prefix == "203.0.113.7/32" and ssh[0].source_prefixes is None


def test_ftp_cidrs_restrict_both_ftp_rules() -> None:
    cidrs = ["203.0.113.0/24", "192.0.2.0/25"]
    for rule in rules.inbound_rules(settings(ftpSourceCidrs=cidrs))[:2]:
        assert rule.source_prefixes == cidrs and rule.source_prefix is None


def test_any_source_is_written_as_azure_star() -> None:
    rule = rules.inbound_rules(settings())[0]
    assert rule.source_prefix == "*" and rule.protocol == "Tcp"


def test_load_balancer_mode_lets_the_probe_reach_the_health_port_only() -> None:
    found = rules.inbound_rules(settings(exposure="load-balancer"))
    probe = [r for r in found if r.sources == (rules.LB_PROBE_SOURCE,)]
    assert len(probe) == 1 and probe[0].port_spec == str(paths.HEALTH_PORT)
    assert probe[0].priority < rules.DENY_ALL_PRIORITY


def test_slices_split_the_range_evenly_and_never_overlap() -> None:
    s = settings(
        instances=3,
        exposure="load-balancer",
        passivePortStart=50000,
        passivePortEnd=50100,
        maxClients=30,
    )
    slices = rules.passive_slices(s)
    assert [str(x) for x in slices] == ["50000-50032", "50033-50065", "50066-50098"]
    ports = [p for x in slices for p in x.ports]
    assert len(ports) == len(set(ports)) and all(p in s.passive_ports for p in ports)
    assert rules.max_clients_per_instance(s) == 10


def test_21_and_22_are_balanced_and_each_passive_port_goes_to_its_own_instance() -> None:
    s = settings(
        instances=2,
        exposure="load-balancer",
        passivePortStart=40000,
        passivePortEnd=40019,
        maxClients=8,
        sshSourceCidrs=["203.0.113.7/32"],
    )
    assert rules.load_balancer_rule_ports(s) == [21, 22]
    assert rules.load_balancer_rule_ports(s.model_copy(update={"sftp": False})) == [21]
    nat = rules.nat_rules(s)
    passive = {r.frontend_port: r.instance for r in nat if r.name.startswith("passive-")}
    assert passive == {**{p: 0 for p in range(40000, 40010)}, **{p: 1 for p in range(40010, 40020)}}
    assert all(r.frontend_port == r.backend_port for r in nat if r.name.startswith("passive-"))
    ssh = [(r.frontend_port, r.instance, r.backend_port) for r in nat if r.name.startswith("ssh")]
    assert ssh == [(2200, 0, 2200), (2201, 1, 2200)]  # sshd on 2200: SFTP has 22


def test_a_single_server_keeps_port_22_for_ssh_unless_sftp_has_it() -> None:
    for sftp, port in ((False, 22), (True, 2200)):
        s = settings(exposure="load-balancer", sshSourceCidrs=["203.0.113.7/32"], sftp=sftp)
        ssh = [(r.frontend_port, r.backend_port) for r in rules.nat_rules(s) if r.name == "ssh-0"]
        assert ssh == [(port, port)]
        assert rules.ssh_port(s, 0) == port


# -- the component's pure helpers ----------------------------------------------------------------


def test_the_smoke_check_speaks_tls_whenever_the_server_offers_it() -> None:
    for tls in ("allowed", "required"):
        argv = checks.smoke_argv(settings(tls=tls, users=[GOOD_USER]), "198.51.100.10")
        assert "--tls" in argv and "--no-verify" not in argv
    assert "--tls" not in checks.smoke_argv(settings(tls="off"), "198.51.100.10")


def test_the_smoke_check_sends_no_password_over_plain_ftp_and_logs_in_over_sftp() -> None:
    """With `tls: off` FTP is checked by its greeting only; SFTP (encrypted, the host key pinned
    before any password) still logs in; with neither, no user at all."""
    argv = checks.smoke_argv(settings(tls="off"), "198.51.100.10")
    assert {"--banner-only", "--sftp", "--user"} <= set(argv) and "--tls" not in argv
    argv = checks.smoke_argv(settings(tls="required"), "198.51.100.10")
    assert "--sftp" in argv and "--banner-only" not in argv
    argv = checks.smoke_argv(settings(tls="off", sftp=False), "198.51.100.10")
    assert "--user" not in argv and "--sftp" not in argv
    argv = checks.smoke_argv(settings(tls="required", sftp=False), "198.51.100.10")
    assert "--sftp" not in argv and "--tls" in argv


def test_the_smoke_check_names_its_own_account_and_the_passive_range() -> None:
    argv = checks.smoke_argv(settings(users=[GOOD_USER]), "198.51.100.10")
    assert argv[:3] == ["venv/bin/python", "-m", "ftpstack.ftpcheck"]
    assert argv[argv.index("--user") + 1] == paths.CHECK_USER
    assert argv[argv.index("--expect-passive-range") + 1] == "50000-50099"
    assert argv[argv.index("--expect-public-ip") + 1] == "198.51.100.10"


def test_vm_tags_tell_the_policy_pack_tls_and_keepalive() -> None:
    tags = checks.vm_tags(settings(tags={"owner": "ops"}, tls="required"))
    assert tags == {
        "owner": "ops",
        checks.TAG_TLS: "required",
        checks.TAG_KEEPALIVE_IDLE: "60",
        checks.TAG_KEEPALIVE_INTERVAL: "30",
        checks.TAG_SFTP: "on",
        checks.TAG_OPTED_OUT: "none",
    }
    # The settings leave room for exactly these on the VMs (Azure allows 50 tags).
    assert len(tags) - 1 == COMPONENT_TAGS


def test_every_immutable_vm_property_replaces_it_except_the_ssh_key() -> None:
    replaced = set(checks.vm_replaced_on())
    immutable = {i.path for i in azure_rules.IMMUTABLE[azure_rules.VM_TYPE]}
    assert replaced == (immutable - set(checks.VM_IGNORED)) | {checks.VM_REPLACED_WITH_ITS_DISK}
    assert checks.VM_IGNORED == ("osProfile.linuxConfiguration.ssh.publicKeys",)
    assert checks.VM_REPLACED_WITH_ITS_DISK == "storageProfile.dataDisks"
