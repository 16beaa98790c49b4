"""Pure rendering of what goes onto the VM: proftpd.conf, the users file, sysctl.d, cloud-config.

Every function here is a function of `Settings` (plus the public IP address, which only Azure
knows, and a salt seed), so the whole VM configuration can be tested without Pulumi, fed to
`proftpd --configtest` and `cloud-init schema`, and run for real in the local Azure model.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import yaml
from passlib.hash import sha512_crypt

from ftpstack.settings import FTP_CONTROL_PORT, Settings

PROFTPD_CONF = "/etc/proftpd/proftpd.conf"
USERS_FILE = "/etc/proftpd/ftpd.passwd"
GROUPS_FILE = "/etc/proftpd/ftpd.group"
SYSCTL_FILE = "/etc/sysctl.d/60-ftpstack-keepalive.conf"
FTP_ROOT = "/srv/ftp"
# The one OS account that owns every virtual user's files; fixed so the users file can name it.
VIRTUAL_UID = 2001
VIRTUAL_GROUP = "ftpvirtual"
# Anonymous sessions run as their own uid, which owns nothing: read-only by file permissions
# too, not only by proftpd's <Limit WRITE>.
ANON_UID = 2002
ANON_USER = "ftpanon"
PUBLIC_DIR = f"{FTP_ROOT}/public"
TLS_DIR = "/etc/proftpd/tls"
TLS_CERT = f"{TLS_DIR}/ftpstack.crt"
TLS_KEY = f"{TLS_DIR}/ftpstack.key"
LOGROTATE_FILE = "/etc/logrotate.d/ftpstack"
LOG_DIR = "/var/log/proftpd"
# Azure's udev rules name a data disk by its LUN; the VM attaches the data disk at this LUN.
DATA_DISK_LUN = 0
DATA_DISK_DEVICE = f"/dev/disk/azure/scsi1/lun{DATA_DISK_LUN}"
# proftpd starts only once the data disk is mounted: never serve (and accept uploads into) the
# OS disk's empty /srv/ftp, which a VM replacement would throw away.
PROFTPD_DROPIN = "/etc/systemd/system/proftpd.service.d/ftpstack-data-disk.conf"
DATA_DISK_LABEL = "ftpdata"
SALT_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class VmFile:
    """One file that cloud-init writes; `deferred` files wait until packages are installed."""

    path: str
    content: str
    permissions: str = "0644"
    deferred: bool = False
    secret: bool = False


def keepalive_spec(settings: Settings) -> str:
    """proftpd's `SocketOptions keepalive IDLE:COUNT:INTVL`."""
    return (
        f"{settings.keepalive_idle_seconds}:{settings.keepalive_count}:"
        f"{settings.keepalive_interval_seconds}"
    )


def max_instances(settings: Settings) -> int:
    # Sessions that never log in use no passive port, so the process cap may exceed MaxClients;
    # twice MaxClients keeps a port-scan from locking customers out while bounding memory.
    return 2 * settings.max_clients


def proftpd_conf(settings: Settings, public_ip: str) -> str:
    """A complete proftpd.conf for Debian 12's proftpd-core 1.3.8 (no Debian defaults included)."""
    idle = settings.idle_timeout_seconds
    return f"""\
# proftpd.conf written by ftpstack (cloud-init). Local edits are lost when the VM is replaced:
# change the stack config and run `pulumi up` instead.

{_modules(settings)}ServerName            "ftpstack"
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
PidFile               /run/proftpd.pid
ScoreboardFile        /run/proftpd.scoreboard
DelayTable            /run/proftpd.delay
SystemLog             {LOG_DIR}/proftpd.log
# Every upload and download (xferlog format), and every login attempt with its outcome.
TransferLog           {LOG_DIR}/xferlog
LogFormat             auth "%t %a user=%u %s %r"
ExtendedLog           {LOG_DIR}/auth.log AUTH auth

# No lookups per login: a slow or unreachable resolver would otherwise add seconds to every
# connection (reverse DNS), and ident is never answered on the Internet.
UseReverseDNS         off
<IfModule mod_ident.c>
  IdentLookups        off
</IfModule>

# --- Passive mode behind Azure ------------------------------------------------------------
# Clients reach this VM through Azure's public IP ({public_ip}); the VM itself only knows its
# private address. MasqueradeAddress makes the PASV/EPSV replies name the public address, and
# PassivePorts keeps the data ports inside the range the NSG (or the load-balancer rules) opens.
MasqueradeAddress     {public_ip}
PassivePorts          {settings.passive_port_start} {settings.passive_port_end}
# When every port of PassivePorts is busy proftpd silently falls back to a random port outside
# the range, which Azure then blocks. MaxClients stays at or below half the range, so that
# never happens; the next client is refused cleanly at login instead of hanging.
MaxClients            {settings.max_clients} "Too many users (%m) are connected; try again later"
MaxInstances          {max_instances(settings)}

# --- Keepalive: why long transfers finish ---------------------------------------------------
# While a file moves on the data connection, the control connection carries nothing. Azure's
# load balancer / public IP forgets a flow that is idle for {idle} s (idleTimeoutInMinutes) and
# then drops its packets without a reset: the transfer completes but the client never receives
# "226 Transfer complete" and hangs or fails. TCP keepalive probes on the control connection
# keep the flow alive: the first after IDLE s of silence, then one every INTVL s, COUNT in all
# (IDLE:COUNT:INTVL below). The kernel gets the same values from {SYSCTL_FILE}.
SocketOptions         keepalive {keepalive_spec(settings)}

TimeoutNoTransfer     600
TimeoutStalled        600
TimeoutIdle           1200

# --- Virtual users --------------------------------------------------------------------------
# Only the users file: no PAM, no /etc/passwd. Trying PAM first costs a failed-login delay of
# about 2 s on every login of a virtual user.
AuthOrder             mod_auth_file.c
AuthUserFile          {USERS_FILE}
AuthGroupFile         {GROUPS_FILE}
RequireValidShell     off
# Each user is jailed to their home directory under {FTP_ROOT}.
DefaultRoot           ~
AllowOverwrite        on
ShowSymlinks          off
ListOptions           "-l"
DenyFilter            \\*.*/
<Limit SITE_CHMOD>
  DenyAll
</Limit>
{_users_section(settings)}{_ban_section(settings)}{_tls_section(settings)}{_anonymous_section(settings)}"""


