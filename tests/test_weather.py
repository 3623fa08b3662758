"""The offline weather provider: plausible climate, four conditions, deterministic.

Pure Python, except that the 50 reference cities are read from a migrated
database (ootd.cities), so the tests follow the data.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import date, timedelta

import pytest

from batch.weather import (
    CONDITIONS,
    City,
    Forecast,
    OfflineWeather,
    WeatherProvider,
    climate_mean_c,
    condition_for,
    rain_probability,
    seasonal_amplitude_c,
    seasonal_phase,
)
from db import REPO_ROOT

OSLO = City("Oslo", "NO", "Europe/Oslo", 59.9139, 10.7522)
SYDNEY = City("Sydney", "AU", "Australia/Sydney", -33.8688, 151.2093)
SINGAPORE = City("Singapore", "SG", "Asia/Singapore", 1.3521, 103.8198)
VARIED = [
    OSLO,
    SYDNEY,
    SINGAPORE,
    City("London", "GB", "Europe/London", 51.5074, -0.1278),
    City("Chicago", "US", "America/Chicago", 41.8781, -87.6298),
    City("Cairo", "EG", "Africa/Cairo", 30.0444, 31.2357),
    City("Buenos Aires", "AR", "America/Argentina/Buenos_Aires", -34.6037, -58.3816),
    City("Tokyo", "JP", "Asia/Tokyo", 35.6762, 139.6503),
    City("Mumbai", "IN", "Asia/Kolkata", 19.0760, 72.8777),
    City("Auckland", "NZ", "Pacific/Auckland", -36.8485, 174.7633),
]
WEATHER = OfflineWeather()


def days(start: date, end: date) -> list[date]:
    """start .. end inclusive."""
    return [start + timedelta(n) for n in range((end - start).days + 1)]


def month(year: int, m: int) -> list[date]:
    following = date(year + m // 12, m % 12 + 1, 1)
    return days(date(year, m, 1), following - timedelta(1))


@pytest.fixture(scope="module")
def reference_cities(template_url: str) -> list[City]:
    """ootd.cities as City values, read from the database (the source of truth)."""
    import psycopg

    with psycopg.connect(template_url) as conn:
        rows = conn.execute("SELECT name, country, timezone, latitude, longitude FROM ootd.cities ORDER BY name")
        return [City(*row) for row in rows]


def temps(city: City, dates: list[date]) -> list[float]:
    return [f.temp_c for f in (WEATHER.forecast([city], d)[0] for d in dates)]


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def test_reference_cities_parse(reference_cities):
    cities = reference_cities
    assert len(cities) == 50
    assert len({c.name for c in cities}) == 50
    assert "St. John's" in {c.name for c in cities}


def test_offline_weather_is_a_weather_provider():
    provider: WeatherProvider = WEATHER
    assert provider.name == "offline"


def test_forecast_returns_one_forecast_per_city_in_order():
    forecasts = WEATHER.forecast(VARIED, date(2026, 4, 20))
    assert [f.city for f in forecasts] == [c.name for c in VARIED]
    assert all(isinstance(f, Forecast) and f.day == date(2026, 4, 20) for f in forecasts)
    assert all(f.condition in CONDITIONS for f in forecasts)
    assert WEATHER.forecast([], date(2026, 4, 20)) == []


def test_sydney_in_april_is_warmer_than_oslo_in_april():
    april = month(2026, 4)
    sydney, oslo = temps(SYDNEY, april), temps(OSLO, april)
    assert all(s > o for s, o in zip(sydney, oslo))
    assert mean(sydney) > mean(oslo) + 8


def test_oslo_in_january_is_cold():
    forecasts = [WEATHER.forecast([OSLO], d)[0] for d in month(2026, 1)]
    assert [f.condition for f in forecasts] == ["Cold"] * 31
    assert max(f.temp_c for f in forecasts) < 0


def test_singapore_is_never_cold_in_2026():
    year = days(date(2026, 1, 1), date(2026, 12, 31))
    conditions = Counter(WEATHER.forecast([SINGAPORE], d)[0].condition for d in year)
    assert len(year) == 365
    assert conditions["Cold"] == 0
    assert min(temps(SINGAPORE, year)) > 20


def test_sydney_is_warmer_in_january_than_in_july():
    january, july = temps(SYDNEY, month(2026, 1)), temps(SYDNEY, month(2026, 7))
    assert mean(january) > mean(july) + 6
    assert temps(SYDNEY, [date(2026, 1, 15)])[0] > temps(SYDNEY, [date(2026, 7, 15)])[0]


def test_the_hemispheres_have_opposite_seasons():
    assert seasonal_phase(48.0, date(2026, 7, 20)) == pytest.approx(1.0)
    assert seasonal_phase(-34.0, date(2026, 1, 20)) == pytest.approx(1.0)
    assert seasonal_phase(48.0, date(2026, 1, 19)) < -0.99
    assert seasonal_phase(-34.0, date(2026, 7, 21)) < -0.99


def test_climate_cools_and_seasons_grow_with_latitude():
    assert climate_mean_c(0) == pytest.approx(27.0)
    assert climate_mean_c(60) == pytest.approx(5.0)
    assert climate_mean_c(-45) == climate_mean_c(45)
    assert seasonal_amplitude_c(0) == 0.0
    assert seasonal_amplitude_c(60) == pytest.approx(12.0)
    assert seasonal_amplitude_c(1.35) < 0.1 < seasonal_amplitude_c(20) < seasonal_amplitude_c(40)


def test_rain_is_likelier_in_the_tropics_and_midlatitude_winters():
    summer, winter = 1.0, -1.0
    assert rain_probability(5, summer) > rain_probability(30, summer)  # tropics vs subtropical summer
    assert rain_probability(50, winter) > rain_probability(50, summer)  # mid-latitude winter vs summer
    assert rain_probability(-50, winter) == rain_probability(50, winter)  # by |latitude|
    assert rain_probability(30, summer) < rain_probability(30, winter)


def test_conditions_take_cold_first_then_rain_then_wind():
    assert condition_for(7.9, raining=True, windy=True) == "Cold"
    assert condition_for(8.0, raining=True, windy=True) == "Rainy"
    assert condition_for(20.0, raining=False, windy=True) == "Windy"
    assert condition_for(20.0, raining=False, windy=False) == "Sunny"


def test_same_inputs_give_the_same_forecasts():
    day = date(2026, 4, 20)
    assert WEATHER.forecast(VARIED, day) == WEATHER.forecast(VARIED, day)
    assert OfflineWeather().forecast(VARIED, day) == WEATHER.forecast(VARIED, day)


def test_forecasts_do_not_depend_on_the_process_hash_seed():
    """Python's hash() of a str changes per process; the provider must not use it."""
    script = (
        "import json; from datetime import date; from batch.weather import City, OfflineWeather; "
        "cities = [City(*c) for c in json.loads(input())]; "
        "print(json.dumps([[f.condition, f.temp_c] for d in range(1, 29) "
        "for f in OfflineWeather().forecast(cities, date(2026, 2, d))]))"
    )
    cities = json.dumps([[c.name, c.country, c.timezone, c.latitude, c.longitude] for c in VARIED])
    outputs = set()
    for seed in ("1", "2", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        run = subprocess.run(
            [sys.executable, "-c", script],
            input=cities,
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO_ROOT,
            check=True,
        )
        outputs.add(run.stdout)
    assert len(outputs) == 1
    assert len(json.loads(outputs.pop())) == 28 * len(VARIED)


def test_weather_comes_in_spells_not_independent_days():
    """Without seasons (Singapore), neighbouring days are much closer than days a week apart."""
    year = temps(SINGAPORE, days(date(2026, 1, 1), date(2026, 12, 31)))

    def gap(k: int) -> float:
        return mean([abs(b - a) for a, b in zip(year, year[k:])])

    assert gap(1) < 0.7 * gap(8)
    assert gap(1) < 1.0


def test_every_condition_appears_over_a_year_of_varied_cities():
    year = days(date(2026, 1, 1), date(2026, 12, 31))
    seen = Counter(f.condition for d in year for f in WEATHER.forecast(VARIED, d))
    assert set(seen) == set(CONDITIONS)
    assert sum(seen.values()) == 365 * 10
    assert all(seen[c] >= 100 for c in CONDITIONS)


def test_one_day_across_the_reference_cities_mixes_conditions(reference_cities):
    cities = reference_cities
    for m in range(1, 13):
        forecasts = WEATHER.forecast(cities, date(2026, m, 15))
        distinct = {f.condition for f in forecasts}
        assert len(forecasts) == 50
        assert distinct <= set(CONDITIONS)
        assert 2 <= len(distinct) <= 4, (m, distinct)


def test_temperatures_stay_within_earthly_bounds(reference_cities):
    cities = reference_cities
    for d in month(2026, 1) + month(2026, 7):
        for f in WEATHER.forecast(cities, d):
            assert -30.0 <= f.temp_c <= 40.0, f
            assert f.temp_c == round(f.temp_c, 1)
