"""L0: what is installed is what was tested — the program's dependencies are exact, and the same
everywhere they are named (the program, the policy pack, the consumer example, the lock)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support import ROOT

PIN = re.compile(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;]+)$")


def pins(path: Path) -> dict[str, str]:
    """name -> version of every requirement line; a line that is not `name==version` fails."""
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith(("-r", "-c")):
            continue
        match = PIN.match(line)
        assert match, f"{path.name}: {line!r} is not pinned exactly (name==version)"
        found[re.sub(r"[-_.]+", "-", match.group(1).lower())] = match.group(2)
    return found


def test_every_requirement_is_exact_and_agrees_with_the_lock() -> None:
    lock = pins(ROOT / "constraints.txt")
    for name in ("requirements.txt", "requirements-dev.txt", "policy/requirements.txt",
                 "examples/consumer/requirements.txt"):  # fmt: skip
        for package, version in pins(ROOT / name).items():
            assert lock.get(package) == version, (
                f"{name}: {package}=={version}, lock {lock.get(package)}"
            )
    assert {"pulumi", "pulumi-azure-native", "pulumi-command"} <= set(
        pins(ROOT / "requirements.txt")
    )


def test_negative_control_a_range_is_refused(tmp_path: Path) -> None:
    loose = tmp_path / "requirements.txt"
    loose.write_text("pulumi-azure-native>=3.0,<4\n")
    try:
        pins(loose)
    except AssertionError as refused:
        assert "not pinned exactly" in str(refused)
    else:
        raise AssertionError("a range passed")
