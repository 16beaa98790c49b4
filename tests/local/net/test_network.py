"""L3: the declared stack serving FTP through the local stand-in for Azure's network.

The router's rules (DNAT of the public IP, or the load balancer's one balanced port and its NAT
rules, the NSG in priority order, the idle timeout) are a pure function of the plan, tested here
without root first; then the model is built and real clients cross it. Times are scaled by 1/30
(the 240 s idle timeout becomes 8 s, keepalive 60 s/30 s becomes 2 s/1 s), keeping the ratios
that decide the outcome.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ftpstack import paths
from ftpstack.local.net import topology as net
from ftpstack.local.net.azure import LocalAzure
from ftpstack.local.net.client import environment, last_json, module_argv, start_client
from ftpstack.local.net.steps import edit_file, without_file
from ftpstack.offline.plan import Plan
from ftpstack.rules import ADMIN_SSH_PORT, SSH_NAT_BASE
from tests.support import ONE_SERVER, PASSWORD, USER, needs_root, plan

SCALE = 1 / 30
BIG = 8 * 1024 * 1024


# The VM's own SSH while SFTP has 22: dev's sshd port, and instance 0's NAT rule behind the LB.
ADMIN_SSH = ADMIN_SSH_PORT
assert ADMIN_SSH == SSH_NAT_BASE + 0


def dev_plan(**overrides: Any) -> Plan:
    return plan("dev", **{"tls": "off", **overrides})


def prod_plan(**overrides: Any) -> Plan:
    # prod's own TLS and storage are covered at L2/L4 and in test_ha; here: its load balancer
    # and CIDRs in front of one server.
    return plan("prod", **{**ONE_SERVER, "tls": "off", **overrides})


def model(p: Plan, **kw: Any) -> Iterator[LocalAzure]:
    needs_root()
    with LocalAzure(p, time_scale=SCALE, **kw) as az:
        yield az


@pytest.fixture(scope="module")
def dev() -> Iterator[LocalAzure]:
    yield from model(dev_plan())


@pytest.fixture(scope="module")
def lb() -> Iterator[LocalAzure]:
    yield from model(prod_plan(sshSourceCidrs=["203.0.113.0/24"]))


def client(az: LocalAzure, command: str, *args: str, ns: Any = None) -> dict[str, Any]:
    return az.client_cmd(command, *args, ns=ns, user=USER, password=PASSWORD)


# -- the router's rules, without root ------------------------------------------------------------


def test_a_public_ip_forwards_every_port_and_the_nsg_decides() -> None:
    t = net.Topology.from_plan(dev_plan().to_json())
    rules = net.ruleset(t)
    assert f"ip daddr {t.public_ip} meta l4proto tcp dnat ip to {net.vm_address(0)}" in rules
    nsg = net.nsg_lines(t.rules)
    assert nsg == [
        "tcp dport 21 accept",
        "tcp dport 50000-50039 accept",
        "tcp dport 22 accept",
        "drop",
    ]


def test_a_load_balancer_forwards_only_its_rules() -> None:
    t = net.Topology.from_plan(prod_plan().to_json())
    rules = net.ruleset(t, healthy=[0])
    assert "tcp dport 21 dnat ip to jhash" in rules and "tcp dport 22 dnat ip to jhash" in rules
    assert f"tcp dport 50000 dnat ip to {net.vm_address(0)}:50000" in rules
    assert "meta l4proto tcp dnat" not in rules, "no port is forwarded that no rule declares"
    assert f"ip saddr {{ {net.probe_address()} }} tcp dport {paths.HEALTH_PORT} accept" in rules
    assert len(re.findall(r"tcp dport \d+ dnat ip to 192", rules)) == 100


def test_the_vnet_reaches_the_private_endpoint_and_its_resolver_only_when_declared() -> None:
    """With the share's private endpoint declared (prod), the VMs' links reach its NFS port and
    the VNet's resolver, before the drop that guards both addresses; without one (dev), the drop
    alone: the VMs' general egress never reaches them."""
    shared = net.Topology.from_plan(plan("prod").to_json())
    assert shared.private_endpoint and shared.instances == 2
    lines = [line.strip() for line in net.ruleset(shared).splitlines()]
    endpoint, resolver = net.endpoint_address(), net.resolver_address()
    nfs = f'iifname {{ "v0r", "v1r" }} ip daddr {endpoint} tcp dport 2049 accept'
    dns = (
        f'iifname {{ "v0r", "v1r" }} ip daddr {resolver} '
        "meta l4proto { tcp, udp } th dport 53 accept"
    )
    guard = f"ip daddr {{ {endpoint}, {resolver} }} drop"
    egress = 'iifname { "v0r", "v1r" } accept'
    assert lines.index(nfs) < lines.index(guard) and lines.index(dns) < lines.index(guard)
    assert lines.index(guard) < lines.index(egress)
    alone = net.Topology.from_plan(dev_plan().to_json())
    assert not alone.private_endpoint
    rules = net.ruleset(alone)
    assert guard in rules and endpoint not in rules.replace(guard, "")


