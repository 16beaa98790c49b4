"""What the network lets in from the Internet, as the ftpstack guardrails judge it.

NSG rules count the same whether an NSG carries them inline (`securityRules`) or each is a
separate `SecurityRule` resource. Behind a load balancer the NSG is not the whole story: the load
balancer decides which frontend port reaches which server, so its rules and NAT rules are judged
too (only 21 balanced, and SFTP's 22; each passive port forwarded as itself to the one instance
whose slice holds it; SSH only to sshd's port, which the NSG restricts by source).

Port 22 is SFTP (proftpd's mod_sftp) when the stack serves it: the NSG rule the component names
`allow-sftp` may open exactly 22 to FTP's clients, and the VM's own sshd then listens on 2200.
Whether a server really serves SFTP there, and from which sources, is a stack check
(`ftpstack_guardrails.sftp_violations`): a rule alone cannot tell.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ftpstack_values import (
    ALL_PORTS,
    ARM_LOAD_BALANCER,
    LOAD_BALANCER,
    NAT_RULE,
    NIC,
    NSG,
    PUBLIC_IP,
    SECURITY_RULE,
    PortRange,
    Resource,
    dig,
    ftp_servers,
    is_internet,
    is_unknown,
    last_segment,
    load_balancers,
    parse_ports,
    port_text,
    reveal,
    template_resources,
)

FTP_CONTROL_PORT = 21
SSH_PORT = 22
# While SFTP has 22, the VM's own sshd (administrators) listens here.
ADMIN_SSH_PORT = 2200
SSH_PORTS = (SSH_PORT, ADMIN_SSH_PORT)
# The component's names for SFTP's NSG rule and load balancing rule.
SFTP_RULE_NAME = "allow-sftp"
LB_SFTP_RULE_NAME = "sftp"
# The component marks the NSG rule that opens the passive range with this name.
PASSIVE_RULE_NAME = "allow-ftp-passive"
# A marked passive rule may not reach below this port (21, 22 and other services live there)...
MIN_PASSIVE_PORT = 1024
# ...nor open more ports than this, unless the policy config says otherwise.
DEFAULT_MAX_PASSIVE_PORTS = 1000
# Azure's idle timeout when idleTimeoutInMinutes is not set (public IP, LB rule, NAT rule).
AZURE_DEFAULT_IDLE_MINUTES = 4

Rule = Mapping[str, Any]
Rules = Sequence[Rule]


# -- NSG rules -------------------------------------------------------------------------------------


def security_rules(resource: Resource) -> list[dict[str, Any]]:
    """The rules an NSG carries inline, or the one rule a separate SecurityRule resource is; each
    with its Azure name under "name"."""
    props = resource.get("props") or {}
    if resource.get("type") == SECURITY_RULE:
        name = dig(props, "securityRuleName") or dig(props, "name") or resource.get("name")
        return [{**props, "name": name}]
    rules = reveal(props.get("securityRules")) or []
    return [dict(reveal(r)) for r in rules if isinstance(reveal(r), Mapping)]


def group_rules(group: Iterable[Resource]) -> list[dict[str, Any]]:
    """Every NSG rule of a group of resources, inline or separate."""
    return [r for res in group if res["type"] in (NSG, SECURITY_RULE) for r in security_rules(res)]


def _inbound_allows(rules: Iterable[Rule]) -> Iterable[Rule]:
    for rule in rules:
        direction = str(dig(rule, "direction") or "Inbound").lower()
        access = str(dig(rule, "access") or "Allow").lower()
        if direction == "inbound" and access == "allow":
            yield rule


def _sources(rule: Rule) -> list[Any]:
    many = dig(rule, "sourceAddressPrefixes") or []
    one = dig(rule, "sourceAddressPrefix")
    # An application security group: the NICs that are its members, never the Internet.
    groups = [f"asg:{last_segment(dig(g, 'id') or '')}" for g in
              dig(rule, "sourceApplicationSecurityGroups") or []]  # fmt: skip
    sources = [*many, *([one] if one is not None else []), *groups]
    return sources or ["*"]  # no source at all: Azure treats it as any


def _port_specs(rule: Rule) -> list[Any]:
    many = dig(rule, "destinationPortRanges") or []
    one = dig(rule, "destinationPortRange")
    specs = [*many, *([one] if one is not None else [])]
    return specs or ["*"]


def is_sftp_rule(rule: Rule) -> bool:
    """The component's SFTP rule: named allow-sftp, opening port 22 and nothing else."""
    specs = _port_specs(rule)
    return dig(rule, "name") == SFTP_RULE_NAME and [parse_ports(s) for s in specs] == [
        (SSH_PORT, SSH_PORT)
    ]


