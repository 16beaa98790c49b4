"""FTP clients for the local stand-ins, run inside a client namespace by the tests and the
benchmark: `python -m ftpstack.local.net.client <command> --host H [--user U] [--tls] ...`.

Each command prints one JSON line (the last line of its output); the password comes from the
environment (FTP_PASSWORD), never from the command line, where `ps` would show it.

    upload         STOR --size bytes of random data (or --file); its sha256 and the reply
    download       RETR; sha256, bytes, seconds, reply (--out to keep the data)
    slow-download  RETR paced to last --seconds; whether the 226 arrived afterwards
    pasv           --count PASV and EPSV replies
    logins         --count logins (connect, login, 1-byte RETR, quit), spaced --spacing s apart
    login-loop     a login every --interval s until --stop-file exists; every failure listed,
                   each login's seconds and each attempt's span
    pasv-loop      PASV and a data connection (NLST) every --interval s until --stop-file
                   exists, in one session that is reopened when the server ends it; every
                   announced port, and every data connection that failed
    reach          TCP connect to --port: open, refused or silent
    hold           log in (or only connect: --no-login; --count of them), print "ready", wait
                   for stdin to close; then whether the server still has each one
    try-login      one login: ok, or the server's reply
    sessions       --count new sessions, each PASV and a listing: ports announced, failures
    connects       --count connections, each read its greeting and closed: the greetings
    idle-flood     --per-source connections from each of --sources that never log in, each
                   opened again as soon as the server closes it, until --stop-file exists; prints
                   "ready" once the first round was answered; what the server said
    session        one login, then --do actions in order (retr:F stor:F:BYTES dele:F
                   rnfr:F:TO nlst cwd:DIR pasv raw:COMMAND stor-cut:F:BYTES
                   stor-vanish:F:BYTES): each one's reply
"""

from __future__ import annotations

import argparse
import contextlib
import ftplib
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ftpstack.ftpcheck import Tls, connect, parse_epsv, parse_pasv
from ftpstack.local.net.hostile import cut_upload, idle_flood
from ftpstack.local.net.netns import Netns, NetnsError

MODULE = "ftpstack.local.net.client"
CHUNK = 1 << 20
FAILURES = (OSError, EOFError, ftplib.Error)
PROJECT_DIR = Path(__file__).resolve().parents[3]
CLIENT_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"


def module_argv(module: str, *args: str) -> list[str]:
    """`python -m <module> args` with this interpreter: a client run inside a namespace."""
    return [sys.executable, "-m", module, *args]


def environment(password: str | None = None) -> dict[str, str]:
    """A client's environment inside a namespace: this project importable, and the password in
    FTP_PASSWORD (never on the command line, where `ps` shows it)."""
    env = {"PATH": CLIENT_PATH, "PYTHONPATH": str(PROJECT_DIR)}
    if password is not None:
        env["FTP_PASSWORD"] = password
    return env


def invocation(host: str, command: str, *args: str, user: str = "") -> list[str]:
    """The argv of this module's `command` against `host` as `user`."""
    return module_argv(MODULE, command, "--host", host, "--user", user, *args)


def last_json(stdout: str) -> dict[str, Any]:
    """A client's result: the JSON document on the last line it printed."""
    parsed: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return parsed


def run_client(
    ns: Netns,
    host: str,
    command: str,
    *args: str,
    user: str = "",
    password: str = "",
    timeout: float = 600,
) -> dict[str, Any]:
    """`command` run to its end in namespace `ns`; its JSON, or NetnsError with its stderr."""
    result = ns.run(
        *invocation(host, command, *args, user=user), env=environment(password), timeout=timeout
    )
    if result.returncode != 0:
        raise NetnsError(f"client {command} failed: {result.stderr.strip()[-2000:]}")
    return last_json(result.stdout)


def start_client(
    ns: Netns, host: str, command: str, *args: str, user: str = "", password: str = "", **kw: Any
) -> subprocess.Popen[str]:
    """`command` left running in namespace `ns`, its stdout piped (`kw`: more, e.g. stdin);
    `last_json` of what it printed is its result."""
    return ns.popen(
        *invocation(host, command, *args, user=user),
        env=environment(password),
        stdout=subprocess.PIPE,
        **kw,
    )


