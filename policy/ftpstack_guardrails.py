"""The guardrails of the ftpstack policy pack as plain functions of plain dicts.

No Pulumi here: `ftpstack_pack.py` turns what the Pulumi engine hands a policy into the plain form
below, and tests call these functions with constructed dicts or with the resources of the offline
plan (`ftpstack.plan`). Each function returns the violations as sentences for people; an empty
list means compliant.

The plain form of a resource: `{"type", "name", "id", "parent", "props"}` where `props` are the
resource's inputs in the engine's camelCase, `id` is any unique key (the URN under Pulumi) and
`parent` is the parent's `id` (or None). A secret value is the engine's wire form
`{SIG_KEY: SECRET_SIG, "value": ...}` (see `secret()`); a value Pulumi cannot know during preview
is one of the engine's `UNKNOWN_*` sentinels, which the checks treat as "not known yet".

Deliberately not here: anything that needs Azure or the network; guessing a setting the stack
does not declare (a check that cannot tell says so instead of passing silently).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any

NSG = "azure-native:network:NetworkSecurityGroup"
SECURITY_RULE = "azure-native:network:SecurityRule"
PUBLIC_IP = "azure-native:network:PublicIPAddress"
LOAD_BALANCER = "azure-native:network:LoadBalancer"
VM = "azure-native:compute:VirtualMachine"
VMSS = "azure-native:compute:VirtualMachineScaleSet"
FTP_SERVER = "ftpstack:azure:FtpServer"

FTP_CONTROL_PORT = 21
SSH_PORT = 22
# The component marks the NSG rule that opens the passive range with this name.
PASSIVE_RULE_NAME = "allow-ftp-passive"
# A marked passive rule may not reach below this port (21, 22 and other services live there)...
MIN_PASSIVE_PORT = 1024
# ...nor open more ports than this, unless the policy config says otherwise.
DEFAULT_MAX_PASSIVE_PORTS = 1000
# Azure's idle timeout when idleTimeoutInMinutes is not set, on a public IP and on an LB rule.
AZURE_DEFAULT_IDLE_MINUTES = 4

# Sources that mean "anyone on the Internet" in an NSG rule.
INTERNET_SOURCES = frozenset({"*", "internet", "any", "0.0.0.0/0", "::/0"})
# A CIDR broader than this (0.0.0.0/1 + 128.0.0.0/1, ...) is the Internet too.
BROADEST_SPECIFIC_PREFIX = 8

# Tags the component puts on the VM (requested from the component; see policy/README.md).
TAG_TLS = "ftpstack:tls"
TAG_KEEPALIVE_IDLE = "ftpstack:keepalive-idle-seconds"
TAG_KEEPALIVE_INTERVAL = "ftpstack:keepalive-interval-seconds"
# The tag that makes a stack production: a Pulumi stack tag, or an Azure tag on the FTP VM.
DEFAULT_ENVIRONMENT_TAG = "environment"
DEFAULT_PRODUCTION_VALUES = ("production", "prod")

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

PortRange = tuple[int, int]


# -- values -------------------------------------------------------------------------------------


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


def parse_ports(spec: Any) -> PortRange | None:
    """ "*" → every port, "21" → (21, 21), "50000-50099" → (50000, 50099); None if malformed."""
    text = str(spec).strip()
    if text in {"*", "", "None"}:
        return (0, 65535)
    match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", text)
    if not match:
        return None
    first = int(match.group(1))
    last = int(match.group(2) or first)
    return (first, last) if first <= last else None


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


# -- NSG rules ----------------------------------------------------------------------------------


def security_rules(resource: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The rules an NSG carries inline, or the one rule a standalone SecurityRule is."""
    props = resource.get("props") or {}
    if resource.get("type") == SECURITY_RULE:
        return [{**props, "name": props.get("name") or resource.get("name")}]
    rules = reveal(props.get("securityRules")) or []
    return [reveal(r) for r in rules if isinstance(reveal(r), Mapping)]


def _inbound_allows(rules: Iterable[Mapping[str, Any]]) -> Iterable[Mapping[str, Any]]:
    for rule in rules:
        direction = str(dig(rule, "direction") or "Inbound").lower()
        access = str(dig(rule, "access") or "Allow").lower()
        if direction == "inbound" and access == "allow":
            yield rule


def _sources(rule: Mapping[str, Any]) -> list[Any]:
    many = dig(rule, "sourceAddressPrefixes") or []
    one = dig(rule, "sourceAddressPrefix")
    sources = [*many, *([one] if one is not None else [])]
    return sources or ["*"]  # no source at all: Azure treats it as any


