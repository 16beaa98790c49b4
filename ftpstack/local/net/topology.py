"""The local Azure network (L3): what the program declares, enforced by a real network stack.

`Topology.from_plan()` reads the plan through the shared vocabulary (`ftpstack.offline.declared`):
the public address, the NSG's rules, the load balancer's balanced port and NAT rules, the idle
timeout. `ruleset()` turns it into the router's nftables, a pure function (tested without root):

- a public IP on a NIC forwards every port to its VM; a load balancer forwards only what its
  rules declare: port 21 by a hash of the flow over the instances whose probe passes (a map the
  prober rewrites), each NAT rule's port to the one instance of its pool;
- the NSG's inbound rules in priority order in the forward path (Azure's defaults end in deny);
  the `AzureLoadBalancer` tag is the probe's own address;
- Azure's idle timeout as conntrack's established timeout with `nf_conntrack_tcp_loose=0`: the
  packets of a forgotten flow vanish (Azure's default) or get a reset (`enableTcpReset`);
- inside the VNet, when the plan declares a private endpoint (the Azure Files share): the VMs
  reach the endpoint's NFS port and the VNet's resolver, as Azure's default rules let the VNet
  talk to itself; nothing else reaches either address.

Only documentation address ranges are used and there are no default routes.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass

from ftpstack.offline import declared as d
from ftpstack.settings import FTP_CONTROL_PORT

CLIENT_NET = ipaddress.IPv4Network("203.0.113.0/24")
OUTSIDER_NET = ipaddress.IPv4Network("192.0.2.200/29")
PROBE_NET = ipaddress.IPv4Network("192.0.2.248/30")
# Instance i's link: 192.0.2.(4i)/30, the router at .4i+1, the VM at .4i+2.
VM_NETS = tuple(ipaddress.IPv4Network(f"192.0.2.{4 * i}/30") for i in range(16))
# A DNS server that never answers: the router drops whatever is sent to it.
SILENT_RESOLVER = "192.0.2.53"
# Inside the VNet (L4, `ftpstack.local.net.files`): the storage account's private endpoint
# (nfs-ganesha) and the resolver the VNet's DHCP names (Azure's 168.63.129.16, which is no
# documentation address), each on its own link to the router, outside the prod stack's
# 192.0.2.0/25 sources.
ENDPOINT_NET = ipaddress.IPv4Network("192.0.2.160/30")
# Another host of the VNet (another team's VM, a peered network, a VPN): not an FTP server.
NEIGHBOUR_NET = ipaddress.IPv4Network("192.0.2.168/30")
NEIGHBOUR_LINK = "nr"
RESOLVER_NET = ipaddress.IPv4Network("192.0.2.164/30")
NFS_PORT = 2049
DNS_PORT = 53
LB_BUCKETS = 64


def vm_address(index: int) -> str:
    return str(VM_NETS[index][2])


def probe_address() -> str:
    return str(PROBE_NET[2])


def endpoint_address() -> str:
    """The storage account's private endpoint in the VNet."""
    return str(ENDPOINT_NET[2])


def resolver_address() -> str:
    """The VNet's resolver, as the VMs' network configuration names it."""
    return str(RESOLVER_NET[2])


