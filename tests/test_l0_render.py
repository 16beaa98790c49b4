"""L0: the pure derivations: NSG rules, LB ports, proftpd.conf, users file, sysctl, cloud-init."""

from __future__ import annotations

import re
from typing import Any

import yaml
from passlib.hash import sha512_crypt

from ftpstack import network, render
from ftpstack.settings import Settings
from tests.test_l0_settings import GOOD_USER, settings

IP = "198.51.100.10"
SEED = "ftpstack/dev/ftp"


def directive(conf: str, name: str) -> str:
    match = re.search(rf"^\s*{name}\s+(.+)$", conf, re.MULTILINE)
    assert match, f"{name} missing"
    return match.group(1).strip()


def cloud(s: Settings) -> dict[str, Any]:
    text = render.cloud_config(s, IP, SEED)
    assert text.startswith("#cloud-config\n")
    document = yaml.safe_load(text)
    assert isinstance(document, dict)
    return document


# -- network ---------------------------------------------------------------------------------


def test_nsg_opens_21_and_the_passive_range_and_denies_the_rest() -> None:
    rules = network.inbound_rules(settings())
    allowed = {(r.port_spec, r.sources) for r in rules if r.access == "Allow"}
    assert allowed == {("21", ("0.0.0.0/0",)), ("50000-50099", ("0.0.0.0/0",))}
    last = rules[-1]
    assert last.access == "Deny" and last.port_spec == "*" and last.sources == ("*",)
    assert [r.priority for r in rules] == sorted(r.priority for r in rules)


def test_ssh_opens_only_from_its_cidrs() -> None:
    rules = network.inbound_rules(settings(sshSourceCidrs=["203.0.113.7/32"]))
    ssh = [r for r in rules if r.port_spec == "22"]
    assert len(ssh) == 1 and ssh[0].sources == ("203.0.113.7/32",)
    assert ssh[0].source_prefix == "203.0.113.7/32" and ssh[0].source_prefixes is None


def test_ftp_cidrs_restrict_both_ftp_rules() -> None:
    cidrs = ["203.0.113.0/24", "192.0.2.0/25"]
    rules = network.inbound_rules(settings(ftpSourceCidrs=cidrs))
    for rule in rules[:2]:
        assert rule.source_prefixes == cidrs and rule.source_prefix is None


def test_any_source_is_written_as_azure_star() -> None:
    rule = network.inbound_rules(settings())[0]
    assert rule.source_prefix == "*" and rule.protocol == "Tcp"


def test_load_balancer_mode_lets_the_health_probe_in() -> None:
    rules = network.inbound_rules(settings(exposure="load-balancer"))
    probe = [r for r in rules if r.sources == (network.LB_PROBE_SOURCE,)]
    assert len(probe) == 1 and probe[0].port_spec == "21"
    assert probe[0].priority < network.DENY_ALL_PRIORITY


def test_one_load_balancer_port_per_rule() -> None:
    s = settings(passivePortStart=40000, passivePortEnd=40009, maxClients=5)
    assert network.load_balancer_ports(s) == [21, *range(40000, 40010)]


# -- proftpd.conf ----------------------------------------------------------------------------


def test_proftpd_conf_carries_range_masquerade_and_keepalive() -> None:
    s = settings(keepaliveIdleSeconds=45, keepaliveIntervalSeconds=15, keepaliveCount=5)
    conf = render.proftpd_conf(s, IP)
    assert directive(conf, "PassivePorts") == "50000 50099"
    assert directive(conf, "MasqueradeAddress") == IP
    assert directive(conf, "SocketOptions") == "keepalive 45:5:15"
    assert directive(conf, "UseReverseDNS") == "off"
    assert directive(conf, "IdentLookups") == "off"
    assert directive(conf, "AuthOrder") == "mod_auth_file.c"
    assert directive(conf, "AuthUserFile") == render.USERS_FILE
    assert directive(conf, "DefaultRoot") == "~"
    assert "<Anonymous" not in conf


