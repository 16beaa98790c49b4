"""`make test`'s arrangement (scripts/test-levels), L0: every test runs in exactly one of its
pytest runs, the runs happen in the order the script promises, and a failure anywhere fails the
whole (its code, the first failure's)."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
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
