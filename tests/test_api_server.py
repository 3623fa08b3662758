"""`ootd serve` and `ootd token` as a user runs them: a real gunicorn on a loopback port."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import psycopg
import pytest

from batch.nightly import NightlyConfig, run_nightly
from db import REPO_ROOT
from tests.conftest import SERVED_TEMPLATE, create_database, drop_database, run_cli


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def request(
    base: str,
    path: str,
    token: str | None = None,
    method: str = "GET",
    body: bytes | None = None,
    content_type: str | None = None,
    timeout: float = 30,
) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(base + path, data=body, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if content_type:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.fixture(scope="module")
def live_db(pg_server, served_template):
    name = create_database(pg_server, SERVED_TEMPLATE)
    url = pg_server.dsn(name)
    run_nightly(url, NightlyConfig(day=datetime.now(timezone.utc).date(), llm="offline"))
    yield url
    drop_database(pg_server, name)


@pytest.fixture(scope="module")
def server(live_db, tmp_path_factory):
    """`ootd serve --workers 2` with no OOTD_API_SECRET: it uses the per-install secret under OOTD_HOME."""
    home = tmp_path_factory.mktemp("ootd-home")
    tmp = tmp_path_factory.mktemp("server-tmp")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("OOTD_API_SECRET", "PROMETHEUS_MULTIPROC_DIR")}
    env.pop("XDG_RUNTIME_DIR", None)
    env.update(DATABASE_URL=live_db, OOTD_HOME=str(home), TMPDIR=str(tmp), HOME=str(tmp))  # HOME: no control socket
    log = (tmp_path_factory.mktemp("log") / "serve.log").open("w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "serve", "--port", str(port), "--workers", "2"],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if request(base, "/healthz", timeout=2)[0] == 200:
                break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            log.seek(0)
            proc.kill()
            pytest.fail(f"ootd serve did not start:\n{log.read()}")
        time.sleep(0.1)
    yield {"proc": proc, "base": base, "home": home, "tmp": tmp, "log": log, "url": live_db}
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def raw_request(base: str, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `data` as it is (no HTTP client would send these requests) and read one response.

    A thread sends, so that a server answering before it has read a large body is read meanwhile.
    """
    host, port = base.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:

        def send() -> None:
            try:
                sock.sendall(data)
            except OSError:  # the server answered and closed without reading the rest: allowed
                pass

        sender = threading.Thread(target=send)
        sender.start()
        try:
            reader = sock.makefile("rb")
            status = int(reader.readline().split(b" ", 2)[1])
            headers = {}
            while (line := reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            body = reader.read(int(headers.get("content-length", "0")))
        finally:
            # gunicorn reads at most 64 KiB past what the app read, then closes (FIN first, so the response
            # arrives whole): the sender's remaining bytes reset the connection, which may be gone already.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # unblocks the sender
            sender.join(timeout=30)
    return status, headers, body


def json_error(headers: dict[str, str], body: bytes) -> dict:
    assert headers["content-type"] == "application/json", body
    payload = json.loads(body)
    assert set(payload) == {"error"} and set(payload["error"]) == {"code", "message"}, payload
    assert isinstance(payload["error"]["message"], str) and payload["error"]["message"]
    return payload["error"]


def chunked(body: bytes, size: int = 65536) -> bytes:
    return (
        b"".join(b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size]) for i in range(0, len(body), size))
        + b"0\r\n\r\n"
    )


def token(server, user_id: int) -> str:
    result = run_cli("token", str(user_id), env={"OOTD_HOME": str(server["home"]), "DATABASE_URL": server["url"]})
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_token_printed_by_ootd_token_is_accepted_by_ootd_serve(server):
    secret_file = server["home"] / "api_secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    status, headers, body = request(server["base"], "/v1/users/7/feed?limit=5", token(server, 7))
    assert status == 200, body
    assert headers["Content-Type"] == "application/json"
    feed = json.loads(body)
    assert feed["user_id"] == 7 and len(feed["items"]) == 5
    assert request(server["base"], "/v1/users/8/feed", token(server, 7))[0] == 403
    assert request(server["base"], "/v1/users/7/feed")[0] == 401


