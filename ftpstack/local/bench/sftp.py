"""`make bench`'s sftp section: this stack's SFTP server (proftpd's mod_sftp on port 22) against
OpenSSH's own `internal-sftp` serving the same file from the same path of the same VM, in the same
run, through the same router (public address, NSG, DNAT, conntrack).

- OpenSSH: the machine's `sshd -D`, started for the section inside the VM on a port of the passive
  range (which the NSG lets in and the router forwards, as for iperf3), `Subsystem sftp
  internal-sftp`, offering the key exchanges, ciphers and MACs of mod_sftp (`ftpstack.sftp`).
  sshd logs in only a system account: it runs in a mount namespace of its own inside the VM,
  where /etc/passwd and /etc/group are copies with the bench user added (the virtual uid, home
  `/srv/ftp/<user>`, no shell: `ForceCommand internal-sftp`). No account is made on the machine,
  everything it needs is in the VM's private /run, and its process is ended by PID. No chroot:
  sshd chroots only into a directory of root's, and the user's home is the user's.
- the client: OpenSSH's `sftp` for both, in batch mode, with no configuration file, the user's key
  (`sshKeys`), the host keys pinned (ed25519, curve25519-sha256), one cipher for both
  (`--sftp-cipher`; aes128-gcm@openssh.com by default: AES-NI, no separate MAC) and the client's
  own request size and count (`--sftp-buffer` passes `-B` to both; by default the client asks
  OpenSSH, which announces limits@openssh.com, for 255 KiB per read and mod_sftp for 32 KiB).
- download: `get` of a file of the throughput section's size to /dev/null, timed from the end of
  the login (the first `pwd` answered) to the end of the `get` (the next `pwd` answered) by
  `python -m ftpstack.local.bench.sftp get` in the client namespace; the servers interleaved round
  by round, the order flipping each round; medians. First one download from each into a file,
  checked against the uploaded file's sha256.
- the path's ceiling: the throughput section's iperf3 median when it ran in this run, else iperf3
  measured here the same way, interleaved with the rounds.
- login: `sftp` started, logged in with the key, `ls`, quit: the client's whole run (`logins`),
  spaced 500 ms apart as the FTP logins (proftpd's master serves the next connection ~0.4 s after
  a session ends), p50 and p90.

The stack is the dev stack of the other sections with the bench user's key, on a model of its own
with its storage in memory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ftpstack import paths
from ftpstack import sftp as product
from ftpstack.local.bench import throughput as bench_throughput
from ftpstack.local.bench.live import PASSWORD, SPACING, USER, Sources, client, percentile
from ftpstack.local.bench.sftpclient import CIPHER, MODULE
from ftpstack.local.bench.throughput import children_cpu, proftpd_master
from ftpstack.local.net.azure import LocalAzure
from ftpstack.local.net.client import environment, last_json, module_argv
from ftpstack.local.net.netns import NetnsError, end_process
from ftpstack.local.net.steps import Bundle, edit_file
from ftpstack.local.net.vmhost import VmHost
from ftpstack.offline.declared import Declared
from ftpstack.offline.plan import Plan, Secret, plan_stack
from ftpstack.rules import SFTP_PORT

SSHD_DIR = "/run/ftpstack-bench-sshd"  # inside the VM (its /run is a private tmpfs)
SSHD_HOST_KEY = f"{SSHD_DIR}/ssh_host_ed25519_key"
SERVERS = ("mod_sftp", "openssh")


@dataclasses.dataclass(frozen=True)
class Options:
    size_mib: int
    rounds: int
    logins: int
    login_rounds: int
    cipher: str = CIPHER
    buffer: int | None = None  # the client's -B for both; None: its own choice
    directives: tuple[str, ...] = ()  # experiments: lines added to mod_sftp's <VirtualHost>


def _in_vhost(lines: tuple[str, ...]) -> Callable[[Bundle], Bundle] | None:
    """proftpd.conf with `lines` at the end of the SFTP server's <VirtualHost> (the last one)."""
    if not lines:
        return None
    extra = "".join(f"  {line}\n" for line in lines)

    def change(text: str) -> str:
        head, end, tail = text.rpartition("</VirtualHost>")
        return head + extra + end + tail

    return lambda bundle: edit_file(bundle, paths.PROFTPD_CONF, change)


# -- the servers ---------------------------------------------------------------------------------


