"""L3: a client that never logs in cannot lock customers out. Five addresses each hold every
connection one address may hold (maxClientsPerHost), never send a word, and open each one again
as soon as the server ends it, while a customer logs in every 200 ms through the local Azure
model (`ftpstack.local.bench.abuse`, which `make bench` measures too).

The login timeout is not scaled with the other times: the outcome rests on how many processes
the attack can take (MaxInstances) and on the ban that follows the timeouts, and a timeout
scaled down to a second would cut customers' own logins on a loaded machine. The flood lasts
past one login timeout, so it goes through all three phases: every connection held, each one
ended by the timeout and opened again, then refused by the ban.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from ftpstack import paths
from ftpstack.local.bench import abuse
from ftpstack.local.bench.live import Sources
from ftpstack.local.net.azure import LocalAzure
from ftpstack.local.net.steps import Bundle, Edit, edit_file
from tests.support import needs_root, plan

pytestmark = pytest.mark.l3

SCALE = 1 / 30
LOGIN_TIMEOUT = 15  # the default loginTimeoutSeconds
PAST_THE_TIMEOUT = LOGIN_TIMEOUT + 7  # seconds of flood: a timeout round, the ban, its refusals


def attacked(seconds: float, edit: Edit | None = None) -> dict[str, Any]:
    needs_root()
    with LocalAzure(plan("dev", tls="allowed"), time_scale=SCALE, bundle_edit=edit) as az:
        found = abuse.under_idle_flood(az, Sources(), seconds)
        found["log"] = az.vms[0].path(paths.SYSTEM_LOG).read_text()
    return found


def test_customers_get_in_while_five_addresses_hold_every_connection_they_may() -> None:
    found = attacked(PAST_THE_TIMEOUT)
    assert found["login_timeout_s"] == LOGIN_TIMEOUT, "the declared default, unscaled"
    held = abuse.ATTACKERS * found["per_source"]
    # The attack was real: every connection allowed was held at once, the timeout ended them,
    # they were opened again, and the ban then refused each one.
    assert found["flood_held_max"] == held, found
    assert found["flood_timed_out"] > 0 and found["flood_connections"] > held, found
    assert found["flood_banned"] > 0, found
    assert found["customer_logins"] >= 20, found
    assert found["customer_failed_logins"] == 0, found["customer_failures"]
    assert "MaxInstances" not in found["log"]


def todays_limits(bundle: Bundle) -> Bundle:
    """proftpd.conf as it was: MaxInstances twice MaxClients, a 30 s login timeout, and no ban
    for connections that never log in."""

    def change(conf: str) -> str:
        match = re.search(r"^\s*MaxClients\s+(\d+)", conf, re.M)
        assert match is not None
        clients = int(match.group(1))
        conf, n = re.subn(r"^MaxInstances\s+\d+", f"MaxInstances {2 * clients}", conf, flags=re.M)
        conf, m = re.subn(r"^(\s*)TimeoutLogin\s+\d+", r"\1TimeoutLogin 30", conf, flags=re.M)
        conf, k = re.subn(r"^\s*BanOnEvent\s+TimeoutLogin .*\n", "", conf, flags=re.M)
        assert (n, m, k) == (1, 1, 1), "the edit changed what it means to"
        return conf

    return edit_file(bundle, paths.PROFTPD_CONF, change)


def test_negative_control_with_todays_limits_the_same_attack_locks_customers_out() -> None:
    found = attacked(6, todays_limits)  # the lockout is immediate: 6 s show it
    assert found["max_instances"] == 40 and found["login_timeout_s"] == 30
    assert found["customer_failed_logins"] > 0, found
    assert "MaxInstances (40) reached, new connection denied" in found["log"]
