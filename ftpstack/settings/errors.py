"""How a refused setting is told: one line naming the key, the value, the problem and the fix.

`refuse()` builds that line inside a validator; `explain()` turns pydantic's own first error into
the same shape. A value that is, or sits under, a secret never appears in the line.
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticCustomError

NAMESPACE = "ftpstack"
SHOWN_SECRET = "[secret]"
# A PEM block is named, not shown: it is long, and a key may hide in what looks like a cert.
SHOWN_PEM = "[PEM]"


class SettingsError(ValueError):
    """A stack config value that cannot be deployed; str() is the one line shown to people."""


def shown(value: Any) -> str:
    """A value as the error line shows it: repr, except the mask itself."""
    return value if value in (SHOWN_SECRET, SHOWN_PEM) else repr(value)


def refuse(key: str, value: Any, problem: str, fix: str) -> PydanticCustomError:
    """The one error shape: the key, the value, what goes wrong, what to do."""
    return PydanticCustomError(
        NAMESPACE, "{line}", {"line": f"{NAMESPACE}:{key} = {shown(value)}: {problem}; {fix}"}
    )


def key_path(loc: tuple[int | str, ...]) -> str:
    """('users', 0, 'password') -> 'users[0].password', as `pulumi config set --path` spells it."""
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key


def value_at(raw: Any, loc: tuple[int | str, ...]) -> Any:
    value: Any = raw
    for part in loc:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def explain(
    error: ValidationError,
    raw: dict[str, Any],
    known_keys: list[str],
    is_secret: Any = lambda loc: False,
) -> str:
    """One line for people from pydantic's first error: key, value, problem, fix.

    `is_secret(loc)` tells whether the value at a location is (or sits under) a secret; such a
    value is shown as [secret], never as text."""
    first = error.errors()[0]
    loc = tuple(first["loc"])
    if first["type"] == NAMESPACE:
        return str(first["msg"])
    if loc and loc[-1] == "[key]":  # a mapping's key was refused (a tag name)
        key = f"{NAMESPACE}:{key_path(loc[:-2])}"
        return f"{key} has a key {loc[-2]!r}: {first['msg']}"
    key = f"{NAMESPACE}:{key_path(loc)}"
    if first["type"] == "extra_forbidden":
        close = difflib.get_close_matches(str(loc[-1]), known_keys, n=1)
        hint = f"did you mean {close[0]}?" if close else "see Pulumi.yaml for the known keys"
        return f"{key} is not a setting of ftpstack; {hint}"
    if first["type"] == "missing":
        return f"{key} is not set; set it with `pulumi config set {key_path(loc)} <value>`"
    value = SHOWN_SECRET if is_secret(loc) else value_at(raw, loc)
    return f"{key} = {shown(value)}: {first['msg']}"
