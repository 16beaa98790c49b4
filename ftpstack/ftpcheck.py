"""FTP checks from the client's side: what a customer's client sees of a deployed ftpstack.

Used by the tests at every level that has a real server (L2-L4), and usable by hand against any
endpoint: `python -m ftpstack.ftpcheck --host H --user U` (password from $FTP_PASSWORD). It logs
in, checks that the PASV reply names the expected public address and a port inside the expected
passive range, lists, uploads a file and downloads it again.

The announced PASV address is read from the raw reply: Python's ftplib would quietly connect to
the control connection's peer instead, which hides exactly the NAT misconfiguration this checks.
"""

from __future__ import annotations

import argparse
import ftplib
import hashlib
import io
import os
import re
import socket
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from ftpstack import sftpcheck
from ftpstack.checkfailed import CheckFailed, NotReady

# The password of --user comes from the environment, never the command line (ps shows that).
PASSWORD_ENV = "FTP_PASSWORD"
# A certificate to trust (PEM text), instead of a file: the post-deploy check pins the stack's own
# self-signed certificate this way.
CA_PEM_ENV = "FTP_CA_PEM"
# With --sftp: the SFTP host keys to trust (known_hosts lines, the stack's `sftpHostKeys`).
KNOWN_HOSTS_ENV = "FTP_KNOWN_HOSTS"
_PASV = re.compile(r"\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)")
_EPSV = re.compile(r"\(\|\|\|(\d+)\|\)")


def _refusal(host: str, user: str, error: ftplib.error_perm) -> CheckFailed:
    """A login the server refused for good: retrying would only get this address banned."""
    text = str(error)
    if "Banned" in text:
        return CheckFailed(
            f"{host} bans this machine's address ({text}); lift the ban on the server "
            "(README, Bans), then run the check again"
        )
    return CheckFailed(
        f"the server refused {user}'s password ({text}); check the password stored for "
        f"{user} in the stack config (pulumi config get --path 'users[0].password')"
    )


@dataclass(frozen=True)
class Passive:
    host: str
    port: int


def parse_pasv(reply: str) -> Passive:
    """'227 Entering Passive Mode (198,51,100,10,195,80).' -> Passive('198.51.100.10', 50000)."""
    match = _PASV.search(reply)
    if not match:
        raise CheckFailed(f"not a PASV reply: {reply!r}")
    numbers = [int(n) for n in match.groups()]
    return Passive(".".join(map(str, numbers[:4])), numbers[4] * 256 + numbers[5])


def parse_epsv(reply: str) -> int:
    """'229 Entering Extended Passive Mode (|||50000|)' -> 50000."""
    match = _EPSV.search(reply)
    if not match:
        raise CheckFailed(f"not an EPSV reply: {reply!r}")
    return int(match.group(1))


@dataclass(frozen=True)
class Tls:
    """Explicit FTPS (AUTH TLS) with protected data connections."""

    cafile: str | None = None  # trust this certificate (e.g. the VM's self-signed one)
    verify: bool = True  # False: encrypt without checking who answers
    cadata: str | None = None  # trust this certificate, given as PEM text
    server_name: str | None = None  # the name the certificate must carry (default: the host)

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.cafile, cadata=self.cadata)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


class FTPS(ftplib.FTP_TLS):
    """FTP_TLS whose data connections resume the control connection's TLS session.

    proftpd (like vsftpd and FileZilla Server) requires that by default: it proves the data
    connection comes from the client that logged in. Python's ftplib does not do it on its own,
    so its data connections would be refused with "425 ... Operation not permitted".

    `server_name`: the name the certificate is checked for, when it is not the host connected to
    (the post-deploy check connects to the address and checks the certificate's DNS name)."""

    server_name: str | None = None

    def auth(self) -> str:
        """AUTH TLS, checking the certificate for `server_name` (ftplib checks the host)."""
        if self.server_name is None:
            return str(super().auth())
        resp = self.voidcmd("AUTH TLS")
        self.sock = self.context.wrap_socket(self.sock, server_hostname=self.server_name)  # type: ignore[arg-type]
        self.file = self.sock.makefile(mode="r", encoding=self.encoding)
        return str(resp)

    def ntransfercmd(
        self, cmd: str, rest: int | str | None = None
    ) -> tuple[socket.socket, int | None]:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:  # type: ignore[attr-defined]
            conn = self.context.wrap_socket(
                conn,
                server_hostname=self.server_name or self.host,
                session=self.sock.session,  # type: ignore[union-attr]
            )
        return conn, size


def connect(
    host: str,
    user: str,
    password: str,
    port: int = 21,
    timeout: float = 10,
    tls: Tls | None = None,
    source: str | None = None,
) -> ftplib.FTP:
    """Logged in, in passive mode; with `tls`, over AUTH TLS with PROT P."""
    address = (source, 0) if source else None
    ftp: ftplib.FTP
    if tls is None:
        ftp = ftplib.FTP(timeout=timeout, source_address=address)
        ftp.connect(host, port)
        ftp.login(user, password)
        return ftp
    ftps = FTPS(context=tls.context(), timeout=timeout, source_address=address)
    ftps.server_name = tls.server_name
    ftps.connect(host, port)
    ftps.login(user, password)  # sends AUTH TLS first
    ftps.prot_p()
    return ftps


