"""What the policy-pack tests share (not a test module): the pack's modules loaded as the Pulumi
CLI loads them, constructors of plain resources, the real plans in the pack's plain form, and the
pack's analyzer service called with the engine's wire format."""

from __future__ import annotations

import base64
import copy
import importlib
import json
import sys
import zlib
from collections.abc import Mapping
from functools import cache
from typing import Any

from google.protobuf import json_format, struct_pb2

from ftpstack.offline.plan import MASK, Plan
from tests.support import ROOT, plan

POLICY_DIR = ROOT / "policy"
# The pack's modules are top-level modules of the pack directory, as the Pulumi CLI runs them.
sys.path.insert(0, str(POLICY_DIR))
v = importlib.import_module("ftpstack_values")
net = importlib.import_module("ftpstack_network")
g = importlib.import_module("ftpstack_guardrails")
ops = importlib.import_module("ftpstack_operations")
pack = importlib.import_module("ftpstack_pack")

Resource = dict[str, Any]
# A crypt(3) SHA-512 hash and its shape; made up, it opens nothing.
HASH = "$6$rounds=20000$NaClNaClNaCl$" + "Q" * 86
# The stacks the plan-level tests judge: (stack file, overrides).
STACKS: dict[str, tuple[str, dict[str, Any]]] = {
    "dev": ("dev", {}),
    "prod": ("prod", {}),
    "ha": ("prod", {"instances": 2, "sshSourceCidrs": ["198.51.100.7/32"]}),
}
# Stacks the settings model accepts and the pack must reject.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {"prod-tls-allowed": ("prod", {"tls": "allowed"})}


# -- constructed resources -------------------------------------------------------------------------


def rule(name: str, port: str | None, source: Any = "*", **extra: Any) -> Resource:
    """An NSG rule in the inline form (its name under "name")."""
    sources = {"sourceAddressPrefixes": source} if isinstance(source, list) else {}
    single = {} if sources else {"sourceAddressPrefix": source}
    return {
        "name": name,
        "priority": extra.pop("priority", 100),
        "direction": extra.pop("direction", "Inbound"),
        "access": extra.pop("access", "Allow"),
        "protocol": "Tcp",
        "sourcePortRange": "*",
        "destinationAddressPrefix": "*",
        **({"destinationPortRange": port} if port is not None else {}),
        **sources,
        **single,
        **extra,
    }


FTP_RULES = [
    rule("allow-ftp-control", "21"),
    rule("allow-ftp-passive", "50000-50099", priority=110),
    rule("deny-all-inbound", "*", access="Deny", priority=4096),
]


def separate(inline: Mapping[str, Any], parent: str = "ftp-nsg") -> Resource:
    """The same rule as a separate SecurityRule resource, named as the component names it."""
    props = {k: x for k, x in inline.items() if k != "name"}
    props |= {"securityRuleName": inline["name"], "networkSecurityGroupName": parent}
    name = f"{parent}-{inline['name']}"
    return {"type": v.SECURITY_RULE, "name": name, "id": name, "parent": parent, "props": props}


def nsg(rules: list[Resource], shape: str) -> list[Resource]:
    """An NSG with these rules inline, or an empty NSG and one SecurityRule resource each."""
    inline = shape == "inline"
    props = {"securityRules": rules} if inline else {}
    group = {"type": v.NSG, "name": "ftp-nsg", "id": "ftp-nsg", "parent": "ftp", "props": props}
    return [group, *([] if inline else [separate(r) for r in rules])]


