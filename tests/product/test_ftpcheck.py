"""L0: the FTP check's command line — what it tells a person who runs it by hand."""

from __future__ import annotations

import os
import subprocess
import sys

from ftpstack import ftpcheck
from tests.support import ROOT


def run_check(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ftpstack.ftpcheck", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_help_says_the_password_comes_from_ftp_password() -> None:
    result = run_check("--help")
    assert result.returncode == 0, result.stderr
    assert ftpcheck.PASSWORD_ENV == "FTP_PASSWORD"
    assert "FTP_PASSWORD" in result.stdout, result.stdout
    # The --user option itself says where its password comes from.
    user = next(a for a in ftpcheck.arguments()._actions if "--user" in a.option_strings)
    assert user.help and "FTP_PASSWORD" in user.help, user.help


def test_a_user_without_ftp_password_is_refused_naming_the_variable() -> None:
    env = {k: v for k, v in os.environ.items() if k != "FTP_PASSWORD"}
    result = run_check("--host", "192.0.2.1", "--user", "alice", env=env)
    assert result.returncode == 2 and "FTP_PASSWORD" in result.stderr.splitlines()[-1]
