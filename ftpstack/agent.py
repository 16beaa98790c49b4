"""The configuration agent: runs on the VM (Python's standard library only) and applies a live
configuration atomically, or not at all.

It arrives with every configuration run (Azure's managed Run Command: the script writes this file
to /usr/local/lib/ftpstack/agent.py and runs it as root) and reads its input from the environment:
`FTPSTACK_CONFIG` (a protected parameter: base64 of zlib-compressed JSON, the bundle of
`ftpstack.live`) and `FTPSTACK_PHASE`:

- `apply`: wait for the bootstrap, stage every changed file beside its target, `proftpd
  --configtest` the candidate proftpd.conf, swap the files in with atomic renames, end the
  sessions of removed users, reload proftpd (SIGHUP, with new connections held back for the
  moment its listener is re-opened) only when its configuration changed, start it the first time.
  Any failure leaves the running configuration as it was and exits non-zero (the deployment fails).
- `narrow` (with `FTPSTACK_PASSIVE=first-last`): before the network stops forwarding part of the
  passive range, announce only the ports that stay forwarded, and end the sessions that were
  started with the wider range once they are idle.

By hand, as root: `agent.py reload | drain | undrain | unban <address> | status`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STAGED = ".ftpstack-new"
HEALTH_TABLE = "ftpstack_health"
CONTROLS_SOCKET = "/run/proftpd.sock"
# Where the last applied generation is recorded (for the commands run by hand).
APPLIED = "/var/lib/ftpstack/applied.json"
SESSION_TITLE = re.compile(r"^proftpd: (\S+) - [^:]+: (.*)$")
# A session that has not logged in yet ("proftpd: connected: 203.0.113.10 (...)").
CONNECTED_TITLE = re.compile(r"^proftpd: connected: ")
# Sessions younger than this are left to end by themselves (a login that quits at once).
NARROW_GRACE_SECONDS = 2.0
# How long a drained server waits for the load balancer to notice (two failed probes at 5 s).
DRAIN_SECONDS = 12.0


class ApplyFailed(Exception):
    """The configuration was not applied; str() says why, for the deployment's log."""


def say(message: str) -> None:
    print(f"ftpstack: {message}", flush=True)


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise ApplyFailed(f"{' '.join(argv)}: {(result.stderr or result.stdout).strip()[-800:]}")
    return result


def decode_bundle(text: str) -> dict[str, Any]:
    bundle: dict[str, Any] = json.loads(zlib.decompress(base64.b64decode(text)))
    if bundle.get("version") != 1:
        raise ApplyFailed(f"bundle version {bundle.get('version')} is not understood here")
    return bundle


def systemd() -> bool:
    return Path("/run/systemd/system").is_dir()


# -- waiting for the bootstrap ---------------------------------------------------------------------


def wait_for_bootstrap(marker: str, timeout: float) -> None:
    """Azure may run the configuration while cloud-init is still installing proftpd."""
    deadline, told = time.monotonic() + timeout, False
    while not Path(marker).exists():
        status = cloud_init_status()
        if status in {"error", "degraded done"} or (status == "done" and not Path(marker).exists()):
            detail = run("cloud-init", "status", "--long", check=False).stdout.strip()[-1500:]
            raise ApplyFailed(f"the bootstrap (cloud-init) failed: {detail}")
        if time.monotonic() > deadline:
            raise ApplyFailed(f"the bootstrap did not finish within {timeout:.0f} s ({status})")
        if not told:
            say("waiting for the bootstrap (cloud-init) to finish")
            told = True
        time.sleep(2)


def cloud_init_status() -> str:
    if shutil.which("cloud-init") is None:
        return "absent"
    out = run("cloud-init", "status", check=False).stdout
    match = re.search(r"status:\s*(.+)", out)
    return match.group(1).strip() if match else "unknown"


# -- files -----------------------------------------------------------------------------------------


@dataclass
class Staged:
    path: Path
    new: Path
    mode: int


def write_atomically(path: Path, content: str, mode: int, owner: str = "root:root") -> None:
    stage(path, content, mode, owner)
    os.replace(f"{path}{STAGED}", path)


