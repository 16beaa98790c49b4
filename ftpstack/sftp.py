"""SFTP from the same proftpd (mod_sftp, in Debian's proftpd-mod-crypto): the same users and
passwords, the same jail, limits and bans, on port 22 of the same address — pure renderers of
its part of the live configuration.

- The server is a `<VirtualHost>` of the same daemon on port 22: what both servers share (the
  users file, the jail, the limits, the bans) is in proftpd.conf's `<Global>` block; the VM's
  own sshd moves to port 2200 (`ftpstack.rules.admin_ssh_port`).
- Host keys are the stack's identity's (`ftpstack.identity`: made once, kept in the state): the
  same on every instance and after every replacement, so clients never see "REMOTE HOST
  IDENTIFICATION HAS CHANGED"; their public halves are exported for pinning (`sftpHostKeys`).
- Modern algorithms only: AES-GCM and AES-CTR with SHA-2 MACs (encrypt-then-MAC first), curve25519
  and ECDH key exchange, SHA-2 RSA signatures. (proftpd 1.3.8 has no chacha20-poly1305, and
  cannot refuse SHA-1 signatures on a client's own RSA key: `SFTPAuthPublicKeys` came later.)
- An idle session survives Azure's idle timeout like an FTP control connection: TCP keepalive on
  its socket (`SocketOptions`, per server), timed from the same settings, and SSH's own client
  alive messages, which also end the sessions of clients that vanished.
- A user's `sshKeys` log them in instead of their password (RFC 4716 files, the format mod_sftp
  reads). Upload limits (`maxUploadMb`) cannot be enforced over SFTP by proftpd 1.3.8 (it checks
  a file's size only after the client's writes landed), so a user with one uploads over FTP only.
"""

from __future__ import annotations

import base64
import textwrap

from ftpstack import paths
from ftpstack.identity import Identity
from ftpstack.rules import SFTP_PORT, admin_ssh_port
from ftpstack.settings import Settings
from ftpstack.vmfile import VmFile

HOST_KEY_DIR = "/etc/proftpd/sftp"
AUTHORIZED_DIR = f"{HOST_KEY_DIR}/authorized_keys"
SSHD_DROPIN = "/etc/ssh/sshd_config.d/ftpstack.conf"
# Ubuntu starts sshd by socket activation: its port is the socket's.
SSH_SOCKET_DROPIN = "/etc/systemd/system/ssh.socket.d/ftpstack.conf"
CIPHERS = "aes256-gcm@openssh.com aes128-gcm@openssh.com aes256-ctr aes192-ctr aes128-ctr"
DIGESTS = "hmac-sha2-512-etm@openssh.com hmac-sha2-256-etm@openssh.com hmac-sha2-512 hmac-sha2-256"
KEY_EXCHANGES = (
    "curve25519-sha256 curve25519-sha256@libssh.org ecdh-sha2-nistp256 ecdh-sha2-nistp384 "
    "ecdh-sha2-nistp521 diffie-hellman-group16-sha512 diffie-hellman-group18-sha512 "
    "diffie-hellman-group14-sha256"
)
HOST_KEY_ALGORITHMS = "ssh-ed25519 ecdsa-sha2-nistp256 rsa-sha2-512 rsa-sha2-256"


def host_key_path(kind: str) -> str:
    return f"{HOST_KEY_DIR}/ssh_host_{kind}_key"


def vhost(settings: Settings, keepalive: str) -> str:
    """The SFTP server: proftpd.conf's `<VirtualHost>` on port 22."""
    if not settings.sftp:
        return ""
    host_keys = "".join(
        f"  SFTPHostKey         {host_key_path(kind)}\n" for kind in ("ed25519", "ecdsa", "rsa")
    )
    no_upload = sorted(
        {u.name for u in settings.users if u.read_only or u.max_upload_mb is not None}
    )
    writes = (
        "  # Read-only users, and users with an upload limit (which proftpd cannot hold over\n"
        "  # SFTP): they list and download here, never upload, delete or rename.\n"
        f"  <Limit WRITE>\n    DenyUser {','.join(no_upload)}\n  </Limit>\n"
        if no_upload
        else ""
    )
    alive = max(1, settings.keepalive_interval_seconds)
    return f"""
# --- SFTP (mod_sftp): the same users, jail, limits and bans, on port {SFTP_PORT} ----------
# The shared directives are in <Global> above; what is SFTP's alone is here. The VM's own sshd
# listens on {admin_ssh_port(settings)} while this server has {SFTP_PORT}.
<VirtualHost 0.0.0.0>
  Port                {SFTP_PORT}
  ServerIdent         off
  SFTPEngine          on
  SFTPLog             {paths.LOG_DIR}/sftp.log
{host_keys}  SFTPHostKeys        {HOST_KEY_ALGORITHMS}
  SFTPAuthMethods     publickey password
  SFTPAuthorizedUserKeys file:{AUTHORIZED_DIR}/%u
  SFTPCiphers         {CIPHERS}
  SFTPDigests         {DIGESTS}
  SFTPKeyExchanges    {KEY_EXCHANGES}
  SFTPCompression     off
  # Permissions come from Umask, never from the client (no setuid bit, no world-writable file).
  SFTPOptions         IgnoreSFTPUploadPerms IgnoreSCPUploadPerms IgnoreSFTPSetPerms
  # An idle session between two transfers outlives Azure's idle timeout as FTP's control
  # connection does (TCP keepalive on the socket, the same timings), and SSH's own alive
  # messages end the sessions of clients that vanished ({settings.keepalive_count} unanswered).
  SocketOptions       keepalive {keepalive}
  SFTPClientAlive     {settings.keepalive_count} {alive}
{writes}</VirtualHost>
"""


def rfc4716(line: str) -> str:
    """An OpenSSH public key line as RFC 4716 text (what SFTPAuthorizedUserKeys reads)."""
    kind, body, *comment = line.split()
    blob = base64.b64decode(body)
    wrapped = "\n".join(textwrap.wrap(base64.b64encode(blob).decode(), 70))
    note = f'Comment: "{" ".join(comment) or kind}"\n' if comment or kind else ""
    return f"---- BEGIN SSH2 PUBLIC KEY ----\n{note}{wrapped}\n---- END SSH2 PUBLIC KEY ----\n"


def files(settings: Settings, identity: Identity) -> list[VmFile]:
    """The SFTP server's files: its host keys (the identity's), each key-using user's
    authorized keys."""
    if not settings.sftp:
        return []
    out = [
        VmFile(host_key_path(kind), pem, "0600", secret=True)
        for kind, pem in sorted(identity.ssh_host_keys.items())
    ]
    out += [
        VmFile(f"{AUTHORIZED_DIR}/{u.name}", "".join(rfc4716(k) for k in u.ssh_keys))
        for u in settings.users
        if u.ssh_keys
    ]
    return out


def sshd(settings: Settings) -> dict[str, object]:
    """Where the VM's own sshd (for administrators) listens, for the agent: it writes the
    drop-ins only on a real VM (systemd), never on a stand-in that shares the host's /etc."""
    return {
        "port": admin_ssh_port(settings),
        "dropin": SSHD_DROPIN,
        "socket_dropin": SSH_SOCKET_DROPIN,
    }


def known_hosts(names: list[str], identity: Identity) -> list[str]:
    """known_hosts lines for the stack's host keys under each name (DNS name, address)."""
    from ftpstack.identity import host_public_keys

    hosts = ",".join(names)
    return [f"{hosts} {key}" for _, key in sorted(host_public_keys(identity).items())]
