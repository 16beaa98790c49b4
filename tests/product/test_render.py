"""L0: the live configuration as rendered — proftpd.conf, the users file, sysctl, logrotate, TLS."""

from __future__ import annotations

import re

from passlib.hash import sha512_crypt

from ftpstack import accounts, paths, render, sftp, system
from tests.support import GOOD_USER, IDENTITY, PASSWORD, certificate_pair, load_key, settings

IP = "198.51.100.10"
SEED = "ftpstack/dev/ftp"


def directive(conf: str, name: str) -> str:
    match = re.search(rf"^\s*{name}\s+(.+)$", conf, re.MULTILINE)
    assert match, f"{name} missing"
    return match.group(1).strip()


def test_proftpd_conf_carries_range_masquerade_and_keepalive() -> None:
    s = settings(keepaliveIdleSeconds=45, keepaliveIntervalSeconds=15, keepaliveCount=5)
    conf = render.proftpd_conf(s, IP)
    assert directive(conf, "PassivePorts") == "50000 50099"
    assert directive(conf, "MasqueradeAddress") == IP
    assert directive(conf, "SocketOptions") == "keepalive 45:5:15"
    assert directive(conf, "UseReverseDNS") == "off"
    assert directive(conf, "IdentLookups") == "off"
    assert directive(conf, "AuthOrder") == "mod_auth_file.c"
    assert directive(conf, "AuthUserFile") == paths.USERS_FILE
    assert directive(conf, "DefaultRoot") == "~"
    assert directive(conf, "DefaultAddress") == "0.0.0.0", "never depend on DNS to start"
    assert "<Anonymous" not in conf


def test_the_greeting_names_no_software_or_version() -> None:
    assert directive(render.proftpd_conf(settings(), IP), "ServerIdent") == 'on "FTP server ready."'


def test_max_clients_fits_the_passive_range() -> None:
    s = settings(passivePortStart=50000, passivePortEnd=50019, maxClients=10)
    conf = render.proftpd_conf(s, IP)
    max_clients = int(directive(conf, "MaxClients").split()[0])
    assert 2 * max_clients <= 20
    assert int(directive(conf, "MaxInstances")) >= max_clients


def test_one_address_cannot_hold_every_slot_for_long() -> None:
    conf = render.proftpd_conf(settings(maxClientsPerHost=3, loginTimeoutSeconds=20), IP)
    assert directive(conf, "MaxConnectionsPerHost").startswith("3 ")
    assert directive(conf, "TimeoutLogin") == "20"


def test_the_process_cap_holds_the_logged_in_slots_and_the_idle_flood_budget() -> None:
    """Each server (FTP, SFTP) counts its own clients: the cap holds both."""
    s = settings(maxClients=20, maxClientsPerHost=10, idleFloodHosts=5, sftp=False)
    assert directive(render.proftpd_conf(s, IP), "MaxInstances") == "70"  # 20 + 5 x 10
    both = s.model_copy(update={"sftp": True})
    assert directive(render.proftpd_conf(both, IP), "MaxInstances") == "140"  # 2 x (20 + 5 x 10)
    shared = settings(
        instances=2, exposure="load-balancer", maxClients=50, idleFloodHosts=8, sftp=False
    )
    assert directive(render.proftpd_conf(shared, IP, 1), "MaxInstances") == "105"  # 25 + 8 x 10


def test_each_instance_announces_only_its_slice_and_its_share() -> None:
    s = settings(instances=2, exposure="load-balancer", maxClients=50)
    first, second = render.proftpd_conf(s, IP, 0), render.proftpd_conf(s, IP, 1)
    assert directive(first, "PassivePorts") == "50000 50049"
    assert directive(second, "PassivePorts") == "50050 50099"
    assert directive(first, "MaxClients").split()[0] == "25"
    assert directive(first, "MasqueradeAddress") == directive(second, "MasqueradeAddress") == IP


def test_proftpd_conf_explains_why_keepalive_matters() -> None:
    conf = render.proftpd_conf(settings(), IP)
    assert "226 Transfer complete" in conf and "idle" in conf


