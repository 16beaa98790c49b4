"""`make up-local [STACK=dev]` / `make down-local`: a stack's VM booted locally (L4) behind the
local Azure model, left running to try by hand.

    python -m ftpstack.local.vm.uplocal up [--stack dev]   # boot and deploy; print how to reach it
    python -m ftpstack.local.vm.uplocal status             # up, coming up, or not up
    python -m ftpstack.local.vm.uplocal down               # remove the VM, disks, every namespace
    python -m ftpstack.local.vm.uplocal serve --stack dev  # what `up` starts in the background

`up` starts `serve` in its own session and follows its log, saying something at least every
10 s; once the deployment is done it prints the endpoint and commands that reach it from the
client namespace (with the VM's certificate, copied to `.cache/l4/up-local/`, for FTPS). A stack
with several instances boots every VM, and its Azure Files share and the VNet's resolver as
local stand-ins (nfs-ganesha, dnsmasq); the same commands reach the load balancer's address.
`up` again only prints them again. The stack's `secure:` passwords stay with the Pulumi CLI: local
ones are made for the run. Times are not scaled: the idle timeout is the declared one. `down`
ends `serve` by its PID (it powers the VMs off, ends the stand-ins and removes what it made);
whatever a killed `serve` left is removed from what its state file names (every process inside
its namespaces, by PID).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftpstack import outputs
from ftpstack.local.net.netns import Netns, NetnsError
from ftpstack.local.vm.image import CACHE, say
from ftpstack.offline.errors import PlanError
from ftpstack.offline.plan import PROJECT_DIR, Plan, Secret, plan_stack, stack_config

if TYPE_CHECKING:
    from ftpstack.local.vm.deployment import VmDeployment

HOME = CACHE / "up-local"
STATE = HOME / "state.json"
LOG = HOME / "serve.log"
QUIET_SECONDS = 10
MODULE = "ftpstack.local.vm.uplocal"


def local_plan(stack: str) -> tuple[Plan, list[tuple[str, str]]]:
    """The stack's plan with fresh local passwords, and the (user, password) pairs."""
    config, _, _ = stack_config(stack)
    users = json.loads(config.get("ftpstack:users") or "[]") or [{"name": "demo"}]
    local = [(u["name"], secrets.token_urlsafe(12)) for u in users]
    given = [{**u, "password": p} for u, (_, p) in zip(users, local, strict=True)]
    overrides = {"users": Secret(given), "postDeployCheck": False}
    writable = {u["name"] for u in users if not u.get("readOnly")}
    # The first user listed is the one the printed commands use: a writable one if any.
    local.sort(key=lambda pair: pair[0] not in writable)
    return plan_stack(stack, overrides=overrides), local


def instructions(state: dict[str, Any]) -> str:
    """How to reach the endpoint from this shell, as a client on the Internet would."""
    ip, ns, stack = state["public_ip"], state["client"], state["stack"]
    name, password = state["users"][0]
    tls = ["--ssl-reqd", "--cacert", state["cert"]] if state.get("cert") else []
    curl = [
        "ip",
        "netns",
        "exec",
        ns,
        "curl",
        "--silent",
        "--show-error",
        *tls,
        "--user",
        f"{name}:{password}",
    ]
    consoles = state.get("consoles") or [state["console"]]
    several = len(consoles) > 1
    machines = f"{len(consoles)} Debian 12 VMs" if several else "a Debian 12 VM"
    lines = [
        f"ftpstack stack {stack} is up locally: ftp://{ip}:21, through the local Azure model "
        f"(its public address, NSG and idle timeout), {machines} in qemu behind it.",
        "Users (local passwords, made for this run): "
        + ", ".join(f"{u}:{p}" for u, p in state["users"]),
        f"From this shell, as an FTP client on the Internet would (namespace {ns}):",
        "  " + shlex.join([*curl, f"ftp://{ip}/"]),
        "  " + shlex.join([*curl, "--upload-file", "/etc/os-release", f"ftp://{ip}/os-release"]),
        "  " + shlex.join([*curl, f"ftp://{ip}/os-release"]),
    ]
    if tls:
        whose = "the VMs' certificate (one TLS identity)" if several else "the VM's certificate"
        lines.append(f"FTPS is on: {whose} is {state['cert']}.")
    if state.get("known_hosts"):
        pinned = ["-o", f"UserKnownHostsFile={state['known_hosts']}"]
        pinned += ["-o", "StrictHostKeyChecking=yes"]
        lines += [
            "SFTP, the same users and files on port 22, the stack's host keys pinned (it asks "
            "for the password):",
            "  " + shlex.join(["ip", "netns", "exec", ns, "sftp", *pinned, f"{name}@{ip}"]),
        ]
    if several:
        lines += [
            f"The load balancer spreads logins over the {len(consoles)} VMs; they share their "
            f"files: {state.get('share', '')}",
            "The VMs' serial consoles: " + ", ".join(consoles),
        ]
    else:
        lines.append(f"The VM's serial console: {consoles[0]}")
    them = "the VMs" if several else "the VM"
    lines.append(
        f"`make up-local` again prints this; `make down-local` removes {them} and everything else."
    )
    return "\n".join(lines)


