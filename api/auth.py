"""Bearer tokens: HS256 JWTs (PyJWT) that name one user and expire.

A token's claims are `sub` (the user id, as a string), `iat`, `exp`, `iss`
("ootd") and `gen` (the user's token generation when it was minted); all five
are required.  A token lives at most `OOTD_TOKEN_MAX_TTL_S` seconds (default
30 days): `ootd token` refuses a longer `--ttl` and the API refuses a token
whose `exp - iat` is longer.  Revocation: `ootd token revoke USER` raises the
user's generation (ootd.revoke_tokens); the API compares every token's `gen`
with ootd.token_generation(user) on the primary, on every request (no cache),
so the revoke holds for every worker from the next request on.

The HMAC secret is `OOTD_API_SECRET` (at least 32 bytes, RFC 7518 §3.2).
When it is unset, `ootd serve` and `ootd token` share a per-install secret
generated once into `$OOTD_HOME/api_secret` (mode 0600), so the demo works
without configuration and a token printed by `ootd token` is accepted by
`ootd serve` on the same install.  Production sets OOTD_API_SECRET; nothing ever commits a secret.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from functools import lru_cache
from pathlib import Path

import jwt

from api.errors import ApiError

ALGORITHM = "HS256"
ISSUER = "ootd"
MIN_SECRET_BYTES = 32
DEFAULT_TTL_S = 24 * 3600
DEFAULT_MAX_TTL_S = 30 * 24 * 3600
MAX_TTL_ENV = "OOTD_TOKEN_MAX_TTL_S"
_MAX_MAX_TTL_S = 366 * 24 * 3600  # a configured maximum above a year is a typo, not a policy
LEEWAY_S = 5  # clock skew tolerated on exp
MAX_USER_ID = 2**63 - 1
MAX_GENERATION = 2**31 - 1  # ootd.api_token_generations.generation is an integer
_DIGITS = re.compile(r"[0-9]{1,19}")


class SecretError(ValueError):
    """OOTD_API_SECRET (or the secret file) is unusable."""


def secret_file() -> Path:
    from db.server import home_dir

    return home_dir() / "api_secret"


def load_secret(create: bool = True) -> str:
    """OOTD_API_SECRET, else the per-install secret file (created on first use when `create`)."""
    value = os.environ.get("OOTD_API_SECRET")
    if value is not None:
        if len(value.encode()) < MIN_SECRET_BYTES:
            raise SecretError(
                f"OOTD_API_SECRET must be at least {MIN_SECRET_BYTES} bytes "
                f"(try: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        return value
    path = secret_file()
    if not path.exists():
        if not create:
            raise SecretError(f"OOTD_API_SECRET is unset and {path} does not exist")
        _create_secret_file(path)
    value = path.read_text().strip()
    if len(value.encode()) < MIN_SECRET_BYTES:
        raise SecretError(f"{path} holds a secret shorter than {MIN_SECRET_BYTES} bytes; delete it to regenerate")
    return value


def _create_secret_file(path: Path) -> None:
    """Write a fresh secret atomically (0600); whoever links first wins, others read theirs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48) + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)


def max_ttl_s() -> int:
    """The longest a token may live, in seconds: OOTD_TOKEN_MAX_TTL_S, else 30 days."""
    value = os.environ.get(MAX_TTL_ENV)
    if value is None or not value.strip():
        return DEFAULT_MAX_TTL_S
    if not _DIGITS.fullmatch(value.strip()) or not 1 <= int(value) <= _MAX_MAX_TTL_S:
        raise ValueError(f"{MAX_TTL_ENV} must be a number of seconds from 1 to {_MAX_MAX_TTL_S}, got {value!r}")
    return int(value)


