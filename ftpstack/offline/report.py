"""The plan as people read it (`make plan`) and the parts tools read beside it (`--json`):
resources, what is open, the load balancer, billable units, the ARM check, warnings, outputs,
the bootstrap and each instance's live configuration (secrets masked)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ftpstack.checks import TAG_TLS
from ftpstack.offline import armcheck, costs, graph
from ftpstack.offline import declared as d
from ftpstack.offline.plan import Plan

# Sibling resources of one type beyond this many are shown as one line.
COLLAPSE_AFTER = 4


def arm_findings(plan: Plan) -> list[armcheck.Finding]:
    return armcheck.check(plan.to_json(), {r.name: r.raw_inputs for r in plan.resources})


def warnings(plan: Plan) -> list[str]:
    view = d.Declared(plan.to_json())
    out = []
    if view.of(d.VM) and not view.of(d.DISK) and not view.of(d.FILE_SHARE):
        out.append(
            "dataDiskSizeGb is 0: the FTP files live on the OS disk and are LOST whenever the VM "
            "is replaced (image, admin user, zone changes)"
        )
    out += _exposure_warnings(view)
    if plan.stand_ins:
        out.append(
            f"planned with stand-ins for secrets only the Pulumi CLI decrypts "
            f"({', '.join(sorted(set(plan.stand_ins)))}); `pulumi preview` checks the real ones, "
            "or pass --secrets FILE"
        )
    return out


# The comment of the committed example stacks' SSH key: a stack that still has it is not yours.
EXAMPLE_KEY_SUFFIX = "-example"


def _exposure_warnings(view: d.Declared) -> list[str]:
    """What a reviewer should know before `pulumi up`: passwords in clear on the Internet, a
    post-deploy check that cannot reach the server, an SSH key that is the example's."""
    out = []
    vms = view.of(d.VM)
    tls = str((vms[0]["inputs"].get("tags") or {}).get(TAG_TLS, "")) if vms else ""
    ftp = [
        r for r in view.server_rules() if r.allows and r.ports and r.ports[0] <= 21 <= r.ports[1]
    ]
    internet = any(r.from_internet for r in ftp)
    if tls in ("allowed", "off") and internet:
        out.append(
            f"tls is {tls} and FTP is open to the Internet: passwords and files may cross it in "
            "clear; set tls: required (clients then must use FTPS)"
        )
    if view.local_command(d.SMOKE_CHECK_SUFFIX) is not None and ftp and not internet:
        out.append(
            "ftpSourceCidrs do not include the whole Internet, and the post-deploy check runs "
            "from the deploying machine: unless its address is inside them, `pulumi up` waits "
            "postDeployWaitSeconds and then fails; add its address or set postDeployCheck: false"
        )
    for vm in vms[:1]:
        keys = (((vm["inputs"].get("osProfile") or {}).get("linuxConfiguration") or {})
                .get("ssh") or {}).get("publicKeys") or []  # fmt: skip
        if any(str(k.get("keyData", "")).strip().endswith(EXAMPLE_KEY_SUFFIX) for k in keys):
            out.append(
                "sshPublicKey is the committed example's key, not yours: pulumi config set "
                'sshPublicKey "$(cat ~/.ssh/id_ed25519.pub)"'
            )
    return out


def extras(plan: Plan) -> dict[str, Any]:
    view = d.Declared(plan.to_json())
    found, total, biggest = costs.summary(view)
    path = graph.first_deploy(plan.to_json())
    return {
        "critical_path": {"writes": path.writes, "steps": list(path.steps)},
        "arm_check": [str(f) for f in arm_findings(plan)],
        "warnings": warnings(plan),
        "billable": [{"what": u.what, "count": u.count, "monthly_usd": u.monthly} for u in found],
        "monthly_usd": round(total, 2),
        "biggest_cost": biggest.what if biggest else None,
    }


def _tree(plan: Plan) -> list[str]:
    children: dict[str, list[Any]] = {}
    for r in plan.resources:
        children.setdefault(r.parent, []).append(r)
    lines: list[str] = []

    def walk(parent: str, depth: int) -> None:
        kids = children.get(parent, [])
        by_type: dict[str, list[Any]] = {}
        for r in kids:
            by_type.setdefault(r.type, []).append(r)
        for r in kids:
            group = by_type[r.type]
            if len(group) > COLLAPSE_AFTER and r is not group[0]:
                continue
            if len(group) > COLLAPSE_AFTER:
                lines.append(
                    f"{'  ' * depth}{r.type}  {group[0].name} … {group[-1].name} "
                    f"({len(group)} resources, chained)"
                )
                continue
            lines.append(f"{'  ' * depth}{r.type}  {r.name}{_notes(r.options)}")
            walk(r.name, depth + 1)

    names = {r.name for r in plan.resources}
    for root in sorted({r.parent for r in plan.resources if r.parent not in names}):
        walk(root, 0)
    return lines