def stage(path: Path, content: str, mode: int, owner: str = "root:root") -> Staged:
    """Write `content` beside `path` (same directory: the rename is atomic), flushed to disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = Path(f"{path}{STAGED}")
    fd = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, content.encode())
        os.fchmod(fd, mode)
        uid, gid = (int(x) if x.isdigit() else _id(x) for x in owner.split(":"))
        os.fchown(fd, uid, gid)
        os.fsync(fd)
    finally:
        os.close(fd)
    return Staged(path, new, mode)


def _id(name: str) -> int:
    return 0 if name == "root" else pwd.getpwnam(name).pw_uid


def changed_files(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for entry in bundle["files"]:
        path = Path(entry["path"])
        current = path.read_text() if path.exists() else None
        mode_ok = path.exists() and (path.stat().st_mode & 0o7777) == int(entry["mode"], 8)
        if current != entry["content"] or not mode_ok:
            out.append(entry)
    return out


def ensure_dirs(bundle: dict[str, Any]) -> None:
    for entry in bundle["dirs"]:
        path = Path(entry["path"])
        path.mkdir(parents=True, exist_ok=True)
        uid, gid = (int(x) for x in entry["owner"].split(":"))
        os.chown(path, uid, gid)
        path.chmod(int(entry["mode"], 8))


def ensure_self_signed(spec: dict[str, str] | None) -> None:
    """Made once, on the storage that outlives the VM: the key never leaves it and a replaced VM
    serves the same certificate. Made anew only when the names it must carry changed."""
    if not spec:
        return
    cert, key = Path(spec["cert"]), Path(spec["key"])
    if cert.exists() and key.exists():
        names = run(
            "openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", str(cert), check=False
        ).stdout
        if all(n.split(":", 1)[1] in names for n in spec["san"].split(",")):
            return
        say(f"the certificate's names changed to {spec['san']}: making a new self-signed one")
    cert.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp_key, tmp_cert = Path(f"{key}{STAGED}"), Path(f"{cert}{STAGED}")
    run(
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:3072",
        "-sha256",
        "-days",
        "825",
        "-nodes",
        "-subj",
        f"/CN={spec['subject']}",
        "-addext",
        f"subjectAltName={spec['san']}",
        "-keyout",
        str(tmp_key),
        "-out",
        str(tmp_cert),
    )
    tmp_key.chmod(0o600)
    os.replace(tmp_key, key)
    os.replace(tmp_cert, cert)


def configtest(conf: Path) -> None:
    result = run("proftpd", "--configtest", "-c", str(conf), check=False)
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if "fatal" in line or "error" in line]
        raise ApplyFailed(f"proftpd refused the new configuration: {' | '.join(lines[-3:])}")


# -- proftpd ---------------------------------------------------------------------------------------


def master_pid(pid_file: str) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        pid = int(Path(pid_file).read_text().split()[0])
        os.kill(pid, 0)
        return pid
    return None


def greeting(port: int, timeout: float = 5) -> str:
    """The server's 220 greeting on this machine, or "" when nothing answers."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout) as s:
        return s.recv(512).decode(errors="replace")
    return ""


def reload_proftpd(pid_file: str, port: int, log: str, timeout: float = 20) -> None:
    """SIGHUP: the master re-reads its configuration and re-opens its logs; its listening socket
    and the running sessions are kept. Returns once the master has taken up the new
    configuration: it logged the reload, and then greeted a new connection (it accepts only
    between reloads)."""
    pid = master_pid(pid_file)
    if pid is None:
        raise ApplyFailed("proftpd is not running, so it cannot be reloaded")
    offset = Path(log).stat().st_size if Path(log).exists() else 0
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), Path(log).open("rb") as f:
            f.seek(offset)
            if b"received SIGHUP" in f.read() and greeting(port).startswith("220"):
                return
        if master_pid(pid_file) is None:
            raise ApplyFailed("proftpd exited while reloading its configuration")
        if time.monotonic() > deadline:
            raise ApplyFailed(f"proftpd did not take up its configuration within {timeout:.0f} s")
        time.sleep(0.05)


def start_proftpd(conf: str, pid_file: str, port: int, marker: str) -> None:
    Path(marker).parent.mkdir(parents=True, exist_ok=True)
    Path(marker).touch()
    if systemd():
        run("systemctl", "reset-failed", "proftpd", check=False)
        run("systemctl", "start", "proftpd")
    else:  # the local stand-in for a VM has no systemd: start the daemon itself
        run("proftpd", "-c", conf)
    deadline = time.monotonic() + 30
    while not greeting(port).startswith("220") or master_pid(pid_file) is None:
        if time.monotonic() > deadline:
            raise ApplyFailed(f"proftpd did not listen on {port} within 30 s")
        time.sleep(0.1)


def sessions(pid_file: str) -> list[tuple[int, str, str, float]]:
    """(pid, user, state, start time in seconds since boot) of every session of the master."""
    master = master_pid(pid_file)
    found: list[tuple[int, str, str, float]] = []
    if master is None:
        return found
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[1]) != master:
                continue
            title = (entry / "cmdline").read_text().replace("\0", " ").strip()
            match = SESSION_TITLE.match(title)
            start = int(fields[19]) / ticks
            if match:
                found.append((int(entry.name), match.group(1), match.group(2), start))
            elif CONNECTED_TITLE.match(title):
                found.append((int(entry.name), "", "IDLE (not logged in)", start))
    return found


def uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


