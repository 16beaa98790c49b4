"""The local ARM check: what Azure Resource Manager would refuse, found in the declared plan.

The local Azure model proves the data plane; this reads the control plane, from tables with a
source per rule (`ftpstack.azure_rules`):

- references: an Azure resource id in one resource's inputs must belong to a resource it depends
  on (read from the dependencies the program registered), or ARM may be asked for the referrer
  before what it references exists (and on destroy both go at once);
- immutable properties: every property ARM refuses to change in place is covered by
  replaceOnChanges (or the provider's own replacement, or held still by ignoreChanges), so a
  change is planned as a replacement, never as an update ARM rejects;
- ranges and limits: idle timeouts, probe settings, NSG priorities and rule counts, rules per
  load balancer and per NIC, tags, disk sizes, log and backup retention, action group names;
- writes under one parent: separate children of one parent (NSG rules, NAT rules) are ordered,
  because ARM refuses concurrent writes under one parent;
- two writers of one resource: an ARM deployment that writes the whole load balancer (its NAT
  rules) comes after the load balancer's own resource and declares exactly what it does besides
  the NAT rules, or each `pulumi up` would undo the other's write.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ftpstack import azure_ops as ops
from ftpstack import azure_rules as azure
from ftpstack.offline import declared as d

NOT_FOUND_PAGE = (
    "https://learn.microsoft.com/azure/azure-resource-manager/troubleshooting/error-not-found"
)
CONCURRENT_PAGE = "https://learn.microsoft.com/azure/azure-resource-manager/troubleshooting/common-deployment-errors"
LB_REST = "https://learn.microsoft.com/rest/api/load-balancer/load-balancers/create-or-update"
# The load balancer's children that its own PUT declares (inline).
LB_CHILDREN = (
    "frontendIPConfigurations",
    "backendAddressPools",
    "probes",
    "loadBalancingRules",
    "outboundRules",
    "inboundNatRules",
)
CHILD_TYPES = {
    d.SECURITY_RULE: "networkSecurityGroupName",
    d.NAT_RULE: "loadBalancerName",
    d.SUBNET: "virtualNetworkName",
}


@dataclass(frozen=True)
class Finding:
    rule: str  # references | immutable | ranges | concurrency
    resource: str
    problem: str
    source: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.resource}: {self.problem} ({self.source})"


def check(
    document: Mapping[str, Any], raw: Mapping[str, Mapping[str, Any]] | None = None
) -> list[Finding]:
    """Every finding for a plan (its JSON form; `raw`: unmasked inputs by name, when known)."""
    plan = d.Declared(document)
    inputs = {r["name"]: (raw or {}).get(r["name"], r["inputs"]) for r in plan.resources}
    return [
        *references(plan, inputs),
        *immutables(plan),
        *ranges(plan, inputs),
        *concurrency(plan),
        *writers(plan, inputs),
    ]


def _closure(plan: d.Declared) -> dict[str, set[str]]:
    direct = {r["name"]: set(r.get("dependencies", [])) for r in plan.resources}
    memo: dict[str, set[str]] = {}

    def reach(name: str) -> set[str]:
        if name not in memo:
            memo[name] = set()
            for dep in direct.get(name, ()):
                memo[name] |= {dep, *reach(dep)}
        return memo[name]

    return {name: reach(name) for name in direct}


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def references(plan: d.Declared, inputs: Mapping[str, Any]) -> list[Finding]:
    ids = {r["id"].lower(): r["name"] for r in plan.resources if r.get("id")}
    closure = _closure(plan)
    found = []
    for resource in plan.resources:
        own = str(resource.get("id", "")).lower()
        for text in _strings(inputs[resource["name"]]):
            if not text.lower().startswith("/subscriptions/"):
                continue
            target = _owner(text.lower(), ids)
            if target is None or (own and text.lower().startswith(own)):
                continue  # outside the plan (an existing subnet), or the resource itself
            if target not in closure[resource["name"]] and target != resource["name"]:
                found.append(
                    Finding(
                        "references",
                        resource["name"],
                        f"names {target} by an id ({text}) but does not depend on it, so ARM "
                        f"may see the reference before {target} exists",
                        NOT_FOUND_PAGE,
                    )
                )
    return found


def _owner(reference: str, ids: Mapping[str, str]) -> str | None:
    best = ""
    for rid in ids:
        if (reference == rid or reference.startswith(f"{rid}/")) and len(rid) > len(best):
            best = rid
    return ids[best] if best else None


def _covered(path: str, entries: list[str]) -> bool:
    return any(path == e or path.startswith((f"{e}.", f"{e}[")) for e in entries)


def immutables(plan: d.Declared) -> list[Finding]:
    found = []
    for resource in plan.resources:
        options = resource.get("options", {})
        covering = [
            *options.get("replaceOnChanges", []),
            *options.get("ignoreChanges", []),
            *azure.PROVIDER_FORCE_NEW.get(resource["type"], ()),
        ]
        generic = (azure.LOCATION,) if resource["type"].startswith("azure-native:") else ()
        for rule in (*generic, *azure.IMMUTABLE.get(resource["type"], ())):
            if _present(resource["inputs"], rule.path) and not _covered(rule.path, covering):
                found.append(
                    Finding(
                        "immutable",
                        resource["name"],
                        f"{rule.path} cannot change in place but is neither replaced on change nor "
                        "ignored: a change would be planned as an update that ARM refuses",
                        rule.source,
                    )
                )
    return found


def _present(inputs: Mapping[str, Any], path: str) -> bool:
    value: Any = inputs
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return False
        value = value[part]
    return value is not None


def _range(found: list[Finding], name: str, what: str, value: Any, limit: azure.Range) -> None:
    if value is not None and not (isinstance(value, int) and value in limit):
        found.append(
            Finding("ranges", name, f"{what} is {value!r}; Azure accepts {limit}", limit.source)
        )


def ranges(plan: d.Declared, inputs: Mapping[str, Any]) -> list[Finding]:
    found: list[Finding] = []
    for ip in plan.of(d.PUBLIC_IP):
        _range(
            found,
            ip["name"],
            "idleTimeoutInMinutes",
            ip["inputs"].get("idleTimeoutInMinutes"),
            azure.PUBLIC_IP_IDLE_MINUTES,
        )
    for lb in plan.of(d.LOAD_BALANCER):
        i = lb["inputs"]
        for rule in i.get("loadBalancingRules", []):
            _range(
                found,
                lb["name"],
                f"rule {rule['name']} idle",
                rule.get("idleTimeoutInMinutes"),
                azure.LB_RULE_IDLE_MINUTES,
            )
        for rule in i.get("outboundRules", []):
            _range(
                found,
                lb["name"],
                f"outbound {rule['name']} idle",
                rule.get("idleTimeoutInMinutes"),
                azure.OUTBOUND_RULE_IDLE_MINUTES,
            )
        for probe in i.get("probes", []):
            _range(
                found,
                lb["name"],
                "probe interval",
                probe.get("intervalInSeconds"),
                azure.PROBE_INTERVAL_SECONDS,
            )
            _range(
                found,
                lb["name"],
                "probe threshold",
                probe.get("probeThreshold"),
                azure.PROBE_THRESHOLD,
            )
    for writer, nat in plan.nat_rule_inputs():
        _range(
            found,
            writer,
            f"NAT rule {nat.get('name')} idleTimeoutInMinutes",
            nat.get("idleTimeoutInMinutes"),
            azure.LB_RULE_IDLE_MINUTES,
        )
    for disk in plan.of(d.DISK):
        _range(found, disk["name"], "diskSizeGB", disk["inputs"].get("diskSizeGB"), azure.DISK_GB)
    found += _nsg_limits(plan) + _lb_limits(plan) + _tag_limits(plan, inputs)
    found += _operations_limits(plan)
    return found


def _operations_limits(plan: d.Declared) -> list[Finding]:
    """Log retention, backup retention, action group short names."""
    found: list[Finding] = []
    for ws in plan.of(d.WORKSPACE):
        days = ws["inputs"].get("retentionInDays")
        _range(found, ws["name"], "retentionInDays", days, ops.LOG_RETENTION_DAYS)
    for policy in plan.of(d.BACKUP_POLICY):
        for rule in (policy["inputs"].get("properties") or {}).get("policyRules") or []:
            for life in rule.get("lifecycles") or []:
                kept = str(life.get("deleteAfter", {}).get("duration", ""))
                days = int(kept[1:-1]) if re.fullmatch(r"P\d+D", kept) else kept
                _range(found, policy["name"], "retention", days, ops.BACKUP_RETENTION_DAYS)
    for group in plan.of(d.ACTION_GROUP):
        short = str(group["inputs"].get("groupShortName", ""))
        if not ops.ACTION_GROUP_SHORT_NAME.fullmatch(short):
            problem = f"groupShortName {short!r} is not 1-12 characters"
            found.append(Finding("ranges", group["name"], problem, ops.ACTION_GROUP_PAGE))
    return found


def _nsg_limits(plan: d.Declared) -> list[Finding]:
    found: list[Finding] = []
    groups: dict[str, list[d.SecurityRule]] = defaultdict(list)
    for rule in plan.of(d.SECURITY_RULE):
        groups[str(rule["inputs"].get("networkSecurityGroupName"))].append(
            d.SecurityRule.from_inputs(rule["inputs"])
        )
    for group in plan.of(d.NSG):
        groups[group["name"]] += [
            d.SecurityRule.from_inputs(x) for x in group["inputs"].get("securityRules", [])
        ]
    for nsg, rules in groups.items():
        if len(rules) > azure.RULES_PER_NSG:
            found.append(
                Finding(
                    "ranges",
                    nsg,
                    f"{len(rules)} rules; Azure allows {azure.RULES_PER_NSG}",
                    azure.LIMITS_PAGE,
                )
            )
        seen: dict[tuple[str, int], str] = {}
        for each in rules:
            _range(found, nsg, f"rule {each.name} priority", each.priority, azure.NSG_PRIORITY)
            other = seen.setdefault((each.direction, each.priority), each.name)
            if other != each.name:
                found.append(
                    Finding(
                        "ranges",
                        nsg,
                        f"rules {other} and {each.name} share priority {each.priority}",
                        azure.NSG_PAGE,
                    )
                )
    return found


def _lb_limits(plan: d.Declared) -> list[Finding]:
    found: list[Finding] = []
    nat_by_pool: dict[str, int] = defaultdict(int)
    for nat in plan.nat_rules():
        nat_by_pool[nat.pool] += 1
    for lb in plan.of(d.LOAD_BALANCER):
        i = lb["inputs"]
        rules = len(i.get("loadBalancingRules", [])) + len(plan.nat_rules())
        if rules > azure.RULES_PER_LOAD_BALANCER:
            found.append(
                Finding(
                    "ranges",
                    lb["name"],
                    f"{rules} rules; Azure allows {azure.RULES_PER_LOAD_BALANCER}",
                    azure.LIMITS_PAGE,
                )
            )
        shared = len(i.get("loadBalancingRules", [])) + len(i.get("outboundRules", []))
        for nic in plan.of(d.NIC):
            pools = [
                str(p.get("id", "")).rsplit("/", 1)[-1]
                for c in nic["inputs"].get("ipConfigurations", [])
                for p in c.get("loadBalancerBackendAddressPools", [])
            ]
            per_nic = shared + sum(nat_by_pool[p] for p in pools) if pools else 0
            if per_nic > azure.RULES_PER_NIC:
                found.append(
                    Finding(
                        "ranges",
                        nic["name"],
                        f"{per_nic} load-balancer rules; "
                        f"Azure allows {azure.RULES_PER_NIC} per NIC",
                        azure.LIMITS_PAGE,
                    )
                )
    return found


def _tag_limits(plan: d.Declared, inputs: Mapping[str, Any]) -> list[Finding]:
    found = []
    for resource in plan.resources:
        tags = inputs[resource["name"]].get("tags") or {}
        if not isinstance(tags, dict):
            continue
        if len(tags) > azure.TAGS_PER_RESOURCE:
            found.append(
                Finding(
                    "ranges",
                    resource["name"],
                    f"{len(tags)} tags; Azure allows {azure.TAGS_PER_RESOURCE}",
                    azure.TAGS_PAGE,
                )
            )
        for name, value in tags.items():
            problem = azure.tag_name_problem(str(name))
            if problem or len(str(value)) > azure.TAG_VALUE_MAX:
                found.append(
                    Finding(
                        "ranges",
                        resource["name"],
                        f"tag {name!r}: {problem or 'value over 256 characters'}",
                        azure.TAGS_PAGE,
                    )
                )
    return found


def concurrency(plan: d.Declared) -> list[Finding]:
    closure = _closure(plan)
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for type_, parent_input in CHILD_TYPES.items():
        for child in plan.of(type_):
            groups[(type_, str(child["inputs"].get(parent_input)))].append(child["name"])
    found = []
    for (_, parent), children in groups.items():
        for i, a in enumerate(children):
            for b in children[i + 1 :]:
                if a not in closure[b] and b not in closure[a]:
                    found.append(
                        Finding(
                            "concurrency",
                            b,
                            f"may be written at the same time as {a} under {parent}; ARM refuses "
                            "concurrent writes under one parent (AnotherOperationInProgress)",
                            CONCURRENT_PAGE,
                        )
                    )
                    break
    return found


def _flattened(children: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A template's children back in azure-native's form: settings beside the name."""
    return [{"name": c.get("name"), **(c.get("properties") or {})} for c in children]


