"""Bad user data is rejected with a precise message and SQLSTATE, and writes nothing."""

from __future__ import annotations

import json

import psycopg
import pytest
from psycopg import errors

from tests.conftest import run_cli

GOOD_DNA = {
    "archetype": "Minimal",
    "preferred_colors": ["Beige"],
    "category_affinity": {"Dress": 2},
    "vibe": 0.4,
    "trend": 0.5,
    "dare": 0.1,
}
GOOD_RULES = {"liked_categories": ["Trousers"], "disliked_categories": ["Shorts"], "disliked_colors": ["Orange"]}

INSERT = "INSERT INTO ootd.users (id, city, timezone, style_dna, style_rules) VALUES (%s, %s, %s, %s, %s)"
UPDATE = "UPDATE ootd.users SET timezone = %s, style_dna = %s, style_rules = %s WHERE id = 1"


@pytest.fixture
def existing(conn: psycopg.Connection) -> dict:
    conn.execute(INSERT, (1, "Torrance", "America/Los_Angeles", json.dumps(GOOD_DNA), json.dumps(GOOD_RULES)))
    return snapshot(conn)


def snapshot(conn: psycopg.Connection) -> dict:
    rows = conn.execute(
        "SELECT id, city, timezone, style_dna, style_rules, updated_at FROM ootd.users ORDER BY id"
    ).fetchall()
    return {"rows": rows}


BAD_CASES = [
    # (timezone, style_dna, style_rules, sqlstate, exact message for user 2)
    ("Foo/Bar", {}, {}, "22023", 'user 2: invalid time zone "Foo/Bar": not an IANA time zone name'),
    ("UTC+5", {}, {}, "22023", 'user 2: invalid time zone "UTC+5": not an IANA time zone name'),
    ("EST5EDT", {}, {}, "22023", 'user 2: invalid time zone "EST5EDT": not an IANA time zone name'),
    ("Etc/GMT+5", {}, {}, "22023", 'user 2: invalid time zone "Etc/GMT+5": not an IANA time zone name'),
    ("Europe/Paris", [], {}, "23514", "user 2: style_dna must be a JSON object"),
    ("Europe/Paris", {}, "Dress", "23514", "user 2: style_rules must be a JSON object"),
    (
        "Europe/Paris",
        {},
        {"disliked_categories": "Dress"},
        "23514",
        "user 2: style_rules.disliked_categories must be an array of category names",
    ),
    (
        "Europe/Paris",
        {},
        {"disliked_category": ["Dress"]},
        "23514",
        'user 2: style_rules has unknown key "disliked_category" (known: liked_categories, disliked_categories, disliked_colors)',
    ),
    (
        "Europe/Paris",
        {},
        {"disliked_colors": [1]},
        "23514",
        "user 2: style_rules.disliked_colors must be an array of color names",
    ),
    (
        "Europe/Paris",
        {},
        {"liked_categories": ["Dress"], "disliked_categories": ["Dress"]},
        "23514",
        'user 2: category "Dress" is both liked and disliked in style_rules',
    ),
    ("Europe/Paris", {"vibe": 1.5}, {}, "23514", "user 2: style_dna.vibe must be a number between 0 and 1"),
    (
        "Europe/Paris",
        {"category_affinity": {"Dress": -1}},
        {},
        "23514",
        "user 2: style_dna.category_affinity must map category names to numbers >= 0",
    ),
    (
        "Europe/Paris",
        {"colour": ["Red"]},
        {},
        "23514",
        'user 2: style_dna has unknown key "colour" (known: archetype, preferred_colors, category_affinity, color_affinity, archetype_affinity, vibe, trend, dare)',
    ),
    (
        "Europe/Paris",
        {},
        {"disliked_categories": ["Dress", "Tutu"]},
        "23503",
        'user 2: unknown category "Tutu" in style_rules.disliked_categories',
    ),
    (
        "Europe/Paris",
        {},
        {"liked_categories": ["Cape"]},
        "23503",
        'user 2: unknown category "Cape" in style_rules.liked_categories',
    ),
    (
        "Europe/Paris",
        {},
        {"disliked_colors": ["Mauve"]},
        "23503",
        'user 2: unknown color "Mauve" in style_rules.disliked_colors',
    ),
    (
        "Europe/Paris",
        {"preferred_colors": ["Red", "Mauve"]},
        {},
        "23503",
        'user 2: unknown color "Mauve" in style_dna.preferred_colors',
    ),
    ("Europe/Paris", {"archetype": "Goth"}, {}, "23503", 'user 2: unknown archetype "Goth" in style_dna.archetype'),
    (
        "Europe/Paris",
        {"category_affinity": {"Cape": 1}},
        {},
        "23503",
        'user 2: unknown category "Cape" in style_dna.category_affinity',
    ),
    (
        "Europe/Paris",
        {"color_affinity": {"Red": -0.5}},
        {},
        "23514",
        "user 2: style_dna.color_affinity must map color names to numbers >= 0",
    ),
    (
        "Europe/Paris",
        {"color_affinity": {"Mauve": 1}},
        {},
        "23503",
        'user 2: unknown color "Mauve" in style_dna.color_affinity',
    ),
    # values wrapped in arrays (lax jsonpath would unwrap them; ootd.like would then fail on them)
    ("Europe/Paris", {"vibe": [0.5]}, {}, "23514", "user 2: style_dna.vibe must be a number between 0 and 1"),
    ("Europe/Paris", {"trend": []}, {}, "23514", "user 2: style_dna.trend must be a number between 0 and 1"),
    (
        "Europe/Paris",
        {"category_affinity": {"Dress": [2]}},
        {},
        "23514",
        "user 2: style_dna.category_affinity must map category names to numbers >= 0",
    ),
    (
        "Europe/Paris",
        {"preferred_colors": [["Red"]]},
        {},
        "23514",
        "user 2: style_dna.preferred_colors must be an array of color names",
    ),
    (
        "Europe/Paris",
        {},
        {"disliked_colors": [["Red"]]},
        "23514",
        "user 2: style_rules.disliked_colors must be an array of color names",
    ),
]