def test_max_clients_fits_the_passive_range() -> None:
    s = settings(passivePortStart=50000, passivePortEnd=50019, maxClients=10)
    conf = render.proftpd_conf(s, IP)
    max_clients = int(directive(conf, "MaxClients").split()[0])
    assert 2 * max_clients <= 20
    assert int(directive(conf, "MaxInstances")) >= max_clients


def test_proftpd_conf_explains_why_keepalive_matters() -> None:
    conf = render.proftpd_conf(settings(), IP)
    assert "226 Transfer complete" in conf and "idle" in conf


# -- users file and password hashes --------------------------------------------------------


def test_users_file_holds_hashes_never_passwords() -> None:
    s = settings(users=[GOOD_USER, {"name": "bob", "password": "bob-password-22"}])
    text = render.users_file(s, SEED)
    assert "alice-password-1" not in text and "bob-password-22" not in text
    lines = text.splitlines()
    assert [line.split(":")[0] for line in lines] == ["alice", "bob"]
    _, hashed, uid, gid, _, home, shell = lines[0].split(":")
    assert hashed.startswith("$6$")
    assert sha512_crypt.verify("alice-password-1", hashed)
    assert not sha512_crypt.verify("wrong-password", hashed)
    assert (uid, gid) == (str(render.VIRTUAL_UID),) * 2
    assert home == f"{render.FTP_ROOT}/alice" and shell == "/usr/sbin/nologin"


def test_hashes_are_stable_so_an_unchanged_config_keeps_the_vm() -> None:
    s = settings(users=[GOOD_USER])
    assert render.cloud_config(s, IP, SEED) == render.cloud_config(s, IP, SEED)


def test_hashes_differ_per_stack_and_per_password() -> None:
    s = settings(users=[GOOD_USER])
    other = settings(users=[{"name": "alice", "password": "another-password"}])
    assert render.users_file(s, SEED) != render.users_file(s, "ftpstack/prod/ftp")
    assert render.users_file(s, SEED) != render.users_file(other, SEED)


def test_hash_rounds_follow_the_setting() -> None:
    text = render.users_file(settings(users=[GOOD_USER], passwordHashRounds=20000), SEED)
    assert "$6$rounds=20000$" in text


# -- sysctl and cloud-config -----------------------------------------------------------------


def test_sysctl_sets_the_three_keepalive_values() -> None:
    text = render.sysctl_conf(settings(keepaliveIdleSeconds=50, keepaliveIntervalSeconds=20))
    values = dict(
        line.split(" = ") for line in text.splitlines() if line and not line.startswith("#")
    )
    assert values == {
        "net.ipv4.tcp_keepalive_time": "50",
        "net.ipv4.tcp_keepalive_intvl": "20",
        "net.ipv4.tcp_keepalive_probes": "4",
    }


def test_cloud_config_installs_writes_applies_and_restarts() -> None:
    document = cloud(settings(users=[GOOD_USER]))
    assert document["packages"] == ["proftpd-core"]
    files = {f["path"]: f for f in document["write_files"]}
    assert set(files) == {
        render.PROFTPD_CONF,
        render.USERS_FILE,
        render.GROUPS_FILE,
        render.SYSCTL_FILE,
    }
    # proftpd's files wait for the package (no dpkg conffile prompt); the users file is private.
    assert files[render.PROFTPD_CONF].get("defer") is True
    assert files[render.USERS_FILE]["permissions"] == "0600"
    assert files[render.SYSCTL_FILE].get("defer") is None
    commands = [c if isinstance(c, str) else " ".join(c) for c in document["runcmd"]]
    assert commands[0] == f"sysctl -p {render.SYSCTL_FILE}"
    assert commands[-2:] == ["systemctl enable proftpd", "systemctl restart proftpd"]
    assert any(c.endswith(f"{render.FTP_ROOT}/alice") for c in commands)


def test_cloud_config_never_contains_a_password() -> None:
    text = render.cloud_config(settings(users=[GOOD_USER]), IP, SEED)
    assert "alice-password-1" not in text
