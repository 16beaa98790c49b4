"""The offline plan: the real program (`__main__.py`) evaluated under Pulumi mocks.

No Pulumi CLI, no provider plugin, no Azure account: the stack config is read from `Pulumi.yaml`
(declared defaults) and `Pulumi.<stack>.yaml`, handed to the program exactly as the engine would
(strings keyed `ftpstack:<key>`, plus the list of secret keys), and every resource the program
registers is captured with its parent, inputs and options. Values Azure would compute (the public
IP address, ids) come from the mocks, from documentation address ranges.

Secrets never leave unmasked: values the program marks secret show as "[secret]", `secure:`
values of a stack file (which only the CLI can decrypt) are replaced by a placeholder, and password
hashes are masked in the rendered cloud-init. The unmasked capture exists only in memory, for the
local Azure model (`Plan.user_data`).

    python -m ftpstack.plan [--stack dev] [--json]      (make plan [STACK=dev] [ARGS=--json])
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hmac
import io
import json
import os
import re
import runpy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from google.protobuf import json_format
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.config import set_all_config
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from ftpstack.settings import NAMESPACE

PROJECT_DIR = Path(__file__).resolve().parent.parent
MASK = "[secret]"
FINGERPRINT_KEY_ENV = "FTPSTACK_FINGERPRINT_KEY"
# Stands in for a `secure:` value the CLI would decrypt; long enough to pass validation.
SECURE_PLACEHOLDER = "masked-secret-placeholder"
MOCK_PUBLIC_IP = "198.51.100.10"
MOCK_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
# The marker Pulumi's wire format puts on secret values.
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
_SIG_KEY = "4dabf18193072939515e22adb298388d"
_CRYPT_HASH = re.compile(r"\$(?:6|5|y|2b)\$[^:\s]+")
VM_TYPE = "azure-native:compute:VirtualMachine"


class PlanError(Exception):
    """The stack cannot be planned; str() is the one line for people."""

    def __init__(self, message: str, registered: int = 0) -> None:
        super().__init__(message)
        self.registered = registered  # resources the program registered before it stopped


@dataclass
class Resource:
    type: str
    name: str
    parent: str
    inputs: dict[str, Any]  # secrets masked
    options: dict[str, Any]
    raw_inputs: dict[str, Any] = field(repr=False, default_factory=dict)  # unmasked, memory only


@dataclass
class Plan:
    stack: str
    resources: list[Resource]
    outputs: dict[str, Any]
    user_data: str = field(repr=False)  # the VM's customData, decoded, unmasked

    @property
    def cloud_init(self) -> str:
        return mask_user_data(self.user_data)

    def find(self, type_: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_]

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "resources": [
                {
                    "type": r.type,
                    "name": r.name,
                    "parent": r.parent,
                    "inputs": r.inputs,
                    "options": r.options,
                }
                for r in self.resources
            ],
            "outputs": self.outputs,
            "cloud_init": self.cloud_init,
        }


def mask_user_data(text: str) -> str:
    return _CRYPT_HASH.sub(lambda m: fingerprint(m.group(0)), text)


def _walk(value: Any, secret: Any) -> Any:
    """Copy a wire value; a value carrying Pulumi's secret marker becomes `secret(inner)`.
    Whole-number floats (protobuf has no integers) become ints again."""
    if isinstance(value, dict):
        if value.get(_SIG_KEY) == _SECRET_SIG:
            return secret(_walk(value.get("value"), secret))
        return {k: _walk(v, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, secret) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def fingerprint(value: Any) -> str:
    """MASK, or MASK with a keyed digest when FTPSTACK_FINGERPRINT_KEY is set: `make diff` sets
    one random key for both plans it compares, so a changed secret (a password, the user-data)
    shows as changed without its value, or a guessable hash of it, ever being printed."""
    key = os.environ.get(FINGERPRINT_KEY_ENV)
    if not key:
        return MASK
    digest = hmac.new(key.encode(), json.dumps(value, sort_keys=True).encode(), "sha256")
    return f"[secret:{digest.hexdigest()[:12]}]"


def _masked(value: Any) -> Any:
    return _walk(value, fingerprint)


def _unmasked(value: Any) -> Any:
    return _walk(value, lambda inner: inner)


def _name_of(urn: str) -> str:
    return urn.rsplit("::", 1)[-1] if urn else ""


class _Mocks(pulumi.runtime.Mocks):
    """Echo the inputs, and add what Azure computes, from documentation address ranges."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        state = dict(args.inputs)
        rid = f"/subscriptions/{MOCK_SUBSCRIPTION}/mock/{args.typ.split(':')[-1]}/{args.name}"
        state.setdefault("name", args.name)
        if args.typ == "azure-native:network:PublicIPAddress":
            state["ipAddress"] = MOCK_PUBLIC_IP
            label = (state.get("dnsSettings") or {}).get("domainNameLabel")
            if label:
                region = state.get("location", "westeurope")
                state["dnsSettings"] = {
                    "domainNameLabel": label,
                    "fqdn": f"{label}.{region}.cloudapp.azure.com",
                }
        if args.typ == "azure-native:network:NetworkInterface":
            state["ipConfigurations"] = [
                {**c, "privateIPAddress": "10.20.1.4"} for c in state.get("ipConfigurations", [])
            ]
        return rid, state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[Any]]:
        if args.token == "azure-native:authorization:getClientConfig":
            return {
                "subscriptionId": MOCK_SUBSCRIPTION,
                "tenantId": MOCK_SUBSCRIPTION,
                "clientId": MOCK_SUBSCRIPTION,
                "objectId": MOCK_SUBSCRIPTION,
            }, []
        return {}, []


