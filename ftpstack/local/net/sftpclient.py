"""Real SFTP clients against an SFTP endpoint, inside a namespace (or on this machine): OpenSSH's
`sftp` and `scp` (SFTP and, with `scp-legacy`, the old SCP protocol), `lftp sftp://`, rclone's
sftp backend and `curl sftp://` (libssh2) — for the L2/L3 tests, L4 and the post-deploy check.

Every run verifies the server's host key against known_hosts lines (the stack's `sftpHostKeys`
output): OpenSSH with `StrictHostKeyChecking=yes` and no other known_hosts file or user config,
lftp through the same ssh options, rclone with `--sftp-known-hosts-file`, curl through
`$HOME/.ssh/known_hosts` (Debian's curl 7.88 has no option for the file; a host it does not
find there is refused). An unknown or different key fails the run.

A password never reaches a command line (where `ps` shows it): OpenSSH reads it from an askpass
program (`ftpstack.sftpcheck.ASKPASS`), lftp and curl from
their standard input, rclone from its environment (obscured, as it stores passwords). A key
login gives no password at all, so only the key can have let it in.

    clients = SftpClients(ns, workdir)
    login = Login(host, "alice", clients.known_hosts(lines), password="...")
    clients.ls("lftp", login).stdout; clients.get("curl", login, "f.bin", Path(...))
"""

from __future__ import annotations

import dataclasses
import os
import selectors
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from ftpstack import sftpcheck
from ftpstack.local.net.client import CLIENT_PATH
from ftpstack.local.net.netns import Netns, end_process

# Every client the helpers drive; `scp-legacy` is OpenSSH's scp speaking the old SCP protocol.
TOOLS = ("sftp", "scp", "scp-legacy", "lftp", "rclone", "curl")


@dataclasses.dataclass(frozen=True)
class Login:
    """Whom a client logs in as, where, and what it trusts. `options`: more OpenSSH `-o`
    options (OpenSSH's clients only), e.g. `Ciphers=aes128-cbc`; the first value given wins."""

    host: str
    user: str
    known_hosts: Path
    password: str | None = None
    key: Path | None = None  # a private key; its public half beside it (`.pub`) for curl
    port: int = 22
    source: str | None = None  # the client's own address
    options: tuple[str, ...] = ()
    timeout: float = 60


def ssh_options(login: Login) -> list[str]:
    """OpenSSH's options for `login` (the post-deploy check's own, `sftpcheck.ssh_options`)."""
    return sftpcheck.ssh_options(
        login.known_hosts, login.port, 10, login.key, login.source, login.options
    )