def issue_token(
    user_id: int,
    secret: str,
    ttl_s: int | None = None,
    now: float | None = None,
    *,
    generation: int = 0,
    max_ttl: int | None = None,
) -> str:
    """A token for `user_id` of token generation `generation` (ootd.token_generation), valid for `ttl_s`
    seconds (default: a day, or the maximum if that is shorter); more than the maximum is a ValueError."""
    if not 1 <= user_id <= MAX_USER_ID:
        raise ValueError(f"user id must be between 1 and {MAX_USER_ID}, got {user_id}")
    limit = max_ttl_s() if max_ttl is None else max_ttl
    ttl = min(DEFAULT_TTL_S, limit) if ttl_s is None else int(ttl_s)
    if not 1 <= ttl <= limit:
        raise ValueError(f"a token lives from 1 to {limit} seconds ({MAX_TTL_ENV}), got --ttl {ttl}")
    if not 0 <= generation <= MAX_GENERATION:
        raise ValueError(f"token generation must be between 0 and {MAX_GENERATION}, got {generation}")
    issued = int(time.time() if now is None else now)
    claims = {"sub": str(user_id), "iat": issued, "exp": issued + ttl, "iss": ISSUER, "gen": generation}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def token_revoked() -> ApiError:
    """The 401 for a token minted before its user's last revoke (ootd token revoke)."""
    return _unauthorized("token revoked")


def _unauthorized(message: str, error: str | None = "invalid_token") -> ApiError:
    challenge = 'Bearer realm="ootd"'
    if error:
        challenge += f', error="{error}", error_description="{message}"'
    return ApiError(401, "unauthorized", message, {"WWW-Authenticate": challenge})


class Authenticator:
    """Checks bearer tokens against one secret and a maximum lifetime (default: OOTD_TOKEN_MAX_TTL_S).

    It does not know about revocation: `subject` returns the token's generation, which the caller
    compares with the database's (api/routes.py, ootd.token_generation) on every request.

    Verifying an HS256 JWT costs about 40 µs of Python, as much as the rest of
    a feed request's routing; clients reuse a token for many requests, so
    tokens that verified are remembered (bounded LRU keyed by the whole token,
    signature included, so a forged token never matches) and only their
    expiry is checked again.  Tokens that fail are never remembered.
    """

    CACHE_SIZE = 16_384
    CACHEABLE_LENGTH = 512  # ours are ~150 bytes; a huge header must not pin memory

    def __init__(self, secret: str, max_ttl: int | None = None):
        self.secret = secret
        self.max_ttl = max_ttl_s() if max_ttl is None else max_ttl
        self._verified = lru_cache(maxsize=self.CACHE_SIZE)(self._verify)

    def user_id(self, header: str | None) -> int:
        """The user id a valid `Authorization: Bearer <token>` header names; 401 otherwise."""
        return self.subject(header)[0]

    def subject(self, header: str | None) -> tuple[int, int]:
        """(user id, token generation) of a valid `Authorization: Bearer <token>` header; 401 otherwise."""
        if not header:
            raise _unauthorized("missing bearer token", error=None)  # RFC 6750 §3.1: no error code
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _unauthorized("expected 'Authorization: Bearer <token>'", error="invalid_request")
        if len(token) > self.CACHEABLE_LENGTH:
            return self._verify(token)[:2]
        user_id, generation, expires = self._verified(token)
        if time.time() > expires + LEEWAY_S:
            raise _unauthorized("token expired")
        return user_id, generation

    def _verify(self, token: str) -> tuple[int, int, float]:
        """(user id, generation, exp) of a token whose signature, issuer and claims check out; 401 otherwise."""
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                leeway=LEEWAY_S,
                options={"require": ["sub", "exp", "iat", "iss", "gen"]},
            )
        except jwt.ExpiredSignatureError:
            raise _unauthorized("token expired") from None
        except jwt.InvalidSignatureError:
            raise _unauthorized("token signature is invalid") from None
        except jwt.MissingRequiredClaimError as exc:
            raise _unauthorized(f"token lacks the {exc.claim!r} claim") from None
        except jwt.InvalidTokenError:
            raise _unauthorized("malformed token") from None
        sub = claims["sub"]
        if not isinstance(sub, str) or not _DIGITS.fullmatch(sub) or not 1 <= int(sub) <= MAX_USER_ID:
            raise _unauthorized("token subject is not a user id")
        generation, issued, expires = claims["gen"], claims["iat"], claims["exp"]
        if not isinstance(generation, int) or isinstance(generation, bool) or not 0 <= generation <= MAX_GENERATION:
            raise _unauthorized("token generation is not an integer from 0 to 2147483647")
        if not isinstance(issued, (int, float)) or expires - issued > self.max_ttl:
            raise _unauthorized(f"token lifetime exceeds {self.max_ttl} seconds")
        return int(sub), generation, float(expires)