def vm(
    custom_data: Any = None,
    tags: Mapping[str, str] | None = None,
    linux: Mapping[str, Any] | None = None,
    name: str = "ftp-vm",
    parent: str | None = "ftp",
    **os_profile: Any,
) -> Resource:
    profile: dict[str, Any] = {
        "adminUsername": "ftpadmin",
        "linuxConfiguration": {"disablePasswordAuthentication": True} if linux is None else linux,
        **os_profile,
    }
    if custom_data is not None:
        profile["customData"] = custom_data
    props = {"osProfile": profile, "tags": dict(tags or {})}
    return {"type": v.VM, "name": name, "id": name, "parent": parent, "props": props}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def bundle(*files: str) -> str:
    """A configuration as ftpstack's configuration step carries it: base64(zlib(JSON))."""
    document = {"files": [{"path": f"/etc/f{i}", "content": c} for i, c in enumerate(files)]}
    return base64.b64encode(zlib.compress(json.dumps(document).encode())).decode()


def run_command(
    parent: str = "ftp-vm",
    parameters: Mapping[str, str] | None = None,
    protected: Any = None,
    script: str = "#!/bin/bash\nexec /usr/bin/python3 /usr/local/lib/ftpstack/agent.py\n",
    name: str = "ftp-vm-configure",
) -> Resource:
    props: dict[str, Any] = {
        "source": {"script": script},
        "parameters": [{"name": k, "value": x} for k, x in (parameters or {}).items()],
    }
    if protected is not None:
        props["protectedParameters"] = protected
    return {"type": v.RUN_COMMAND, "name": name, "id": name, "parent": parent, "props": props}


def server(*children: Resource) -> list[Resource]:
    return [
        {"type": v.FTP_SERVER, "name": "ftp", "id": "ftp", "parent": None, "props": {}},
        *children,
    ]


def public_ip(minutes: int | None = 4) -> Resource:
    props = {} if minutes is None else {"idleTimeoutInMinutes": minutes}
    return {"type": v.PUBLIC_IP, "name": "ftp-ip", "id": "ftp-ip", "parent": "ftp", "props": props}


def load_balancer(*rules: tuple[int, int, int | None], **props: Any) -> Resource:
    """A load balancer with (frontend, backend, idle minutes) rules."""
    balanced = [
        {"name": f"lb-{i}", "frontendPort": f, "backendPort": b}
        | ({} if m is None else {"idleTimeoutInMinutes": m})
        for i, (f, b, m) in enumerate(rules)
    ]
    return {
        "type": v.LOAD_BALANCER,
        "name": "ftp-lb",
        "id": "ftp-lb",
        "parent": "ftp",
        "props": {"loadBalancingRules": balanced, **props},
    }


def nat(
    port: int, pool: str = "instance-0", front: int | None = None, minutes: int = 4
) -> Resource:
    """A V2 inbound NAT rule to an instance's pool (frontend port = `front` or `port`)."""
    props = {
        "inboundNatRuleName": f"nat-{port}-{pool}",
        "frontendPortRangeStart": front or port,
        "frontendPortRangeEnd": front or port,
        "backendPort": port,
        "idleTimeoutInMinutes": minutes,
        "backendAddressPool": {
            "id": f"/subscriptions/s/loadBalancers/ftp-lb/backendAddressPools/{pool}"
        },
    }
    name = f"ftp-nat-{port}-{pool}"
    return {"type": v.NAT_RULE, "name": name, "id": name, "parent": "ftp-lb", "props": props}


# -- the real plans ------------------------------------------------------------------------------


@cache
def _plan(name: str) -> Plan:
    stack, overrides = {**STACKS, **VARIANTS}[name]
    return plan(stack, **overrides)


def plan_json(name: str) -> dict[str, Any]:
    """A named stack's plan as `make plan ARGS=--json` shows it (a copy to change)."""
    return copy.deepcopy(_plan(name).to_json())


def plain_resources(p: Plan) -> list[Resource]:
    """The plan's resources in the pack's plain form: where the masked inputs show a secret, the
    unmasked value is wrapped in the engine's secret marker."""

    def merge(masked: Any, raw: Any) -> Any:
        if isinstance(masked, str) and masked.startswith(MASK[:-1]):
            return v.secret(raw)
        if isinstance(masked, dict) and isinstance(raw, dict):
            return {k: merge(x, raw.get(k)) for k, x in masked.items()}
        if isinstance(masked, list) and isinstance(raw, list):
            return [merge(m, r) for m, r in zip(masked, raw, strict=True)]
        return raw

    return [
        {
            "type": r.type,
            "name": r.name,
            "id": r.name,
            "parent": r.parent or None,
            "props": merge(r.inputs, r.raw_inputs),
        }
        for r in p.resources
    ]


