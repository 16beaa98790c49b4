"""The two phases a configuration run performs: apply a bundle, narrow the passive range."""

from __future__ import annotations

import base64
import json
import os
import pwd
import re
import shutil
import time
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ftpstack import paths
from ftpstack.agent import sshd
from ftpstack.agent.base import ApplyFailed, run, say, systemd
from ftpstack.agent.files import (
    STAGED,
    changed_files,
    ensure_dirs,
    harden_mount,
    remove_legacy,
    secure_logs,
    stage,
    write_atomically,
)
from ftpstack.agent.proftpd import (
    configtest,
    end_sessions,
    end_wider_sessions,
    health,
    master_pid,
    reload_proftpd,
    start_proftpd,
    uptime,
)

# The bundle's format (ftpstack.live writes it): an agent refuses a version it does not know.
BUNDLE_VERSION = 1
# The bundle arrives in parts, each an environment variable of the script (Linux refuses to
# start a program with any one environment string over 128 KiB: MAX_ARG_STRLEN in execve(2)).
CONFIG_PARAMETER = "FTPSTACK_CONFIG"
PARTS_PARAMETER = "FTPSTACK_CONFIG_PARTS"


def bundle_text(environment: Mapping[str, str]) -> str:
    """The encoded bundle from its parts (`FTPSTACK_CONFIG_0` ...), in order."""
    try:
        count = int(environment[PARTS_PARAMETER])
        return "".join(environment[f"{CONFIG_PARAMETER}_{i}"] for i in range(count))
    except (KeyError, ValueError) as missing:
        raise ApplyFailed(f"the configuration did not arrive whole ({missing!r} missing)") from None


def decode_bundle(text: str) -> dict[str, Any]:
    bundle: dict[str, Any] = json.loads(zlib.decompress(base64.b64decode(text)))
    if bundle.get("version") != BUNDLE_VERSION:
        raise ApplyFailed(f"bundle version {bundle.get('version')} is not understood here")
    return bundle


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


def apply(bundle: dict[str, Any]) -> None:
    p = bundle["proftpd"]
    wait_for_bootstrap(bundle["markers"]["bootstrap"], bundle["bootstrap_wait_seconds"])
    storage = bundle.get("storage")
    if storage and not os.path.ismount(storage):
        raise ApplyFailed(
            f"{storage} is not mounted (the data disk or the shared NFS share): proftpd never "
            "serves, or takes uploads into, the OS disk's empty tree; see cloud-init's log"
        )
    harden_mount(storage, bundle.get("mount_options") or [])
    applied_path = Path(bundle["markers"]["applied"])
    previous = json.loads(applied_path.read_text()) if applied_path.exists() else {}
    ensure_dirs(bundle)
    remove_legacy(bundle.get("legacy") or [])
    secure_logs(Path(paths.LOG_DIR), paths.LOGS)
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
    enable_timers(
        bundle.get("timers") or [],
        changed=any(e["path"].endswith((".service", ".timer")) for e in changes),
    )
    write_admin_key(bundle.get("admin"))
    removed = set(previous.get("users", [])) - set(bundle["users"])
    if removed:
        say(f"ended {end_sessions(p['pid_file'], removed)} session(s) of removed user(s)")
    sshd.move(bundle.get("sshd"), leaving_sftp_port=True)  # before proftpd takes 22
    if master_pid(p["pid_file"]) is None:
        start_proftpd(p["conf"], p["pid_file"], p["port"], bundle["markers"]["configured"])
        say("proftpd started")
    elif conf_changed:
        reload_proftpd(p["pid_file"], p["port"], p["log"])
        say("proftpd reloaded its configuration")
    sshd.move(bundle.get("sshd"), leaving_sftp_port=False)  # once proftpd gave 22 up
    health(bundle, on=True)
    prune(bundle)
    record = {k: bundle.get(k) for k in ("generation", "users", "proftpd", "health", "storage")}
    write_atomically(applied_path, json.dumps(record) + "\n", 0o600)
    say(f"generation {bundle['generation']} applied ({len(changes)} file(s) changed)")


def enable_timers(timers: list[str], changed: bool) -> None:
    """The configuration's systemd timers, enabled and started (a machine without systemd, the
    local stand-in, has none to run)."""
    if not systemd() or not timers:
        return
    if changed:
        run("systemctl", "daemon-reload")
    run("systemctl", "enable", "--now", *timers)


def rejoin(record: dict[str, Any]) -> None:
    """The rejoin timer's run: while the FTP tree's storage is not mounted (so proftpd, which
    requires it, is down), try the mount; once it holds, start proftpd (the load balancer's
    probe then takes the server back). With the storage mounted it does nothing: proftpd's own
    unit restarts a crashed server, and one stopped on purpose stays stopped."""
    storage = record.get("storage")
    if not systemd() or not storage or os.path.ismount(storage):
        return
    # systemd's own mount unit, so that a mount it is already making (a slow boot) is joined,
    # never raced by a second mount.
    unit = run("systemd-escape", "--path", "--suffix=mount", storage).stdout.strip()
    run("timeout", "90", "systemctl", "start", unit, check=False)
    if not os.path.ismount(storage):
        say(f"{storage} is still not mounted: proftpd stays down, trying again later")
        return
    run("systemctl", "start", "proftpd")
    say(f"the storage at {storage} is back: proftpd started, the server rejoins")


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


def narrow(bundle: dict[str, Any], wanted: str, wait: float) -> None:
    """Announce only the part of the current passive range that stays forwarded to this server.
    When none of it stays (its slice moves to other servers), leave the load balancer for the
    change instead: the others serve, and the configuration step brings this one back."""
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
        step_aside(bundle, f"{first}-{last}", wanted, wait)
        return
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
    end_wider_sessions(p["pid_file"], reloaded_at, wait, p["port"])


def step_aside(bundle: dict[str, Any], current: str, wanted: str, wait: float) -> None:
    """No port of this server's slice stays with it: out of the load balancer's rotation (the
    probe fails, new sessions go to the other servers), then every session ends once it is idle
    (a running transfer first finishes). Without a load balancer nobody else would serve."""
    p = bundle["proftpd"]
    if not bundle.get("health"):
        raise ApplyFailed(
            f"the new passive range {wanted} does not overlap the current {current}, so "
            "every PASV reply would name a closed port during the change; deploy a range that "
            f"covers both first, then narrow it"
        )
    say(f"no port of {current} stays with this server ({wanted}): leaving the load balancer")
    health(bundle, on=False)
    if not systemd():  # the health unit's own stop waits for the probe on a real VM
        time.sleep(float(bundle.get("drain_seconds", 0)))
    end_wider_sessions(p["pid_file"], float("inf"), wait, p["port"])