# A loop's first line once its first round is done (tests.support.wait_ready).
READY = {"ready": True}


def _ready() -> None:
    print(json.dumps(READY), flush=True)


def _login(args: argparse.Namespace, timeout: float | None = None) -> ftplib.FTP:
    tls = Tls(args.cafile, verify=bool(args.cafile)) if args.tls else None
    return connect(
        args.host,
        args.user,
        os.environ.get("FTP_PASSWORD", ""),
        args.port,
        timeout or args.timeout,
        tls,
        args.source,
    )


def upload(args: argparse.Namespace) -> dict[str, Any]:
    data = Path(args.file).read_bytes() if args.file else os.urandom(args.size)
    with _login(args) as ftp:
        reply = ftp.storbinary(f"STOR {args.name}", io.BytesIO(data), blocksize=CHUNK)
    return {"reply": reply, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def download(args: argparse.Namespace) -> dict[str, Any]:
    digest, count = hashlib.sha256(), 0
    with _login(args) as ftp, contextlib.ExitStack() as stack:
        out = stack.enter_context(Path(args.out).open("wb")) if args.out else None
        ftp.voidcmd("TYPE I")
        started = time.perf_counter()
        with ftp.transfercmd(f"RETR {args.name}") as conn:
            while chunk := conn.recv(CHUNK):
                digest.update(chunk)
                count += len(chunk)
                if out:
                    out.write(chunk)
            if hasattr(conn, "unwrap"):
                conn.unwrap()
        seconds = time.perf_counter() - started
        reply = ftp.voidresp()
    return {"reply": reply, "sha256": digest.hexdigest(), "bytes": count, "seconds": seconds}


def slow_download(args: argparse.Namespace) -> dict[str, Any]:
    """RETR paced to last `--seconds` while the control connection stays idle; then whether the
    226 still arrives (the seed's failure: a forgotten control connection never gets it)."""
    ftp = _login(args, timeout=args.reply_wait)
    ftp.voidcmd("TYPE I")
    probe = parse_pasv(ftp.sendcmd("PASV")).port  # which server holds the session
    ftp.voidcmd("NOOP")
    print(json.dumps({"port": probe}), flush=True)
    size = ftp.size(args.name) or 1
    rate = size / args.seconds
    started, digest, count = time.monotonic(), hashlib.sha256(), 0
    conn = ftp.transfercmd(f"RETR {args.name}")
    while chunk := conn.recv(65536):
        digest.update(chunk)
        count += len(chunk)
        ahead = count / rate - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)
    if hasattr(conn, "unwrap"):
        conn.unwrap()  # TLS close_notify, as ftplib does
    conn.close()
    result: dict[str, Any] = {
        "sha256": digest.hexdigest(),
        "bytes": count,
        "port": probe,
        "seconds": time.monotonic() - started,
    }
    try:
        result["reply"] = ftp.voidresp()
    except FAILURES as error:
        result["reply"], result["error"] = None, f"{type(error).__name__}: {error}"
    return result


def pasv(args: argparse.Namespace) -> dict[str, Any]:
    with _login(args) as ftp:
        replies = [(ftp.sendcmd("PASV"), ftp.sendcmd("EPSV")) for _ in range(args.count)]
    return {
        "pasv": [[p.host, p.port] for p in (parse_pasv(a) for a, _ in replies)],
        "epsv": [parse_epsv(b) for _, b in replies],
    }


def logins(args: argparse.Namespace) -> dict[str, Any]:
    samples = []
    for _ in range(args.count):
        started = time.perf_counter()
        with _login(args) as ftp:
            chunks: list[bytes] = []
            ftp.retrbinary(f"RETR {args.name}", chunks.append)
        samples.append((time.perf_counter() - started) * 1000)
        time.sleep(args.spacing)
    return {"ms": samples}


