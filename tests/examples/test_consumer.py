"""examples/consumer: a second project reading ftpstack's outputs through a StackReference.

The outputs contract is the table of docs/outputs.md: the test parses it, checks it is exactly
`ftpstack.outputs.ALL`, checks the consumer reads only names from it, and runs the consumer under
Pulumi mocks with the StackReference answering what the real program exports (`plan_stack`).
"""

from __future__ import annotations

import ast
import asyncio
import gc
import inspect
import re
import runpy
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pytest
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.config import set_all_config
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from ftpstack import outputs
from ftpstack.offline.mocks import MOCK_PUBLIC_IP
from tests.support import ROOT, plan

CONSUMER = ROOT / "examples" / "consumer" / "__main__.py"
PROJECT = "ftpstack-consumer"
STACK_REFERENCE = "pulumi:pulumi:StackReference"
README_TYPES: dict[str, type] = {"string": str, "integer": int, "list": list}
# The fields of each `instances` entry, all strings.
INSTANCE_FIELDS = {"name", "privateIp", "passivePorts"}
CONFIG = {
    "ftpStack": "acme/ftpstack/prod",
    "dnsResourceGroup": "dns-rg",
    "dnsZoneName": "example.com",
}


def contract() -> dict[str, str]:
    """docs/outputs.md, the outputs contract: {output name: type}."""
    text = (ROOT / "docs" / "outputs.md").read_text()
    rows = re.findall(r"^\|\s*`([^`]+)`\s*\|\s*([a-z]+)\s*\|", text, re.MULTILINE)
    assert rows, "no outputs table in docs/outputs.md"
    return dict(rows)


def names_read_by_consumer() -> set[str]:
    """Every name the consumer passes to get_output/require_output, constants resolved."""
    tree = ast.parse(CONSUMER.read_text())
    constants = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    read: set[str] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in {"get_output", "require_output", "get_output_details"}
        ):
            arg = node.args[0]
            assert isinstance(arg, ast.Constant | ast.Name), ast.dump(arg)
            read.add(str(arg.value if isinstance(arg, ast.Constant) else constants[arg.id]))
    return read


@dataclass
class Registered:
    type: str
    name: str
    inputs: dict[str, Any]


class ConsumerMocks(pulumi.runtime.Mocks):
    """Echo inputs; a StackReference answers with the given stack outputs."""

    def __init__(self, stack_outputs: dict[str, Any]) -> None:
        self.stack_outputs = stack_outputs
        self.registered: list[Registered] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.registered.append(Registered(args.typ, args.name, dict(args.inputs)))
        if args.typ == STACK_REFERENCE:
            state = {
                "name": args.inputs["name"],
                "outputs": self.stack_outputs,
                "secretOutputNames": [],
            }
            return args.inputs["name"], state
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[Any]]:
        return {}, []


def run_consumer(
    stack_outputs: dict[str, Any], config: dict[str, str] | None = None
) -> tuple[ConsumerMocks, dict[str, Any]]:
    """The consumer program under mocks: what it registered and what it exports."""
    mocks = ConsumerMocks(stack_outputs)
    settings = CONFIG if config is None else config
    set_all_config({f"{PROJECT}:{k}": v for k, v in settings.items()}, [])
    runtime_settings.ROOT.set(None)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack="prod", preview=False)

    def program() -> None:
        runpy.run_path(str(CONSUMER), run_name="__main__")

    try:
        _sync_await(run_pulumi_func(program))
    except BaseException as error:
        _settle(error)  # a failed program leaves work behind that would reach later tests
        raise
    exported = dict(getattr(runtime_settings.get_root_resource(), "outputs", {}))

    async def resolve() -> dict[str, Any]:
        return {k: await pulumi.Output.from_input(v).future() for k, v in exported.items()}

    return mocks, _sync_await(resolve())


def _settle(error: BaseException) -> None:
    """Settle what a failed program left, as the end of its process would: its tasks, the
    futures and coroutines it leaves unread, and its error, which the runtime keeps
    (module-level) and would raise in the next program run in this process."""
    loop = asyncio.get_event_loop()
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    _read_leftovers(error)
    runtime_settings.SETTINGS.outputs.clear()
    runtime_settings._get_rpc_manager().clear()


def _read_leftovers(error: BaseException) -> None:
    """Read the error out of every future the program failed with it: asyncio logs "Future
    exception was never retrieved" for each one collected unread (one per output of the
    resource that failed), in whichever later test the collector happens to run. Close the
    coroutines that will now never run: pulumi builds a StackReference output from coroutines
    it awaits one after the other, so a failed or cancelled output leaves the rest unawaited
    ("coroutine 'Output.future' was never awaited" when they are collected)."""
    pulumi_code = str(Path(pulumi.__file__).parent)
    for found in gc.get_objects():
        if isinstance(found, asyncio.Future) and getattr(found, "_exception", None) is error:
            found.exception()
        elif (
            inspect.iscoroutine(found)
            and inspect.getcoroutinestate(found) == inspect.CORO_CREATED
            and found.cr_code.co_filename.startswith(pulumi_code)
        ):
            found.close()


