"""One file of a VM's live configuration: its path, content, mode, and whether it is secret."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VmFile:
    """One file of the live configuration."""

    path: str
    content: str
    mode: str = "0644"
    secret: bool = False  # holds a password hash or a private key
