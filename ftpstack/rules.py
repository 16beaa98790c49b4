"""Pure derivations of what the network lets in: NSG rules and load-balancer rules.

FTP in passive mode needs two things open: the control port and the passive range that proftpd
announces in its PASV/EPSV replies (`PassivePorts` in the rendered proftpd.conf). Both come from
the same `Settings`, so the NSG and proftpd cannot disagree. Nothing else is open inbound, not
even from inside the VNet: Azure's default rules would let the whole VNet in, so an explicit
deny-all closes the list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ftpstack.settings import FTP_CONTROL_PORT, SSH_PORT, Settings

ANY = "0.0.0.0/0"
# Azure's source tag for the load balancer's health probes (168.63.129.16).
LB_PROBE_SOURCE = "AzureLoadBalancer"
DENY_ALL_PRIORITY = 4096


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
    ftp_sources = tuple(settings.ftp_source_cidrs)
    rules = [
        InboundRule(
            "allow-ftp-control",
            100,
            FTP_CONTROL_PORT,
            FTP_CONTROL_PORT,
            ftp_sources,
            "Allow",
            "FTP control connection",
        ),
        InboundRule(
            "allow-ftp-passive",
            110,
            settings.passive_port_start,
            settings.passive_port_end,
            ftp_sources,
            "Allow",
            "FTP passive data connections: the range proftpd announces (PassivePorts)",
        ),
    ]
    if settings.ssh_open:
        rules.append(
            InboundRule(
                "allow-ssh",
                120,
                SSH_PORT,
                SSH_PORT,
                tuple(settings.ssh_source_cidrs),
                "Allow",
                "SSH for administrators, from the listed CIDRs only",
            )
        )
    if settings.exposure == "load-balancer":
        rules.append(
            InboundRule(
                "allow-lb-health-probe",
                130,
                FTP_CONTROL_PORT,
                FTP_CONTROL_PORT,
                (LB_PROBE_SOURCE,),
                "Allow",
                "The load balancer's health probe on the FTP control port",
            )
        )
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


def load_balancer_ports(settings: Settings) -> list[int]:
    """One LB rule per port: a public Standard LB rule cannot carry a port range."""
    return [FTP_CONTROL_PORT, *settings.passive_ports]
