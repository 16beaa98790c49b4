"""L2: what the root agent and the post-deploy check guard against, on a real proftpd with the
plan's own steps — each with its negative control.

- A link planted where the agent expects a user's directory (by another host that mounted the
  share, or anyone who could write there) is refused, never followed: without the check, the
  agent handed the link's target (here a root-owned directory) to the FTP users' uid.
- The FTP tree is mounted nosuid,nodev,noexec: a program uploaded there does not run; without
  the agent's remount it does.
- The post-deploy check, exactly as the plan declares it (its command line and environment: its
  own account, the stack's certificate and SFTP host keys pinned), passes against the server;
  pinned to another certificate or host key it fails and sends no password.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ftpstack import ftpcheck, paths
from ftpstack.local.net import steps
from ftpstack.local.net.client import environment
from ftpstack.local.net.server import LocalServer
from ftpstack.local.net.steps import DeployFailed
from ftpstack.offline import declared as d
from ftpstack.offline.plan import Plan, Secret
from tests.support import PASSWORD, USER, certificate_pair, needs_root, plan

pytestmark = pytest.mark.l2

ALICE = {"name": USER, "password": PASSWORD}
BOB = {"name": "bob", "password": "bob-password-222"}
TARGET = "/var/lib/ftpstack-target"  # root's, in the VM (a stand-in for /etc)


def stack(*users: dict[str, str]) -> Plan:
    return plan("dev", users=Secret(list(users) or [ALICE]))


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    needs_root()
    with LocalServer(stack()) as running:
        yield running


def configure(server: LocalServer, new: Plan, script_edit: Any = None) -> None:
    (step,) = steps.steps(new, "configure")
    steps.run_step(server.machine, step, None, script_edit)


def plant(server: LocalServer) -> None:
    vm = server.machine
    for argv in (("mkdir", "-p", TARGET), ("chown", "0:0", TARGET), ("chmod", "0700", TARGET)):
        assert vm.exec(*argv).returncode == 0
    assert vm.exec("ln", "-sfn", TARGET, f"{paths.FTP_ROOT}/bob").returncode == 0


def owner(server: LocalServer, vm_path: str) -> int:
    return server.machine.path(vm_path).stat().st_uid


def test_a_link_planted_for_a_new_users_home_is_refused_not_followed(server: LocalServer) -> None:
    plant(server)
    with pytest.raises(DeployFailed, match="is a symbolic link: refusing to follow it"):
        configure(server, stack(ALICE, BOB))
    assert owner(server, TARGET) == 0, "the link's target is still root's"
    server.machine.exec("rm", f"{paths.FTP_ROOT}/bob")
    configure(server, stack(ALICE, BOB))  # the link gone, bob gets a real home
    assert owner(server, f"{paths.FTP_ROOT}/bob") == paths.VIRTUAL_UID


def test_negative_control_an_agent_that_follows_links_gives_the_target_away(
    server: LocalServer,
) -> None:
    def follow(script: str) -> str:
        return script.replace(
            "os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW", "os.O_RDONLY"
        ).replace("if not stat.S_ISDIR(found.st_mode):", "if False:")

    server.machine.exec("rm", "-rf", f"{paths.FTP_ROOT}/bob")
    configure(server, stack(ALICE))
    plant(server)
    configure(server, stack(ALICE, BOB), script_edit=follow)
    assert owner(server, TARGET) == paths.VIRTUAL_UID, "the link was followed: root's is theirs"
    server.machine.exec("rm", "-f", f"{paths.FTP_ROOT}/bob")


def mount_flags(server: LocalServer) -> set[str]:
    """The per-mount options of the FTP tree as the VM sees it."""
    flags: set[str] = set()
    for line in Path(f"/proc/{server.machine.pid}/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == paths.FTP_ROOT:
            flags = set(fields[5].split(","))
    return flags


def runs_a_program_from_the_tree(server: LocalServer) -> bool:
    program = f"{paths.FTP_ROOT}/{USER}/run.sh"
    server.machine.write(program, "#!/bin/sh\necho ran\n", "0755")
    return server.machine.exec(program).stdout.strip() == "ran"


def test_the_ftp_tree_holds_no_program_device_or_setuid_that_counts(server: LocalServer) -> None:
    assert {"nosuid", "nodev", "noexec"} <= mount_flags(server)
    assert not runs_a_program_from_the_tree(server)


def test_negative_control_without_the_remount_an_uploaded_program_runs() -> None:
    needs_root()

    def no_remount(script: str) -> str:
        return script.replace('harden_mount(storage, bundle.get("mount_options") or [])', "pass")

    with LocalServer(stack()) as fresh:
        fresh.machine.exec("umount", paths.FTP_ROOT)  # as the bootstrap left it: plain
        fresh.machine.exec("mount", "--bind", str(fresh.storage), paths.FTP_ROOT)
        configure(fresh, stack(ALICE, BOB), script_edit=no_remount)
        assert "noexec" not in mount_flags(fresh)
        assert runs_a_program_from_the_tree(fresh)


def smoke(server: LocalServer, **pinned: str) -> subprocess.CompletedProcess[str]:
    """The plan's post-deploy check, its command line and environment as declared (the venv's
    python where this checkout has none of its own)."""
    check = next(
        r for r in server.plan.find(d.LOCAL_COMMAND) if r.name.endswith(d.SMOKE_CHECK_SUFFIX)
    )
    argv = shlex.split(check.raw_inputs["create"])
    argv[0] = argv[0] if Path(argv[0]).exists() else sys.executable
    declared = dict(check.raw_inputs["environment"]) | pinned
    return server.run(*argv, env={**environment(), **declared}, timeout=120)


def test_the_post_deploy_check_passes_as_declared_and_fails_pinned_to_another_certificate(
    server: LocalServer,
) -> None:
    passed = smoke(server)
    assert passed.returncode == 0, passed.stderr
    assert f"logged in to {server.public_ip}:21 as {paths.CHECK_USER}" in passed.stdout
    other, _ = certificate_pair(server.public_ip, ips=[server.public_ip])
    failed = smoke(server, **{ftpcheck.CA_PEM_ENV: other})
    assert failed.returncode == 1 and "not the one expected" in failed.stderr, failed.stderr
    assert "logged in" not in failed.stdout, "no password was sent"


def test_the_post_deploy_check_logs_in_over_sftp_only_to_the_stacks_host_key(
    server: LocalServer, tmp_path: Path
) -> None:
    """The declared check's SFTP half passes with the exported host keys; pinned to another key
    (another server answering the address) it fails at once, before any password is sent."""
    passed = smoke(server)
    assert f"SFTP: logged in to {server.public_ip}:22 as {paths.CHECK_USER}" in passed.stdout
    key = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    other = " ".join([server.public_ip, *key.with_suffix(".pub").read_text().split()[:2]])
    failed = smoke(server, **{ftpcheck.KNOWN_HOSTS_ENV: other})
    assert failed.returncode == 1 and "not the stack's" in failed.stderr, failed.stderr
    assert "SFTP: logged in" not in failed.stdout
