"""L3: a hostile neighbour on the VNet — another VM, a peered network, a VPN — cannot reach the
shared storage: the share's private endpoint sits in a subnet of its own whose NSG admits NFS
only from the FTP servers' security group. Through the local model: the Azure Files stand-in
(nfs-ganesha at the endpoint's address) and a host of the VNet that is no FTP server.

The negative control is the design before: the endpoint with no NSG of its own, where Azure's
AllowVnetInBound lets every host of the VNet connect (and, with AUTH_SYS, claim any uid).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from ftpstack.local.net import topology as net
from ftpstack.local.net.azure import LocalAzure
from ftpstack.local.net.client import run_client
from ftpstack.local.net.netns import Netns
from ftpstack.offline import declared as d
from tests.support import needs_root, plan

pytestmark = pytest.mark.l3


def reach(ns: Netns) -> str:
    out: dict[str, Any] = run_client(
        ns, net.endpoint_address(), "reach", "--port", str(net.NFS_PORT), "--timeout", "2"
    )
    return str(out["result"])


def model(**kw: Any) -> Iterator[LocalAzure]:
    """The prod network with its share and resolver, no VM stand-ins (their namespaces only)."""
    needs_root()
    with LocalAzure(plan("prod"), serve=False, **kw) as az:
        for index in range(2):  # what a VM's own network configuration says, at L4
            gateway = str(net.VM_NETS[index][1])
            az.vm_netns(index).ip("route", "add", str(net.ENDPOINT_NET), "via", gateway)
        yield az


def test_only_the_ftp_servers_reach_the_shares_endpoint() -> None:
    for az in model():
        assert az.neighbour is not None and not az.topology.endpoint_open_to_vnet
        assert reach(az.vm_netns(0)) == "open" and reach(az.vm_netns(1)) == "open"
        assert reach(az.neighbour) == "silent", "the NSG drops the neighbour's connection"


def test_negative_control_without_the_endpoints_nsg_the_neighbour_connects() -> None:
    def no_nsg(t: net.Topology) -> net.Topology:
        return dataclasses.replace(t, endpoint_open_to_vnet=True)

    for az in model(topology_edit=no_nsg):
        assert az.neighbour is not None
        assert reach(az.neighbour) == "open"


def test_the_model_reads_the_endpoints_nsg_from_the_plan() -> None:
    """What the negative control stands for: the same plan with the endpoint left in a subnet
    without an NSG (as before) is open to the VNet, and so is one whose NSG admits the VNet."""
    document = plan("prod").to_json()
    view = d.Declared(document)
    assert not net.endpoint_open_to_vnet(view)
    files = next(s for s in view.of(d.SUBNET) if s["name"].endswith("-files-subnet"))
    files["inputs"].pop("networkSecurityGroup")
    assert net.endpoint_open_to_vnet(d.Declared(document))
    document = plan("prod").to_json()
    nsg = next(n for n in d.Declared(document).of(d.NSG) if n["name"].endswith("-files-nsg"))
    nsg["inputs"]["securityRules"][0].pop("sourceApplicationSecurityGroups")
    nsg["inputs"]["securityRules"][0]["sourceAddressPrefix"] = "VirtualNetwork"
    assert net.endpoint_open_to_vnet(d.Declared(document))
