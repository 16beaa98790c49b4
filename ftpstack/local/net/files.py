"""Azure Files NFS and its name inside the VNet, for the local VMs (L4): what the storage account's
private endpoint and the private DNS zone linked to the VNet give the VMs of a shared-storage stack.

- `Share.from_plan(plan)`: the account, the share and its root squash as the plan's FileShare
  declares them, checked against the source the VMs' user-data mounts (the `NfsShare` the
  bootstrap renders into fstab): the stand-in serves what the VMs will mount, never a copy.
- `FilesStandIn`: nfs-ganesha in a namespace of its own at the private endpoint's address,
  exporting a host directory as `/<account>/<share>` on Azure Files NFS's terms (NFS 4.1 only,
  AUTH_SYS, TCP, the share's declared root squash, numeric owners: Azure Files has no idmapping),
  and dnsmasq in another namespace at the VNet resolver's address, answering
  `<account>.file.core.windows.net` as the private zone does inside the VNet: a CNAME to
  `<account>.privatelink.file.core.windows.net`, whose A record is the endpoint (TTL 10 s, as the
  endpoint's zone group writes it). Every other name is NXDOMAIN: the stand-in recurses nowhere.

The VMs learn the resolver from their network configuration (the NoCloud seed's
`dns_nameservers`), as Azure's DHCP hands every VM 168.63.129.16. `resolver(False)` stops it (a VM
booting then cannot find its share; VMs that mounted it already keep it: NFS resolves once),
`resolver(True)` brings it back. Both daemons run in the foreground under this process and end by
PID; `close()` removes their namespaces.

    python -m ftpstack.local.net.files --stack prod   # what the stand-in would serve, for people
"""

from __future__ import annotations

import argparse
import ipaddress
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from ftpstack import paths
from ftpstack.bootstrap import NFS_OPTIONS, NfsShare
from ftpstack.local.net import topology as net
from ftpstack.local.net.netns import Netns, NetnsError, StandIn, end_process, veth
from ftpstack.offline.declared import FILE_SHARE
from ftpstack.offline.plan import Plan, plan_stack
from ftpstack.storage import DNS_ZONE

# Azure's rootSquash values (azure-native RootSquashType) as nfs-ganesha's Squash values.
SQUASH = {"NoRootSquash": "No_Root_Squash", "RootSquash": "Root_Squash", "AllSquash": "All_Squash"}
# What Azure applies when a share does not say (files-nfs-protocol: the default is no squash).
DEFAULT_SQUASH = "NoRootSquash"
# The private endpoint's A record in the zone group's zone.
DNS_TTL = 10
START_TIMEOUT = 30.0


@dataclass(frozen=True)
class Share:
    """The Azure Files NFS share a plan declares, as its VMs mount it."""

    account: str
    name: str
    root_squash: str
    nfs: NfsShare  # the host and export path in the VMs' fstab line

    @property
    def privatelink(self) -> str:
        """The name the private DNS zone holds the endpoint's address under."""
        return f"{self.account}.{DNS_ZONE}"

    @classmethod
    def from_plan(cls, plan: Plan) -> Share | None:
        shares = plan.find(FILE_SHARE)
        if not shares:
            return None
        inputs = shares[0].raw_inputs
        account, name = str(inputs["accountName"]), str(inputs["shareName"])
        squash = str(inputs.get("rootSquash") or DEFAULT_SQUASH)
        if squash not in SQUASH:
            raise ValueError(f"rootSquash {squash!r} is none of Azure's {sorted(SQUASH)}")
        nfs = mounted(plan.user_data)
        if nfs.path != f"/{account}/{name}" or nfs.host.split(".", 1)[0] != account:
            raise ValueError(
                f"the VMs mount {nfs.source}, but the plan's share is {account}/{name}: "
                "nothing would answer that mount"
            )
        return cls(account, name, squash, nfs)


def mounted(user_data: str) -> NfsShare:
    """The NFS source the user-data's fstab line mounts at the FTP root."""
    entry = f" {paths.FTP_ROOT} nfs {NFS_OPTIONS} 0 0"
    for step in yaml.safe_load(user_data).get("runcmd", []):
        if isinstance(step, str) and entry in step:
            source = step.split(entry)[0].rsplit(maxsplit=1)[-1].strip("'\"")
            host, _, path = source.partition(":")
            return NfsShare(host, path)
    raise ValueError(f"the user-data mounts nothing at {paths.FTP_ROOT} over NFS")


def ganesha_conf(share: Share, export: Path, recovery: Path) -> str:
    """nfs-ganesha exporting `export` as Azure Files NFS exports the share."""
    return f"""\
# Written by ftpstack.local.net.files: the Azure Files NFS share {share.account}/{share.name}.
NFS_CORE_PARAM {{
  Protocols = 4; NFS_Port = {net.NFS_PORT};
  # NFS 4.1 needs neither the lock manager nor rquota nor rpcbind; TCP only, as Azure Files.
  Enable_NLM = false; Enable_RQUOTA = false; Enable_UDP = false;
}}
NFSV4 {{
  Minor_Versions = 1;
  # No 90 s grace after each start (the stand-in has no clients to wait for).
  Graceless = true;
  RecoveryBackend = fs; RecoveryRoot = {recovery};
  Only_Numeric_Owners = true;
}}
NFS_KRB5 {{ Active_krb5 = false; }}
EXPORT {{
  Export_Id = 1;
  Path = {export};
  Pseudo = {share.nfs.path};
  Access_Type = RW;
  Squash = {SQUASH[share.root_squash]};
  # A squashed uid is Azure's anonymous one.
  Anonymous_Uid = 65534; Anonymous_Gid = 65534;
  SecType = sys;
  Protocols = 4;
  Transports = TCP;
  FSAL {{ Name = VFS; }}
}}
"""