def test_errors_over_real_http_are_json(server):
    status, _, body = request(server["base"], "/nope")
    assert status == 404 and json.loads(body)["error"]["code"] == "not_found"
    status, _, body = request(
        server["base"],
        "/v1/users/7/likes",
        token(server, 7),
        method="POST",
        body=b'{"outfit_id": 1, "pad": "' + b"x" * 10_000 + b'"}',
        content_type="application/json",
    )
    assert status == 413 and json.loads(body)["error"]["code"] == "request_entity_too_large"
    assert request(server["base"], "/readyz")[0] == 200


def test_metrics_add_up_every_workers_requests(server):
    tok = token(server, 9)
    for _ in range(40):  # spread over both workers by the kernel's accept balancing
        assert request(server["base"], "/v1/users/9/feed", tok)[0] == 200
    status, headers, body = request(server["base"], "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    text = body.decode()
    line = next(
        row
        for row in text.splitlines()
        if row.startswith('ootd_http_requests_total{method="GET",route="/v1/users/<user_id>/feed",status="200"}')
    )
    assert float(line.rsplit(" ", 1)[1]) >= 40
    assert "ootd_fallback_pools 0.0" in text
    assert 'ootd_http_request_duration_seconds_bucket{le="0.02",method="GET",route="/v1/users/<user_id>/feed"}' in text


def test_serve_says_where_it_listens_and_opens_no_control_socket(server):
    """gunicorn logged `Listening at:  (pid)` and opened ~/.gunicorn/gunicorn.ctl, shared by every instance."""
    server["log"].seek(0)
    log = server["log"].read()
    assert f"Listening at: {server['base']} (" in log, log
    assert not (Path(server["tmp"]) / ".gunicorn").exists()
    assert "control" not in log.lower(), log


class SlowClients:
    """`n` connections that each send a request line, then one header line every `period` seconds
    (slowloris), never finishing their heads, until closed."""

    def __init__(self, base: str, n: int, period: float):
        host, port = base.removeprefix("http://").rsplit(":", 1)
        self.socks = [socket.create_connection((host, int(port)), timeout=5) for _ in range(n)]
        self.period, self.stopped = period, threading.Event()
        for sock in self.socks:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        self.thread = threading.Thread(target=self._trickle, daemon=True)
        self.thread.start()

    def _trickle(self) -> None:
        line = 0
        while not self.stopped.wait(self.period):
            line += 1
            for sock in self.socks:
                with contextlib.suppress(OSError):
                    sock.sendall(b"X-Slow-%d: x\r\n" % line)

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=10)
        for sock in self.socks:
            sock.close()


def test_slow_clients_do_not_stall_healthz_or_feeds(server):
    """50 connections trickling their headers (2 workers x 4 threads) leave /healthz and feeds answering.

    The 100 ms goal is bench/slow_clients.py's; here each answer must come within 2 s (before: every
    request waited for the slow clients, as long as they lasted)."""
    tok = token(server, 11)
    slow = SlowClients(server["base"], 50, period=0.5)
    try:
        time.sleep(0.5)  # every slow client has sent a line or two
        for _ in range(10):  # bounded: 20 requests while the slow clients trickle
            started = time.monotonic()
            assert request(server["base"], "/healthz", timeout=2)[0] == 200
            assert request(server["base"], "/v1/users/11/feed", tok, timeout=2)[0] == 200
            assert time.monotonic() - started < 2
        assert slow.thread.is_alive()  # they were still trickling throughout
    finally:
        slow.close()


def test_a_head_not_whole_within_the_timeout_is_answered_408(server):
    from api.server import HEAD_TIMEOUT_S

    host, port = server["base"].removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=HEAD_TIMEOUT_S + 10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and nothing more
        started = time.monotonic()
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
        waited = time.monotonic() - started
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), answer
    assert json.loads(body)["error"]["code"] == "request_timeout"
    assert HEAD_TIMEOUT_S - 1 <= waited <= HEAD_TIMEOUT_S + 3


def test_simulate_errors_do_not_fill_the_database_log(server, pg_server):
    """500 unauthenticated what-if calls for an unknown city (400 each) leave no ERROR line per call in the
    database's log (they grew it by 500 KB: the API role's client errors were logged at ERROR)."""
    body = json.dumps({"profile": {"city": "Nowhere"}}).encode()
    before = pg_server.log_bytes()
    for _ in range(500):
        status, _, answer = request(
            server["base"], "/v1/simulate", method="POST", body=body, content_type="application/json"
        )
        assert status == 400, answer
    assert "Nowhere" in json.loads(answer)["error"]["message"]
    grown = _logged_through_marker(pg_server) - before
    assert grown < 5_000, grown


