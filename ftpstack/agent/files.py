"""Files on the VM: staged beside their targets, flushed, swapped in with atomic renames."""

from __future__ import annotations

import os
import pwd
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftpstack.agent.base import say

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


def remove_legacy(paths: list[str]) -> None:
    """What an earlier version left where it no longer belongs (the self-signed key on the
    shared storage): removed without following any link inside it (shutil.rmtree works on file
    descriptors here), and never through a link in its place."""
    for path in map(Path, paths):
        if path.is_symlink():
            path.unlink()
            say(f"removed {path}, a link where a directory of an earlier version was")
        elif path.is_dir():
            shutil.rmtree(path)
            say(f"removed {path}, left by an earlier version")
