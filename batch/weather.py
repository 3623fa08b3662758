"""Weather providers: one broad condition per city and day.

The feed only needs one of four conditions per city (Sunny, Windy, Rainy,
Cold: `ootd.weather_conditions`), because the condition is half of a cluster
id and 10 archetypes x 4 conditions keeps the number of LLM calls bounded.
So a provider answers a narrow question: for these cities on this date, what
is the condition and roughly how warm is it?

`OfflineWeather` answers it without a network, from latitude, hemisphere and
date alone.  It is a climate model, not a forecast: plausible enough that
Oslo is cold in January, Singapore never is and Sydney's seasons are the
reverse of Paris's, and identical on every machine and run (all "noise" comes
from BLAKE2b of the city and date, never from Python's per-process `hash()`),
so demos and tests are reproducible.

Adding a real weather API: write a class with a `name` (it is recorded as the
provider) and `forecast(cities, day) -> list[Forecast]` that returns one
Forecast per city, in the same order.  Map the API's own codes onto the four
conditions with the same precedence as `condition_for()` (cold first, then
rain, then wind, else sunny) so clusters mean the same thing whichever provider
filled them; batch several cities per request, and fall back to
`OfflineWeather` for cities the API could not answer, so one failed city never
leaves users without a pool.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import date
from typing import Protocol, Sequence

CONDITIONS = ("Sunny", "Windy", "Rainy", "Cold")
COLD_BELOW_C = 8.0  # below this a day is "Cold", whatever else happens

_YEAR_DAYS = 365.25
_SPELL_DAYS = 4  # weather comes in spells: anomalies drift over a few days
_SPELL_C = 2.5  # +/- range of the slow (spell) temperature anomaly
_JITTER_C = 1.0  # +/- range of the day-to-day temperature jitter


@dataclass(frozen=True)
class City:
    name: str
    country: str
    timezone: str
    latitude: float
    longitude: float


@dataclass(frozen=True)
class Forecast:
    city: str
    day: date
    condition: str  # one of CONDITIONS
    temp_c: float


class WeatherProvider(Protocol):
    """Anything that can tell the batch each city's condition for a day."""

    name: str  # recorded with the pools, e.g. "offline"

    def forecast(self, cities: Sequence[City], day: date) -> list[Forecast]:
        """One Forecast per city, in the order given."""
        ...


class OfflineWeather:
    """Deterministic climate from latitude and date (no network).

    Temperature = annual mean (falls with |latitude|) + seasonal swing (grows
    with |latitude|, warmest around 20 July in the north and 20 January in the
    south) + a few degrees of spell and day-to-day noise.  Altitude,
    continentality and ocean currents are ignored, so e.g. Mexico City comes
    out warmer than it is; that is fine for picking one of four conditions.
    """

    name = "offline"

    def forecast(self, cities: Sequence[City], day: date) -> list[Forecast]:
        return [self.forecast_city(city, day) for city in cities]

    def forecast_city(self, city: City, day: date) -> Forecast:
        season = seasonal_phase(city.latitude, day)
        temp = round(
            climate_mean_c(city.latitude)
            + seasonal_amplitude_c(city.latitude) * season
            + _temperature_anomaly(city.name, day),
            1,
        )
        rain_draw, wind_draw = _uniform(city.name, day, "rain"), _uniform(city.name, day, "wind")
        condition = condition_for(
            temp,
            rain_draw < rain_probability(city.latitude, season),
            wind_draw < wind_probability(city.latitude, season),
        )
        return Forecast(city=city.name, day=day, condition=condition, temp_c=temp)


def condition_for(temp_c: float, raining: bool, windy: bool) -> str:
    """The one condition a day gets: cold wins (it decides the layers), then rain, then wind."""
    if temp_c < COLD_BELOW_C:
        return "Cold"
    if raining:
        return "Rainy"
    if windy:
        return "Windy"
    return "Sunny"


def climate_mean_c(latitude: float) -> float:
    """Annual mean temperature: ~27 C across the tropics, ~5 C at 60 degrees, colder beyond."""
    return _interpolate(abs(latitude), [(0, 27.0), (15, 27.0), (60, 5.0), (90, -18.0)])


def seasonal_amplitude_c(latitude: float) -> float:
    """Half the summer-winter difference: ~0 at the equator, ~5 at Sydney, ~12 at 60 degrees."""
    return 12.0 * min(abs(latitude) / 60.0, 1.5) ** 1.5


def seasonal_phase(latitude: float, day: date) -> float:
    """+1 at local midsummer (20 July north, 20 January south), -1 at midwinter."""
    peak = date(day.year, 7, 20) if latitude >= 0 else date(day.year, 1, 20)
    return math.cos(2 * math.pi * (day - peak).days / _YEAR_DAYS)


def rain_probability(latitude: float, season: float) -> float:
    """Chance of a rainy day: high all year in the tropics, low in subtropical
    summers (the dry season of Mediterranean-type climates), highest in
    mid-latitude winters."""
    lat = abs(latitude)
    base = _interpolate(lat, [(0, 0.35), (12, 0.30), (25, 0.15), (40, 0.22), (60, 0.26), (90, 0.20)])
    summer_shift = _interpolate(lat, [(0, 0.0), (12, 0.0), (25, -0.08), (40, -0.10), (60, -0.06), (90, -0.05)])
    return min(max(base + summer_shift * season, 0.03), 0.6)


def wind_probability(latitude: float, season: float) -> float:
    """Chance of a windy (dry, not cold) day: rises towards the storm tracks, more so in winter."""
    base = _interpolate(abs(latitude), [(0, 0.08), (20, 0.10), (40, 0.18), (60, 0.25), (90, 0.30)])
    return base * (1.0 - 0.25 * season)


def _temperature_anomaly(city: str, day: date) -> float:
    """Spells (a value-noise curve with a knot every few days) plus a little daily jitter.

    Interpolating between knots makes warm and cold spells last a few days, as
    real weather does, instead of every day being an independent coin toss.
    """
    ordinal = day.toordinal()
    knot, offset = divmod(ordinal, _SPELL_DAYS)
    left = _signed(city, knot, "spell")
    right = _signed(city, knot + 1, "spell")
    spell = left + (right - left) * offset / _SPELL_DAYS
    return _SPELL_C * spell + _JITTER_C * _signed(city, ordinal, "jitter")


def _uniform(city: str, key: date | int, salt: str) -> float:
    """A uniform in [0, 1) that depends only on (city, key, salt): same on every machine."""
    digest = hashlib.blake2b(f"{city}|{key}|{salt}".encode(), digest_size=8, person=b"ootd-weather").digest()
    return int.from_bytes(digest, "big") / 2**64


def _signed(city: str, key: date | int, salt: str) -> float:
    """A uniform in [-1, 1)."""
    return 2.0 * _uniform(city, key, salt) - 1.0


def _interpolate(x: float, points: list[tuple[float, float]]) -> float:
    """Piecewise-linear through (x, y) points sorted by x; flat outside them."""
    if x <= points[0][0]:
        return points[0][1]
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return points[-1][1]
