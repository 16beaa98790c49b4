"""The settings of ftpstack: one validated model of the stack config (`Settings`), its reusable
types (`types`), the certificate checks (`tls`) and the one error shape (`errors`).

`parse_settings(raw, secret_keys)` is the only way in: it validates once and turns the first
problem into one line for people, with every secret value masked.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from ftpstack.settings.errors import NAMESPACE, SHOWN_SECRET, SettingsError, explain, value_at
from ftpstack.settings.model import MAX_INSTANCES, FtpUser, Settings
from ftpstack.settings.types import FTP_CONTROL_PORT, SSH_PORT, is_private_key

__all__ = [
    "FTP_CONTROL_PORT",
    "MAX_INSTANCES",
    "NAMESPACE",
    "SHOWN_SECRET",
    "SSH_PORT",
    "FtpUser",
    "Settings",
    "SettingsError",
    "is_private_key",
    "is_secret_value",
    "parse_settings",
]

# Keys whose values are secrets whatever the stack file says.
SECRET_KEYS = frozenset({"tlsPrivateKey"})


def is_secret_value(value: Any) -> bool:
    """True for a value that is, or holds, something secret by its content: a password field,
    or a private key anywhere inside."""
    if isinstance(value, dict):
        return "password" in value or any(is_secret_value(v) for v in value.values())
    if isinstance(value, list):
        return any(is_secret_value(v) for v in value)
    return isinstance(value, str) and is_private_key(value)


def parse_settings(raw: dict[str, Any], secret_keys: frozenset[str] = frozenset()) -> Settings:
    """Validate the stack config (keys without namespace); raise SettingsError with one line.

    `secret_keys`: keys (without namespace) the stack stores as secrets; any value under them is
    masked in the error line, as is anything that is a secret by its content."""
    hidden = SECRET_KEYS | secret_keys

    def is_secret(loc: tuple[int | str, ...]) -> bool:
        if not loc:
            return False
        if loc[0] in hidden or "password" in loc:
            return True
        return is_secret_value(value_at(raw, loc))

    try:
        return Settings.model_validate(raw)
    except ValidationError as error:
        raise SettingsError(explain(error, raw, Settings, is_secret)) from None
