"""Files on the VM: staged beside their targets, flushed, swapped in with atomic renames."""

from __future__ import annotations

import contextlib
import functools
import grp
import os
import pwd
import shutil
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftpstack.agent.base import ApplyFailed, run, say, systemd

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
    # Whatever stands at the staging name goes (unlink never follows a link), and the file is
    # made anew: a link planted there is never written through.
    with contextlib.suppress(FileNotFoundError):
        os.unlink(new)
    fd = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
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
    """Each directory of the configuration: a real directory (never a link followed: what
    another host or user put in its place is refused), with its owner and mode. Where root is
    squashed (the shared share), a user's directory is made and kept by the user's own uid,
    which is all the share lets root do anyway."""
    squashed = bool(bundle.get("squashed"))
    for entry in bundle["dirs"]:
        path = Path(entry["path"])
        owner = tuple(int(x) for x in entry["owner"].split(":")) if entry.get("owner") else None
        mode = int(entry["mode"], 8) if entry.get("mode") else None
        if squashed and owner is not None and owner[0] != 0:
            as_user(owner[0], owner[1], functools.partial(ensure_dir, path, None, mode))
        else:
            ensure_dir(path, owner, mode)


def ensure_dir(path: Path, owner: tuple[int, ...] | None, mode: int | None) -> None:
    """`path` a directory of `owner` and `mode` (None: as it is), set through a descriptor
    opened without following links; a link or a file in its place is refused."""
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        os.mkdir(path, 0o700)
        found = os.lstat(path)
    if not stat.S_ISDIR(found.st_mode):
        what = "a symbolic link" if stat.S_ISLNK(found.st_mode) else "not a directory"
        raise ApplyFailed(f"{path} is {what}: refusing to follow it or write through it")
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        current = os.fstat(fd)
        if owner is not None and (current.st_uid, current.st_gid) != owner:
            os.fchown(fd, owner[0], owner[1])
        if mode is not None and stat.S_IMODE(current.st_mode) != mode:
            os.fchmod(fd, mode)
    finally:
        os.close(fd)


def as_user(uid: int, gid: int, action: Callable[[], None]) -> None:
    """`action` in a child process that is `uid`:`gid` and nothing more (no other groups)."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(reader)
        code, said = 0, b""
        try:
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            action()
        except (ApplyFailed, OSError) as error:
            code, said = 1, str(error).encode()
        finally:
            os.write(writer, said)
            os._exit(code)
    os.close(writer)
    with os.fdopen(reader, "rb") as pipe:
        told = pipe.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise ApplyFailed(told or f"a step as uid {uid} failed")


def harden_mount(storage: str | None, options: list[str]) -> None:
    """The FTP tree's mount with `options` (nosuid, nodev, noexec): now, by remounting it (its
    per-mount flags only), and at every boot, in its fstab line (where systemd runs it)."""
    if not storage or not options or not os.path.ismount(storage):
        return
    if not set(options) <= mount_flags(storage):
        run("mount", "-o", ",".join(["remount", "bind", *options]), storage)
        say(f"{storage} remounted {','.join(options)}")
    if systemd():
        fstab = Path("/etc/fstab")
        lines = fstab.read_text().splitlines(keepends=True)
        changed = False
        for index, line in enumerate(lines):
            fields = line.split()
            if len(fields) >= 4 and not line.lstrip().startswith("#") and fields[1] == storage:
                have = fields[3].split(",")
                missing = [o for o in options if o not in have]
                if missing:
                    fields[3] = ",".join([*have, *missing])
                    lines[index] = " ".join(fields) + "\n"
                    changed = True
        if changed:
            write_atomically(fstab, "".join(lines), 0o644)


def mount_flags(mountpoint: str) -> set[str]:
    """The per-mount options of a mount point (mountinfo's sixth field)."""
    found: set[str] = set()
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if len(fields) > 5 and fields[4] == mountpoint:
            found = set(fields[5].split(","))  # the last mount there is what is seen
    return found


# Like logrotate's `create 640 root adm` (ftpstack.system.logrotate_conf): root writes, the adm
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
