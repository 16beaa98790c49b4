"""The test helpers' own promises that a test relies on without seeing them (L0)."""

from __future__ import annotations

import json
import subprocess

import pytest

from ftpstack.local.net.client import READY
from ftpstack.local.net.netns import NetnsError
from tests.support import wait_ready


def loop(first_line: str) -> subprocess.Popen[str]:
    """A stand-in for a client loop: prints `first_line` (none when empty), then runs on."""
    script = '[ -z "$1" ] || printf "%s\\n" "$1"; exec sleep 60'
    return subprocess.Popen(
        ["sh", "-c", script, "loop", first_line], stdout=subprocess.PIPE, text=True
    )


def test_a_loop_that_says_it_is_ready_goes_on() -> None:
    proc = loop(json.dumps(READY))
    try:
        wait_ready(proc, timeout=30)
        assert proc.poll() is None, "still running: the change starts under it"
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("first_line", ["", '{"port": 50001}'])
def test_a_loop_that_is_not_ready_is_ended_and_refused(first_line: str) -> None:
    proc = loop(first_line)
    with pytest.raises(NetnsError, match="not ready"):
        wait_ready(proc, timeout=2)
    assert proc.poll() is not None, "ended by its PID, not left running"