def _port_specs(rule: Mapping[str, Any]) -> list[Any]:
    many = dig(rule, "destinationPortRanges") or []
    one = dig(rule, "destinationPortRange")
    specs = [*many, *([one] if one is not None else [])]
    return specs or ["*"]


def _label(rule: Mapping[str, Any]) -> str:
    return f"rule {dig(rule, 'name') or '(unnamed)'} (priority {dig(rule, 'priority')})"


def passive_range(
    rules: Iterable[Mapping[str, Any]],
    configured: str | None = None,
    max_ports: int = DEFAULT_MAX_PASSIVE_PORTS,
) -> tuple[PortRange | None, list[str]]:
    """The passive range this NSG may open to the Internet, and the problems found on the way.

    The policy config `passivePortRange` wins when set (the stack owner says which range is
    allowed). Otherwise the range is the one of the rule the component marks `allow-ftp-passive`,
    trusted only inside 1024-65535 and up to `max_ports` ports."""
    if configured:
        parsed = parse_ports(configured)
        if parsed is None or parsed[0] < MIN_PASSIVE_PORT:
            return None, [
                f"policy config passivePortRange = {configured!r} is not a range within "
                f"{MIN_PASSIVE_PORT}-65535; write it like 50000-50099"
            ]
        return parsed, []
    marked = [r for r in rules if dig(r, "name") == PASSIVE_RULE_NAME]
    if not marked:
        return None, []
    specs = _port_specs(marked[0])
    parsed = parse_ports(specs[0]) if len(specs) == 1 else None
    if parsed is None or parsed[0] < MIN_PASSIVE_PORT:
        return None, [
            f"{_label(marked[0])} claims to be the FTP passive range but opens "
            f"{', '.join(map(str, specs))}; a passive range lies within {MIN_PASSIVE_PORT}-65535"
        ]
    size = parsed[1] - parsed[0] + 1
    if size > max_ports:
        return None, [
            f"{_label(marked[0])} opens {size} passive ports ({parsed[0]}-{parsed[1]}), more than "
            f"{max_ports}; narrow the range, or set the policy config passivePortRange / "
            "maxPassivePorts if this is intended"
        ]
    return parsed, []


def internet_inbound_violations(
    rules: list[Mapping[str, Any]],
    configured_passive: str | None = None,
    max_passive_ports: int = DEFAULT_MAX_PASSIVE_PORTS,
) -> list[str]:
    """Inbound allows from the Internet must stay inside 21 and the passive range."""
    passive, problems = passive_range(rules, configured_passive, max_passive_ports)
    allowed = [(FTP_CONTROL_PORT, FTP_CONTROL_PORT), *([passive] if passive else [])]
    shown = " and ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in allowed)
    violations = list(problems)
    for rule in _inbound_allows(rules):
        open_to = [s for s in _sources(rule) if is_internet(s)]
        if not open_to:
            continue
        for spec in _port_specs(rule):
            ports = parse_ports(spec)
            inside = ports is not None and any(a <= ports[0] and ports[1] <= b for a, b in allowed)
            if not inside:
                violations.append(
                    f"{_label(rule)} opens port {spec} to the Internet ({', '.join(open_to)}); "
                    f"only {shown} may be open to the Internet: restrict its sources or remove it"
                )
    return violations


def ssh_violations(rules: list[Mapping[str, Any]]) -> list[str]:
    """No inbound allow that reaches port 22 from anywhere on the Internet."""
    violations = []
    for rule in _inbound_allows(rules):
        open_to = [s for s in _sources(rule) if is_internet(s)]
        if not open_to:
            continue
        for spec in _port_specs(rule):
            ports = parse_ports(spec)
            if ports is None or ports[0] <= SSH_PORT <= ports[1]:
                violations.append(
                    f"{_label(rule)} lets SSH (22) in from {', '.join(open_to)}; list the "
                    "administrators' CIDRs instead (ftpstack:sshSourceCidrs)"
                )
    return violations


# -- the VM -------------------------------------------------------------------------------------


def _os_profile(resource: Mapping[str, Any]) -> Any:
    props = resource.get("props") or {}
    if resource.get("type") == VMSS:
        return dig(props, "virtualMachineProfile", "osProfile")
    return dig(props, "osProfile")


def password_auth_violations(resource: Mapping[str, Any]) -> list[str]:
    """A Linux VM that accepts only SSH keys: no admin password, password login disabled."""
    profile = _os_profile(resource)
    if profile is None:
        return []  # attached to an existing disk: no OS profile to judge
    violations = []
    if dig(profile, "adminPassword"):
        violations.append("osProfile.adminPassword is set; use SSH keys only")
    linux = dig(profile, "linuxConfiguration")
    if linux is None:
        violations.append(
            "osProfile.linuxConfiguration is missing, so password authentication is not disabled"
        )
    elif dig(linux, "disablePasswordAuthentication") is not True:
        violations.append(
            "osProfile.linuxConfiguration.disablePasswordAuthentication is not true; "
            "set it to true (SSH keys only)"
        )
    return violations


