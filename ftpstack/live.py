"""The live configuration and how it travels: one bundle per instance, applied by the agent.

Why a managed Run Command (`VirtualMachineRunCommandByVirtualMachine`) and not VM userData or Key
Vault: it updates in place and runs at once, as root, with no inbound port; Azure never returns
its protected parameters (the bundle holds password hashes and maybe a private key), and the
Pulumi state keeps them secret; with `treatFailureAsDeploymentFailure` a failed apply fails
`pulumi up`, and as it is synchronous `pulumi up` returns only when the change is live. userData
is returned by the API in clear and read by polling; Key Vault would add a vault, an identity and
a poller for the same result.

The bundle is JSON, compressed and base64-encoded (one environment variable); the agent
(`ftpstack.agent`, with `ftpstack/paths.py`) is shipped inside the script, so changing the agent
never replaces a VM either. On the VM each version of it is a release directory named by its
digest, and /usr/local/lib/ftpstack/agent.py a symlink to the current release's launcher, swapped
with one rename: a run never sees half of one version and half of another.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ftpstack import paths, sftp
from ftpstack.accounts import accounts

# The agent owns the parameters' names; they are re-exported for the program's side.
from ftpstack.agent.apply import BUNDLE_VERSION, bundle_text, decode_bundle
from ftpstack.agent.apply import CONFIG_PARAMETER as CONFIG_PARAMETER
from ftpstack.agent.apply import PARTS_PARAMETER as PARTS_PARAMETER
from ftpstack.identity import Identity
from ftpstack.render import has_storage, live_files
from ftpstack.rules import passive_slices
from ftpstack.settings import FTP_CONTROL_PORT, Settings

PHASE_PARAMETER = "FTPSTACK_PHASE"
PASSIVE_PARAMETER = "FTPSTACK_PASSIVE"
# Changing it changes the Run Commands, so Azure runs them again (`applyRetry`): Azure never runs
# an unchanged Run Command again, not even after it failed (Azure/azure-sdk-for-net#47307).
RETRY_PARAMETER = "FTPSTACK_RETRY"
# Each part of the bundle stays well under Linux's 131,072-byte limit on one environment string
# (MAX_ARG_STRLEN, execve(2)), name included.
PART_SIZE = 100_000
# All of them under the 2 MiB Linux allows for a program's arguments and environment together
# (ARG_MAX with the default 8 MiB stack, execve(2)), leaving room for the handler's own
# environment.
BUNDLE_LIMIT = 1_500_000
# The first apply waits this long for cloud-init to install proftpd.
BOOTSTRAP_WAIT_SECONDS = 1800
# Narrowing the passive range waits this long for transfers started with the wider range.
NARROW_WAIT_SECONDS = 600
PACKAGE = Path(__file__).parent
# What the VM needs of this package to run the agent (paths relative to the package).
AGENT_FILES = (
    "paths.py",
    *sorted(f"agent/{p.name}" for p in (PACKAGE / "agent").glob("*.py")),
)
# The release's entry point; python resolves the symlink AGENT_PATH and imports from beside it.
LAUNCHER = """#!/usr/bin/python3
\"\"\"ftpstack's agent, installed by each configuration run: agent.py <command>.\"\"\"
import sys

from ftpstack.agent.__main__ import main

sys.exit(main(sys.argv))
"""
HEREDOC = "FTPSTACK_AGENT_SOURCE"


def _dirs(settings: Settings, identity: Identity) -> list[dict[str, str]]:
    uid = f"{paths.VIRTUAL_UID}:{paths.VIRTUAL_UID}"
    # The data disk's root is root's. The share's: with root squashed it stays as Azure made it
    # (root's, 0777) or as the users' uid has it; unsquashed, root gives it to the users' uid,
    # which is what lets the agent, squashed later, still make homes there.
    root = {"mode": "0755", "owner": "0:0"}
    if settings.shared_storage:
        root = {} if settings.share_root_squash else {"mode": "0755", "owner": uid}
    dirs = [{"path": paths.FTP_ROOT, **root}]
    # With root squashed, proftpd (root until the login's chroot) is "nobody" on the share: it
    # may traverse a home only with the others' x bit (without it every login gets 530). Every
    # virtual user is the same uid, so the bits never separated users: the jail does.
    home = "0711" if settings.shared_storage and settings.share_root_squash else "0750"
    dirs += [
        {"path": f"{paths.FTP_ROOT}/{name}", "mode": home, "owner": uid}
        for name, _ in accounts(settings, identity)
    ]
    if settings.anonymous:
        # Files to publish are put here by an administrator (root); anonymous only reads.
        dirs.append({"path": paths.PUBLIC_DIR, "mode": "0755", "owner": "0:0"})
    if settings.tls != "off":
        dirs.append({"path": paths.TLS_DIR, "mode": "0755", "owner": "0:0"})
    if settings.sftp:
        dirs += [
            {"path": path, "mode": "0755", "owner": "0:0"}
            for path in (sftp.HOST_KEY_DIR, sftp.AUTHORIZED_DIR)
        ]
    return dirs


def bundle(
    settings: Settings, public_ip: str, seed: str, identity: Identity, instance: int = 0
) -> dict[str, Any]:
    """Everything the agent needs to apply instance `instance`'s configuration."""
    slice_ = passive_slices(settings)[instance]
    document: dict[str, Any] = {
        "version": BUNDLE_VERSION,
        "files": [
            {"path": f.path, "mode": f.mode, "content": f.content}
            for f in live_files(settings, public_ip, seed, identity, instance)
        ],
        "dirs": _dirs(settings, identity),
        "users": [name for name, _ in accounts(settings, identity)],
        # What earlier versions left where it no longer belongs: removed, never followed.
        "legacy": [paths.LEGACY_TLS_DIR],
        "tls_dir": paths.TLS_DIR,
        "sysctl": paths.SYSCTL_FILE,
        "admin": {"user": settings.admin_username, "authorized_keys": settings.ssh_public_key},
        # Where the VM's own sshd listens (22 is SFTP's while the stack serves it).
        "sshd": sftp.sshd(settings),
        "proftpd": {
            "conf": paths.PROFTPD_CONF,
            "pid_file": paths.PID_FILE,
            "log": paths.SYSTEM_LOG,
            "port": FTP_CONTROL_PORT,
            "passive": str(slice_),
        },
        "health": health(settings),
        "markers": {
            "bootstrap": paths.BOOTSTRAP_DONE,
            "configured": paths.CONFIGURED,
            "applied": paths.APPLIED,
        },
        "bootstrap_wait_seconds": BOOTSTRAP_WAIT_SECONDS,
        "narrow_wait_seconds": NARROW_WAIT_SECONDS,
        # Where the FTP tree's own storage must be mounted before proftpd may serve it, with what
        # options (nothing on it runs, no device node or setuid bit counts), and whether root
        # is squashed there.
        "storage": paths.FTP_ROOT if has_storage(settings) else None,
        "mount_options": list(paths.FTP_TREE_MOUNT_OPTIONS),
        "squashed": settings.shared_storage and settings.share_root_squash,
        # systemd timers the agent enables (where systemd runs).
        "timers": [Path(paths.REJOIN_TIMER).name] if has_storage(settings) else [],
    }
    document["generation"] = generation(document)
    return document


