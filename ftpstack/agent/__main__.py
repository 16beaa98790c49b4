"""`python3 /usr/local/lib/ftpstack/agent.py <command>`: the phases a configuration run
performs (apply, narrow), and what an administrator runs by hand (as root, or through `az vm
run-command invoke`)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from ftpstack import paths
from ftpstack.agent.apply import apply, bundle_text, decode_bundle, narrow, rejoin
from ftpstack.agent.base import ApplyFailed, systemd
from ftpstack.agent.proftpd import health, reload_proftpd, sessions, settle, unban


def release() -> str:
    """The release this agent runs from: its directory on the VM is named by its digest."""
    return Path(__file__).resolve().parents[2].name


def drain_seconds(argv: list[str]) -> float:
    """`drain [SECONDS]`: how long to wait for the load balancer (a number of seconds, at most an
    hour; the default the health unit waits), else ApplyFailed in one line."""
    if len(argv) == 2:
        return float(paths.DRAIN_SECONDS)
    text = argv[2] if len(argv) == 3 else ""
    try:
        seconds = float(text) if text == text.strip() else -1.0
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 3600:  # also refuses nan
        shown = " ".join(repr(a) for a in argv[2:])
        raise ApplyFailed(
            f"drain takes at most one argument, seconds from 0 to 3600: drain 12 (not {shown})"
        )
    return seconds


def by_hand(command: str, argv: list[str]) -> None:
    """What an administrator runs (as root, or through `az vm run-command invoke`)."""
    if command == "unban":  # needs no record: its one argument is checked before anything runs
        if len(argv) != 3:
            raise ApplyFailed("unban takes one argument, the IP address: unban 203.0.113.7")
        unban(argv[2])
        return
    wait = drain_seconds(argv) if command == "drain" else 0.0  # checked before anything runs
    record = json.loads(Path(paths.APPLIED).read_text())
    p = record["proftpd"]
    if command == "reload":
        reload_proftpd(p["pid_file"], p["port"], p["log"])
    elif command == "drain":
        health(record, on=False)
        if not systemd():  # the health unit's own stop waits for the probe on a real VM
            time.sleep(wait)
        settle(p["pid_file"])
    elif command == "undrain":
        health(record, on=True)
    elif command == "settle":
        settle(p["pid_file"])
    elif command == "rejoin":
        rejoin(record)
    elif command == "status":
        found = sessions(p["pid_file"])
        print(
            json.dumps(
                {"generation": record["generation"], "release": release(), "sessions": found}
            )
        )
    else:
        raise ApplyFailed(f"unknown command {command!r}")


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "apply"
    try:
        if command == "apply":
            apply(decode_bundle(bundle_text(os.environ)))
        elif command == "narrow":
            bundle = decode_bundle(bundle_text(os.environ))
            narrow(bundle, os.environ["FTPSTACK_PASSIVE"], bundle["narrow_wait_seconds"])
        elif command == "release":
            print(release())
        else:
            by_hand(command, argv)
    except ApplyFailed as error:
        print(f"ftpstack: FAILED: {error}", file=sys.stderr, flush=True)
        return 1
    except (KeyError, OSError) as error:
        print(f"ftpstack: FAILED: {error!r}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
