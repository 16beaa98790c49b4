"""The billable units a plan declares, with rough list prices, so a reviewer sees cost drivers in
the pull request's diff.

Prices are pay-as-you-go list prices in USD for West Europe (Linux), rounded, per month of 730
hours; they change and differ by region and agreement. They rank the parts; the Azure pricing
calculator prices a deployment.
"""

from __future__ import annotations

from dataclasses import dataclass

from ftpstack import azure_rules as azure
from ftpstack.offline import declared as d

HOURS = 730
PRICES_AS_OF = "2026-10 (Azure Retail Prices API, list, West Europe)"
VM_HOURLY = {
    "Standard_B1s": 0.012,
    "Standard_B2s": 0.048,
    "Standard_B2ms": 0.096,
    "Standard_D2s_v5": 0.115,
    "Standard_D4s_v5": 0.23,
}
LB_BASE_HOURLY, LB_RULE_HOURLY = 0.025, 0.01
PUBLIC_IP_HOURLY = 0.005
PRIVATE_ENDPOINT_HOURLY = 0.01
# Premium (SSD) Azure Files, provisioned v1, per provisioned GiB-month; zone-redundant storage
# lists at about 1.25 x the locally redundant price (https://azure.microsoft.com/pricing/details/storage/files/).
PREMIUM_FILES_GIB_MONTH = {"Premium_LRS": 0.18, "Premium_ZRS": 0.225}
# Managed disks are billed by the tier that holds the size (E = Standard SSD, P = Premium SSD,
# S = Standard HDD): GiB -> USD per month.
DISK_TIERS = {
    "StandardSSD_LRS": (
        (32, 2.40),
        (64, 4.80),
        (128, 9.60),
        (256, 19.20),
        (512, 38.40),
        (1024, 76.80),
        (32767, 1228.80),
    ),
    "Premium_LRS": (
        (32, 5.81),
        (64, 11.20),
        (128, 21.68),
        (256, 41.81),
        (512, 80.54),
        (1024, 148.68),
        (32767, 4505.60),
    ),
    "Standard_LRS": (
        (32, 1.54),
        (64, 3.01),
        (128, 5.89),
        (256, 11.33),
        (512, 21.76),
        (1024, 40.96),
        (32767, 1310.72),
    ),
}
OS_DISK_GB = 30
# Operations (https://azure.microsoft.com/pricing/details/monitor/, .../backup/): Analytics logs
# per ingested GB (the first 5 GB a month of a billing account are free; 31 days of retention are
# in the price); what a server logs is an estimate: a JSON record is about 300 bytes, so 0.5 GB
# is some 50,000 transfers and logins a day, with the disk counter every minute.
LOG_GB_PRICE = 2.99
LOG_GB_PER_VM_MONTH = 0.5
# Metric alert rules per monitored time series a month (an instance's probe is one); log search
# alerts evaluated every 15 minutes, per rule and series; activity log alerts and the first 1,000
# e-mails a month are free.
METRIC_SERIES_MONTH = 0.10
LOG_ALERT_MONTH = 0.50
# Azure Disk Backup: the protected-instance fee for a disk, plus its incremental snapshots
# (Standard snapshot storage per used GiB; bounded here by the disk's size).
DISK_BACKUP_INSTANCE_MONTH = 5.0
SNAPSHOT_GIB_MONTH = 0.05


@dataclass(frozen=True)
class Unit:
    what: str
    count: int
    monthly: float | None  # None: not in the table; see the pricing page

    def __str__(self) -> str:
        price = f"~${self.monthly:,.0f}/month" if self.monthly is not None else "see pricing"
        return f"{self.count} x {self.what}: {price}"


def disk_monthly(sku: str, size_gb: int) -> float | None:
    for limit, price in DISK_TIERS.get(sku, ()):
        if size_gb <= limit:
            return price
    return None


def units(plan: d.Declared) -> list[Unit]:
    out: list[Unit] = []
    vms = plan.of(d.VM)
    sizes: dict[str, int] = {}
    for vm in vms:
        size = str(vm["inputs"].get("hardwareProfile", {}).get("vmSize"))
        sizes[size] = sizes.get(size, 0) + 1
    for size, count in sizes.items():
        hourly = VM_HOURLY.get(size)
        out.append(Unit(f"VM {size}", count, hourly * HOURS * count if hourly else None))
    if vms:
        each = disk_monthly("StandardSSD_LRS", OS_DISK_GB) or 0
        out.append(Unit(f"OS disk StandardSSD_LRS {OS_DISK_GB} GiB", len(vms), each * len(vms)))
    for disk in plan.of(d.DISK):
        i = disk["inputs"]
        sku, gib = str(i.get("sku", {}).get("name")), int(i.get("diskSizeGB", 0))
        out.append(Unit(f"data disk {sku} {gib} GiB", 1, disk_monthly(sku, gib)))
    ips = plan.of(d.PUBLIC_IP)
    if ips:
        out.append(
            Unit("Standard static public IPv4", len(ips), PUBLIC_IP_HOURLY * HOURS * len(ips))
        )
    out += _load_balancer(plan) + _shared_storage(plan) + _operations(plan)
    return out


