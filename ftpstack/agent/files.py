"""Files on the VM: staged beside their targets, flushed, swapped in with atomic renames."""

from __future__ import annotations

import os
import pwd
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