def known_hosts(plan: Plan, address: str) -> str:
    """The stack's SFTP host keys (its `sftpHostKeys` output) as known_hosts lines for the local
    public address; empty without SFTP."""
    keys = [line.split(" ", 1)[1] for line in plan.outputs.get(outputs.SFTP_HOST_KEYS) or []]
    return "".join(f"{address} {key}\n" for key in keys)


def read_state() -> dict[str, Any]:
    with contextlib.suppress(OSError, ValueError):
        state: dict[str, Any] = json.loads(STATE.read_text())
        return state
    return {}


def write_state(state: dict[str, Any]) -> None:
    HOME.mkdir(parents=True, exist_ok=True)
    tmp = STATE.with_suffix(".new")
    tmp.write_text(json.dumps(state, indent=1))
    tmp.chmod(0o600)  # it holds the local passwords
    tmp.replace(STATE)


def alive(pid: int) -> bool:
    """`pid` is a `serve` of ours (not a reused PID of something else)."""
    with contextlib.suppress(OSError):
        return MODULE in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    return False


def reaching(stack: str, plan: Plan, deployment: VmDeployment) -> dict[str, Any]:
    """What the printed commands need of a deployed stack: its address, the client namespace,
    the served certificate and the SFTP host keys (files beside the state), the consoles."""
    az = deployment.az
    cert, known = HOME / f"{stack}.crt", HOME / f"{stack}.known_hosts"
    pem = deployment.guest.served_certificate()
    if pem:
        cert.write_text(pem + "\n")
    host_keys = known_hosts(plan, az.public_ip)
    if host_keys:
        known.write_text(host_keys)
    return {
        "public_ip": az.public_ip,
        "client": az.client.name,
        "cert": str(cert) if pem else "",
        "known_hosts": str(known) if host_keys else "",
        "consoles": [str(m.console) for m in deployment.machines],
        "share": az.files.describe() if az.files is not None else "",
    }


# -- serve: the process that owns the VM ----------------------------------------------------------


def serve(stack: str) -> int:
    from ftpstack.local.net.steps import DeployFailed
    from ftpstack.local.vm.deployment import VmDeployment
    from ftpstack.local.vm.qga import GuestAgentError

    stop = threading.Event()

    def stopping(*_: object) -> None:
        if not state.get("ready"):  # mid-deployment: unwind now, the context managers clean up
            raise SystemExit(143)
        stop.set()

    state: dict[str, Any] = {"pid": os.getpid(), "stack": stack, "ready": False}
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stopping)
    try:
        plan, users = local_plan(stack)
    except PlanError as error:
        say(f"error: {error}")
        return 2
    write_state(state)
    try:
        with VmDeployment(plan, time_scale=1.0, workdir=HOME / "vm") as deployment:
            az = deployment.az
            state |= {
                "namespaces": [ns.name for ns in az.namespaces],
                "workdir": str(deployment.workdir),
            }
            write_state(state)
            deployment.deploy()
            for index, guest in enumerate(deployment.guests):
                status = guest.wait_cloud_init()
                active = guest.unit("proftpd")[0]
                say(f"vm{index}: cloud-init {status.get('status')}; proftpd {active}")
            state |= {"ready": True, "users": users} | reaching(stack, plan, deployment)
            write_state(state)
            say("ready")
            stop.wait()
            say("stopping: the VM, the proxy, the namespaces")
    except (DeployFailed, GuestAgentError, NetnsError, RuntimeError, OSError) as error:
        say(f"error: {error}")
        return 1
    finally:
        (HOME / f"{stack}.crt").unlink(missing_ok=True)
        (HOME / f"{stack}.known_hosts").unlink(missing_ok=True)
        if read_state().get("pid") == os.getpid():
            STATE.unlink(missing_ok=True)
    return 0