def user_data_secret_violations(resource: Mapping[str, Any]) -> list[str]:
    """The user-data (customData) carries password hashes and keys: it must be a secret, or it is
    stored in the clear in the Pulumi state."""
    profile = _os_profile(resource)
    raw = profile.get("customData") if isinstance(profile, Mapping) else None
    if raw is None or is_secret(raw):
        return []
    return [
        "osProfile.customData is not marked secret, so the state stores it in the clear; "
        "pass it as pulumi.Output.secret(...)"
    ]


def mark_user_data_secret(props: Mapping[str, Any], vm_type: str = VM) -> dict[str, Any] | None:
    """The remediation: the same props with customData wrapped as a secret, or None if no change."""
    if not user_data_secret_violations({"type": vm_type, "props": props}):
        return None
    fixed = dict(props)
    if vm_type == VMSS:
        profile = dict(reveal(fixed["virtualMachineProfile"]))
        os_profile = dict(reveal(profile["osProfile"]))
        os_profile["customData"] = secret(os_profile["customData"])
        profile["osProfile"] = os_profile
        fixed["virtualMachineProfile"] = profile
    else:
        os_profile = dict(reveal(fixed["osProfile"]))
        os_profile["customData"] = secret(os_profile["customData"])
        fixed["osProfile"] = os_profile
    return fixed


