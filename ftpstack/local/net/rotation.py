"""The load balancer's rotation in the local model: the probe (`ftpstack.local.net.prober`, a
process in the probe's namespace) and what a deployment waits for — instances in rotation, an
instance's verdict — read from its events and from the router's own map."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from typing import Any

from ftpstack.local.net import topology as net
from ftpstack.local.net.client import module_argv
from ftpstack.local.net.netns import Netns, NetnsError, end_process
from ftpstack.offline.plan import PROJECT_DIR

# The load balancer's probe as declared (Azure seconds, before any time scale): every 5 s, an
# instance changes state after 2 consecutive results.
PROBE_INTERVAL_S = 5.0
PROBE_THRESHOLD = 2


class Rotation:
    """What `LocalAzure` (a dataclass holding these) does with the probe."""

    topology: net.Topology
    time_scale: float
    namespaces: list[Netns]
    prober: subprocess.Popen[str] | None
    healthy: dict[int, bool]
    probe_events: list[dict[str, Any]]

    @property
    def router(self) -> Netns:
        return self.namespaces[0]

    def _start_prober(self, up: list[int] | None = None) -> None:
        """The probe over every instance; `up`: those already in rotation (a prober taking over
        from another keeps them in), the others join once their probes pass."""
        if self.topology.balanced is None:
            return
        targets = ",".join(
            f"{net.vm_address(i)}:{net.probe_port(self.topology)}"
            for i in range(self.topology.instances)
        )
        interval = max(0.1, PROBE_INTERVAL_S * self.time_scale)
        self.prober = self.namespaces[3].popen(
            *module_argv("ftpstack.local.net.prober"),
            "--router",
            self.router.name,
            "--targets",
            targets,
            "--interval",
            str(interval),
            "--threshold",
            str(PROBE_THRESHOLD),
            "--up",
            ",".join(map(str, up or [])),
            stdout=subprocess.PIPE,
            cwd=PROJECT_DIR,
        )
        threading.Thread(target=self._read_probes, args=(self.prober,), daemon=True).start()
        if up is None:
            self.wait_balanced(self.topology.instances)

    def _restart_prober(self) -> None:
        """The probe over a new set of instances (a scale-out): the healthy ones stay in."""
        assert self.prober is not None
        up = [i for i, healthy in self.healthy.items() if healthy]
        end_process(self.prober, timeout=5)
        self._start_prober(up)

    def _read_probes(self, prober: subprocess.Popen[str]) -> None:
        assert prober.stdout is not None
        for line in prober.stdout:
            event = json.loads(line)
            self.probe_events.append(event)
            self.healthy[event["instance"]] = event["up"]

    def wait_balanced(self, count: int, timeout: float = 30) -> None:
        """Until `count` instances are in rotation (their probes pass)."""
        deadline = time.monotonic() + timeout
        while sum(self.healthy.values()) < count:
            if time.monotonic() > deadline:
                raise NetnsError(
                    f"fewer than {count} instances passed the probe within {timeout:.0f} s"
                )
            time.sleep(0.05)

    def in_rotation(self, index: int) -> bool:
        """Whether the router's balanced map sends new connections to instance `index`."""
        # JSON: nft 1.0.6 crashes listing a `typeof jhash` map as text.
        listed = self.router.run("nft", "-j", "list", "map", "inet", "azure", "balanced")
        if listed.returncode != 0:
            raise NetnsError(f"nft could not list the balanced map: {listed.stderr.strip()}")
        maps = [x["map"] for x in json.loads(listed.stdout)["nftables"] if "map" in x]
        return any(value == net.vm_address(index) for _, value in maps[0].get("elem", []))

    def wait_healthy(self, index: int, up: bool, timeout: float | None = None) -> float:
        """Until the probe has put instance `index` in rotation (`up`) or taken it out, and the
        router's map says so (the prober reports a change just before it rewrites the map); the
        seconds that took. By default at most 20 s, or twice the probe's scaled window and more
        when that is longer."""
        if timeout is None:
            timeout = max(20.0, 4 * PROBE_THRESHOLD * PROBE_INTERVAL_S * self.time_scale)
        started = time.monotonic()
        while self.healthy.get(index) != up or self.in_rotation(index) != up:
            if time.monotonic() - started > timeout:
                state = "up" if up else "down"
                raise NetnsError(f"instance {index} never went {state} within {timeout:.0f} s")
            time.sleep(0.05)
        return time.monotonic() - started
