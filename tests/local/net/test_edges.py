"""L3: day two at the edges, through the local Azure model — the passive range widened and
narrowed with two and then three servers behind the load balancer, two servers becoming three, a
failed apply retried, and five thousand users.

Every change runs under load (a login every 200 ms, a download across it, a client opening a
data connection to every passive port it is told): no login fails, no transfer breaks, no port is
announced that the network does not forward to the server that announced it. The model applies a
change as `pulumi up` does: each instance's narrowing step, then the network's new rules (the
NSG, and the load balancer's NAT rules in one write), then each configuration step.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from ftpstack import paths
from ftpstack.local.net.azure import LocalAzure
from ftpstack.local.net.steps import DeployFailed
from ftpstack.offline.plan import Plan, Secret
from tests.support import PASSWORD, USER, applied, needs_root, plan, thousands_plan

pytestmark = pytest.mark.l3

SCALE = 1 / 30
ALICE = {"name": USER, "password": PASSWORD}
HA = {"users": Secret([ALICE]), "tls": "allowed", "zones": [1, 2, 3], "maxClients": 30}


def ha(**change: Any) -> Plan:
    return plan("prod", **{**HA, **change})


def slices(az: LocalAzure) -> list[tuple[int, int]]:
    """The PassivePorts each instance serves now."""
    found = []
    for vm in az.vms:
        text = vm.path(paths.PROFTPD_CONF).read_text()
        match = re.search(r"^PassivePorts\s+(\d+) (\d+)$", text, re.MULTILINE)
        assert match, "every instance announces a range"
        found.append((int(match.group(1)), int(match.group(2))))
    return found


@pytest.fixture(scope="module")
def az() -> Iterator[LocalAzure]:
    needs_root()
    with LocalAzure(ha(instances=2), time_scale=SCALE) as model:
        model.client_cmd(
            "upload", "--name", "movie.bin", "--size", str(4 << 20), user=USER, password=PASSWORD
        )
        yield model


# The module's changes, in order: each starts where the previous one left the servers.
CHANGES = [
    ("2 servers: widen 50000-50099 to 50000-50199", {"instances": 2, "passivePortEnd": 50199}),
    ("2 servers: narrow to 50000-50059", {"instances": 2, "passivePortEnd": 50059}),
    ("2 servers become 3", {"instances": 3, "passivePortEnd": 50059}),
    ("3 servers: widen to 50000-50119", {"instances": 3, "passivePortEnd": 50119}),
    ("3 servers: narrow to 50000-50089", {"instances": 3, "passivePortEnd": 50089}),
]


@pytest.mark.parametrize(("title", "change"), CHANGES, ids=[c[0] for c in CHANGES])
def test_a_passive_range_change_under_load_loses_nothing(
    az: LocalAzure, title: str, change: dict[str, Any]
) -> None:
    new = ha(**change)
    wanted = [tuple(int(p) for p in i["passivePorts"].split("-")) for i in new.outputs["instances"]]
    found = applied(az, new)
    assert found["passive"]["announced"], "the PASV loop really asked"
    assert found["logins"]["attempts"] > 0, "the logins really ran"
    assert slices(az) == wanted, title
    # Every server announces only its new slice once the change is done.
    out = az.client_cmd("sessions", "--count", "30", user=USER, password=PASSWORD)
    assert out["failures"] == []
    assert all(any(a <= p <= b for a, b in wanted) for p in out["ports"])
    assert len(
        {next(i for i, (a, b) in enumerate(wanted) if a <= p <= b) for p in out["ports"]}
    ) == len(wanted), "port 21 reaches every server"


def test_a_server_that_keeps_no_port_stepped_aside_and_came_back(az: LocalAzure) -> None:
    """In the changes above some server kept no port of its slice: it left the rotation (the
    probe said so) and came back once configured."""
    downs = [e for e in az.probe_events if not e["up"]]
    assert downs, "a server left the load balancer's rotation during a change"
    assert all(az.healthy.get(i) for i in range(len(az.vms))), "all are back"


def test_a_failed_apply_is_retried_with_apply_retry_once_the_cause_is_fixed(
    az: LocalAzure,
) -> None:
    """Azure never runs an unchanged Run Command again, even after it failed: fixing the cause
    and running `pulumi up` again changes nothing until applyRetry changes."""
    carl = {"name": "carl", "password": "carl-password-33"}
    base = {"instances": 3, "passivePortEnd": 50089}
    new = ha(users=Secret([ALICE, carl]), **base)
    # The cause, on instance 0: something stands where the agent writes the users file.
    blocker = f"{paths.USERS_FILE}.ftpstack-new"
    assert az.vms[0].exec("mkdir", blocker).returncode == 0
    with pytest.raises(DeployFailed, match="ftp-vm-configure"):
        az.apply(new)
    assert az.vms[0].exec("rmdir", blocker).returncode == 0  # the operator fixes it
    again = az.apply(new)
    # Only the steps that never ran (the failure stopped the ones after it) run now; instance
    # 0's configuration step, unchanged since it failed, is left alone: carl is not there.
    assert len(again) == 2 and "carl:" not in users_file(az, 0)
    assert all("carl:" in users_file(az, i) for i in (1, 2))
    retried = az.apply(ha(users=Secret([ALICE, carl]), applyRetry=1, **base))
    assert len(retried) == 6, "every step runs again: narrowing and configuration"
    assert all("carl:" in users_file(az, i) for i in range(3))
    assert all(
        az.client_cmd("try-login", user="carl", password="carl-password-33")["ok"] for _ in range(6)
    ), "carl logs in, whichever server the load balancer picks"


def users_file(az: LocalAzure, index: int) -> str:
    return az.vms[index].path(paths.USERS_FILE).read_text()


def test_five_thousand_users_apply_and_log_in() -> None:
    needs_root()
    many = thousands_plan(5000)
    with LocalAzure(many, time_scale=SCALE) as model:
        configured = [r for r in model.deployed if "applied" in r.stdout]
        assert len(configured) == 2
        for name in ("p00000", "p02500", "p04999"):
            user = name.ljust(32, "x")
            number = int(name[1:])
            reply = model.client_cmd(
                "try-login", "--tls", user=user, password=f"partner-password-{number:06d}"
            )
            assert reply["ok"], (user, reply)
        wrong = model.client_cmd(
            "try-login", "--tls", user="p04999".ljust(32, "x"), password="nope-nope-nope"
        )
        assert not wrong["ok"]


def test_negative_control_the_nat_rules_moved_before_the_narrowing_break_sessions() -> None:
    """The order is what protects: with the network's new rules first (the NAT rules of the
    first version depended only on the load balancer), the server whose slice moves still
    announces its old ports, now forwarded to the other server, and its sessions' data
    connections are refused."""
    needs_root()
    with LocalAzure(ha(instances=2), time_scale=SCALE) as model:
        widened = ha(instances=2, passivePortEnd=50199)
        model.publish(widened)  # the NAT rules first ...
        out = model.client_cmd("sessions", "--count", "20", user=USER, password=PASSWORD)
        broken = [p for p in out["ports"] if 50050 <= p <= 50099]
        assert broken and len(out["failures"]) >= len(broken), out
        model.narrow(widened)  # ... then the rest, which mends it
        model.configure(widened)
        assert (
            model.client_cmd("sessions", "--count", "10", user=USER, password=PASSWORD)["failures"]
            == []
        )
