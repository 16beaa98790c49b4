"""The local Azure model (L3): what the program declares, enforced by a real network stack.

`LocalAzure(plan)` reads the resources the program declared under mocks (`ftpstack.plan`, the
same capture `make plan ARGS=--json` prints) and builds, with network namespaces, veth pairs and
nftables:

- client namespaces that reach only the public address (an "inside" client, in the first
  allowed FTP source CIDR when the stack restricts them, and an "outsider" outside every one);
- a router namespace standing for the public IP or load balancer: DNAT of the public address to
  the VM (every port for a public IP on a NIC, only the rule ports for a load balancer), the NSG's
  inbound rules in priority order in the forward path, and Azure's idle timeout as conntrack's
  established timeout with `nf_conntrack_tcp_loose=0` and invalid packets dropped (a forgotten
  flow's packets vanish silently, Azure's default; with `enableTcpReset` they get a reset);
- a VM namespace whose proftpd runs the files of the user-data's `write_files`, at their
  declared paths, in a mount namespace of its own (tmpfs over the few directories involved), with
  the sysctl.d values applied in that network namespace (a new one starts at 7200 s).

Times may be scaled by one factor applied to the idle timeout and the keepalive idle and
interval together, so the ratios that decide whether a long transfer survives stay the declared
ones. Only documentation address ranges are used, there are no default routes, and everything is
removed on exit, by PID and by name, also when a test fails.

With `serve=False` no proftpd is started: the VM namespace and its address are there for another
VM backend (the L4 qemu VM) to attach to.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ftpstack.plan import Plan

PUBLIC_IP_TYPE = "azure-native:network:PublicIPAddress"
NSG_TYPE = "azure-native:network:NetworkSecurityGroup"
LB_TYPE = "azure-native:network:LoadBalancer"
# Addresses of the model (documentation ranges only).
CLIENT_NET = ipaddress.IPv4Network("203.0.113.0/24")
OUTSIDER_NET = ipaddress.IPv4Network("192.0.2.200/29")
VM_NET = ipaddress.IPv4Network("192.0.2.0/30")
# A DNS server that never answers: the router drops whatever is sent to it.
SILENT_RESOLVER = "192.0.2.53"
# Directories the VM's files live in; each gets a private tmpfs in the VM's mount namespace.
VM_DIRS = ("/etc/proftpd", "/run", "/var/log/proftpd", "/srv/ftp")
# runcmd steps that configure the machine itself; the namespaces stand in for them.
MACHINE_STEPS = ("sysctl", "getent", "systemctl")
SYSCTL_KEYS = {
    "net.ipv4.tcp_keepalive_time": "idle",
    "net.ipv4.tcp_keepalive_intvl": "interval",
    "net.ipv4.tcp_keepalive_probes": "count",
}


def tmpfs_lines() -> list[str]:
    """Shell lines giving each of the VM's directories an empty private tmpfs."""
    return [f"mount -t tmpfs -o mode=0755 tmpfs {d}" for d in VM_DIRS]


