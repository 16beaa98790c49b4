"""L3: several servers behind one address — port 21 balanced over the instances whose probe
passes, each instance announcing and alone receiving its slice of the passive range, the files
shared (one directory bound into every instance stands in for the Azure Files share: this
machine's kernel has no NFS client; L4 mounts a real NFS server).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ftpstack import paths, rules
from ftpstack.local.net import steps
from ftpstack.local.net import topology as net
from ftpstack.local.net.azure import LocalAzure
from ftpstack.local.net.client import last_json, start_client
from ftpstack.offline.plan import Plan, Secret
from tests.support import PASSWORD, USER, needs_root, plan, settings, wait_ready

pytestmark = pytest.mark.l3

SCALE = 1 / 30
HA = {"instances": 2, "zones": [1, 2], "tls": "allowed", "maxClients": 50}


def ha_plan(**overrides: Any) -> Plan:
    return plan("prod", **{**HA, **overrides})


SLICES = [
    range(s.first, s.last + 1)
    for s in rules.passive_slices(settings(exposure="load-balancer", instances=2, maxClients=50))
]


def instance_of(port: int) -> int:
    return next(i for i, ports in enumerate(SLICES) if port in ports)


def model(p: Plan, **kw: Any) -> Iterator[LocalAzure]:
    needs_root()
    with LocalAzure(p, time_scale=SCALE, **kw) as az:
        yield az


@pytest.fixture(scope="module")
def az() -> Iterator[LocalAzure]:
    yield from model(ha_plan())


def spread(az: LocalAzure, count: int = 40) -> dict[str, Any]:
    return az.client_cmd("sessions", "--count", str(count), user=USER, password=PASSWORD)


def test_logins_spread_over_both_instances_each_announcing_only_its_slice(az: LocalAzure) -> None:
    out = spread(az)
    assert out["failures"] == [] and len(out["ports"]) == 40
    served = {instance_of(p) for p in out["ports"]}
    assert served == {0, 1}, "port 21 is balanced over both"


def on_instance(az: LocalAzure, wanted: int, *actions: str) -> list[dict[str, Any]]:
    """Run `actions` in a session that landed on instance `wanted` (the LB decides: retry)."""
    for _ in range(40):
        out = az.client_cmd(
            "session",
            "--do",
            "pasv",
            *[a for x in actions for a in ("--do", x)],
            user=USER,
            password=PASSWORD,
        )["results"]
        if instance_of(out[0]["port"]) == wanted:
            return list(out[1:])
    raise AssertionError(f"no session landed on instance {wanted} in 40 tries")


def test_a_file_uploaded_through_one_instance_is_downloaded_through_the_other(
    az: LocalAzure,
) -> None:
    (stored,) = on_instance(az, 0, "stor:shared.bin:100000")
    assert stored["ok"]
    listing, fetched = on_instance(az, 1, "nlst", "retr:shared.bin")
    assert "shared.bin" in listing["names"] and fetched["ok"]
    assert fetched["sha256"] == __import__("hashlib").sha256(b"x" * 100000).hexdigest()


def test_both_servers_serve_one_tls_identity_from_the_shared_storage(az: LocalAzure) -> None:
    first, second = (vm.path(paths.SELF_SIGNED_CERT).read_bytes() for vm in az.vms)
    assert first and first == second
    fingerprints = {
        subprocess.run(
            ["openssl", "x509", "-noout", "-fingerprint"],
            input=f"{vm.path(paths.SELF_SIGNED_CERT).read_text()}",
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for vm in az.vms
    }
    assert len(fingerprints) == 1


def login_loop(az: LocalAzure, stop: Path) -> subprocess.Popen[str]:
    """A login every 200 ms until `stop` exists, once its first login is done."""
    loop = start_client(
        az.client,
        az.public_ip,
        "login-loop",
        "--interval",
        "0.2",
        "--stop-file",
        str(stop),
        user=USER,
        password=PASSWORD,
    )
    wait_ready(loop)
    return loop


def finished(proc: subprocess.Popen[str], stop: Path) -> dict[str, Any]:
    stop.touch()
    return last_json(proc.communicate(timeout=120)[0])


def through(az: LocalAzure, tmp_path: Path, change: Callable[[], object]) -> dict[str, Any]:
    """The login loop's result across `change`: logins ran before it and after it (however
    slowly they run beside other work: checked by their spans, not counted), one every 0.2 s
    meanwhile (a change quicker than that may fall between two, as one in CI did: 0.18 s)."""
    stop = tmp_path / "stop"
    loop = login_loop(az, stop)
    began = time.time()
    change()
    ended = time.time()
    time.sleep(1.5)  # a login every 0.2 s after the last one: some start after the change
    result = finished(loop, stop)
    spans = result["spans"]
    assert spans[0][0] < began and any(start > ended for start, _ in spans), (began, ended, spans)
    gaps = [later[0] - earlier[1] for earlier, later in itertools.pairwise(spans)]
    assert max(gaps) < 2.0, ("the loop stalled", gaps)
    return result


def test_a_rolling_live_change_fails_no_login(az: LocalAzure, tmp_path: Path) -> None:
    carl = {"name": "carl", "password": "carl-password-33"}
    new = ha_plan(users=Secret([{"name": USER, "password": PASSWORD}, carl]))
    result = through(az, tmp_path, lambda: az.apply(new))
    assert result["failures"] == [], result
    assert az.client_cmd("try-login", user="carl", password="carl-password-33")["ok"]


def test_a_rolling_replacement_fails_no_login(az: LocalAzure, tmp_path: Path) -> None:
    def replace_both() -> None:
        for index in range(2):
            az.replace_instance(index)

    result = through(az, tmp_path, replace_both)
    assert result["failures"] == [], result


def test_negative_control_stopping_without_draining_fails_logins() -> None:
    """Without leaving the probe first, the LB keeps sending new logins to the stopped server
    until its probe fails (probes here at 1/3 of real time: a window of about 3 s)."""
    needs_root()
    with LocalAzure(ha_plan(), time_scale=1 / 3) as az:
        pid = az.vms[0].path(paths.PID_FILE).read_text().split()[0]
        az.vms[0].exec("kill", "-TERM", pid)
        out = spread(az, 10)
        assert out["failures"], "logins hashed to the stopped server failed"
        az.wait_healthy(0, up=False)


def test_when_one_server_dies_the_other_serves_within_the_probe_threshold(az: LocalAzure) -> None:
    (stored,) = on_instance(az, 1, f"stor:long.bin:{4 << 20}")
    assert stored["ok"]
    download = None
    for _ in range(40):  # a long download on the survivor (its first line says which server)
        download = start_client(
            az.client,
            az.public_ip,
            "slow-download",
            *("--name", "long.bin", "--seconds", "5"),
            user=USER,
            password=PASSWORD,
        )
        assert download.stdout is not None
        if instance_of(json.loads(download.stdout.readline())["port"]) == 1:
            break
        download.kill()
        download.wait()
    assert download is not None
    pid = az.vms[0].path(paths.PID_FILE).read_text().split()[0]
    az.vms[0].exec("kill", "-KILL", pid)
    failover = az.wait_healthy(0, up=False)
    assert failover < 2 * 5 * SCALE + 1.5, "out within the probe threshold"
    assert spread(az, 20)["failures"] == [], "every new login lands on the survivor"
    result = last_json(download.communicate(timeout=120)[0])
    assert (result["reply"] or "").startswith("226"), result


# -- negative controls: why each slice reaches only its server -----------------------------------


def test_negative_control_a_balanced_passive_range_breaks_about_half_the_transfers() -> None:
    def balanced(t: net.Topology) -> net.Topology:
        return dataclasses.replace(t, balanced=(21, *range(50000, 50100)), nat=())

    for az in model(ha_plan(), topology_edit=balanced):
        out = spread(az, 40)
        assert 5 <= len(out["failures"]) <= 35, out["failures"]


def test_negative_control_both_announcing_the_whole_range_breaks_transfers() -> None:
    def whole(bundle: dict[str, Any]) -> dict[str, Any]:
        return steps.edit_file(
            bundle,
            paths.PROFTPD_CONF,
            lambda c: re.sub(
                r"^PassivePorts.*$", "PassivePorts          50000 50099", c, flags=re.M
            ),
        )

    for az in model(ha_plan(), bundle_edit=whole):
        out = spread(az, 40)
        assert 5 <= len(out["failures"]) <= 35, out["failures"]


def test_the_models_instances_end_with_it() -> None:
    for az in model(ha_plan()):
        names = [ns.name for ns in az.namespaces]
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    assert not any(name in listed.stdout for name in names)