def _until_stopped(args: argparse.Namespace, attempt: Callable[[], Any]) -> dict[str, Any]:
    """Every attempt's outcome, and its span (wall clock, comparable with the test's own)."""
    results, failures, spans = [], [], []
    while not Path(args.stop_file).exists():
        at = time.time()
        try:
            results.append(attempt())
        except FAILURES as error:
            failures.append({"at": at, "error": f"{type(error).__name__}: {error}"})
        spans.append([at, time.time()])
        if len(spans) == 1:
            _ready()
        time.sleep(args.interval)
    return {"attempts": len(spans), "failures": failures, "results": results, "spans": spans}


def login_loop(args: argparse.Namespace) -> dict[str, Any]:
    def once() -> float:
        started = time.perf_counter()
        _login(args).quit()
        return time.perf_counter() - started

    out = _until_stopped(args, once)
    out["seconds"] = [round(x, 4) for x in out.pop("results")]
    out["slowest_s"] = max(out["seconds"], default=0.0)
    return out


def pasv_loop(args: argparse.Namespace) -> dict[str, Any]:
    """Does any PASV reply name a port the network does not forward? Each announced port gets a
    data connection at once; one that cannot be made is such a port."""
    announced: list[int] = []
    closed: list[dict[str, Any]] = []
    reopened = 0
    ftp: ftplib.FTP | None = None
    while not Path(args.stop_file).exists():
        try:
            if ftp is None:
                ftp = _login(args, timeout=5)
            port = parse_pasv(ftp.sendcmd("PASV")).port
            announced.append(port)
            if len(announced) == 1:
                _ready()
            try:
                with socket.create_connection((args.host, port), timeout=3):
                    pass
            except OSError as error:
                closed.append({"at": time.time(), "port": port, "error": str(error)})
            ftp.voidcmd("NOOP")  # the server gives up the unused data connection
        except FAILURES:
            ftp, reopened = None, reopened + 1
        time.sleep(args.interval)
    return {"announced": announced, "closed": closed, "reopened": reopened}


def sessions(args: argparse.Namespace) -> dict[str, Any]:
    """--count new sessions, each: log in, PASV, a directory listing over that port. Which
    server answered shows in the port (each announces its own slice)."""
    ports: list[int] = []
    failures: list[str] = []
    for _ in range(args.count):
        try:
            with _login(args, timeout=5) as ftp:
                ports.append(parse_pasv(ftp.sendcmd("PASV")).port)
                ftp.voidcmd("NOOP")
                ftp.nlst()
        except FAILURES as error:
            failures.append(f"{type(error).__name__}: {error}")
    return {"ports": ports, "failures": failures}


def reach(args: argparse.Namespace) -> dict[str, Any]:
    with socket.socket() as s:
        s.settimeout(args.timeout)
        try:
            s.connect((args.host, args.port))
            return {"result": "open"}
        except ConnectionRefusedError:
            return {"result": "refused"}
        except (TimeoutError, OSError):
            return {"result": "silent"}


def hold(args: argparse.Namespace) -> dict[str, Any]:
    held: list[ftplib.FTP] = []
    for _ in range(args.count):
        if args.no_login:
            ftp = ftplib.FTP(
                timeout=args.timeout, source_address=(args.source, 0) if args.source else None
            )
            ftp.connect(args.host, args.port)
            held.append(ftp)
        else:
            held.append(_login(args))
    print("ready", flush=True)
    sys.stdin.read()
    states = []
    for ftp in held:
        try:
            ftp.voidcmd("NOOP")
            states.append("alive")
        except FAILURES as error:
            states.append(f"ended: {type(error).__name__}: {error}")
    return {"session": states[0] if args.count == 1 else states}


def connects(args: argparse.Namespace) -> dict[str, Any]:
    greetings = []
    for _ in range(args.count):
        try:
            with ftplib.FTP(
                timeout=args.timeout, source_address=(args.source, 0) if args.source else None
            ) as ftp:
                greetings.append(ftp.connect(args.host, args.port))
        except FAILURES as error:
            greetings.append(f"{type(error).__name__}: {error}")
    return {"greetings": greetings}


