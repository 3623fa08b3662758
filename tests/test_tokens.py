"""API tokens: a maximum lifetime, revocation (`ootd token revoke`), and the 401 challenges the README states.

Real database, real CLI processes, Flask's test client; two apps on one database stand for two
API workers (each has its own pool and its own cache of verified tokens).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import jwt
import psycopg
import pytest
from psycopg import errors

from api.app import create_app
from api.auth import DEFAULT_MAX_TTL_S, Authenticator, issue_token
from api.errors import ApiError
from db import REPO_ROOT
from tests.conftest import run_cli

SECRET = "tokens-test-secret-" + "t" * 40
USER, OTHER = 7, 8


@pytest.fixture
def users_url(db_url: str) -> str:
    """A migrated database with users 7 and 8 (no pools: an accepted token gets 503 no_pools)."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("SELECT ootd.put_user(7, 'Torrance'), ootd.put_user(8, 'Mumbai')")
    return db_url


@pytest.fixture
def workers(users_url: str) -> Iterator[list]:
    """Two API "workers" on the same database."""
    apps = [create_app(users_url, SECRET, pool_max=1) for _ in range(2)]
    yield [a.test_client() for a in apps]
    for a in apps:
        a.extensions["ootd"].db.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def feed(client, token: str, user_id: int = USER):
    return client.get(f"/v1/users/{user_id}/feed", headers=bearer(token))


def cli_env(url: str, home) -> dict[str, str]:
    return {"DATABASE_URL": url, "OOTD_HOME": str(home), "OOTD_API_SECRET": SECRET}


# ---------------------------------------------------------------- lifetime --
def test_ootd_token_refuses_a_ttl_above_the_maximum(users_url, tmp_path):
    env = cli_env(users_url, tmp_path)
    result = run_cli("token", "7", "--ttl", "99999999999", env=env)  # 3,000 years
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.strip() == (
        "ootd: error: --ttl must be at most 2592000 seconds (OOTD_TOKEN_MAX_TTL_S), got 99999999999"
    )

    limited = {**env, "OOTD_TOKEN_MAX_TTL_S": "60"}
    assert run_cli("token", "7", "--ttl", "61", env=limited).returncode == 1
    ok = run_cli("token", "7", "--ttl", "60", env=limited)
    assert ok.returncode == 0, ok.stderr
    claims = jwt.decode(ok.stdout.strip(), SECRET, algorithms=["HS256"], issuer="ootd")
    assert claims["exp"] - claims["iat"] == 60 and claims["gen"] == 0

    bad = run_cli("token", "7", env={**env, "OOTD_TOKEN_MAX_TTL_S": "forever"})
    assert bad.returncode == 1
    assert "OOTD_TOKEN_MAX_TTL_S must be a number of seconds from 1 to 31622400, got 'forever'" in bad.stderr


def test_issue_token_refuses_a_ttl_above_the_maximum():
    with pytest.raises(ValueError, match=r"a token lives from 1 to 2592000 seconds"):
        issue_token(USER, SECRET, ttl_s=DEFAULT_MAX_TTL_S + 1)
    assert issue_token(USER, SECRET, ttl_s=DEFAULT_MAX_TTL_S)
    with pytest.raises(ValueError, match=r"a token lives from 1 to 60 seconds"):
        issue_token(USER, SECRET, ttl_s=61, max_ttl=60)


def test_the_api_refuses_a_token_that_lives_longer_than_the_maximum(workers):
    """A 3,000-year token minted before the limit existed (or with another secret holder's tool) is a 401."""
    now = int(time.time())
    ancient = jwt.encode({"sub": "7", "iat": now, "exp": now + 99999999999, "iss": "ootd", "gen": 0}, SECRET)
    response = feed(workers[0], ancient)
    assert response.status_code == 401
    assert response.get_json()["error"] == {
        "code": "unauthorized",
        "message": f"token lifetime exceeds {DEFAULT_MAX_TTL_S} seconds",
    }
    assert feed(workers[0], issue_token(USER, SECRET, ttl_s=DEFAULT_MAX_TTL_S)).status_code == 503  # accepted


@pytest.mark.parametrize(
    "gen, message",
    [
        (None, "token lacks the 'gen' claim"),
        ("0", "token generation is not an integer from 0 to 2147483647"),
        (-1, "token generation is not an integer from 0 to 2147483647"),
        (True, "token generation is not an integer from 0 to 2147483647"),
    ],
)
def test_a_token_without_an_integer_generation_is_refused(gen, message):
    now = int(time.time())
    claims = {"sub": "7", "iat": now, "exp": now + 60, "iss": "ootd"} | ({} if gen is None else {"gen": gen})
    with pytest.raises(ApiError) as caught:
        Authenticator(SECRET).subject(f"Bearer {jwt.encode(claims, SECRET)}")
    assert (caught.value.status, caught.value.message) == (401, message)


