"""The load balancer's health probe, for the local Azure model: a TCP connect to each instance's
probe port every interval, from the probe's own namespace (so the NSG's `AzureLoadBalancer` rule
applies), and the router's balanced map rewritten when an instance changes state after
`threshold` consecutive results, as Azure's `probeThreshold` does.

    python -m ftpstack.local.net.prober --router NS --targets 192.0.2.2:10021,... \
        --interval 5 --threshold 2 [--up 0,1]

Each state change is printed as one JSON line (time, instance, state), once the router's map
says it.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time

from ftpstack.local.net.topology import balanced_elements


def probe(target: str, timeout: float) -> bool:
    host, port = target.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def publish(router: str, healthy: list[int]) -> None:
    elements = balanced_elements(healthy)
    commands = "flush map inet azure balanced\n"
    if elements:
        commands += f"add element inet azure balanced {{ {elements} }}\n"
    subprocess.run(
        ["ip", "netns", "exec", router, "nft", "-f", "-"], input=commands, text=True, check=True
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ftpstack.local.net.prober")
    parser.add_argument("--router", required=True)
    parser.add_argument("--targets", required=True)
    parser.add_argument("--interval", type=float, default=5)
    parser.add_argument("--threshold", type=int, default=2)
    parser.add_argument(
        "--up", default="", help="instances already in rotation (a prober taking over: 0,1)"
    )
    args = parser.parse_args(argv)
    targets = args.targets.split(",")
    # New instances start out of rotation until they pass `threshold` probes, as new backends do.
    already = {int(i) for i in args.up.split(",") if i}
    up = [i in already for i in range(len(targets))]
    streak = [0] * len(targets)
    publish(args.router, [i for i, healthy in enumerate(up) if healthy])
    while True:
        started = time.monotonic()
        changed = []
        for i, target in enumerate(targets):
            ok = probe(target, timeout=max(0.2, args.interval * 0.8))
            streak[i] = streak[i] + 1 if ok != up[i] else 0
            if streak[i] >= args.threshold:
                up[i], streak[i] = ok, 0
                changed.append(i)
        if changed:
            # The map first: whoever reads a change may rely on the router already doing it.
            publish(args.router, [i for i, healthy in enumerate(up) if healthy])
        for i in changed:
            print(json.dumps({"t": time.time(), "instance": i, "up": up[i]}), flush=True)
        time.sleep(max(0.0, args.interval - (time.monotonic() - started)))


if __name__ == "__main__":
    sys.exit(main())