def end_process(proc: subprocess.Popen[Any], timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL after `timeout` seconds: always by the process's own PID."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class LocalAzureError(Exception):
    """The model could not be built or did not come up."""


@dataclass(frozen=True)
class Nsg:
    """An inbound rule as the router enforces it."""

    priority: int
    allow: bool
    ports: tuple[int, int] | None  # None: every port
    sources: tuple[str, ...]  # CIDRs; "*" for any

    def nft(self) -> str:
        match = []
        if self.sources != ("*",):
            cidrs = [s for s in self.sources if _is_cidr(s)]
            if not cidrs:  # a service tag (AzureLoadBalancer): no client here matches it
                return ""
            match.append(f"ip saddr {{ {', '.join(cidrs)} }}")
        if self.ports is not None:
            first, last = self.ports
            match.append(f"tcp dport {first}" if first == last else f"tcp dport {first}-{last}")
        verdict = "accept" if self.allow else "drop"
        return " ".join([*match, verdict])


def _is_cidr(text: str) -> bool:
    try:
        ipaddress.IPv4Network(text)
    except ValueError:
        return False
    return True


def _ports(spec: str) -> tuple[int, int] | None:
    if spec == "*":
        return None
    first, _, last = spec.partition("-")
    return int(first), int(last or first)


@dataclass(frozen=True)
class Declared:
    """What the program declared that the model enforces, read from the plan."""

    public_ip: str
    idle_timeout_s: int
    tcp_reset: bool
    nsg: tuple[Nsg, ...]
    lb_ports: tuple[int, ...] | None  # None: a public IP on the NIC forwards every port
    files: dict[str, tuple[str, str]]  # path -> (content, permissions)
    setup: tuple[list[str] | str, ...]  # runcmd steps for the VM's own files

    @classmethod
    def from_plan(cls, plan: Plan) -> Declared:
        (ip,) = plan.find(PUBLIC_IP_TYPE)
        (nsg,) = plan.find(NSG_TYPE)
        lbs = plan.find(LB_TYPE)
        rules = []
        for rule in nsg.raw_inputs["securityRules"]:
            if rule["direction"] != "Inbound":
                continue
            sources = rule.get("sourceAddressPrefixes") or [rule["sourceAddressPrefix"]]
            rules.append(
                Nsg(
                    rule["priority"],
                    rule["access"] == "Allow",
                    _ports(rule["destinationPortRange"]),
                    tuple("*" if s in ("*", "Internet", "0.0.0.0/0") else s for s in sources),
                )
            )
        idle = ip.raw_inputs.get("idleTimeoutInMinutes", 4)
        tcp_reset = False
        lb_ports = None
        if lbs:
            lb_rules = lbs[0].raw_inputs["loadBalancingRules"]
            lb_ports = tuple(r["frontendPort"] for r in lb_rules)
            idle = lb_rules[0].get("idleTimeoutInMinutes", 4)
            tcp_reset = bool(lb_rules[0].get("enableTcpReset"))
        document = yaml.safe_load(plan.user_data)
        files = {
            f["path"]: (f["content"], f.get("permissions", "0644")) for f in document["write_files"]
        }
        return cls(
            public_ip=plan.outputs["publicIp"],
            idle_timeout_s=int(idle) * 60,
            tcp_reset=tcp_reset,
            nsg=tuple(sorted(rules, key=lambda r: r.priority)),
            lb_ports=lb_ports,
            files=files,
            setup=tuple(document.get("runcmd", [])),
        )

    @property
    def allowed_ftp_sources(self) -> tuple[str, ...]:
        control = [r for r in self.nsg if r.allow and r.ports == (21, 21)]
        return control[0].sources if control else ()


def scale_keepalive(text: str, factor: float) -> str:
    """`SocketOptions keepalive IDLE:COUNT:INTVL` and the sysctl values, times `factor`
    (the probe count is a count, not a time: unchanged)."""

    def scaled(value: str) -> str:
        return str(max(1, round(int(value) * factor)))

    text = re.sub(
        r"(keepalive\s+)(\d+):(\d+):(\d+)",
        lambda m: f"{m.group(1)}{scaled(m.group(2))}:{m.group(3)}:{scaled(m.group(4))}",
        text,
    )
    return re.sub(
        r"^(net\.ipv4\.tcp_keepalive_(?:time|intvl)\s*=\s*)(\d+)",
        lambda m: f"{m.group(1)}{scaled(m.group(2))}",
        text,
        flags=re.MULTILINE,
    )


def _run(*argv: str, check: bool = True, input: str | None = None) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, input=input, check=False)
    if check and result.returncode != 0:
        raise LocalAzureError(f"{shlex.join(argv)}: {result.stderr.strip()}")
    return result.stdout


