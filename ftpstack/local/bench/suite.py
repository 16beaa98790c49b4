"""`make bench`: this stack measured on the local Azure model (`LocalAzure`), peers side by side,
medians of interleaved rounds (this machine is noisy: ±30-40 % between runs of one transfer).

- throughput (in `throughput`): curl's passive binary RETR of a large file through the public
  address, over FTP and FTPS (PROT P, TLS 1.3 and 1.2), against nginx serving the same file from
  the same VM over HTTP (sendfile) and HTTPS (TLS 1.3, the stack's certificate) to the same curl,
  and the path's own ceiling, iperf3 with its server on a passive port in the VM;
- sftp (in `sftp`): the same download over SFTP from this stack's mod_sftp and from OpenSSH's
  internal-sftp serving the same file in the same VM, against the same ceiling; SFTP logins;
- login latency (peers in `peers`): connect + login + PASV + 1-byte RETR + QUIT for this stack,
  vsftpd, Debian's stock proftpd and this stack with the VM's resolver silent, spaced 500 ms
  apart, and this stack back to back (p90): proftpd's master serves the next connection only
  some 0.4 s after a session ends, a compile-time pause no directive changes;
- concurrency, reconfigure (in `live`): `maxClients` simultaneous transfers and what the next
  client gets; live changes through `LocalAzure.apply` under a steady stream of logins and
  across running downloads;
- ha (in `ha`): two instances behind the load balancer, unscaled: the failover after a
  server's sudden death, logins across a rolling replacement of both instances, and the login
  p50 with two instances against one;
- abuse (in `abuse`): a customer's logins while five addresses hold idle connections.

Clients are `python -m ftpstack.local.net.client` (and curl, iperf3) in the client namespace, each
run from a fresh source address: the stack bans an address after `banConnectsPerMinute`
connections a minute (600 by default; once 60) and allows 10 at a time per address, and many
customers, not one, log in at once.

Writes bench/results.json and prints markdown tables; exit 0 when every target is met, else 1.
Needs root (namespaces). One section alone: `make bench ARGS="--sections sftp"`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ftpstack import paths
from ftpstack.local.bench import abuse, live, scale, sftpclient
from ftpstack.local.bench import ha as bench_ha
from ftpstack.local.bench import sftp as bench_sftp
from ftpstack.local.bench import throughput as bench_throughput
from ftpstack.local.bench.live import (
    PASSWORD,
    SPACING,
    USER,
    Sources,
    client,
    logins,
    percentile,
)
from ftpstack.local.bench.peers import ONE_BYTE, Peer, start_peer
from ftpstack.local.net.azure import LocalAzure
from ftpstack.local.net.steps import Bundle, edit_file
from ftpstack.offline.declared import Declared
from ftpstack.offline.plan import PROJECT_DIR, Plan, Secret, plan_stack

RESULTS = PROJECT_DIR / "bench" / "results.json"
OVERRIDES: dict[str, Any] = {"users": Secret([{"name": USER, "password": PASSWORD}]), "tls": "off"}
SECTIONS = ("throughput", "sftp", "login_ms", "concurrency", "reconfigure", "ha", "scale", "abuse")


def login_latency(
    contenders: dict[str, LocalAzure], sources: Sources, count: int, rounds: int
) -> dict[str, Any]:
    """Contenders interleaved in rounds, each on its own model (one server per port 21)."""
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    bursts: list[float] = []
    each = max(1, count // rounds)
    for _ in range(rounds):
        for name, az in contenders.items():
            samples[name] += logins(az, sources, each, SPACING)
        bursts += logins(contenders["ftpstack"], sources, each, 0)
    results: dict[str, Any] = {}
    for name, values in samples.items():
        results[f"{name}_p50"] = round(statistics.median(values), 2)
        results[f"{name}_n"] = len(values)
    results["ftpstack_burst_p90"] = round(percentile(bursts, 0.9), 2)
    results["ftpstack_burst_n"] = len(bursts)
    return results


# -- targets and the tables ------------------------------------------------------------------

Check = Callable[[dict[str, Any]], bool]
# fmt: off
TARGETS: list[tuple[str, str, Check]] = [
    # Against the file server customers know, on the same path, same file, same client (iperf3,
    # the path's synthetic ceiling, is reported beside them, not a target).
    ("throughput", "FTP (curl) >= 0.9 x nginx HTTP", lambda r: r["ratio_vs_nginx_http"] >= 0.9),
    ("throughput", "FTPS (curl, TLS 1.3) >= 0.9 x nginx HTTPS",
     lambda r: r["ratio_ftps_vs_nginx_https"] >= 0.9),
    ("login_ms", "login p50 <= vsftpd p50", lambda r: r["ftpstack_p50"] <= r["vsftpd_p50"]),
    ("login_ms", ">= 100x faster than stock proftpd p50",
     lambda r: r["stock_proftpd_p50"] >= 100 * r["ftpstack_p50"]),
    ("login_ms", "DNS-down p50 <= 1.2 x normal",
     lambda r: r["ftpstack_dns_down_p50"] <= 1.2 * r["ftpstack_p50"]),
    ("concurrency", "all maxClients transfers at once, all intact",
     lambda r: r["simultaneous"] == r["clients"] == r["succeeded"]),
    ("concurrency", "next client refused in < 1 s",
     lambda r: r["refused_ms"] < 1000 and r["next_client_reply"][:3] in {"421", "530"}),
    ("reconfigure", "apply to first login of the new user, p50 <= 10 s",
     lambda r: r["apply_to_login_s"] is not None and r["apply_to_login_s"] <= 10),
    ("reconfigure", "no failed login during the changes",
     lambda r: r["login_attempts_during_change"] > 0 and r["failed_logins_during_change"] == 0),
    ("reconfigure", "no transfer broken by a change",
     lambda r: r["transfers_spanning_change"] == r["changes"] and r["transfers_broken"] == 0),
    ("ha", "failover within the probe's window (2 x 5 s) + 1 s, every trial",
     lambda r: r["failover_max_s"] is not None
     and r["failover_max_s"] <= r["probe_threshold"] * r["probe_interval_s"] + 1),
    ("ha", "no failed login across a rolling replacement of every instance",
     lambda r: r["rolling_replaced"] == r["instances"] and r["login_attempts_rolling"] > 0
     and r["failed_logins_rolling"] == 0),
    ("ha", "login p50 with 2 instances <= 1.5 x with 1",
     lambda r: r["login_p50_2_instances_ms"] <= 1.5 * r["login_p50_1_instance_ms"]),
    ("scale", "login p50 with 5,000 users <= 1.5 x with 10",
     lambda r: r["login_p50_ratio_5000_vs_10"] <= 1.5),
    ("abuse", "customer login p95 <= 2000 ms under an idle flood",
     lambda r: r["customer_login_ms_under_idle_flood"] <= 2000),
    ("abuse", "no customer login failed while every hostile connection was held",
     lambda r: r["customer_logins"] > 0 and r["customer_failed_logins"] == 0
     and r["flood_held_max"] == r["attackers"] * r["per_source"]),
    ("sftp", "SFTP download >= 0.9 x OpenSSH internal-sftp", lambda r: r["ratio"] >= 0.9),
]
# fmt: on


def targets(results: dict[str, Any]) -> dict[str, bool]:
    """Each target of a section that ran (and holds results) -> met."""
    return {
        name: bool(check(results[section]))
        for section, name, check in TARGETS
        if results.get(section)
    }


def _login_rows(lg: dict[str, Any]) -> list[str]:
    return [
        f"| login + PASV + 1-byte RETR, p50 ms | {lg['ftpstack_p50']} | vsftpd {lg['vsftpd_p50']} "
        f"| stock proftpd {lg['stock_proftpd_p50']} |",
        f"| same, resolver silent, p50 ms | {lg['ftpstack_dns_down_p50']} | | |",
        f"| same, back to back, p90 ms | {lg['ftpstack_burst_p90']} | | |",
    ]


def _concurrency_rows(c: dict[str, Any]) -> list[str]:
    return [
        f"| {c['clients']} simultaneous transfers | {c['succeeded']} intact "
        f"({c['simultaneous']} at once) | | next client: {c['next_client_reply'][:40]!r} "
        f"in {c['refused_ms']} ms |"
    ]


def _reconfigure_rows(rc: dict[str, Any]) -> list[str]:
    return [
        f"| new user live after apply, p50 s | {rc['apply_to_login_s']} | | {rc['changes']} "
        f"changes, max {rc['apply_to_login_max_s']} s |",
        f"| failed logins during the changes | {rc['failed_logins_during_change']} of "
        f"{rc['login_attempts_during_change']} | | |",
        f"| transfers broken by a change | {rc['transfers_broken']} of "
        f"{rc['transfers_spanning_change']} | | |",
    ]


def _ha_rows(ha: dict[str, Any]) -> list[str]:
    probe = f"{ha['probe_threshold']} x {ha['probe_interval_s']:g} s"
    return [
        f"| {ha['instances']} instances: one proftpd killed -> logins reliable again, s "
        f"(unscaled) | {ha['failover_s']} (median of {ha['failovers']}, max "
        f"{ha['failover_max_s']}) | probe out after "
        f"{', '.join(map(str, ha['failover_probe_out_samples_s']))} s | "
        f"probe {probe}; {ha['failed_logins_failover']} of {ha['failover_attempts']} logins "
        "failed meanwhile (one every 100 ms) |",
        f"| failed logins across a rolling replacement of both instances | "
        f"{ha['failed_logins_rolling']} of {ha['login_attempts_rolling']} | | "
        f"{ha['rolling_s']} s, one login every 200 ms |",
        f"| login + PASV + 1-byte RETR, p50 ms, 2 instances | {ha['login_p50_2_instances_ms']} "
        f"| 1 instance {ha['login_p50_1_instance_ms']} | ratio {ha['login_p50_ratio']}, "
        f"{ha['login_n']} each |",
    ]


def _scale_rows(sc: dict[str, Any]) -> list[str]:
    return [
        f"| a live change adding one user to 5,000, apply s | {sc['users_5000_apply_s']} | "
        f"to 10 users {sc['users_10_apply_s']} | |",
        f"| login + PASV + 1-byte RETR, p50 ms, 5,000 users | {sc['login_p50_5000_ms']} | "
        f"10 users {sc['login_p50_10_ms']} | ratio {sc['login_p50_ratio_5000_vs_10']}, "
        f"{sc['login_n']} each |",
    ]


ROWS: dict[str, Callable[[Any], list[str]]] = {
    "throughput": bench_throughput.rows,
    "sftp": bench_sftp.rows,
    "login_ms": _login_rows,
    "concurrency": _concurrency_rows,
    "reconfigure": _reconfigure_rows,
    "ha": _ha_rows,
    "scale": _scale_rows,
    "abuse": abuse.rows,
}


def table(results: dict[str, Any]) -> str:
    """The measures and the targets, as markdown."""
    rows = ["| measure | ftpstack | peer | note |", "|---|---|---|---|"]
    for section, make in ROWS.items():
        if section in results:
            rows += make(results[section])
    rows += ["", "| target | met |", "|---|---|"]
    rows += [f"| {name} | {'yes' if ok else 'NO'} |" for name, ok in results["targets"].items()]
    return "\n".join(rows)


# -- the run -----------------------------------------------------------------------------------


def _with_directives(lines: list[str]) -> Callable[[Bundle], Bundle] | None:
    """An experiment: proftpd.conf with extra directives (--proftpd-directive)."""
    if not lines:
        return None
    extra = "".join(f"{line}\n" for line in lines)
    return lambda bundle: edit_file(bundle, paths.PROFTPD_CONF, lambda text: text + extra)


def _sftp_options(args: argparse.Namespace) -> bench_sftp.Options:
    return bench_sftp.Options(
        args.size_mib,
        args.rounds,
        args.logins,
        args.login_rounds,
        args.sftp_cipher,
        args.sftp_buffer,
        tuple(args.sftp_directive),
    )


def run(args: argparse.Namespace, stack: contextlib.ExitStack, tmp: Path) -> dict[str, Any]:
    plan = plan_stack("dev", overrides=OVERRIDES)
    sections, sources = set(args.sections), Sources()
    results: dict[str, Any] = {"load_average_start": os.getloadavg()[0], "cpus": os.cpu_count()}
    storage = tmp / "shm-storage"  # the throughput file stays in memory, never written back
    storage.mkdir()
    edit = _with_directives(args.proftpd_directive)
    az = stack.enter_context(LocalAzure(plan, storage=storage, bundle_edit=edit))
    if "throughput" in sections:
        print("throughput ...", file=sys.stderr)
        # FTP and FTPS from one server: TLS allowed, as a customer's stack may have it.
        tls = plan_stack("dev", overrides={**OVERRIDES, "tls": "allowed"})
        with LocalAzure(tls, storage=storage, bundle_edit=edit) as model:
            throughput = bench_throughput.measure(model, sources, args.size_mib, args.rounds)
        results["throughput"] = {**throughput, "proftpd_directives": args.proftpd_directive}
    if "sftp" in sections:
        print("sftp ...", file=sys.stderr)
        limit = results.get("throughput", {}).get("limit_iperf3_mib_s")  # measured: reused
        results["sftp"] = bench_sftp.measure(sources, _sftp_options(args), limit)
    if "login_ms" in sections:
        print("login latency ...", file=sys.stderr)
        results["login_ms"] = _login_section(args, plan, az, sources, stack, tmp)
    if "concurrency" in sections:
        print("concurrency ...", file=sys.stderr)
        results["concurrency"] = live.concurrency(az, sources, args.hold_seconds)
    if "reconfigure" in sections:
        print("reconfigure ...", file=sys.stderr)
        model = stack.enter_context(LocalAzure(plan))
        plans = live.change_plans(OVERRIDES, args.changes)
        results["reconfigure"] = live.reconfigure(model, sources, plans, args.slow_seconds)
    if "ha" in sections:
        print("ha ...", file=sys.stderr)
        results["ha"] = bench_ha.measure(
            OVERRIDES, sources, args.logins, args.login_rounds, args.failovers
        )
    if "scale" in sections:
        print("scale ...", file=sys.stderr)
        results["scale"] = scale.measure(sources, args.logins, args.login_rounds)
    if "abuse" in sections:
        print("abuse ...", file=sys.stderr)
        results["abuse"] = abuse.measure(plan, sources, args.flood_seconds)
    results["load_average_end"] = os.getloadavg()[0]
    return results


def _login_section(
    args: argparse.Namespace,
    plan: Plan,
    az: LocalAzure,
    sources: Sources,
    stack: contextlib.ExitStack,
    tmp: Path,
) -> dict[str, Any]:
    dns_down = stack.enter_context(LocalAzure(plan, silent_resolver=True))
    for model in (az, dns_down):
        client(model, "upload", "--size", "1", "--name", ONE_BYTE, "--source", sources.take(model))
    users = next(f["content"] for f in plan.bundles()[0]["files"] if f["path"] == paths.USERS_FILE)
    passive = Declared(plan.to_json()).passive_range
    contenders = {"ftpstack": az}
    for name in ("vsftpd", "stock_proftpd"):
        model = stack.enter_context(LocalAzure(plan, serve=False))
        peer: Peer = start_peer(name, model, passive, users.splitlines()[0] + "\n", tmp / name)
        stack.callback(peer.close)
        contenders[name] = model
    contenders["ftpstack_dns_down"] = dns_down
    return login_latency(contenders, sources, args.logins, args.login_rounds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="the downloaded file")
    parser.add_argument("--rounds", type=int, default=11, help="throughput rounds")
    parser.add_argument("--logins", type=int, default=50, help="logins per contender")
    parser.add_argument("--login-rounds", type=int, default=5)
    parser.add_argument("--hold-seconds", type=float, default=10, help="concurrency: each transfer")
    parser.add_argument("--changes", type=int, default=5, help="reconfigure: live changes")
    parser.add_argument("--slow-seconds", type=float, default=4, help="reconfigure: each download")
    parser.add_argument("--failovers", type=int, default=3, help="ha: servers killed in turn")
    parser.add_argument("--flood-seconds", type=float, default=45, help="abuse: its duration")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument(
        "--proftpd-directive",
        action="append",
        default=[],
        metavar="LINE",
        help="experiment: append LINE to this stack's proftpd.conf",
    )
    parser.add_argument("--sftp-cipher", default=sftpclient.CIPHER, help="sftp: both servers'")
    parser.add_argument("--sftp-buffer", type=int, help="sftp: the client's -B for both")
    parser.add_argument(
        "--sftp-directive",
        action="append",
        default=[],
        metavar="LINE",
        help="experiment: add LINE to mod_sftp's <VirtualHost>",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("make bench needs root (network namespaces)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="ftpstack-bench-", dir="/dev/shm") as tmp:
        Path(tmp).chmod(0o755)
        with contextlib.ExitStack() as stack:
            results = run(args, stack, Path(tmp))
    results["targets"] = targets(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    return 0 if all(results["targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
