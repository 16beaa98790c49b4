"""Stack files read the way the Pulumi CLI reads them, handed to the program as the engine would.

The CLI (pulumi/pulumi `sdk/go/common/resource/config/value.go`) first reads a config value as a
string: a scalar is passed to the program as the text written (`tls: off` is "off", `maxClients:
010` is "010", an empty or null value is ""); objects and lists go as JSON of their YAML 1.2
values (`yes` stays a string); a key holding any `secure:` value is secret as a whole. PyYAML
speaks YAML 1.1 (`off` is false), so the structure is read with ruamel.yaml in YAML 1.2 mode.

`secure:` values only the CLI can decrypt. Offline they become stand-ins derived from their
ciphertext (a changed secret plans as changed), or the values of a `--secrets` file; a secret TLS
key becomes a generated stand-in pair, after the real certificate passed its public checks.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, ScalarNode

from ftpstack.settings import NAMESPACE

FINGERPRINT_KEY_ENV = "FTPSTACK_FINGERPRINT_KEY"
PROJECT = "Pulumi.yaml"


class StackFileError(Exception):
    """The stack file cannot be read as the CLI would; str() is one line for people."""


@dataclass(frozen=True)
class Secure:
    """A `secure:` value as the stack file holds it."""

    ciphertext: str


def _yaml() -> YAML:
    return YAML(typ="safe", pure=True)


def _where(error: YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or "not valid YAML"
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark else problem


def _secure(value: Any) -> Any:
    """The value with every `{secure: "..."}` leaf as `Secure`."""
    if isinstance(value, dict):
        if set(value) == {"secure"} and isinstance(value["secure"], str):
            return Secure(value["secure"])
        return {str(k): _secure(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_secure(v) for v in value]
    return value


def read_config(path: Path) -> dict[str, Any]:
    """The `config:` map of a stack file: full key -> raw scalar text, or structure (with
    `Secure` leaves)."""
    try:
        text = path.read_text()
        node = _yaml().compose(text)
        document = _yaml().load(text)
    except OSError as error:
        raise StackFileError(f"cannot read {path}: {error.strerror}") from None
    except YAMLError as error:
        raise StackFileError(f"{path.name} is not valid YAML ({_where(error)})") from None
    if document is None:
        return {}
    if not isinstance(document, dict) or not isinstance(node, MappingNode):
        raise StackFileError(f"{path.name}: the top level must be a mapping with a config: key")
    config = document.get("config") or {}
    if not isinstance(config, dict):
        raise StackFileError(f"{path.name}: config: must be a mapping of keys to values")
    raw_nodes = {k.value: v for k, v in node.value if k.value == "config"}
    scalars = {
        str(k.value): ("" if str(v.tag).endswith(":null") else v.value)
        for k, v in (
            raw_nodes["config"].value
            if "config" in raw_nodes and isinstance(raw_nodes["config"], MappingNode)
            else []
        )
        if isinstance(v, ScalarNode)
    }
    values: dict[str, Any] = {}
    for key, value in config.items():
        if not isinstance(key, str) or not key:
            raise StackFileError(f"{path.name}: config key {key!r} is not a name")
        full = key if ":" in key else f"{NAMESPACE}:{key}"
        values[full] = scalars[key] if key in scalars else _secure(value)
    return values


def project_defaults(project_dir: Path) -> dict[str, Any]:
    """The defaults `Pulumi.yaml` declares, keyed like the stack's config."""
    document = _yaml().load((project_dir / PROJECT).read_text()) or {}
    return {
        f"{NAMESPACE}:{key}": spec["default"]
        for key, spec in (document.get("config") or {}).items()
        if isinstance(spec, dict) and "default" in spec
    }


@dataclass
class SecretSource:
    """Plaintext for `secure:` values offline: a `--secrets` file's value for the same path, else
    a stand-in derived from the ciphertext (keyed when FTPSTACK_FINGERPRINT_KEY is set, so two
    plans compared by `make diff` agree on equal ciphertexts and differ on changed ones)."""

    given: Mapping[str, Any] = field(default_factory=dict)
    stand_ins: list[str] = field(default_factory=list)  # paths that got a stand-in

    def value(self, path: str, secure: Secure) -> str:
        if path in self.given:
            return str(self.given[path])
        self.stand_ins.append(path)
        key = os.environ.get(FINGERPRINT_KEY_ENV, "ftpstack-offline").encode()
        digest = hmac.new(key, secure.ciphertext.encode(), "sha256").hexdigest()
        return f"stand-in-{digest[:24]}"


def read_secrets_file(path: Path) -> dict[str, Any]:
    """A `--secrets` file: `config:` with plaintext values by `pulumi config set --path` key
    (ftpstack:users[0].password: ...). Keep it out of the repository."""
    values = read_config(path)
    return {k.removeprefix(f"{NAMESPACE}:"): v for k, v in values.items()}


def _reveal(value: Any, path: str, secrets: SecretSource) -> Any:
    if isinstance(value, Secure):
        return secrets.value(path, value)
    if isinstance(value, dict):
        return {k: _reveal(v, f"{path}.{k}", secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_reveal(v, f"{path}[{i}]", secrets) for i, v in enumerate(value)]
    return value


def _has_secure(value: Any) -> bool:
    if isinstance(value, Secure):
        return True
    if isinstance(value, dict):
        return any(_has_secure(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_secure(v) for v in value)
    return False


def engine_string(value: Any) -> str:
    """A value as the engine hands it to the program."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return json.dumps(value)


def engine_config(
    values: Mapping[str, Any], secrets: SecretSource
) -> tuple[dict[str, str], list[str]]:
    """(config as the engine passes it, the secret keys)."""
    config, secret_keys = {}, []
    for full, value in values.items():
        if _has_secure(value):
            secret_keys.append(full)
        config[full] = engine_string(_reveal(value, full.removeprefix(f"{NAMESPACE}:"), secrets))
    return config, secret_keys


def fingerprint_of(ciphertext: str) -> str:
    return hashlib.sha256(ciphertext.encode()).hexdigest()[:12]
