"""The operations of a stack, wired from the settings: logs (`ftpstack.monitoring`), alerts
(`ftpstack.monitoring`) and backups (`ftpstack.backups`), each declared only when on
(`Settings.operations`: on by default in production, off with an explicit opt-out)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import pulumi
from pulumi_azure_native import compute, network, storage

from ftpstack import azure_ops as ops
from ftpstack import backups, monitoring
from ftpstack.parts import Placement, instance_suffix
from ftpstack.settings import Settings
from ftpstack.storage import SHARE


@dataclass(frozen=True)
class Served:
    """What the operations watch and back up."""

    vms: Sequence[compute.VirtualMachine]
    disks: Sequence[compute.Disk | None]
    lb: network.LoadBalancer | None
    account: storage.StorageAccount | None
    share: storage.FileShare | None


def declare(
    name: str, s: Settings, where: Placement, served: Served, parent: pulumi.Resource
) -> None:
    on = s.operations
    if not any(on.values()):
        return
    from pulumi_azure_native import authorization

    subscription = authorization.get_client_config_output().subscription_id
    rg_id = pulumi.Output.concat("/subscriptions/", subscription, "/resourceGroups/", where.rg_name)
    ws = None
    if on["logs"]:
        ws = monitoring.workspace(name, s, where, parent)
        rule = monitoring.collection_rule(name, s, where, ws, parent)
        for index, vm in enumerate(served.vms):
            monitoring.agent(vm, f"{name}-vm{instance_suffix(index)}", s, where, rule)
    if on["alerts"]:
        _alerts(name, s, where, served, rg_id, ws, parent)
    if on["backups"]:
        disks = [(instance_suffix(i), d) for i, d in enumerate(served.disks) if d is not None]
        if disks:
            backups.disk_backups(name, s, where, disks, rg_id, subscription, parent)
        if served.account is not None and served.share is not None:
            backups.share_snapshots(name, s, where, served.account, served.share, rg_id, parent)


def _availability(name: str, served: Served, alert: Callable[..., object]) -> None:
    """An instance out of service for 5 minutes; none in service (behind a load balancer)."""
    if served.lb is None:
        for index, vm in enumerate(served.vms):
            alert(
                f"{name}-alert-unavailable{instance_suffix(index)}",
                scope=vm.id,
                namespace="Microsoft.Compute/virtualMachines",
                criterion={
                    "metric_name": ops.VM_METRIC,
                    "time_aggregation": "Average",
                    "operator": "LessThan",
                    "threshold": 1,
                },
                window="PT5M",
                every="PT1M",
                severity=0,
                description="The FTP server's VM is unavailable (5 minutes)",
            )
        return
    lb_ns = "Microsoft.Network/loadBalancers"
    alert(
        f"{name}-alert-unhealthy",
        scope=served.lb.id,
        namespace=lb_ns,
        criterion=monitoring.probe_criteria(split=True),
        window="PT5M",
        every="PT1M",
        severity=1,
        description="An FTP server fails the load balancer's health probe (5 minutes)",
    )
    alert(
        f"{name}-alert-none-healthy",
        scope=served.lb.id,
        namespace=lb_ns,
        criterion=monitoring.probe_criteria(split=False),
        window="PT1M",
        every="PT1M",
        severity=0,
        description="No FTP server passes the load balancer's health probe",
    )


def _alerts(
    name: str,
    s: Settings,
    where: Placement,
    served: Served,
    rg_id: pulumi.Input[str],
    ws: monitoring.Workspace | None,
    parent: pulumi.Resource,
) -> None:
    group = monitoring.action_group(name, s, where, parent)
    alert = partial(monitoring.metric_alert, s=s, where=where, group=group, parent=group)
    _availability(name, served, alert)
    if served.account is not None:
        alert(
            f"{name}-alert-share-full",
            scope=pulumi.Output.concat(served.account.id, "/fileServices/default"),
            namespace="Microsoft.Storage/storageAccounts/fileServices",
            criterion={
                "metric_name": ops.SHARE_METRIC,
                "time_aggregation": "Average",
                "operator": "GreaterThan",
                "threshold": s.shared_storage_gb * 2**30 * ops.SHARE_FULL_PERCENT // 100,
                "dimensions": [
                    {"name": ops.SHARE_DIMENSION, "operator": "Include", "values": [SHARE]}
                ],
            },
            window="PT1H",
            every="PT1H",
            severity=2,
            description=f"The FTP files' share is over {ops.SHARE_FULL_PERCENT}% full",
        )
    elif ws is not None and any(d is not None for d in served.disks):
        monitoring.disk_space_alert(name, s, where, group, ws, group, ws.tables)
    monitoring.configuration_alert(name, s, group, rg_id, group, where)