def user_data(resource: Mapping[str, Any]) -> str | None:
    """The VM's user-data, decoded; None when absent, unknown during preview or not base64."""
    raw = dig(_os_profile(resource), "customData")
    if not isinstance(raw, str) or is_unknown(raw):
        return None
    try:
        return base64.b64decode(raw, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None


def keepalive_seconds(resource: Mapping[str, Any]) -> tuple[int | None, str]:
    """Keepalive idle + interval of the FTP server on this VM, and where that came from.

    From the VM's tags when the component sets them; otherwise read from the user-data it boots
    with (the sysctl.d file and proftpd's `SocketOptions keepalive IDLE:COUNT:INTVL`), taking
    the larger sum when the two disagree."""
    tags = dig(resource.get("props"), "tags") or {}
    idle, interval = tags.get(TAG_KEEPALIVE_IDLE), tags.get(TAG_KEEPALIVE_INTERVAL)
    if idle is not None and interval is not None:
        try:
            return int(idle) + int(interval), "the VM's tags"
        except ValueError:
            return (
                None,
                f"the VM's tags {TAG_KEEPALIVE_IDLE}/{TAG_KEEPALIVE_INTERVAL} are not numbers",
            )
    text = user_data(resource)
    if text is None:
        return None, "no keepalive tags and no readable user-data"
    sums = []
    time = re.search(r"net\.ipv4\.tcp_keepalive_time\s*=\s*(\d+)", text)
    intvl = re.search(r"net\.ipv4\.tcp_keepalive_intvl\s*=\s*(\d+)", text)
    if time and intvl:
        sums.append(int(time.group(1)) + int(intvl.group(1)))
    socket = re.search(r"SocketOptions\s+.*keepalive\s+(\d+):(\d+):(\d+)", text)
    if socket:
        sums.append(int(socket.group(1)) + int(socket.group(3)))
    if not sums:
        return None, "the user-data turns on no TCP keepalive"
    return max(sums), "the user-data"


def tls_mode(resource: Mapping[str, Any]) -> tuple[str | None, list[str]]:
    """required / allowed / off, from the VM's `ftpstack:tls` tag and the user-data's proftpd
    `TLSRequired`; a problem when the two disagree."""
    tags = dig(resource.get("props"), "tags") or {}
    tagged = tags.get(TAG_TLS)
    text = user_data(resource)
    rendered = None
    if text is not None:
        match = re.search(r"^\s*TLSRequired\s+(\S+)", text, re.MULTILINE)
        engine = re.search(r"^\s*TLSEngine\s+on\b", text, re.MULTILINE)
        if match and match.group(1).lower() == "on":
            rendered = "required"
        else:
            rendered = "allowed" if engine else "off"
    if tagged is not None and rendered is not None and tagged != rendered:
        return tagged, [f"tag {TAG_TLS}={tagged} but the user-data configures TLS {rendered}"]
    return tagged or rendered, []


# -- the stack ----------------------------------------------------------------------------------


def ftp_servers(resources: list[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Each FtpServer component's descendants, by the component's name; a stack of bare resources
    (no component) is one group named "stack"."""
    by_id = {r["id"]: r for r in resources}

    def server_of(resource: Mapping[str, Any]) -> str | None:
        seen: set[str] = set()
        parent = resource.get("parent")
        while parent in by_id and parent not in seen:
            seen.add(parent)
            if by_id[parent]["type"] == FTP_SERVER:
                return str(by_id[parent]["name"])
            parent = by_id[parent].get("parent")
        return None

    servers = [r for r in resources if r["type"] == FTP_SERVER]
    if not servers:
        return {"stack": [r for r in resources if r["type"] != FTP_SERVER]}
    groups: dict[str, list[Mapping[str, Any]]] = {str(s["name"]): [] for s in servers}
    for resource in resources:
        owner = server_of(resource)
        if owner is not None:
            groups[owner].append(resource)
    return groups


def idle_timeouts(group: Iterable[Mapping[str, Any]]) -> list[tuple[str, int]]:
    """(where, minutes) of every idle timeout in front of the VM: public IPs and LB rules."""
    found = []
    for resource in group:
        props = resource.get("props") or {}
        if resource["type"] == PUBLIC_IP:
            minutes = dig(props, "idleTimeoutInMinutes") or AZURE_DEFAULT_IDLE_MINUTES
            found.append((f"public IP {resource['name']}", minutes))
        if resource["type"] == LOAD_BALANCER:
            for rule in dig(props, "loadBalancingRules") or []:
                minutes = dig(rule, "idleTimeoutInMinutes") or AZURE_DEFAULT_IDLE_MINUTES
                found.append((f"LB {resource['name']} rule {dig(rule, 'name')}", minutes))
    return found


def idle_timeout_violations(resources: list[Mapping[str, Any]]) -> list[str]:
    """Azure's idle timeout must be longer than keepalive idle + interval, or Azure forgets the
    idle control connection during a long transfer. Unknown keepalive is reported, not passed."""
    violations = []
    for server, group in ftp_servers(resources).items():
        vms = [r for r in group if r["type"] == VM]
        timeouts = [(w, m) for w, m in idle_timeouts(group) if not is_unknown(m)]
        if not vms or not timeouts:
            continue
        for vm in vms:
            used, source = keepalive_seconds(vm)
            if used is None:
                violations.append(
                    f"{server}: cannot tell the keepalive of VM {vm['name']} ({source}); "
                    f"tag it {TAG_KEEPALIVE_IDLE} and {TAG_KEEPALIVE_INTERVAL}"
                )
                continue
            for where, minutes in timeouts:
                if int(minutes) * 60 <= used:
                    violations.append(
                        f"{server}: {where} forgets idle flows after {minutes} min "
                        f"({int(minutes) * 60} s), not longer than keepalive idle + interval of "
                        f"VM {vm['name']} ({used} s, from {source}); raise idleTimeoutMinutes or "
                        "lower keepaliveIdleSeconds + keepaliveIntervalSeconds"
                    )
    return violations


def is_production(
    resources: list[Mapping[str, Any]],
    stack_tags: Mapping[str, str],
    key: str = DEFAULT_ENVIRONMENT_TAG,
    values: Iterable[str] = DEFAULT_PRODUCTION_VALUES,
) -> bool:
    """A stack is production when its Pulumi stack tag, or an Azure tag on a VM, says so."""
    wanted = {v.lower() for v in values}
    if str(stack_tags.get(key, "")).lower() in wanted:
        return True
    return any(
        str((dig(r.get("props"), "tags") or {}).get(key, "")).lower() in wanted
        for r in resources
        if r["type"] == VM
    )


def tls_violations(
    resources: list[Mapping[str, Any]],
    stack_tags: Mapping[str, str],
    key: str = DEFAULT_ENVIRONMENT_TAG,
    values: Iterable[str] = DEFAULT_PRODUCTION_VALUES,
) -> list[str]:
    """On a production stack every FTP server requires TLS (no plaintext logins)."""
    if not is_production(resources, stack_tags, key, values):
        return []
    violations = []
    for server, group in ftp_servers(resources).items():
        for vm in (r for r in group if r["type"] == VM):
            mode, problems = tls_mode(vm)
            violations += [f"{server}: VM {vm['name']}: {p}" for p in problems]
            if mode != "required":
                violations.append(
                    f"{server}: VM {vm['name']} serves FTP with TLS {mode or 'unknown'} on a "
                    f"production stack ({key} tag); set ftpstack:tls to required (the VM then "
                    f"carries the tag {TAG_TLS}=required)"
                )
    return violations