@pytest.fixture(scope="module")
def prod_outputs() -> dict[str, Any]:
    """What the real program exports for prod, as a StackReference would hand it over."""
    return plan("prod").outputs


def contract_problems(exported: dict[str, Any], table: dict[str, str]) -> list[str]:
    """How exported outputs break the README's contract (names, types, the instances' shape)."""
    problems = [f"{n}: exported but not in the contract" for n in set(exported) - set(table)]
    problems += [f"{n}: in the contract but not exported" for n in set(table) - set(exported)]
    for name, kind in table.items():
        if name in exported and not isinstance(exported[name], README_TYPES[kind]):
            problems.append(f"{name}: {exported[name]!r} is not a {kind}")
    first, last = map(int, str(exported.get(outputs.PASSIVE_PORT_RANGE, "0-0")).split("-"))
    taken: set[int] = set()
    for entry in exported.get(outputs.INSTANCES) or []:
        if not isinstance(entry, dict) or set(entry) != INSTANCE_FIELDS:
            problems.append(f"instances: {entry!r} is not {{{', '.join(sorted(INSTANCE_FIELDS))}}}")
            continue
        start, _, end = str(entry["passivePorts"]).partition("-")
        ports = set(range(int(start), int(end or start) + 1))
        if not ports or min(ports) < first or max(ports) > last or ports & taken:
            problems.append(f"instances: {entry['name']} announces {entry['passivePorts']}")
        taken |= ports
    return problems


# -- the contract -------------------------------------------------------------------------------


def test_readme_contract_is_exactly_the_exported_names() -> None:
    assert list(contract()) == list(outputs.ALL)


def test_the_program_exports_the_contract_with_its_types(prod_outputs: dict[str, Any]) -> None:
    assert contract_problems(prod_outputs, contract()) == []
    names = [i["name"] for i in prod_outputs[outputs.INSTANCES]]
    assert names == [prod_outputs[outputs.VM_NAME], f"{prod_outputs[outputs.VM_NAME]}-1"]


def test_each_instance_announces_its_own_slice() -> None:
    exported = plan("prod", instances=2).outputs
    assert contract_problems(exported, contract()) == []
    assert [i["passivePorts"] for i in exported[outputs.INSTANCES]] == [
        "50000-50049",
        "50050-50099",
    ]


@pytest.mark.parametrize(
    "broken",
    [
        {outputs.INSTANCES: "ftp-vm"},
        {outputs.CONTROL_PORT: "21"},
        {outputs.INSTANCES: [{"name": "ftp-vm", "privateIp": "10.20.1.4"}]},
        {outputs.INSTANCES: [{"name": "a", "privateIp": "x", "passivePorts": "50000-50099"}] * 2},
        {outputs.INSTANCES: [{"name": "a", "privateIp": "x", "passivePorts": "40000-40009"}]},
        {"extraOutput": "x"},
    ],
    ids=["instances-not-a-list", "port-a-string", "field-missing", "overlap", "outside", "extra"],
)
def test_contract_breaks_are_caught(prod_outputs: dict[str, Any], broken: dict[str, Any]) -> None:
    """Negative controls for the check above."""
    assert contract_problems({**prod_outputs, **broken}, contract())


def test_the_consumer_reads_only_contract_names() -> None:
    read = names_read_by_consumer()
    assert read, "the consumer reads nothing: the check below would pass vacuously"
    assert read <= set(contract()), read - set(contract())
    assert read <= set(outputs.ALL)


# -- the consumer under mocks -------------------------------------------------------------------


def test_consumer_publishes_the_endpoint_as_a_dns_record(prod_outputs: dict[str, Any]) -> None:
    mocks, exported = run_consumer(prod_outputs)
    refs = [r for r in mocks.registered if r.type == STACK_REFERENCE]
    assert [r.inputs["name"] for r in refs] == ["acme/ftpstack/prod"]
    (record,) = [r for r in mocks.registered if r.type == "azure-native:dns:RecordSet"]
    assert record.inputs["recordType"] == "A"
    assert record.inputs["aRecords"] == [{"ipv4Address": MOCK_PUBLIC_IP}]
    assert record.inputs["zoneName"] == "example.com"
    assert record.inputs["relativeRecordSetName"] == "ftp"
    assert exported["ftpUrl"] == "ftp://ftp.example.com:21"
    assert exported["ftpEndpointByIp"] == prod_outputs[outputs.FTP_ENDPOINT]
    assert exported["passivePortRange"] == "50000-50099"
    assert exported["sftpUrl"] == "sftp://ftp.example.com:22"
    assert not [r for r in mocks.registered if r.type.startswith("azure-native:web:")]


