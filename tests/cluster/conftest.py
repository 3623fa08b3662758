"""Fixtures for tests that need a local Citus cluster (coordinator + 2 workers, db/citus.py).

Citus comes from the embedded PostgreSQL if it has it, else it is built once
per machine from the tarball `OOTD_CITUS_SOURCE` names (cached outside the
checkout, see db/citus.py).  With neither, every test that needs the cluster
skips, saying so; CI sets OOTD_CITUS_SOURCE and fails on such skips.
"""

from __future__ import annotations

import os
import sys
from typing import Iterator

import pytest

from db import citus
from db.citus import CitusCluster

#: Every node: no durability needed for tests.
TEST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
WORKERS = 2


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cluster: needs a local Citus cluster (set OOTD_CITUS_SOURCE to build Citus)")


def _progress(line: str) -> None:
    print(line, file=sys.__stderr__, flush=True)  # a first build takes a while: show it despite capturing


@pytest.fixture(scope="module")
def citus_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CitusCluster]:
    """A coordinator and 2 workers, started once per module, in a temporary OOTD_HOME (`.parent`)."""
    if not citus.citus_installed() and not os.environ.get(citus.SOURCE_ENV):
        pytest.skip(
            f"Citus is not available: set {citus.SOURCE_ENV} to its source tarball "
            f"(e.g. ../shared/vendor/citus-14.0.1.tar.gz) or install Citus in the embedded PostgreSQL"
        )
    cluster = CitusCluster(tmp_path_factory.mktemp("ootd_home") / "citus", settings=TEST_SETTINGS)
    cluster.up(WORKERS, progress=_progress)
    yield cluster
    cluster.down()