def _modules(settings: Settings) -> str:
    wanted = (("mod_tls.c", settings.tls != "off"), ("mod_ban.c", settings.ban))
    modules = [module for module, on in wanted if on]
    if not modules:
        return ""
    lines = "".join(f"LoadModule            {m}\n" for m in modules)
    return (
        "# Debian builds these as modules; only what this server uses is loaded.\n"
        f"ModulePath            /usr/lib/proftpd\n{lines}\n"
    )


def _users_section(settings: Settings) -> str:
    out = ""
    read_only = [u.name for u in settings.users if u.read_only]
    if read_only:
        out += (
            "\n# Read-only users: they list and download, never upload, delete or rename.\n"
            f"<Limit WRITE>\n  DenyUser {','.join(read_only)}\n</Limit>\n"
        )
    limits = [u for u in settings.users if u.max_upload_mb is not None]
    if limits:
        out += "\n# Per-user upload limits (a larger upload is aborted).\n"
        out += "".join(
            f"MaxStoreFileSize      {u.max_upload_mb} Mb user {u.name}\n" for u in limits
        )
    return out


def _ban_section(settings: Settings) -> str:
    if not settings.ban:
        return ""
    window, duration = _hms(settings.ban_window_seconds), _hms(settings.ban_seconds)
    ban_rule = f"{settings.ban_max_failed_logins}/{window} {duration}"
    return f"""
# --- Brute-force protection -----------------------------------------------------------------
# One failed password ends the session (MaxLoginAttempts 1), and each such ending is an
# event: {settings.ban_max_failed_logins} of them from one address within {window} ban that
# address for {duration}.
MaxLoginAttempts      1
<IfModule mod_ban.c>
  BanEngine           on
  BanLog              {LOG_DIR}/ban.log
  BanTable            /run/proftpd.ban
  BanOnEvent          MaxLoginAttempts {ban_rule} "Banned: too many failed logins"
</IfModule>
"""


def _tls_section(settings: Settings) -> str:
    if settings.tls == "off":
        return ""
    required = settings.tls == "required"
    policy = (
        "control and data connections must be encrypted"
        if required
        else "clients may encrypt (AUTH TLS); plaintext logins still work"
    )
    return f"""
# --- FTPS (explicit, AUTH TLS) --------------------------------------------------------------
# Inside TLS no NAT device can rewrite the PASV reply, so MasqueradeAddress (above) is what
# makes encrypted passive transfers work through Azure.
<IfModule mod_tls.c>
  TLSEngine           on
  # tls = {settings.tls}: {policy}.
  TLSRequired         {"on" if required else "off"}
  TLSProtocol         TLSv1.2 TLSv1.3
  TLSRSACertificateFile    {TLS_CERT}
  TLSRSACertificateKeyFile {TLS_KEY}
  TLSVerifyClient     off
  TLSRenegotiate      none
  # Data connections must resume the control connection's TLS session (proftpd's default, kept):
  # it proves a data connection comes from the logged-in client. curl, lftp and FileZilla
  # resume sessions; with TLS 1.2 through session tickets, TLS 1.3 always uses tickets.
  TLSSessionTickets   on
  TLSLog              {LOG_DIR}/tls.log
</IfModule>
"""