# -------------------------------------------------------------- revocation --
def test_revoke_refuses_every_earlier_token_at_once_in_every_worker(workers, users_url, tmp_path):
    env = cli_env(users_url, tmp_path)
    minted = run_cli("token", "7", env=env)
    assert minted.returncode == 0, minted.stderr
    old = minted.stdout.strip()
    other = issue_token(OTHER, SECRET)
    for client in workers:  # both workers have verified (and remembered) the token
        assert feed(client, old).status_code == 503  # accepted: no pools in this database

    revoked = run_cli("token", "revoke", "7", env=env)
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.strip() == "revoked every token of user 7 (token generation now 1)"

    for client in workers:
        response = feed(client, old)
        assert response.status_code == 401
        assert response.get_json()["error"] == {"code": "unauthorized", "message": "token revoked"}
        assert response.headers["WWW-Authenticate"] == (
            'Bearer realm="ootd", error="invalid_token", error_description="token revoked"'
        )
        like = client.post(f"/v1/users/{USER}/likes", json={"outfit_id": 1}, headers=bearer(old))
        assert like.status_code == 401  # every user route, writes included
        assert feed(client, other, OTHER).status_code == 503  # another user's tokens still work

    fresh = run_cli("token", "7", env=env)
    assert fresh.returncode == 0, fresh.stderr
    assert jwt.decode(fresh.stdout.strip(), SECRET, algorithms=["HS256"], issuer="ootd")["gen"] == 1
    for client in workers:
        assert feed(client, fresh.stdout.strip()).status_code == 503
        assert feed(client, old).status_code == 401

    again = run_cli("token", "revoke", "7", env=env)
    assert again.stdout.strip() == "revoked every token of user 7 (token generation now 2)"
    assert feed(workers[0], fresh.stdout.strip()).status_code == 401


def test_revoking_an_unknown_user_is_an_error_and_changes_nothing(users_url, tmp_path):
    result = run_cli("token", "revoke", "999", env=cli_env(users_url, tmp_path))
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.strip() == "ootd: error: unknown user 999"
    for args, message in [  # usage errors: exit 2, argparse's usage line first
        (("token", "revoke"), "ootd token: error: ootd token revoke USER: which user's tokens to revoke?"),
        (("token", "revoke", "x7"), "ootd token: error: argument USER: expected a positive integer, got 'x7'"),
        (("token", "revoke", "7", "--ttl", "60"), "ootd token: error: --ttl applies to minting a token, not to revoke"),
        (("token", "7", "8"), "ootd token: error: unexpected argument 8 (ootd token ID, or ootd token revoke ID)"),
        (("token", "0"), "ootd token: error: argument ID|revoke: expected a positive integer, got '0'"),
    ]:
        refused = run_cli(*args, env=cli_env(users_url, tmp_path))
        assert (refused.returncode, refused.stderr.strip().splitlines()[-1]) == (2, message)
    with psycopg.connect(users_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM ootd.api_token_generations").fetchone()[0] == 0
        with pytest.raises(errors.NoDataFound) as caught:
            conn.execute("SELECT ootd.revoke_tokens(999)")
        assert caught.value.diag.message_primary == "unknown user 999"
        with pytest.raises(errors.NoDataFound):
            conn.execute("SELECT ootd.revoke_tokens(NULL)")
        assert conn.execute("SELECT count(*) FROM ootd.api_token_generations").fetchone()[0] == 0
        assert conn.execute("SELECT ootd.token_generation(999), ootd.token_generation(7)").fetchone() == (0, 0)


def test_only_the_owner_revokes_and_the_api_role_reads_generations(users_url):
    with psycopg.connect(users_url, autocommit=True) as conn:
        for role in ("ootd_api", "ootd_batch", "ootd_analyst"):
            conn.execute(f"SET ROLE {role}")
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute("SELECT ootd.revoke_tokens(7)")
            conn.execute("RESET ROLE")
        conn.execute("SET ROLE ootd_api")
        assert conn.execute("SELECT ootd.token_generation(7)").fetchone() == (0,)
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM ootd.api_token_generations")


# ------------------------------------------------------------- challenges --
def readme_challenges() -> list[str]:
    """Every `WWW-Authenticate: ...` header value the README's HTTP API section states."""
    text = (REPO_ROOT / "README.md").read_text()
    auth = text[text.index("- **Auth**") :]
    auth = auth[: auth.index("\n- **", 1)]
    return re.findall(r"`WWW-Authenticate: ([^`]+)`", auth)


def test_the_readme_states_the_401_challenges_the_api_sends(workers):
    """RFC 6750 §3.1: no credentials, no error code; a header that is not Bearer: invalid_request;
    a bad token: invalid_token.  The README states exactly these three, in this order."""
    client = workers[0]
    missing = client.get(f"/v1/users/{USER}/feed")
    not_bearer = client.get(f"/v1/users/{USER}/feed", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    bad_token = client.get(f"/v1/users/{USER}/feed", headers={"Authorization": "Bearer not-a-jwt"})
    assert [r.status_code for r in (missing, not_bearer, bad_token)] == [401, 401, 401]
    sent = [r.headers["WWW-Authenticate"].split(", error_description=")[0] for r in (missing, not_bearer, bad_token)]
    assert sent == [
        'Bearer realm="ootd"',
        'Bearer realm="ootd", error="invalid_request"',
        'Bearer realm="ootd", error="invalid_token"',
    ]
    assert readme_challenges() == sent
