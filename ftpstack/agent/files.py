"""Files on the VM: staged beside their targets, flushed, swapped in with atomic renames."""

from __future__ import annotations

import grp
import os
import pwd
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftpstack.agent.base import run, say

STAGED = ".ftpstack-new"


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


# Like logrotate's `create 640 root adm` (ftpstack.render.logrotate_conf): root writes, the adm
# group (Debian's log readers) reads, nobody else.
LOG_MODE = 0o640


def secure_logs(log_dir: Path, names: Iterable[str]) -> None:
    """proftpd's logs root:adm 0640, made before proftpd first opens them (it creates a missing
    log 0644, readable by every account on the VM, the FTP users' names and addresses included)
    and set again on every apply (it never changes the mode of a log that exists). A name that
    is not a regular file (a symlink put there) is left alone, never followed."""
    try:
        adm = grp.getgrnam("adm").gr_gid
    except KeyError:
        adm = 0
    log_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        path = log_dir / name
        try:
            kind = os.lstat(path).st_mode
        except FileNotFoundError:
            kind = stat.S_IFREG  # made below
        if not stat.S_ISREG(kind):
            say(f"{path} is not a regular file ({stat.filemode(kind)}): left alone")
            continue
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
        try:  # O_NOFOLLOW: a symlink put there since the lstat is refused too
            fd = os.open(path, flags, LOG_MODE)
        except OSError as error:
            say(f"{path} left alone: {error.strerror}")
            continue
        try:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                os.fchown(fd, 0, adm)
                os.fchmod(fd, LOG_MODE)
        finally:
            os.close(fd)


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
