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


def by_hand(command: str, argv: list[str]) -> None:
    """What an administrator runs (as root, or through `az vm run-command invoke`)."""
    if command == "unban":  # needs no record: its one argument is checked before anything runs
        if len(argv) != 3:
            raise ApplyFailed("unban takes one argument, the IP address: unban 203.0.113.7")
        unban(argv[2])
        return
    record = json.loads(Path(paths.APPLIED).read_text())
    p = record["proftpd"]
    if command == "reload":
        reload_proftpd(p["pid_file"], p["port"], p["log"])
    elif command == "drain":
        health(record, on=False)
        if not systemd():  # the health unit's own stop waits for the probe on a real VM
            time.sleep(float(argv[2]) if len(argv) > 2 else paths.DRAIN_SECONDS)
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
