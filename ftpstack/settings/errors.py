"""How a refused setting is told: one line naming the key, the value, the problem and the fix.

`refuse()` builds that line inside a validator; `explain()` turns pydantic's own first error into
the same shape. A value that is, or sits under, a secret never appears in the line.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ValidationError
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


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice a misspelt or miscased word most likely meant (TLS -> tls, redOnly ->
    readOnly, Require -> required), or None."""
    by_lower = {choice.lower(): choice for choice in choices}
    found = difflib.get_close_matches(word.lower(), list(by_lower), n=1)
    return by_lower[found[0]] if found else None


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model an annotation holds (FtpUser in list[FtpUser]), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _field_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> tuple[Any, list[str]]:
    """(the annotation of the field at `loc`, the keys known beside it) in `model`; the
    annotation is None where `loc` leads nowhere."""
    for index, part in enumerate(loc):
        if isinstance(part, int):
            continue
        fields = {f.alias or name: f for name, f in model.model_fields.items()}
        field = fields.get(str(part)) or model.model_fields.get(str(part))
        if index == len(loc) - 1 or field is None:
            return (field.annotation if field else None), list(fields)
        inner = _model_in(field.annotation)
        if inner is None:
            return None, []
        model = inner
    return None, [f.alias or name for name, f in model.model_fields.items()]


def _choices(annotation: Any) -> tuple[str, ...]:
    """The values a Literal field takes (also inside Annotated), or ()."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _choices(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) is typing.Literal:
        return tuple(str(a) for a in typing.get_args(annotation))
    return ()


def _set_command(loc: tuple[int | str, ...]) -> str:
    path = key_path(loc)
    secret = "--secret " if "password" in loc else ""
    if len(loc) > 1:
        return f"pulumi config set {secret}--path '{path}' <value>"
    return f"pulumi config set {secret}{path} <value>"


def explain(
    error: ValidationError,
    raw: dict[str, Any],
    model: type[BaseModel],
    is_secret: Any = lambda loc: False,
) -> str:
    """One line for people from pydantic's first error: key, value, problem, fix.

    `model` is the validated model (for "did you mean" among its keys and a field's choices).
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
    annotation, known = _field_at(model, loc)
    if first["type"] == "extra_forbidden":
        where = "a setting of ftpstack" if len(loc) == 1 else f"a key of {key_path(loc[:-1])}"
        close = closest(str(loc[-1]), known)
        if close:
            hint = f"did you mean {close}?"
        elif len(loc) == 1:
            hint = "see Pulumi.yaml for the known keys"
        else:
            hint = f"the keys are {', '.join(known)}"
        return f"{key} is not {where}; {hint}"
    if first["type"] == "missing":
        return f"{key} is not set; set it with `{_set_command(loc)}`"
    value = SHOWN_SECRET if is_secret(loc) else value_at(raw, loc)
    choices = _choices(annotation)
    if first["type"] == "literal_error" and choices:
        listed = f"{', '.join(choices[:-1])} or {choices[-1]}"
        close = closest(str(value), choices) if value != SHOWN_SECRET else None
        hint = f"; did you mean {close}?" if close else ""
        return f"{key} = {shown(value)}: is not one of {listed}{hint}"
    return f"{key} = {shown(value)}: {first['msg']}"