def reaching(rules: Iterable[Rule], port: int) -> list[Rule]:
    """The inbound allows that let anyone (any source) reach `port`."""
    found = []
    for rule in _inbound_allows(rules):
        ranges = [parse_ports(spec) for spec in _port_specs(rule)]
        if any(r is None or r[0] <= port <= r[1] for r in ranges):
            found.append(rule)
    return found


def sources_of(rule: Rule) -> set[str]:
    return {str(reveal(s)) for s in _sources(rule)}


def rule_label(rule: Rule) -> str:
    return _label(rule)


def _label(rule: Rule) -> str:
    return f"rule {dig(rule, 'name') or '(unnamed)'} (priority {dig(rule, 'priority')})"


def internet_open(rules: Iterable[Rule]) -> list[tuple[Rule, str, list[str]]]:
    """(rule, port spec, Internet sources) of every inbound allow that anyone on the Internet
    reaches; the spec normalised ("21", "50000-50099", "*"), or as written when malformed."""
    found = []
    for rule in _inbound_allows(rules):
        open_to = [str(reveal(s)) for s in _sources(rule) if is_internet(s)]
        if open_to:
            for spec in _port_specs(rule):
                ports = parse_ports(spec)
                found.append((rule, port_text(ports) if ports else str(spec), open_to))
    return found


def passive_range(
    rules: Iterable[Rule],
    configured: str | None = None,
    max_ports: int = DEFAULT_MAX_PASSIVE_PORTS,
) -> tuple[PortRange | None, list[str]]:
    """The passive range that may be open to the Internet, and the problems found on the way.

    The policy config `passivePortRange` wins when set (the stack owner says which range is
    allowed). Otherwise the range is the one of the rule the component marks `allow-ftp-passive`,
    trusted only inside 1024-65535 and up to `max_ports` ports."""
    if configured:
        parsed = parse_ports(configured)
        if parsed is None or parsed == ALL_PORTS or parsed[0] < MIN_PASSIVE_PORT:
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


def _allowed_text(allowed: list[PortRange]) -> str:
    return " and ".join(port_text(a) for a in allowed)


def internet_inbound_violations(
    rules: Rules,
    configured_passive: str | None = None,
    max_passive_ports: int = DEFAULT_MAX_PASSIVE_PORTS,
) -> list[str]:
    """Inbound allows from the Internet must stay inside 21 and the passive range; and 22 by
    the SFTP rule, whose server and sources the stack check judges."""
    passive, problems = passive_range(rules, configured_passive, max_passive_ports)
    allowed = [(FTP_CONTROL_PORT, FTP_CONTROL_PORT), *([passive] if passive else [])]
    violations = list(problems)
    for rule, spec, open_to in internet_open(rules):
        if is_sftp_rule(rule):
            continue
        ports = parse_ports(spec)
        if ports is None or not any(a <= ports[0] and ports[1] <= b for a, b in allowed):
            violations.append(
                f"{_label(rule)} opens port {spec} to the Internet ({', '.join(open_to)}); "
                f"only {_allowed_text(allowed)} (and SFTP's 22, by the rule {SFTP_RULE_NAME}) may "
                "be open to the Internet: restrict its sources or remove it"
            )
    return violations


def ssh_violations(rules: Rules) -> list[str]:
    """No inbound allow that reaches sshd's port (22, or 2200 while SFTP has 22) from anywhere on
    the Internet; the SFTP rule's 22 is SFTP's, judged by the stack check."""
    violations = []
    for rule, spec, open_to in internet_open(rules):
        ports = parse_ports(spec)
        hit = [p for p in SSH_PORTS if ports is None or ports[0] <= p <= ports[1]]
        if hit and not (hit == [SSH_PORT] and is_sftp_rule(rule)):
            violations.append(
                f"{_label(rule)} lets SSH ({', '.join(map(str, hit))}) in from "
                f"{', '.join(open_to)}; list the administrators' CIDRs instead "
                "(ftpstack:sshSourceCidrs)"
            )
    return violations