@dataclass(frozen=True)
class Topology:
    """What the router enforces, from the plan."""

    public_ip: str
    instances: int
    idle_timeout_s: int
    tcp_reset: bool
    rules: tuple[d.SecurityRule, ...]
    balanced: tuple[int, ...] | None  # None: a public IP on a NIC forwards every port
    nat: tuple[tuple[int, int, int], ...]  # (frontend port, instance, backend port)
    probe_port: int | None
    private_endpoint: bool = False  # the plan reaches storage through a private endpoint
    # Every host of the VNet reaches the endpoint's NFS port, not only the servers (no NSG on its
    # subnet, or one that admits more than the servers' application security group).
    endpoint_open_to_vnet: bool = False

    @classmethod
    def from_plan(cls, document: dict[str, object]) -> Topology:
        view = d.Declared(document)
        found = cls._from_plan(view)
        return dataclasses.replace(found, endpoint_open_to_vnet=endpoint_open_to_vnet(view))

    @classmethod
    def _from_plan(cls, view: d.Declared) -> Topology:
        instances = len(view.of(d.VM))
        endpoint = bool(view.of(d.PRIVATE_ENDPOINT))
        lbs = view.of(d.LOAD_BALANCER)
        if not lbs:
            ip = view.one(d.PUBLIC_IP)["inputs"]
            return cls(
                view.public_ip,
                instances,
                int(ip.get("idleTimeoutInMinutes") or 4) * 60,
                False,
                tuple(view.server_rules()),
                None,
                (),
                None,
                endpoint,
            )
        lb = lbs[0]["inputs"]
        rule = lb["loadBalancingRules"][0]
        pools = {f"instance-{i}": i for i in range(instances)}
        nat = tuple((n.frontend_port, pools[n.pool], n.backend_port) for n in view.nat_rules())
        return cls(
            view.public_ip,
            instances,
            int(rule.get("idleTimeoutInMinutes") or 4) * 60,
            bool(rule.get("enableTcpReset")),
            tuple(view.server_rules()),
            tuple(view.balanced_ports()),
            nat,
            int(lb["probes"][0]["port"]),
            endpoint,
        )


def endpoint_open_to_vnet(view: d.Declared) -> bool:
    """Whether a host of the VNet other than the servers reaches the private endpoint's NFS port:
    what the NSG of the endpoint's subnet admits (without one, Azure's AllowVnetInBound)."""
    endpoints = view.of(d.PRIVATE_ENDPOINT)
    if not endpoints:
        return False
    subnet_id = str((endpoints[0]["inputs"].get("subnet") or {}).get("id", "")).lower()
    subnet = next((s for s in view.of(d.SUBNET) if str(s.get("id", "")).lower() == subnet_id), None)
    nsg_id = str(((subnet or {}).get("inputs", {}).get("networkSecurityGroup") or {}).get("id", ""))
    nsg = next((n for n in view.of(d.NSG) if str(n.get("id", "")).lower() == nsg_id.lower()), None)
    if nsg is None:
        return True
    name = str(nsg["inputs"].get("networkSecurityGroupName") or nsg["name"])
    for rule in view.security_rules({name}):
        reaches = rule.ports is None or rule.ports[0] <= NFS_PORT <= rule.ports[1]
        if rule.direction == "Inbound" and reaches:
            only_servers = all(s.startswith(d.ASG_SOURCE) for s in rule.sources)
            if rule.access == "Allow" and not only_servers:
                return True
            if rule.access == "Deny" and not only_servers:
                return False
    return True  # Azure's AllowVnetInBound comes after every rule


def _source_match(sources: tuple[str, ...]) -> str | None:
    """nft's match for an NSG rule's sources; None when no address of the model matches."""
    if any(s.lower() in {"*", "internet", "any", "0.0.0.0/0"} for s in sources):
        return ""
    cidrs = [probe_address() if s == d.PROBE_SOURCE else s for s in sources]
    cidrs = [c for c in cidrs if _is_cidr(c)]
    return f"ip saddr {{ {', '.join(cidrs)} }} " if cidrs else None


def _is_cidr(text: str) -> bool:
    try:
        ipaddress.IPv4Network(text)
    except ValueError:
        return False
    return True


def nsg_lines(rules: tuple[d.SecurityRule, ...]) -> list[str]:
    lines = []
    for rule in rules:
        if rule.direction != "Inbound":
            continue
        match = _source_match(rule.sources)
        if match is None:
            continue
        ports = ""
        if rule.ports is not None:
            first, last = rule.ports
            ports = f"tcp dport {first} " if first == last else f"tcp dport {first}-{last} "
        lines.append(f"{match}{ports}{'accept' if rule.access == 'Allow' else 'drop'}")
    return lines


