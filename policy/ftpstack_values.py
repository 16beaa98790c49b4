"""The values the ftpstack guardrails read, made plain: resource types, the engine's wire markers,
ports, what counts as the Internet, the texts a value carries and the secrets inside them.

No Pulumi here (the pack runs outside the ftpstack package, so nothing is imported from it). A
resource in plain form is `{"type", "name", "id", "parent", "props"}`: `props` are the inputs in
the engine's camelCase, `id` a unique key (the URN under Pulumi), `parent` the parent's `id`. A
secret is the engine's wire form `{SIG_KEY: SECRET_SIG, "value": ...}` (`secret()`); a value Pulumi
cannot know during preview is one of the `UNKNOWNS`, which the checks treat as "not known yet".
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gzip
import ipaddress
import json
import re
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

NSG = "azure-native:network:NetworkSecurityGroup"
SECURITY_RULE = "azure-native:network:SecurityRule"
PUBLIC_IP = "azure-native:network:PublicIPAddress"
NIC = "azure-native:network:NetworkInterface"
LOAD_BALANCER = "azure-native:network:LoadBalancer"
NAT_RULE = "azure-native:network:InboundNatRule"
# An ARM template deployment: ftpstack writes its load balancer's NAT rules through one.
DEPLOYMENT = "azure-native:resources:Deployment"
ARM_LOAD_BALANCER = "microsoft.network/loadbalancers"
VM = "azure-native:compute:VirtualMachine"
VMSS = "azure-native:compute:VirtualMachineScaleSet"
RUN_COMMAND = "azure-native:compute:VirtualMachineRunCommandByVirtualMachine"
VMSS_RUN_COMMAND = "azure-native:compute:VirtualMachineScaleSetVMRunCommand"
RUN_COMMANDS = frozenset({RUN_COMMAND, VMSS_RUN_COMMAND})
FTP_SERVER = "ftpstack:azure:FtpServer"

# Sources that mean "anyone on the Internet" in an NSG rule (compared case-insensitively). The
# same set as the program's own vocabulary (ftpstack.offline.declared); a test keeps them equal.
INTERNET_SOURCES = frozenset({"*", "internet", "any", "0.0.0.0/0", "::/0"})
# A CIDR broader than this (0.0.0.0/1 + 128.0.0.0/1, ...) is the Internet too.
BROADEST_SPECIFIC_PREFIX = 8
ALL_PORTS = (0, 65535)

# The engine's wire markers (pulumi sdk/go/common/resource/properties.go).
SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
UNKNOWNS = frozenset(
    {
        "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7",
        "3eeb2bf0-c639-47a8-9e75-3b44932eb421",
        "04da6b54-80e4-46f7-96ec-b56ff0331ba9",
        "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2",
        "030794c1-ac77-496b-92df-f27374a8bd58",
        "e48ece36-62e2-4504-bad9-02848725956a",
        "dd056dcd-154b-4c76-9bd3-c8f88648b5ff",
    }
)

# What a secret looks like in a text: a crypt(3) password hash (md5/sha256/sha512-crypt, bcrypt,
# yescrypt, gost-yescrypt, scrypt: "$id$[params$]salt$hash" with a long hash part, so shell
# positional parameters like "$1$2" are not mistaken for one) and a PEM private key of any kind.
CRYPT_HASH = re.compile(r"\$(?:1|5|6|y|gy|7|2[abxy])\$[^\s:$]*\$(?:[^\s:$]*\$)?[./0-9A-Za-z]{22,}")
PRIVATE_KEY = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")
# A base64 run long enough to hide a hash or a key inside a text (cloud-init's `encoding: b64`).
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{40,}={0,2}")
# How many layers of encoding (base64, gzip/zlib, JSON) are looked through.
DECODE_DEPTH = 4

PortRange = tuple[int, int]
Resource = Mapping[str, Any]


# -- wire values -----------------------------------------------------------------------------------


def secret(value: Any) -> dict[str, Any]:
    """A value marked secret, as the engine sends it."""
    return {SIG_KEY: SECRET_SIG, "value": value}


def is_secret(value: Any) -> bool:
    return isinstance(value, Mapping) and value.get(SIG_KEY) == SECRET_SIG


def reveal(value: Any) -> Any:
    """The value inside a secret marker (or the value itself)."""
    return value.get("value") if is_secret(value) else value


def is_unknown(value: Any) -> bool:
    return isinstance(value, str) and value in UNKNOWNS


def dig(value: Any, *path: str | int) -> Any:
    """props["a"]["b"][0]…, through secret markers; None where any step is missing."""
    for key in path:
        value = reveal(value)
        if isinstance(key, int):
            if not isinstance(value, list) or key >= len(value):
                return None
            value = value[key]
        else:
            if not isinstance(value, Mapping):
                return None
            value = value.get(key)
    return reveal(value)


def tags(resource: Resource) -> Mapping[str, Any]:
    found = dig(resource.get("props"), "tags")
    return found if isinstance(found, Mapping) else {}


# -- ports and sources -----------------------------------------------------------------------------


def parse_ports(spec: Any) -> PortRange | None:
    """ "*" → every port, "21" → (21, 21), "50000-50099" → (50000, 50099); None if malformed."""
    text = str(reveal(spec)).strip()
    if text in {"*", "", "None"}:
        return ALL_PORTS
    match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", text)
    if not match:
        return None
    first = int(match.group(1))
    last = int(match.group(2) or first)
    return (first, last) if first <= last else None


def port_text(ports: PortRange) -> str:
    """(21, 21) → "21", (50000, 50099) → "50000-50099", every port → "*"."""
    if ports == ALL_PORTS:
        return "*"
    return str(ports[0]) if ports[0] == ports[1] else f"{ports[0]}-{ports[1]}"


def is_internet(source: Any) -> bool:
    """True when an NSG source lets in anyone on the Internet (not a listed customer network)."""
    text = str(reveal(source)).strip()
    if text.lower() in INTERNET_SOURCES:
        return True
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False  # a service tag (VirtualNetwork, AzureLoadBalancer) or an ASG
    return net.prefixlen < BROADEST_SPECIFIC_PREFIX


def last_segment(reference: Any) -> str | None:
    """The name at the end of an Azure id ({"id": ".../backendAddressPools/instance-0"});
    None while the id is unknown (preview)."""
    text = dig(reference, "id") if isinstance(reveal(reference), Mapping) else reveal(reference)
    if not isinstance(text, str) or not text or is_unknown(text):
        return None
    return text.rstrip("/").rsplit("/", 1)[-1]


# -- texts and the secrets in them -----------------------------------------------------------------


def _decoded(text: str) -> str | None:
    """A base64 text decoded (and gunzipped or inflated when it is compressed); None if it is not
    base64 of a readable text."""
    compact = "".join(text.split())
    if len(compact) < 8 or len(compact) % 4:
        return None
    try:
        raw = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return None
    for inflate in (gzip.decompress, zlib.decompress):
        try:
            raw = inflate(raw)
            break
        except (OSError, EOFError, zlib.error):
            continue
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return None


def readable_texts(value: Any, depth: int = DECODE_DEPTH) -> list[str]:
    """Every text a value carries as anyone reading the state or the API would recover it: the
    strings themselves, base64 decoded (gzip or zlib inflated), JSON unpacked into its strings,
    base64 runs inside a text decoded too. Unknown values carry nothing yet."""
    value = reveal(value)
    if isinstance(value, Mapping):
        return [t for v in value.values() for t in readable_texts(v, depth)]
    if isinstance(value, list):
        return [t for v in value for t in readable_texts(v, depth)]
    if not isinstance(value, str) or is_unknown(value):
        return []
    found = [value]
    if depth <= 0:
        return found
    stripped = value.strip()
    if stripped[:1] in ("{", "["):
        with contextlib.suppress(ValueError):
            found += readable_texts(json.loads(stripped), depth - 1)
    whole = _decoded(stripped)
    if whole is not None:
        return found + readable_texts(whole, depth - 1)
    for run in _BASE64_RUN.findall(value):
        inner = _decoded(run)
        if inner is not None:
            found += readable_texts(inner, depth - 1)
    return found


def secrets_in(value: Any) -> list[str]:
    """What kinds of secret a value carries in readable form (empty: none)."""
    kinds: list[str] = []
    for text in readable_texts(value):
        if CRYPT_HASH.search(text) and "a password hash" not in kinds:
            kinds.append("a password hash")
        if PRIVATE_KEY.search(text) and "a private key" not in kinds:
            kinds.append("a private key")
    return kinds


# -- the stack -------------------------------------------------------------------------------------


def ftp_servers(resources: Iterable[Resource]) -> dict[str, list[Resource]]:
    """Each FtpServer component's descendants, by the component's name; a stack of bare resources
    (no component) is one group named "stack"."""
    listed = list(resources)
    by_id = {r["id"]: r for r in listed}

    def server_of(resource: Resource) -> str | None:
        seen: set[Any] = set()
        parent = resource.get("parent")
        while parent in by_id and parent not in seen:
            seen.add(parent)
            if by_id[parent]["type"] == FTP_SERVER:
                return str(by_id[parent]["name"])
            parent = by_id[parent].get("parent")
        return None

    servers = [r for r in listed if r["type"] == FTP_SERVER]
    if not servers:
        return {"stack": [r for r in listed if r["type"] != FTP_SERVER]}
    groups: dict[str, list[Resource]] = {str(s["name"]): [] for s in servers}
    for resource in listed:
        owner = server_of(resource)
        if owner is not None:
            groups[owner].append(resource)
    return groups


def template_resources(resource: Resource) -> list[Mapping[str, Any]]:
    """The resources an ARM template deployment writes (none for any other resource)."""
    if resource.get("type") != DEPLOYMENT:
        return []
    found = dig(resource.get("props"), "properties", "template", "resources")
    return [r for r in found if isinstance(r, Mapping)] if isinstance(found, list) else []


def load_balancers(group: Iterable[Resource]) -> list[tuple[str, Mapping[str, Any]]]:
    """(label, props) of every load balancer a group writes: its own resources, and those that
    templates write, in the resource's form (a child's settings beside its name)."""
    found: list[tuple[str, Mapping[str, Any]]] = []
    for resource in group:
        if resource["type"] == LOAD_BALANCER:
            found.append((f"LB {resource['name']}", resource.get("props") or {}))
        for item in template_resources(resource):
            if str(item.get("type", "")).lower() != ARM_LOAD_BALANCER:
                continue
            props = {
                key: [{"name": c.get("name"), **(c.get("properties") or {})} for c in children]
                for key, children in (dig(item, "properties") or {}).items()
                if isinstance(children, list)
            }
            found.append((f"LB {item.get('name')} (written by {resource['name']})", props))
    return found
