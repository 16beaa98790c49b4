"""What bounds a download's throughput on the declared machines, in one line of `make plan`: the
VM size's network cap, the disk's (the VM size's cap on uncached disk throughput, which a data
disk's reads cannot pass), the shared Azure Files share's (one figure for every instance), and the
server's own CPU cost of FTPS as `make bench` measures it. The lowest applies; reads that the
page cache serves skip the disk's.

Azure's figures, documented maxima (not guarantees), from MicrosoftDocs/azure-docs:
- network and uncached disk throughput per size: articles/virtual-machines/dv5-dsv5-series.md
  (Dsv5: "Max network bandwidth (Mbps)", "Max uncached disk throughput: IOPS/MBps", burst for up
  to 30 minutes) and articles/virtual-machines/sizes/general-purpose/bv1-series.md (B-series v1:
  uncached disk MBps and burst; its network bandwidth column is empty: no documented cap);
- B-series v1 baseline CPU ("Base CPU Performance Percentage", per vCPU: B2s banks 24 credits an
  hour, 40 % of one vCPU in all), the same page;
- an Azure Files premium (provisioned v1) share: ingress + egress MiB/s = 100 +
  CEILING(0.04 x GiB) + CEILING(0.06 x GiB), articles/storage/files/understanding-billing.md.

Sizes outside these tables are named, not guessed: the summary says their figures are not known
here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ftpstack.offline import declared as d

MIB = 1 << 20


@dataclass(frozen=True)
class Size:
    vcpus: int
    baseline: float  # the share of each vCPU sustained (1.0: not burstable)
    network_mbps: int | None  # Azure's Mbit/s (10^6 bit/s); None: not documented
    disk_mbps: float  # uncached disk throughput, MB/s (10^6 bytes/s)
    disk_burst_mbps: float


SIZES = {
    "Standard_B1s": Size(1, 0.10, None, 10, 100),
    "Standard_B2s": Size(2, 0.20, None, 15, 100),
    "Standard_B2ms": Size(2, 0.30, None, 22.5, 100),
    "Standard_D2s_v5": Size(2, 1.0, 12500, 85, 1200),
    "Standard_D4s_v5": Size(4, 1.0, 12500, 145, 1200),
}
# proftpd's CPU seconds per GiB sent over FTPS (TLS 1.3, AES-256-GCM), make bench's
# throughput.server_cpu_s_per_gib.ftps_tls13 on this repository's machine (docs/benchmarks.md):
# an estimate of what one vCPU sends, not Azure's figure.
FTPS_CPU_S_PER_GIB = 1.8


def share_mib_s(gib: int) -> int:
    """A premium (provisioned v1) share's ingress + egress throughput, MiB/s."""
    return 100 + math.ceil(0.04 * gib) + math.ceil(0.06 * gib)


def _mib(mbytes_per_s: float) -> int:
    return round(mbytes_per_s * 1e6 / MIB)


def line(view: d.Declared) -> str | None:
    """One line: each cap, and which one binds the whole stack's downloads."""
    vms = view.of(d.VM)
    if not vms:
        return None
    size_name = str(vms[0]["inputs"].get("hardwareProfile", {}).get("vmSize"))
    count, size = len(vms), SIZES.get(size_name)
    short = size_name.removeprefix("Standard_")
    if size is None:
        return f"Throughput caps: {short} not in ftpstack's table (see Azure's size pages)"
    parts: list[str] = []
    caps: dict[str, float] = {}  # each limit on the whole stack, MiB/s
    if size.network_mbps:
        caps["NIC"] = count * _mib(size.network_mbps / 8)
        parts.append(f"NIC {_mib(size.network_mbps / 8):,}")
    else:
        parts.append("NIC not documented")
    if view.of(d.DISK):
        caps["disk"] = count * _mib(size.disk_mbps)
        parts.append(f"disk {_mib(size.disk_mbps):,} (burst {_mib(size.disk_burst_mbps):,})")
    server = round(size.vcpus * size.baseline * 1024 / FTPS_CPU_S_PER_GIB)
    caps["CPU"] = count * server
    parts.append(f"FTPS CPU ~{server:,}" + (" (baseline)" if size.baseline < 1 else ""))
    shares = view.of(d.FILE_SHARE)
    if shares:
        gib = sum(int(s["inputs"].get("shareQuota", 0)) for s in shares)
        caps["share"] = share_mib_s(gib)
        parts.append(f"share {share_mib_s(gib):,} for all {count}")
    lowest = min(caps, key=lambda k: caps[k])
    return f"Throughput caps per VM, MiB/s ({short}): {', '.join(parts)}: the {lowest} limits"
