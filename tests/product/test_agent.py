"""L0: what an administrator runs by hand on a VM (`agent.py unban ...`), without a VM: every
refusal is one line and exit 1 before anything runs; the accepted address reaches ftpdctl as the
one word after `permit host`."""

from __future__ import annotations

import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from ftpstack import paths
from ftpstack.agent import proftpd
from ftpstack.agent.__main__ import main


@pytest.fixture
def ftpdctl(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """The commands the agent runs, recorded instead of run; ftpdctl answers as mod_ban does."""
    calls: list[tuple[str, ...]] = []

    def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, stdout=f"host {argv[-1]} permitted\n")

    monkeypatch.setattr(proftpd, "run", run)
    monkeypatch.setattr(paths, "APPLIED", "/nonexistent/ftpstack/applied.json")
    return calls


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["203.0.113.7", "198.51.100.1"],
        ["-h"],
        ["--help"],
        ["-1"],
        ["203.0.113.7\n"],
        [" 203.0.113.7"],
        ["203.0.113.0/24"],
        ["host"],
        ["203.0.113.7 -v"],
        ["fe80::1%eth0"],
        ["fe80::1%x\n-v"],
        [""],
    ],
)
def test_unban_refuses_anything_but_one_ip_address_with_one_line(
    args: list[str], ftpdctl: list[tuple[str, ...]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["agent.py", "unban", *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ftpstack: FAILED: unban"), err
    assert err.count("\n") == 1 and err.endswith("\n"), "one line"
    assert ftpdctl == [], "nothing ran"


@pytest.mark.parametrize("address", ["203.0.113.7", "2001:db8::7", "::ffff:203.0.113.7"])
def test_negative_control_one_ip_address_is_passed_to_ftpdctl_as_one_word(
    address: str, ftpdctl: list[tuple[str, ...]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["agent.py", "unban", address]) == 0
    assert ftpdctl == [("ftpdctl", "-s", paths.CONTROLS_SOCKET, "permit", "host", address)]
    assert capsys.readouterr().out == f"ftpstack: {address} may connect again\n"


# -- rejoin: the timer's run while the FTP tree's storage is missing ----------------------------


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """A machine with systemd whose mounts and commands are recorded, not made."""
    from ftpstack.agent import apply

    state: dict[str, object] = {"mounted": False, "mount_works": True, "calls": []}

    def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        calls = state["calls"]
        assert isinstance(calls, list)
        calls.append(argv)
        if argv[-1] == "srv-ftp.mount" and state["mount_works"]:
            state["mounted"] = True
        out = "srv-ftp.mount\n" if argv[0] == "systemd-escape" else ""
        return subprocess.CompletedProcess(argv, 0, stdout=out)

    monkeypatch.setattr(apply, "run", run)
    monkeypatch.setattr(apply, "systemd", lambda: True)
    monkeypatch.setattr("os.path.ismount", lambda path: bool(state["mounted"]))
    return state


def test_rejoin_mounts_the_storage_back_and_starts_proftpd(
    machine: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    from ftpstack.agent.apply import rejoin

    rejoin({"storage": paths.FTP_ROOT})
    assert machine["calls"] == [
        ("systemd-escape", "--path", "--suffix=mount", paths.FTP_ROOT),
        ("timeout", "90", "systemctl", "start", "srv-ftp.mount"),
        ("systemctl", "start", "proftpd"),
    ]
    assert "is back: proftpd started" in capsys.readouterr().out


def test_rejoin_waits_while_the_mount_still_fails(
    machine: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    from ftpstack.agent.apply import rejoin

    machine["mount_works"] = False
    rejoin({"storage": paths.FTP_ROOT})
    calls = machine["calls"]
    assert isinstance(calls, list)
    assert calls[-1] == ("timeout", "90", "systemctl", "start", "srv-ftp.mount")
    assert ("systemctl", "start", "proftpd") not in calls, "no start"
    assert "still not mounted" in capsys.readouterr().out


def test_rejoin_leaves_a_server_with_its_storage_alone(machine: dict[str, object]) -> None:
    """A proftpd stopped on purpose (or crashed: its unit restarts it) with the storage mounted
    is not the timer's business."""
    from ftpstack.agent.apply import rejoin

    machine["mounted"] = True
    rejoin({"storage": paths.FTP_ROOT})
    rejoin({"storage": None})
    assert machine["calls"] == []


# -- the logs' modes: root and adm only, never through a symlink -------------------------------


@pytest.fixture
def owners(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The (uid, gid) each log is given, recorded (a test need not run as root to chown)."""

    given: list[tuple[int, int]] = []
    monkeypatch.setattr(os, "fchown", lambda fd, uid, gid: given.append((uid, gid)))
    return given


def test_logs_are_made_0640_and_opened_ones_closed_again(
    tmp_path: Path, owners: list[tuple[int, int]]
) -> None:
    from ftpstack.agent.files import secure_logs

    (tmp_path / "old.log").write_text("kept\n")
    (tmp_path / "old.log").chmod(0o644)
    secure_logs(tmp_path, ["new.log", "old.log"])
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()} == {
        "new.log": 0o640,
        "old.log": 0o640,
    }
    assert (tmp_path / "old.log").read_text() == "kept\n"
    assert {uid for uid, _ in owners} == {0} and len(owners) == 2


def planted(tmp_path: Path) -> tuple[Path, Path]:
    """A log that is a symlink to a secret (as a users file is: 0600)."""
    secret = tmp_path / "ftpd.passwd"
    secret.write_text("alice:$6$hash\n")
    secret.chmod(0o600)
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "auth.log").symlink_to(secret)
    return logs, secret


def test_a_log_that_is_a_symlink_is_left_alone(
    tmp_path: Path, owners: list[tuple[int, int]], capsys: pytest.CaptureFixture[str]
) -> None:
    from ftpstack.agent.files import secure_logs

    logs, secret = planted(tmp_path)
    secure_logs(logs, ["auth.log"])
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600 and owners == []
    assert (logs / "auth.log").is_symlink()
    assert "auth.log is not a regular file" in capsys.readouterr().out


def test_negative_control_following_the_symlink_opens_the_secret(
    tmp_path: Path, owners: list[tuple[int, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ftpstack.agent import files

    logs, secret = planted(tmp_path)
    monkeypatch.setattr(os, "lstat", os.stat)
    monkeypatch.setattr(os, "O_NOFOLLOW", 0)
    files.secure_logs(logs, ["auth.log"])
    assert stat.S_IMODE(secret.stat().st_mode) == 0o640 and len(owners) == 1


# -- settle: a stop waits for the logins under way ----------------------------------------------


def late_login(monkeypatch: pytest.MonkeyPatch, quiet: float) -> float:
    """`settle` over a master whose one login's session appears 0.3 s in (its connection was
    still in the listen queue) and lasts 0.5 s; returns when settle returned, from its start."""
    monkeypatch.setattr(proftpd, "SETTLE_QUIET_SECONDS", quiet)
    monkeypatch.setattr(proftpd, "uptime", lambda: 1000.0)
    started = time.monotonic()

    def sessions(pid_file: str) -> list[tuple[int, str, str, float]]:
        age = time.monotonic() - started
        return [(4242, "", "IDLE", 1000.0)] if 0.3 <= age < 0.8 else []

    monkeypatch.setattr(proftpd, "sessions", sessions)
    proftpd.settle("/run/proftpd.pid", timeout=5)
    return time.monotonic() - started


def test_settle_waits_for_a_login_whose_session_appears_late(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    returned = late_login(monkeypatch, proftpd.SETTLE_QUIET_SECONDS)
    assert returned >= 0.8 + proftpd.SETTLE_QUIET_SECONDS, "the login under way was waited for"


def test_negative_control_settle_without_a_quiet_period_stops_before_the_late_login(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    returned = late_login(monkeypatch, 0.0)
    assert returned < 0.3, "returned before the session appeared: the stop would reset it"


# -- drain: its one optional argument ------------------------------------------------------------


@pytest.mark.parametrize("args", [["abc"], ["-1"], ["nan"], ["1e9"], [" 5"], ["5\n"], ["5", "6"]])
def test_drain_refuses_anything_but_seconds_with_one_line(
    args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(paths, "APPLIED", "/nonexistent/ftpstack/applied.json")
    assert main(["agent.py", "drain", *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ftpstack: FAILED: drain takes"), err
    assert err.count("\n") == 1 and err.endswith("\n"), "one line"


@pytest.mark.parametrize("args", [[], ["0"], ["12"], ["2.5"]])
def test_negative_control_drain_with_seconds_goes_on_to_the_record(
    args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Accepted, it reads the applied record next (here missing: exit 2, not the refusal)."""
    monkeypatch.setattr(paths, "APPLIED", "/nonexistent/ftpstack/applied.json")
    assert main(["agent.py", "drain", *args]) == 2
    assert "drain takes" not in capsys.readouterr().err