@pytest.mark.parametrize(
    "timezone, dna, rules, sqlstate, message", BAD_CASES, ids=[c[4].split(": ", 1)[1][:50] for c in BAD_CASES]
)
def test_bad_insert_is_rejected_precisely_and_writes_nothing(conn, existing, timezone, dna, rules, sqlstate, message):
    with pytest.raises(psycopg.Error) as caught:
        conn.execute(INSERT, (2, "Paris", timezone, json.dumps(dna), json.dumps(rules)))
    assert caught.value.sqlstate == sqlstate
    assert caught.value.diag.message_primary == message
    assert snapshot(conn) == existing


@pytest.mark.parametrize(
    "timezone, dna, rules, sqlstate, message",
    BAD_CASES[:1] + BAD_CASES[7:8] + BAD_CASES[13:14],
    ids=["timezone", "shape", "vocabulary"],
)
def test_bad_update_is_rejected_and_leaves_the_row_unchanged(conn, existing, timezone, dna, rules, sqlstate, message):
    with pytest.raises(psycopg.Error) as caught:
        conn.execute(UPDATE, (timezone, json.dumps(dna), json.dumps(rules)))
    assert caught.value.sqlstate == sqlstate
    assert caught.value.diag.message_primary == message.replace("user 2", "user 1")
    assert snapshot(conn) == existing


def test_malformed_json_is_rejected_by_the_type(conn, existing):
    with pytest.raises(errors.InvalidTextRepresentation) as caught:
        conn.execute(INSERT, (2, "Paris", "Europe/Paris", "{}", '{"disliked_categories": ['))
    assert caught.value.sqlstate == "22P02"
    assert caught.value.diag.message_primary == "invalid input syntax for type json"
    assert snapshot(conn) == existing


