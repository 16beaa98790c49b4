"""L0: the live configuration's bundle and its transport, and the agent's pure parts."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from ftpstack import live, paths
from ftpstack.agent import apply as agent
from ftpstack.agent import proftpd
from ftpstack.agent.base import ApplyFailed
from tests.support import GOOD_USER, IDENTITY, settings

IP = "198.51.100.10"
SEED = "ftpstack/dev/ftp"


def test_the_bundle_round_trips_through_the_agents_decoder() -> None:
    bundle = live.bundle(settings(users=[GOOD_USER]), IP, SEED, IDENTITY)
    assert agent.decode_bundle(live.encode(bundle)) == bundle


def test_the_generation_changes_exactly_when_the_configuration_does() -> None:
    base = live.bundle(settings(users=[GOOD_USER]), IP, SEED, IDENTITY)["generation"]
    assert live.bundle(settings(users=[GOOD_USER]), IP, SEED, IDENTITY)["generation"] == base
    assert (
        live.bundle(settings(users=[GOOD_USER], maxClients=20), IP, SEED, IDENTITY)["generation"]
        != base
    )
    assert (
        live.bundle(settings(users=[GOOD_USER]), "198.51.100.11", SEED, IDENTITY)["generation"]
        != base
    )


def test_each_instance_gets_its_own_bundle() -> None:
    s = settings(instances=2, exposure="load-balancer", users=[GOOD_USER])
    first, second = live.bundle(s, IP, SEED, IDENTITY, 0), live.bundle(s, IP, SEED, IDENTITY, 1)
    assert first["proftpd"]["passive"] == "50000-50049"
    assert second["proftpd"]["passive"] == "50050-50099"
    assert first["health"] == {"unit": paths.HEALTH_UNIT, "nft": paths.HEALTH_NFT}


def test_users_get_private_homes_and_the_admin_key_is_kept_current() -> None:
    bundle = live.bundle(settings(users=[GOOD_USER], anonymous=True), IP, SEED, IDENTITY)
    dirs = {d["path"]: d for d in bundle["dirs"]}
    assert dirs[f"{paths.FTP_ROOT}/alice"]["mode"] == "0750"
    assert dirs[paths.PUBLIC_DIR]["owner"] == "0:0"
    assert bundle["admin"]["user"] == "ftpadmin"
    assert bundle["admin"]["authorized_keys"].startswith("ssh-ed25519 ")


def test_on_a_root_squashed_share_proftpd_may_traverse_a_home_but_not_list_it() -> None:
    """Root is "nobody" on the share until the login's chroot: a home without the others' x
    bit fails every login with 530 (seen at L4, test_vm_ha); unsquashed they stay private."""
    s = settings(instances=2, exposure="load-balancer", users=[GOOD_USER])
    assert s.shared_storage and s.share_root_squash
    dirs = {d["path"]: d for d in live.bundle(s, IP, SEED, IDENTITY, 0)["dirs"]}
    assert dirs[f"{paths.FTP_ROOT}/alice"]["mode"] == "0711"
    unsquashed = settings(
        instances=2, exposure="load-balancer", users=[GOOD_USER], shareRootSquash=False
    )
    dirs = {d["path"]: d for d in live.bundle(unsquashed, IP, SEED, IDENTITY, 0)["dirs"]}
    assert dirs[f"{paths.FTP_ROOT}/alice"]["mode"] == "0750"


def test_the_stacks_own_certificate_names_the_fqdn_and_the_address_and_keeps_its_key() -> None:
    from cryptography import x509

    def files(**raw: Any) -> dict[str, str]:
        bundle = live.bundle(settings(**raw), IP, SEED, IDENTITY)
        return {f["path"]: f["content"] for f in bundle["files"]}

    named = files(dnsLabel="files-acme")
    cert = x509.load_pem_x509_certificate(named[paths.SELF_SIGNED_CERT].encode())
    alternative = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert alternative.get_values_for_type(x509.DNSName) == [
        "files-acme.westeurope.cloudapp.azure.com"
    ]
    assert [str(a) for a in alternative.get_values_for_type(x509.IPAddress)] == [IP]
    assert named[paths.SELF_SIGNED_KEY] == IDENTITY.tls_key
    unnamed = files()
    assert unnamed[paths.SELF_SIGNED_KEY] == IDENTITY.tls_key, "new names, the same key"
    assert unnamed[paths.SELF_SIGNED_CERT] != named[paths.SELF_SIGNED_CERT]
    assert files() == unnamed, "the same certificate every time for the same names"
    assert paths.SELF_SIGNED_CERT not in files(tls="off")


def test_the_script_carries_the_agent_and_runs_the_phase_it_is_given() -> None:
    script = live.run_command_script()
    assert {"paths.py", "agent/apply.py", "agent/__main__.py"} <= set(live.AGENT_FILES)
    for name in live.AGENT_FILES:
        assert (live.PACKAGE / name).read_text() in script, name
    assert f"exec /usr/bin/python3 {paths.AGENT_PATH}" in script
    assert '"${FTPSTACK_PHASE:-apply}"' in script
    result = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
    assert result.returncode == 0, result.stderr


def install(tmp_path: Path) -> str:
    """Run the script with the agent's directory moved under tmp_path; the agent says which
    release it runs from."""
    script = live.run_command_script().replace(paths.AGENT_DIR, str(tmp_path))
    env = {"PATH": "/usr/bin:/bin", "FTPSTACK_PHASE": "release"}
    done = subprocess.run(["bash"], input=script, env=env, text=True, capture_output=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_new_agent_is_switched_to_whole_and_the_old_one_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = install(tmp_path)
    assert (tmp_path / "agent.py").resolve() == tmp_path / "releases" / first / "agent.py"
    monkeypatch.setattr(live, "LAUNCHER", live.LAUNCHER + "# the next version\n")
    second = install(tmp_path)
    assert second != first
    assert [p.name for p in (tmp_path / "releases").iterdir()] == [second]


def test_a_release_cut_short_is_written_again(tmp_path: Path) -> None:
    first = install(tmp_path)
    release = tmp_path / "releases" / first
    (release / "complete").unlink()
    (release / "ftpstack" / "agent" / "apply.py").write_text("broken = (\n")
    assert install(tmp_path) == first
    assert (release / "ftpstack" / "agent" / "apply.py").read_text() == (
        live.PACKAGE / "agent" / "apply.py"
    ).read_text()


def test_the_narrowing_step_needs_no_secret() -> None:
    mini = live.narrow_bundle(settings(exposure="load-balancer"))
    assert set(mini) == {"version", "proftpd", "health", "drain_seconds", "narrow_wait_seconds"}
    assert mini["health"] == {"unit": paths.HEALTH_UNIT, "nft": paths.HEALTH_NFT}
    assert live.narrow_bundle(settings())["health"] is None, "a public IP has no rotation"


def test_a_bundle_travels_in_parts_each_under_linuxs_limit_and_comes_back_whole() -> None:
    text = "x" * (live.PART_SIZE * 2 + 5)
    params = live.parameters(text)
    assert params[live.PARTS_PARAMETER] == "3"
    assert all(len(k) + 1 + len(v) < 131_072 for k, v in params.items())
    assert live.joined(params) == text
    del params[f"{live.CONFIG_PARAMETER}_1"]
    with pytest.raises(ApplyFailed, match="did not arrive whole"):
        live.joined(params)


def test_the_agent_refuses_a_bundle_it_does_not_understand() -> None:
    import base64
    import json
    import zlib

    text = base64.b64encode(zlib.compress(json.dumps({"version": 99}).encode())).decode()
    with pytest.raises(ApplyFailed, match="version 99"):
        agent.decode_bundle(text)


def test_the_agent_reads_proftpds_session_titles() -> None:
    match = proftpd.SESSION_TITLE.match("proftpd: alice - 203.0.113.10: IDLE")
    assert match and match.groups() == ("alice", "IDLE")
    match = proftpd.SESSION_TITLE.match("proftpd: bob - 203.0.113.11: RETR big.bin")
    assert match and match.group(2) == "RETR big.bin"
    assert proftpd.SESSION_TITLE.match("proftpd: (accepting connections)") is None
