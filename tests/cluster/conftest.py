"""Fixtures for tests that need a local Citus cluster (coordinator + 2 workers, db/citus.py).

Citus comes from the embedded PostgreSQL if it has it, else it is built once
per machine from the release vendored in third_party/ (or the tarball
`OOTD_CITUS_SOURCE` names), cached outside the checkout (db/citus.py).  When it
cannot be had, every test that needs the cluster skips, saying why; CI
(`OOTD_REQUIRE_MARKERS=...,cluster`) fails on such skips.
"""

from __future__ import annotations

import sys
from typing import Iterator

import pytest

from db import citus
from db.citus import CitusCluster

#: Every node: no durability needed for tests.
TEST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
WORKERS = 2


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cluster: needs a local Citus cluster (built once from third_party/)")


def _progress(line: str) -> None:
    print(line, file=sys.__stderr__, flush=True)  # a first build takes a while: show it despite capturing


@pytest.fixture(scope="module")
def citus_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CitusCluster]:
    """A coordinator and 2 workers, started once per module, in a temporary OOTD_HOME (`.parent`)."""
    if not citus.citus_installed():
        try:
            citus.citus_source()
        except citus.CitusUnavailable as exc:
            pytest.skip(f"Citus is not available: {exc}")
    cluster = CitusCluster(tmp_path_factory.mktemp("ootd_home") / "citus", settings=TEST_SETTINGS)
    cluster.up(WORKERS, progress=_progress)
    yield cluster
    cluster.down()
