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
    document = cloud(settings(users=[GOOD_USER], tls="off"))
    assert document["packages"] == ["proftpd-core"]
    files = {f["path"]: f for f in document["write_files"]}
    assert set(files) == {
        render.PROFTPD_CONF,
        render.USERS_FILE,
        render.GROUPS_FILE,
        render.SYSCTL_FILE,
        render.LOGROTATE_FILE,
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


# -- production features ---------------------------------------------------------------------

ALICE_BOB = [GOOD_USER, {"name": "bob", "password": "bob-password-22", "readOnly": True}]


def test_tls_required_loads_mod_tls_and_requires_both_channels() -> None:
    conf = render.proftpd_conf(settings(tls="required"), IP)
    assert directive(conf, "LoadModule") in {"mod_tls.c", "mod_ban.c"}
    assert "LoadModule            mod_tls.c" in conf
    assert directive(conf, "TLSRequired") == "on"
    assert directive(conf, "TLSProtocol") == "TLSv1.2 TLSv1.3"
    assert "NoSessionReuseRequired" not in conf, "data connections must resume the session"
    assert directive(conf, "MasqueradeAddress") == IP, "inside TLS nothing else rewrites PASV"


def test_tls_allowed_and_off() -> None:
    assert directive(render.proftpd_conf(settings(tls="allowed"), IP), "TLSRequired") == "off"
    off = render.proftpd_conf(settings(tls="off"), IP)
    assert "mod_tls" not in off and "TLSEngine" not in off
    assert render.packages(settings(tls="off")) == ["proftpd-core"]


def test_self_signed_certificate_is_made_on_the_vm_for_the_fqdn() -> None:
    document = cloud(settings(tls="required", dnsLabel="files-acme"))
    assert document["packages"] == ["proftpd-core", "proftpd-mod-crypto", "openssl"]
    commands = [c for c in document["runcmd"] if isinstance(c, str) and "openssl req" in c]
    assert len(commands) == 1
    assert commands[0].startswith(f"test -s {render.TLS_KEY} ||"), "made once, never replaced"
    assert "/CN=files-acme.westeurope.cloudapp.azure.com" in commands[0]
    assert f"IP:{IP}" in commands[0]
    assert render.TLS_KEY not in {f["path"] for f in document["write_files"]}


def test_a_given_certificate_is_written_and_its_key_kept_private() -> None:
    from tests.test_l0_settings import certificate_pair

    cert, key = certificate_pair("ftp.example.com")
    s = settings(tls="required", tlsCertificate=cert, tlsPrivateKey=key)
    files = {f.path: f for f in render.vm_files(s, IP, SEED)}
    assert files[render.TLS_CERT].content.strip() == cert.strip()
    assert files[render.TLS_KEY].permissions == "0600" and files[render.TLS_KEY].secret
    assert "openssl" not in render.packages(s)


def test_read_only_users_and_upload_limits() -> None:
    users = [*ALICE_BOB, {"name": "carl", "password": "carl-password-3", "maxUploadMb": 50}]
    conf = render.proftpd_conf(settings(users=users), IP)
    assert re.search(r"<Limit WRITE>\s+DenyUser bob\s+</Limit>", conf)
    assert "MaxStoreFileSize      50 Mb user carl" in conf
    assert "alice" not in conf, "users without limits need no directive"


def test_ban_after_n_failed_logins_in_a_window() -> None:
    conf = render.proftpd_conf(
        settings(banMaxFailedLogins=4, banWindowSeconds=300, banSeconds=7200), IP
    )
    assert directive(conf, "MaxLoginAttempts") == "1"
    assert directive(conf, "BanOnEvent").startswith("MaxLoginAttempts 4/00:05:00 02:00:00 ")
    assert "mod_ban" not in render.proftpd_conf(settings(ban=False), IP)


def test_anonymous_is_off_by_default_and_read_only_when_on() -> None:
    assert "<Anonymous" not in render.proftpd_conf(settings(), IP)
    conf = render.proftpd_conf(settings(anonymous=True), IP)
    block = conf[conf.index("<Anonymous") :]
    assert block.startswith(f"<Anonymous {render.PUBLIC_DIR}>")
    assert re.search(r"<Limit WRITE SITE_CHMOD>\s+DenyAll", block)
    users = render.users_file(settings(anonymous=True), SEED)
    assert f"{render.ANON_USER}:*:{render.ANON_UID}:" in users, "no password, own uid"


def test_data_disk_is_formatted_only_when_empty_and_mounted_at_the_ftp_root() -> None:
    document = cloud(settings(dataDiskSizeGb=128))
    (fs,) = document["fs_setup"]
    assert fs["device"] == render.DATA_DISK_DEVICE and fs["overwrite"] is False
    assert fs["partition"] == "auto", "cloud-init skips its existing-filesystem check on 'none'"
    assert fs["label"] == render.DATA_DISK_LABEL
    (mount,) = document["mounts"]
    assert mount[:2] == [f"LABEL={render.DATA_DISK_LABEL}", render.FTP_ROOT]
    dropin = {f["path"]: f["content"] for f in document["write_files"]}[render.PROFTPD_DROPIN]
    assert f"RequiresMountsFor={render.FTP_ROOT}" in dropin
    assert "fs_setup" not in cloud(settings())


def test_logs_are_rotated() -> None:
    conf = render.proftpd_conf(settings(), IP)
    assert directive(conf, "TransferLog") == f"{render.LOG_DIR}/xferlog"
    assert directive(conf, "ExtendedLog").startswith(f"{render.LOG_DIR}/auth.log AUTH")
    rotate = render.logrotate_conf()
    assert f"{render.LOG_DIR}/auth.log" in rotate and "rotate" in rotate