def test_users_file_holds_hashes_never_passwords() -> None:
    s = settings(users=[GOOD_USER, {"name": "bob", "password": "bob-password-22"}])
    text = accounts.users_file(s, SEED, IDENTITY)
    assert PASSWORD not in text and "bob-password-22" not in text
    lines = text.splitlines()
    assert [line.split(":")[0] for line in lines] == ["alice", "bob", paths.CHECK_USER]
    _, hashed, uid, gid, _, home, shell = lines[0].split(":")
    checked = lines[2].split(":")[1]
    assert sha512_crypt.verify(IDENTITY.check_password, checked), "the check's own account"
    assert hashed.startswith("$6$")
    assert sha512_crypt.verify(PASSWORD, hashed)
    assert not sha512_crypt.verify("wrong-password", hashed)
    assert (uid, gid) == (str(paths.VIRTUAL_UID),) * 2
    assert home == f"{paths.FTP_ROOT}/alice" and shell == "/usr/sbin/nologin"


def test_hashes_are_stable_so_an_unchanged_config_is_no_change() -> None:
    s = settings(users=[GOOD_USER])
    assert render.live_files(s, IP, SEED, IDENTITY) == render.live_files(s, IP, SEED, IDENTITY)


def test_hashes_differ_per_stack_and_per_password() -> None:
    s = settings(users=[GOOD_USER])
    other = settings(users=[{"name": "alice", "password": "another-password"}])
    assert accounts.users_file(s, SEED, IDENTITY) != accounts.users_file(
        s, "ftpstack/prod/ftp", IDENTITY
    )
    assert accounts.users_file(s, SEED, IDENTITY) != accounts.users_file(other, SEED, IDENTITY)


def test_hash_rounds_follow_the_setting() -> None:
    text = accounts.users_file(
        settings(users=[GOOD_USER], passwordHashRounds=20000), SEED, IDENTITY
    )
    assert "$6$rounds=20000$" in text


def test_sysctl_sets_the_three_keepalive_values() -> None:
    text = system.sysctl_conf(settings(keepaliveIdleSeconds=50, keepaliveIntervalSeconds=20))
    values = dict(line.split(" = ") for line in text.splitlines() if line and line[0] != "#")
    assert values == {
        "net.ipv4.tcp_keepalive_time": "50",
        "net.ipv4.tcp_keepalive_intvl": "20",
        "net.ipv4.tcp_keepalive_probes": "4",
    }


def test_the_live_files_are_the_configuration_and_only_secrets_are_private() -> None:
    files = {f.path: f for f in render.live_files(settings(users=[GOOD_USER]), IP, SEED, IDENTITY)}
    assert set(files) == {
        paths.PROFTPD_CONF,
        paths.USERS_FILE,
        paths.GROUPS_FILE,
        paths.SYSCTL_FILE,
        paths.LOGROTATE_FILE,
        paths.REJOIN_SERVICE,
        paths.REJOIN_TIMER,
        paths.SELF_SIGNED_CERT,
        paths.SELF_SIGNED_KEY,
        *(sftp.host_key_path(kind) for kind in ("ed25519", "ecdsa", "rsa")),
    }
    for kind in ("ed25519", "ecdsa", "rsa"):
        host_key = files[sftp.host_key_path(kind)]
        assert host_key.mode == "0600" and host_key.secret
    on_the_os_disk = render.live_files(
        settings(users=[GOOD_USER], dataDiskSizeGb=0), IP, SEED, IDENTITY
    )
    assert paths.REJOIN_TIMER not in {f.path for f in on_the_os_disk}, "no storage to wait for"
    assert files[paths.USERS_FILE].mode == "0600" and files[paths.USERS_FILE].secret
    assert not files[paths.PROFTPD_CONF].secret and files[paths.PROFTPD_CONF].mode == "0644"


def test_tls_required_loads_mod_tls_and_requires_both_channels() -> None:
    conf = render.proftpd_conf(settings(tls="required"), IP)
    assert "LoadModule            mod_tls.c" in conf
    assert directive(conf, "TLSRequired") == "on"
    assert directive(conf, "TLSProtocol") == "TLSv1.2 TLSv1.3"
    assert "NoSessionReuseRequired" not in conf, "data connections must resume the session"
    assert directive(conf, "TLSRSACertificateFile") == paths.SELF_SIGNED_CERT
    assert not paths.SELF_SIGNED_KEY.startswith(paths.FTP_ROOT), "never on the shared storage"


def test_tls_allowed_and_off() -> None:
    assert directive(render.proftpd_conf(settings(tls="allowed"), IP), "TLSRequired") == "off"
    off = render.proftpd_conf(settings(tls="off"), IP)
    assert "mod_tls" not in off and "TLSEngine" not in off