def test_the_vnet_addresses_are_documentation_addresses_no_other_part_of_the_model_uses() -> None:
    documentation = [ipaddress.IPv4Network(n) for n in ("192.0.2.0/24", "198.51.100.0/24")]
    taken = [*net.VM_NETS, net.CLIENT_NET, net.OUTSIDER_NET, net.PROBE_NET]
    taken.append(ipaddress.IPv4Network(f"{net.SILENT_RESOLVER}/32"))
    for vnet in (net.ENDPOINT_NET, net.RESOLVER_NET):
        assert any(vnet.subnet_of(d) for d in documentation), vnet
        assert not any(vnet.overlaps(other) for other in taken), vnet
    assert not net.ENDPOINT_NET.overlaps(net.RESOLVER_NET)
    prod_sources = ipaddress.IPv4Network("192.0.2.0/25")  # an FTP source of the prod stack
    assert not net.ENDPOINT_NET.overlaps(prod_sources)
    assert not net.RESOLVER_NET.overlaps(prod_sources)


def test_the_balanced_map_holds_only_healthy_instances() -> None:
    assert set(net.balanced_elements([1]).split(", ")) == {
        f"{b} : {net.vm_address(1)}" for b in range(net.LB_BUCKETS)
    }
    assert net.balanced_elements([]) == ""


# -- 1. passive transfers through the public address ---------------------------------------------


def round_trip_with_every_client(az: LocalAzure, tmp_path: Path) -> None:
    up = client(az, "upload", "--name", "big.bin", "--size", str(BIG))
    assert up["reply"].startswith("226")
    out = client(az, "pasv", "--count", "3")
    assert {h for h, _ in out["pasv"]} == {az.public_ip}
    ports = range(
        int(az.plan.outputs["passivePortRange"].split("-")[0]),
        int(az.plan.outputs["passivePortRange"].split("-")[1]) + 1,
    )
    assert all(p in ports for _, p in out["pasv"]) and all(p in ports for p in out["epsv"])
    tmp_path.chmod(0o755)
    url, auth = f"ftp://{az.public_ip}/big.bin", f"{USER}:{PASSWORD}"
    curl = tmp_path / "curl.bin"
    result = az.client.run("curl", "-sS", "--user", auth, "-o", str(curl), url)
    assert result.returncode == 0, result.stderr
    assert hashlib.sha256(curl.read_bytes()).hexdigest() == up["sha256"]
    lftp = tmp_path / "lftp.bin"
    script = f"set ftp:ssl-allow no; set net:max-retries 1; get big.bin -o {lftp}; bye"
    result = az.client.run("lftp", "-u", f"{USER},{PASSWORD}", "-e", script, az.public_ip)
    assert result.returncode == 0, result.stderr
    assert hashlib.sha256(lftp.read_bytes()).hexdigest() == up["sha256"]


