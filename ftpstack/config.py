"""Reading the stack config into a validated `Settings`, the one edge where input enters.

The Pulumi engine hands config to the program as strings ("50000", "true", JSON for objects and
lists) keyed `ftpstack:<key>`, with the list of keys that hold a secret. This module turns that
into the plain dict the settings model validates, and refuses secrets stored in plaintext:

- by key: a password or private key under a key the engine does not call secret;
- by value: the engine marks a whole key secret as soon as one value under it is, so a plaintext
  password beside an encrypted one would pass; the stack file itself tells them apart, and it is
  read (when it is where the CLI keeps it) for exactly that.

`ftpstack.offline.plan` feeds the very same path from a `Pulumi.<stack>.yaml` file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from ftpstack.settings import NAMESPACE, Settings, SettingsError, is_private_key, parse_settings

PREFIX = f"{NAMESPACE}:"
# Config values that must be stored as secrets, by the last part of their path.
SECRET_FIELDS = frozenset({"password", "tlsPrivateKey"})
# Keys whose value is public by definition: a private key pasted there is a mistake the settings
# model names ("paste the .pub file"), not a secret to store encrypted.
PUBLIC_FIELDS = frozenset({"sshPublicKey"})


def decode(raw: str) -> Any:
    """A config string as the engine passes it, back to the value the user wrote."""
    text = raw.strip()
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return raw
    return raw


def _fix(path: str) -> str:
    if path.endswith("tlsPrivateKey"):
        return "pulumi config set --secret tlsPrivateKey < key.pem"
    return f"pulumi config set --secret --path '{path}' <value>"


def _plaintext(path: str) -> SettingsError:
    return SettingsError(
        f"{PREFIX}{path} is stored in plaintext in the stack config (its value is not shown); "
        f"store it as a secret: {_fix(path)}"
    )


def _walk(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    yield path, value
    if isinstance(value, dict) and set(value) != {"secure"}:
        for key, item in value.items():
            yield from _walk(item, f"{path}.{key}")
    if isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]")


def plaintext_secrets(config: Mapping[str, Any]) -> list[str]:
    """Paths (without namespace) of secret-bearing values a stack file's `config:` holds in clear:
    a password or private key that is not a `{secure: ...}` value."""
    found = []
    for key, value in config.items():
        if not str(key).startswith(PREFIX) and ":" in str(key):
            continue  # another namespace (azure-native:location) is not ours to judge
        if str(key).removeprefix(PREFIX) in PUBLIC_FIELDS:
            continue
        for path, item in _walk(value, str(key).removeprefix(PREFIX)):
            last = path.rsplit(".", 1)[-1]
            # In clear: written as text or a number (a `secure:` value is a mapping).
            clear = isinstance(item, (str, int, float)) and item != ""
            if clear and (last in SECRET_FIELDS or is_private_key(str(item))):
                found.append(path)
    return found


def settings_from_config(
    config: Mapping[str, str],
    is_secret: Callable[[str], bool],
    stack_config: Mapping[str, Any] | None = None,
) -> Settings:
    """Validate every `ftpstack:` key of `config` (the engine's strings); other namespaces
    (azure-native:…) are left be. `stack_config`, when known, is the stack file's `config:` map
    as written (for the per-value plaintext check)."""
    raw = {
        key[len(PREFIX) :]: decode(value) for key, value in config.items() if key.startswith(PREFIX)
    }
    for path in plaintext_secrets(stack_config or {}):
        raise _plaintext(path)
    for key, value in raw.items():
        if is_secret(f"{PREFIX}{key}") or key in PUBLIC_FIELDS:
            continue
        for path, item in _walk(value, key):
            last = path.rsplit(".", 1)[-1]
            if (last in SECRET_FIELDS and item) or (isinstance(item, str) and is_private_key(item)):
                raise _plaintext(path)
    secret = frozenset(k for k in raw if is_secret(f"{PREFIX}{k}"))
    return parse_settings(raw, secret)


def stack_file_config(stack: str, directory: Path) -> Mapping[str, Any] | None:
    """The `config:` map of `Pulumi.<stack>.yaml` as written, or None where there is none (the
    config may live elsewhere, e.g. in Pulumi ESC)."""
    path = directory / f"Pulumi.{stack}.yaml"
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    config = document.get("config") if isinstance(document, dict) else None
    return config if isinstance(config, dict) else None


def settings_from_pulumi() -> Settings:
    """The settings of the running Pulumi program (real engine or mocks)."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    merged: dict[str, str] = {}
    merged.update(runtime_config.get_config_env())
    merged.update(runtime_config.CONFIG.get())
    env_secret_keys = set(runtime_config.get_config_secret_keys_env())

    def is_secret(key: str) -> bool:
        return runtime_config.is_config_secret(key) or key in env_secret_keys

    stack_config = stack_file_config(pulumi.get_stack(), Path.cwd())
    return settings_from_config(merged, is_secret, stack_config)
