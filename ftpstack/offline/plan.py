"""The offline plan: the real program (`__main__.py`) evaluated under Pulumi mocks.

No Pulumi CLI, no provider plugin, no Azure account: the stack config is read the way the CLI
reads it (`stackfile`), handed to the program exactly as the engine would, and every resource the
program registers is captured with its parent, inputs, options and dependencies. Values Azure
would compute (addresses, ids) come from the mocks.

Secrets never leave unmasked: values the program marks secret show as `[secret]` (or a keyed
fingerprint), and so do password hashes and private keys in the rendered files. The unmasked
capture exists only in memory, for the local Azure model (`Resource.raw_inputs`).

`make plan` shows it (`ftpstack.offline.show`).
"""

from __future__ import annotations

import contextlib
import copy
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
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.config import set_all_config
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from ftpstack import live
from ftpstack.offline import mocks, stackfile, standins
from ftpstack.offline.declared import RUN_COMMAND, VM
from ftpstack.offline.errors import PlanError
from ftpstack.settings import NAMESPACE, SettingsError

PROJECT_DIR = Path(__file__).resolve().parents[2]
MASK = "[secret]"
FINGERPRINT_KEY_ENV = stackfile.FINGERPRINT_KEY_ENV
_CRYPT_HASH = re.compile(r"\$(?:6|5|y|2b)\$[^:\s]+")
_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----\n?", re.S
)


@dataclass(frozen=True)
class Secret:
    """An override value given as a secret, as `pulumi config set --secret` would store it."""

    value: Any


@dataclass
class Resource:
    type: str
    name: str
    parent: str
    id: str
    inputs: dict[str, Any]  # secrets masked
    options: dict[str, Any]
    dependencies: list[str]
    raw_inputs: dict[str, Any] = field(repr=False, default_factory=dict)  # unmasked, memory only


@dataclass
class Plan:
    stack: str
    label: str  # what was planned: the stack file's name
    resources: list[Resource]
    outputs: dict[str, Any]
    stand_ins: list[str] = field(default_factory=list)  # secret paths planned with stand-ins

    def find(self, type_: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_]

    @property
    def user_data(self) -> str:
        """The VMs' customData (the bootstrap), decoded."""
        vms = self.find(VM)
        encoded = vms[0].raw_inputs.get("osProfile", {}).get("customData", "") if vms else ""
        import base64

        return base64.b64decode(encoded).decode() if encoded else ""

    def bundles(self) -> list[dict[str, Any]]:
        """Each instance's live configuration, decoded (unmasked, memory only)."""
        out = []
        for step in self.find(RUN_COMMAND):
            if step.name.endswith("-configure"):
                given = {p["name"]: p["value"] for p in step.raw_inputs["protectedParameters"]}
                out.append(live.decode(live.joined(given)))
        return out

    def live_files(self) -> list[list[dict[str, str]]]:
        """Each instance's files as a reviewer may see them: secrets masked."""
        return [
            [{**f, "content": mask_text(f["content"])} for f in bundle["files"]]
            for bundle in self.bundles()
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "label": self.label,
            "resources": [
                {
                    "type": r.type,
                    "name": r.name,
                    "parent": r.parent,
                    "id": r.id,
                    "inputs": r.inputs,
                    "options": r.options,
                    "dependencies": r.dependencies,
                }
                for r in self.resources
            ],
            "outputs": self.outputs,
            "cloud_init": self.user_data,
            "live": self.live_files(),
            "stand_ins": self.stand_ins,
        }


def fingerprint(value: Any) -> str:
    """MASK, or MASK with a keyed digest when FTPSTACK_FINGERPRINT_KEY is set: `make diff` sets
    one random key for both plans it compares, so a changed secret shows as changed without its
    value, or a guessable hash of it, ever being printed."""
    key = os.environ.get(FINGERPRINT_KEY_ENV)
    if not key:
        return MASK
    digest = hmac.new(key.encode(), json.dumps(value, sort_keys=True).encode(), "sha256")
    return f"[secret:{digest.hexdigest()[:12]}]"


def mask_text(text: str) -> str:
    """Password hashes and private keys in a file's text, fingerprinted."""
    text = _PRIVATE_KEY.sub(lambda m: fingerprint(m.group(0)) + "\n", text)
    return _CRYPT_HASH.sub(lambda m: fingerprint(m.group(0)), text)


# -- evaluation -----------------------------------------------------------------------------------


