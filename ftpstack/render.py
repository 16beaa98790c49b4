"""Pure rendering of what changes on a running server: proftpd.conf, the users file, sysctl.d,
logrotate, and the TLS material — one instance's live configuration.

Every function is a function of `Settings` (plus the public IP address, which only Azure knows,
a salt seed and the instance number), so the whole configuration can be tested without Pulumi,
fed to `proftpd --configtest`, and run for real by the local stand-ins. What boots the machine
(packages, disks, the apply machinery) is `ftpstack.bootstrap`; how these files reach the VM and
are swapped in is `ftpstack.live` and `ftpstack.agent`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ftpstack import logschema, paths, sftp
from ftpstack.accounts import groups_file, users_file
from ftpstack.identity import Identity, certificate
from ftpstack.rules import max_clients_per_instance, max_instances, passive_slices
from ftpstack.settings import FTP_CONTROL_PORT, Settings
from ftpstack.settings.tls import split_chain
from ftpstack.system import logrotate_conf, rejoin_units, sysctl_conf
from ftpstack.vmfile import VmFile


@dataclass(frozen=True)
class TlsFiles:
    """Where proftpd finds its certificate, chain and key."""

    cert: str
    key: str
    chain: str | None = None


# proftpd's DenyFilter (a regular expression over every command's argument but PASS's; see
# _users_section): glob walks, MFF mode changes, and the characters proftpd would log unescaped.
DENY_FILTER = r'\*.*/|unix\.mode=|["\\]|[[:cntrl:]]'


def tls_files(settings: Settings) -> TlsFiles | None:
    """A supplied certificate lives under a name derived from its content (so a new one is a new
    file, tested before it is used); without one, the stack's own identity's certificate."""
    if settings.tls == "off":
        return None
    if not settings.tls_certificate:
        return TlsFiles(paths.SELF_SIGNED_CERT, paths.SELF_SIGNED_KEY)
    _, chain = split_chain(settings.tls_certificate)
    name = hashlib.sha256(settings.tls_certificate.encode()).hexdigest()[:12]
    return TlsFiles(
        f"{paths.TLS_DIR}/{name}.crt",
        f"{paths.TLS_DIR}/{name}.key",
        f"{paths.TLS_DIR}/{name}.chain.crt" if chain else None,
    )


def keepalive_spec(settings: Settings) -> str:
    """proftpd's `SocketOptions keepalive IDLE:COUNT:INTVL`."""
    return (
        f"{settings.keepalive_idle_seconds}:{settings.keepalive_count}:"
        f"{settings.keepalive_interval_seconds}"
    )


def proftpd_conf(settings: Settings, public_ip: str, instance: int = 0) -> str:
    """A complete proftpd.conf for Debian 12's proftpd-core 1.3.8 (no Debian defaults included)."""
    passive = passive_slices(settings)[instance]
    clients = max_clients_per_instance(settings)
    shared = "".join(
        [
            _limits_section(settings, clients),
            _timeouts_section(),
            _users_section(settings),
            _ban_events(settings),
        ]
    )
    return "".join(
        [
            _head(settings),
            _passive_section(settings, public_ip, passive.first, passive.last, clients),
            _keepalive_section(settings),
            "\n# === Shared by every server of this daemon (FTP on 21, SFTP on 22) "
            "=================\n<Global>\n",
            _indented(shared),
            "</Global>\n",
            _upload_limits_section(settings),
            _read_only_section(settings),
            _ban_section(settings),
            _tls_section(settings),
            _anonymous_section(settings, clients),
            sftp.vhost(settings, keepalive_spec(settings)),
        ]
    )


def _indented(text: str) -> str:
    return "".join(f"  {line}" if line.strip() else line for line in text.splitlines(True))


def _head(settings: Settings) -> str:
    wanted = (
        ("mod_tls.c", settings.tls != "off"),
        ("mod_ban.c", settings.ban),
        ("mod_sftp.c", settings.sftp),
    )
    modules = "".join(f"LoadModule            {m}\n" for m, on in wanted if on)
    if modules:
        modules = (
            "# Debian builds these as modules; only what this server uses is loaded.\n"
            f"ModulePath            /usr/lib/proftpd\n{modules}\n"
        )
    return f"""\
# proftpd.conf written by ftpstack. Local edits are overwritten by the next `pulumi up`:
# change the stack config instead.

{modules}ServerName            "ftpstack"
# The greeting names no software or version.
ServerIdent           on "FTP server ready."
ServerType            standalone
DefaultServer         on
Port                  {FTP_CONTROL_PORT}
# Never depend on DNS to start: without an address proftpd resolves the machine's hostname at
# startup and refuses to run ("no valid servers configured") when that lookup fails.
DefaultAddress        0.0.0.0
UseIPv6               off
User                  proftpd
Group                 nogroup
Umask                 022 022
PidFile               {paths.PID_FILE}
ScoreboardFile        /run/proftpd.scoreboard
DelayTable            /run/proftpd.delay
SystemLog             {paths.SYSTEM_LOG}
LogFormat             auth "%t %a user=%u %s %r"

# Local administration (`ftpdctl`: lift a ban), for root on the VM only.
ControlsEngine        on
ControlsSocket        {paths.CONTROLS_SOCKET}
ControlsSocketACL     allow user root
ControlsACLs          all allow user root
ControlsLog           {paths.LOG_DIR}/controls.log

# No lookups per login: a slow or unreachable resolver would otherwise add seconds to every
# connection (reverse DNS), and ident is never answered on the Internet.
UseReverseDNS         off
<IfModule mod_ident.c>
  IdentLookups        off
</IfModule>
"""


