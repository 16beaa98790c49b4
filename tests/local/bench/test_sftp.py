"""`make bench`'s sftp section (ftpstack.local.bench.sftp) run alone (L3): it measures its own
ceiling, counts what each server's sessions cost, and leaves no process, account or namespace
behind; its experiments' directives land in mod_sftp's <VirtualHost> (L1)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from ftpstack import paths
from ftpstack.local.bench import sftp, suite
from tests.support import needs_root


def _namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in out.stdout.splitlines() if line.strip()}


def _sshd_running() -> bool:
    """Any sshd started with the section's configuration."""
    for proc in Path("/proc").iterdir():
        try:
            if sftp.SSHD_DIR.encode() in (proc / "cmdline").read_bytes():
                return True
        except (NotADirectoryError, FileNotFoundError, ProcessLookupError):
            continue
    return False


@pytest.mark.l3
def test_the_section_alone(tmp_path: Path) -> None:
    needs_root()
    before = _namespaces()
    out = tmp_path / "results.json"
    argv = "--sections sftp --size-mib 64 --rounds 2 --logins 2 --login-rounds 1"
    suite.main([*argv.split(), "--out", str(out)])
    results = json.loads(out.read_text())
    assert set(results) == {"cpus", "load_average_start", "load_average_end", "targets", "sftp"}
    s = results["sftp"]
    # No throughput section ran, so iperf3 ran here, in the same rounds.
    assert s["limit_from"] == "sftp" and {len(v) for v in s["samples"].values()} == {2}
    assert set(s["samples"]) == {"mod_sftp", "openssh", "iperf3"}
    assert s["login_n"] == 2 and s["openssh_login_p50_ms"] > 0
    # OpenSSH's session processes count although its monitor leaves one to be reaped by others
    # (counted by the monitor alone it was 0.02-0.08 s per GiB; a session costs 1.5-2.5).
    assert s["cpu_s_per_gib"]["openssh"]["server"] > 0.5
    assert s["cpu_s_per_gib"]["mod_sftp"]["server"] > 0.5
    assert list(results["targets"]) == [
        name for section, name, _ in suite.TARGETS if section == "sftp"
    ]
    assert not _sshd_running()
    mine = f"fs{os.getpid() % 100000}x"
    assert {n for n in _namespaces() - before if n.startswith(mine)} == set()


def test_an_experiments_directives_go_into_the_sftp_virtual_host() -> None:
    plan = sftp.plan(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJxbbL0dTyFTq8hAYmTVu1DNdA7bQcYgZ1jHQ5E9ZQ2s x"
    )
    edit = sftp._in_vhost(("AllowOverride off",))
    assert edit is not None and sftp._in_vhost(()) is None
    bundle = next(b for b in plan.bundles() if "files" in b)
    conf = next(f["content"] for f in edit(bundle)["files"] if f["path"] == paths.PROFTPD_CONF)
    vhost = conf[conf.rindex("<VirtualHost") :]
    assert "SFTPEngine" in vhost and "  AllowOverride off\n</VirtualHost>" in vhost
    assert conf.count("AllowOverride off") == 1