def writers(plan: d.Declared, inputs: Mapping[str, Any]) -> list[Finding]:
    closure = _closure(plan)
    by_name = {
        str(inputs[lb["name"]].get("loadBalancerName", lb["name"])): lb
        for lb in plan.of(d.LOAD_BALANCER)
    }
    found = []
    raw = d.Declared({"resources": [{**r, "inputs": inputs[r["name"]]} for r in plan.resources]})
    for deployment, written in raw.deployed_load_balancers():
        owner = by_name.get(str(written.get("name")))
        if owner is None:
            continue  # a load balancer this plan does not declare itself
        if owner["name"] not in closure[deployment["name"]]:
            found.append(
                Finding(
                    "writers",
                    deployment["name"],
                    f"writes load balancer {written.get('name')} but does not come after "
                    f"{owner['name']}, so ARM may see both writes at once",
                    CONCURRENT_PAGE,
                )
            )
        own = inputs[owner["name"]]
        properties = written.get("properties") or {}
        keys = sorted(
            (set(properties) | {k for k in own if k in LB_CHILDREN}) - {"inboundNatRules"}
        )
        differ = [k for k in keys if _flattened(properties.get(k) or []) != (own.get(k) or [])]
        differ += [k for k in ("location", "sku", "tags") if written.get(k) != own.get(k)]
        if differ:
            found.append(
                Finding(
                    "writers",
                    deployment["name"],
                    f"writes load balancer {written.get('name')} with other {', '.join(differ)} "
                    f"than {owner['name']} declares, so each pulumi up would undo the other",
                    LB_REST,
                )
            )
    return found
