"""SFTP checks from the client's side, with OpenSSH's own `sftp` (what most partners run).

`session()` runs a batch of sftp commands as a user, by password or by key, trusting only the
host keys given as known_hosts lines (the stack's `sftpHostKeys`): a server with another key is
refused before any password is sent. `smoke()` is the post-deploy check's SFTP half: log in, list,
upload, download, compare, delete. Used by `python -m ftpstack.ftpcheck --sftp` and by the tests.

The password never appears on a command line: OpenSSH reads it from an askpass program
(`SSH_ASKPASS_REQUIRE=force`, OpenSSH 8.4 and later) that prints an environment variable.
`sftp -b` turns on BatchMode, which forbids passwords; an earlier `-o BatchMode=no` wins (ssh
takes the first value of an option) while -b still stops at the first failed command.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from ftpstack.checkfailed import CheckFailed, NotReady

SFTP_PORT = 22
# The askpass program's environment variable; the child gets it, never argv.
ASKPASS_ENV = "FTPSTACK_SFTP_PASSWORD"
ASKPASS = f'#!/bin/sh\nprintf "%s\\n" "${ASKPASS_ENV}"\n'
# What OpenSSH says when the answering server is not the one pinned: never worth a retry.
WRONG_HOST = ("Host key verification failed", "IDENTIFICATION HAS CHANGED", "host key is known")
REFUSED = ("Permission denied", "Too many authentication failures")


def ssh_options(
    known_hosts: Path,
    port: int = SFTP_PORT,
    timeout: float = 10,
    key: Path | None = None,
    source: str | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """OpenSSH's options for a pinned, non-interactive login: nothing from this machine's ssh
    configuration, keys or known hosts; the host key checked against `known_hosts` only; by
    `key` alone, else by password alone. `extra` options come first, so they win (ssh takes
    the first value of an option)."""
    options = [
        *extra,
        "BatchMode=no",  # sftp -b turns it on, which would rule out the password
        f"UserKnownHostsFile={known_hosts}",
        "GlobalKnownHostsFile=/dev/null",
        "StrictHostKeyChecking=yes",
        "UpdateHostKeys=no",
        f"ConnectTimeout={max(1, int(timeout))}",
        "NumberOfPasswordPrompts=1",
        "IdentitiesOnly=yes",
        f"Port={port}",
    ]
    if source:
        options.append(f"BindAddress={source}")
    if key is not None:
        options += [f"IdentityFile={key}", "PasswordAuthentication=no"]
        options += ["KbdInteractiveAuthentication=no"]
    else:
        options += ["PubkeyAuthentication=no", "IdentityFile=none"]
    return ["-F", "/dev/null", *(f"-o{o}" for o in options)]


def askpass_env(askpass: Path, password: str) -> dict[str, str]:
    """The environment that makes OpenSSH read `password` from `askpass` (an `ASKPASS` file)."""
    return {"SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force", ASKPASS_ENV: password}


def session(
    host: str,
    user: str,
    commands: Sequence[str],
    known_hosts: str,
    password: str | None = None,
    key: Path | None = None,
    port: int = SFTP_PORT,
    timeout: float = 10,
) -> subprocess.CompletedProcess[str]:
    """`sftp -b` with these commands as `user` (password, or key), trusting only `known_hosts`
    (its lines)."""
    with tempfile.TemporaryDirectory(prefix="ftpstack-sftp-") as scratch:
        where = Path(scratch)
        (where / "known_hosts").write_text(known_hosts.strip() + "\n")
        (where / "batch").write_text("".join(f"{c}\n" for c in commands))
        env = {k: v for k, v in os.environ.items() if not k.startswith("SSH_")}
        if key is None:
            askpass = where / "askpass"
            askpass.write_text(ASKPASS)
            askpass.chmod(0o700)
            env |= askpass_env(askpass, password or "")
        options = ssh_options(where / "known_hosts", port, timeout, key)
        argv = ["sftp", *options, "-b", str(where / "batch"), f"{user}@{host}"]
        try:
            return subprocess.run(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout * 6 + 30,
                check=False,
                cwd=scratch,
            )
        except FileNotFoundError:
            raise CheckFailed(
                "OpenSSH's sftp is not installed on this machine: install it (Debian: "
                "apt-get install openssh-client) or set postDeployCheck: false"
            ) from None
        except subprocess.TimeoutExpired:
            waited = timeout * 6 + 30
            raise NotReady(f"no SFTP session with {host}:{port} within {waited:.0f} s") from None


def judged(result: subprocess.CompletedProcess[str], where: str, user: str) -> None:
    """Raise what a failed session means: a wrong server or a refusal at once, else not ready."""
    if result.returncode == 0:
        return
    said = (result.stderr or result.stdout).strip().splitlines()
    last = said[-1] if said else f"sftp exited {result.returncode}"
    if any(marker in result.stderr for marker in WRONG_HOST):
        raise CheckFailed(
            f"{where} presents a host key that is not the stack's ({last}): another server "
            "answers, or the keys changed; no password was sent"
        )
    if any(marker in result.stderr for marker in REFUSED):
        raise CheckFailed(f"{where} refused {user}'s SFTP login ({last}); not retried")
    raise NotReady(f"no SFTP session with {where}: {last}")


def smoke(
    host: str,
    user: str,
    password: str,
    known_hosts: str,
    port: int = SFTP_PORT,
    timeout: float = 10,
) -> list[str]:
    """Log in by password with the host key pinned, upload, download, compare, delete."""
    data = os.urandom(64 * 1024)
    name = f"ftpstack-sftp-smoke-{os.getpid()}-{int(time.time())}.bin"
    with tempfile.TemporaryDirectory(prefix="ftpstack-sftp-data-") as scratch:
        sent, back = Path(scratch) / "sent", Path(scratch) / "back"
        sent.write_bytes(data)
        result = session(
            host,
            user,
            ["pwd", f"put {sent} {name}", f"get {name} {back}", f"rm {name}"],
            known_hosts,
            password=password,
            port=port,
            timeout=timeout,
        )
        judged(result, f"{host}:{port}", user)
        got = back.read_bytes() if back.exists() else b""
    if hashlib.sha256(got).digest() != hashlib.sha256(data).digest():
        raise CheckFailed(f"SFTP downloaded {len(got)} bytes, not the {len(data)} uploaded")
    return [
        f"SFTP: logged in to {host}:{port} as {user}, the host key pinned",
        f"SFTP: uploaded and downloaded {len(data)} bytes intact",
    ]


def wait_and_smoke(
    host: str,
    user: str,
    password: str,
    known_hosts: str,
    wait: float,
    port: int = SFTP_PORT,
    poll: float = 5,
    timeout: float = 10,
) -> list[str]:
    """`smoke`, retried while nothing answers yet, for at most `wait` seconds."""
    started = time.monotonic()
    while True:
        try:
            return smoke(host, user, password, known_hosts, port, timeout)
        except NotReady as error:
            if time.monotonic() - started + poll > wait:
                raise CheckFailed(f"gave up after {wait:.0f} s: {error}") from None
            time.sleep(poll)
