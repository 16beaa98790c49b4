"""L1: thousands of users — the configuration reaches every server through its Run Command's
environment, within what Linux starts a program with (one string at most 128 KiB, all together
at most 2 MiB: execve(2)), and what would not fit is refused before anything is deployed."""

from __future__ import annotations

import pytest

from ftpstack import live
from ftpstack.offline import declared as d
from ftpstack.offline.plan import Plan, Resource
from ftpstack.settings import SettingsError
from ftpstack.settings.coherence import MAX_USERS
from tests.support import many_users, settings, thousands_plan

MAX_ARG_STRLEN = 131_072  # one environment string, "NAME=value" and its NUL (execve(2))


def run_command_environment(step: Resource) -> dict[str, str]:
    found = {p["name"]: p["value"] for p in step.raw_inputs.get("parameters", [])}
    found |= {p["name"]: p["value"] for p in step.raw_inputs.get("protectedParameters") or []}
    return found


@pytest.fixture(scope="module")
def five_thousand() -> Plan:
    return thousands_plan(5000)


def test_five_thousand_users_plan_within_linuxs_limits(five_thousand: Plan) -> None:
    steps = five_thousand.find(d.RUN_COMMAND)
    assert len(steps) == 4
    for step in steps:
        environment = run_command_environment(step)
        longest = max(len(k) + 1 + len(v) + 1 for k, v in environment.items())
        assert longest < MAX_ARG_STRLEN, (step.name, longest)
        assert sum(len(v) for v in environment.values()) < live.BUNDLE_LIMIT
    configure = [s for s in steps if s.name.endswith("-configure")]
    assert int(run_command_environment(configure[0])[live.PARTS_PARAMETER]) >= 6
    (bundle, _) = five_thousand.bundles()
    assert len(bundle["users"]) == 5000


def test_negative_control_one_environment_string_would_have_exceeded_it(
    five_thousand: Plan,
) -> None:
    """Before the bundle travelled in parts, it was one environment string."""
    step = next(s for s in five_thousand.find(d.RUN_COMMAND) if s.name.endswith("-configure"))
    whole = live.joined(run_command_environment(step))
    assert len(live.CONFIG_PARAMETER) + 1 + len(whole) > MAX_ARG_STRLEN


def test_more_users_than_fit_are_refused_with_the_number() -> None:
    with pytest.raises(SettingsError) as refused:
        settings(users=many_users(MAX_USERS + 1))
    assert f"{MAX_USERS + 1} users" in str(refused.value)
    assert f"at most {MAX_USERS:,} users" in str(refused.value)
    assert len(settings(users=many_users(MAX_USERS)).users) == MAX_USERS
