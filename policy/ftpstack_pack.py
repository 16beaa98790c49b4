"""The ftpstack guardrails wired into pulumi-policy: what the engine hands a policy, made plain.

The checks themselves live in `ftpstack_guardrails` (plain functions of plain dicts). This module
only converts pulumi-policy's arguments (proxied props, `Secret` wrappers, parent objects) into
that plain form and reports each violation.

Secretness: pulumi-policy strips the secret marker from the props a validation sees (Analyze,
AnalyzeStack; pulumi/pulumi-policy#241), so no validation can tell whether customData is a
secret. Only a remediation sees the marker. `vm-user-data-secret` is therefore a remediation: it
marks a plaintext customData secret before the engine stores it, so the state never holds it in
the clear; the plan-level test (`tests/test_policy.py`) is what rejects a plaintext one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import ftpstack_guardrails as g
from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.secret import Secret

PACK_NAME = "ftpstack-guardrails"
MANDATORY = EnforcementLevel.MANDATORY


def plain(value: Any) -> Any:
    """pulumi-policy's proxies → plain dicts and lists, keeping secrets as wire markers and
    unknowns as the engine's sentinels (so no property access raises during preview)."""
    while isinstance(value, Mapping | Sequence) and not isinstance(value, dict | list | str):
        value = value["__target"]  # the proxies' documented escape hatch
    if isinstance(value, Secret):
        return g.secret(plain(value.value))
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def _resource(args: ResourceValidationArgs) -> dict[str, Any]:
    return {
        "type": args.resource_type,
        "name": args.name,
        "id": args.urn,
        "parent": args.opts.parent if args.opts else None,
        "props": plain(args.props),
    }


def _stack(args: StackValidationArgs) -> list[dict[str, Any]]:
    return [
        {
            "type": r.resource_type,
            "name": r.name,
            "id": r.urn,
            "parent": r.parent.urn if r.parent is not None else None,
            "props": plain(r.props),
        }
        for r in args.resources
    ]


def _report(violations: list[str], report_violation: ReportViolation) -> None:
    for message in violations:
        report_violation(message, None)


def _internet_inbound(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type not in (g.NSG, g.SECURITY_RULE):
        return
    config = args.get_config()
    rules = g.security_rules(_resource(args))
    _report(
        g.internet_inbound_violations(
            rules,
            config.get("passivePortRange") or None,
            int(config.get("maxPassivePorts") or g.DEFAULT_MAX_PASSIVE_PORTS),
        ),
        report_violation,
    )


def _ssh(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type in (g.NSG, g.SECURITY_RULE):
        _report(g.ssh_violations(g.security_rules(_resource(args))), report_violation)


def _password_auth(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type in (g.VM, g.VMSS):
        _report(g.password_auth_violations(_resource(args)), report_violation)


def _mark_user_data_secret(args: ResourceValidationArgs) -> Mapping[str, Any] | None:
    if args.resource_type not in (g.VM, g.VMSS):
        return None
    fixed = g.mark_user_data_secret(plain(args.props), args.resource_type)
    return _to_policy_values(fixed) if fixed is not None else None


def _to_policy_values(value: Any) -> Any:
    """Wire secret markers → pulumi-policy `Secret`, which the engine then encrypts."""
    if g.is_secret(value):
        return Secret(_to_policy_values(value.get("value")))
    if isinstance(value, dict):
        return {k: _to_policy_values(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_policy_values(v) for v in value]
    return value


def _idle_timeout(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    _report(g.idle_timeout_violations(_stack(args)), report_violation)


def _tls(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    config = args.get_config()
    _report(
        g.tls_violations(
            _stack(args),
            dict(args.stack_tags),
            config.get("environmentTag") or g.DEFAULT_ENVIRONMENT_TAG,
            config.get("productionValues") or g.DEFAULT_PRODUCTION_VALUES,
        ),
        report_violation,
    )


def policies() -> list[ResourceValidationPolicy | StackValidationPolicy]:
    return [
        ResourceValidationPolicy(
            name="ftp-only-internet-inbound",
            description="No inbound NSG rule open to the Internet except FTP control (21) and "
            "the passive range (the rule named allow-ftp-passive, or the policy config "
            "passivePortRange).",
            enforcement_level=MANDATORY,
            validate=_internet_inbound,
            config_schema=PolicyConfigSchema(
                properties={
                    "passivePortRange": {"type": "string", "pattern": r"^\d+-\d+$"},
                    "maxPassivePorts": {"type": "integer", "minimum": 1},
                }
            ),
        ),
        ResourceValidationPolicy(
            name="no-ssh-from-internet",
            description="No inbound NSG rule lets SSH (22) in from */0.0.0.0/0/Internet.",
            enforcement_level=MANDATORY,
            validate=_ssh,
        ),
        ResourceValidationPolicy(
            name="vm-password-auth-disabled",
            description="Linux VMs accept SSH keys only: no admin password, password "
            "authentication disabled.",
            enforcement_level=MANDATORY,
            validate=_password_auth,
        ),
        ResourceValidationPolicy(
            name="vm-user-data-secret",
            description="The VM's user-data (osProfile.customData) is a secret; a plaintext one "
            "is marked secret before it reaches the state (validations cannot see secretness).",
            enforcement_level=EnforcementLevel.REMEDIATE,
            remediate=_mark_user_data_secret,
        ),
        StackValidationPolicy(
            name="idle-timeout-beats-keepalive",
            description="Every public IP / LB rule idle timeout in front of an FTP server is "
            "longer than the server's TCP keepalive idle + interval.",
            enforcement_level=MANDATORY,
            validate=_idle_timeout,
        ),
        StackValidationPolicy(
            name="tls-required-in-production",
            description="On a stack tagged production (stack tag or the VM's Azure tag "
            "environment=production|prod) every FTP server requires TLS.",
            enforcement_level=MANDATORY,
            validate=_tls,
            config_schema=PolicyConfigSchema(
                properties={
                    "environmentTag": {"type": "string"},
                    "productionValues": {"type": "array", "items": {"type": "string"}},
                }
            ),
        ),
    ]
