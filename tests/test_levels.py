"""`make test`'s arrangement (scripts/test-levels), L0: every test runs in exactly one of its
pytest runs, the runs happen in the order the script promises, a failure anywhere fails the whole
(its code, the first failure's), and the SIGTERM it ends its background runs with lets their
fixtures clean up."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "test-levels"
RUNS = ("BESIDE_VM", "BESIDE_UNTIMED", "MAIN", "ALONE")


def selections() -> dict[str, str]:
    found = dict(re.findall(r'^([A-Z_]+)="([^"]*)"$', SCRIPT.read_text(), re.M))
    return {name: found[name] for name in RUNS}


def markers() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return [m.split(":")[0] for m in config["tool"]["pytest"]["ini_options"]["markers"]]


def selected(expression: str, marked: set[str]) -> bool:
    """pytest's -m grammar is `and`, `or`, `not`, parentheses and names: Python's, here."""
    assert re.fullmatch(r"[\w ()]+", expression), expression
    return bool(eval(expression, {"__builtins__": {}}, {m: m in marked for m in markers()}))


def test_every_combination_of_markers_runs_exactly_once() -> None:
    runs = selections()
    for size in range(len(markers()) + 1):
        for combination in itertools.combinations(markers(), size):
            chosen = [n for n, e in runs.items() if selected(e, set(combination))]
            assert len(chosen) == 1, (combination, chosen)


def test_negative_control_an_overlap_is_seen() -> None:
    runs = selections() | {"MAIN": "not (l4 or alone)"}  # L0-L1 would run twice
    twice = [c for c in ({"l2"}, set()) if sum(selected(e, c) for e in runs.values()) != 1]
    assert twice == [set()]


def run(tmp_path: Path, failing: str = "") -> tuple[int, list[str], str]:
    """scripts/test-levels with a stand-in pytest that notes its -m selection, and fails
    (code 3) for the run whose selection is `failing`."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    stub = venv / "bin" / "pytest"
    stub.write_text(
        "#!/bin/sh\n"
        'while [ $# -gt 0 ]; do [ "$1" = -m ] && m=$2; shift; done\n'
        'echo "$m" >>"$LOG"; echo "ran: $m"\n'
        '[ "$m" = "$FAILING" ] && exit 3\n'
        "exit 0\n"
    )
    stub.chmod(0o755)
    log = tmp_path / "log"
    env = {**os.environ, "LOG": str(log), "FAILING": failing, "WORKERS": "0"}
    done = subprocess.run(
        [str(SCRIPT), str(venv)], env=env, capture_output=True, text=True, timeout=60
    )
    return done.returncode, log.read_text().splitlines(), done.stdout


def test_the_runs_in_order_and_all_pass(tmp_path: Path) -> None:
    code, ran, out = run(tmp_path)
    runs = selections()
    assert code == 0, out
    assert ran[-1] == runs["ALONE"], "alone, after the others"
    assert ran.index(runs["BESIDE_VM"]) < ran.index(runs["BESIDE_UNTIMED"])
    assert sorted(ran) == sorted(runs.values())
    assert out.index(f"ran: {runs['BESIDE_UNTIMED']}") < out.index(f"ran: {runs['ALONE']}")


@pytest.mark.parametrize("name", RUNS)
def test_a_failure_in_any_run_fails_the_whole(tmp_path: Path, name: str) -> None:
    code, ran, out = run(tmp_path, failing=selections()[name])
    assert code == 3, out
    assert len(ran) == len(RUNS), "the others still run"


FIXTURE_ENDS = """
import pathlib, time
import pytest

@pytest.fixture
def held():
    yield
    pathlib.Path("ended").write_text("by its fixture")

def test_waits(held):
    pathlib.Path("started").write_text("")
    time.sleep(60)
"""


@pytest.mark.parametrize("with_conftest", [True, False], ids=["suite", "negative-control"])
def test_sigterm_ends_a_run_through_its_fixtures(tmp_path: Path, with_conftest: bool) -> None:
    """What test-levels sends its background runs: the suite's conftest makes it an interrupt,
    so fixtures end what they started; without it pytest dies on the spot."""
    (tmp_path / "test_held.py").write_text(FIXTURE_ENDS)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    plugin = ["-p", "tests.conftest"] if with_conftest else []
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugin]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [*argv, "--rootdir", str(tmp_path), "-c", str(tmp_path / "pytest.ini"), str(tmp_path)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "started").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (tmp_path / "started").exists(), "the test began"
        proc.terminate()
        out = proc.communicate(timeout=30)[0]
    finally:
        proc.kill()
        proc.wait()
    assert (tmp_path / "ended").exists() == with_conftest, out