def _logged_through_marker(server) -> int:
    """The log's size once a marker warning sent after everything else has reached it: the logging
    collector writes asynchronously, and a size read too early would hide what the requests logged."""
    marker = f"ootd-log-marker-{time.monotonic_ns()}"
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute(f"DO $$ BEGIN RAISE WARNING '{marker}'; END $$")
    for _ in range(200):
        if any(marker in path.read_text(errors="replace") for path in server.log_dir.glob("postgresql-*.log")):
            return server.log_bytes()  # the marker's own two lines (~250 bytes) count within the test's bound
        time.sleep(0.05)
    raise AssertionError(f"the marker never reached {server.log_dir}")


def test_a_second_server_on_the_same_port_fails_fast(server):
    """The workers listen with SO_REUSEPORT; a second `ootd serve` must not silently share their port."""
    port = server["base"].rsplit(":", 1)[1]
    result = run_cli(
        "serve", "--port", port, env={"DATABASE_URL": server["url"], "OOTD_HOME": str(server["home"])}, timeout=60
    )  # a server that shares the port would run until killed
    assert result.returncode == 1
    assert result.stderr.startswith(f"ootd: error: cannot listen on 127.0.0.1:{port}: Address already in use")
    assert request(server["base"], "/healthz")[0] == 200


HOST = b"Host: 127.0.0.1\r\n"
LIKE = b"POST /v1/users/7/likes HTTP/1.1\r\n" + HOST


@pytest.mark.parametrize(
    "request_bytes, status, code",
    [
        (
            b"GET /healthz HTTP/1.1\r\n" + HOST + b"X-Big: " + b"a" * 9000 + b"\r\n\r\n",
            431,
            "request_header_fields_too_large",
        ),
        (b"GET /healthz?q=" + b"a" * 5000 + b" HTTP/1.1\r\n" + HOST + b"\r\n", 414, "uri_too_long"),
        (
            b"GET /healthz HTTP/1.1\r\n" + HOST + b"".join(b"X-H%d: v\r\n" % i for i in range(100)) + b"\r\n",
            431,
            "request_header_fields_too_large",
        ),  # 101 with Host
        (LIKE + b"Content-Type: application/json\r\nContent-Length: -1\r\n\r\n", 400, "bad_request"),
        (LIKE + b"Content-Type: application/\x00json\r\nContent-Length: 2\r\n\r\n{}", 400, "bad_request"),
        (b"GET * HTTP/1.1\r\n" + HOST + b"\r\n", 400, "bad_request"),
        (
            LIKE + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
            400,
            "bad_request",
        ),  # a malformed chunk, found while the app reads the body
        (b"GET /healthz HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: gzip\r\n\r\n", 400, "bad_request"),
        (b"GET /healthz HTTP/9.9\r\n" + HOST + b"\r\n", 400, "bad_request"),
    ],
    ids=[
        "9000-byte-header",
        "5000-byte-query",
        "101-headers",
        "negative-content-length",
        "nul-in-content-type",
        "get-asterisk",
        "malformed-chunk",
        "gzip-transfer-encoding",
        "http-9.9",
    ],
)
def test_requests_gunicorn_rejects_get_json_errors(server, request_bytes, status, code):
    """gunicorn answers these before the app runs: the status is its own, the body the API's JSON error."""
    got_status, headers, body = raw_request(server["base"], request_bytes)
    assert got_status == status, body
    assert json_error(headers, body)["code"] == code
    assert request(server["base"], "/healthz")[0] == 200