class _CapturingMonitor(pulumi_mocks.MockMonitor):
    """The mock monitor, recording each registration as the engine would receive it."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.captured: list[Resource] = []

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC name)
        if request.type != "pulumi:pulumi:Stack":
            wire = json_format.MessageToDict(request.object)
            self.captured.append(
                Resource(
                    type=request.type,
                    name=request.name,
                    parent=_name_of(request.parent),
                    inputs=_masked(wire),
                    options={
                        "replaceOnChanges": list(request.replaceOnChanges),
                        "deleteBeforeReplace": bool(request.deleteBeforeReplace),
                        "protect": bool(request.protect),
                        "custom": bool(request.custom),
                        "dependsOn": sorted(_name_of(urn) for urn in request.dependencies),
                    },
                    raw_inputs=_unmasked(wire),
                )
            )
        return super().RegisterResource(request)


# -- the stack config, as the engine would hand it to the program -------------------------------


def _secure_to_placeholder(value: Any) -> tuple[Any, bool]:
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return SECURE_PLACEHOLDER, True
        pairs = {k: _secure_to_placeholder(v) for k, v in value.items()}
        return {k: v for k, (v, _) in pairs.items()}, any(s for _, s in pairs.values())
    if isinstance(value, list):
        items = [_secure_to_placeholder(v) for v in value]
        return [v for v, _ in items], any(s for _, s in items)
    return value, False


def _engine_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


@dataclass(frozen=True)
class Secret:
    """An override value given as a secret, as `pulumi config set --secret` would store it."""

    value: Any


def stack_config(
    stack: str,
    project_dir: Path = PROJECT_DIR,
    overrides: dict[str, Any] | None = None,
    stack_file: Path | None = None,
) -> tuple[dict[str, str], list[str]]:
    """Project defaults overlaid by `Pulumi.<stack>.yaml` (or `stack_file`), then by `overrides`
    (keys without namespace; wrap a whole value in `Secret` to mark it secret):
    (config, secret keys)."""
    path = stack_file or project_dir / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        raise PlanError(f"no stack file {path}; create it or choose another STACK")
    project = yaml.safe_load((project_dir / "Pulumi.yaml").read_text())
    values: dict[str, Any] = {
        f"{NAMESPACE}:{key}": spec["default"]
        for key, spec in (project.get("config") or {}).items()
        if isinstance(spec, dict) and "default" in spec
    }
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise PlanError(f"{path.name} is not valid YAML: {error}") from None
    secret_keys = []
    for key, value in (document.get("config") or {}).items():
        full = key if ":" in key else f"{NAMESPACE}:{key}"
        plain, secret = _secure_to_placeholder(value)
        values[full] = plain
        if secret:
            secret_keys.append(full)
    for key, value in (overrides or {}).items():
        full = f"{NAMESPACE}:{key}"
        if full in secret_keys:
            secret_keys.remove(full)
        if isinstance(value, Secret):
            value = value.value
            secret_keys.append(full)
        values[full] = value
    return {k: _engine_string(v) for k, v in values.items()}, secret_keys


# -- evaluation -------------------------------------------------------------------------------


def evaluate(
    config: dict[str, str],
    secret_keys: list[str],
    stack: str = "dev",
    program: Path = PROJECT_DIR / "__main__.py",
) -> Plan:
    """Run the program under mocks with this config; raise PlanError on a refused config."""
    set_all_config(config, secret_keys)
    runtime_settings.ROOT.set(None)
    mocks = _Mocks()
    monitor = _CapturingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project=NAMESPACE, stack=stack, preview=False, monitor=monitor)
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            _sync_await(run_pulumi_func(lambda: _run(program)))
    except SystemExit as stop:
        message = stderr.getvalue().strip().removeprefix("error: ")
        raise PlanError(
            message or f"the program exited with {stop.code}", len(monitor.captured)
        ) from None
    sys.stderr.write(stderr.getvalue())

    root = runtime_settings.get_root_resource()
    exported: dict[str, Any] = dict(getattr(root, "outputs", {}))

    async def resolve() -> dict[str, Any]:
        result = {}
        for key, value in exported.items():
            out = pulumi.Output.from_input(value)
            result[key] = MASK if await out.is_secret() else await out.future()
        return result

    outputs = _sync_await(resolve())
    vms = [r for r in monitor.captured if r.type == VM_TYPE]
    user_data = ""
    if vms:
        encoded = vms[0].raw_inputs.get("osProfile", {}).get("customData", "")
        user_data = base64.b64decode(encoded).decode() if encoded else ""
    return Plan(stack=stack, resources=monitor.captured, outputs=outputs, user_data=user_data)


def _run(program: Path) -> None:
    runpy.run_path(str(program), run_name="__main__")


def plan_stack(
    stack: str,
    project_dir: Path = PROJECT_DIR,
    overrides: dict[str, Any] | None = None,
    stack_file: Path | None = None,
) -> Plan:
    """Plan a stack file, optionally with some keys overridden (tests, the local Azure model)."""
    config, secret_keys = stack_config(stack, project_dir, overrides, stack_file)
    return evaluate(config, secret_keys, stack, project_dir / "__main__.py")


# -- presentation -----------------------------------------------------------------------------


def _tree(plan: Plan) -> list[str]:
    children: dict[str, list[Resource]] = {}
    for r in plan.resources:
        children.setdefault(r.parent, []).append(r)
    lines: list[str] = []

    def walk(parent: str, depth: int) -> None:
        for r in children.get(parent, []):
            notes = []
            if r.options["replaceOnChanges"]:
                notes.append(f"replaced when {', '.join(r.options['replaceOnChanges'])} changes")
            if r.options["deleteBeforeReplace"]:
                notes.append("delete before replace")
            if r.options["protect"]:
                notes.append("protected from deletion")
            suffix = f"   ({'; '.join(notes)})" if notes else ""
            lines.append(f"{'  ' * depth}{r.type}  {r.name}{suffix}")
            walk(r.name, depth + 1)

    names = {r.name for r in plan.resources}
    for root in sorted({r.parent for r in plan.resources if r.parent not in names}):
        walk(root, 0)
    return lines


def _nsg_lines(plan: Plan) -> list[str]:
    lines = []
    for nsg in plan.find("azure-native:network:NetworkSecurityGroup"):
        for rule in sorted(nsg.inputs.get("securityRules", []), key=lambda r: r["priority"]):
            sources = rule.get("sourceAddressPrefixes") or [rule.get("sourceAddressPrefix")]
            lines.append(
                f"  {rule['priority']:>5}  {rule['access']:<5}  {rule['protocol']:<3}  "
                f"port {rule['destinationPortRange']:<12} from {', '.join(sources)}  "
                f"{rule['name']}"
            )
    return lines


def _lb_lines(plan: Plan) -> list[str]:
    lines = []
    for lb in plan.find("azure-native:network:LoadBalancer"):
        rules = lb.inputs.get("loadBalancingRules", [])
        ports = [r["frontendPort"] for r in rules]
        idle = {r.get("idleTimeoutInMinutes") for r in rules}
        reset = {r.get("enableTcpReset") for r in rules}
        lines.append(
            f"  {len(rules)} rules, one per port: {ports[0]}, {ports[1]}-{ports[-1]}; "
            f"idle timeout {sorted(idle)} min; TCP reset {sorted(reset)}"
        )
        for probe in lb.inputs.get("probes", []):
            lines.append(f"  probe {probe['name']}: {probe['protocol']} port {probe['port']}")
    return lines


def render_text(plan: Plan) -> str:
    out = [f"ftpstack plan for stack '{plan.stack}' (offline, Pulumi mocks; no Azure call)", ""]
    out += ["Resources:", *[f"  {line}" for line in _tree(plan)], ""]
    out += ["Inbound NSG rules (priority order):", *_nsg_lines(plan), ""]
    lb = _lb_lines(plan)
    if lb:
        out += ["Load balancer:", *lb, ""]
    out += ["Outputs:"]
    out += [f"  {k}: {json.dumps(v)}" for k, v in plan.outputs.items()]
    out += ["", "cloud-init user-data (secrets masked):", plan.cloud_init]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make plan", description="Evaluate the stack offline and show what it declares."
    )
    parser.add_argument("--stack", default="dev", help="reads Pulumi.<stack>.yaml (default: dev)")
    parser.add_argument("--json", action="store_true", help="one JSON document, for tools")
    parser.add_argument(
        "--stack-file", type=Path, help="plan this config file instead of Pulumi.<stack>.yaml"
    )
    args = parser.parse_args(argv)
    try:
        plan = plan_stack(args.stack, stack_file=args.stack_file)
    except PlanError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        json.dump(plan.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(render_text(plan))
    return 0


if __name__ == "__main__":
    sys.exit(main())