def _passive_section(
    settings: Settings, public_ip: str, first: int, last: int, clients: int
) -> str:
    k, per_host = settings.idle_flood_hosts, settings.max_clients_per_host
    lockout = -(-2 * clients // per_host)
    held = -(-settings.ban_max_failed_logins // per_host) * settings.login_timeout_seconds
    banned = (
        f"the address is banned\n# within {held} s (its TimeoutLogin ban, below)"
        if settings.ban
        else "without bans\n# (ban: false) the address may open them again for ever"
    )
    servers = " (for FTP and for SFTP: each server counts its own)" if settings.sftp else ""
    return f"""
# --- Passive mode behind Azure ------------------------------------------------------------
# Clients reach this VM through Azure's public IP ({public_ip}); the VM itself only knows its
# private address. MasqueradeAddress makes the PASV/EPSV replies name the public address, and
# PassivePorts keeps the data ports inside the ports the NSG (and the load balancer) forward to
# this server.
MasqueradeAddress     {public_ip}
PassivePorts          {first} {last}
# Every connection is a process from the moment it is accepted, logged in or not (MaxClients,
# below, counts only the logged-in ones), and at MaxInstances the master closes each new
# connection at once: customers get an EOF. So the cap is the {clients} logged-in slots{servers}
# plus room for {k} addresses each holding all {per_host} connections one address may hold
# without logging in (at twice MaxClients, {lockout} such addresses would lock every customer
# out); each such process holds about 1.5 MB. Those connections end at TimeoutLogin, and
# {banned}.
MaxInstances          {max_instances(settings)}
"""


def _limits_section(settings: Settings, clients: int) -> str:
    per = "" if settings.instances == 1 else f" (this instance's share of {settings.max_clients})"
    return f"""
# --- Limits ---------------------------------------------------------------------------------
# When every port of PassivePorts is busy proftpd silently falls back to a random port outside
# the range, which Azure then blocks. MaxClients{per} stays at or below half the range, so
# that never happens; the next client is refused cleanly at login instead of hanging.
MaxClients            {clients} "Too many users (%m) are connected; try again later"
MaxConnectionsPerHost {settings.max_clients_per_host} "Too many connections from your address"
TimeoutLogin          {settings.login_timeout_seconds}
# Every upload and download (xferlog format), and every login attempt with its outcome.
TransferLog           {paths.LOG_DIR}/xferlog
ExtendedLog           {paths.LOG_DIR}/auth.log AUTH auth
# The same as JSON, one object a line, for the Azure Monitor Agent (ftpstack.logschema).
{logschema.proftpd_directives()}
"""


def _keepalive_section(settings: Settings) -> str:
    idle = settings.idle_timeout_seconds
    return f"""
# --- Keepalive: why long transfers finish ---------------------------------------------------
# While a file moves on the data connection, the control connection carries nothing. Azure's
# load balancer / public IP forgets a flow that is idle for {idle} s (idleTimeoutInMinutes) and
# then drops its packets without a reset: the transfer completes but the client never receives
# "226 Transfer complete" and hangs or fails. TCP keepalive probes on the control connection
# keep the flow alive: the first after IDLE s of silence, then one every INTVL s, COUNT in all
# (IDLE:COUNT:INTVL below). The kernel gets the same values from {paths.SYSCTL_FILE}.
SocketOptions         keepalive {keepalive_spec(settings)}
"""


def _timeouts_section() -> str:
    return """
TimeoutNoTransfer     600
TimeoutStalled        600
TimeoutIdle           1200
"""


def _users_section(settings: Settings) -> str:
    out = f"""
# --- Virtual users --------------------------------------------------------------------------
# Only the users file, read at each login: no PAM, no /etc/passwd. (Trying PAM first costs a
# failed-login delay of about 2 s on every login of a virtual user.)
AuthOrder             mod_auth_file.c
AuthUserFile          {paths.USERS_FILE}
AuthGroupFile         {paths.GROUPS_FILE}
RequireValidShell     off
# Each user is jailed to their home directory under {paths.FTP_ROOT}.
DefaultRoot           ~
AllowOverwrite        on
# An upload that does not finish (aborted, cut, timed out, over its size limit) leaves no partial
# file for a partner to pick up as if it were whole.
DeleteAbortedStores   on
ShowSymlinks          off
ListOptions           "-l"
# Refused whole: glob patterns that walk up the tree ("*.*/"), any file mode change by MFF
# ("MFF UNIX.mode=4777; file" would set the setuid bit), as SITE CHMOD is below, and any
# argument with a double quote, a backslash or a control character — which proftpd 1.3.8 logs
# unescaped, so one such name (or user name) would make its JSON record unreadable to the
# agent, and which Windows allows in no file name either. mod_sftp's requests pass the same
# filter: its symlink request (two paths joined by a tab) is refused too, so no client makes a
# symlink, over SFTP as over FTP. Unquoted: inside quotes proftpd takes a backslash as an escape
# and the pattern would start with "*"; a double quote inside an unquoted word is an ordinary
# character.
DenyFilter            {DENY_FILTER} [NC]
<Limit SITE_CHMOD>
  DenyAll
</Limit>
"""
    return out


def _upload_limits_section(settings: Settings) -> str:
    """In the FTP server only: mod_sftp 1.3.8 ignores MaxStoreFileSize's `user` qualifier, so in
    <Global> one user's limit would bind every SFTP user (tests/local/net/test_sftp.py). Users
    with a limit do not upload over SFTP at all (ftpstack.sftp.vhost)."""
    limits = [u for u in settings.users if u.max_upload_mb is not None]
    if not limits:
        return ""
    return "\n# Per-user upload limits (a larger upload is aborted).\n" + "".join(
        f"MaxStoreFileSize      {u.max_upload_mb} Mb user {u.name}\n" for u in limits
    )


def _read_only_section(settings: Settings) -> str:
    read_only = [u.name for u in settings.users if u.read_only]
    if not read_only:
        return ""
    return (
        "\n# Read-only users: they list and download, never upload, delete or rename (over SFTP:\n"
        "# its own server's limit, below).\n"
        f"<Limit WRITE>\n  DenyUser {','.join(read_only)}\n</Limit>\n"
    )


def _ban_events(settings: Settings) -> str:
    if not settings.ban:
        return ""
    window, duration = _hms(settings.ban_window_seconds), _hms(settings.ban_seconds)
    rule = f"{settings.ban_max_failed_logins}/{window} {duration}"
    rate = ""
    if settings.ban_connects_per_minute:
        rate = (
            f"  BanOnEvent          ClientConnectRate {settings.ban_connects_per_minute}/00:01:00 "
            f'{duration} "Banned: too many connections"\n'
        )
    return f"""
MaxLoginAttempts      1
<IfModule mod_ban.c>
  # A ban made by either server holds for both.
  BanOptions          MatchAnyServer
  BanOnEvent          MaxLoginAttempts {rule} "Banned: too many failed logins"
  BanOnEvent          TimeoutLogin {rule} "Banned: connections that never logged in"
{rate}</IfModule>
"""


def _ban_section(settings: Settings) -> str:
    if not settings.ban:
        return ""
    window, duration = _hms(settings.ban_window_seconds), _hms(settings.ban_seconds)
    return f"""
# --- Brute-force and flood protection -------------------------------------------------------
# One failed password ends the session (MaxLoginAttempts 1, in <Global>), and each such ending
# is an event: {settings.ban_max_failed_logins} of them from one address within {window} ban that
# address for {duration}. So do as many connections that never logged in (TimeoutLogin): an
# address holding idle connections to keep customers out loses them, and from then on each of
# its connections ends at once. So do {settings.ban_connects_per_minute or "(off)"} connections
# in a minute. A ban holds for FTP and SFTP alike (MatchAnyServer), on this server (with several
# instances, each keeps its own). Lift one with `ftpdctl ban permit host <address>` on the VM
# (README, "Bans").
# BanEngine is read in the main server's context only (mod_ban 1.3.8 never turns on from
# <Global>), and from there it covers the SFTP server's sessions too.
<IfModule mod_ban.c>
  BanEngine           on
  BanLog              {paths.LOG_DIR}/ban.log
  BanTable            /run/proftpd.ban
  BanControlsACLs     all allow user root
</IfModule>
"""


def _tls_section(settings: Settings) -> str:
    files = tls_files(settings)
    if files is None:
        return ""
    required = settings.tls == "required"
    policy = (
        "control and data connections must be encrypted"
        if required
        else "clients may encrypt (AUTH TLS); plaintext logins still work"
    )
    chain = f"  TLSCertificateChainFile  {files.chain}\n" if files.chain else ""
    return f"""
# --- FTPS (explicit, AUTH TLS) --------------------------------------------------------------
# Inside TLS no NAT device can rewrite the PASV reply, so MasqueradeAddress (above) is what
# makes encrypted passive transfers work through Azure.
<IfModule mod_tls.c>
  TLSEngine           on
  # tls = {settings.tls}: {policy}.
  TLSRequired         {"on" if required else "off"}
  TLSProtocol         TLSv1.2 TLSv1.3
  # Forward secrecy only (ECDHE), authenticated encryption only (GCM, ChaCha20-Poly1305): a key
  # that leaks later does not decrypt recorded sessions. The server's order wins.
  TLSCipherSuite      ECDHE+AESGCM:ECDHE+CHACHA20
  TLSServerCipherPreference on
  TLSRSACertificateFile    {files.cert}
  TLSRSACertificateKeyFile {files.key}
{chain}  TLSVerifyClient     off
  TLSRenegotiate      none
  # Data connections must resume the control connection's TLS session (proftpd's default, kept):
  # it proves a data connection comes from the logged-in client. curl, lftp and FileZilla
  # resume sessions; with TLS 1.2 through session tickets, TLS 1.3 always uses tickets.
  TLSSessionTickets   on
  TLSLog              {paths.LOG_DIR}/tls.log
  # Throughput (docs/benchmarks.md): proftpd encrypts a download in pieces of the kernel's
  # default send buffer (16 KiB), each with its own timers and polls, at about twice nginx's CPU
  # per GiB. Larger pieces (SocketOptions sndbuf, or a larger net.ipv4.tcp_wmem default) halve
  # that on long downloads but stall short ones and a full socket (0.2 s sleeps): left out, as
  # are TCPNoDelay off and AES-128-GCM first (no better).
</IfModule>
"""


def _anonymous_section(settings: Settings, clients: int) -> str:
    if not settings.anonymous:
        return ""
    return f"""
# --- Anonymous downloads --------------------------------------------------------------------
# "ftp" and "anonymous" log in to {paths.PUBLIC_DIR} only, as an account that owns nothing there.
<Anonymous {paths.PUBLIC_DIR}>
  User                {paths.ANON_USER}
  Group               {paths.VIRTUAL_GROUP}
  UserAlias           anonymous {paths.ANON_USER}
  UserAlias           ftp {paths.ANON_USER}
  RequireValidShell   off
  MaxClients          {clients}
  <Limit WRITE SITE_CHMOD>
    DenyAll
  </Limit>
</Anonymous>
"""


def _hms(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def certificate_names(settings: Settings, public_ip: str) -> list[str]:
    """What the stack's own certificate names: its DNS name, if any, and its public address."""
    return [settings.fqdn, public_ip] if settings.fqdn else [public_ip]


def live_files(
    settings: Settings, public_ip: str, seed: str, identity: Identity, instance: int = 0
) -> list[VmFile]:
    """Every file of an instance's live configuration, at the path it gets on the VM."""
    files = [
        VmFile(paths.SYSCTL_FILE, sysctl_conf(settings)),
        VmFile(paths.PROFTPD_CONF, proftpd_conf(settings, public_ip, instance)),
        VmFile(paths.USERS_FILE, users_file(settings, seed, identity), "0600", secret=True),
        VmFile(paths.GROUPS_FILE, groups_file()),
        VmFile(paths.LOGROTATE_FILE, logrotate_conf()),
    ]
    supplied = tls_files(settings)
    if supplied is not None and settings.tls_certificate:
        leaf, chain = split_chain(settings.tls_certificate)
        key = settings.tls_private_key.get_secret_value().strip() + "\n"
        files += [VmFile(supplied.cert, leaf), VmFile(supplied.key, key, "0600", secret=True)]
        if supplied.chain:
            files.append(VmFile(supplied.chain, chain))
    elif supplied is not None:
        names = certificate_names(settings, public_ip)
        files += [
            VmFile(supplied.cert, certificate(identity, names[0], names)),
            VmFile(supplied.key, identity.tls_key, "0600", secret=True),
        ]
    if has_storage(settings):
        files += rejoin_units()
    return files + sftp.files(settings, identity)


def has_storage(settings: Settings) -> bool:
    """The FTP tree lives on storage of its own (a data disk or the shared share)."""
    return bool(settings.data_disk_size_gb or settings.shared_storage)