def test_a_given_certificate_is_served_with_its_chain_and_its_key_kept_private() -> None:
    ca, ca_key = certificate_pair("Example CA", ca=True)
    leaf, key = certificate_pair("ftp.example.com", issuer=(ca, load_key(ca_key)))
    s = settings(tls="required", tlsCertificate=leaf + ca, tlsPrivateKey=key)
    conf = render.proftpd_conf(s, IP)
    files = {f.path: f for f in render.live_files(s, IP, SEED, IDENTITY)}
    cert, chain = (
        directive(conf, "TLSRSACertificateFile"),
        directive(conf, "TLSCertificateChainFile"),
    )
    assert files[cert].content.strip() == leaf.strip()
    assert files[chain].content.strip() == ca.strip()
    key_file = files[directive(conf, "TLSRSACertificateKeyFile")]
    assert key_file.mode == "0600" and key_file.secret
    alone = render.proftpd_conf(
        settings(tls="required", tlsCertificate=leaf, tlsPrivateKey=key), IP
    )
    assert "TLSCertificateChainFile" not in alone


def test_a_new_certificate_is_a_new_file() -> None:
    first, key1 = certificate_pair("ftp.example.com")
    second, key2 = certificate_pair("ftp.example.com")
    a = render.tls_files(settings(tls="required", tlsCertificate=first, tlsPrivateKey=key1))
    b = render.tls_files(settings(tls="required", tlsCertificate=second, tlsPrivateKey=key2))
    assert a and b and a.cert != b.cert and a.key != b.key


def test_read_only_users_and_upload_limits() -> None:
    users = [
        GOOD_USER,
        {"name": "bob", "password": "bob-password-22", "readOnly": True},
        {"name": "carl", "password": "carl-password-3", "maxUploadMb": 50},
    ]
    conf = render.proftpd_conf(settings(users=users), IP)
    assert re.search(r"<Limit WRITE>\s+DenyUser bob\s+</Limit>", conf)
    assert "MaxStoreFileSize      50 Mb user carl" in conf
    assert "alice" not in conf, "users without limits need no directive"


def test_ban_after_failed_logins_and_connection_floods() -> None:
    conf = render.proftpd_conf(
        settings(
            banMaxFailedLogins=4, banWindowSeconds=300, banSeconds=7200, banConnectsPerMinute=30
        ),
        IP,
    )
    assert directive(conf, "MaxLoginAttempts") == "1"
    events = re.findall(r"BanOnEvent\s+(.+)", conf)
    assert events[0].startswith("MaxLoginAttempts 4/00:05:00 02:00:00 ")
    assert events[1].startswith("TimeoutLogin 4/00:05:00 02:00:00 ")
    assert events[2].startswith("ClientConnectRate 30/00:01:00 02:00:00 ")
    assert "ClientConnectRate" not in render.proftpd_conf(settings(banConnectsPerMinute=0), IP)
    assert "mod_ban" not in render.proftpd_conf(settings(ban=False), IP)


def test_anonymous_is_off_by_default_and_read_only_when_on() -> None:
    assert "<Anonymous" not in render.proftpd_conf(settings(), IP)
    conf = render.proftpd_conf(settings(anonymous=True), IP)
    block = conf[conf.index("<Anonymous") :]
    assert block.startswith(f"<Anonymous {paths.PUBLIC_DIR}>")
    assert re.search(r"<Limit WRITE SITE_CHMOD>\s+DenyAll", block)
    users = accounts.users_file(settings(anonymous=True), SEED, IDENTITY)
    assert f"{paths.ANON_USER}:*:{paths.ANON_UID}:" in users, "no password, own uid"


def test_logs_are_rotated_with_a_reload_never_a_restart() -> None:
    conf = render.proftpd_conf(settings(), IP)
    assert directive(conf, "TransferLog") == f"{paths.LOG_DIR}/xferlog"
    assert directive(conf, "ExtendedLog").startswith(f"{paths.LOG_DIR}/auth.log AUTH")
    rotate = system.logrotate_conf()
    for log in paths.LOGS:
        assert f"{paths.LOG_DIR}/{log}" in rotate
    assert f"{paths.AGENT_COMMAND} reload" in rotate
    assert "restart" not in rotate.split("postrotate", 1)[1]
    assert paths.LOGROTATE_FILE == "/etc/logrotate.d/proftpd-core", "Debian's file is replaced"