def _operations(plan: d.Declared) -> list[Unit]:
    out = []
    vms = len(plan.of(d.VM))
    agents = len(plan.of(d.COLLECTION_ASSOCIATION))
    if agents:
        gb = LOG_GB_PER_VM_MONTH * agents
        out.append(Unit(f"Log Analytics (est. {gb:g} GB)", 1, gb * LOG_GB_PRICE))
    metric = plan.of(d.METRIC_ALERT)
    if metric or plan.of(d.LOG_ALERT):
        series = sum(vms if _split(a) else 1 for a in metric)
        monthly = series * METRIC_SERIES_MONTH + len(plan.of(d.LOG_ALERT)) * vms * LOG_ALERT_MONTH
        out.append(Unit("alert rules", len(metric) + len(plan.of(d.LOG_ALERT)), monthly))
    sizes = [int(disk["inputs"].get("diskSizeGB", 0)) for disk in plan.of(d.DISK)]
    if plan.of(d.BACKUP_INSTANCE):
        monthly = sum(DISK_BACKUP_INSTANCE_MONTH + g * SNAPSHOT_GIB_MONTH for g in sizes)
        out.append(Unit("disk backup (instance + snapshots)", len(sizes), monthly))
    if plan.of(d.WORKFLOW):
        # Billed by the changed data the snapshots hold, which only the use tells.
        out.append(Unit("share snapshots", 1, None))
    return out


def _split(alert: d.Resource) -> bool:
    """A metric alert that watches one series per instance (split by a dimension)."""
    criteria = alert["inputs"].get("criteria") or {}
    return any(c.get("dimensions") for c in criteria.get("allOf", []))


def _load_balancer(plan: d.Declared) -> list[Unit]:
    out = []
    for lb in plan.of(d.LOAD_BALANCER):
        i = lb["inputs"]
        billed = len(i.get("loadBalancingRules", [])) + len(i.get("outboundRules", []))
        extra = max(0, billed - azure.LB_RULES_INCLUDED)
        out.append(
            Unit(
                f"Standard load balancer ({billed} billed rules, "
                f"{azure.LB_RULES_INCLUDED} included)",
                1,
                (LB_BASE_HOURLY + extra * LB_RULE_HOURLY) * HOURS,
            )
        )
        nat = len(plan.nat_rules())
        if nat:
            out.append(Unit("inbound NAT rules (free)", nat, 0.0))
    return out


def _shared_storage(plan: d.Declared) -> list[Unit]:
    out = []
    skus = {
        str(a["inputs"].get("accountName") or a["name"]): str(
            (a["inputs"].get("sku") or {}).get("name")
        )
        for a in plan.of(d.STORAGE_ACCOUNT)
    }
    for share in plan.of(d.FILE_SHARE):
        gib = int(share["inputs"].get("shareQuota", 0))
        sku = skus.get(str(share["inputs"].get("accountName")), "Premium_LRS")
        price = PREMIUM_FILES_GIB_MONTH.get(sku)
        redundancy = "zone-redundant" if sku.endswith("ZRS") else "locally redundant"
        out.append(
            Unit(
                f"Azure Files premium NFS share {gib} GiB ({redundancy})",
                1,
                gib * price if price is not None else None,
            )
        )
    endpoints = plan.of(d.PRIVATE_ENDPOINT)
    if endpoints:
        out.append(
            Unit(
                "private endpoint", len(endpoints), PRIVATE_ENDPOINT_HOURLY * HOURS * len(endpoints)
            )
        )
    return out


def summary(plan: d.Declared) -> tuple[list[Unit], float, Unit | None]:
    """(units, the known monthly total, the biggest driver)."""
    found = units(plan)
    priced = [u for u in found if u.monthly]
    total = sum(u.monthly or 0 for u in found)
    biggest = max(priced, key=lambda u: u.monthly or 0) if priced else None
    return found, total, biggest