# -- the load balancer -----------------------------------------------------------------------------


def nat_rules(group: Iterable[Resource]) -> list[tuple[str, Rule]]:
    """(label, props) of every inbound NAT rule: separate resources, and a load balancer's inline
    rules and pools (its own resource's, or as a template deployment writes it)."""
    found: list[tuple[str, Rule]] = []
    for resource in group:
        props = resource.get("props") or {}
        if resource["type"] == NAT_RULE:
            name = dig(props, "inboundNatRuleName") or resource["name"]
            found.append((f"NAT rule {name}", props))
    for lb, props in load_balancers(group):
        for kind in ("inboundNatRules", "inboundNatPools"):
            for rule in dig(props, kind) or []:
                found.append((f"{lb} {kind[:-1]} {dig(rule, 'name')}", reveal(rule)))
    return found


def template_violations(group: Iterable[Resource]) -> list[str]:
    """A template deployment may write the stack's load balancer (its NAT rules) and nothing
    else: anything else in it would be a resource the other checks never see."""
    return [
        f"deployment {resource['name']} writes a {item.get('type')} ({item.get('name')}); "
        "ftpstack's deployments write only its load balancer: declare that resource itself"
        for resource in group
        for item in template_resources(resource)
        if str(item.get("type", "")).lower() != ARM_LOAD_BALANCER
    ]


_FRONTEND_KEYS = ("frontendPortRangeStart", "frontendPortRangeEnd", "frontendPort")


def _frontend(rule: Rule) -> PortRange | None:
    """The frontend ports of a NAT rule (V2: a range to a pool, V1: one port to one NIC)."""
    start, end = dig(rule, "frontendPortRangeStart"), dig(rule, "frontendPortRangeEnd")
    one = dig(rule, "frontendPort")
    if start is not None:
        return int(start), int(end if end is not None else start)
    return (int(one), int(one)) if one is not None else None


def _lb_rule_violations(group: Iterable[Resource]) -> list[str]:
    violations = template_violations(group)
    for lb, props in load_balancers(group):
        for rule in dig(props, "loadBalancingRules") or []:
            front, back = dig(rule, "frontendPort"), dig(rule, "backendPort")
            if is_unknown(front) or (front, back) == (FTP_CONTROL_PORT, FTP_CONTROL_PORT):
                continue
            if (front, back) == (SSH_PORT, SSH_PORT) and dig(rule, "name") == LB_SFTP_RULE_NAME:
                continue  # SFTP: the stack check judges whether its servers serve it
            shown = "every port (HA ports)" if front in (0, None) else f"port {int(front)}"
            violations.append(
                f"{lb} rule {dig(rule, 'name')} balances {shown} to backend "
                f"port {int(back or 0)}; only FTP control (21 to 21) and SFTP (22 to 22, the rule "
                f"{LB_SFTP_RULE_NAME}) may be balanced: passive ports are NAT rules to one "
                "instance each"
            )
    return violations