def dnat_lines(t: Topology) -> list[str]:
    if t.balanced is None:
        return [f"ip daddr {t.public_ip} meta l4proto tcp dnat ip to {vm_address(0)}"]
    lines = [
        f"ip daddr {t.public_ip} tcp dport {port} dnat ip to jhash ip saddr . tcp sport "
        f"mod {LB_BUCKETS} map @balanced"
        for port in t.balanced
    ]
    for frontend, instance, backend in t.nat:
        lines.append(
            f"ip daddr {t.public_ip} tcp dport {frontend} "
            f"dnat ip to {vm_address(instance)}:{backend}"
        )
    return lines


def vnet_lines(t: Topology) -> list[str]:
    """Traffic inside the VNet: with a private endpoint declared, the VMs reach its NFS port and
    the VNet's resolver (Azure's default AllowVnetInBound/OutBound); else, and for anything else,
    neither address is reachable."""
    links = ", ".join(f'"v{i}r"' for i in range(t.instances))
    mounters = f'{links}, "{NEIGHBOUR_LINK}"' if t.endpoint_open_to_vnet else links
    lines = []
    if t.private_endpoint:
        lines += [
            f"iifname {{ {mounters} }} ip daddr {endpoint_address()} tcp dport {NFS_PORT} accept",
            f"iifname {{ {links} }} ip daddr {resolver_address()} "
            f"meta l4proto {{ tcp, udp }} th dport {DNS_PORT} accept",
        ]
    return [*lines, f"ip daddr {{ {endpoint_address()}, {resolver_address()} }} drop"]


def balanced_elements(healthy: list[int]) -> str:
    """The balanced map's elements: the healthy instances over every bucket."""
    if not healthy:
        return ""
    return ", ".join(f"{b} : {vm_address(healthy[b % len(healthy)])}" for b in range(LB_BUCKETS))


def ruleset(t: Topology, healthy: list[int] | None = None) -> str:
    """The router's nftables: Azure's public IP / load balancer, NSG and idle timeout."""
    forgotten = "reject with tcp reset" if t.tcp_reset else "drop"
    vm_links = ", ".join(f'"v{i}r"' for i in range(t.instances))
    elements = balanced_elements(list(range(t.instances)) if healthy is None else healthy)
    balanced = f"elements = {{ {elements} }}" if elements else ""
    nsg = "\n".join(f"    {line}" for line in nsg_lines(t.rules))
    vnet = "\n".join(f"    {line}" for line in vnet_lines(t))
    dnat = "\n".join(f"    {line}" for line in dnat_lines(t))
    return f"""
table inet azure
delete table inet azure
table inet azure {{
  map balanced {{
    typeof jhash ip saddr . tcp sport mod {LB_BUCKETS} : ip daddr
    {balanced}
  }}
  chain forgotten {{
    # A flow Azure no longer remembers: its packets vanish (or get a reset with TCP reset).
    type filter hook prerouting priority mangle; policy accept;
    ct state invalid {forgotten}
  }}
  chain public {{
    type nat hook prerouting priority dstnat; policy accept;
{dnat}
  }}
  chain nsg {{
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    ip daddr {SILENT_RESOLVER} drop
    # Inside the VNet: the private endpoint and the resolver, only as declared.
{vnet}
    iifname {{ {vm_links} }} accept
    oifname != {{ {vm_links} }} drop
    # The NSG's inbound rules in priority order; Azure's defaults end with deny.
{nsg}
  }}
  chain router {{
    # Nothing answers on the router itself: unrouted packets to the public IP vanish.
    type filter hook input priority filter; policy drop;
  }}
}}
"""


def probe_port(t: Topology) -> int:
    return t.probe_port or FTP_CONTROL_PORT
