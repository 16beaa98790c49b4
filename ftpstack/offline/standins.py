"""A stand-in TLS pair for stacks whose private key is a `secure:` value only the CLI decrypts.

The real certificate is public: it passes its public checks here (parses, chain in order, not
expired) before anything is replaced. Then, for planning only, the certificate and the key are
replaced by a pair made from them deterministically (an Ed25519 key derived from the key's
ciphertext, a self-signed certificate with the real one's subject, names and validity), so that
the same stack file plans the same way every time and a changed key plans as changed. With a
`--secrets` file holding the real key, the real pair is planned and its match is checked too.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Mapping
from typing import Any

from ftpstack.offline.stackfile import Secure
from ftpstack.settings import NAMESPACE, SettingsError
from ftpstack.settings.tls import check_certificate, load_chain

CERT_KEY, PRIVATE_KEY = f"{NAMESPACE}:tlsCertificate", f"{NAMESPACE}:tlsPrivateKey"


def tls_pair(
    values: Mapping[str, Any], given: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """(`values` with a stand-in certificate, the stand-in key by secret path) where the key is
    secret and not given; otherwise (`values`, {}). A certificate that fails its public checks
    raises SettingsError (one line)."""
    out = dict(values)
    cert, key = values.get(CERT_KEY), values.get(PRIVATE_KEY)
    if not isinstance(key, Secure) or "tlsPrivateKey" in given or not cert:
        return out, {}
    # A refused setting like any other (SettingsError); the planner turns it into its one line.
    try:
        check_certificate(str(cert))
    except Exception as error:  # a refusal from the settings' certificate checks
        raise SettingsError(_message(error)) from None
    out[CERT_KEY], stand_in_key = stand_in(str(cert), key.ciphertext)
    return out, {"tlsPrivateKey": stand_in_key}


def _message(error: Exception) -> str:
    if isinstance(error, SettingsError):
        return str(error)
    errors = getattr(error, "errors", None)
    if callable(errors):
        return str(errors()[0]["msg"])
    return str(error)


def stand_in(cert_pem: str, seed: str) -> tuple[str, str]:
    """(certificate, key) PEM: deterministic for one certificate and one key ciphertext."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ed25519

    real = load_chain(cert_pem)[0]
    key = ed25519.Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed.encode()).digest())
    builder = (
        x509.CertificateBuilder()
        .subject_name(real.subject)
        .issuer_name(real.subject)
        .public_key(key.public_key())
        .serial_number(int.from_bytes(hashlib.sha256(seed.encode()).digest()[:16], "big") >> 1)
        .not_valid_before(real.not_valid_before_utc)
        .not_valid_after(real.not_valid_after_utc)
    )
    try:
        names = real.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        builder = builder.add_extension(names.value, critical=False)
    except x509.ExtensionNotFound:
        pass
    return pem_pair(builder.sign(key, None), key)


def pem_pair(cert: Any, key: Any) -> tuple[str, str]:
    """A certificate and its private key (unencrypted PKCS#8) as PEM text."""
    from cryptography.hazmat.primitives import serialization

    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem


def _steady(openssh_pem: str) -> str:
    """An OpenSSH private key file with its random check numbers (PROTOCOL.key: two equal
    uint32s that only tell a right passphrase) set to zero, so that two processes write the
    same file for the same key."""
    lines = openssh_pem.strip().splitlines()
    blob = bytearray(base64.b64decode("".join(lines[1:-1])))
    at = len(b"openssh-key-v1\0")
    for _ in range(3):  # cipher name, KDF name, KDF options
        at += 4 + int.from_bytes(blob[at : at + 4], "big")
    at += 4  # the number of keys (1)
    at += 4 + int.from_bytes(blob[at : at + 4], "big")  # the public key
    at += 4  # the private section's length; then checkint, checkint
    blob[at : at + 8] = bytes(8)
    body = base64.b64encode(bytes(blob)).decode()
    wrapped = [body[i : i + 70] for i in range(0, len(body), 70)]
    return "\n".join([lines[0], *wrapped, lines[-1]]) + "\n"


@functools.cache
def identity(seed: str) -> str:
    """A stand-in for `python -m ftpstack.identity`'s output, made from `seed` (the stack and the
    resource): the same every time for one stack, so its plans compare; a real deployment runs
    the real generator once and keeps its secret output."""
    from Crypto.Hash import SHAKE256
    from Crypto.PublicKey import RSA
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    from ftpstack import identity as real

    def derived(label: str, size: int) -> bytes:
        return hashlib.sha256(f"{label}|{seed}".encode()).digest()[:size]

    def curve(label: str) -> ec.EllipticCurvePrivateKey:
        return ec.derive_private_key(int.from_bytes(derived(label, 31), "big") + 1, ec.SECP256R1())

    stream = SHAKE256.new(f"rsa|{seed}".encode())
    rsa_pem = RSA.generate(real.RSA_BITS, randfunc=stream.read).export_key("PEM", pkcs=8)
    rsa_key = serialization.load_pem_private_key(rsa_pem, password=None)
    made = real.Identity(
        "2026-01-01T00:00:00Z",
        real.private_pem(curve("tls")),
        {
            "ed25519": _steady(
                real.openssh(ed25519.Ed25519PrivateKey.from_private_bytes(derived("ed", 32)))
            ),
            "ecdsa": _steady(real.openssh(curve("ecdsa"))),
            "rsa": _steady(real.openssh(rsa_key)),
        },
        derived("check", 18).hex(),
    )
    return made.to_json()