def _action(ftp: ftplib.FTP, action: str) -> dict[str, Any]:
    verb, _, rest = action.partition(":")
    name, _, extra = rest.partition(":")
    if verb == "retr":
        chunks: list[bytes] = []
        reply = ftp.retrbinary(f"RETR {name}", chunks.append)
        return {
            "reply": reply,
            "sha256": hashlib.sha256(b"".join(chunks)).hexdigest(),
            "text": b"".join(chunks)[:200].decode(errors="replace"),
        }
    if verb == "stor":
        return {"reply": ftp.storbinary(f"STOR {name}", io.BytesIO(b"x" * int(extra or 1)))}
    if verb == "dele":
        return {"reply": ftp.delete(name)}
    if verb == "rnfr":
        return {"reply": ftp.rename(name, extra)}
    if verb == "nlst":
        return {"names": ftp.nlst()}
    if verb == "cwd":
        return {"reply": ftp.cwd(name), "pwd": ftp.pwd()}
    if verb == "pasv":  # the announced port (it tells which server holds the session)
        return {"port": parse_pasv(ftp.sendcmd("PASV")).port}
    if verb == "raw":  # a command as written (the rest of the action, colons and all)
        return {"reply": ftp.sendcmd(rest)}
    if verb in {"stor-cut", "stor-vanish"}:
        return {"reply": cut_upload(ftp, name, int(extra), vanish=verb == "stor-vanish")}
    raise SystemExit(f"unknown action {action!r}")


def session(args: argparse.Namespace) -> dict[str, Any]:
    results = []
    with _login(args) as ftp:
        for action in args.do:
            try:
                results.append({"action": action, "ok": True, **_action(ftp, action)})
            except ftplib.error_perm as error:
                results.append({"action": action, "ok": False, "reply": str(error)})
            except (OSError, EOFError) as error:
                # The server may cut a data connection (an upload over its limit) before the
                # reply: read the reply now.
                try:
                    reply = ftp.getresp()
                except ftplib.Error as late:
                    reply = str(late)
                results.append({"action": action, "ok": False, "reply": reply, "cut": str(error)})
    return {"results": results}


def try_login(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        _login(args).quit()
        return {"ok": True, "seconds": time.perf_counter() - started}
    except FAILURES as error:
        return {"ok": False, "reply": str(error), "seconds": time.perf_counter() - started}


COMMANDS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "upload": upload,
    "download": download,
    "slow-download": slow_download,
    "pasv": pasv,
    "logins": logins,
    "login-loop": login_loop,
    "pasv-loop": pasv_loop,
    "reach": reach,
    "hold": hold,
    "try-login": try_login,
    "connects": connects,
    "idle-flood": idle_flood,
    "session": session,
    "sessions": sessions,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ftpstack.local.net.client")
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, default=21)
    parser.add_argument("--user", default="")
    parser.add_argument("--tls", action="store_true", help="explicit FTPS (AUTH TLS, PROT P)")
    parser.add_argument("--cafile", help="with --tls: trust this certificate (else no check)")
    parser.add_argument("--source", help="connect from this local address")
    parser.add_argument("--timeout", type=float, default=30)
    parser.add_argument("--name", default="data.bin", help="the remote file")
    parser.add_argument("--size", type=int, default=1 << 20)
    parser.add_argument("--file", help="upload this file instead of random data")
    parser.add_argument("--out", help="download: keep the data here")
    parser.add_argument("--seconds", type=float, default=10, help="slow-download: its duration")
    parser.add_argument("--reply-wait", type=float, default=60, help="slow-download: for the 226")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--spacing", type=float, default=0.5)
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--stop-file", default="/nonexistent")
    parser.add_argument("--no-login", action="store_true", help="hold: connect only")
    parser.add_argument("--do", action="append", default=[], help="session: an action")
    parser.add_argument("--sources", default="", help="idle-flood: source addresses, a,b,...")
    parser.add_argument("--per-source", type=int, default=1, help="idle-flood: each one's")
    parser.add_argument(
        "--reopen-delay", type=float, default=0.0, help="idle-flood: s before reopening"
    )
    args = parser.parse_args(argv)
    print(json.dumps(COMMANDS[args.command](args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
