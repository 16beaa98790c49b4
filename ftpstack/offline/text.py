"""Text for people, shared by `make plan` and `make diff`: lines kept within a width, lists that
say how many items they leave out, runs of names, and long values shown around what differs.

What is left out is always counted ("+3 more", "(100)"), never dropped silently: the complete
text is one flag away (`make plan-full`, `--json`).
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Sequence
from typing import Any

# The widest line a summary prints: a terminal, a pull request's code block.
WIDTH = 110
ELLIPSIS = "…"
# Characters of common context kept on each side of what differs.
CONTEXT = 12
# Where a value reads well when cut: path and list separators.
_SEPARATORS = "/.,: "


def wrap(text: str, first: str = "", rest: str = "  ", width: int = WIDTH) -> list[str]:
    """`text` as lines of at most `width` characters (a longer word stays whole)."""
    return textwrap.wrap(
        text,
        width,
        initial_indent=first,
        subsequent_indent=rest,
        break_long_words=False,
        break_on_hyphens=False,
    ) or [first.rstrip()]


def fit(items: Sequence[str], budget: int, sep: str = ", ") -> str:
    """As many of `items` as fit in `budget` characters (at least one), then "+N more"."""
    for shown in range(len(items), 0, -1):
        hidden = len(items) - shown
        text = sep.join(items[:shown]) + (f" +{hidden} more" if hidden else "")
        if len(text) <= budget or shown == 1:
            return text
    return ""


def pack(items: Sequence[str], indent: str = "  ", sep: str = "; ") -> list[str]:
    """Whole items side by side, each on the first line with room for it (within the width)."""
    out: list[str] = []
    for item in items:
        at = next((i for i, line in enumerate(out) if len(line + sep + item) <= WIDTH), None)
        if at is None:
            out.append(indent + item)
        else:
            out[at] += sep + item
    return out


def natural(key: str) -> tuple[Any, ...]:
    """Sort key that orders "passive-9" before "passive-10"."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", key))


def run(names: Sequence[str], budget: int = WIDTH) -> str:
    """A run of names: all of them when they fit, else "first … last (count)"."""
    listed = ", ".join(names)
    if len(names) <= 3 and len(listed) <= budget:
        return listed
    return f"{names[0]} {ELLIPSIS} {names[-1]} ({len(names)})"


def middle(text: str, width: int) -> str:
    """`text` with its middle elided to at most `width` characters (more of its end kept: where
    ids and paths name things)."""
    if len(text) <= width:
        return text
    head = (width - 1) // 3
    return text[:head] + ELLIPSIS + text[len(text) - (width - 1 - head) :]


def _start(text: str, first_difference: int) -> int:
    """Where to begin showing `text`: some context before its first difference, from a
    separator when there is one."""
    start = max(0, first_difference - CONTEXT)
    window = text[start:first_difference]
    cut = max((window.rfind(c) for c in _SEPARATORS), default=-1)
    return start + cut if cut > 0 else start


def around(old: str, new: str, width: int = 40) -> tuple[str, str]:
    """Two different texts shown around where they differ: what both start and end with is
    elided (…), each side at most about `width` characters. The sides never read the same."""
    if len(old) <= width and len(new) <= width:
        return old, new
    limit = min(len(old), len(new))
    first = next((i for i in range(limit) if old[i] != new[i]), limit)
    same_end = 0
    while same_end < limit - first and old[-1 - same_end] == new[-1 - same_end]:
        same_end += 1
    start = _start(old, first)

    def side(text: str) -> str:
        end = len(text) - same_end
        tail = text[end:]
        kept = tail if len(tail) <= CONTEXT else tail[:CONTEXT] + ELLIPSIS
        body = text[start:end]
        if len(body) + len(kept) > width:
            body, kept = body[: max(width - 1, first - start + 1)], ELLIPSIS
        return (ELLIPSIS if start else "") + body + kept

    shown = side(old), side(new)
    return shown if shown[0] != shown[1] else (old, new)


def value(data: Any) -> str:
    """A value as JSON (strings unescaped where JSON allows it)."""
    return json.dumps(data, sort_keys=True, ensure_ascii=False)


def values(old: Any, new: Any, width: int = 40) -> tuple[str, str]:
    """Two values of a change as text, around what differs (strings keep their quotes)."""
    if isinstance(old, str) and isinstance(new, str):
        a, b = around(old, new, width)
        return f'"{a}"', f'"{b}"'
    return around(value(old), value(new), width)