@pytest.mark.l3
def test_passive_transfers_through_the_public_ip(dev: LocalAzure, tmp_path: Path) -> None:
    round_trip_with_every_client(dev, tmp_path)


@pytest.mark.l3
def test_passive_transfers_through_the_load_balancer(lb: LocalAzure, tmp_path: Path) -> None:
    round_trip_with_every_client(lb, tmp_path)


# -- 2. what the network does not forward is unreachable -----------------------------------------


def reach(az: LocalAzure, port: int, ns: Any = None) -> str:
    result: str = az.client_cmd("reach", "--port", str(port), "--timeout", "1.5", ns=ns)["result"]
    return result


@pytest.mark.l3
def test_only_the_declared_ports_are_reachable(dev: LocalAzure) -> None:
    last = int(dev.plan.outputs["passivePortRange"].split("-")[1])
    assert reach(dev, 21) == "open"
    assert reach(dev, 22) == "open", "SFTP, served by proftpd"
    assert reach(dev, ADMIN_SSH) == "silent", "the VM's own SSH is closed without sshSourceCidrs"
    assert reach(dev, last + 1) == "silent", "just outside the passive range"
    assert reach(dev, last) == "refused", "inside the range: reaches the VM"


@pytest.mark.l3
def test_ssh_opens_for_its_cidr_only() -> None:
    for az in model(dev_plan(sshSourceCidrs=["203.0.113.0/24"])):
        assert reach(az, ADMIN_SSH) == "refused", "let through to the VM (nothing listens)"
        assert reach(az, ADMIN_SSH, az.outsider) == "silent"


@pytest.mark.l3
def test_behind_the_load_balancer_ssh_goes_through_its_nat_rule_and_ftp_through_21(
    lb: LocalAzure,
) -> None:
    assert reach(lb, 21) == "open"
    assert reach(lb, 21, lb.outsider) == "silent", "outside the FTP sources"
    assert reach(lb, 22) == "open", "SFTP, balanced like 21"
    assert reach(lb, ADMIN_SSH) == "refused", (
        "the NAT rule forwards SSH to the VM (nothing listens)"
    )
    assert reach(lb, 23) == "silent", "no rule for 23"


@pytest.mark.l3
def test_negative_control_a_passive_port_without_a_nat_rule_is_unreachable() -> None:
    def drop_first(t: net.Topology) -> net.Topology:
        return dataclasses.replace(t, nat=t.nat[1:])

    for az in model(prod_plan(), topology_edit=drop_first):
        assert reach(az, 50000) == "silent" and reach(az, 50001) == "refused"


# -- 3. the seed's failure: a long transfer with an idle control connection -----------------------


def slow_download(az: LocalAzure, tls: bool = False) -> dict[str, Any]:
    """RETR paced to last 3.5 x the idle timeout, the control connection idle meanwhile."""
    extra = ["--tls"] if tls else []
    up = client(az, "upload", "--name", "slow.bin", "--size", str(BIG), *extra)
    out = client(
        az,
        "slow-download",
        "--name",
        "slow.bin",
        "--seconds",
        str(3.5 * az.idle_timeout),
        "--reply-wait",
        str(2 * az.idle_timeout),
        *extra,
    )
    assert out["sha256"] == up["sha256"] and out["bytes"] == BIG, "the data itself is intact"
    assert out["seconds"] >= 3 * az.idle_timeout, "the transfer outlasted the timeout"
    return out


@pytest.mark.l3
def test_long_transfer_completes_with_the_stack_configuration(dev: LocalAzure) -> None:
    assert (slow_download(dev)["reply"] or "").startswith("226")


@pytest.mark.l3
def test_long_transfer_completes_through_the_load_balancer(lb: LocalAzure) -> None:
    assert (slow_download(lb)["reply"] or "").startswith("226")


