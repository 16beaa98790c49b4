"""L3: day two — users, passwords, limits, TLS and the passive range change on the running server,
through the Run Command stand-in, with no VM replaced and nothing lost.

During every change a client logs in every 200 ms (no failure allowed), a download runs across
it (it must end with 226 and intact data), and a client keeps asking for passive ports and opens
a data connection to each one at once (none may name a port the network does not forward).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ftpstack import paths
from ftpstack.local.net.azure import LocalAzure
from ftpstack.local.net.client import last_json, start_client
from ftpstack.local.net.steps import DeployFailed, edit_file
from ftpstack.offline.plan import Plan, Secret
from tests.support import (
    OTHER_PASSWORD,
    OTHER_USER,
    PASSWORD,
    USER,
    applied,
    needs_root,
    plan,
)

pytestmark = pytest.mark.l3

SCALE = 1 / 30
ALICE = {"name": USER, "password": PASSWORD}
BOB = {"name": OTHER_USER, "password": OTHER_PASSWORD}
BASE = {
    "users": Secret([ALICE, BOB]),
    "tls": "allowed",
    "passivePortStart": 50000,
    "passivePortEnd": 50039,
    "maxClients": 20,
}


def stack(**change: Any) -> Plan:
    return plan("dev", **{**BASE, **change})


@pytest.fixture(scope="module")
def az() -> Iterator[LocalAzure]:
    needs_root()
    with LocalAzure(stack(), time_scale=SCALE) as model:
        model.client_cmd(
            "upload", "--name", "movie.bin", "--size", str(4 << 20), user=USER, password=PASSWORD
        )
        yield model


def login(az: LocalAzure, user: str, password: str, *extra: str) -> dict[str, Any]:
    return az.client_cmd("try-login", *extra, user=user, password=password)


def test_a_new_user_logs_in_within_seconds_and_no_vm_is_replaced(az: LocalAzure) -> None:
    carl = {"name": "carl", "password": "carl-password-33"}
    new = stack(users=Secret([ALICE, BOB, carl]))
    assert new.user_data == az.plan.user_data, "the plan replaces nothing"
    found = applied(az, new)
    assert found["seconds"] < 10
    assert login(az, "carl", "carl-password-33")["ok"]


def test_a_rotated_password_works_and_the_old_one_is_refused(az: LocalAzure) -> None:
    applied(az, stack(users=Secret([ALICE, {**BOB, "password": "rotated-password-9"}])))
    assert login(az, OTHER_USER, "rotated-password-9")["ok"]
    old = login(az, OTHER_USER, OTHER_PASSWORD)
    assert not old["ok"] and old["reply"].startswith("530")


def test_a_removed_user_is_refused_and_their_session_ended(az: LocalAzure) -> None:
    held = start_client(
        az.client,
        az.public_ip,
        "hold",
        user=OTHER_USER,
        password="rotated-password-9",
        stdin=subprocess.PIPE,
    )
    assert held.stdout is not None and held.stdout.readline().strip() == "ready"
    applied(az, stack(users=Secret([ALICE])))
    out = held.communicate(input="", timeout=60)[0]
    assert last_json(out)["session"].startswith("ended"), out
    assert not login(az, OTHER_USER, "rotated-password-9")["ok"]


def conf(az: LocalAzure) -> str:
    return az.vms[0].path(paths.PROFTPD_CONF).read_text()


def test_limits_change_live(az: LocalAzure) -> None:
    applied(az, stack(users=Secret([{**ALICE, "maxUploadMb": 1}]), maxClients=15))
    assert re.search(r"^\s*MaxClients\s+15 ", conf(az), re.M)
    out = az.client_cmd(
        "session",
        "--do",
        f"stor:big.bin:{2 << 20}",
        "--do",
        "stor:small.bin:10",
        user=USER,
        password=PASSWORD,
    )["results"]
    assert not out[0]["ok"] and "552" in out[0]["reply"] and out[1]["ok"], out


def test_tls_allowed_to_required_refuses_plaintext_from_then_on(az: LocalAzure) -> None:
    # The clients under load speak TLS, which works before and after the change.
    applied(az, stack(users=Secret([ALICE]), tls="required"), tls=True)
    assert not login(az, USER, PASSWORD)["ok"]
    assert login(az, USER, PASSWORD, "--tls")["ok"]
    az.apply(stack(users=Secret([ALICE])))
    assert login(az, USER, PASSWORD)["ok"]


@pytest.mark.parametrize(
    ("first", "last"),
    [(50000, 50079), (50000, 50039), (50020, 50069), (50000, 50039)],
    ids=["grow", "shrink", "shift-overlapping", "back"],
)
def test_the_passive_range_changes_without_announcing_a_closed_port(
    az: LocalAzure, first: int, last: int
) -> None:
    found = applied(az, stack(users=Secret([ALICE]), passivePortStart=first, passivePortEnd=last))
    assert found["passive"]["announced"], "the loop really asked"
    assert re.search(rf"^PassivePorts\s+{first} {last}$", conf(az), re.M)
    out = az.client_cmd("pasv", "--count", "5", user=USER, password=PASSWORD)
    assert all(first <= p <= last for _, p in out["pasv"])


def test_a_range_that_does_not_overlap_is_refused_before_anything_changes(az: LocalAzure) -> None:
    before = conf(az)
    with pytest.raises(DeployFailed, match="does not overlap the current"):
        az.apply(stack(users=Secret([ALICE]), passivePortStart=40000, passivePortEnd=40039))
    assert conf(az) == before


def test_negative_control_a_configuration_proftpd_refuses_changes_nothing(az: LocalAzure) -> None:
    before = conf(az)
    az.bundle_edit = lambda b: edit_file(
        b, paths.PROFTPD_CONF, lambda c: c + "\nPassivePortz 1 2\n"
    )
    try:
        with pytest.raises(DeployFailed, match="proftpd refused the new configuration"):
            az.apply(stack(users=Secret([ALICE]), maxClients=19))
    finally:
        az.bundle_edit = None
    assert conf(az) == before and login(az, USER, PASSWORD)["ok"]


def test_negative_control_without_the_reload_the_range_change_does_not_take_effect() -> None:
    needs_root()
    no_reload: Callable[[str], str] = lambda s: s.replace(  # noqa: E731
        'reload_proftpd(p["pid_file"], p["port"], p["log"])\n        say("proftpd reloaded',
        'say("(no reload)',
    )
    with LocalAzure(stack(), time_scale=SCALE) as model:
        model.script_edit = no_reload
        results = model.apply(stack(passivePortStart=50000, passivePortEnd=50079))
        assert "(no reload)" in results[-1].stdout, "the edited agent ran"
        assert re.search(r"^PassivePorts\s+50000 50079$", conf(model), re.M), "the file changed"
        out = model.client_cmd("pasv", "--count", "20", user=USER, password=PASSWORD)
        # Reloaded, half the announced ports would lie above 50039 (all 20 below: p = 1e-6).
        assert all(p <= 50039 for _, p in out["pasv"]), "the old range is still announced"


def test_the_first_configuration_waits_for_a_late_bootstrap() -> None:
    """On Azure the VM agent (and so the Run Command) is ready before cloud-init has installed
    proftpd: the configuration step waits for the bootstrap, then applies."""
    needs_root()
    with LocalAzure(stack(), time_scale=SCALE, race_bootstrap=3.0) as model:
        assert "waiting for the bootstrap" in model.deployed[-1].stdout
        assert model.client_cmd("try-login", user=USER, password=PASSWORD)["ok"]