def test_one_bad_row_in_a_copy_of_a_thousand_writes_none_of_them(conn, existing):
    lines = [f"{i}\tLondon\tEurope/London\t{{}}\t{{}}\n" for i in range(10, 1010)]
    lines[500] = '510\tLondon\tEurope/London\t{}\t{"disliked_colors":["Mauve"]}\n'
    with pytest.raises(errors.ForeignKeyViolation) as caught:
        with conn.cursor().copy("COPY ootd.users (id, city, timezone, style_dna, style_rules) FROM STDIN") as copy:
            copy.write("".join(lines))
    assert caught.value.diag.message_primary == 'user 510: unknown color "Mauve" in style_rules.disliked_colors'
    assert snapshot(conn) == existing


def test_unknown_city_is_a_foreign_key_error(conn, existing):
    with pytest.raises(errors.ForeignKeyViolation) as caught:
        conn.execute("SELECT ootd.put_user(2, 'Atlantis')")
    assert caught.value.diag.message_primary == 'unknown city "Atlantis"'
    assert snapshot(conn) == existing


def test_valid_profiles_are_accepted_and_timezone_defaults_to_the_city(conn, existing):
    row = conn.execute(
        "SELECT * FROM ootd.put_user(3, 'Adelaide', NULL, %s, %s)", (json.dumps(GOOD_DNA), json.dumps(GOOD_RULES))
    ).fetchone()
    assert row["timezone"] == "Australia/Adelaide"
    assert row["style_dna"] == GOOD_DNA and row["style_rules"] == GOOD_RULES
    row = conn.execute("SELECT * FROM ootd.put_user(3, 'Adelaide', 'Asia/Kathmandu')").fetchone()
    assert row["timezone"] == "Asia/Kathmandu"


@pytest.mark.parametrize(
    "args, expected",
    [
        (
            ["--timezone", "UTC+5"],
            'ootd: error: user 7: invalid time zone "UTC+5": not an IANA time zone name (SQLSTATE 22023)',
        ),
        (
            ["--rules", '{"disliked_categories": ["Tutu"]}'],
            'ootd: error: user 7: unknown category "Tutu" in style_rules.disliked_categories (SQLSTATE 23503)',
        ),
        (
            ["--dna", '{"preferred_colors": ["Mauve"]}'],
            'ootd: error: user 7: unknown color "Mauve" in style_dna.preferred_colors (SQLSTATE 23503)',
        ),
    ],
)
def test_cli_prints_one_line_and_exits_nonzero(db_url, conn, existing, args, expected):
    result = run_cli("user", "7", "--city", "Paris", *args, env={"DATABASE_URL": db_url})
    assert result.returncode == 1
    assert result.stderr.strip() == expected
    assert snapshot(conn) == existing


def test_cli_rejects_malformed_json_before_touching_the_database(db_url, conn, existing):
    result = run_cli(
        "user", "7", "--city", "Paris", "--rules", '{"disliked_categories": [', env={"DATABASE_URL": db_url}
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "ootd user: error: argument --rules: malformed JSON (Expecting value at column 26): "
        "'{\"disliked_categories\": ['"
    )
    assert "Traceback" not in result.stderr
    assert snapshot(conn) == existing


# ------------------------------------------------------ no setting skips a check --
@pytest.mark.parametrize("setting", ["ootd.learning", "ootd.anything"])
def test_no_session_setting_switches_validation_off(conn, existing, setting):
    conn.execute(f"SET {setting} = 'on'")
    with pytest.raises(errors.InvalidParameterValue) as caught:
        conn.execute("UPDATE ootd.users SET timezone = 'Foo/Bar', style_dna = '[1,2]' WHERE id = 1")
    assert caught.value.diag.message_primary == 'user 1: invalid time zone "Foo/Bar": not an IANA time zone name'
    with pytest.raises(errors.CheckViolation):
        conn.execute("UPDATE ootd.users SET style_dna = '[1,2]' WHERE id = 1")
    assert snapshot(conn) == existing


