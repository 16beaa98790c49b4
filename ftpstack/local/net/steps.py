"""A deployment's steps on the local stand-ins, in the order `pulumi up` runs them: each VM's
bootstrap (the user-data), each instance's `narrow` Run Command, then each `configure` Run
Command, one instance after the other — with the scripts and parameters the plan declares.

`edit` lets a stand-in apply the configuration as a test needs it (times scaled, a broken file
injected); it never changes what is declared, only what this run applies.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from ftpstack import live
from ftpstack.local.net.vmhost import VmHost
from ftpstack.offline.declared import RUN_COMMAND
from ftpstack.offline.plan import Plan, Resource

Bundle = dict[str, Any]
Edit = Callable[[Bundle], Bundle]
# The agent release a script installs (live.run_command_script).
RELEASE = re.compile(r"(?<=/releases/)[0-9a-f]{16}\b")


class DeployFailed(Exception):
    """A step failed as `pulumi up` would report it; str() carries the step's own output."""


def scale_keepalive(text: str, factor: float) -> str:
    """`SocketOptions keepalive IDLE:COUNT:INTVL` and the sysctl values, times `factor` (the
    probe count is a count, not a time: unchanged)."""

    def scaled(value: str) -> str:
        return str(max(1, round(int(value) * factor)))

    text = re.sub(
        r"(keepalive\s+)(\d+):(\d+):(\d+)",
        lambda m: f"{m.group(1)}{scaled(m.group(2))}:{m.group(3)}:{scaled(m.group(4))}",
        text,
    )
    return re.sub(
        r"^(net\.ipv4\.tcp_keepalive_(?:time|intvl)\s*=\s*)(\d+)",
        lambda m: f"{m.group(1)}{scaled(m.group(2))}",
        text,
        flags=re.MULTILINE,
    )


# A scaled drain still waits this long: scaled, the probe's window is shorter than this
# machine's own lags in noticing it (the narrowing step's drain must outlast the probe).
DRAIN_FLOOR_S = 2.0


def scaled(factor: float) -> Edit:
    """Times in a bundle scaled: keepalive in its files, and the narrowing step's drain."""

    def edit(bundle: Bundle) -> Bundle:
        out = dict(bundle)
        if "files" in bundle:
            out["files"] = [
                {**f, "content": scale_keepalive(f["content"], factor)} for f in bundle["files"]
            ]
        if "drain_seconds" in bundle:
            out["drain_seconds"] = max(DRAIN_FLOOR_S, bundle["drain_seconds"] * factor)
        return out

    return edit


def edit_file(bundle: Bundle, path: str, change: Callable[[str], str]) -> Bundle:
    """The bundle with one file's content changed (negative controls); a bundle without files
    (the narrowing step's) as it is."""
    if "files" not in bundle:
        return bundle
    files = [
        {**f, "content": change(f["content"])} if f["path"] == path else f for f in bundle["files"]
    ]
    return {**bundle, "files": files}


def without_file(bundle: Bundle, path: str) -> Bundle:
    if "files" not in bundle:
        return bundle
    return {**bundle, "files": [f for f in bundle["files"] if f["path"] != path]}


def steps(plan: Plan, role: str) -> list[Resource]:
    """The plan's `role` Run Commands (narrow, configure), instance 0 first."""
    found = [r for r in plan.find(RUN_COMMAND) if r.name.endswith(f"-{role}")]
    return sorted(found, key=lambda r: (len(r.name), r.name))


def parameters(step: Resource, edit: Edit | None = None) -> dict[str, str]:
    """The environment Azure's Run Command handler gives the script: every named parameter."""
    params = {p["name"]: p["value"] for p in step.raw_inputs.get("parameters", [])}
    for p in step.raw_inputs.get("protectedParameters") or []:
        params[p["name"]] = p["value"]
    if edit is not None:
        bundle = edit(live.decode(live.joined(params)))
        params = {k: v for k, v in params.items() if not k.startswith(live.CONFIG_PARAMETER)}
        params.update(live.parameters(live.encode(bundle)))
    return params


def new_release(script: str, edited: str) -> str:
    """An edited agent is a release of its own: the script never rewrites an installed release."""
    if edited == script:
        raise ValueError("the script edit changed nothing: the negative control would be inert")
    match = RELEASE.search(script)
    assert match is not None, "the script names no release"
    return edited.replace(match.group(0), hashlib.sha256(edited.encode()).hexdigest()[:16])


def run_step(
    vm: VmHost,
    step: Resource,
    edit: Edit | None = None,
    script_edit: Callable[[str], str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """One Run Command as Azure runs it; `script_edit` changes the script (negative controls)."""
    script = step.raw_inputs["source"]["script"]
    if script_edit is not None:
        script = new_release(script, script_edit(script))
    result = vm.run_command(script, parameters(step, edit))
    if result.returncode != 0:
        raise DeployFailed(
            f"{step.name} failed ({result.returncode}): {result.stdout}{result.stderr}"
        )
    return result


def deploy(
    vms: Sequence[VmHost],
    plan: Plan,
    edit: Edit | None = None,
    race: float = 0.0,
    script_edit: Callable[[str], str] | None = None,
) -> list[subprocess.CompletedProcess[str]]:
    """The first `pulumi up`. With `race`, each bootstrap lags that many seconds behind the
    configuration step, as on Azure where the VM agent is ready before cloud-init finished;
    `script_edit` changes the configuration step's script (negative controls)."""
    threads = []
    for vm in vms:
        if race:

            def late(vm: VmHost = vm) -> None:
                time.sleep(race)
                vm.install_bootstrap(plan.user_data)

            threads.append(threading.Thread(target=late, daemon=True))
            threads[-1].start()
        else:
            vm.install_bootstrap(plan.user_data)
    results = [run_step(vm, s, edit) for vm, s in zip(vms, steps(plan, "narrow"), strict=True)]
    configure = zip(vms, steps(plan, "configure"), strict=True)
    results += [run_step(vm, s, edit, script_edit) for vm, s in configure]
    for thread in threads:
        thread.join()
    return results