# -- the commands ----------------------------------------------------------------------------------


def up(stack: str) -> int:
    state = read_state()
    if state and alive(state["pid"]):
        if state["stack"] != stack:
            print(f"stack {state['stack']} is up locally; `make down-local` first", file=sys.stderr)
            return 2
        if state.get("ready"):
            print(instructions(state))
            return 0
        say(f"already coming up (pid {state['pid']}); following it")
        return _follow(None, LOG.stat().st_size if LOG.exists() else 0)
    if state:
        say("a previous up-local ended without cleaning up; removing what it left")
        _remove(state)
    HOME.mkdir(parents=True, exist_ok=True)
    with LOG.open("w") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", MODULE, "serve", "--stack", stack],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            cwd=PROJECT_DIR,
        )
    return _follow(child, 0)


def _follow(child: subprocess.Popen[bytes] | None, shown: int) -> int:
    """Echo the serve log until the deployment is ready; never silent for over 10 s."""
    started = last = time.monotonic()
    while True:
        text = LOG.read_text(errors="replace") if LOG.exists() else ""
        if len(text) > shown:
            sys.stderr.write(text[shown:])
            sys.stderr.flush()
            shown, last = len(text), time.monotonic()
        state = read_state()
        if state.get("ready"):
            print(instructions(state))
            return 0
        ended = child.poll() is not None if child else not alive(state.get("pid", -1))
        if ended:
            stopped = not STATE.exists()  # `down` removed it
            print(
                f"up-local {'was stopped' if stopped else 'failed'}; its log: {LOG}",
                file=sys.stderr,
            )
            return 1
        if time.monotonic() - last >= QUIET_SECONDS:
            say(f"still working ({time.monotonic() - started:.0f} s)")
            last = time.monotonic()
        time.sleep(1)


def _remove(state: dict[str, Any]) -> list[str]:
    """Everything the state names, gone: `serve` ended by its PID (it removes what it made),
    then whatever a killed one left, by namespace (each process inside by its PID) and path.
    What was removed, for people."""
    removed = []
    pid = int(state.get("pid", -1))
    if alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 90
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
        removed.append(f"serve (pid {pid}) with the VMs (qemu), the stand-ins and the apt proxy")
    existing = set(
        subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    )
    for name in state.get("namespaces", []):
        if name in existing:
            Netns(name).delete()
    if state.get("namespaces"):
        removed.append(f"namespaces {', '.join(state['namespaces'])}")
    workdir = state.get("workdir")
    if workdir:
        shutil.rmtree(workdir, ignore_errors=True)
        removed.append(f"{workdir} (the OS overlays, the data disk or share, the seeds)")
    (HOME / f"{state.get('stack')}.crt").unlink(missing_ok=True)
    STATE.unlink(missing_ok=True)
    return removed


def down() -> int:
    state = read_state()
    if not state:
        print("nothing is up")
        return 0
    removed = _remove(state)
    print("down, removed: " + ("; ".join(removed) if removed else "nothing was left"))
    return 0


def status() -> int:
    state = read_state()
    if not state or not alive(state.get("pid", -1)):
        print("not up" + (" (a stale state file: `make down-local` removes it)" if state else ""))
        return 0 if not state else 1
    print(instructions(state) if state.get("ready") else f"coming up (pid {state['pid']})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}")
    parser.add_argument("command", choices=["up", "down", "serve", "status"])
    parser.add_argument("--stack", default="dev")
    args = parser.parse_args(argv)
    if os.geteuid() != 0 and args.command != "status":
        print("up-local needs root (network namespaces, qemu's tap device)", file=sys.stderr)
        return 2
    commands = {
        "up": lambda: up(args.stack),
        "down": down,
        "status": status,
        "serve": lambda: serve(args.stack),
    }
    return commands[args.command]()


if __name__ == "__main__":
    sys.exit(main())