# ------------------------------------------------------------ put_user merges --
def test_updating_a_user_changes_only_what_is_given(conn, existing):
    before = conn.execute("SELECT * FROM ootd.users WHERE id = 1").fetchone()
    row = conn.execute(
        "SELECT * FROM ootd.put_user(1, p_style_rules => %s)", (json.dumps({"disliked_categories": ["Dress"]}),)
    ).fetchone()
    assert row["style_dna"] == GOOD_DNA  # untouched
    assert row["style_rules"] == GOOD_RULES | {"disliked_categories": ["Dress"]}  # key by key
    assert (row["city"], row["timezone"]) == (before["city"], before["timezone"])
    row = conn.execute("SELECT * FROM ootd.put_user(1, 'oslo')").fetchone()  # any case; the zone follows
    assert (row["city"], row["timezone"]) == ("Oslo", "Europe/Oslo")
    assert row["style_dna"] == GOOD_DNA and row["style_rules"]["disliked_categories"] == ["Dress"]


def test_a_new_user_still_needs_a_city(conn, existing):
    with pytest.raises(errors.NotNullViolation) as caught:
        conn.execute("SELECT ootd.put_user(2, p_style_rules => '{}')")
    assert caught.value.diag.message_primary == "user 2 does not exist: a new user needs a city"
    assert snapshot(conn) == existing


def test_cli_update_keeps_learned_style_dna_and_unlikes_invent_nothing(served_url):
    with psycopg.connect(served_url, autocommit=True) as conn:
        conn.row_factory = psycopg.rows.dict_row
        user = conn.execute(
            "SELECT id, city, style_dna FROM ootd.users WHERE style_dna ? 'vibe' ORDER BY id LIMIT 1"
        ).fetchone()
        outfit_id = conn.execute("SELECT min(id) AS id FROM ootd.outfits").fetchone()["id"]
        conn.execute("SELECT ootd.like(%s, %s)", (user["id"], outfit_id))
        learned = conn.execute("SELECT style_dna FROM ootd.users WHERE id = %s", (user["id"],)).fetchone()
        result = run_cli(
            "user", str(user["id"]), "--rules", '{"disliked_colors": ["Orange"]}', env={"DATABASE_URL": served_url}
        )
        assert result.returncode == 0, result.stderr
        printed = json.loads(result.stdout)
        assert printed["city"] == user["city"] and printed["style_rules"]["disliked_colors"] == ["Orange"]
        assert conn.execute("SELECT style_dna FROM ootd.users WHERE id = %s", (user["id"],)).fetchone() == learned
        conn.execute("SELECT ootd.unlike(%s, %s)", (user["id"], outfit_id))
        after = conn.execute("SELECT style_dna FROM ootd.users WHERE id = %s", (user["id"],)).fetchone()["style_dna"]
        assert after == user["style_dna"]  # back to the stated profile: nothing invented


def test_cli_new_user_without_city_is_refused(db_url, conn, existing):
    result = run_cli("user", "7", "--rules", "{}", env={"DATABASE_URL": db_url})
    assert result.returncode == 1
    assert result.stderr.strip() == "ootd: error: user 7 does not exist: a new user needs a city (SQLSTATE 23502)"
    assert snapshot(conn) == existing


# ------------------------------------------------------------------- cities --
@pytest.mark.parametrize(
    "given, message",
    [
        ("Torance", 'unknown city "Torance" (did you mean Torrance?)'),
        ("sao paulo", 'unknown city "sao paulo" (did you mean São Paulo?)'),
        ("Atlantis", 'unknown city "Atlantis"'),
    ],
)
def test_unknown_cities_suggest_the_closest_names(conn, existing, given, message):
    with pytest.raises(errors.ForeignKeyViolation) as caught:
        conn.execute("SELECT ootd.put_user(2, %s)", (given,))
    assert caught.value.diag.message_primary == message
    assert snapshot(conn) == existing