def announced_passive(ftp: ftplib.FTP) -> Passive:
    """Ask for passive mode and return what the server announced (no data connection made)."""
    return parse_pasv(ftp.sendcmd("PASV"))


def upload(ftp: ftplib.FTP, name: str, data: bytes) -> str:
    """STOR in passive mode; returns the final reply ("226 ...")."""
    return str(ftp.storbinary(f"STOR {name}", io.BytesIO(data)))


def download(ftp: ftplib.FTP, name: str) -> tuple[bytes, str]:
    """RETR in passive mode; returns (contents, final reply)."""
    chunks: list[bytes] = []
    reply = ftp.retrbinary(f"RETR {name}", chunks.append)
    return b"".join(chunks), str(reply)


@dataclass(frozen=True)
class Expectation:
    public_ip: str | None = None
    passive_first: int | None = None
    passive_last: int | None = None


def check_passive(passive: Passive, expect: Expectation) -> None:
    if expect.public_ip and passive.host != expect.public_ip:
        raise CheckFailed(
            f"PASV names {passive.host}, not the public IP {expect.public_ip}: clients will "
            "connect to an address they cannot reach (MasqueradeAddress is wrong)"
        )
    first, last = expect.passive_first, expect.passive_last
    if first is not None and last is not None and not first <= passive.port <= last:
        raise CheckFailed(
            f"PASV offers port {passive.port}, outside the passive range {first}-{last} "
            "that the NSG opens"
        )


def smoke(
    host: str,
    user: str,
    password: str,
    expect: Expectation,
    port: int = 21,
    timeout: float = 10,
    payload: bytes | None = None,
    tls: Tls | None = None,
    source: str | None = None,
) -> list[str]:
    """Log in, check PASV, list, upload, download, compare, delete. Returns progress lines."""
    data = payload if payload is not None else os.urandom(64 * 1024)
    name = f"ftpstack-smoke-{os.getpid()}-{int(time.time())}.bin"
    log = []
    try:
        ftp = connect(host, user, password, port, timeout, tls, source)
    except ssl.SSLCertVerificationError as error:
        # Someone answers, but not with the certificate expected: no password was sent, and
        # waiting would not change who answers.
        raise CheckFailed(
            f"{host}:{port} presents a certificate that is not the one expected "
            f"({error.verify_message}): another server answers, or the certificate changed"
        ) from None
    except ftplib.error_perm as error:
        # proftpd serves only a configuration ftpstack applied, so a 530 is an answer, not
        # "not yet" — except a full server, which frees up.
        if "Too many" in str(error):
            raise NotReady(f"{host}:{port} is full: {error}") from None
        raise _refusal(host, user, error) from None
    except (OSError, ftplib.Error, EOFError) as error:
        raise NotReady(f"cannot log in to {host}:{port} as {user}: {error}") from None
    with ftp:
        log.append(f"logged in to {host}:{port} as {user}")
        passive = announced_passive(ftp)
        check_passive(passive, expect)
        log.append(f"PASV announces {passive.host}:{passive.port}")
        try:
            ftp.nlst()
            reply = upload(ftp, name, data)
            back, reply_down = download(ftp, name)
            ftp.delete(name)
        except (OSError, EOFError) as error:
            # Login worked but a data connection did not: the passive port is not reachable.
            raise CheckFailed(
                f"data connection to a passive port of {host} failed ({error or 'timed out'}): "
                "is the passive range open in the NSG / load balancer?"
            ) from None
        except ftplib.Error as error:
            raise CheckFailed(f"transfer through {host} failed: {error}") from None
        if hashlib.sha256(back).digest() != hashlib.sha256(data).digest():
            raise CheckFailed(f"downloaded {len(back)} bytes differ from the {len(data)} uploaded")
        log.append(
            f"uploaded and downloaded {len(data)} bytes intact ({reply[:3]}, {reply_down[:3]})"
        )
    return log


def wait_and_smoke(
    host: str,
    user: str,
    password: str,
    expect: Expectation,
    wait: float,
    port: int = 21,
    progress: Callable[[str], None] = print,
    poll: float = 5,
    timeout: float = 10,
    tls: Tls | None = None,
    source: str | None = None,
) -> list[str]:
    """`smoke`, retried while the server is not ready yet, for at most `wait` seconds; a server
    that answers but serves wrongly (PASV address or range, transfers) fails at once."""
    started = time.monotonic()
    last_report = -float("inf")
    while True:
        try:
            return smoke(host, user, password, expect, port, timeout, tls=tls, source=source)
        except NotReady as error:
            waited = time.monotonic() - started
            if waited + poll > wait:
                raise CheckFailed(f"gave up after {waited:.0f} s: {error}") from None
            if waited - last_report >= 15:
                progress(f"waiting for FTP on {host}:{port} ({waited:.0f}/{wait:.0f} s): {error}")
                last_report = waited
            time.sleep(poll)