def _anonymous_section(settings: Settings) -> str:
    if not settings.anonymous:
        return ""
    return f"""
# --- Anonymous downloads --------------------------------------------------------------------
# "ftp" and "anonymous" log in to {PUBLIC_DIR} only, as an account that owns nothing there.
<Anonymous {PUBLIC_DIR}>
  User                {ANON_USER}
  Group               {VIRTUAL_GROUP}
  UserAlias           anonymous {ANON_USER}
  UserAlias           ftp {ANON_USER}
  RequireValidShell   off
  MaxClients          {settings.max_clients}
  <Limit WRITE SITE_CHMOD>
    DenyAll
  </Limit>
</Anonymous>
"""


def _hms(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def salt_for(seed: str, user: str) -> str:
    """A stable salt per stack and user, so an unchanged password renders unchanged user-data
    (a random salt would change the user-data, and so replace the VM, on every `pulumi up`)."""
    digest = hashlib.sha256(f"ftpstack/{seed}/{user}".encode()).digest()
    return "".join(SALT_ALPHABET[b % 64] for b in digest[:16])


def password_hash(settings: Settings, seed: str, name: str, password: str) -> str:
    """SHA-512 crypt, which Debian 12's proftpd verifies through libcrypt."""
    scheme = sha512_crypt.using(salt=salt_for(seed, name), rounds=settings.password_hash_rounds)
    return str(scheme.hash(password))


def users_file(settings: Settings, seed: str) -> str:
    """proftpd's AuthUserFile: passwd(5) lines with password hashes, never plaintext."""
    lines = [
        f"{user.name}:{password_hash(settings, seed, user.name, user.password.get_secret_value())}"
        f":{VIRTUAL_UID}:{VIRTUAL_UID}::{FTP_ROOT}/{user.name}:/usr/sbin/nologin"
        for user in settings.users
    ]
    if settings.anonymous:
        # The account anonymous sessions run as; "*" is no password, so nobody logs in as it.
        lines.append(f"{ANON_USER}:*:{ANON_UID}:{VIRTUAL_UID}::{PUBLIC_DIR}:/usr/sbin/nologin")
    return "".join(f"{line}\n" for line in lines)


def groups_file() -> str:
    return f"{VIRTUAL_GROUP}:x:{VIRTUAL_UID}:\n"


def sysctl_conf(settings: Settings) -> str:
    return f"""\
# Written by ftpstack. TCP keepalive for every socket that asks for it: Azure forgets a flow that
# is idle for {settings.idle_timeout_seconds} s, and the kernel default (7200 s) is far too late.
# proftpd also sets these per socket (SocketOptions keepalive); this covers everything else.
net.ipv4.tcp_keepalive_time = {settings.keepalive_idle_seconds}
net.ipv4.tcp_keepalive_intvl = {settings.keepalive_interval_seconds}
net.ipv4.tcp_keepalive_probes = {settings.keepalive_count}
"""


def logrotate_conf() -> str:
    # Debian's proftpd-core rotates proftpd.log and xferlog; these are the logs ftpstack adds.
    return f"""\
# Written by ftpstack.
{LOG_DIR}/auth.log {LOG_DIR}/tls.log {LOG_DIR}/ban.log {{
\tweekly
\tmissingok
\trotate 8
\tcompress
\tdelaycompress
\tnotifempty
\tcreate 640 root adm
\tsharedscripts
\tpostrotate
\t\tinvoke-rc.d proftpd restart >/dev/null 2>&1 || true
\tendscript
}}
"""


def vm_files(settings: Settings, public_ip: str, seed: str) -> list[VmFile]:
    """Every file the VM gets, at the path it gets it."""
    files = [
        VmFile(SYSCTL_FILE, sysctl_conf(settings)),
        # Deferred until the package is installed, so dpkg never meets a foreign conffile.
        VmFile(PROFTPD_CONF, proftpd_conf(settings, public_ip), deferred=True),
        VmFile(USERS_FILE, users_file(settings, seed), "0600", deferred=True, secret=True),
        VmFile(GROUPS_FILE, groups_file(), deferred=True),
        VmFile(LOGROTATE_FILE, logrotate_conf(), deferred=True),
    ]
    if settings.data_disk_size_gb:
        files.append(VmFile(PROFTPD_DROPIN, f"[Unit]\nRequiresMountsFor={FTP_ROOT}\n"))
    if settings.tls != "off" and settings.tls_certificate:
        files += [
            VmFile(TLS_CERT, settings.tls_certificate.strip() + "\n", deferred=True),
            VmFile(
                TLS_KEY,
                settings.tls_private_key.get_secret_value().strip() + "\n",
                "0600",
                deferred=True,
                secret=True,
            ),
        ]
    return files


def _self_signed_certificate(settings: Settings, public_ip: str) -> str:
    """Made once, at first boot, on the VM: the private key never leaves it."""
    subject = settings.fqdn or public_ip
    names = f"DNS:{settings.fqdn},IP:{public_ip}" if settings.fqdn else f"IP:{public_ip}"
    return (
        f"test -s {TLS_KEY} || {{ install -d -m 0755 {TLS_DIR} && "
        f"openssl req -x509 -newkey rsa:3072 -sha256 -days 825 -nodes "
        f"-subj /CN={subject} -addext subjectAltName={names} "
        f"-keyout {TLS_KEY} -out {TLS_CERT} 2>/dev/null && chmod 0600 {TLS_KEY}; }}"
    )


def _setup_commands(settings: Settings, public_ip: str) -> list[list[str] | str]:
    uid = str(VIRTUAL_UID)
    commands: list[list[str] | str] = [
        ["sysctl", "-p", SYSCTL_FILE],
        f"getent group {VIRTUAL_GROUP} >/dev/null || groupadd --system --gid {uid} {VIRTUAL_GROUP}",
        f"getent passwd {VIRTUAL_GROUP} >/dev/null || useradd --system --uid {uid} --gid {uid} "
        f"--home-dir {FTP_ROOT} --no-create-home --shell /usr/sbin/nologin {VIRTUAL_GROUP}",
        ["install", "-d", "-o", "root", "-g", "root", "-m", "0755", FTP_ROOT],
    ]
    commands += [
        ["install", "-d", "-o", uid, "-g", uid, "-m", "0750", f"{FTP_ROOT}/{user.name}"]
        for user in settings.users
    ]
    if settings.anonymous:
        # Files to publish are put here by an administrator (root); anonymous only reads.
        commands.append(["install", "-d", "-o", "root", "-g", "root", "-m", "0755", PUBLIC_DIR])
    if settings.tls != "off" and not settings.tls_certificate:
        commands.append(_self_signed_certificate(settings, public_ip))
    if settings.data_disk_size_gb:
        commands.append(["systemctl", "daemon-reload"])
    commands += [["systemctl", "enable", "proftpd"], ["systemctl", "restart", "proftpd"]]
    return commands


def packages(settings: Settings) -> list[str]:
    wanted = ["proftpd-core"]  # with mod_ban
    if settings.tls != "off":
        wanted.append("proftpd-mod-crypto")  # mod_tls
        if not settings.tls_certificate:
            wanted.append("openssl")  # the self-signed certificate at first boot
    return wanted


class _LiteralDumper(yaml.SafeDumper):
    """Multi-line strings as YAML literal blocks, so the user-data reads like the files."""


def _str_representer(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_LiteralDumper.add_representer(str, _str_representer)


def cloud_config(settings: Settings, public_ip: str, seed: str) -> str:
    """The #cloud-config user-data: install proftpd, write its files, tune the kernel, start it."""
    document = {
        "package_update": True,
        "packages": packages(settings),
        "write_files": [
            {
                "path": f.path,
                "owner": "root:root",
                "permissions": f.permissions,
                **({"defer": True} if f.deferred else {}),
                "content": f.content,
            }
            for f in vm_files(settings, public_ip, seed)
        ],
        "runcmd": _setup_commands(settings, public_ip),
    }
    if settings.data_disk_size_gb:
        # The customers' files live on their own disk, mounted at the FTP root: formatted only
        # when it has no filesystem yet (a VM replaced with new user-data finds its files).
        document["fs_setup"] = [
            {
                "label": DATA_DISK_LABEL,
                "filesystem": "ext4",
                "device": DATA_DISK_DEVICE,
                # "auto": formats the disk only when it is empty and reuses an ext4 filesystem
                # labelled ftpdata. ("none" would skip cloud-init's check and run mkfs on every
                # new instance, wiping the customers' files at each VM replacement: found at L4.)
                "partition": "auto",
                "overwrite": False,
            }
        ]
        document["mounts"] = [
            [f"LABEL={DATA_DISK_LABEL}", FTP_ROOT, "ext4", "defaults,nofail", "0", "2"]
        ]
    body = yaml.dump(
        document, Dumper=_LiteralDumper, sort_keys=False, width=100, default_flow_style=None
    )
    return (
        "#cloud-config\n"
        "# ftpstack: proftpd with passive mode and TCP keepalive tuned for Azure's idle timeout.\n"
        + body
    )
