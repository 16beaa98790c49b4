"""The L2 stand-in: one VM (`VmHost`) in a network namespace of its own whose loopback carries the
stack's public address (and any client addresses a test wants), deployed by the plan's own steps.
Clients in the same namespace connect to the public address as customers would, and nothing ever
leaves the namespace. No router: what the network does is L3's business.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ftpstack import outputs, paths
from ftpstack.local.net import steps
from ftpstack.local.net.client import environment, invocation, run_client
from ftpstack.local.net.netns import Netns, StandIn
from ftpstack.local.net.vmhost import VmHost
from ftpstack.offline.plan import Plan

CLIENT = "ftpstack.local.net.client"


class LocalServer(StandIn):
    """`with LocalServer(plan) as server: server.client("upload", ..., user=, password=)`."""

    def __init__(
        self,
        plan: Plan,
        edit: steps.Edit | None = None,
        addresses: Sequence[str] = (),
        script_edit: Callable[[str], str] | None = None,
    ) -> None:
        self.plan = plan
        self.edit = edit
        self.script_edit = script_edit  # the configuration step's script, changed
        self.addresses = list(addresses)
        self.public_ip = str(plan.outputs[outputs.PUBLIC_IP])
        self.netns: Netns | None = None
        self.vm: VmHost | None = None
        self.storage: Path | None = None

    def start(self) -> None:
        self.netns = Netns.create("l2")
        for address in (self.public_ip, *self.addresses):
            self.netns.ip("addr", "add", f"{address}/32", "dev", "lo")
        self.storage = Path(tempfile.mkdtemp(prefix="ftpstack-l2-"))
        self.storage.chmod(0o755)
        self.vm = VmHost(self.netns, {paths.FTP_ROOT: self.storage})
        self.vm.start()
        steps.deploy([self.vm], self.plan, self.edit, script_edit=self.script_edit)

    def close(self) -> None:
        if self.vm is not None:
            self.vm.close()
            self.vm = None
        if self.netns is not None:
            self.netns.delete()
            self.netns = None
        if self.storage is not None:
            shutil.rmtree(self.storage, ignore_errors=True)
            self.storage = None

    @property
    def ns(self) -> Netns:
        assert self.netns is not None
        return self.netns

    @property
    def machine(self) -> VmHost:
        assert self.vm is not None
        return self.vm

    def apply(self, new: Plan, edit: steps.Edit | None = None) -> subprocess.CompletedProcess[str]:
        """A later configuration step (a live change) with `new`'s declared parameters."""
        (step,) = steps.steps(new, "configure")
        return steps.run_step(self.machine, step, edit)

    def client(
        self, command: str, *args: str, user: str = "", password: str = "", timeout: float = 300
    ) -> dict[str, Any]:
        """`python -m ftpstack.local.net.client <command>` against the public address; its JSON."""
        return run_client(
            self.ns, self.public_ip, command, *args, user=user, password=password, timeout=timeout
        )

    def client_run(
        self, command: str, *args: str, user: str = "", password: str = "", timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """The same, as it ended (exit code, stdout and stderr), for a client expected to fail."""
        return self.ns.run(
            *invocation(self.public_ip, command, *args, user=user),
            env=environment(password),
            timeout=timeout,
        )

    def run(
        self, *argv: str, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """A host program (curl, lftp, ftpcheck) in the namespace, as a client."""
        return self.ns.run(*argv, env=env or environment(), timeout=timeout)
