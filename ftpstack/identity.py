"""The server's identity: its TLS key, its SFTP host keys and the post-deploy check's password,
made once on the deploying machine and kept in the Pulumi state (a secret).

Why there, and not on the VM or its storage: every instance must present the same identity, and
a replaced VM the same as the one before (a client that pinned the certificate or trusts the host
key must not see it change); it must not lie on the shared file storage, where another host that
mounted the share could read it. The state outlives every VM, is encrypted by the stack's secrets
provider, and reaches the servers only inside the configuration's protected parameters.

`python -m ftpstack.identity` prints a new identity as one JSON document; the program runs it once
per stack (a `command.local.Command` whose output is secret) and never again. The self-signed
certificate is not part of it: `certificate()` derives it from the key and the names it must
carry, the same bytes every time (deterministic ECDSA, RFC 6979), so it changes exactly when the
names do, while the key stays.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import json
import secrets
import sys
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

VERSION = 1
# Host key types an SFTP client may ask for: ed25519 and ECDSA for current clients, RSA (SHA-2
# signatures only) for old ones; 3072 bits as NIST SP 800-57 gives 128-bit strength.
SSH_HOST_KEY_TYPES = ("ed25519", "ecdsa", "rsa")
RSA_BITS = 3072
# A pinned self-signed certificate is checked against itself, not against CA/B rules: ten years,
# so that a server run for years never starts failing its clients' pins on its own.
CERT_DAYS = 3650


@dataclass(frozen=True)
class Identity:
    """The parts of an identity, as text (PEM, OpenSSH)."""

    created: str  # ISO 8601, UTC
    tls_key: str
    ssh_host_keys: dict[str, str]
    check_password: str

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": VERSION,
                "created": self.created,
                "tls_key": self.tls_key,
                "ssh_host_keys": self.ssh_host_keys,
                "check_password": self.check_password,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> Identity:
        document: dict[str, Any] = json.loads(text)
        if document.get("version") != VERSION:
            raise ValueError(f"identity version {document.get('version')} is not understood")
        return cls(
            document["created"],
            document["tls_key"],
            dict(document["ssh_host_keys"]),
            document["check_password"],
        )


def private_pem(key: Any) -> str:
    return str(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
    )


def openssh(key: Any) -> str:
    return str(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        ).decode()
    )


def new(now: datetime.datetime | None = None) -> Identity:
    """A new identity from the system's random source."""
    created = (now or datetime.datetime.now(datetime.UTC)).replace(microsecond=0)
    return Identity(
        created.isoformat().replace("+00:00", "Z"),
        private_pem(ec.generate_private_key(ec.SECP256R1())),
        {
            "ed25519": openssh(ed25519.Ed25519PrivateKey.generate()),
            "ecdsa": openssh(ec.generate_private_key(ec.SECP256R1())),
            "rsa": openssh(rsa.generate_private_key(65537, RSA_BITS)),
        },
        secrets.token_urlsafe(24),
    )


def _created(identity: Identity) -> datetime.datetime:
    return datetime.datetime.fromisoformat(identity.created.replace("Z", "+00:00"))


def certificate(identity: Identity, subject: str, names: list[str]) -> str:
    """The self-signed certificate of the identity's TLS key for these names (DNS names and IP
    addresses), valid from the identity's creation: the same PEM for the same inputs."""
    key = serialization.load_pem_private_key(identity.tls_key.encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    alternative: list[x509.GeneralName] = []
    for name in names:
        try:
            alternative.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alternative.append(x509.DNSName(name))
    subject_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    start = _created(identity)
    serial = hashlib.sha256(f"{identity.tls_key}|{subject}|{names}".encode()).digest()
    built = (
        x509.CertificateBuilder()
        .subject_name(subject_name)
        .issuer_name(subject_name)
        .public_key(key.public_key())
        .serial_number(int.from_bytes(serial[:16], "big") >> 1)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=CERT_DAYS))
        .add_extension(x509.SubjectAlternativeName(alternative), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256(), ecdsa_deterministic=True)
    )
    return built.public_bytes(serialization.Encoding.PEM).decode()


def host_public_keys(identity: Identity) -> dict[str, str]:
    """Each SFTP host key's public half, as an OpenSSH public key line ("ssh-ed25519 AAAA...")."""
    out = {}
    for kind, pem in identity.ssh_host_keys.items():
        key = serialization.load_ssh_private_key(pem.encode(), password=None)
        out[kind] = (
            key.public_key()
            .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
            .decode()
        )
    return out


def main() -> int:
    print(new().to_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