@dataclass
class LocalAzure:
    """The model, as a context manager: `with LocalAzure(plan, time_scale=1/30) as az: ...`."""

    plan: Plan
    time_scale: float = 1.0
    serve: bool = True
    conf_edit: Any = None  # optional callable(str) -> str on proftpd.conf (negative controls)
    declared_edit: Any = None  # optional callable(Declared) -> Declared (broken stacks)
    apply_sysctl: bool = True  # False: the VM's kernel stays at its defaults (7200 s)
    silent_resolver: bool = False  # the VM's DNS server drops every query (lookups time out)
    declared: Declared = field(init=False)
    prefix: str = field(init=False)
    namespaces: list[str] = field(init=False, default_factory=list)
    proftpd: subprocess.Popen[bytes] | None = field(init=False, default=None)
    staging: Path | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.declared = Declared.from_plan(self.plan)
        if self.declared_edit:
            self.declared = self.declared_edit(self.declared)
        self.prefix = f"fa{os.getpid() % 100000}x{time.monotonic_ns() % 10000}"

    # -- names and addresses -------------------------------------------------------------------

    @property
    def public_ip(self) -> str:
        return self.declared.public_ip

    @property
    def client(self) -> str:
        return f"{self.prefix}-client"

    @property
    def outsider(self) -> str:
        return f"{self.prefix}-out"

    @property
    def router(self) -> str:
        return f"{self.prefix}-router"

    @property
    def vm(self) -> str:
        return f"{self.prefix}-vm"

    @property
    def vm_address(self) -> str:
        return str(VM_NET[2])

    @property
    def idle_timeout(self) -> float:
        """The idle timeout the router enforces, in (scaled) seconds."""
        return max(1, round(self.declared.idle_timeout_s * self.time_scale))

    def client_address(self) -> str:
        """An address inside the allowed FTP sources (any, when FTP is open to all)."""
        sources = [s for s in self.declared.allowed_ftp_sources if s != "*"]
        if sources and not any(CLIENT_NET.subnet_of(ipaddress.IPv4Network(s)) for s in sources):
            raise LocalAzureError(f"the model's client net {CLIENT_NET} is not in {sources}")
        return str(CLIENT_NET[10])

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> LocalAzure:
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.proftpd is not None:
            end_process(self.proftpd)
            self.proftpd = None
        for ns in reversed(self.namespaces):
            # Any process still inside (a client a test left behind) is killed by its PID.
            for pid in _run("ip", "netns", "pids", ns, check=False).split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), 9)
            _run("ip", "netns", "del", ns, check=False)
        self.namespaces.clear()
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None

    def _netns(self, name: str) -> None:
        _run("ip", "netns", "add", name)
        self.namespaces.append(name)
        _run("ip", "-n", name, "link", "set", "lo", "up")

    def _link(self, ns: str, router_ip: str, peer_ip: str, prefix: int, tag: str) -> None:
        a, b = f"{tag}r", f"{tag}p"
        _run("ip", "link", "add", a, "netns", self.router, "type", "veth", "peer", b, "netns", ns)
        _run("ip", "-n", self.router, "addr", "add", f"{router_ip}/{prefix}", "dev", a)
        _run("ip", "-n", ns, "addr", "add", f"{peer_ip}/{prefix}", "dev", b)
        _run("ip", "-n", self.router, "link", "set", a, "up")
        _run("ip", "-n", ns, "link", "set", b, "up")

    def _build(self) -> None:
        for ns in (self.router, self.vm, self.client, self.outsider):
            self._netns(ns)
        self._link(self.vm, str(VM_NET[1]), self.vm_address, VM_NET.prefixlen, "v")
        self._link(self.client, str(CLIENT_NET[1]), self.client_address(), 24, "c")
        outsider = str(OUTSIDER_NET[2])
        self._link(self.outsider, str(OUTSIDER_NET[1]), outsider, OUTSIDER_NET.prefixlen, "o")
        _run("ip", "-n", self.router, "addr", "add", f"{self.public_ip}/32", "dev", "lo")
        # No default routes: clients know only the public address, the VM only the clients.
        _run(
            "ip",
            "-n",
            self.client,
            "route",
            "add",
            f"{self.public_ip}/32",
            "via",
            str(CLIENT_NET[1]),
        )
        _run(
            "ip",
            "-n",
            self.outsider,
            "route",
            "add",
            f"{self.public_ip}/32",
            "via",
            str(OUTSIDER_NET[1]),
        )
        for net, gateway in ((CLIENT_NET, VM_NET[1]), (OUTSIDER_NET, VM_NET[1])):
            _run("ip", "-n", self.vm, "route", "add", str(net), "via", str(gateway))
        if self.silent_resolver:
            _run(
                "ip", "-n", self.vm, "route", "add", f"{SILENT_RESOLVER}/32", "via", str(VM_NET[1])
            )
        _run("ip", "netns", "exec", self.router, "nft", "-f", "-", input=self.ruleset())
        for key, value in (
            ("net.ipv4.ip_forward", "1"),
            ("net.netfilter.nf_conntrack_tcp_loose", "0"),
            ("net.netfilter.nf_conntrack_tcp_timeout_established", str(int(self.idle_timeout))),
        ):
            _run("ip", "netns", "exec", self.router, "sysctl", "-q", "-w", f"{key}={value}")
        if self.serve:
            self._start_proftpd()

    def ruleset(self) -> str:
        """The router's nftables: Azure's public IP / LB, NSG and idle timeout."""
        d = self.declared
        if d.lb_ports is None:
            dnat = f"ip daddr {d.public_ip} meta l4proto tcp dnat ip to {self.vm_address}"
        else:
            ports = ", ".join(str(p) for p in d.lb_ports)
            dnat = f"ip daddr {d.public_ip} tcp dport {{ {ports} }} dnat ip to {self.vm_address}"
        forgotten = "reject with tcp reset" if d.tcp_reset else "drop"
        nsg = "\n".join(f"    {line}" for line in (r.nft() for r in d.nsg) if line)
        return f"""
table inet azure
delete table inet azure
table inet azure {{
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
    iifname "vr" accept
    oifname != "vr" drop
    # The NSG's inbound rules in priority order; Azure's defaults end with deny.
{nsg}
  }}
  chain router {{
    # Nothing answers on the router itself: unrouted packets to the public IP vanish.
    type filter hook input priority filter; policy drop;
  }}
}}
"""

    # -- the VM ----------------------------------------------------------------------------------

    def _stage(self) -> Path:
        stage = Path(tempfile.mkdtemp(prefix="ftpstack-l3-"))
        stage.chmod(0o755)
        for path, (content, mode) in self.declared.files.items():
            if path.endswith("proftpd.conf"):
                content = self.conf_edit(content) if self.conf_edit else content
            content = scale_keepalive(content, self.time_scale)
            target = stage / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
            target.chmod(int(mode, 8))
        return stage

    def _vm_script(self, stage: Path) -> str:
        lines = ["set -e", *tmpfs_lines()]
        if self.silent_resolver:
            (stage / "resolv.conf").write_text(f"nameserver {SILENT_RESOLVER}\n")
            lines.append(f"mount --bind {stage}/resolv.conf /etc/resolv.conf")
        for path in self.declared.files:
            if any(path.startswith(f"{d}/") for d in VM_DIRS):
                lines.append(f"install -D -m $(stat -c %a {stage}{path}) {stage}{path} {path}")
        for step in self.declared.setup:
            argv = step.split() if isinstance(step, str) else step
            if argv[0] in MACHINE_STEPS:
                continue
            lines.append(step if isinstance(step, str) else shlex.join(step))
        lines.append("exec proftpd -n -q -c /etc/proftpd/proftpd.conf")
        return "\n".join(lines)

    def start_in_vm(self, script: str, log: Path, port: int = 21) -> subprocess.Popen[bytes]:
        """Run `script` (bash) in the VM's network namespace and a mount namespace of its own;
        its last command should `exec` a server in the foreground. Returns once `port` listens.
        The caller owns the process (kill it by its PID); `close()` kills what is left."""
        with log.open("wb") as err:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", self.vm, "unshare", "--mount", "--propagation", "private",
                 "bash", "-c", script],
                stdout=err,
                stderr=err,
            )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise LocalAzureError(f"the server in the VM namespace exited: {log.read_text()}")
            if _run("ip", "netns", "exec", self.vm, "ss", "-Htln", f"sport = :{port}", check=False):
                return proc
            time.sleep(0.1)
        proc.kill()
        proc.wait()
        raise LocalAzureError(f"nothing listened on {port} within 20 s: {log.read_text()}")

    def _start_proftpd(self) -> None:
        self.staging = stage = self._stage()
        sysctl = [p for p in self.declared.files if p.startswith("/etc/sysctl.d/")]
        if self.apply_sysctl:
            for path in sysctl:
                _run("ip", "netns", "exec", self.vm, "sysctl", "-q", "-p", f"{stage}{path}")
        self.proftpd = self.start_in_vm(self._vm_script(stage), stage / "proftpd.stderr")

    def vm_file(self, path: str) -> Path:
        """Where a file of the VM is visible from the host: only its staged copy."""
        assert self.staging is not None
        return self.staging / path.lstrip("/")

    # -- running things in the namespaces -------------------------------------------------------

    def run(
        self, ns: str, *argv: str, timeout: float = 120, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", ns, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )

    def popen(self, ns: str, *argv: str, **kw: Any) -> subprocess.Popen[str]:
        return subprocess.Popen(["ip", "netns", "exec", ns, *argv], text=True, **kw)
