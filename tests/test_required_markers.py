"""OOTD_REQUIRE_MARKERS (tests/conftest.py, set by .ci/run): a required test that skips fails the run, and
so does a required marker none of whose tests ran.  Each case runs pytest on a small suite in a subprocess
that loads the project's hooks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from db import REPO_ROOT

CONFTEST = """
from tests.conftest import (  # noqa: F401  the project's hooks, nothing else
    pytest_configure as _project_configure, pytest_runtest_makereport, pytest_sessionfinish, pytest_terminal_summary,
)

def pytest_configure(config):
    config.addinivalue_line("markers", "browser: test")
    config.addinivalue_line("markers", "cluster: test")
    _project_configure(config)
"""
SUITE = """
import pytest

@pytest.mark.browser
def test_browser_runs():
    pass

@pytest.mark.browser
def test_browser_skips():
    pytest.skip("no chromium here")

@pytest.fixture
def citus():
    pytest.skip("no citus here")

@pytest.mark.cluster
def test_cluster_skips_in_setup(citus):
    pass

def test_plain_skip():
    pytest.skip("optional")
"""


def run_suite(tmp_path: Path, required: str | None, *args: str) -> subprocess.CompletedProcess:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_suite.py").write_text(SUITE)
    env = {k: v for k, v in os.environ.items() if k != "OOTD_REQUIRE_MARKERS"}
    env["PYTHONPATH"] = str(REPO_ROOT)
    if required is not None:
        env["OOTD_REQUIRE_MARKERS"] = required
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA", "--rootdir", str(tmp_path), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_without_the_variable_required_tests_may_skip(tmp_path: Path):
    result = run_suite(tmp_path, None)
    assert result.returncode == 0, result.stdout
    assert "1 passed, 3 skipped" in result.stdout


def test_a_required_test_that_skips_fails_with_its_reason(tmp_path: Path):
    result = run_suite(tmp_path, "browser")
    assert result.returncode == 1, result.stdout
    assert "FAILED test_suite.py::test_browser_skips" in result.stdout
    assert "required test skipped (OOTD_REQUIRE_MARKERS lists browser): no chromium here" in result.stdout
    assert "1 failed, 1 passed, 2 skipped" in result.stdout  # the cluster and the plain skip are allowed


def test_a_skip_in_a_fixture_fails_too(tmp_path: Path):
    result = run_suite(tmp_path, "cluster", "-k", "cluster")
    assert result.returncode == 1, result.stdout
    assert "required test skipped (OOTD_REQUIRE_MARKERS lists cluster): no citus here" in result.stdout
    assert "no test marked 'cluster' ran" in result.stdout  # and none of its tests ran


@pytest.mark.parametrize("required", ["browser", "browser, browser,"])
def test_a_required_marker_none_of_whose_tests_ran_fails_the_run(tmp_path: Path, required: str):
    result = run_suite(tmp_path, required, "-k", "plain")
    assert result.returncode == 1, result.stdout
    assert "FAILED: no test marked 'browser' ran, and OOTD_REQUIRE_MARKERS requires one" in result.stdout
    assert "1 skipped" in result.stdout


def test_only_listed_markers_are_checked(tmp_path: Path):
    result = run_suite(tmp_path, "browser", "-k", "browser_runs")
    assert result.returncode == 0, result.stdout  # no cluster test ran, but cluster is not listed
