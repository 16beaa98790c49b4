"""A VM stand-in for L2 and L3: a network namespace, and a mount namespace of its own in which the
VM's directories are private (tmpfs), so the declared files sit at their declared paths and the
machine's own files are never touched.

- `install_bootstrap()` does locally what cloud-init does with the user-data: it writes the
  `write_files` and runs the `runcmd` steps, except those that configure the machine itself
  (accounts, systemd, the data disk: the namespaces and a bind-mounted directory stand in).
- `run_command()` is the stand-in for Azure's managed Run Command: the declared script, with its
  parameters as environment variables, run as root inside the VM through an out-of-band channel
  (entering its namespaces, never over the network).
- `path()` shows a VM file from the host (`/proc/<pid>/root/...`).

Everything started inside (the agent starts proftpd) is in the network namespace, so `close()`
ends it by PID with the namespace.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ftpstack.local.net.netns import Netns, NetnsError, StandIn, end_process

# Private in the VM: each gets an empty tmpfs. (Directories that exist on every Debian host, so
# nothing is created outside the namespace.)
VM_DIRS = (
    "/etc/proftpd",
    "/etc/sysctl.d",
    "/etc/logrotate.d",
    "/etc/systemd/system",
    "/run",
    "/var/log/proftpd",
    "/var/lib",
    "/srv",
    "/usr/local/lib",
    "/usr/local/sbin",
    "/home",
)
# runcmd steps that configure the machine itself; the namespaces stand in for them.
MACHINE_STEPS = ("getent", "systemctl", "sysctl", "/usr/local/sbin/ftpstack-data-disk")
READY = "ftpstack-vm-ready"
STANDIN_DIR = "/var/lib/waagent-standin"


class VmHost(StandIn):
    """One VM: `with VmHost(netns, shared={"/srv/ftp": Path(...)}) as vm: ...`."""

    def __init__(self, netns: Netns, shared: Mapping[str, Path] | None = None) -> None:
        self.netns = netns
        self.shared = dict(shared or {})
        self.anchor: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int:
        assert self.anchor is not None, "the VM is not started"
        return self.anchor.pid

    def start(self) -> None:
        lines = ["set -e", *(f"mount -t tmpfs -o mode=0755 tmpfs {d}" for d in VM_DIRS)]
        for target, source in self.shared.items():
            lines += [
                f"mkdir -p {shlex.quote(target)}",
                f"mount --bind {shlex.quote(str(source))} {shlex.quote(target)}",
            ]
        lines += [f"echo {READY}", "exec sleep infinity"]
        self.anchor = self.netns.popen(
            # Its own IPC namespace too: proftpd keeps its ban table in SysV shared memory keyed by
            # a file's inode, which every stand-in's tmpfs would share (and which outlives it).
            "unshare",
            "--mount",
            "--ipc",
            "--propagation",
            "private",
            "sh",
            "-c",
            "\n".join(lines),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.anchor.stdout is not None
        if self.anchor.stdout.readline().strip() != READY:
            error = self.anchor.stderr.read() if self.anchor.stderr else ""
            raise NetnsError(f"the VM's mount namespace did not come up: {error}")

    def close(self) -> None:
        if self.anchor is not None:
            end_process(self.anchor, timeout=5)
            self.anchor = None

    def argv(self, *argv: str) -> list[str]:
        return ["nsenter", "-t", str(self.pid), "-m", "-n", "-i", "--", *argv]

    def exec(
        self,
        *argv: str,
        env: Mapping[str, str] | None = None,
        input: str | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*argv),
            env=dict(env) if env is not None else None,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def popen(self, *argv: str, **kw: Any) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv(*argv), text=True, **kw)

    def path(self, vm_path: str) -> Path:
        return Path(f"/proc/{self.pid}/root{vm_path}")

    def write(self, vm_path: str, content: str, mode: str = "0644") -> None:
        result = self.exec("install", "-D", "-m", mode, "/dev/stdin", vm_path, input=content)
        if result.returncode != 0:
            raise NetnsError(f"writing {vm_path} in the VM: {result.stderr.strip()}")

    # -- the bootstrap (cloud-init's part) ------------------------------------------------------

    def install_bootstrap(self, user_data: str) -> None:
        """The user-data's files and setup commands, as cloud-init would run them here."""
        document = yaml.safe_load(user_data)
        for entry in document.get("write_files", []):
            self.write(entry["path"], entry["content"], entry.get("permissions", "0644"))
        for step in document.get("runcmd", []):
            argv = step.split() if isinstance(step, str) else step
            if argv[0] in MACHINE_STEPS:
                continue
            command = ["sh", "-c", step] if isinstance(step, str) else [str(a) for a in step]
            result = self.exec(*command)
            if result.returncode != 0:
                raise NetnsError(f"bootstrap step {step!r}: {result.stderr.strip()}")

    # -- the Run Command stand-in ------------------------------------------------------------------

    def run_command(
        self, script: str, parameters: Mapping[str, str], timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """As Azure's Run Command handler: the script saved as a root-only file and run by bash
        as root, each named parameter (public or protected) an environment variable."""
        path = f"{STANDIN_DIR}/{time.monotonic_ns()}/script.sh"
        self.write(path, script, "0500")
        env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            **{k: v for k, v in parameters.items() if v},
        }
        return self.exec("/bin/bash", "-c", path, env=env, timeout=timeout)