def test_cli_city_add_then_a_user_lives_there(db_url, conn):
    added = run_cli(
        "city",
        "add",
        "Reykjavik",
        "--timezone",
        "Atlantic/Reykjavik",
        "--lat",
        "64.1466",
        "--lon",
        "-21.9426",
        "--country",
        "IS",
        env={"DATABASE_URL": db_url},
    )
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout) == {
        "name": "Reykjavik",
        "country": "IS",
        "timezone": "Atlantic/Reykjavik",
        "latitude": 64.1466,
        "longitude": -21.9426,
        "population_k": 100,
    }
    user = run_cli("user", "8", "--city", "REYKJAVIK", env={"DATABASE_URL": db_url})
    assert user.returncode == 0, user.stderr
    assert json.loads(user.stdout)["timezone"] == "Atlantic/Reykjavik"


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["reykjavik", "--timezone", "Mars/Olympus", "--lat", "1", "--lon", "1"],
            'city "reykjavik": invalid time zone "Mars/Olympus": not an IANA time zone name (SQLSTATE 22023)',
        ),
        (
            ["Reykjavik", "--timezone", "Atlantic/Reykjavik", "--lat", "91", "--lon", "1"],
            'city "Reykjavik": latitude must be within -90..90 and longitude within -180..180, got 91 and 1 (SQLSTATE 22023)',
        ),
        (
            ["torrance", "--timezone", "America/Los_Angeles", "--lat", "33.8", "--lon", "-118.3"],
            'city "torrance" already exists as "Torrance" (SQLSTATE 23505)',
        ),
        (
            ["Reykjavik", "--timezone", "Atlantic/Reykjavik", "--lat", "64", "--lon", "-21", "--country", "Iceland"],
            'city "Reykjavik": country must be an ISO 3166 code of two capital letters, got "Iceland" (SQLSTATE 22023)',
        ),
    ],
)
def test_cli_city_add_rejects_bad_input_and_adds_nothing(db_url, conn, args, message):
    before = conn.execute("SELECT count(*) AS n FROM ootd.cities").fetchone()["n"]
    result = run_cli("city", "add", *args, env={"DATABASE_URL": db_url})
    assert result.returncode == 1
    assert result.stderr.strip() == f"ootd: error: {message}"
    assert conn.execute("SELECT count(*) AS n FROM ootd.cities").fetchone()["n"] == before


def test_the_vocabulary_refresh_refuses_to_drop_a_name_users_still_use(conn, existing):
    """ootd.refresh_vocabulary: a new color is usable after it; dropping one a user names is refused
    (the users CHECK would then refuse every later write of that user, likes included)."""
    conn.execute("INSERT INTO ootd.colors (name, hex, family) VALUES ('Teal', '#008080', 'cool')")
    with pytest.raises(errors.ForeignKeyViolation):  # not usable until the refresh
        conn.execute('SELECT ootd.put_user(1, NULL, NULL, \'{"preferred_colors": ["Teal"]}\')')
    conn.execute("SELECT ootd.refresh_vocabulary()")
    conn.execute('SELECT ootd.put_user(1, NULL, NULL, \'{"preferred_colors": ["Teal"]}\')')
    conn.execute("DELETE FROM ootd.colors WHERE name = 'Teal'")
    with pytest.raises(errors.ForeignKeyViolation) as caught:
        conn.execute("SELECT ootd.refresh_vocabulary()")
    assert caught.value.diag.message_primary == (
        'cannot drop color "Teal" from the vocabulary: 1 user(s) name it (user 1 among them)'
    )
    conn.execute('SELECT ootd.put_user(1, NULL, NULL, \'{"preferred_colors": ["Beige"]}\')')
    assert "Teal" not in conn.execute("SELECT ootd.refresh_vocabulary() -> 'colors' AS c").fetchone()["c"]


def test_concurrent_vocabulary_refreshes_queue_instead_of_failing(db_url):
    """Two sessions replacing ootd._vocabulary_snapshot at once would fail (tuple concurrently updated):
    ootd.refresh_vocabulary takes an advisory lock first."""
    import threading

    failures: list[str] = []

    def refresh() -> None:
        with psycopg.connect(db_url, autocommit=True) as own:
            for _ in range(10):
                try:
                    own.execute("SELECT ootd.refresh_vocabulary()")
                except psycopg.Error as exc:
                    failures.append(f"{exc.sqlstate}: {exc}")

    threads = [threading.Thread(target=refresh) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