def test_consumer_pins_the_sftp_host_keys_under_the_published_name(
    prod_outputs: dict[str, Any], tmp_path: Path
) -> None:
    """The consumer's known_hosts lines are ftpstack's keys under the DNS record's name, and
    OpenSSH finds the host's key in them (ssh-keygen -F); a stack without SFTP gives none."""
    _, exported = run_consumer(prod_outputs)
    lines = exported["sftpKnownHosts"].splitlines()
    keys = [line.split(" ", 1)[1] for line in prod_outputs[outputs.SFTP_HOST_KEYS]]
    assert lines == [f"ftp.example.com {key}" for key in keys] and len(keys) == 3
    known = tmp_path / "known_hosts"
    known.write_text(exported["sftpKnownHosts"])
    found = subprocess.run(
        ["ssh-keygen", "-F", "ftp.example.com", "-f", str(known)],
        capture_output=True,
        text=True,
        check=False,
    )
    entries = [line for line in found.stdout.splitlines() if not line.startswith("#")]
    assert found.returncode == 0 and len(entries) == 3, found
    _, without = run_consumer(plan("prod", sftp=False).outputs)
    assert without["sftpKnownHosts"] == "" and without["sftpUrl"] == ""


def test_consumer_sets_app_settings_when_asked(prod_outputs: dict[str, Any]) -> None:
    config = {**CONFIG, "webAppName": "shop", "webAppResourceGroup": "web-rg"}
    mocks, _ = run_consumer(prod_outputs, config)
    (settings,) = [
        r for r in mocks.registered if r.type == "azure-native:web:WebAppApplicationSettings"
    ]
    assert settings.inputs["name"] == "shop"
    assert settings.inputs["properties"] == {
        "FTP_ENDPOINT": "ftp://ftp.example.com:21",
        "FTP_HOST": "ftp.example.com",
        "FTP_PASSIVE_PORTS": "50000-50099",
        "SFTP_ENDPOINT": "sftp://ftp.example.com:22",
        "SFTP_KNOWN_HOSTS": "".join(
            f"ftp.example.com {line.split(' ', 1)[1]}\n"
            for line in prod_outputs[outputs.SFTP_HOST_KEYS]
        ),
    }


def test_default_stack_reference_is_this_org_and_stack(prod_outputs: dict[str, Any]) -> None:
    config = {k: v for k, v in CONFIG.items() if k != "ftpStack"}
    mocks, _ = run_consumer(prod_outputs, config)
    refs = [r.inputs["name"] for r in mocks.registered if r.type == STACK_REFERENCE]
    assert refs == [f"{pulumi.get_organization()}/ftpstack/prod"]


@pytest.mark.parametrize("missing", sorted(names_read_by_consumer()))
def test_a_renamed_output_fails_the_consumer_loudly(
    prod_outputs: dict[str, Any], missing: str
) -> None:
    """Negative control: without one contract name the consumer must fail, not publish None."""
    broken = {k: v for k, v in prod_outputs.items() if k != missing}
    with pytest.raises(Exception, match=missing):
        run_consumer(broken)


def leftovers(prod_outputs: dict[str, Any], missing: str) -> list[str]:
    """What a failed run's remains report when collected, after the next run (which replaces
    the runtime state that still holds them): the event loop's reports (which it would log)
    and Python's warnings."""
    broken = {k: v for k, v in prod_outputs.items() if k != missing}
    with pytest.raises(KeyError):
        run_consumer(broken)
    loop = asyncio.get_event_loop()
    before = loop.get_exception_handler()
    reported: list[str] = []
    loop.set_exception_handler(lambda _, context: reported.append(context["message"]))
    try:
        with warnings.catch_warnings(record=True) as warned:
            warnings.simplefilter("always")
            run_consumer(prod_outputs)
            gc.collect()
    finally:
        loop.set_exception_handler(before)
    return reported + [str(w.message) for w in warned]


def test_a_failed_run_leaves_nothing_unread(
    prod_outputs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The consumer failing on the first output it reads (publicIp) leaves the futures of the
    resource that failed and a StackReference's coroutines behind; settled, they report nothing
    when collected. Negative control: left unread, they do."""
    assert leftovers(prod_outputs, outputs.PUBLIC_IP) == []
    monkeypatch.setattr(sys.modules[__name__], "_read_leftovers", lambda error: None)
    said = leftovers(prod_outputs, outputs.PUBLIC_IP)
    assert "Future exception was never retrieved" in said
    assert "coroutine 'Output.future' was never awaited" in said
