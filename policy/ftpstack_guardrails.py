"""The guardrails of the ftpstack policy pack as plain functions of plain resources.

No Pulumi here: `ftpstack_pack.py` turns what the engine hands a policy into the plain form of
`ftpstack_values` and calls these functions; tests call them with constructed resources and with
the offline plan's. Each returns the violations as sentences for people; empty means compliant.
The network checks live in `ftpstack_network`; this module has the VMs, their configuration
steps (Run Commands) and the checks over a whole stack.

Secrets: a VM's customData and userData reach the VM's disk in readable form, and userData and a
Run Command's script and `parameters` come back in clear from Azure's API, whatever Pulumi marks
secret; so they must carry no secret at all (checked here, on the values a validation sees).
Secrets travel only in a Run Command's `protectedParameters`, which Azure never returns; whether
the engine stores those as a secret is invisible to a validation (pulumi-policy strips the
marker), so that one is a remediation (`mark_protected_parameters_secret`).

Deliberately not here: anything that needs Azure or the network; guessing a setting the stack
does not declare (a check that cannot tell says so instead of passing silently).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ftpstack_network import (
    LB_SFTP_RULE_NAME,
    SFTP_RULE_NAME,
    SSH_PORT,
    group_rules,
    idle_timeouts,
    is_sftp_rule,
    reaching,
    rule_label,
    sources_of,
)
from ftpstack_values import (
    RUN_COMMANDS,
    VM,
    VMSS,
    Resource,
    dig,
    ftp_servers,
    is_internet,
    is_secret,
    is_unknown,
    load_balancers,
    readable_texts,
    reveal,
    secret,
    secrets_in,
    tags,
)

# Tags the component puts on each VM (see policy/README.md).
TAG_TLS = "ftpstack:tls"
TAG_KEEPALIVE_IDLE = "ftpstack:keepalive-idle-seconds"
TAG_KEEPALIVE_INTERVAL = "ftpstack:keepalive-interval-seconds"
TAG_SFTP = "ftpstack:sftp"
# The tag that makes a stack production: a Pulumi stack tag, or an Azure tag on the FTP VM.
DEFAULT_ENVIRONMENT_TAG = "environment"
DEFAULT_PRODUCTION_VALUES = ("production", "prod")
TLS_ORDER = ("off", "allowed", "required")

_SYSCTL_TIME = re.compile(r"net\.ipv4\.tcp_keepalive_time\s*=\s*(\d+)")
_SYSCTL_INTVL = re.compile(r"net\.ipv4\.tcp_keepalive_intvl\s*=\s*(\d+)")
_SOCKET_KEEPALIVE = re.compile(r"SocketOptions\s+.*keepalive\s+(\d+):(\d+):(\d+)")
# A text is a proftpd configuration when it sets one of these (the bootstrap sets none).
_PROFTPD_CONF = re.compile(r"^\s*(?:ServerType|TLSEngine|TLSRequired)\s", re.MULTILINE)
_TLS_REQUIRED = re.compile(r"^\s*TLSRequired\s+on\b", re.MULTILINE | re.IGNORECASE)
_TLS_ENGINE = re.compile(r"^\s*TLSEngine\s+on\b", re.MULTILINE | re.IGNORECASE)
_SFTP_ENGINE = re.compile(r"^\s*SFTPEngine\s+on\b", re.MULTILINE | re.IGNORECASE)


# -- the VM ----------------------------------------------------------------------------------------


def _os_profile(resource: Resource) -> Any:
    props = resource.get("props") or {}
    if resource.get("type") == VMSS:
        return dig(props, "virtualMachineProfile", "osProfile")
    return dig(props, "osProfile")


def _user_data(resource: Resource) -> Any:
    props = resource.get("props") or {}
    if resource.get("type") == VMSS:
        return dig(props, "virtualMachineProfile", "userData")
    return dig(props, "userData")


def password_auth_violations(resource: Resource) -> list[str]:
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


def custom_data_violations(resource: Resource) -> list[str]:
    """customData and userData reach the VM's disk (userData also Azure's API) in readable form,
    and a change of customData replaces the VM: they carry no password hash, no private key."""
    violations = []
    fields = {
        "osProfile.customData": dig(_os_profile(resource), "customData"),
        "userData": _user_data(resource),
    }
    for field, value in fields.items():
        for kind in secrets_in(value):
            violations.append(
                f"{field} carries {kind}; the bootstrap must be secret-free: deliver secrets "
                "in a Run Command's protectedParameters (ftpstack's configuration step)"
            )
    return violations


# -- the configuration steps (Run Commands) --------------------------------------------------------


def run_command_plain_violations(resource: Resource) -> list[str]:
    """A Run Command's script and `parameters` are returned by Azure's API to anyone who may read
    the VM: no password hash, no private key in them."""
    props = resource.get("props") or {}
    violations = []
    for item in dig(props, "parameters") or []:
        for kind in secrets_in(dig(item, "value")):
            violations.append(
                f"parameters[{dig(item, 'name')}] carries {kind}; Azure returns parameters in "
                "clear: pass it in protectedParameters"
            )
    for kind in secrets_in(dig(props, "source", "script")):
        violations.append(
            f"source.script carries {kind}; Azure returns the script in clear: pass it in "
            "protectedParameters"
        )
    return violations


def protected_parameters_violations(resource: Resource) -> list[str]:
    """protectedParameters hold the secrets, so the state must hold them as a secret. Only where
    the secret marker is visible (a remediation, the offline plan) can this tell."""
    raw = (resource.get("props") or {}).get("protectedParameters")
    if raw is None or is_secret(raw) or is_unknown(raw):
        return []
    items = raw if isinstance(raw, list) else [raw]
    exposed = [
        dig(item, "name")
        for item in items
        if not is_secret(item) and not is_secret((item or {}).get("value"))
    ]
    if not exposed:
        return []
    return [
        f"protectedParameters ({', '.join(map(str, exposed))}) are not marked secret, so the "
        "state stores them in the clear; pass them as pulumi.Output.secret(...)"
    ]


def mark_protected_parameters_secret(props: Mapping[str, Any]) -> dict[str, Any] | None:
    """The remediation: the same props with protectedParameters wrapped as one secret, or None
    when nothing needs to change."""
    if not protected_parameters_violations({"props": props}):
        return None
    return {**props, "protectedParameters": secret(props["protectedParameters"])}


def run_commands_of(vm: Resource, group: Iterable[Resource]) -> list[Resource]:
    return [r for r in group if r["type"] in RUN_COMMANDS and r.get("parent") == vm.get("id")]


def configuration_texts(vm: Resource, group: Iterable[Resource]) -> list[str]:
    """What the VM is configured with, readable: its user-data and its Run Commands' parameters
    (protected ones included: a validation sees their values). Not the scripts: code mentions
    directives it does not set."""
    texts = readable_texts(dig(_os_profile(vm), "customData")) + readable_texts(_user_data(vm))
    for step in run_commands_of(vm, group):
        props = step.get("props") or {}
        for key in ("parameters", "protectedParameters"):
            items = reveal(props.get(key))
            if isinstance(items, list):  # not while unknown (preview)
                texts += readable_texts([dig(p, "value") for p in items])
    return texts


# -- keepalive and TLS -----------------------------------------------------------------------------


def keepalive_seconds(vm: Resource, texts: Iterable[str] = ()) -> tuple[int | None, str]:
    """Keepalive idle + interval of the FTP server on this VM, and where that came from: the VM's
    tags, and the configuration texts (the sysctl.d file, proftpd's `SocketOptions keepalive
    IDLE:COUNT:INTVL`); the largest sum counts, so a tag cannot hide a slower configuration."""
    found: list[tuple[int, str]] = []
    idle, interval = tags(vm).get(TAG_KEEPALIVE_IDLE), tags(vm).get(TAG_KEEPALIVE_INTERVAL)
    if idle is not None and interval is not None:
        try:
            found.append((int(idle) + int(interval), "the VM's tags"))
        except ValueError:
            return (
                None,
                f"the VM's tags {TAG_KEEPALIVE_IDLE}/{TAG_KEEPALIVE_INTERVAL} are not numbers",
            )
    for text in texts:
        time, intvl = _SYSCTL_TIME.search(text), _SYSCTL_INTVL.search(text)
        if time and intvl:
            found.append((int(time.group(1)) + int(intvl.group(1)), "the configuration"))
        socket = _SOCKET_KEEPALIVE.search(text)
        if socket:
            found.append((int(socket.group(1)) + int(socket.group(3)), "the configuration"))
    if not found:
        return None, "no keepalive tags and no keepalive in a readable configuration"
    return max(found, key=lambda f: f[0])


def tls_mode(vm: Resource, texts: Iterable[str] = ()) -> tuple[str | None, list[str]]:
    """required / allowed / off, from the VM's `ftpstack:tls` tag and every readable proftpd
    configuration (the weakest counts); a problem when the two disagree."""
    tagged = tags(vm).get(TAG_TLS)
    modes = []
    for text in texts:
        if _PROFTPD_CONF.search(text):
            required, engine = _TLS_REQUIRED.search(text), _TLS_ENGINE.search(text)
            modes.append("required" if required else "allowed" if engine else "off")
    rendered = min(modes, key=TLS_ORDER.index) if modes else None
    if tagged is not None and rendered is not None and tagged != rendered:
        return tagged, [f"tag {TAG_TLS}={tagged} but the configuration sets TLS {rendered}"]
    return tagged or rendered, []


# -- the stack -------------------------------------------------------------------------------------


def idle_timeout_violations(resources: Sequence[Resource]) -> list[str]:
    """Azure's idle timeout must be longer than keepalive idle + interval, or Azure forgets the
    idle control connection during a long transfer. Unknown keepalive is reported, not passed."""
    violations = []
    for server, group in ftp_servers(resources).items():
        vms = [r for r in group if r["type"] == VM]
        timeouts = [(w, m) for w, m in idle_timeouts(group) if not is_unknown(m)]
        if not vms or not timeouts:
            continue
        for vm in vms:
            used, source = keepalive_seconds(vm, configuration_texts(vm, group))
            if used is None:
                violations.append(
                    f"{server}: cannot tell the keepalive of VM {vm['name']} ({source}); "
                    f"tag it {TAG_KEEPALIVE_IDLE} and {TAG_KEEPALIVE_INTERVAL}"
                )
                continue
            for where, minutes in timeouts:
                if int(minutes) * 60 <= used:
                    violations.append(
                        f"{server}: {where} forgets idle flows after {int(minutes)} min "
                        f"({int(minutes) * 60} s), not longer than keepalive idle + interval of "
                        f"VM {vm['name']} ({used} s, from {source}); raise idleTimeoutMinutes or "
                        "lower keepaliveIdleSeconds + keepaliveIntervalSeconds"
                    )
    return violations


def is_production(
    resources: Sequence[Resource],
    stack_tags: Mapping[str, str],
    key: str = DEFAULT_ENVIRONMENT_TAG,
    values: Iterable[str] = DEFAULT_PRODUCTION_VALUES,
) -> bool:
    """A stack is production when its Pulumi stack tag, or an Azure tag on a VM, says so."""
    wanted = {v.lower() for v in values}
    if str(stack_tags.get(key, "")).lower() in wanted:
        return True
    return any(str(tags(r).get(key, "")).lower() in wanted for r in resources if r["type"] == VM)


def tls_violations(
    resources: Sequence[Resource],
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
            mode, problems = tls_mode(vm, configuration_texts(vm, group))
            violations += [f"{server}: VM {vm['name']}: {p}" for p in problems]
            if mode != "required":
                violations.append(
                    f"{server}: VM {vm['name']} serves FTP with TLS {mode or 'unknown'} on a "
                    f"production stack ({key} tag); set ftpstack:tls to required (the VM then "
                    f"carries the tag {TAG_TLS}=required)"
                )
    return violations


# -- SFTP ------------------------------------------------------------------------------------------


def sftp_served(vm: Resource, texts: Iterable[str] = ()) -> tuple[bool | None, list[str]]:
    """Whether the VM serves SFTP on 22 (and its sshd moved away), from its `ftpstack:sftp` tag
    and its readable proftpd configuration; a problem when the two disagree."""
    tagged = tags(vm).get(TAG_SFTP)
    confs = [t for t in texts if _PROFTPD_CONF.search(t)]
    rendered = any(_SFTP_ENGINE.search(t) for t in confs) if confs else None
    said = None if tagged is None else tagged == "on"
    if said is not None and rendered is not None and said != rendered:
        return said, [
            f"tag {TAG_SFTP}={tagged} but the configuration {'serves' if rendered else 'has no'}"
            " SFTP"
        ]
    return (said if said is not None else rendered), []


def _covered(source: str, sources: Iterable[str]) -> bool:
    """Whether FTP's sources admit everything `source` names (the Internet admits any address;
    a network admits its subnets; a service tag or security group only itself)."""
    for other in sources:
        if other == source or is_internet(other):
            return True
        try:
            if ipaddress.ip_network(source, strict=False).subnet_of(
                ipaddress.ip_network(other, strict=False)  # type: ignore[arg-type]
            ):
                return True
        except (ValueError, TypeError):
            continue
    return False


def sftp_violations(resources: Sequence[Resource]) -> list[str]:
    """Port 22 may be open to FTP's clients only where every server serves SFTP there (else it
    is the VM's own sshd), and only from FTP's sources: the SFTP rule lets in exactly whom the
    FTP control rule lets in."""
    violations = []
    for server, group in ftp_servers(resources).items():
        vms = [r for r in group if r["type"] == VM]
        served = []
        for vm in vms:
            serves, problems = sftp_served(vm, configuration_texts(vm, group))
            violations += [f"{server}: VM {vm['name']}: {p}" for p in problems]
            served.append(bool(serves))
        rules = group_rules(group)
        sftp = [r for r in rules if is_sftp_rule(r)]
        balanced = [
            f"{lb} rule {LB_SFTP_RULE_NAME}"
            for lb, props in load_balancers(group)
            for rule in dig(props, "loadBalancingRules") or []
            if dig(rule, "name") == LB_SFTP_RULE_NAME
        ]
        if (sftp or balanced) and not (vms and all(served)):
            opened = ", ".join([*(rule_label(r) for r in sftp), *balanced])
            violations.append(
                f"{server}: {opened} opens port {SSH_PORT} for SFTP, but not every VM serves SFTP "
                f"there (tag {TAG_SFTP}=on and SFTPEngine on): it would reach the VM's own sshd; "
                "remove it or set ftpstack:sftp to true"
            )
        ftp = [s for r in reaching(rules, 21) for s in sources_of(r)]
        for rule in sftp:
            extra = sorted(s for s in sources_of(rule) if not _covered(s, ftp))
            if extra:
                violations.append(
                    f"{server}: {rule_label(rule)} lets SFTP in from {', '.join(extra)}, which "
                    f"FTP does not; {SFTP_RULE_NAME} admits only FTP's sources "
                    "(ftpstack:ftpSourceCidrs)"
                )
    return violations
