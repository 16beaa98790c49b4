"""Checks of a supplied TLS certificate (leaf first, then its chain) and its private key.

The certificate is public and checked wherever it is read (offline too): it parses, its chain is
in order, it has not expired. The key is a secret: that it parses and belongs to the leaf is
checked where its value is known (the program under `pulumi up`, or `make plan --secrets`).
"""

from __future__ import annotations

import datetime
import itertools
from typing import Any

from ftpstack.settings.errors import SHOWN_PEM, SHOWN_SECRET, refuse

PEM_BEGIN = "-----BEGIN CERTIFICATE-----"


def split_chain(pem: str) -> tuple[str, str]:
    """(the leaf certificate, the rest of the chain) as PEM text; the chain may be ""."""
    blocks = [f"{PEM_BEGIN}{part}" for part in pem.split(PEM_BEGIN)[1:]]
    blocks = [block.strip() + "\n" for block in blocks]
    return (blocks[0] if blocks else ""), "".join(blocks[1:])


def load_chain(pem: str) -> list[Any]:
    from cryptography import x509

    try:
        certificates = x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        raise refuse(
            "tlsCertificate",
            SHOWN_PEM,
            "does not parse as PEM certificates",
            "give the -----BEGIN CERTIFICATE----- blocks, leaf first, then its issuers",
        ) from None
    return list(certificates)


def check_certificate(pem: str, now: datetime.datetime | None = None) -> None:
    """The public checks: parses, in chain order (each issued by the next), not expired."""
    from cryptography.x509 import Certificate

    chain: list[Certificate] = load_chain(pem)
    now = now or datetime.datetime.now(datetime.UTC)
    for index, (cert, issuer) in enumerate(itertools.pairwise(chain)):
        if cert.issuer != issuer.subject:
            raise refuse(
                "tlsCertificate",
                SHOWN_PEM,
                f"certificate {index + 1} was not issued by certificate {index + 2}",
                "order the blocks leaf first, then each issuer (the CA's bundle order)",
            )
    leaf = chain[0]
    if leaf.not_valid_after_utc <= now:
        raise refuse(
            "tlsCertificate",
            SHOWN_PEM,
            f"expired on {leaf.not_valid_after_utc:%Y-%m-%d}; every client would refuse it",
            "renew it and set the new certificate and key",
        )


def check_key_pair(cert_pem: str, key_pem: str) -> None:
    """The key parses and belongs to the leaf; a refusal never shows the key."""
    from cryptography.hazmat.primitives import serialization

    leaf = load_chain(cert_pem)[0]
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError):
        raise refuse(
            "tlsPrivateKey",
            SHOWN_SECRET,
            "does not parse as an unencrypted PEM private key",
            "give the -----BEGIN PRIVATE KEY----- block, without a passphrase",
        ) from None
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if key.public_key().public_bytes(der, spki) != leaf.public_key().public_bytes(der, spki):
        raise refuse(
            "tlsPrivateKey",
            SHOWN_SECRET,
            "does not belong to tlsCertificate",
            "give the key that the (first) certificate was issued for",
        )