def forwarding_violations(
    group: Sequence[Resource],
    configured_passive: str | None = None,
    max_passive_ports: int = DEFAULT_MAX_PASSIVE_PORTS,
) -> list[str]:
    """Behind a load balancer: only 21 balanced; every NAT rule either forwards one passive port
    as itself to one instance's pool (each pool's ports one contiguous slice, the slices
    disjoint), or forwards to sshd (22, or 2200 while SFTP has 22), which the NSG's sources
    gate."""
    nat = nat_rules(group)
    if not nat and not load_balancers(group) and not template_violations(group):
        return []  # no load balancer: the NSG check is the whole story
    passive, problems = passive_range(group_rules(group), configured_passive, max_passive_ports)
    violations = _lb_rule_violations(group)
    pools: dict[str, set[int]] = {}
    for label, rule in nat:
        raw = dig(rule, "backendPort")
        known = not any(is_unknown(dig(rule, key)) for key in _FRONTEND_KEYS)
        if not known or is_unknown(raw) or raw is None or int(raw) in SSH_PORTS:
            continue  # not known until deployed (preview), or SSH: the NSG gates its sources
        back, front = int(raw), _frontend(rule)
        in_range = passive is not None and passive[0] <= back <= passive[1]
        if (back, front) == (FTP_CONTROL_PORT, (FTP_CONTROL_PORT, FTP_CONTROL_PORT)):
            continue  # FTP control to one server, as a NAT rule instead of a balancing rule
        if not in_range:
            allowed = f"the passive range {port_text(passive)}" if passive else "no passive range"
            violations.append(
                f"{label} forwards to port {back}, which is neither SSH (22, 2200) nor in "
                f"{allowed}; "
                "only FTP may be reachable from the Internet: remove it"
            )
        elif front != (back, back):
            shown = port_text(front) if front else "(none)"
            violations.append(
                f"{label} forwards frontend port {shown} to passive port {back}; a passive port "
                "must be forwarded as itself (the client connects to the port the server named)"
            )
        else:
            pool = last_segment(dig(rule, "backendAddressPool"))
            if pool is not None:
                pools.setdefault(pool, set()).add(back)
    return problems + violations + _slice_violations(pools)


def _slice_violations(pools: Mapping[str, set[int]]) -> list[str]:
    """Each pool's passive ports must be one contiguous slice (proftpd announces one range), and
    no port may go to two pools."""
    violations = []
    for pool, ports in sorted(pools.items()):
        first, last = min(ports), max(ports)
        if len(ports) != last - first + 1:
            violations.append(
                f"pool {pool} receives passive ports {first}-{last} with gaps; an instance "
                "announces one range, so the ports between would reach another server"
            )
    owners: dict[int, list[str]] = {}
    for pool, ports in pools.items():
        for port in ports:
            owners.setdefault(port, []).append(pool)
    shared = sorted(p for p, o in owners.items() if len(o) > 1)
    if shared:
        violations.append(
            f"passive ports {port_text((shared[0], shared[-1]))} are forwarded to several pools "
            f"({', '.join(sorted(owners[shared[0]]))}); each port must reach the one server that "
            "announced it"
        )
    return violations


# -- idle timeouts ---------------------------------------------------------------------------------


def _nics_with_public_ip(group: Iterable[Resource]) -> bool:
    return any(
        dig(config, "publicIPAddress") is not None
        for r in group
        if r["type"] == NIC
        for config in dig(r.get("props"), "ipConfigurations") or []
    )


def idle_timeouts(group: Sequence[Resource]) -> list[tuple[str, Any]]:
    """(where, minutes) of every idle timeout in front of the servers: public IPs on a NIC, load
    balancing rules, NAT rules. A public IP that fronts a load balancer is left out (its own
    timeout applies only to flows to a NIC); it counts when a NIC carries a public IP."""
    found: list[tuple[str, Any]] = []
    behind_lb = any(r["type"] == LOAD_BALANCER for r in group) and not _nics_with_public_ip(group)
    for resource in group:
        props = resource.get("props") or {}
        if resource["type"] == PUBLIC_IP and not behind_lb:
            minutes = dig(props, "idleTimeoutInMinutes") or AZURE_DEFAULT_IDLE_MINUTES
            found.append((f"public IP {resource['name']}", minutes))
    for lb, lb_props in load_balancers(group):
        for rule in dig(lb_props, "loadBalancingRules") or []:
            minutes = dig(rule, "idleTimeoutInMinutes") or AZURE_DEFAULT_IDLE_MINUTES
            found.append((f"{lb} rule {dig(rule, 'name')}", minutes))
    for label, rule in nat_rules(group):
        found.append((label, dig(rule, "idleTimeoutInMinutes") or AZURE_DEFAULT_IDLE_MINUTES))
    return found


def stack_forwarding_violations(
    resources: Sequence[Resource],
    configured_passive: str | None = None,
    max_passive_ports: int = DEFAULT_MAX_PASSIVE_PORTS,
) -> list[str]:
    """`forwarding_violations` for each FTP server of a stack, prefixed with its name."""
    return [
        f"{server}: {message}"
        for server, group in ftp_servers(resources).items()
        for message in forwarding_violations(group, configured_passive, max_passive_ports)
    ]
