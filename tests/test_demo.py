"""`ootd demo`, the README's first command, end to end against a real database.

The demo's facts are read back, never a terminal's line breaks: each feed it
shows has a one-line heading (`cli.report.feed_heading`) that is compared with
what `ootd.feed` answers for that user, instant and day.  Several days are run,
since the weather, the titles and so the headlines' lengths change every day.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import psycopg

from tests.conftest import run_cli

HEADING = re.compile(r"^user (\d+) in (.+), (\d\d):00 local \(([^)]+)\): (.+)$", re.MULTILINE)
#: A winter and a summer day, a day of Europe's and of Australia's DST changes.
OTHER_DAYS = ("2026-01-15", "2026-07-04", "2026-03-29", "2026-10-04")
#: Terminal widths the days are shown at: a narrow one wraps every table, a wide one none.
WIDTHS = ("60", "200", "45", "120")


def _shown_feeds(out: str) -> list[tuple[int, str, int, str, str]]:
    return [(int(u), city, int(hour), tz, headline) for u, city, hour, tz, headline in HEADING.findall(out)]


def _check_feeds_are_the_databases(url: str, out: str, day: date) -> None:
    shown = _shown_feeds(out)
    # three demo cities (Torrance, Mumbai, Sydney) at 09:00 and at 19:00 local
    assert sorted({city for _, city, *_ in shown}) == ["Mumbai", "Sydney", "Torrance"], out
    assert sorted(hour for _, _, hour, _, _ in shown) == [9] * 3 + [19] * 3
    with psycopg.connect(url) as conn:
        for user_id, city, hour, tz, headline in shown:
            at = datetime.combine(day, time(hour), tzinfo=ZoneInfo(tz))
            rows = conn.execute(
                "SELECT headline, daypart, relaxed_rules FROM ootd.feed(%s, %s, 3)", (user_id, at)
            ).fetchall()
            assert len(rows) == 3
            assert headline == rows[0][0], (user_id, at)
            assert headline.endswith(f" in {city}"), headline
            # the 15:00 rule: the first item serves the local daypart unless a veto was relaxed
            if not rows[0][2]:
                assert rows[0][1] == ("Daytime" if hour == 9 else "NightOut"), (user_id, at, rows)


def test_demo_migrates_seeds_runs_the_nightly_and_prints_feeds(empty_db_url):
    result = run_cli("demo", "--users", "2000", env={"DATABASE_URL": empty_db_url, "COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "schema: migrated to head" in out
    assert "seed: 2,000 new users" in out
    assert "clusters K" in out and "naive: one call per user" in out
    _check_feeds_are_the_databases(empty_db_url, out, datetime.now(ZoneInfo("UTC")).date())
    with psycopg.connect(empty_db_url) as conn:
        k = conn.execute("SELECT count(*) FROM ootd.pools").fetchone()[0]
        assert k == conn.execute("SELECT count(*) FROM ootd.llm_calls WHERE kind = 'chat'").fetchone()[0] > 0
    again = run_cli("demo", "--users", "2000", env={"DATABASE_URL": empty_db_url})
    assert again.returncode == 0, again.stderr
    assert "seed: 0 new users, 2,000 already present" in again.stdout
    assert f"({k} already done, 0 generated now)" in again.stdout


def test_demo_shows_the_databases_feeds_on_other_days_at_any_width(empty_db_url):
    for day, width in zip(OTHER_DAYS, WIDTHS):
        result = run_cli("demo", "--users", "1500", "--date", day, env={"DATABASE_URL": empty_db_url, "COLUMNS": width})
        assert result.returncode == 0, result.stderr
        assert f"nightly batch for {day}" in result.stdout
        _check_feeds_are_the_databases(empty_db_url, result.stdout, date.fromisoformat(day))


def test_demo_refuses_a_bad_date_and_changes_nothing(empty_db_url):
    result = run_cli("demo", "--users", "10", "--date", "2026-02-30", env={"DATABASE_URL": empty_db_url})
    assert result.returncode == 2
    assert "expected a date as YYYY-MM-DD, got '2026-02-30'" in result.stderr
    with psycopg.connect(empty_db_url) as conn:
        assert conn.execute("SELECT to_regnamespace('ootd')").fetchone()[0] is None