def _quoted(text: str) -> str:
    """A double-quoted word as lftp's commands and curl's config file read it."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class SftpClients:
    """The clients in namespace `ns` (None: this machine), their files in `workdir`."""

    def __init__(self, ns: Netns | None, workdir: Path) -> None:
        self.ns = ns
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.askpass = workdir / "askpass"
        self.askpass.write_text(sftpcheck.ASKPASS)
        self.askpass.chmod(0o700)

    def known_hosts(self, lines: Sequence[str], name: str = "known_hosts") -> Path:
        """A known_hosts file holding `lines` (e.g. the plan's `sftpHostKeys`)."""
        path = self.workdir / name
        path.write_text("".join(f"{line}\n" for line in lines))
        return path

    # -- running -------------------------------------------------------------------------------

    def env(self, login: Login, **more: str) -> dict[str, str]:
        env = {"PATH": CLIENT_PATH, "HOME": str(self.workdir / "home"), "LC_ALL": "C.UTF-8"}
        if login.password is not None:
            env |= sftpcheck.askpass_env(self.askpass, login.password)
        return env | more

    def argv(self, *argv: str) -> list[str]:
        return self.ns.argv(*argv) if self.ns is not None else list(argv)

    def run(
        self, login: Login, *argv: str, input: str | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*argv),
            env=self.env(login, **env),
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            timeout=login.timeout,
            check=False,
        )

    # -- the clients ---------------------------------------------------------------------------

    def sftp(self, login: Login, *commands: str) -> subprocess.CompletedProcess[str]:
        """OpenSSH's sftp running `commands` in batch mode (it stops at the first that fails;
        `-command` goes on)."""
        target = f"{login.user}@{login.host}"
        script = "".join(f"{c}\n" for c in commands)
        return self.run(login, "sftp", *ssh_options(login), "-b", "-", target, input=script)

    def scp(
        self, login: Login, source: str, target: str, legacy: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """OpenSSH's scp; `remote(login, path)` names a remote file. `legacy`: the old SCP
        protocol (-O) instead of SFTP."""
        return self.run(
            login, "scp", *(["-O"] if legacy else []), *ssh_options(login), source, target
        )

    @staticmethod
    def remote(login: Login, path: str) -> str:
        return f"{login.user}@{login.host}:{path}"

    def lftp(self, login: Login, *commands: str) -> subprocess.CompletedProcess[str]:
        """lftp's sftp:// (ssh underneath, with the same options) running `commands`; it stops
        at the first that fails."""
        connect = " ".join(["ssh", "-a", "-x", *ssh_options(login)])
        password = login.password if login.key is None else ""
        script = [
            f"set sftp:connect-program {_quoted(connect)}",
            "set cmd:fail-exit yes",
            "set net:max-retries 1",
            "set net:timeout 10",
            f"open -u {_quoted(login.user)},{_quoted(password or '')} "
            f"sftp://{login.host}:{login.port}",
            *commands,
            "bye",
        ]
        return self.run(login, "lftp", input="\n".join(script) + "\n")

    def rclone(self, login: Login, *args: str) -> subprocess.CompletedProcess[str]:
        """rclone with its sftp backend as `:sftp:` (`rclone lsf :sftp:dir`), configured by its
        environment alone; no remote shell commands (the server has none)."""
        env = {
            "RCLONE_CONFIG": "/dev/null",
            "RCLONE_SFTP_HOST": login.host,
            "RCLONE_SFTP_PORT": str(login.port),
            "RCLONE_SFTP_USER": login.user,
            "RCLONE_SFTP_KNOWN_HOSTS_FILE": str(login.known_hosts),
            "RCLONE_SFTP_SHELL_TYPE": "none",
            "RCLONE_SFTP_DISABLE_HASHCHECK": "true",
        }
        if login.key is not None:
            env["RCLONE_SFTP_KEY_FILE"] = str(login.key)
        elif login.password is not None:
            env["RCLONE_SFTP_PASS"] = obscure(login.password)
        if login.source:
            env["RCLONE_BIND"] = login.source
        retries = ("--retries", "1", "--low-level-retries", "1", "--contimeout", "10s")
        return self.run(login, "rclone", *args, *retries, **env)

    def curl(self, login: Login, path: str, *args: str) -> subprocess.CompletedProcess[str]:
        """curl on `sftp://host:port/<path>` (a relative path is under the user's home); the
        credentials on its standard input (`-K -`)."""
        home = self.workdir / "home" / ".ssh"
        home.mkdir(parents=True, exist_ok=True)
        (home / "known_hosts").write_text(login.known_hosts.read_text())
        credentials = f"{login.user}:{login.password or ''}"
        config = [f"user = {_quoted(credentials)}"]
        if login.key is not None:
            config += [f"key = {_quoted(str(login.key))}"]
            config += [f"pubkey = {_quoted(f'{login.key}.pub')}"]
        if login.source:
            config += [f"interface = {_quoted(login.source)}"]
        where = path if path.startswith("/") else f"/~/{path}"
        url = f"sftp://{login.host}:{login.port}{where}"
        options = ("-sS", "--connect-timeout", "10", "-K", "-")
        return self.run(login, "curl", *options, *args, url, input="\n".join(config) + "\n")

    # -- one interface over every tool -----------------------------------------------------------

    def ls(self, tool: str, login: Login, path: str = "") -> subprocess.CompletedProcess[str]:
        """The names in a remote directory (the home by default), one a line among the tool's
        other output; scp cannot list (ValueError)."""
        if tool == "sftp":
            return self.sftp(login, f"ls -1a {path}".strip())
        if tool == "lftp":
            return self.lftp(login, f"cls -1a {path}".strip())
        if tool == "rclone":
            return self.rclone(login, "lsf", f":sftp:{path}")
        if tool == "curl":
            return self.curl(login, path.rstrip("/") + "/", "-l")
        raise ValueError(f"{tool} cannot list a directory")

    def get(
        self, tool: str, login: Login, remote: str, local: Path
    ) -> subprocess.CompletedProcess[str]:
        """Download `remote` (relative: under the home) to `local`."""
        if tool in ("scp", "scp-legacy"):
            source = self.remote(login, remote)
            return self.scp(login, source, str(local), legacy=tool == "scp-legacy")
        if tool == "sftp":
            return self.sftp(login, f'get "{remote}" "{local}"')
        if tool == "lftp":
            return self.lftp(login, f"get {_quoted(remote)} -o {_quoted(str(local))}")
        if tool == "rclone":
            return self.rclone(login, "copyto", f":sftp:{remote}", str(local))
        if tool == "curl":
            return self.curl(login, remote, "-o", str(local))
        raise ValueError(f"unknown SFTP client {tool!r}")

    def put(
        self, tool: str, login: Login, local: Path, remote: str
    ) -> subprocess.CompletedProcess[str]:
        """Upload `local` as `remote` (relative: under the home)."""
        if tool in ("scp", "scp-legacy"):
            target = self.remote(login, remote)
            return self.scp(login, str(local), target, legacy=tool == "scp-legacy")
        if tool == "sftp":
            return self.sftp(login, f'put "{local}" "{remote}"')
        if tool == "lftp":
            return self.lftp(login, f"put {_quoted(str(local))} -o {_quoted(remote)}")
        if tool == "rclone":
            return self.rclone(login, "copyto", str(local), f":sftp:{remote}")
        if tool == "curl":
            return self.curl(login, remote, "-T", str(local))
        raise ValueError(f"unknown SFTP client {tool!r}")

    def open(self, login: Login) -> HeldSession:
        """An OpenSSH sftp session kept open: commands sent one by one (`HeldSession.ask`)."""
        target = f"{login.user}@{login.host}"
        proc = subprocess.Popen(
            self.argv("sftp", *ssh_options(login), "-b", "-", target),
            env=self.env(login),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        session = HeldSession(proc)
        if not session.alive():
            session.close()
            raise RuntimeError(f"the SFTP session did not open: {session.output}")
        return session


def obscure(password: str) -> str:
    """A password as rclone keeps it (`rclone obscure`, read from its standard input)."""
    done = subprocess.run(
        ["rclone", "obscure", "-"], input=password, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


class HeldSession:
    """An OpenSSH sftp session held open; `alive()` has it ask the server something and waits
    for the answer."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.output = ""

    def alive(self, timeout: float = 15) -> bool:
        """Whether the server still answers within `timeout` seconds: a listing (a round trip;
        sftp's own `pwd` never reaches the server), then `pwd` to mark the end of its output."""
        return self.ask("ls -1a\npwd", "Remote working directory:", timeout)

    def ask(self, command: str, expect: str, timeout: float) -> bool:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        start = len(self.output)
        try:
            self.proc.stdin.write(f"{command}\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return False
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while expect not in self.output[start:]:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    return False
                chunk = os.read(fd, 65536)
                if not chunk:
                    return False
                self.output += chunk.decode(errors="replace")
        return True

    def ended(self, timeout: float) -> bool:
        """Whether the client exits (the server ended the session) within `timeout` seconds."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def close(self) -> None:
        end_process(self.proc, timeout=5)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()

    def __enter__(self) -> HeldSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
