"""`make plan`'s throughput caps (ftpstack.offline.limits): Azure's documented figures for the
declared size, disk and share, and which one binds the stack's downloads (L1, the program under
mocks)."""

from __future__ import annotations

from ftpstack.offline import declared as d
from ftpstack.offline import limits
from ftpstack.offline.report import render_text
from tests.support import plan_test_stack


def _caps(stack: str, **overrides: object) -> str:
    plan = plan_test_stack(stack, overrides or None)
    line = limits.line(d.Declared(plan.to_json()))
    assert line is not None
    return line


def test_a_share_has_the_throughput_of_its_size() -> None:
    # The examples of Azure's own table (provisioned v1, ingress + egress).
    assert [limits.share_mib_s(g) for g in (100, 500, 1024, 10240)] == [110, 150, 203, 1125]


def test_prod_is_bound_by_its_share() -> None:
    caps = _caps("prod")
    # Standard_D2s_v5: 12,500 Mbit/s = 1,490 MiB/s; two VMs share one 100 GiB share: 110 MiB/s.
    assert "(D2s_v5)" in caps and "NIC 1,490" in caps and "share 110 for all 2" in caps, caps
    assert caps.endswith("the share limits"), caps


def test_a_larger_share_leaves_the_cpu_binding() -> None:
    # Control: 50 TiB gives the share 5,220 MiB/s, above what two D2s_v5 send over FTPS (2 x
    # 1,138) and their NICs (2 x 1,490).
    caps = _caps("prod", sharedStorageGb=51200)
    assert "share 5,220 for all 2" in caps and "FTPS CPU ~1,138" in caps, caps
    assert caps.endswith("the CPU limits"), caps


def test_dev_is_bound_by_its_vm_s_disk_cap() -> None:
    caps = _caps("dev")
    # Standard_B2s: no documented network cap; 15 MB/s uncached disk (14 MiB/s), 100 in bursts;
    # 20 % of each vCPU sustained.
    assert "(B2s)" in caps and "NIC not documented" in caps and "disk 14 (burst 95)" in caps
    assert "(baseline)" in caps and caps.endswith("the disk limits"), caps


def test_a_size_not_in_the_table_is_named_not_guessed() -> None:
    caps = _caps("dev", vmSize="Standard_E2s_v5")
    assert "E2s_v5 not in ftpstack's table" in caps and "MiB/s" not in caps, caps


def test_the_caps_are_in_the_summary() -> None:
    shown = render_text(plan_test_stack("prod"))
    assert "Throughput caps per VM, MiB/s (D2s_v5)" in shown