def without_keepalive(bundle: dict[str, Any]) -> dict[str, Any]:
    bundle = edit_file(
        bundle, paths.PROFTPD_CONF, lambda c: re.sub(r"^SocketOptions.*$", "", c, flags=re.M)
    )
    return without_file(bundle, paths.SYSCTL_FILE)


def late_keepalive(bundle: dict[str, Any]) -> dict[str, Any]:
    # Keepalive idle 300 s (10 s scaled): above the 240 s idle timeout.
    return edit_file(
        bundle,
        paths.PROFTPD_CONF,
        lambda c: re.sub(r"keepalive \d+:(\d+):(\d+)", r"keepalive 10:\1:\2", c),
    )


@pytest.mark.parametrize(
    "edit",
    [without_keepalive, late_keepalive],
    ids=["no-keepalive-kernel-default", "keepalive-idle-above-timeout"],
)
@pytest.mark.l3
def test_negative_control_the_226_is_lost(edit: Any) -> None:
    for az in model(dev_plan(), bundle_edit=edit):
        out = slow_download(az)
        assert out["reply"] is None and "error" in out, out


# -- 4. passive-range saturation ------------------------------------------------------------------


@pytest.mark.l3
def test_max_clients_transfer_and_the_next_is_refused_fast() -> None:
    for az in model(dev_plan(passivePortStart=50000, passivePortEnd=50005, maxClients=3)):
        client(az, "upload", "--name", "big.bin", "--size", str(BIG))
        holders = [
            start_client(
                az.client,
                az.public_ip,
                "slow-download",
                *("--name", "big.bin", "--seconds", "6"),
                user=USER,
                password=PASSWORD,
            )
            for _ in range(3)
        ]
        try:
            time.sleep(2)
            extra = client(az, "try-login")
            assert not extra["ok"] and extra["reply"][:3] in {"421", "530"}, extra
            assert extra["seconds"] < 1, "refused at once, not after a timeout"
            results = [last_json(h.communicate(timeout=120)[0]) for h in holders]
            assert all(
                (r["reply"] or "").startswith("226") and r["bytes"] == BIG for r in results
            ), results
        finally:
            for h in holders:
                h.kill()
                h.wait()


# -- the post-deploy smoke check through the model --------------------------------------------


def smoke(az: LocalAzure) -> subprocess.CompletedProcess[str]:
    env = environment(PASSWORD)
    return az.client.run(
        *module_argv("ftpstack.ftpcheck"),
        "--host",
        az.public_ip,
        "--user",
        USER,
        "--timeout",
        "3",
        "--expect-public-ip",
        az.public_ip,
        "--expect-passive-range",
        str(az.plan.outputs["passivePortRange"]),
        env=env,
    )


@pytest.mark.l3
def test_smoke_check_passes_on_the_declared_stack(dev: LocalAzure) -> None:
    result = smoke(dev)
    assert result.returncode == 0 and "OK" in result.stdout, result.stdout + result.stderr


@pytest.mark.l3
def test_smoke_check_fails_clearly_when_the_passive_range_is_not_open() -> None:
    def close_passive(t: net.Topology) -> net.Topology:
        return dataclasses.replace(
            t, rules=tuple(r for r in t.rules if r.name != "allow-ftp-passive")
        )

    for az in model(dev_plan(), topology_edit=close_passive):
        result = smoke(az)
        assert result.returncode == 1 and "is the passive range open in the NSG" in result.stderr


# -- FTPS through the public address -----------------------------------------------------------


@pytest.mark.l3
def test_ftps_through_the_public_address_and_a_long_ftps_transfer() -> None:
    for az in model(dev_plan(tls="required")):
        out = client(az, "pasv", "--tls")
        assert {h for h, _ in out["pasv"]} == {az.public_ip}
        assert (slow_download(az, tls=True)["reply"] or "").startswith("226")
