"""L1: the committed example stacks, `Pulumi.dev.yaml` and `Pulumi.prod.yaml` — what an operator
copies and edits (README "Deploy to Azure", "Environments"), judged as `make plan` and the policy
pack judge the operator's edit: each plans, passes the ARM check and every policy; FTP is all
that is open, to everyone in dev and to the listed networks only in prod; SSH stays closed; every
password is a `secure:` value, planned with a stand-in.

Values the README tells the operator to change (the customers' CIDRs, the SSH key, the users'
passwords, a `dnsLabel`) are checked for what they are, never pinned: the other tests plan the
tests' own stacks (`tests/fixtures`), and `tests/product/test_layout.py` keeps it so.
"""

from __future__ import annotations

from functools import cache

import pytest
import yaml

from ftpstack.offline import declared as d
from ftpstack.offline import report
from ftpstack.offline.plan import Plan, plan_stack
from tests.policy.support import all_violations, plain_resources
from tests.support import ROOT

EXAMPLES = ("dev", "prod")
# The policy pack's tags of each example's stack (TLS is judged by `environment`).
STACK_TAGS = {"dev": {}, "prod": {"environment": "production"}}


@cache
def example(stack: str) -> Plan:
    """The committed example, planned as `make plan STACK=<stack>` plans it."""
    return plan_stack(stack)


def config(stack: str) -> dict[str, object]:
    document = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    return dict(document["config"])


@pytest.mark.parametrize("stack", EXAMPLES)
def test_each_example_plans_and_passes_the_arm_check_and_every_policy(stack: str) -> None:
    p = example(stack)
    assert p.find(d.VM) and p.find(d.RUN_COMMAND), "the example plans a server"
    assert [str(f) for f in report.arm_findings(p)] == []
    assert all_violations(plain_resources(p), STACK_TAGS[stack]) == []


@pytest.mark.parametrize("stack", EXAMPLES)
def test_each_example_opens_ftp_and_sftp_only_and_keeps_ssh_closed(stack: str) -> None:
    view = d.Declared(example(stack).to_json())
    passive = (view.passive_range[0], view.passive_range[-1])
    allowed = [r for r in view.server_rules() if r.allows and r.sources != (d.PROBE_SOURCE,)]
    assert allowed and {r.ports for r in allowed} <= {(21, 21), (22, 22), passive}, allowed
    # 22 is SFTP's, from FTP's sources; the VMs' sshd (2200) is closed.
    assert {r.sources for r in allowed} == {next(r.sources for r in allowed if r.ports == (21, 21))}
    assert config(stack).get("ftpstack:sshSourceCidrs", []) == []
    assert not [r for r in view.security_rules() if r.allows and r.ports == (2200, 2200)]


def test_dev_is_open_to_any_ftp_client_and_prod_to_its_customers_only() -> None:
    """README "Environments": dev lets in any address, prod only the listed networks — whichever
    networks the operator lists, none of them is the Internet."""
    dev = d.Declared(example("dev").to_json())
    assert {r.ports for r in dev.open_to_internet()} == {
        (21, 21),
        (22, 22),
        (dev.passive_range[0], dev.passive_range[-1]),
    }
    cidrs = config("prod")["ftpstack:ftpSourceCidrs"]
    assert isinstance(cidrs, list) and cidrs
    assert not [c for c in cidrs if d.is_internet(str(c))], "prod's customers, not the Internet"
    prod = d.Declared(example("prod").to_json())
    assert prod.open_to_internet() == []
    ftp = [r for r in prod.server_rules() if r.allows and r.ports == (21, 21)]
    assert ftp and all(set(r.sources) == set(cidrs) for r in ftp)


@pytest.mark.parametrize("stack", EXAMPLES)
def test_each_examples_passwords_are_secure_values_planned_with_stand_ins(stack: str) -> None:
    users = config(stack)["ftpstack:users"]
    assert isinstance(users, list) and users
    assert all(set(u["password"]) == {"secure"} for u in users), "never a password in clear"
    assert example(stack).stand_ins == [f"users[{i}].password" for i in range(len(users))]
