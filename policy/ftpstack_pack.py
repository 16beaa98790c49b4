"""The ftpstack guardrails wired into pulumi-policy: what the engine hands a policy, made plain.

The checks themselves live in `ftpstack_network` and `ftpstack_guardrails` (plain functions of
plain resources). This module only converts pulumi-policy's arguments (proxied props, `Secret`
wrappers, parent objects) into that plain form and reports each violation.

Secretness: pulumi-policy strips the secret marker from the props a validation sees (Analyze,
AnalyzeStack; pulumi/pulumi-policy#241), but not the values. So what must carry no secret at all
(customData, userData, a Run Command's script and parameters) is a validation on the values, and
is sound whatever the program marks secret. Whether a Run Command's protectedParameters are
stored as a secret is visible only to a remediation: `run-command-protected-parameters-secret`
marks plaintext ones secret before the engine stores them; the plan-level test
(`tests/policy/test_policy.py`) is what rejects a program that forgets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import ftpstack_guardrails as g
import ftpstack_network as net
import ftpstack_operations as ops
import ftpstack_values as v
from pulumi_policy import (
    EnforcementLevel,
    Policy,
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
PRODUCTION_CONFIG = PolicyConfigSchema(
    properties={
        "environmentTag": {"type": "string"},
        "productionValues": {"type": "array", "items": {"type": "string"}},
    }
)
PASSIVE_CONFIG = PolicyConfigSchema(
    properties={
        "passivePortRange": {"type": "string", "pattern": r"^\d+-\d+$"},
        "maxPassivePorts": {"type": "integer", "minimum": 1},
    }
)


def plain(value: Any) -> Any:
    """pulumi-policy's proxies → plain dicts and lists, keeping secrets as wire markers and
    unknowns as the engine's sentinels (so no property access raises during preview)."""
    while isinstance(value, Mapping | Sequence) and not isinstance(value, dict | list | str):
        value = cast(Any, value)["__target"]  # the proxies' documented escape hatch
    if isinstance(value, Secret):
        return v.secret(plain(value.value))
    if isinstance(value, dict):
        return {k: plain(x) for k, x in value.items()}
    if isinstance(value, list):
        return [plain(x) for x in value]
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


def _passive_config(config: Mapping[str, Any]) -> tuple[str | None, int]:
    max_ports = int(config.get("maxPassivePorts") or net.DEFAULT_MAX_PASSIVE_PORTS)
    return config.get("passivePortRange") or None, max_ports