def planned(name: str) -> list[Resource]:
    """A named stack's resources in plain form (a copy to break)."""
    return copy.deepcopy(plain_resources(_plan(name)))


def find(resources: list[Resource], type_: str, name: str | None = None) -> Resource:
    return next(r for r in resources if r["type"] == type_ and name in (None, r["name"]))


def all_violations(
    resources: list[Resource], stack_tags: Mapping[str, str] | None = None
) -> list[str]:
    """Every check, as the pack runs it (the remediation's condition included)."""
    found: list[str] = []
    for r in resources:
        if r["type"] in (v.NSG, v.SECURITY_RULE):
            rules = net.security_rules(r)
            found += net.internet_inbound_violations(rules) + net.ssh_violations(rules)
        if r["type"] in (v.VM, v.VMSS):
            found += g.password_auth_violations(r) + g.custom_data_violations(r)
        if r["type"] in v.RUN_COMMANDS:
            found += g.run_command_plain_violations(r) + g.protected_parameters_violations(r)
    found += net.stack_forwarding_violations(resources)
    found += g.idle_timeout_violations(resources)
    found += g.tls_violations(resources, stack_tags or {})
    found += g.sftp_violations(resources)
    found += ops.operations_violations(resources, stack_tags or {})
    return found


# -- the pack as pulumi-policy runs it -----------------------------------------------------------

URN = "urn:pulumi:dev::ftpstack::"


def servicer(stack_tags: Mapping[str, str] | None = None) -> Any:
    from pulumi.runtime.proto import analyzer_pb2
    from pulumi_policy import EnforcementLevel
    from pulumi_policy.policy import _PolicyAnalyzerServicer

    service = _PolicyAnalyzerServicer(
        pack.PACK_NAME, "0.0.1", pack.policies(), EnforcementLevel.MANDATORY
    )
    service.ConfigureStack(analyzer_pb2.AnalyzerStackConfigureRequest(tags=stack_tags or {}), None)
    return service


def struct(props: Mapping[str, Any]) -> struct_pb2.Struct:
    return json_format.ParseDict(props, struct_pb2.Struct())


def request(resource: Resource) -> Any:
    from pulumi.runtime.proto import analyzer_pb2

    return analyzer_pb2.AnalyzeRequest(
        type=resource["type"],
        properties=struct(resource["props"]),
        urn=f"{URN}{resource['type']}::{resource['name']}",
        name=resource["name"],
    )


def analyze(resource: Resource, service: Any = None) -> list[tuple[str, str]]:
    response = (service or servicer()).Analyze(request(resource), None)
    return [(d.policyName, d.message) for d in response.diagnostics]


def analyze_stack(
    resources: list[Resource], stack_tags: Mapping[str, str] | None = None
) -> list[tuple[str, str]]:
    from pulumi.runtime.proto import analyzer_pb2

    urns = {r["id"]: f"{URN}{r['type']}::{r['name']}" for r in resources}
    stack = analyzer_pb2.AnalyzeStackRequest(
        resources=[
            analyzer_pb2.AnalyzerResource(
                type=r["type"],
                properties=struct(r["props"]),
                urn=urns[r["id"]],
                name=r["name"],
                parent=urns.get(r["parent"] or "", ""),
            )
            for r in resources
        ]
    )
    response = servicer(stack_tags).AnalyzeStack(stack, None)
    return [(d.policyName, d.message) for d in response.diagnostics]


def remediate(resource: Resource) -> Any:
    return servicer().Remediate(request(resource), None)