@pytest.mark.parametrize(
    "body",
    [
        b'{"outfit_id": 4}' + b" " * 5000 + b"garbage",  # its first 4 KiB are valid JSON
        b"x" * (10 << 20),
    ],
    ids=["5000-spaces-then-garbage", "10-MiB"],
)
def test_a_chunked_body_over_4_kib_is_413(server, body):
    tok = token(server, 31)
    head = (
        b"POST /v1/users/31/likes HTTP/1.1\r\n"
        + HOST
        + f"Authorization: Bearer {tok}\r\n".encode()
        + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    status, headers, response = raw_request(server["base"], head + chunked(body))
    assert status == 413, response
    assert json_error(headers, response) == {
        "code": "request_entity_too_large",
        "message": "request body larger than 4096 bytes",
    }
    with psycopg.connect(server["url"]) as conn:
        assert conn.execute("SELECT count(*) FROM ootd.likes WHERE user_id = 31").fetchone()[0] == 0


def test_a_chunked_like_within_4_kib_is_accepted(server):
    tok = token(server, 32)
    outfit_id = json.loads(request(server["base"], "/v1/users/32/feed", tok)[2])["items"][0]["outfit_id"]
    head = (
        b"POST /v1/users/32/likes HTTP/1.1\r\n"
        + HOST
        + f"Authorization: Bearer {tok}\r\n".encode()
        + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    status, _, response = raw_request(server["base"], head + chunked(json.dumps({"outfit_id": outfit_id}).encode(), 5))
    assert status == 201, response
    assert json.loads(response)["outfit_id"] == outfit_id


def test_sigterm_lets_the_in_flight_request_finish_then_exits_0(server):
    """A like blocked on a table lock is in flight when SIGTERM arrives: it still gets its 201."""
    tok = token(server, 21)
    outfit_id = json.loads(request(server["base"], "/v1/users/21/feed", tok)[2])["items"][0]["outfit_id"]
    result: dict = {}
    with psycopg.connect(server["url"]) as blocker:
        blocker.execute("LOCK TABLE ootd.likes IN ACCESS EXCLUSIVE MODE")  # held until commit

        def like() -> None:
            result["response"] = request(
                server["base"],
                "/v1/users/21/likes",
                tok,
                method="POST",
                body=json.dumps({"outfit_id": outfit_id}).encode(),
                content_type="application/json",
            )

        thread = threading.Thread(target=like)
        thread.start()
        deadline = time.monotonic() + 10
        while not blocker.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'ootd-api' AND wait_event_type = 'Lock'"
        ).fetchone()[0]:
            assert time.monotonic() < deadline, "the like never reached the lock"
            time.sleep(0.05)
        server["proc"].send_signal(signal.SIGTERM)
        time.sleep(1.0)  # the master is shutting down, the request is still waiting on the lock
        assert server["proc"].poll() is None
    thread.join(timeout=20)
    server["log"].seek(0)
    assert result["response"][0] == 201, (result["response"], server["log"].read())
    assert server["proc"].wait(timeout=30) == 0
    server["log"].seek(0)
    log = server["log"].read()
    assert "Shutting down" in log
    assert "Traceback" not in log and "Exception" not in log, log
    assert not any(Path(server["tmp"]).glob("ootd-metrics-*"))  # the multiprocess metrics dir is removed
    with pytest.raises(OSError):
        request(server["base"], "/healthz", timeout=2)


def test_serve_fails_fast_when_the_database_is_unreachable(pg_server, tmp_path):
    result = run_cli(
        "serve",
        "--port",
        str(free_port()),
        env={"DATABASE_URL": pg_server.dsn("no_such_database"), "OOTD_HOME": str(tmp_path)},
    )
    assert result.returncode == 1
    assert result.stderr.startswith("ootd: error: cannot connect to the database")


def test_token_command_validates_its_input(tmp_path):
    assert run_cli("token", "0", env={"OOTD_HOME": str(tmp_path)}).returncode == 2
    short = run_cli("token", "7", env={"OOTD_HOME": str(tmp_path), "OOTD_API_SECRET": "short"})
    assert short.returncode == 1 and "OOTD_API_SECRET must be at least 32 bytes" in short.stderr


def test_demo_ends_with_a_curl_line_whose_token_the_server_accepts(tmp_path, monkeypatch, capsys):
    from api.auth import Authenticator, load_secret
    from cli.main import _print_serve_hint

    monkeypatch.setenv("OOTD_HOME", str(tmp_path))
    monkeypatch.delenv("OOTD_API_SECRET", raising=False)
    _print_serve_hint(1)
    out = capsys.readouterr().out
    assert "ootd serve --port 8000" in out
    curl = next(line for line in out.splitlines() if line.strip().startswith("curl "))
    token = curl.split("Bearer ", 1)[1].split('"', 1)[0]
    assert curl.endswith("http://127.0.0.1:8000/v1/users/1/feed")
    assert Authenticator(load_secret(create=False)).user_id(f"Bearer {token}") == 1