def evaluate(
    config: dict[str, str],
    secret_keys: list[str],
    stack: str = "dev",
    program: Path = PROJECT_DIR / "__main__.py",
    label: str = "",
    stack_dir: Path | None = None,
) -> Plan:
    """Run the program under mocks with this config; raise PlanError on a refused config. The
    program runs in `stack_dir` (default: its own directory), where it finds its stack file."""
    set_all_config(config, secret_keys)
    runtime_settings.ROOT.set(None)
    mock = mocks.Mocks(stack)
    monitor = mocks.CapturingMonitor(mock)
    pulumi.runtime.set_mocks(mock, project=NAMESPACE, stack=stack, preview=False, monitor=monitor)
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            _sync_await(run_pulumi_func(lambda: _run(program, stack_dir or program.parent)))
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

    resources = [
        Resource(
            type=c.type,
            name=c.name,
            parent=c.parent,
            id=mocks.arm_id(c.type, c.name, mocks.walk(c.wire, lambda v: v)) if c.custom else "",
            inputs=mocks.walk(c.wire, fingerprint),
            options=c.options,
            dependencies=c.dependencies,
            raw_inputs=mocks.walk(c.wire, lambda v: v),
        )
        for c in monitor.captured
    ]
    return Plan(stack, label or stack, resources, _sync_await(resolve()))


def _without_aliases(
    args: pulumi.ResourceTransformationArgs,
) -> pulumi.ResourceTransformationResult:
    """azure-native gives every resource dozens of type aliases (older API versions), which only
    matter against real state; computing their URNs is most of the time of a plan."""
    opts = copy.copy(args.opts)
    opts.aliases = []
    return pulumi.ResourceTransformationResult(args.props, opts)


def _run(program: Path, stack_dir: Path) -> None:
    pulumi.runtime.register_stack_transformation(_without_aliases)
    # The program reads its stack file in the working directory (for its plaintext check), as
    # under the CLI: there, the one planned.
    with contextlib.chdir(stack_dir):
        runpy.run_path(str(program), run_name="__main__")


def stack_config(
    stack: str,
    project_dir: Path = PROJECT_DIR,
    overrides: dict[str, Any] | None = None,
    stack_file: Path | None = None,
    secrets_file: Path | None = None,
) -> tuple[dict[str, str], list[str], list[str]]:
    """Project defaults overlaid by the stack file, then by `overrides` (keys without namespace;
    wrap a whole value in `Secret` to mark it secret): (config, secret keys, stand-in paths)."""
    from ftpstack.config import plaintext_secrets

    path = stack_file or project_dir / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        raise PlanError(f"no stack file {path}; create it or choose another STACK")
    try:
        values = {**stackfile.project_defaults(project_dir), **stackfile.read_config(path)}
        given = stackfile.read_secrets_file(secrets_file) if secrets_file else {}
    except stackfile.StackFileError as error:
        raise PlanError(str(error)) from None
    for found in plaintext_secrets(values):
        raise PlanError(
            f"{NAMESPACE}:{found} is stored in plaintext in {path.name} (its value is not "
            f"shown); store it as a secret: pulumi config set --secret --path '{found}' <value>"
        )
    try:
        values, stand_in_key = standins.tls_pair(values, given)
    except SettingsError as error:
        raise PlanError(str(error)) from None
    secrets = stackfile.SecretSource({**given, **stand_in_key}, stand_ins=list(stand_in_key))
    config, secret_keys = stackfile.engine_config(values, secrets)
    for key, value in (overrides or {}).items():
        full = f"{NAMESPACE}:{key}"
        if full in secret_keys:
            secret_keys.remove(full)
        if isinstance(value, Secret):
            value = value.value
            secret_keys.append(full)
        config[full] = stackfile.engine_string(value)
    return config, secret_keys, secrets.stand_ins


def plan_stack(
    stack: str,
    project_dir: Path = PROJECT_DIR,
    overrides: dict[str, Any] | None = None,
    stack_file: Path | None = None,
    secrets_file: Path | None = None,
) -> Plan:
    """Plan a stack file, optionally with some keys overridden (tests, the local Azure model)."""
    config, secret_keys, stand_ins = stack_config(
        stack, project_dir, overrides, stack_file, secrets_file
    )
    label = stack_file.name if stack_file else f"Pulumi.{stack}.yaml"
    stack_dir = stack_file.resolve().parent if stack_file else project_dir
    plan = evaluate(config, secret_keys, stack, project_dir / "__main__.py", label, stack_dir)
    plan.stand_ins = [
        p for p in stand_ins if p.split(".")[0].split("[")[0] not in (overrides or {})
    ]
    return plan
