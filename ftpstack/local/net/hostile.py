"""Hostile clients for the local stand-ins, run by `python -m ftpstack.local.net.client`: what an
attacker does to lock customers out without ever logging in (its `idle-flood` command), and an
upload cut mid-way (its session's `stor-cut` and `stor-vanish` actions)."""

from __future__ import annotations

import argparse
import ftplib
import selectors
import socket
import struct
import time
from pathlib import Path
from typing import Any

# SO_LINGER on with a zero timeout: close() resets the connection instead of ending it cleanly.
RESET = struct.pack("ii", 1, 0)


def cut_upload(ftp: ftplib.FTP, name: str, size: int, vanish: bool = False) -> str:
    """STOR `name`, `size` bytes sent, then the data connection reset: an upload that did not
    finish (a clean close would be the end of the file, a whole upload in FTP's stream mode).
    `vanish`: the control connection is reset too, as when the client dies; else the server's
    reply to the cut upload."""
    ftp.voidcmd("TYPE I")
    data = ftp.transfercmd(f"STOR {name}")
    data.sendall(b"x" * size)
    time.sleep(0.5)  # the server reads and writes what it got
    data.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET)
    data.close()
    if vanish:
        assert ftp.sock is not None
        ftp.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET)
        ftp.close()
        return "(the client vanished)"
    try:
        return ftp.voidresp()
    except ftplib.Error as error:
        return str(error)


def _words(data: bytes) -> str:
    """The start of what the server said on a connection: the reply code and its text."""
    return data.decode(errors="replace").splitlines()[0][:60] if data.strip() else "(nothing)"


class IdleFlood:
    """Connections from several sources that never send a word; each one the server ends is
    opened again after `reopen_delay` seconds (0: at once)."""

    def __init__(self, host: str, port: int, sources: list[str], per_source: int) -> None:
        self.host, self.port = host, port
        self.selector = selectors.DefaultSelector()
        self.said: dict[str, int] = {}
        self.counts = {"opened": 0, "ended": 0, "held": 0, "held_max": 0}
        self.greeted: set[socket.socket] = set()
        self.spoke: set[socket.socket] = set()  # connections the server said something on
        self.reopen: list[tuple[float, int, str]] = []  # (when, slot, source)
        self.slots = [source for source in sources for _ in range(per_source)]
        self.unanswered = set(range(len(self.slots)))  # slots the server never answered yet
        for slot, source in enumerate(self.slots):
            self.open(slot, source)

    def open(self, slot: int, source: str) -> None:
        sock = socket.socket()
        sock.setblocking(False)
        sock.bind((source, 0))
        sock.connect_ex((self.host, self.port))
        self.selector.register(sock, selectors.EVENT_READ, (slot, source))
        self.counts["opened"] += 1

    def end(self, sock: socket.socket, slot: int, source: str, reopen_delay: float) -> None:
        self.selector.unregister(sock)
        sock.close()
        self.spoke.discard(sock)
        if sock in self.greeted:
            self.greeted.discard(sock)
            self.counts["held"] -= 1
        self.counts["ended"] += 1
        self.reopen.append((time.monotonic() + reopen_delay, slot, source))

    def step(self, reopen_delay: float) -> None:
        """Reopen what is due, then read what the server says for at most 0.1 s."""
        now = time.monotonic()
        for due in [r for r in self.reopen if r[0] <= now]:
            self.reopen.remove(due)
            self.open(due[1], due[2])
        wait = min((r[0] for r in self.reopen), default=now + 0.1) - now
        for key, _ in self.selector.select(timeout=max(0.0, min(wait, 0.1))):
            sock, (slot, source) = key.fileobj, key.data
            assert isinstance(sock, socket.socket)
            try:
                data = sock.recv(4096)
                words = _words(data) if data else "(closed)"
            except OSError as error:
                data, words = b"", type(error).__name__
            if data or sock not in self.spoke:  # a close counts only when nothing was said
                self.said[words] = self.said.get(words, 0) + 1
                self.spoke.add(sock)
            self.unanswered.discard(slot)
            if data.startswith(b"220") and sock not in self.greeted:
                self.greeted.add(sock)
                self.counts["held"] += 1
                self.counts["held_max"] = max(self.counts["held_max"], self.counts["held"])
            if not data:
                self.end(sock, slot, source, reopen_delay)

    def close(self) -> dict[str, Any]:
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        return {**self.counts, "said": self.said}


def idle_flood(args: argparse.Namespace) -> dict[str, Any]:
    """Every one of --sources holds --per-source connections and never sends a word; a
    connection the server ends is opened again (after --reopen-delay s), until --stop-file
    exists. Prints "ready" once the server answered every slot (or after --timeout s). Counted:
    what the server said (its greeting, a refusal, a ban, a timeout), how often, the
    connections it ended, and the most greeted connections held at once."""
    sources = [s for s in args.sources.split(",") if s]
    flood = IdleFlood(args.host, args.port, sources, args.per_source)
    stop, ready_by, ready = Path(args.stop_file), time.monotonic() + args.timeout, False
    try:
        while not stop.exists():
            flood.step(args.reopen_delay)
            if not ready and (not flood.unanswered or time.monotonic() > ready_by):
                print("ready", flush=True)
                ready = True
    finally:
        result = flood.close()
    return result