def end_sessions(pid_file: str, users: set[str]) -> int:
    ended = 0
    for pid, user, _, _ in sessions(pid_file):
        if user in users:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
                ended += 1
    return ended


# -- health (behind a load balancer) -------------------------------------------------------------


def health(bundle: dict[str, Any], on: bool) -> None:
    """Answer the load balancer's probe (on) or stop answering it (drain)."""
    spec = bundle.get("health")
    if not spec:
        return
    if systemd():
        run("systemctl", "start" if on else "stop", spec["unit"])
    elif on:
        run("nft", "-f", spec["nft"])
    else:
        run("nft", "delete", "table", "inet", HEALTH_TABLE, check=False)


def settle(pid_file: str, timeout: float = 30) -> None:
    """Out of the load balancer's rotation, let the logins already under way finish: wait until
    every session is an established one (logged in a while ago), at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = uptime()
        fresh = [x for x in sessions(pid_file) if not x[1] or now - x[3] < NARROW_GRACE_SECONDS]
        if not fresh:
            return
        time.sleep(0.1)


# -- apply -----------------------------------------------------------------------------------------


def apply(bundle: dict[str, Any]) -> None:
    p = bundle["proftpd"]
    wait_for_bootstrap(bundle["markers"]["bootstrap"], bundle["bootstrap_wait_seconds"])
    storage = bundle.get("storage")
    if storage and not os.path.ismount(storage):
        raise ApplyFailed(
            f"{storage} is not mounted (the data disk or the shared NFS share): proftpd never "
            "serves, or takes uploads into, the OS disk's empty tree; see cloud-init's log"
        )
    applied_path = Path(bundle["markers"]["applied"])
    previous = json.loads(applied_path.read_text()) if applied_path.exists() else {}
    ensure_dirs(bundle)
    ensure_self_signed(bundle.get("self_signed"))
    changes = changed_files(bundle)
    conf_changed = any(entry["path"] == p["conf"] for entry in changes)
    staged = [stage(Path(e["path"]), e["content"], int(e["mode"], 8)) for e in changes]
    try:
        for item in staged:  # a file nothing uses yet goes in now: configtest looks for it
            if item.path != Path(p["conf"]) and not item.path.exists():
                os.replace(item.new, item.path)
        if conf_changed or not Path(p["conf"]).exists():
            configtest(Path(f"{p['conf']}{STAGED}"))
    except ApplyFailed:
        for item in staged:
            Path(item.new).unlink(missing_ok=True)
        raise
    for item in staged:
        if item.new.exists():
            os.replace(item.new, item.path)
    if any(entry["path"] == bundle["sysctl"] for entry in changes):
        run("sysctl", "-q", "-p", bundle["sysctl"])
    write_admin_key(bundle.get("admin"))
    removed = set(previous.get("users", [])) - set(bundle["users"])
    if removed:
        say(f"ended {end_sessions(p['pid_file'], removed)} session(s) of removed user(s)")
    if master_pid(p["pid_file"]) is None:
        start_proftpd(p["conf"], p["pid_file"], p["port"], bundle["markers"]["configured"])
        say("proftpd started")
    elif conf_changed:
        reload_proftpd(p["pid_file"], p["port"], p["log"])
        say("proftpd reloaded its configuration")
    health(bundle, on=True)
    prune(bundle)
    record = {k: bundle[k] for k in ("generation", "users", "proftpd", "health")}
    write_atomically(applied_path, json.dumps(record) + "\n", 0o644)
    say(f"generation {bundle['generation']} applied ({len(changes)} file(s) changed)")


def write_admin_key(admin: dict[str, str] | None) -> None:
    """The admin's SSH key, kept current without replacing the VM (Azure refuses to change the
    key in the VM model)."""
    if not admin:
        return
    try:
        account = pwd.getpwnam(admin["user"])
    except KeyError:
        say(f"no account {admin['user']} here: its SSH key is not written")
        return
    ssh = Path(account.pw_dir) / ".ssh"
    ssh.mkdir(mode=0o700, exist_ok=True)
    os.chown(ssh, account.pw_uid, account.pw_gid)
    owner = f"{account.pw_uid}:{account.pw_gid}"
    write_atomically(ssh / "authorized_keys", admin["authorized_keys"] + "\n", 0o600, owner)


def prune(bundle: dict[str, Any]) -> None:
    """Supplied TLS material no longer named by the configuration."""
    keep = {entry["path"] for entry in bundle["files"]}
    tls_dir = Path(bundle["tls_dir"])
    if tls_dir.is_dir():
        for old in tls_dir.iterdir():
            if str(old) not in keep:
                old.unlink()


# -- narrow ----------------------------------------------------------------------------------------


def narrow(bundle: dict[str, Any], wanted: str, wait: float) -> None:
    """Announce only the part of the current passive range that stays forwarded."""
    p = bundle["proftpd"]
    conf = Path(p["conf"])
    if master_pid(p["pid_file"]) is None or not conf.exists():
        say("nothing runs yet: nothing to narrow")
        return
    text = conf.read_text()
    match = re.search(r"^PassivePorts\s+(\d+)\s+(\d+)$", text, re.MULTILINE)
    if not match:
        raise ApplyFailed("the running proftpd.conf has no PassivePorts line")
    first, last = int(match.group(1)), int(match.group(2))
    new_first, new_last = (int(x) for x in wanted.split("-"))
    low, high = max(first, new_first), min(last, new_last)
    if (low, high) == (first, last):
        say(f"passive range {first}-{last} stays forwarded: nothing to narrow")
        return
    if low > high:
        raise ApplyFailed(
            f"the new passive range {wanted} does not overlap the current {first}-{last}, so "
            "every PASV reply would name a closed port during the change; deploy a range that "
            f"covers both ({min(first, new_first)}-{max(last, new_last)}) first, then narrow it"
        )
    clients = (high - low + 1) // 2
    text = text[: match.start()] + f"PassivePorts          {low} {high}" + text[match.end() :]
    text = re.sub(
        r"^(MaxClients\s+)(\d+)",
        lambda m: m.group(1) + str(min(int(m.group(2)), clients)),
        text,
        flags=re.MULTILINE,
    )
    staged = stage(conf, text, conf.stat().st_mode & 0o7777)
    try:
        configtest(staged.new)
    except ApplyFailed:
        staged.new.unlink(missing_ok=True)
        raise
    reloaded_at = uptime()
    os.replace(staged.new, conf)
    reload_proftpd(p["pid_file"], p["port"], p["log"])
    say(f"passive range narrowed to {low}-{high} for the change")
    end_wider_sessions(p["pid_file"], reloaded_at, wait)


def end_wider_sessions(pid_file: str, since: float, wait: float) -> None:
    """Sessions started before the narrowing keep the wider range and may announce a port about
    to close: end each once it is idle (a running transfer first finishes with its 226), giving
    a young one a moment to end by itself (a login that quits at once)."""
    deadline, ended = time.monotonic() + wait, 0
    while True:
        old = [s for s in sessions(pid_file) if s[3] < since]
        now = uptime()
        for pid, _, state, start in old:
            if state.startswith("IDLE") and now - start >= NARROW_GRACE_SECONDS:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
                    ended += 1
        busy = [s for s in old if not s[2].startswith("IDLE") or now - s[3] < NARROW_GRACE_SECONDS]
        if not busy or time.monotonic() > deadline:
            say(f"ended {ended} idle session(s) of the wider range; {len(busy)} still transferring")
            return
        time.sleep(0.2)


# -- by hand ---------------------------------------------------------------------------------------


def unban(address: str) -> None:
    """Lift mod_ban's ban of an address (ftpdctl exits 0 even when it refuses: read its words)."""
    out = run("ftpdctl", "-s", CONTROLS_SOCKET, "permit", "host", address).stdout
    if "permitted" not in out and "unnecessary" not in out:
        raise ApplyFailed(f"ftpdctl did not lift the ban: {out.strip()}")
    say(f"{address} may connect again")