def dnsmasq_argv(share: Share, rundir: Path) -> list[str]:
    """dnsmasq answering the share's name as the private DNS zone linked to the VNet does."""
    return [
        "dnsmasq",
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--no-poll",
        "--bind-interfaces",
        f"--listen-address={net.resolver_address()}",
        f"--port={net.DNS_PORT}",
        f"--pid-file={rundir / 'dnsmasq.pid'}",
        f"--local-ttl={DNS_TTL}",
        f"--host-record={share.privatelink},{net.endpoint_address()}",
        f"--cname={share.nfs.host},{share.privatelink},{DNS_TTL}",
        "--local=/#/",  # answered here or NXDOMAIN: no upstream
        "--log-queries",
        f"--log-facility={rundir / 'dnsmasq.log'}",
    ]


class FilesStandIn(StandIn):
    """`FilesStandIn(share, router, instances).started()`: the share and its name in the VNet."""

    def __init__(
        self,
        share: Share,
        router: Netns,
        instances: int,
        export: Path | None = None,
        rundir: Path | None = None,
    ) -> None:
        self.share, self.router, self.instances = share, router, instances
        self._own_rundir = rundir is None
        self.rundir = rundir or Path(tempfile.mkdtemp(prefix="ftpstack-files-"))
        self.export = export or self.rundir / "export"
        self.namespaces: list[Netns] = []
        self.ganesha: subprocess.Popen[str] | None = None
        self.dnsmasq: subprocess.Popen[str] | None = None

    @property
    def endpoint(self) -> Netns:
        return self.namespaces[0]

    @property
    def resolver_ns(self) -> Netns:
        return self.namespaces[1]

    def start(self) -> None:
        for tag, network in (("pe", net.ENDPOINT_NET), ("dns", net.RESOLVER_NET)):
            self._attach(tag, network)
        self.rundir.mkdir(parents=True, exist_ok=True)
        self.export.mkdir(parents=True, exist_ok=True)
        # A new Azure Files NFS share's root: root's, writable by all (as observed on Azure).
        self.export.chmod(0o777)
        self.serve_share()
        self.resolver(True)

    def _attach(self, tag: str, network: ipaddress.IPv4Network) -> None:
        """A namespace on its own link to the router, routed back to every VM's link and to
        the rest of the VNet (whether the router lets that in is the NSG's business)."""
        ns = Netns.create(tag)
        self.namespaces.append(ns)
        veth(self.router, f"{tag}r", ns, f"{tag}p")
        self.router.ip("addr", "add", f"{network[1]}/{network.prefixlen}", "dev", f"{tag}r")
        ns.ip("addr", "add", f"{network[2]}/{network.prefixlen}", "dev", f"{tag}p")
        for vm_net in (*net.VM_NETS[: self.instances], net.NEIGHBOUR_NET):
            ns.ip("route", "add", str(vm_net), "via", str(network[1]))

    def serve_share(self) -> None:
        recovery = self.rundir / "recovery"
        recovery.mkdir(exist_ok=True)
        conf = self.rundir / "ganesha.conf"
        conf.write_text(ganesha_conf(self.share, self.export, recovery))
        log = self.rundir / "ganesha.log"
        self.ganesha = self.endpoint.popen(
            *("ganesha.nfsd", "-F", "-f", str(conf), "-L", str(log), "-N", "NIV_EVENT"),
            *("-p", str(self.rundir / "ganesha.pid")),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.endpoint.wait_listening(net.NFS_PORT, self.ganesha, log, START_TIMEOUT)

    def resolver(self, on: bool) -> None:
        """The VNet's resolver answering (on) or gone (off), as a VM booting then finds it."""
        if not on:
            if self.dnsmasq is not None:
                end_process(self.dnsmasq, timeout=5)
                self.dnsmasq = None
            return
        if self.dnsmasq is not None and self.dnsmasq.poll() is None:
            return
        log = self.rundir / "dnsmasq.log"
        self.dnsmasq = self.resolver_ns.popen(
            *dnsmasq_argv(self.share, self.rundir),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            self.resolver_ns.wait_listening(net.DNS_PORT, self.dnsmasq, log, START_TIMEOUT)
        except NetnsError as error:
            stderr = self.dnsmasq.stderr.read() if self.dnsmasq.stderr else ""
            raise NetnsError(f"dnsmasq: {error} {stderr.strip()}") from None

    def close(self) -> None:
        for proc in (self.dnsmasq, self.ganesha):
            if proc is not None:
                end_process(proc, timeout=10)
        self.dnsmasq = self.ganesha = None
        for ns in reversed(self.namespaces):
            ns.delete()
        self.namespaces.clear()
        if self._own_rundir:
            shutil.rmtree(self.rundir, ignore_errors=True)

    def describe(self) -> str:
        """For people: what answers where."""
        return (
            f"the share {self.share.nfs.source} is nfs-ganesha at {net.endpoint_address()} "
            f"(exporting {self.export}); {self.share.nfs.host} resolves through "
            f"{net.resolver_address()} (the VNet's resolver) to {self.share.privatelink}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ftpstack.local.net.files")
    parser.add_argument("--stack", default="prod")
    args = parser.parse_args(argv)
    share = Share.from_plan(plan_stack(args.stack))
    if share is None:
        print(f"stack {args.stack} declares no shared storage")
        return 1
    print(ganesha_conf(share, Path("<export>"), Path("<recovery>")))
    print(shlex.join(dnsmasq_argv(share, Path("<rundir>"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