def _notes(options: dict[str, Any]) -> str:
    notes = []
    if options.get("replaceOnChanges"):
        notes.append(f"replaced when {', '.join(options['replaceOnChanges'])} change")
    if options.get("ignoreChanges"):
        notes.append(f"kept as created: {', '.join(options['ignoreChanges'])}")
    if options.get("deleteBeforeReplace"):
        notes.append("delete before replace")
    if options.get("protect"):
        notes.append("protected from deletion")
    return f"   ({'; '.join(notes)})" if notes else ""


def _network(view: d.Declared) -> Iterator[str]:
    servers = view.server_nsgs()
    for nsg in sorted({r.nsg for r in view.security_rules()}, key=lambda n: (n not in servers, n)):
        what = "the servers" if nsg in servers else "the share's private endpoint"
        yield f"Inbound NSG rules of {what} ({nsg}, priority order):"
        for rule in view.security_rules({nsg}):
            yield (
                f"  {rule.priority:>5}  {rule.access:<5}  port {rule.port_text:<12} "
                f"from {', '.join(rule.sources)}  {rule.name}"
            )
    for lb in view.of(d.LOAD_BALANCER):
        yield ""
        yield "Load balancer:"
        for rule in lb["inputs"].get("loadBalancingRules", []):
            yield (
                f"  balanced: port {rule['frontendPort']} over pool "
                f"{rule['backendAddressPool']['id'].rsplit('/', 1)[-1]}; idle timeout "
                f"{rule.get('idleTimeoutInMinutes')} min; TCP reset "
                f"{'on' if rule.get('enableTcpReset') else 'off'}"
            )
        for probe in lb["inputs"].get("probes", []):
            yield (
                f"  probe {probe['name']}: {probe['protocol']} port {probe['port']} every "
                f"{probe['intervalInSeconds']} s, {probe['probeThreshold']} to change state"
            )
        yield from _nat_lines(view)


def _nat_lines(view: d.Declared) -> Iterator[str]:
    by_pool: dict[str, list[d.NatRule]] = {}
    for nat in view.nat_rules():
        by_pool.setdefault(nat.pool, []).append(nat)
    for pool, rules in by_pool.items():
        passive = [n.frontend_port for n in rules if n.name.startswith("passive-")]
        if passive:
            yield f"  NAT: ports {passive[0]}-{passive[-1]} ({len(passive)} rules) -> {pool}"
        for n in rules:
            if not n.name.startswith("passive-"):
                yield f"  NAT: port {n.frontend_port} -> {pool} port {n.backend_port} ({n.name})"


def render_text(plan: Plan) -> str:
    view = d.Declared(plan.to_json())
    out = [
        f"ftpstack plan for stack '{plan.stack}' ({plan.label}; offline, Pulumi mocks; "
        "no Azure call)",
        "",
        "Resources:",
        *[f"  {x}" for x in _tree(plan)],
        "",
    ]
    out += [*_network(view), ""]
    found, total, biggest = costs.summary(view)
    out += [f"Billable units (list prices {costs.PRICES_AS_OF}; approximate):"]
    out += [f"  {u}" for u in found]
    out += [f"  total ~${total:,.0f}/month; biggest: {biggest.what if biggest else '-'}", ""]
    out += [f"Critical path of a first deploy: {graph.first_deploy(plan.to_json())}", ""]
    findings = arm_findings(plan)
    out += [f"ARM check: {len(findings)} problem(s)", *[f"  {f}" for f in findings], ""]
    for warning in warnings(plan):
        out.append(f"WARNING: {warning}")
    out += ["", "Outputs:", *[f"  {k}: {json.dumps(v)}" for k, v in plan.outputs.items()], ""]
    out += ["Bootstrap (cloud-init user-data; replaces the VM when it changes):", plan.user_data]
    for index, files in enumerate(plan.live_files()):
        out += [f"Live configuration of instance {index} (applied in place; secrets masked):"]
        for f in files:
            out += [f"--- {f['path']} (mode {f['mode']})", f["content"].rstrip("\n"), ""]
    return "\n".join(out)