def _vm(vm: VmHost, *argv: str) -> str:
    done = vm.exec(*argv)
    if done.returncode != 0:
        raise NetnsError(f"{' '.join(argv)} in the VM: {done.stderr.strip()}")
    return done.stdout


def _sshd_config(port: int) -> str:
    def listed(value: str) -> str:
        return ",".join(value.split())

    return f"""Port {port}
ListenAddress 0.0.0.0
HostKey {SSHD_HOST_KEY}
PidFile none
UsePAM no
PermitRootLogin no
AllowUsers {USER}
AuthenticationMethods publickey
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile {SSHD_DIR}/authorized_keys
KexAlgorithms {listed(product.KEY_EXCHANGES)}
Ciphers {listed(product.CIPHERS)}
MACs {listed(product.DIGESTS)}
Compression no
Subsystem sftp internal-sftp
ForceCommand internal-sftp
AllowTcpForwarding no
AllowAgentForwarding no
X11Forwarding no
PermitTTY no
UseDNS no
"""


def start_openssh(
    az: LocalAzure, port: int, user_key: str, log: Path
) -> tuple[subprocess.Popen[str], str]:
    """sshd with internal-sftp on `port` of the VM, the bench user logging in with `user_key`;
    the process that started it (end it by PID: sshd ends with it) and its host key's public
    line."""
    vm, uid = az.vms[0], paths.VIRTUAL_UID
    _vm(vm, "install", "-d", "-m", "0755", SSHD_DIR, "/run/sshd")
    _vm(vm, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", SSHD_HOST_KEY)
    account = f"{USER}:x:{uid}:{uid}::{paths.FTP_ROOT}/{USER}:/usr/sbin/nologin\n"
    vm.write(f"{SSHD_DIR}/passwd", Path("/etc/passwd").read_text() + account)
    vm.write(
        f"{SSHD_DIR}/group", Path("/etc/group").read_text() + f"{paths.VIRTUAL_GROUP}:x:{uid}:\n"
    )
    vm.write(f"{SSHD_DIR}/authorized_keys", user_key)
    vm.write(f"{SSHD_DIR}/sshd_config", _sshd_config(port))
    script = " && ".join(
        [
            *(f"mount --bind {SSHD_DIR}/{name} /etc/{name}" for name in ("passwd", "group")),
            f"exec /usr/sbin/sshd -D -e -f {SSHD_DIR}/sshd_config",
        ]
    )
    with log.open("w") as out:
        proc = vm.popen(
            # The account's copies are seen by sshd alone, not by the VM's proftpd. sshd is the
            # first process of a PID namespace of its own, so it reaps every process of its
            # sessions, even those its per-connection monitor leaves behind: what they used
            # adds up in its cutime and cstime (`children_cpu`), as proftpd's sessions in its.
            *("unshare", "--mount", "--propagation", "private", "--pid", "--mount-proc"),
            *("--kill-child=SIGTERM", "sh", "-c", script),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        az.vm_netns(0).wait_listening(port, proc, log)
        return proc, _vm(vm, "cat", f"{SSHD_HOST_KEY}.pub").strip()
    except BaseException:
        end_process(proc, timeout=5)
        raise


def only_child(pid: int) -> int:
    """The one child of `pid` (unshare's: the sshd it started)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    if len(children) != 1:
        raise NetnsError(f"process {pid} has {len(children)} children, not one")
    return int(children[0])


def mod_sftp_host_key(az: LocalAzure) -> str:
    """The public line of the ed25519 host key the stack's mod_sftp serves."""
    key = _vm(az.vms[0], "ssh-keygen", "-y", "-f", product.host_key_path("ed25519"))
    return " ".join(key.split()[:2])


# -- the measures --------------------------------------------------------------------------------


@dataclasses.dataclass
class Bench:
    """The section's model, its client's files, the two servers' ports and the processes that
    reap their sessions (`masters`); what each client's downloads cost it."""

    az: LocalAzure
    sources: Sources
    stage: Path
    ports: dict[str, int]
    masters: dict[str, int]
    options: Options
    client_cpu: dict[str, list[float]] = dataclasses.field(default_factory=dict)

    def run(self, server: str, command: str, *args: str) -> dict[str, Any]:
        o = self.options
        argv = [command, "--host", self.az.public_ip, "--port", str(self.ports[server])]
        argv += ["--user", USER, "--key", str(self.stage / "key"), "--cipher", o.cipher]
        argv += ["--known-hosts", str(self.stage / "known_hosts")]
        argv += ["--source", self.sources.take(self.az), *args]
        if o.buffer:
            argv += ["--buffer", str(o.buffer)]
        done = self.az.client.run(*module_argv(MODULE, *argv), env=environment(), timeout=900)
        if done.returncode != 0:
            raise NetnsError(f"sftp {command} from {server}: {done.stderr.strip()[-2000:]}")
        return last_json(done.stdout)

    def mib_s(self, server: str) -> float:
        got = self.run(server, "get", "--name", bench_throughput.BLOB)
        self.client_cpu.setdefault(server, []).append(float(got["client_cpu_s"]))
        return self.options.size_mib / float(got["data_s"])

    def check(self, server: str, sha256: str) -> None:
        """One download into a file: every byte the uploaded file's."""
        out = self.stage / "check.bin"
        try:
            self.run(server, "get", "--name", bench_throughput.BLOB, "--out", str(out))
            with out.open("rb") as f:
                got = hashlib.file_digest(f, "sha256").hexdigest()
        finally:
            out.unlink(missing_ok=True)
        if got != sha256:
            raise NetnsError(f"{server}: the downloaded file differs from the uploaded one")


def plan(public_key: str) -> Plan:
    """The dev stack of the other sections, the bench user with a login key."""
    user = {"name": USER, "password": PASSWORD, "sshKeys": [public_key]}
    return plan_stack("dev", overrides={"users": Secret([user]), "tls": "off"})


def _upload(bench: Bench) -> str:
    """The throughput section's file, uploaded over FTP; its sha256."""
    blob = bench_throughput.blob_file(bench.stage, bench.options.size_mib)
    try:
        args = ("--file", str(blob), "--name", bench_throughput.BLOB, "--timeout", "300")
        up = client(bench.az, "upload", *args, "--source", bench.sources.take(bench.az))
    finally:
        blob.unlink()
    if not up["reply"].startswith("226"):
        raise NetnsError(f"upload of the test file: {up}")
    return str(up["sha256"])


def _rounds(measures: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Each measure once a round, the order flipping every round."""
    samples: dict[str, list[float]] = {name: [] for name in measures}
    for index in range(rounds):
        for name in list(measures)[:: 1 if index % 2 == 0 else -1]:
            time.sleep(bench_throughput.SETTLE)
            samples[name].append(round(measures[name](), 1))
    return samples


def _server_cpu(bench: Bench, before: dict[str, float]) -> dict[str, float]:
    """Each server's CPU seconds since `before`, once its last session was reaped."""
    time.sleep(1)
    return {s: children_cpu(pid) - before[s] for s, pid in bench.masters.items()}


def _speeds(
    bench: Bench, limit: float | None, stack: contextlib.ExitStack
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """The download rounds, with iperf3's when no limit came from the throughput section; the
    samples, and what the rounds cost each server in CPU seconds."""
    measures: dict[str, Callable[[], float]] = {
        server: functools.partial(bench.mib_s, server) for server in SERVERS
    }
    if limit is None:
        port = Declared(bench.az.plan.to_json()).passive_range[-1]
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        server = bench.az.vms[0].popen("iperf3", "--server", "--port", str(port), **quiet)
        stack.callback(end_process, server, 5)
        bench.az.vm_netns(0).wait_listening(port, server)
        size = bench.options.size_mib << 20
        measures["iperf3"] = lambda: bench_throughput.iperf3(bench.az, port, size)["data"] / 2**20
    before = {s: children_cpu(pid) for s, pid in bench.masters.items()}
    samples = _rounds(measures, bench.options.rounds)
    return samples, _server_cpu(bench, before)


def _logins(bench: Bench) -> dict[str, list[float]]:
    o = bench.options
    each = str(max(1, o.logins // o.login_rounds))
    ms: dict[str, list[float]] = {s: [] for s in SERVERS}
    for _ in range(o.login_rounds):
        for server in SERVERS:
            ms[server] += bench.run(server, "logins", "--count", each, "--spacing", str(SPACING))[
                "ms"
            ]
    return ms


def _user_key(stage: Path) -> str:
    """A login key for the bench user (stage/key); its public line."""
    key = stage / "key"
    argv = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", USER, "-f", str(key)]
    subprocess.run(argv, check=True, capture_output=True)
    return key.with_suffix(".pub").read_text().strip()


def measure(sources: Sources, options: Options, limit: float | None) -> dict[str, Any]:
    """The section: `limit` is the throughput section's iperf3 median (MiB/s), if it ran."""
    with contextlib.ExitStack() as stack:
        temp = tempfile.TemporaryDirectory(prefix="ftpstack-bench-sftp-", dir="/dev/shm")
        stage = Path(stack.enter_context(temp))
        user_key = _user_key(stage)
        (stage / "storage").mkdir()  # the FTP root, in memory
        edit = _in_vhost(options.directives)
        model = LocalAzure(plan(user_key), storage=stage / "storage", bundle_edit=edit)
        az = stack.enter_context(model)
        port = Declared(az.plan.to_json()).passive_range[-2]
        sshd, sshd_key = start_openssh(az, port, f"{user_key}\n", stage / "sshd.log")
        stack.callback(end_process, sshd, 5)
        known = f"{az.public_ip} {mod_sftp_host_key(az)}\n[{az.public_ip}]:{port} {sshd_key}\n"
        (stage / "known_hosts").write_text(known)
        ports = {"mod_sftp": SFTP_PORT, "openssh": port}
        masters = {"mod_sftp": proftpd_master(az), "openssh": only_child(sshd.pid)}
        bench = Bench(az, sources, stage, ports, masters, options)
        sha256 = _upload(bench)
        for server in SERVERS:
            bench.check(server, sha256)
        bench.client_cpu.clear()
        speeds, server_cpu = _speeds(bench, limit, stack)
        ms = _logins(bench)
    return _results(bench, speeds, server_cpu, limit, ms)


def _cpu_per_gib(bench: Bench, server_cpu: dict[str, float]) -> dict[str, dict[str, float]]:
    gib = bench.options.rounds * bench.options.size_mib / 1024
    return {
        s: {
            "server": round(server_cpu[s] / gib, 3),
            "client": round(sum(bench.client_cpu[s]) / gib, 3),
        }
        for s in SERVERS
    }


def _results(
    bench: Bench,
    speeds: dict[str, list[float]],
    server_cpu: dict[str, float],
    limit: float | None,
    ms: dict[str, list[float]],
) -> dict[str, Any]:
    mod, ssh = (statistics.median(speeds[s]) for s in SERVERS)
    ceiling = limit if limit is not None else statistics.median(speeds["iperf3"])
    login = {
        f"{server}_login_{name}_ms": round(percentile(ms[server], p), 1)
        for server in SERVERS
        for name, p in (("p50", 0.5), ("p90", 0.9))
    }
    o = bench.options
    return {
        "size_mib": o.size_mib,
        "rounds": o.rounds,
        "cipher": o.cipher,
        "client_buffer": o.buffer,
        "mod_sftp_directives": list(o.directives),
        "openssh_port": bench.ports["openssh"],
        "mod_sftp_mib_s": mod,
        "openssh_mib_s": ssh,
        "ratio": round(mod / ssh, 3),
        "limit_iperf3_mib_s": round(ceiling, 1),
        "limit_from": "throughput" if limit is not None else "sftp",
        "vs_iperf3": round(mod / ceiling, 3),
        "openssh_vs_iperf3": round(ssh / ceiling, 3),
        "cpu_s_per_gib": _cpu_per_gib(bench, server_cpu),
        **login,
        "login_n": len(ms["mod_sftp"]),
        "samples": speeds,
    }


def rows(s: dict[str, Any]) -> list[str]:
    """The section's rows of the bench table."""
    cpu = s["cpu_s_per_gib"]
    return [
        f"| {s['size_mib']} MiB SFTP download (OpenSSH sftp `get`, {s['cipher']}), MiB/s | "
        f"{s['mod_sftp_mib_s']} | OpenSSH internal-sftp {s['openssh_mib_s']} | ratio "
        f"{s['ratio']}; {s['vs_iperf3']} of iperf3's {s['limit_iperf3_mib_s']} (medians of "
        f"{s['rounds']} rounds) |",
        f"| same, CPU s per GiB, server / client | {cpu['mod_sftp']['server']} / "
        f"{cpu['mod_sftp']['client']} | {cpu['openssh']['server']} / {cpu['openssh']['client']} "
        "| |",
        f"| SFTP login (key) + ls + quit, p50 ms | {s['mod_sftp_login_p50_ms']} | OpenSSH "
        f"{s['openssh_login_p50_ms']} | p90 {s['mod_sftp_login_p90_ms']} and "
        f"{s['openssh_login_p90_ms']}, {s['login_n']} each |",
    ]
