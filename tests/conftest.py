"""Suite-wide rules: in CI (CI=true) a skipped test fails the run; nothing is silently left out.

The tree mirrors the package: `tests/product` (what is deployed: L0 pure functions, L1 the
component under mocks, L2 the agent on a real proftpd), `tests/offline` (plan, diff, ARM check),
`tests/local` (on the local stand-ins: `net/` L2 and L3, `vm/` L4, `bench/` the benchmark),
plus the policy pack, the workflows and the consumer example. Levels are markers (l2, l3, l4);
shared helpers live in `tests/support.py`, the tests' own dev and prod stacks in `tests/fixtures`
(the committed `Pulumi.<stack>.yaml` are the operator's: only `tests/offline/test_examples.py`
and `test_readme.py` read them).
"""

from __future__ import annotations

import os
import signal
from types import FrameType

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def pytest_configure(config: pytest.Config) -> None:
    # scripts/test-levels ends the runs it started in the background with SIGTERM (a background
    # job ignores SIGINT); Python's default would end pytest on the spot, leaving its VMs,
    # servers and namespaces behind. As an interrupt, the fixtures end them.
    signal.signal(signal.SIGTERM, _interrupted)


def _interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped in CI (CI=true), which counts as a failure: {reason}"


# The longest modules of L2-L3 (seconds in one process here: test_network 211, test_bench 160,
# test_edges 135, test_production 85, test_ha and test_live_changes 61, the mutations 50): with
# workers (`-n`, a module to a worker) they start first, so the run does not end waiting on one of
# them started last.
LONGEST_FIRST = (
    "tests/local/net/test_network.py",
    "tests/local/bench/test_bench.py",
    "tests/local/net/test_edges.py",
    "tests/local/net/test_production.py",
    "tests/local/net/test_ha.py",
    "tests/local/net/test_live_changes.py",
    "tests/test_mutations.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("numprocesses", None):
        return
    gone = [m for m in LONGEST_FIRST if not (config.rootpath / m).is_file()]
    if gone:
        raise pytest.UsageError(f"tests/conftest.py LONGEST_FIRST names no such module: {gone}")
    rank = {module: n for n, module in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))