def health(settings: Settings) -> dict[str, str] | None:
    """How the agent takes this server in and out of the load balancer's rotation."""
    if settings.exposure != "load-balancer":
        return None
    return {"unit": paths.HEALTH_UNIT, "nft": paths.HEALTH_NFT}


def narrow_bundle(settings: Settings) -> dict[str, Any]:
    """What the narrowing step needs: where proftpd's files are, how long to wait, how to leave
    the load balancer's rotation when no port of the slice stays. No secret."""
    return {
        "version": BUNDLE_VERSION,
        "proftpd": {
            "conf": paths.PROFTPD_CONF,
            "pid_file": paths.PID_FILE,
            "log": paths.SYSTEM_LOG,
            "port": FTP_CONTROL_PORT,
        },
        "health": health(settings),
        "drain_seconds": paths.DRAIN_SECONDS,
        "narrow_wait_seconds": NARROW_WAIT_SECONDS,
    }


def parameters(encoded: str) -> dict[str, str]:
    """The encoded bundle as the Run Command's parameters: its parts and their count."""
    parts = [encoded[i : i + PART_SIZE] for i in range(0, len(encoded), PART_SIZE)] or [""]
    return {
        PARTS_PARAMETER: str(len(parts)),
        **{f"{CONFIG_PARAMETER}_{i}": part for i, part in enumerate(parts)},
    }


def joined(environment: Mapping[str, str]) -> str:
    """The encoded bundle from its parameters (as the agent reads them)."""
    return bundle_text(environment)


def generation(document: dict[str, Any]) -> str:
    """A digest of the bundle; it changes exactly when the configuration does."""
    body = {k: v for k, v in document.items() if k != "generation"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def encode(document: dict[str, Any]) -> str:
    return base64.b64encode(
        zlib.compress(json.dumps(document, sort_keys=True).encode(), 9)
    ).decode()


def decode(text: str) -> dict[str, Any]:
    """A bundle as the agent reads it (one decoder for both ends)."""
    return decode_bundle(text)


def agent_sources() -> dict[str, str]:
    """The release's files: the package's agent files and the launcher, by path in the release."""
    files = {f"ftpstack/{name}": (PACKAGE / name).read_text() for name in AGENT_FILES}
    root = '"""ftpstack on the VM: the agent and the paths it shares (see ftpstack.agent)."""\n'
    return {"ftpstack/__init__.py": root, **files, "agent.py": LAUNCHER}


def run_command_script() -> str:
    """The Run Command's script: install the agent's release (its sources inside), switch to it,
    run it. Not secret: the API returns it to anyone who may read the VM."""
    sources = agent_sources()
    digest = hashlib.sha256(json.dumps(sources, sort_keys=True).encode()).hexdigest()[:16]
    writes = []
    for name, source in sources.items():
        if f"\n{HEREDOC}\n" in f"\n{source}\n":
            raise ValueError(f"the agent's {name} contains the heredoc marker {HEREDOC}")
        writes.append(f"""cat > "$release/{name}" <<'{HEREDOC}'\n{source}{HEREDOC}""")
    body = "\n".join(writes)
    return f"""#!/bin/bash
# ftpstack: apply the configuration ({CONFIG_PARAMETER}_0 ... and {PARTS_PARAMETER}, protected
# parameters) with the agent below; {PHASE_PARAMETER} is apply (default) or narrow.
set -euo pipefail
umask 022
release={paths.AGENT_DIR}/releases/{digest}
if [ ! -e "$release/complete" ]; then
rm -rf "$release"
install -d -m 0755 "$release/ftpstack/agent"
{body}
chmod 0755 "$release/agent.py"
touch "$release/complete"
fi
ln -sfn "$release/agent.py" {paths.AGENT_DIR}/.agent.py.new
mv -T {paths.AGENT_DIR}/.agent.py.new {paths.AGENT_PATH}
find {paths.AGENT_DIR}/releases -mindepth 1 -maxdepth 1 ! -name {digest} -exec rm -rf {{}} +
exec /usr/bin/python3 {paths.AGENT_PATH} "${{{PHASE_PARAMETER}:-apply}}"
"""
