"""Tests that can fail: the product broken on purpose, one way at a time, in a copy of the
repository, must make at least one of the tests that guard that property fail; the same tests
pass on the unbroken copy (the control)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT, needs_root

# Real tools, timing nothing: `make test` runs it beside L2-L3 (scripts/test-levels).
pytestmark = [pytest.mark.l2, pytest.mark.untimed]

PROFTPD = "tests/local/net/test_proftpd.py"
COMPONENT = "tests/product/test_component.py"
# (name, file, text that must be there, what it becomes, the tests that must catch it)
MUTATIONS = [
    (
        "no DefaultRoot",
        "ftpstack/render.py",
        "DefaultRoot           ~",
        "# jail removed",
        [f"{PROFTPD}::test_a_user_is_jailed_to_their_home"],
    ),
    (
        "SocketOptions inert, sysctl kept",
        "ftpstack/render.py",
        "SocketOptions         keepalive {keepalive_spec(settings)}",
        "# keepalive removed",
        [f"{PROFTPD}::test_proftpd_itself_sets_the_keepalive_on_its_control_socket"],
    ),
    (
        "no MasqueradeAddress",
        "ftpstack/render.py",
        "MasqueradeAddress     {public_ip}",
        "# masquerade removed",
        [f"{COMPONENT}::test_masquerade_address_is_the_declared_public_ip"],
    ),
    (
        "the NSG widened",
        "ftpstack/rules.py",
        '"allow-ftp-control", 100, FTP_CONTROL_PORT, FTP_CONTROL_PORT, ftp,',
        '"allow-ftp-control", 100, 1, 65535, ftp,',
        [f"{COMPONENT}::test_only_ftp_and_sftp_are_open_to_clients"],
    ),
    (
        "SSH open to the world",
        "ftpstack/settings/types.py",
        'if value.strip().lower() in ANY_SOURCE or value.strip() == "0.0.0.0/0":',
        "if False:",
        ["tests/product/test_settings.py::test_refused_with_one_line_naming_key_and_fix"],
    ),
    (
        "no configtest before the swap",
        "ftpstack/agent/apply.py",
        "            configtest(Path(f\"{p['conf']}{STAGED}\"))",
        "            pass",
        [f"{PROFTPD}::test_a_configuration_proftpd_refuses_is_not_applied_and_the_old_one_serves"],
    ),
]


def copy(tmp_path: Path) -> Path:
    target = tmp_path / "repo"
    skip = shutil.ignore_patterns(".git", "venv", ".cache", "*_cache", "__pycache__", "bench")
    shutil.copytree(ROOT, target, ignore=skip)
    return target


def run_tests(repo: Path, tests: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def test_the_guarding_tests_pass_on_the_unbroken_product(tmp_path: Path) -> None:
    needs_root()
    result = run_tests(copy(tmp_path), sorted({t for *_, tests in MUTATIONS for t in tests}))
    assert result.returncode == 0, result.stdout[-3000:]


@pytest.mark.parametrize(
    ("name", "path", "old", "new", "tests"), MUTATIONS, ids=[m[0] for m in MUTATIONS]
)
def test_each_mutation_makes_a_test_fail(
    tmp_path: Path, name: str, path: str, old: str, new: str, tests: list[str]
) -> None:
    needs_root()
    repo = copy(tmp_path)
    source = repo / path
    text = source.read_text()
    assert old in text, f"the mutation '{name}' no longer applies: update it"
    source.write_text(text.replace(old, new))
    result = run_tests(repo, tests)
    assert result.returncode == 1, f"'{name}' went unnoticed: {result.stdout[-2000:]}"
