"""Who logs in: the users of the stack (and the post-deploy check's own account while the check
runs), as proftpd's users and groups files hold them — SHA-512-crypt hashes, never a password.
Part of each instance's live configuration (`ftpstack.render`)."""

from __future__ import annotations

import functools
import hashlib

from passlib.hash import sha512_crypt

from ftpstack import paths
from ftpstack.identity import Identity
from ftpstack.settings import Settings

SALT_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def salt_for(seed: str, user: str) -> str:
    """A stable salt per stack and user, so an unchanged password renders an unchanged users
    file (a random salt would make every `pulumi up` a change)."""
    digest = hashlib.sha256(f"ftpstack/{seed}/{user}".encode()).digest()
    return "".join(SALT_ALPHABET[b % 64] for b in digest[:16])


def password_hash(settings: Settings, seed: str, name: str, password: str) -> str:
    """SHA-512 crypt, which Debian 12's proftpd verifies through libcrypt."""
    return _crypt(password, salt_for(seed, name), settings.password_hash_rounds)


@functools.cache
def _crypt(password: str, salt: str, rounds: int) -> str:
    """Each instance's bundle carries the same hashes: made once per program run (passlib's
    pure-Python SHA-512-crypt takes about 7 ms per hash at 5,000 rounds here)."""
    return str(sha512_crypt.using(salt=salt, rounds=rounds).hash(password))


def accounts(settings: Settings, identity: Identity) -> list[tuple[str, str]]:
    """(name, password) of every account that logs in: the users, and the post-deploy check's own
    account while the check runs."""
    found = [(u.name, u.password.get_secret_value()) for u in settings.users]
    if settings.post_deploy_check:
        found.append((paths.CHECK_USER, identity.check_password))
    return found


def users_file(settings: Settings, seed: str, identity: Identity) -> str:
    """proftpd's AuthUserFile: passwd(5) lines with password hashes, never plaintext."""
    uid = paths.VIRTUAL_UID
    lines = [
        f"{name}:{password_hash(settings, seed, name, password)}"
        f":{uid}:{uid}::{paths.FTP_ROOT}/{name}:/usr/sbin/nologin"
        for name, password in accounts(settings, identity)
    ]
    if settings.anonymous:
        # The account anonymous sessions run as; "*" is no password, so nobody logs in as it.
        lines.append(
            f"{paths.ANON_USER}:*:{paths.ANON_UID}:{uid}::{paths.PUBLIC_DIR}:/usr/sbin/nologin"
        )
    return "".join(f"{line}\n" for line in lines)


def groups_file() -> str:
    return f"{paths.VIRTUAL_GROUP}:x:{paths.VIRTUAL_UID}:\n"
