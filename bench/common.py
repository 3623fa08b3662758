"""Shared benchmark plumbing: a throwaway embedded server with default settings."""

from __future__ import annotations

import os
import resource
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from db.server import EmbeddedServer


@contextmanager
def bench_database() -> Iterator[str]:
    """DATABASE_URL if set, else a fresh embedded server (durable defaults, fsync on)."""
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    home = Path(tempfile.mkdtemp(prefix="ootd-bench-"))
    server = EmbeddedServer(home)
    try:
        yield server.ensure_running()
    finally:
        server.stop("fast")
        shutil.rmtree(home, ignore_errors=True)  # a 1M-user run leaves about 1 GB


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def machine() -> str:
    return f"{os.cpu_count()} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"
