"""Pure derivations of what the network lets in: NSG rules, load-balancer rules and NAT rules,
and each instance's slice of the passive range.

FTP in passive mode needs two things open: the control port and the passive ports that proftpd
announces in its PASV/EPSV replies (`PassivePorts` in the rendered proftpd.conf). Both come from
the same `Settings`, so the network and proftpd cannot disagree. Nothing else is open inbound,
not even from inside the VNet: Azure's default rules would let the whole VNet in, so an explicit
deny-all closes the list.

Behind a load balancer only port 21 is balanced. A passive port must reach the one server that
announced it, so each passive port is an inbound NAT rule aimed at its own instance (Azure bills
load-balancing rules beyond the first five per hour and lists NAT rules as free), and with several
instances each owns a disjoint slice of the range.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ftpstack import paths
from ftpstack.settings import FTP_CONTROL_PORT, SSH_PORT, Settings

ANY = "0.0.0.0/0"
# Azure's source tag for the load balancer's health probes (168.63.129.16).
LB_PROBE_SOURCE = "AzureLoadBalancer"
DENY_ALL_PRIORITY = 4096
PASSIVE_RULE = "allow-ftp-passive"
# The health probe: a TCP connect to 21 every 5 s; two misses in a row (10 s) take an instance
# out, two successes bring it back. One missed probe (a reload's blink) changes nothing.
PROBE_NAME = "ftp-control"
PROBE_INTERVAL_SECONDS = 5
PROBE_THRESHOLD = 2
# Behind a load balancer with several instances, instance i's SSH is <public address>:2200+i
# (a single VM keeps 22 unless SFTP takes it).
SSH_NAT_BASE = 2200
# SFTP is served on 22 of the public address and of the VM; the VM's own sshd then moves here.
SFTP_PORT = SSH_PORT
ADMIN_SSH_PORT = 2200
SFTP_RULE = "allow-sftp"


@dataclass(frozen=True)
class InboundRule:
    """One inbound NSG rule, in Azure's terms."""

    name: str
    priority: int
    first_port: int | None  # None: every port
    last_port: int | None
    sources: tuple[str, ...]
    access: Literal["Allow", "Deny"]
    description: str

    @property
    def port_spec(self) -> str:
        if self.first_port is None:
            return "*"
        if self.first_port == self.last_port:
            return str(self.first_port)
        return f"{self.first_port}-{self.last_port}"

    @property
    def protocol(self) -> str:
        return "Tcp" if self.first_port is not None else "*"

    @property
    def source_prefix(self) -> str | None:
        """Azure's single-source form; "*" for any source."""
        if self.sources in ((ANY,), ("*",)):
            return "*"
        return self.sources[0] if len(self.sources) == 1 else None

    @property
    def source_prefixes(self) -> list[str] | None:
        """Azure's several-sources form, used only when there is more than one."""
        return list(self.sources) if self.source_prefix is None else None


def inbound_rules(settings: Settings) -> list[InboundRule]:
    """The NSG's inbound rules, in priority order."""
    ftp = tuple(settings.ftp_source_cidrs)
    first, last = settings.passive_port_start, settings.passive_port_end
    ssh = admin_ssh_port(settings)
    # (wanted, name, priority, first port, last port, sources, what it is for)
    allowed = [
        (True, "allow-ftp-control", 100, FTP_CONTROL_PORT, FTP_CONTROL_PORT, ftp,
         "FTP control connection"),
        (True, PASSIVE_RULE, 110, first, last, ftp,
         "FTP passive data connections: the range proftpd announces (PassivePorts)"),
        (settings.sftp, SFTP_RULE, 115, SFTP_PORT, SFTP_PORT, ftp,
         "SFTP (proftpd's mod_sftp), from the same sources as FTP"),
        (settings.ssh_open, "allow-ssh", 120, ssh, ssh, tuple(settings.ssh_source_cidrs),
         "SSH for administrators, from the listed CIDRs only"),
        (settings.exposure == "load-balancer", "allow-lb-health-probe", 130, paths.HEALTH_PORT,
         paths.HEALTH_PORT, (LB_PROBE_SOURCE,),
         "The load balancer's health probe (forwarded to 21 while in service)"),
    ]  # fmt: skip
    rules = [
        InboundRule(name, priority, low, high, sources, "Allow", note)
        for wanted, name, priority, low, high, sources, note in allowed
        if wanted
    ]
    rules.append(
        InboundRule(
            "deny-all-inbound",
            DENY_ALL_PRIORITY,
            None,
            None,
            ("*",),
            "Deny",
            "Nothing else in, not even from the VNet (Azure's defaults would allow it)",
        )
    )
    return rules


@dataclass(frozen=True)
class Slice:
    """The passive ports one instance announces (and only it receives)."""

    instance: int
    first: int
    last: int

    @property
    def ports(self) -> range:
        return range(self.first, self.last + 1)

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"


def passive_slices(settings: Settings) -> list[Slice]:
    """The passive range split evenly over the instances (a remainder stays unused)."""
    size = len(settings.passive_ports) // settings.instances
    start = settings.passive_port_start
    return [
        Slice(i, start + i * size, start + (i + 1) * size - 1) for i in range(settings.instances)
    ]


def max_clients_per_instance(settings: Settings) -> int:
    """Each instance's share of maxClients (limits are per instance: proftpd counts its own)."""
    return -(-settings.max_clients // settings.instances)


def max_instances(settings: Settings) -> int:
    """proftpd's process cap on each instance (MaxInstances): its logged-in slots (FTP's, and
    SFTP's: each server counts its own), and room for idleFloodHosts addresses each holding every
    connection it may without logging in (to each server)."""
    servers = 2 if settings.sftp else 1
    return servers * (
        max_clients_per_instance(settings)
        + settings.idle_flood_hosts * settings.max_clients_per_host
    )


@dataclass(frozen=True)
class NatRule:
    """An inbound NAT rule: one frontend port to one port of one instance."""

    name: str
    instance: int
    frontend_port: int
    backend_port: int


def nat_rules(settings: Settings) -> list[NatRule]:
    """Behind a load balancer: each passive port to the instance whose slice holds it, and SSH
    (when open) to each instance on its own frontend port."""
    rules = [
        NatRule(f"passive-{port}", s.instance, port, port)
        for s in passive_slices(settings)
        for port in s.ports
    ]
    if settings.ssh_open:
        rules += [
            NatRule(f"ssh-{i}", i, ssh_port(settings, i), admin_ssh_port(settings))
            for i in range(settings.instances)
        ]
    return rules


def admin_ssh_port(settings: Settings) -> int:
    """The port the VM's own sshd listens on: 22 is SFTP's while the stack serves it."""
    return ADMIN_SSH_PORT if settings.sftp else SSH_PORT


def ssh_port(settings: Settings, instance: int) -> int:
    """Where an administrator reaches instance `instance`'s SSH on the public address: 22 with
    one server and no SFTP; else 2200, and 2200+i behind a load balancer with several."""
    if not settings.sftp and settings.instances == 1:
        return SSH_PORT
    if settings.exposure == "load-balancer":
        return SSH_NAT_BASE + instance
    return ADMIN_SSH_PORT


def load_balancer_rule_ports(settings: Settings) -> list[int]:
    """Ports that are balanced over the healthy instances: FTP's control port, and SFTP's."""
    return [FTP_CONTROL_PORT, *([SFTP_PORT] if settings.sftp else [])]
