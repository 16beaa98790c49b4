"""L0: the boot image (customData) — secret-free, independent of every live setting, and what a
new machine needs: packages, storage that outlives the VM, proftpd's unit guards."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from ftpstack import bootstrap, paths
from tests.support import GOOD_USER, OTHER_KEY, PASSWORD, certificate_pair, settings


def document(**raw: Any) -> dict[str, Any]:
    text = bootstrap.cloud_config(settings(**raw))
    assert text.startswith("#cloud-config\n")
    parsed = yaml.safe_load(text)
    assert isinstance(parsed, dict)
    return parsed


def files(**raw: Any) -> dict[str, str]:
    return {f["path"]: f["content"] for f in document(**raw)["write_files"]}


@pytest.mark.parametrize(
    "change",
    [
        {"users": [GOOD_USER]},
        {"users": [GOOD_USER, {"name": "bob", "password": "bob-password-22"}]},
        {"maxClients": 10, "passivePortStart": 40000, "passivePortEnd": 40019},
        {"keepaliveIdleSeconds": 45, "keepaliveIntervalSeconds": 15},
        {"tls": "required"},
        {"tls": "off"},
        {"anonymous": True},
        {"ban": False},
        {"passwordHashRounds": 20000},
        {"maxClientsPerHost": 3},
        {"sshPublicKey": OTHER_KEY},
        {"tags": {"owner": "ops"}},
    ],
)
def test_a_live_setting_never_changes_the_bootstrap(change: dict[str, Any]) -> None:
    """Anything here would replace the VM: no day-two setting may reach it."""
    assert bootstrap.cloud_config(settings(**change)) == bootstrap.cloud_config(settings())


def test_the_bootstrap_holds_no_secret() -> None:
    cert, key = certificate_pair("ftp.example.com")
    text = bootstrap.cloud_config(
        settings(users=[GOOD_USER], tls="required", tlsCertificate=cert, tlsPrivateKey=key)
    )
    assert PASSWORD not in text and "$6$" not in text and "PRIVATE KEY" not in text


def test_every_package_a_live_change_may_need_is_installed_at_boot() -> None:
    assert document(tls="off")["packages"] == [
        "proftpd-core",
        "proftpd-mod-crypto",
        "openssl",
        "nftables",
    ]


def test_proftpd_serves_only_a_configuration_ftpstack_applied_and_comes_back_when_killed() -> None:
    dropin = files()[paths.PROFTPD_DROPIN]
    assert f"ConditionPathExists={paths.CONFIGURED}" in dropin
    assert "Restart=on-failure" in dropin
    assert f"RequiresMountsFor={paths.FTP_ROOT}" in dropin
    assert "RequiresMountsFor" not in files(dataDiskSizeGb=0)[paths.PROFTPD_DROPIN]


def test_the_data_disk_is_found_on_scsi_and_nvme_and_formatted_only_when_empty() -> None:
    script = files()[paths.DISK_SCRIPT]
    for device in ("/dev/disk/azure/scsi1/lun0", "/dev/disk/azure/data/by-lun/0", "/dev/nvme0n2"):
        assert device in script
    assert "blkid -p" in script and "not formatting it" in script
    assert (
        f"LABEL=$label {paths.FTP_ROOT} ext4" in script
        and f"label={paths.DATA_DISK_LABEL}" in script
    )
    steps = [" ".join(s) if isinstance(s, list) else s for s in document()["runcmd"]]
    assert paths.DISK_SCRIPT in steps
    assert paths.DISK_SCRIPT not in files(dataDiskSizeGb=0)


def test_the_bootstrap_ends_with_its_marker() -> None:
    steps = document()["runcmd"]
    assert steps[-1] == ["touch", paths.BOOTSTRAP_DONE]


def test_behind_a_load_balancer_the_probe_port_reaches_proftpd_while_in_service() -> None:
    found = files(exposure="load-balancer")
    assert f"tcp dport {paths.HEALTH_PORT} redirect to :21" in found[paths.HEALTH_NFT]
    unit = found[f"/etc/systemd/system/{paths.HEALTH_UNIT}"]
    assert "After=proftpd.service" in unit, "stopped before proftpd: the probe fails first"
    assert paths.HEALTH_NFT not in files()


def test_shared_storage_mounts_the_nfs_share_before_proftpd() -> None:
    share = bootstrap.NfsShare("acct.file.core.windows.net", "/acct/ftp")
    text = bootstrap.cloud_config(settings(instances=2, exposure="load-balancer"), share)
    parsed = yaml.safe_load(text)
    assert "nfs-common" in parsed["packages"]
    steps = " ".join(s if isinstance(s, str) else " ".join(s) for s in parsed["runcmd"])
    assert f"{share.source} {paths.FTP_ROOT} nfs {bootstrap.NFS_OPTIONS}" in steps
    assert "vers=4,minorversion=1" in bootstrap.NFS_OPTIONS and "_netdev" in bootstrap.NFS_OPTIONS
    assert paths.DISK_SCRIPT not in text
