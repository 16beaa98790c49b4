"""Reading the stack config into a validated `Settings`, the one edge where input enters.

The Pulumi engine hands config to the program as strings ("50000", "true", JSON for objects and
lists) keyed `ftpstack:<key>`, with a list of which keys are secret. This module turns that into
the plain dict the settings model validates, and refuses passwords that were not stored as
secrets. `ftpstack.plan` feeds the very same path from a `Pulumi.<stack>.yaml` file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from ftpstack.settings import NAMESPACE, Settings, SettingsError, parse_settings

PREFIX = f"{NAMESPACE}:"


def decode(raw: str) -> Any:
    """A config string as the engine passes it, back to the value the user wrote."""
    text = raw.strip()
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return raw
    return raw


def settings_from_config(config: Mapping[str, str], is_secret: Callable[[str], bool]) -> Settings:
    """Validate every `ftpstack:` key of `config`; other namespaces (azure-native:…) are left be."""
    raw = {
        key[len(PREFIX) :]: decode(value) for key, value in config.items() if key.startswith(PREFIX)
    }
    users = raw.get("users")
    if isinstance(users, list) and not is_secret(f"{PREFIX}users"):
        for index, user in enumerate(users):
            if isinstance(user, dict) and user.get("password"):
                raise SettingsError(
                    f"{PREFIX}users[{index}].password is stored in plaintext in the stack config; "
                    f"store it as a secret: pulumi config set --secret --path "
                    f"'users[{index}].password' <password>"
                )
    key = raw.get("tlsPrivateKey")
    if key and not is_secret(f"{PREFIX}tlsPrivateKey"):
        raise SettingsError(
            f"{PREFIX}tlsPrivateKey is stored in plaintext in the stack config; store it as a "
            "secret: pulumi config set --secret tlsPrivateKey < key.pem"
        )
    return parse_settings(raw)


def settings_from_pulumi() -> Settings:
    """The settings of the running Pulumi program (real engine or mocks)."""
    from pulumi.runtime import config as runtime_config

    merged: dict[str, str] = {}
    merged.update(runtime_config.get_config_env())
    merged.update(runtime_config.CONFIG.get())
    env_secret_keys = set(runtime_config.get_config_secret_keys_env())

    def is_secret(key: str) -> bool:
        return runtime_config.is_config_secret(key) or key in env_secret_keys

    return settings_from_config(merged, is_secret)
