"""OpenSSH's `sftp` as the bench's sftp section runs it inside the client namespace:
`python -m ftpstack.local.bench.sftpclient get|logins --host H --port P --user U --key K
--known-hosts F --source S [--cipher C] [--buffer B] ...`; one JSON line.

    get     one session: the login (until the first `pwd` is answered), then `get --name` to
            --out (/dev/null by default), until the next `pwd` is answered: both times, and the
            CPU seconds the client (sftp and its ssh) used
    logins  --count sessions --spacing s apart, each a login, `ls` and quit: each one's ms

Both servers get the same options: batch mode, no configuration file (`-F /dev/null`), only the
given key, the host key pinned (ed25519 only, curve25519-sha256), the given cipher, the given
source address and `-B` when --buffer is given (else the client's own choice).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from ftpstack.local.bench.live import SPACING
from ftpstack.local.net.netns import NetnsError

MODULE = "ftpstack.local.bench.sftpclient"
CIPHER = "aes128-gcm@openssh.com"
HOST_KEY_ALGORITHM = "ssh-ed25519"
KEY_EXCHANGE = "curve25519-sha256"
MARK = "Remote working directory:"  # what `pwd` answers


def sftp_argv(args: argparse.Namespace) -> list[str]:
    """OpenSSH's sftp in batch mode, commands on stdin, the same options for both servers."""
    options = (
        "IdentitiesOnly=yes",
        "StrictHostKeyChecking=yes",
        f"UserKnownHostsFile={args.known_hosts}",
        f"HostKeyAlgorithms={HOST_KEY_ALGORITHM}",
        f"KexAlgorithms={KEY_EXCHANGE}",
        f"BindAddress={args.source}",
        "ConnectTimeout=20",
        "LogLevel=ERROR",
    )
    argv = ["sftp", "-F", "/dev/null", "-b", "-", "-P", str(args.port), "-i", args.key]
    argv += ["-c", args.cipher, *(f"-o{option}" for option in options)]
    if args.buffer:
        argv += ["-B", str(args.buffer)]
    return [*argv, f"{args.user}@{args.host}"]


def _children_cpu() -> float:
    """CPU seconds of this process's ended children (sftp, which waited for its ssh)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _answered(proc: subprocess.Popen[str]) -> float:
    """When `pwd`'s answer arrived (sftp echoes each command and flushes each line)."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(MARK):
            return time.monotonic()
    raise NetnsError("sftp ended before answering")


def get(args: argparse.Namespace) -> dict[str, float]:
    """One session: login (until `pwd` answers), then `get` (until the next `pwd` answers)."""
    before, started = _children_cpu(), time.monotonic()
    proc = subprocess.Popen(
        sftp_argv(args),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stderr is not None
    try:
        proc.stdin.write("pwd\n")
        proc.stdin.flush()
        logged_in = _answered(proc)
        proc.stdin.write(f"get {args.name} {args.out}\npwd\n")
        proc.stdin.flush()
        done = _answered(proc)
        proc.stdin.close()
        proc.wait(timeout=30)
    except NetnsError as error:
        proc.wait(timeout=30)
        raise NetnsError(f"{error}: {proc.stderr.read().strip()[-2000:]}") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise NetnsError(f"sftp exited {proc.returncode}: {proc.stderr.read().strip()[-2000:]}")
    return {
        "login_s": logged_in - started,
        "data_s": done - logged_in,
        "client_cpu_s": _children_cpu() - before,
    }


def logins(args: argparse.Namespace) -> dict[str, list[float]]:
    """`--count` sessions `--spacing` s apart, each a login, `ls` and quit: each one's ms."""
    ms: list[float] = []
    for index in range(args.count):
        if index:
            time.sleep(args.spacing)
        started = time.monotonic()
        done = subprocess.run(
            sftp_argv(args), input="ls\n", capture_output=True, text=True, timeout=60, check=False
        )
        if done.returncode != 0:
            raise NetnsError(f"sftp login exited {done.returncode}: {done.stderr.strip()}")
        ms.append((time.monotonic() - started) * 1000)
    return {"ms": ms}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    commands = {"get": sub.add_parser("get"), "logins": sub.add_parser("logins")}
    for command in commands.values():
        for name in ("--host", "--user", "--key", "--known-hosts", "--source"):
            command.add_argument(name, required=True)
        command.add_argument("--port", type=int, required=True)
        command.add_argument("--cipher", default=CIPHER)
        command.add_argument("--buffer", type=int)
    commands["get"].add_argument("--name", required=True)
    commands["get"].add_argument("--out", default="/dev/null")
    commands["logins"].add_argument("--count", type=int, default=1)
    commands["logins"].add_argument("--spacing", type=float, default=SPACING)
    args = parser.parse_args(argv)
    print(json.dumps(get(args) if args.command == "get" else logins(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