def wait_for_banner(host: str, port: int, wait: float, timeout: float = 10) -> str:
    """The server's 220 greeting, waiting at most `wait` seconds for it."""
    deadline = time.monotonic() + wait
    while True:
        try:
            with ftplib.FTP(timeout=timeout) as ftp:
                return str(ftp.connect(host, port))
        except (OSError, ftplib.Error, EOFError) as error:
            if time.monotonic() + 5 > deadline:
                raise CheckFailed(f"no FTP greeting from {host}:{port}: {error}") from None
            time.sleep(5)


def arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ftpstack.ftpcheck",
        description="Check a deployed ftpstack endpoint like a customer's client would.",
        epilog=f"environment: {PASSWORD_ENV} holds the password of --user (never an argument, "
        f"which other users of the machine see in ps); {CA_PEM_ENV}, with --tls, a certificate "
        f"(PEM) to trust; {KNOWN_HOSTS_ENV}, with --sftp, the host keys to trust (known_hosts "
        "lines: the stack's sftpHostKeys output).",
    )
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, default=21)
    parser.add_argument(
        "--user",
        help=f"log in (password from ${PASSWORD_ENV}) and transfer; without it, wait for the "
        "banner",
    )
    parser.add_argument("--expect-public-ip", help="the address PASV must announce")
    parser.add_argument("--expect-passive-range", help="first-last, e.g. 50000-50099")
    parser.add_argument("--timeout", type=float, default=10, help="per connection, seconds")
    parser.add_argument("--source", help="connect from this local address")
    parser.add_argument("--tls", action="store_true", help="explicit FTPS (AUTH TLS, PROT P)")
    parser.add_argument("--cafile", help="with --tls: trust this certificate (PEM)")
    parser.add_argument(
        "--server-name",
        help="with --tls: the name the certificate must carry, when it is not --host (an address)",
    )
    parser.add_argument(
        "--no-verify",
        action="store_true",
        help="with --tls: encrypt without verifying the certificate (self-signed at first boot)",
    )
    parser.add_argument(
        "--banner-only",
        action="store_true",
        help="FTP: only wait for the greeting, even with --user (no password over plain FTP); "
        "--sftp still logs in",
    )
    parser.add_argument(
        "--sftp",
        action="store_true",
        help="also log in over SFTP as --user and transfer, the host key pinned (OpenSSH's sftp)",
    )
    parser.add_argument("--sftp-port", type=int, default=22)
    parser.add_argument(
        "--known-hosts",
        help=f"with --sftp: a known_hosts file of the keys to trust (else ${KNOWN_HOSTS_ENV})",
    )
    parser.add_argument(
        "--wait", type=float, default=0, help="keep trying this long while nothing serves yet"
    )
    return parser


def _known_hosts(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    if args.known_hosts:
        try:
            with open(args.known_hosts, encoding="utf-8") as f:
                return f.read()
        except OSError as error:
            parser.error(f"--known-hosts {args.known_hosts}: {error.strerror}")
    pinned = os.environ.get(KNOWN_HOSTS_ENV, "").strip()
    if not pinned:
        parser.error(
            f"--sftp needs the host keys to trust: --known-hosts FILE or ${KNOWN_HOSTS_ENV} "
            "(the stack's sftpHostKeys output, one line each)"
        )
    return pinned


def main(argv: list[str] | None = None) -> int:
    parser = arguments()
    args = parser.parse_args(argv)
    password = os.environ.get(PASSWORD_ENV)
    if args.user and password is None:
        parser.error(f"set the password in the environment variable {PASSWORD_ENV}")
    if args.sftp and not args.user:
        parser.error("--sftp needs --user (and its password in the environment)")
    pinned = _known_hosts(parser, args) if args.sftp else ""
    started = time.monotonic()
    first = last = None
    if args.expect_passive_range:
        first, last = (int(p) for p in args.expect_passive_range.split("-"))
    expect = Expectation(args.expect_public_ip, first, last)
    try:
        if not args.user or args.banner_only:
            print(wait_for_banner(args.host, args.port, args.wait, args.timeout), flush=True)
            print("FTP: the greeting only (no FTP login)", flush=True)
            lines: list[str] = []
        else:
            assert password is not None
            lines = wait_and_smoke(
                args.host,
                args.user,
                password,
                expect,
                args.wait,
                args.port,
                lambda message: print(message, flush=True),
                timeout=args.timeout,
                tls=Tls(
                    args.cafile,
                    not args.no_verify,
                    os.environ.get(CA_PEM_ENV) or None,
                    args.server_name,
                )
                if args.tls
                else None,
                source=args.source,
            )
        for line in lines:
            print(line, flush=True)
        if args.sftp:
            assert password is not None
            left = max(0.0, args.wait - (time.monotonic() - started))
            for line in sftpcheck.wait_and_smoke(
                args.host, args.user, password, pinned, left, args.sftp_port, timeout=args.timeout
            ):
                print(line, flush=True)
    except CheckFailed as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