def _internet_inbound(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type in (v.NSG, v.SECURITY_RULE):
        rules = net.security_rules(_resource(args))
        passive, max_ports = _passive_config(args.get_config())
        _report(net.internet_inbound_violations(rules, passive, max_ports), report_violation)


def _forwarding(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    passive, max_ports = _passive_config(args.get_config())
    _report(net.stack_forwarding_violations(_stack(args), passive, max_ports), report_violation)


def _ssh(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type in (v.NSG, v.SECURITY_RULE):
        _report(net.ssh_violations(net.security_rules(_resource(args))), report_violation)


def _on(
    types: frozenset[str] | tuple[str, ...], check: Callable[[dict[str, Any]], list[str]]
) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    """A resource validation that runs `check` on resources of these types."""

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if args.resource_type in types:
            _report(check(_resource(args)), report_violation)

    return validate


def _mark_protected_secret(args: ResourceValidationArgs) -> Mapping[str, Any] | None:
    if args.resource_type not in v.RUN_COMMANDS:
        return None
    fixed = g.mark_protected_parameters_secret(plain(args.props))
    return _to_policy_values(fixed) if fixed is not None else None


def _to_policy_values(value: Any) -> Any:
    """Wire secret markers → pulumi-policy `Secret`, which the engine then encrypts."""
    if v.is_secret(value):
        return Secret(_to_policy_values(value.get("value")))
    if isinstance(value, dict):
        return {k: _to_policy_values(x) for k, x in value.items()}
    if isinstance(value, list):
        return [_to_policy_values(x) for x in value]
    return value


def _idle_timeout(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    _report(g.idle_timeout_violations(_stack(args)), report_violation)


def _sftp(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    _report(g.sftp_violations(_stack(args)), report_violation)


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


def _operations(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    config = args.get_config()
    _report(
        ops.operations_violations(
            _stack(args),
            dict(args.stack_tags),
            config.get("environmentTag") or g.DEFAULT_ENVIRONMENT_TAG,
            config.get("productionValues") or g.DEFAULT_PRODUCTION_VALUES,
        ),
        report_violation,
    )


def _network_policies() -> list[Policy]:
    return [
        ResourceValidationPolicy(
            name="ftp-only-internet-inbound",
            description="No inbound NSG rule (inline or a separate SecurityRule) open to the "
            "Internet except FTP control (21), the passive range (the rule named "
            "allow-ftp-passive, or the policy config passivePortRange) and SFTP (22, the rule "
            "named allow-sftp; see sftp-only-where-served-and-from-ftp-sources).",
            enforcement_level=MANDATORY,
            validate=_internet_inbound,
            config_schema=PASSIVE_CONFIG,
        ),
        StackValidationPolicy(
            name="lb-forwards-only-ftp",
            description="Behind a load balancer only port 21 (and SFTP's 22) is balanced; each NAT "
            "rule forwards one passive port as itself to one instance's pool (each pool one "
            "contiguous slice) or forwards to sshd (22, or 2200), which the NSG restricts.",
            enforcement_level=MANDATORY,
            validate=_forwarding,
            config_schema=PASSIVE_CONFIG,
        ),
        ResourceValidationPolicy(
            name="no-ssh-from-internet",
            description="No inbound NSG rule lets SSH (22, or 2200 while SFTP has 22) in from "
            "*/0.0.0.0/0/Internet.",
            enforcement_level=MANDATORY,
            validate=_ssh,
        ),
        StackValidationPolicy(
            name="sftp-only-where-served-and-from-ftp-sources",
            description="Port 22 opens for SFTP (the NSG rule allow-sftp, the load balancer rule "
            "sftp) only where every VM serves SFTP there (tag ftpstack:sftp=on and SFTPEngine on "
            "in its configuration), and only from the sources FTP (21) admits.",
            enforcement_level=MANDATORY,
            validate=_sftp,
        ),
    ]


def _vm_policies() -> list[Policy]:
    return [
        ResourceValidationPolicy(
            name="vm-password-auth-disabled",
            description="Linux VMs accept SSH keys only: no admin password, password "
            "authentication disabled.",
            enforcement_level=MANDATORY,
            validate=_on((v.VM, v.VMSS), g.password_auth_violations),
        ),
        ResourceValidationPolicy(
            name="vm-custom-data-secret-free",
            description="A VM's customData and userData (the bootstrap) carry no password hash "
            "and no private key, decoded through base64, gzip and JSON.",
            enforcement_level=MANDATORY,
            validate=_on((v.VM, v.VMSS), g.custom_data_violations),
        ),
        ResourceValidationPolicy(
            name="run-command-plain-inputs-secret-free",
            description="A Run Command's script and parameters (returned by Azure in clear) "
            "carry no password hash and no private key; secrets go in protectedParameters.",
            enforcement_level=MANDATORY,
            validate=_on(v.RUN_COMMANDS, g.run_command_plain_violations),
        ),
        ResourceValidationPolicy(
            name="run-command-protected-parameters-secret",
            description="A Run Command's protectedParameters are a secret in the state; plaintext "
            "ones are marked secret (validations cannot see secretness).",
            enforcement_level=EnforcementLevel.REMEDIATE,
            # pulumi-policy types a remediation as returning an awaitable, but runs a plain one.
            remediate=cast(Any, _mark_protected_secret),
        ),
    ]


def _stack_policies() -> list[Policy]:
    return [
        StackValidationPolicy(
            name="idle-timeout-beats-keepalive",
            description="Every public IP / LB rule / NAT rule idle timeout in front of an FTP "
            "server is longer than the server's TCP keepalive idle + interval.",
            enforcement_level=MANDATORY,
            validate=_idle_timeout,
        ),
        StackValidationPolicy(
            name="tls-required-in-production",
            description="On a stack tagged production (stack tag or the VM's Azure tag "
            "environment=production|prod) every FTP server requires TLS.",
            enforcement_level=MANDATORY,
            validate=_tls,
            config_schema=PRODUCTION_CONFIG,
        ),
        StackValidationPolicy(
            name="operations-in-production",
            description="On a stack tagged production every FTP server has central logs (the "
            "agent and a data collection rule on each VM), alerts that mail someone, and backups "
            "of its files, unless it opted out explicitly (VM tag ftpstack:opted-out).",
            enforcement_level=MANDATORY,
            validate=_operations,
            config_schema=PRODUCTION_CONFIG,
        ),
    ]


def policies() -> list[Policy]:
    return _network_policies() + _vm_policies() + _stack_policies()