def by_hand(command: str, argv: list[str]) -> None:
    """What an administrator runs (as root, or through `az vm run-command invoke`)."""
    record = json.loads(Path(APPLIED).read_text())
    p = record["proftpd"]
    if command == "reload":
        reload_proftpd(p["pid_file"], p["port"], p["log"])
    elif command == "drain":
        health(record, on=False)
        if not systemd():  # the health unit's own stop waits for the probe on a real VM
            time.sleep(float(argv[2]) if len(argv) > 2 else DRAIN_SECONDS)
        settle(p["pid_file"])
    elif command == "undrain":
        health(record, on=True)
    elif command == "settle":
        settle(p["pid_file"])
    elif command == "unban":
        unban(argv[2])
    elif command == "status":
        print(json.dumps({"generation": record["generation"], "sessions": sessions(p["pid_file"])}))
    else:
        raise ApplyFailed(f"unknown command {command!r}")


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "apply"
    try:
        if command == "apply":
            apply(decode_bundle(os.environ["FTPSTACK_CONFIG"]))
        elif command == "narrow":
            bundle = decode_bundle(os.environ["FTPSTACK_CONFIG"])
            narrow(bundle, os.environ["FTPSTACK_PASSIVE"], bundle["narrow_wait_seconds"])
        else:
            by_hand(command, argv)
    except ApplyFailed as error:
        print(f"ftpstack: FAILED: {error}", file=sys.stderr, flush=True)
        return 1
    except (KeyError, OSError) as error:
        print(f"ftpstack: FAILED: {error!r}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
