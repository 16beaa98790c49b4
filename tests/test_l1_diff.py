"""L1: `make diff` — the offline plan at a git ref against the working tree, as a reviewer reads it.

Each test works in a fresh clone of this repository (committed state as the base), changes the
working tree the way a pull request would, and runs the real command.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ftpstack.diff import compare
from ftpstack.plan import PROJECT_DIR

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    target = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(PROJECT_DIR), str(target)], check=True)
    # The working tree under test may hold uncommitted work: make it the base commit.
    skip = shutil.ignore_patterns(".git", "venv", ".cache", "*_cache", "__pycache__", "bench")
    shutil.copytree(PROJECT_DIR, target, ignore=skip, dirs_exist_ok=True)
    git = ["git", "-C", str(target), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "base", "--allow-empty"], check=True)
    return target


def diff(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ftpstack.diff", "--base", "HEAD", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


def test_no_change_exits_0(clone: Path) -> None:
    result = diff(clone, "--stack", "dev")
    assert result.returncode == 0, result.stderr
    assert "No changes." in result.stdout


def test_a_user_data_change_is_flagged_as_vm_replacement(clone: Path) -> None:
    edit(clone / "Pulumi.dev.yaml", "ftpstack:maxClients: 20", "ftpstack:maxClients: 19")
    result = diff(clone, "--stack", "dev")
    assert result.returncode == 1, result.stderr
    assert "WARNING: VM ftp-vm will be REPLACED (the cloud-init user-data changed)" in result.stdout
    assert "-    MaxClients            20" in result.stdout
    assert "$6$" not in result.stdout


def test_a_program_change_shows_like_a_config_change(clone: Path) -> None:
    render = clone / "ftpstack" / "render.py"
    edit(render, "TimeoutIdle           1200", "TimeoutIdle           900")
    result = diff(clone, "--stack", "dev")
    assert result.returncode == 1
    assert "VM ftp-vm will be REPLACED" in result.stdout
    assert "+    TimeoutIdle           900" in result.stdout


def test_opening_ftp_to_the_internet_is_loud(clone: Path) -> None:
    edit(clone / "Pulumi.prod.yaml", "    - 192.0.2.0/25", "    - 0.0.0.0/0")
    result = diff(clone, "--stack", "prod")
    assert result.returncode == 1
    assert "port 21 will be OPEN TO THE INTERNET" in result.stdout
    assert "REPLACED" not in result.stdout, "an NSG change updates in place"


def test_a_tag_change_is_a_change_without_warnings(clone: Path) -> None:
    edit(clone / "Pulumi.dev.yaml", "environment: dev", "environment: development")
    result = diff(clone, "--stack", "dev")
    assert result.returncode == 1
    assert "tags.environment" in result.stdout and "WARNING" not in result.stdout


def test_an_unknown_ref_exits_2_with_one_line(clone: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ftpstack.diff", "--base", "no-such-ref"],
        cwd=clone,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "no-such-ref" in result.stderr


def _plan(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resources": resources, "outputs": {}, "cloud_init": ""}


def _resource(type_: str, name: str, **inputs: Any) -> dict[str, Any]:
    return {"type": type_, "name": name, "inputs": inputs, "options": {"replaceOnChanges": []}}


def test_deleting_the_public_ip_warns_that_the_endpoint_changes() -> None:
    ip = _resource("azure-native:network:PublicIPAddress", "ftp-ip", sku={"name": "Standard"})
    result = compare("dev", _plan([ip]), _plan([]))
    assert any("endpoint changes" in w for w in result.warnings)


def test_a_public_ip_sku_change_is_a_replacement() -> None:
    before = _resource("azure-native:network:PublicIPAddress", "ftp-ip", sku={"name": "Basic"})
    after = _resource("azure-native:network:PublicIPAddress", "ftp-ip", sku={"name": "Standard"})
    result = compare("dev", _plan([before]), _plan([after]))
    assert result.changes[0].replaced_by == ["sku"]
    assert any("address changes for every client" in w for w in result.warnings)


def test_a_data_disk_replacement_or_deletion_warns_about_customer_files() -> None:
    disk = _resource("azure-native:compute:Disk", "ftp-data", location="westeurope")
    moved = _resource("azure-native:compute:Disk", "ftp-data", location="northeurope")
    for after in ([], [moved]):
        warnings = compare("d", _plan([disk]), _plan(after)).warnings
        assert any("customers' files" in w for w in warnings)
