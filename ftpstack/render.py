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

ServerName            "ftpstack"
ServerType            standalone
DefaultServer         on
Port                  {FTP_CONTROL_PORT}
UseIPv6               off
User                  proftpd
Group                 nogroup
Umask                 022 022
PidFile               /run/proftpd.pid
ScoreboardFile        /run/proftpd.scoreboard
DelayTable            /run/proftpd.delay
SystemLog             /var/log/proftpd/proftpd.log
TransferLog           /var/log/proftpd/xferlog

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
"""


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


def vm_files(settings: Settings, public_ip: str, seed: str) -> list[VmFile]:
    """Every file the VM gets, at the path it gets it."""
    return [
        VmFile(SYSCTL_FILE, sysctl_conf(settings)),
        # Deferred until the package is installed, so dpkg never meets a foreign conffile.
        VmFile(PROFTPD_CONF, proftpd_conf(settings, public_ip), deferred=True),
        VmFile(USERS_FILE, users_file(settings, seed), "0600", deferred=True, secret=True),
        VmFile(GROUPS_FILE, groups_file(), deferred=True),
    ]


def _setup_commands(settings: Settings) -> list[list[str] | str]:
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
    commands += [["systemctl", "enable", "proftpd"], ["systemctl", "restart", "proftpd"]]
    return commands


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
        "packages": ["proftpd-core"],
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
        "runcmd": _setup_commands(settings),
    }
    body = yaml.dump(
        document, Dumper=_LiteralDumper, sort_keys=False, width=100, default_flow_style=None
    )
    return (
        "#cloud-config\n"
        "# ftpstack: proftpd with passive mode and TCP keepalive tuned for Azure's idle timeout.\n"
        + body
    )
