"""`make bench`'s sftp section (ftpstack.local.bench.sftp): its experiments' directives land in
mod_sftp's <VirtualHost> (L1). The section run alone (L3) is in test_bench.py."""

from __future__ import annotations

from ftpstack import paths
from ftpstack.local.bench import sftp


def test_an_experiments_directives_go_into_the_sftp_virtual_host() -> None:
    plan = sftp.plan(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJxbbL0dTyFTq8hAYmTVu1DNdA7bQcYgZ1jHQ5E9ZQ2s x"
    )
    edit = sftp._in_vhost(("AllowOverride off",))
    assert edit is not None and sftp._in_vhost(()) is None
    bundle = next(b for b in plan.bundles() if "files" in b)
    conf = next(f["content"] for f in edit(bundle)["files"] if f["path"] == paths.PROFTPD_CONF)
    vhost = conf[conf.rindex("<VirtualHost") :]
    assert "SFTPEngine" in vhost and "  AllowOverride off\n</VirtualHost>" in vhost
    assert conf.count("AllowOverride off") == 1
