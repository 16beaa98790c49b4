"""Fixtures shared by the L2 SFTP modules: throw-away user keys and the dev stack that uses them
(a fresh server per module; each module starts its own)."""

from __future__ import annotations

import pytest

from ftpstack.offline.plan import Plan
from tests.support import Keys, sftp_keys, sftp_plan


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return sftp_keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def sftp_dev(keys: Keys) -> Plan:
    return sftp_plan(keys)
