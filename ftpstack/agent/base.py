"""What every part of the agent shares: its one failure, its output, running a command."""

from __future__ import annotations

import subprocess
from pathlib import Path


class ApplyFailed(Exception):
    """The configuration was not applied; str() says why, for the deployment's log."""


def say(message: str) -> None:
    print(f"ftpstack: {message}", flush=True)


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise ApplyFailed(f"{' '.join(argv)}: {(result.stderr or result.stdout).strip()[-800:]}")
    return result


def systemd() -> bool:
    return Path("/run/systemd/system").is_dir()
