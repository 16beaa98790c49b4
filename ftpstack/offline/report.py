"""The plan as people read it (`make plan`) and the parts tools read beside it (`--json`).

The summary is short, like `terraform plan`'s: the resources (one line per resource or per run
of alike ones), what is open (the NSGs' rules, the load balancer), billable units and the
monthly total, the critical path of a first deploy, the ARM check, warnings, outputs, every line
within `text.WIDTH`; its last line says how to see the rest. `full` (`make plan-full`) adds the
resources' options whole, the outputs whole, the bootstrap and each instance's live
configuration (secrets masked)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ftpstack.checks import TAG_TLS
from ftpstack.offline import armcheck, costs, graph, limits, text, tree
from ftpstack.offline import declared as d
from ftpstack.offline.plan import Plan
from ftpstack.outputs import SFTP_HOST_KEYS


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
    if any(not g["inputs"].get("emailReceivers") for g in view.of(d.ACTION_GROUP)):
        out.append(
            "alerts are on but alertEmails is empty: they fire in the portal's Alerts pane only, "
            "and the policy pack refuses a production stack so; set alertEmails"
        )
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


def _network(view: d.Declared) -> Iterator[str]:
    servers = view.server_nsgs()
    for nsg in sorted({r.nsg for r in view.security_rules()}, key=lambda n: (n not in servers, n)):
        what = "the servers" if nsg in servers else "the share's private endpoint"
        yield f"Inbound NSG rules of {what} ({nsg}, priority order):"
        for rule in view.security_rules({nsg}):
            head = f"  {rule.priority:>5}  {rule.access:<5}  port {rule.port_text:<12} from "
            room = text.WIDTH - len(head) - len(rule.name) - 2
            yield f"{head}{text.fit(rule.sources, room)}  {rule.name}"
    for lb in view.of(d.LOAD_BALANCER):
        yield f"Load balancer {lb['name']}:"
        # Rules alike but for their port (21, SFTP's 22) share a line.
        alike: dict[str, list[str]] = {}
        for rule in lb["inputs"].get("loadBalancingRules", []):
            how = (
                f"over pool {rule['backendAddressPool']['id'].rsplit('/', 1)[-1]}; idle timeout "
                f"{rule.get('idleTimeoutInMinutes')} min; TCP reset "
                f"{'on' if rule.get('enableTcpReset') else 'off'}"
            )
            alike.setdefault(how, []).append(str(rule["frontendPort"]))
        for how, ports in alike.items():
            yield f"  balanced: port{'s' if len(ports) > 1 else ''} {', '.join(ports)} {how}"
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


def _costs(view: d.Declared) -> list[str]:
    found, total, _ = costs.summary(view)
    priced = [
        f"{u.count} x {u.what} "
        + (f"~${u.monthly:,.0f}" if u.monthly is not None else "(see pricing)")
        for u in found
    ]
    return [
        f"Billable units: ~${total:,.0f}/month (approximate; list prices {costs.PRICES_AS_OF}):",
        *text.pack(priced),
    ]


def _outputs(outputs: dict[str, Any], full: bool) -> list[str]:
    """Short outputs side by side, a long one around its middle, a list's items a line each;
    `full`: each output whole on its line."""
    if full:
        return ["Outputs:", *[f"  {k}: {text.value(v)}" for k, v in outputs.items()]]
    short, long = [], []
    for key, value in outputs.items():
        if key == SFTP_HOST_KEYS and value:
            # known_hosts lines: their key types (the keys whole with --full).
            kinds = ",".join(str(v).split()[1].removeprefix("ssh-").split("-")[0] for v in value)
            short.append(f"{key}: {kinds}")
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            # One entry a record: its values, the names once (`instances`).
            names = "/".join(value[0])
            rows = "; ".join(" ".join(str(x) for x in v.values()) for v in value)
            long += text.wrap(f"{key} ({names}): {rows}", "  ", "    ")
        elif isinstance(value, list) and value:
            long += [f"  {key}[{i}]: {text.middle(text.value(v), 96)}" for i, v in enumerate(value)]
        else:
            short.append(f"{key}: {text.middle(text.value(value), 36)}")
    return ["Outputs:", *text.pack(short, sep="  "), *long]


def _files(plan: Plan) -> list[str]:
    out = ["Bootstrap (cloud-init user-data; replaces the VM when it changes):", plan.user_data]
    for index, files in enumerate(plan.live_files()):
        out += [f"Live configuration of instance {index} (applied in place; secrets masked):"]
        for f in files:
            out += [f"--- {f['path']} (mode {f['mode']})", f["content"].rstrip("\n"), ""]
    return out


# The summary's last line: how to see what it leaves out.
FULL_HINT = (
    "Not shown: the rendered files (cloud-init, each instance's configuration), options in full: "
    "make plan-full"
)


def _resources(plan: Plan, full: bool) -> list[str]:
    top = tree.roots(plan)
    heads = [r for r in plan.resources if r.parent in top]
    under = ""
    if len(heads) == 1:  # one component holds everything: it heads the list
        top, under = [heads[0].name], f", under {tree.short_type(heads[0].type)} {heads[0].name}"
    # In short, the operations' resources are one section of their own (`_operations`).
    hide = frozenset() if full else d.OPERATIONS
    return [
        f"Resources ({len(plan.resources)}{under}; azure-native types by their last name):",
        *tree.lines(plan, full, top, hide),
    ]


def _operations(view: d.Declared) -> list[str]:
    """Logs, alerts and backups in a line: where each goes, or that it is off."""
    vms = len(view.of(d.VM))
    logs = "off"
    for ws in view.of(d.WORKSPACE)[:1] or view.of(d.COLLECTION_RULE)[:1]:
        days = ws["inputs"].get("retentionInDays")
        where = f"{ws['name']}, {days} d" if days else "an existing workspace"
        logs = f"{where} ({len(view.of(d.COLLECTION_ASSOCIATION))}/{vms} VMs)"
    alerts = "off"
    for group in view.of(d.ACTION_GROUP):
        mails = len(group["inputs"].get("emailReceivers") or [])
        count = sum(len(view.of(t)) for t in d.ALERTS)
        alerts = f"{count} to {group['name']} ({mails} address{'es' if mails != 1 else ''})"
    backups = []
    for policy in view.of(d.BACKUP_POLICY):
        rules = (policy["inputs"].get("properties") or {}).get("policyRules") or []
        kept = [r for r in rules if r.get("objectType") == "AzureRetentionRule"]
        days = kept[0]["lifecycles"][0]["deleteAfter"]["duration"].strip("PD") if kept else "?"
        backups.append(f"daily disk backup ({len(view.of(d.BACKUP_INSTANCE))}), {days} d")
    backups += ["daily share snapshots" for _ in view.of(d.WORKFLOW)]
    said = f"Operations: logs {logs}; alerts {alerts}; backups: {', '.join(backups) or 'off'}"
    return text.wrap(said, "", "  ")


def render_text(plan: Plan, full: bool = False) -> str:
    """The summary (under 60 lines for prod, no line over text.WIDTH), or with `full` the
    resources' options whole and every rendered file."""
    view = d.Declared(plan.to_json())
    out = [
        f"ftpstack plan for stack '{plan.stack}' ({plan.label}; offline, Pulumi mocks; "
        "no Azure call)",
        *_resources(plan, full),
        *_network(view),
        *_operations(view),
        *_costs(view),
    ]
    caps = limits.line(view)
    out += text.wrap(caps) if caps else []
    out += text.wrap(f"Critical path of a first deploy: {graph.first_deploy(plan.to_json())}")
    findings = arm_findings(plan)
    out += [f"ARM check: {len(findings)} problem(s)"]
    out += [line for f in findings for line in text.wrap(str(f), "  ", "    ")]
    out += [line for w in warnings(plan) for line in text.wrap(w, "WARNING: ", "  ")]
    out += ["", *_outputs(plan.outputs, full)] if full else _outputs(plan.outputs, full)
    out += ["", *_files(plan)] if full else text.wrap(FULL_HINT)
    return "\n".join(out)
