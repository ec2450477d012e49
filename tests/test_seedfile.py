from __future__ import annotations

import csv
import inspect
import io
from pathlib import Path

import orjson
import pytest

from seo_engine.ingest.seedfile import (
    LOCATIONS,
    SERVICES,
    Rejected,
    RejectsWriter,
    Row,
    Schema,
    SeedFileError,
    detect_format,
    header_of,
    read_records,
)

SEEDS = Path(__file__).resolve().parent.parent / "seeds"

LOCATION = {
    "key": "4671654",
    "slug": "austin-tx",
    "name": "Austin",
    "region_name": "Texas",
    "region_code": "TX",
    "country_code": "US",
    "population": "961855",
    "latitude": "30.26715",
    "longitude": "-97.74306",
    "timezone": "America/Chicago",
}
AUSTIN = (
    "4671654",
    "austin-tx",
    "Austin",
    "Texas",
    "TX",
    "US",
    961855,
    30.26715,
    -97.74306,
    "America/Chicago",
    "{}",
)
SERVICE = {"key": "svc-1", "slug": "drain-cleaning", "name": "Drain Cleaning"}
EXPECTED_LOCATIONS = (
    "key, slug, name, region_name, region_code, country_code, population, latitude, "
    "longitude, timezone"
)


def csv_text(header: list[str], *rows: list[str]) -> str:
    """CSV text with the given header and rows, quoted as needed."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def location_csv(tmp_path: Path, *rows: dict[str, str]) -> Path:
    """A locations CSV with the full header and one line per row."""
    header = list(LOCATION)
    path = tmp_path / "locations.csv"
    path.write_text(csv_text(header, *([row[name] for name in header] for row in rows)))
    return path


def location(**changes: str) -> dict[str, str]:
    return {**LOCATION, **changes}


def ndjson(tmp_path: Path, *lines: object, name: str = "seed.ndjson") -> Path:
    """An NDJSON file: dicts are dumped as JSON, bytes and str are written as they are."""
    path = tmp_path / name
    parts = []
    for line in lines:
        if isinstance(line, bytes):
            parts.append(line)
        elif isinstance(line, str):
            parts.append(line.encode())
        else:
            parts.append(orjson.dumps(line))
    path.write_bytes(b"\n".join(parts) + b"\n")
    return path


def read(path: Path, schema: Schema = LOCATIONS) -> list[Row | Rejected]:
    return list(read_records(path, schema, detect_format(path)))


def reasons_for(path: Path, schema: Schema = LOCATIONS) -> list[tuple[str, ...]]:
    """The reasons of every record, () for an accepted one."""
    return [item.reasons if isinstance(item, Rejected) else () for item in read(path, schema)]


def header_error(tmp_path: Path, text: str, name: str = "bad.csv") -> str:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(SeedFileError) as raised:
        read(path)
    return str(raised.value)


# --- schemas -------------------------------------------------------------------------


def test_the_locations_schema_lists_its_columns_in_copy_order() -> None:
    assert LOCATIONS.name == "locations"
    assert LOCATIONS.columns == tuple(LOCATION)
    assert LOCATIONS.required == {
        "key",
        "slug",
        "name",
        "country_code",
        "population",
        "latitude",
        "longitude",
    }


def test_the_services_schema_lists_its_columns_in_copy_order() -> None:
    assert SERVICES.name == "services"
    assert SERVICES.columns == ("key", "slug", "name", "category", "description")
    assert SERVICES.required == {"key", "slug", "name"}


# --- formats -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a.csv", "csv"), ("a.CSV", "csv"), ("a.ndjson", "ndjson"), ("a.jsonl", "ndjson")],
)
def test_the_format_follows_the_file_suffix(name: str, expected: str) -> None:
    assert detect_format(Path(name)) == expected


@pytest.mark.parametrize(
    ("explicit", "expected"), [("csv", "csv"), ("ndjson", "ndjson"), ("jsonl", "ndjson")]
)
def test_an_explicit_format_wins_over_the_suffix(explicit: str, expected: str) -> None:
    assert detect_format(Path("export.txt"), explicit) == expected


def test_an_unknown_suffix_is_a_file_error_naming_the_file() -> None:
    with pytest.raises(SeedFileError, match=r"^export\.txt: cannot tell the format"):
        detect_format(Path("export.txt"))


def test_an_unknown_explicit_format_is_a_file_error() -> None:
    with pytest.raises(SeedFileError, match="unknown seed file format 'xlsx'"):
        detect_format(Path("a.csv"), "xlsx")


# --- bundled seeds -------------------------------------------------------------------


@pytest.mark.parametrize(("name", "schema"), [("locations", LOCATIONS), ("services", SERVICES)])
def test_the_bundled_seed_files_read_with_zero_rejections(name: str, schema: Schema) -> None:
    path = SEEDS / f"{name}.csv"
    with path.open(encoding="utf-8") as stream:
        records = sum(1 for _ in stream) - 1
    items = read(path, schema)
    assert [item for item in items if isinstance(item, Rejected)] == []
    assert len(items) == records
    assert [item.line for item in items[:2]] == [2, 3]


def test_the_bundled_services_carry_their_attr_columns_as_attributes() -> None:
    first = read(SEEDS / "services.csv", SERVICES)[0]
    assert isinstance(first, Row)
    assert orjson.loads(str(first.values[-1])) == {
        "emergency": "yes",
        "license_required": "yes",
        "price_high": "350",
        "price_low": "100",
        "price_unit": "per job",
    }


# --- CSV records ---------------------------------------------------------------------


def test_a_valid_location_becomes_typed_copy_values_with_empty_attributes(
    tmp_path: Path,
) -> None:
    assert read(location_csv(tmp_path, LOCATION)) == [Row(2, AUSTIN)]


def test_read_records_is_a_lazy_generator(tmp_path: Path) -> None:
    records = read_records(tmp_path / "missing.csv", LOCATIONS, "csv")
    assert inspect.isgenerator(records)
    with pytest.raises(SeedFileError):
        next(records)


def test_the_country_code_is_normalised_to_uppercase(tmp_path: Path) -> None:
    [row] = read(location_csv(tmp_path, location(country_code="us")))
    assert isinstance(row, Row)
    assert row.values[5] == "US"


def test_surrounding_whitespace_is_stripped_from_every_field(tmp_path: Path) -> None:
    padded = {name: f"  {value}\t" for name, value in LOCATION.items()}
    assert read(location_csv(tmp_path, padded)) == [Row(2, AUSTIN)]


def test_optional_columns_missing_from_the_header_get_empty_defaults(tmp_path: Path) -> None:
    header = [name for name in LOCATION if name not in ("region_name", "region_code", "timezone")]
    path = tmp_path / "locations.csv"
    path.write_text(csv_text(header, [LOCATION[name] for name in header]))
    assert read(path) == [
        Row(
            2,
            ("4671654", "austin-tx", "Austin", "", "", "US", 961855, 30.26715, -97.74306, "", "{}"),
        )
    ]


def test_empty_optional_fields_become_empty_strings(tmp_path: Path) -> None:
    [row] = read(location_csv(tmp_path, location(region_name="", region_code="", timezone="")))
    assert isinstance(row, Row)
    assert (row.values[3], row.values[4], row.values[9]) == ("", "", "")


def test_every_empty_required_field_is_reported(tmp_path: Path) -> None:
    blank = {name: "" for name in LOCATION}
    assert reasons_for(location_csv(tmp_path, blank)) == [
        (
            "key: is required",
            "slug: is required",
            "name: is required",
            "country_code: is required",
            "population: is required",
            "latitude: is required",
            "longitude: is required",
        )
    ]


def test_all_reasons_for_a_record_are_collected_with_its_fields(tmp_path: Path) -> None:
    bad = location(slug="Bad Slug", country_code="USA", latitude="123.4")
    assert read(location_csv(tmp_path, bad)) == [
        Rejected(
            2,
            (
                "slug: 'Bad Slug' must be lowercase letters, digits and single hyphens",
                "country_code: 'USA' must be a two-letter ISO code",
                "latitude: 123.4 is outside -90..90",
            ),
            bad,
        )
    ]


@pytest.mark.parametrize(
    ("column", "limit"),
    [
        ("key", 100),
        ("name", 200),
        ("region_name", 100),
        ("region_code", 20),
    ],
)
def test_text_longer_than_its_limit_is_rejected(tmp_path: Path, column: str, limit: int) -> None:
    path = location_csv(
        tmp_path, location(**{column: "x" * limit}), location(**{column: "x" * (limit + 1)})
    )
    assert reasons_for(path) == [(), (f"{column}: longer than {limit} characters",)]


def test_a_slug_longer_than_120_characters_is_rejected(tmp_path: Path) -> None:
    path = location_csv(tmp_path, location(slug="a" * 120), location(slug="a" * 121))
    assert reasons_for(path) == [(), ("slug: longer than 120 characters",)]


@pytest.mark.parametrize(
    "slug", ["Bad-Slug", "double--hyphen", "-leading", "trailing-", "café", "a_b"]
)
def test_a_slug_must_be_lowercase_words_joined_by_single_hyphens(tmp_path: Path, slug: str) -> None:
    assert reasons_for(location_csv(tmp_path, location(slug=slug))) == [
        (f"slug: {slug!r} must be lowercase letters, digits and single hyphens",)
    ]


def test_a_long_bad_value_is_quoted_truncated_to_40_characters(tmp_path: Path) -> None:
    slug = "A" * 60
    assert reasons_for(location_csv(tmp_path, location(slug=slug))) == [
        (f"slug: '{'A' * 40}…' must be lowercase letters, digits and single hyphens",)
    ]


@pytest.mark.parametrize("code", ["USA", "U", "U1", "ÜS"])
def test_a_country_code_must_be_two_ascii_letters(tmp_path: Path, code: str) -> None:
    assert reasons_for(location_csv(tmp_path, location(country_code=code))) == [
        (f"country_code: {code!r} must be a two-letter ISO code",)
    ]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("12.5", "population: '12.5' is not a whole number"),
        ("lots", "population: 'lots' is not a whole number"),
        ("1,234", "population: '1,234' is not a whole number"),
        ("-1", "population: -1 is outside 0..10000000000"),
        ("10000000001", "population: 10000000001 is outside 0..10000000000"),
        ("9" * 5000, f"population: '{'9' * 40}…' is outside 0..10000000000"),
    ],
)
def test_population_must_be_a_whole_number_in_range(tmp_path: Path, text: str, reason: str) -> None:
    assert reasons_for(location_csv(tmp_path, location(population=text))) == [(reason,)]


@pytest.mark.parametrize(("text", "expected"), [("0", 0), ("10000000000", 10_000_000_000)])
def test_population_accepts_its_bounds(tmp_path: Path, text: str, expected: int) -> None:
    [row] = read(location_csv(tmp_path, location(population=text)))
    assert isinstance(row, Row)
    assert row.values[6] == expected


@pytest.mark.parametrize(
    ("column", "text", "reason"),
    [
        ("latitude", "90.0001", "latitude: 90.0001 is outside -90..90"),
        ("latitude", "-91", "latitude: -91 is outside -90..90"),
        ("longitude", "180.5", "longitude: 180.5 is outside -180..180"),
        ("longitude", "-1e3", "longitude: -1e3 is outside -180..180"),
        ("latitude", "nan", "latitude: 'nan' is not a finite number"),
        ("latitude", "inf", "latitude: 'inf' is not a finite number"),
        ("longitude", "-Infinity", "longitude: '-Infinity' is not a finite number"),
        ("longitude", "1e999", "longitude: '1e999' is not a finite number"),
        ("latitude", "north", "latitude: 'north' is not a number"),
        ("latitude", "1" * 50, f"latitude: '{'1' * 40}…' is outside -90..90"),
        ("latitude", "30,2", "latitude: '30,2' is not a number"),
    ],
)
def test_coordinates_must_be_finite_numbers_in_range(
    tmp_path: Path, column: str, text: str, reason: str
) -> None:
    assert reasons_for(location_csv(tmp_path, location(**{column: text}))) == [(reason,)]


def test_coordinates_accept_their_bounds_and_exponents(tmp_path: Path) -> None:
    [row] = read(location_csv(tmp_path, location(latitude="-90", longitude="1.8e2")))
    assert isinstance(row, Row)
    assert (row.values[7], row.values[8]) == (-90.0, 180.0)


@pytest.mark.parametrize("zone", ["Etc/GMT+5", "America/Argentina/Buenos_Aires", "UTC", ""])
def test_valid_time_zone_names_are_accepted(tmp_path: Path, zone: str) -> None:
    assert reasons_for(location_csv(tmp_path, location(timezone=zone))) == [()]


@pytest.mark.parametrize("zone", ["Central Time", "America//Chicago", "/Europe", "5/Berlin"])
def test_a_malformed_time_zone_is_rejected(tmp_path: Path, zone: str) -> None:
    assert reasons_for(location_csv(tmp_path, location(timezone=zone))) == [
        (f"timezone: {zone!r} is not a time zone name like America/New_York",)
    ]


def test_a_time_zone_longer_than_64_characters_is_rejected(tmp_path: Path) -> None:
    assert reasons_for(location_csv(tmp_path, location(timezone="A" * 65))) == [
        ("timezone: longer than 64 characters",)
    ]


def test_a_nul_byte_is_rejected_and_shown_escaped(tmp_path: Path) -> None:
    bad = location(name="Aus\x00tin", population="9\x0061")
    [rejected] = read(location_csv(tmp_path, bad))
    assert rejected == Rejected(
        2,
        ("name: contains a NUL byte", "population: contains a NUL byte"),
        location(name="Aus\\0tin", population="9\\061"),
    )


def test_a_control_character_in_a_text_field_is_rejected(tmp_path: Path) -> None:
    path = location_csv(tmp_path, location(name="Aus\x07tin", region_name="Te\x7fxas"))
    assert reasons_for(path) == [
        ("name: contains a control character", "region_name: contains a control character")
    ]


def test_a_tab_inside_a_text_field_is_allowed(tmp_path: Path) -> None:
    [row] = read(location_csv(tmp_path, location(name="Austin\tCity")))
    assert isinstance(row, Row)
    assert row.values[2] == "Austin\tCity"


def test_a_newline_inside_a_field_is_a_control_character_but_a_trailing_one_is_stripped(
    tmp_path: Path,
) -> None:
    path = location_csv(tmp_path, location(name="Aus\ntin"), location(name="Austin\n"))
    assert reasons_for(path) == [("name: contains a control character",), ()]


def test_quoted_multi_line_fields_keep_later_line_numbers_right(tmp_path: Path) -> None:
    path = location_csv(
        tmp_path,
        location(key="1", name="Austin\n"),
        location(key="2", name="Aus\n\ntin"),
        location(key="3"),
        location(key="4", country_code="USA"),
    )
    assert [(item.line, type(item).__name__) for item in read(path)] == [
        (2, "Row"),
        (4, "Rejected"),
        (7, "Row"),
        (8, "Rejected"),
    ]


def test_invalid_utf8_is_reported_once_while_other_fields_are_still_checked(
    tmp_path: Path,
) -> None:
    path = location_csv(tmp_path, location(name="NAME", latitude="99"))
    path.write_bytes(path.read_bytes().replace(b"NAME", b"Z\xefr \xff"))
    assert read(path) == [
        Rejected(
            2,
            ("invalid UTF-8", "latitude: 99 is outside -90..90"),
            location(name="Z\ufffdr \ufffd", latitude="99"),
        )
    ]


def test_invalid_utf8_in_an_attribute_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "services.csv"
    path.write_bytes(b"key,slug,name,attr_note\nsvc-1,drain,Drain,caf\xe9\n")
    assert read(path, SERVICES) == [
        Rejected(
            2,
            ("invalid UTF-8",),
            {"key": "svc-1", "slug": "drain", "name": "Drain", "attr_note": "caf\ufffd"},
        )
    ]


def test_a_utf8_byte_order_mark_is_stripped(tmp_path: Path) -> None:
    path = location_csv(tmp_path, LOCATION)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert read(path) == [Row(2, AUSTIN)]
    assert header_of(path, "csv")[0] == "key"


def test_blank_lines_are_skipped_without_shifting_line_numbers(tmp_path: Path) -> None:
    path = location_csv(tmp_path, location(key="1"), location(key="2"))
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "", lines[1], "   ", "", lines[2], ""]) + "\n")
    assert [item.line for item in read(path)] == [3, 6]


def test_windows_line_endings_are_read(tmp_path: Path) -> None:
    path = location_csv(tmp_path, location(key="1"), location(key="2"))
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    assert [(type(item).__name__, item.line) for item in read(path)] == [("Row", 2), ("Row", 3)]


def test_a_wrong_field_count_is_the_only_reason_given(tmp_path: Path) -> None:
    path = tmp_path / "services.csv"
    path.write_text("key,slug,name\nsvc-1,Bad Slug\nsvc-2,drain,Drain,extra,more\n")
    assert read(path, SERVICES) == [
        Rejected(2, ("expected 3 fields, found 2",), {"key": "svc-1", "slug": "Bad Slug"}),
        Rejected(
            3,
            ("expected 3 fields, found 5",),
            {
                "key": "svc-2",
                "slug": "drain",
                "name": "Drain",
                "_field_4": "extra",
                "_field_5": "more",
            },
        ),
    ]


def test_an_unclosed_quote_at_the_end_gives_a_wrong_field_count(tmp_path: Path) -> None:
    path = tmp_path / "services.csv"
    path.write_text('key,slug,name\nsvc-1,drain,Drain\nsvc-2,"drain\n')
    assert reasons_for(path, SERVICES) == [(), ("expected 3 fields, found 2",)]


def test_an_unclosed_quote_swallowing_the_file_is_a_file_error_with_its_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "services.csv"
    path.write_text('key,slug,name\nsvc-1,drain,"Drain\n' + "svc-2,x,y\n" * 20_000)
    with pytest.raises(SeedFileError, match=r"services\.csv: line 2: cannot parse the CSV record"):
        read(path, SERVICES)


def test_service_text_limits_are_enforced(tmp_path: Path) -> None:
    path = tmp_path / "services.csv"
    path.write_text(
        csv_text(
            ["key", "slug", "name", "category", "description"],
            ["svc-1", "drain", "Drain", "c" * 100, "d" * 2000],
            ["svc-2", "drain", "Drain", "c" * 101, "d" * 2001],
        )
    )
    assert reasons_for(path, SERVICES) == [
        (),
        ("category: longer than 100 characters", "description: longer than 2000 characters"),
    ]


def test_services_without_optional_columns_get_empty_defaults(tmp_path: Path) -> None:
    path = tmp_path / "services.csv"
    path.write_text("key,slug,name\nsvc-1,drain-cleaning,Drain Cleaning\n")
    assert read(path, SERVICES) == [
        Row(2, ("svc-1", "drain-cleaning", "Drain Cleaning", "", "", "{}"))
    ]


# --- CSV attributes ------------------------------------------------------------------


def test_attr_columns_become_sorted_json_attributes_and_empty_cells_are_omitted(
    tmp_path: Path,
) -> None:
    path = tmp_path / "services.csv"
    path.write_text(
        "key,slug,name,attr_price_unit,attr_emergency,attr_x9\n"
        "svc-1,drain,Drain, per job ,yes,\n"
        "svc-2,sewer,Sewer,,,\n"
    )
    assert read(path, SERVICES) == [
        Row(2, ("svc-1", "drain", "Drain", "", "", '{"emergency":"yes","price_unit":"per job"}')),
        Row(3, ("svc-2", "sewer", "Sewer", "", "", "{}")),
    ]


def test_a_nul_or_control_character_in_an_attribute_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "services.csv"
    path.write_text(
        csv_text(["key", "slug", "name", "attr_a", "attr_b"], ["s", "s", "S", "x\x00", "y\x1bz"])
    )
    assert reasons_for(path, SERVICES) == [
        ("attr_a: contains a NUL byte", "attr_b: contains a control character")
    ]


def test_attributes_longer_than_4000_characters_of_json_are_rejected(tmp_path: Path) -> None:
    # {"note":"..."} is 11 characters around the value.
    path = tmp_path / "services.csv"
    path.write_text(
        csv_text(
            ["key", "slug", "name", "attr_note"],
            ["svc-1", "a", "A", "n" * 3989],
            ["svc-2", "b", "B", "n" * 3990],
        )
    )
    assert reasons_for(path, SERVICES) == [(), ("attributes: longer than 4000 characters of JSON",)]


# --- CSV header drift ----------------------------------------------------------------


def test_a_renamed_column_is_a_file_error_with_a_suggestion(tmp_path: Path) -> None:
    header = ",".join("lat" if name == "latitude" else name for name in LOCATION)
    message = header_error(tmp_path, header + "\n")
    assert message == (
        f"{tmp_path / 'bad.csv'}: the header does not match the locations schema\n"
        "  missing:    latitude\n"
        "  unexpected: lat (did you mean latitude?)\n"
        f"  expected:   {EXPECTED_LOCATIONS} (attr_* columns become attributes)"
    )


def test_missing_required_columns_are_listed_in_schema_order(tmp_path: Path) -> None:
    message = header_error(tmp_path, "name,key,region_name\n")
    assert message.splitlines()[1] == (
        "  missing:    slug, country_code, population, latitude, longitude"
    )
    assert "unexpected" not in message


def test_an_extra_column_is_a_file_error(tmp_path: Path) -> None:
    message = header_error(tmp_path, ",".join([*LOCATION, "zip"]) + "\n")
    assert message.splitlines()[1:] == [
        "  unexpected: zip",
        f"  expected:   {EXPECTED_LOCATIONS} (attr_* columns become attributes)",
    ]


def test_a_differently_cased_column_suggests_the_right_name(tmp_path: Path) -> None:
    header = ",".join("Key" if name == "key" else name for name in LOCATION)
    assert header_error(tmp_path, header + "\n").splitlines()[1:3] == [
        "  missing:    key",
        "  unexpected: Key (did you mean key?)",
    ]


def test_a_duplicated_column_is_a_file_error(tmp_path: Path) -> None:
    message = header_error(tmp_path, ",".join([*LOCATION, "slug"]) + "\n")
    assert message.splitlines()[1] == "  duplicated: slug"


def test_an_invalid_attribute_column_name_is_explained(tmp_path: Path) -> None:
    message = header_error(tmp_path, ",".join([*LOCATION, "attr_Price", "attr_"]) + "\n")
    assert message.splitlines()[1] == (
        "  unexpected: attr_Price (attribute names must be 1-50 lowercase letters, digits or "
        "underscores), attr_ (attribute names must be 1-50 lowercase letters, digits or "
        "underscores)"
    )


def test_a_blank_column_name_is_shown_as_such(tmp_path: Path) -> None:
    message = header_error(tmp_path, ",".join(LOCATION) + ",\n")
    assert message.splitlines()[1] == "  unexpected: (blank name)"


def test_an_invalid_utf8_header_is_a_file_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(b"k\xffey,slug\n")
    with pytest.raises(SeedFileError, match="the header is not valid UTF-8"):
        read(path)


@pytest.mark.parametrize("content", ["", "\n\n  \n", "\ufeff"])
def test_an_empty_file_is_a_file_error(tmp_path: Path, content: str) -> None:
    assert header_error(tmp_path, content) == f"{tmp_path / 'bad.csv'}: the file is empty"


def test_a_header_without_rows_gives_no_records(tmp_path: Path) -> None:
    assert read(location_csv(tmp_path)) == []


def test_a_missing_file_is_a_file_error_with_the_os_reason(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(SeedFileError) as raised:
        read(path)
    assert str(raised.value) == f"{path}: cannot read the file: No such file or directory"


def test_a_directory_is_a_file_error_with_the_os_reason(tmp_path: Path) -> None:
    path = tmp_path / "dir.ndjson"
    path.mkdir()
    with pytest.raises(SeedFileError) as raised:
        read(path)
    assert str(raised.value) == f"{path}: cannot read the file: Is a directory"


# --- NDJSON --------------------------------------------------------------------------


def test_a_valid_ndjson_object_becomes_the_same_row_as_csv(tmp_path: Path) -> None:
    assert read(ndjson(tmp_path, LOCATION)) == [Row(1, AUSTIN)]


def test_ndjson_accepts_json_numbers_for_numeric_columns(tmp_path: Path) -> None:
    obj = {**LOCATION, "population": 961855, "latitude": 30.26715, "longitude": -97}
    [row] = read(ndjson(tmp_path, obj))
    assert isinstance(row, Row)
    assert row.values[6:9] == (961855, 30.26715, -97.0)
    assert isinstance(row.values[8], float)


def test_ndjson_accepts_a_whole_float_as_population(tmp_path: Path) -> None:
    [row] = read(ndjson(tmp_path, {**LOCATION, "population": 1234.0}))
    assert isinstance(row, Row)
    assert row.values[6] == 1234
    assert isinstance(row.values[6], int)


def test_ndjson_rejects_numbers_out_of_range_or_fractional(tmp_path: Path) -> None:
    path = ndjson(
        tmp_path,
        LOCATION,
        {**LOCATION, "population": 12.5, "latitude": 91, "longitude": -180.5},
        {**LOCATION, "population": -3},
    )
    assert reasons_for(path) == [
        (),
        (
            "population: 12.5 is not a whole number",
            "latitude: 91 is outside -90..90",
            "longitude: -180.5 is outside -180..180",
        ),
        ("population: -3 is outside 0..10000000000",),
    ]


def test_ndjson_requires_strings_for_text_and_numbers_for_numeric_columns(
    tmp_path: Path,
) -> None:
    path = ndjson(
        tmp_path,
        LOCATION,
        {**LOCATION, "key": 4671654, "name": ["Austin"], "population": True, "latitude": {}},
    )
    assert reasons_for(path) == [
        (),
        (
            "key: must be a string",
            "name: must be a string",
            "population: must be a number",
            "latitude: must be a number",
        ),
    ]


def test_ndjson_null_optional_fields_get_empty_defaults(tmp_path: Path) -> None:
    path = ndjson(tmp_path, {**LOCATION, "region_name": None, "timezone": None})
    assert read(path) == [Row(1, (*AUSTIN[:3], "", *AUSTIN[4:9], "", "{}"))]


def test_ndjson_null_or_absent_required_fields_are_required(tmp_path: Path) -> None:
    absent = {name: value for name, value in LOCATION.items() if name != "slug"}
    path = ndjson(tmp_path, LOCATION, {**absent, "name": None})
    assert reasons_for(path) == [(), ("slug: is required", "name: is required")]


def test_ndjson_unknown_fields_are_rejected(tmp_path: Path) -> None:
    path = ndjson(tmp_path, LOCATION, {**LOCATION, "zip": "78701", "attr_Bad": "x"})
    assert reasons_for(path) == [(), ("unknown field 'zip'", "unknown field 'attr_Bad'")]


def test_ndjson_lines_that_are_not_json_objects_are_rejected_with_the_raw_line(
    tmp_path: Path,
) -> None:
    path = ndjson(tmp_path, LOCATION, '{"key": ', "not json", "[1, 2]", '"text"')
    assert read(path)[1:] == [
        Rejected(2, ("not valid JSON: unexpected end of data at column 9",), {"_raw": '{"key": '}),
        Rejected(
            3,
            ("not valid JSON: invalid literal, expected 'null' at column 1",),
            {"_raw": "not json"},
        ),
        Rejected(4, ("expected a JSON object",), {"_raw": "[1, 2]"}),
        Rejected(5, ("expected a JSON object",), {"_raw": '"text"'}),
    ]


def test_ndjson_invalid_utf8_is_rejected(tmp_path: Path) -> None:
    path = ndjson(tmp_path, LOCATION, b'{"key": "caf\xe9"}')
    assert read(path)[1:] == [Rejected(2, ("invalid UTF-8",), {"_raw": '{"key": "caf\ufffd"}'})]


def test_ndjson_nul_and_control_characters_are_rejected(tmp_path: Path) -> None:
    bad = {**LOCATION, "name": "Aus\x00tin", "region_name": "Te\x01xas"}
    [_, rejected] = read(ndjson(tmp_path, LOCATION, bad))
    assert rejected == Rejected(
        2,
        ("name: contains a NUL byte", "region_name: contains a control character"),
        {**LOCATION, "name": "Aus\\0tin", "region_name": "Te\x01xas"},
    )


def test_ndjson_rejected_records_show_non_strings_as_json(tmp_path: Path) -> None:
    bad = {**LOCATION, "key": 7, "attributes": {"a": [1]}}
    [_, rejected] = read(ndjson(tmp_path, LOCATION, bad))
    assert isinstance(rejected, Rejected)
    assert rejected.record == {**LOCATION, "key": "7", "attributes": '{"a":[1]}'}


def test_ndjson_line_numbers_are_physical_lines_including_blank_ones(tmp_path: Path) -> None:
    path = ndjson(tmp_path, "", LOCATION, "", "   ", {**LOCATION, "slug": "x y"}, LOCATION)
    assert [(item.line, type(item).__name__) for item in read(path)] == [
        (2, "Row"),
        (5, "Rejected"),
        (6, "Row"),
    ]


def test_ndjson_a_byte_order_mark_and_crlf_endings_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "seed.jsonl"
    path.write_bytes(
        b"\xef\xbb\xbf" + orjson.dumps(LOCATION) + b"\r\n" + orjson.dumps(LOCATION) + b"\r\n"
    )
    assert read(path) == [Row(1, AUSTIN), Row(2, AUSTIN)]


def test_ndjson_attr_keys_and_an_attributes_object_are_merged(tmp_path: Path) -> None:
    obj = {
        **SERVICE,
        "attr_price_unit": " per job ",
        "attr_blank": "",
        "attr_nothing": None,
        "attr_emergency": True,
        "attributes": {"price_low": 100, "ratio": 0.5, "note": "", "gone": None},
    }
    [row] = read(ndjson(tmp_path, obj), SERVICES)
    assert row == Row(
        1,
        (
            "svc-1",
            "drain-cleaning",
            "Drain Cleaning",
            "",
            "",
            '{"emergency":true,"gone":null,"note":"","price_low":100,'
            '"price_unit":"per job","ratio":0.5}',
        ),
    )


def test_ndjson_bad_attributes_are_rejected_with_reasons(tmp_path: Path) -> None:
    path = ndjson(
        tmp_path,
        SERVICE,
        {**SERVICE, "attr_list": [1], "attributes": {"Bad Name": 1, "nested": {"a": 1}}},
        {**SERVICE, "attr_dup": "x", "attributes": {"dup": "y", "nul": "a\x00"}},
        {**SERVICE, "attributes": ["not", "an", "object"]},
    )
    assert reasons_for(path, SERVICES) == [
        (),
        (
            "attr_list: must be a string, number, boolean or null",
            "attributes: 'Bad Name' is not a valid name (attribute names must be 1-50 lowercase "
            "letters, digits or underscores)",
            "attributes.nested: must be a string, number, boolean or null",
        ),
        (
            "attributes: 'dup' is given both as attr_dup and here",
            "attributes.nul: contains a NUL byte",
        ),
        ("attributes: must be a JSON object",),
    ]


def test_ndjson_attributes_longer_than_4000_characters_of_json_are_rejected(
    tmp_path: Path,
) -> None:
    path = ndjson(
        tmp_path,
        {**SERVICE, "attributes": {"note": "n" * 3989}},
        {**SERVICE, "attributes": {"note": "n" * 3990}},
    )
    assert reasons_for(path, SERVICES) == [(), ("attributes: longer than 4000 characters of JSON",)]


# --- NDJSON schema drift -------------------------------------------------------------


def test_ndjson_drift_is_checked_on_the_first_objects_keys(tmp_path: Path) -> None:
    first = {name: value for name, value in LOCATION.items() if name != "latitude"}
    path = ndjson(tmp_path, "", {**first, "lat": "30.2"}, LOCATION)
    with pytest.raises(SeedFileError) as raised:
        read(path)
    assert str(raised.value) == (
        f"{path}: the keys of the first object (line 2) do not match the locations schema\n"
        "  missing:    latitude\n"
        "  unexpected: lat (did you mean latitude?)\n"
        f"  expected:   {EXPECTED_LOCATIONS} "
        "(attr_* keys and an attributes object become attributes)"
    )


def test_ndjson_later_objects_with_missing_keys_are_only_rejected(tmp_path: Path) -> None:
    path = ndjson(tmp_path, SERVICE, {"key": "svc-2"})
    assert reasons_for(path, SERVICES) == [(), ("slug: is required", "name: is required")]


def test_ndjson_a_first_line_that_is_not_an_object_is_a_file_error(tmp_path: Path) -> None:
    path = ndjson(tmp_path, "key,slug,name", SERVICE)
    with pytest.raises(SeedFileError) as raised:
        read(path, SERVICES)
    assert str(raised.value) == (
        f"{path}: line 1: not valid JSON: unexpected character, expected a JSON value at column 1; "
        "is this an NDJSON file?"
    )


def test_ndjson_an_empty_file_is_a_file_error(tmp_path: Path) -> None:
    path = tmp_path / "seed.ndjson"
    path.write_bytes(b"\n \n")
    with pytest.raises(SeedFileError) as raised:
        read(path)
    assert str(raised.value) == f"{path}: the file is empty"


# --- header_of -----------------------------------------------------------------------


def test_header_of_a_csv_file_is_its_stripped_first_row(tmp_path: Path) -> None:
    path = tmp_path / "services.csv"
    path.write_text("\n key , slug,name,attr_x\nsvc-1,a,A,1\n")
    assert header_of(path, "csv") == ["key", "slug", "name", "attr_x"]


def test_header_of_an_ndjson_file_is_the_keys_of_its_first_object(tmp_path: Path) -> None:
    path = ndjson(tmp_path, "", {"slug": "a", "key": "k", "name": "A"}, {"other": 1})
    assert header_of(path, "ndjson") == ["slug", "key", "name"]


def test_header_of_with_a_schema_checks_csv_header_drift(tmp_path: Path) -> None:
    path = tmp_path / "services.csv"
    path.write_text("key,slug,names\n")
    with pytest.raises(SeedFileError) as raised:
        header_of(path, "csv", SERVICES)
    assert str(raised.value).splitlines()[:3] == [
        f"{path}: the header does not match the services schema",
        "  missing:    name",
        "  unexpected: names (did you mean name?)",
    ]


def test_header_of_with_a_schema_checks_the_first_ndjson_objects_keys(tmp_path: Path) -> None:
    path = ndjson(tmp_path, {"key": "k", "slug": "a"})
    with pytest.raises(SeedFileError, match=r"first object \(line 1\) do not match"):
        header_of(path, "ndjson", SERVICES)


def test_header_of_with_a_schema_returns_a_matching_header(tmp_path: Path) -> None:
    assert header_of(SEEDS / "locations.csv", "csv", LOCATIONS) == list(LOCATION)


def test_header_of_an_empty_file_is_a_file_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(SeedFileError, match="the file is empty"):
        header_of(path, "csv")


# --- RejectsWriter -------------------------------------------------------------------


def test_csv_rejects_keep_the_input_header_plus_line_and_reasons(tmp_path: Path) -> None:
    source = tmp_path / "services.csv"
    source.write_text(
        'key,slug,name,attr_note\nsvc-1,Bad Slug,,"a, b"\nsvc-2,ok,Fine,\nsvc-3,x\x00\n'
    )
    output = tmp_path / "rejects.csv"
    with RejectsWriter(output, SERVICES, "csv", header_of(source, "csv")) as writer:
        for item in read(source, SERVICES):
            if isinstance(item, Rejected):
                writer.write(item)
    assert output.read_text(encoding="utf-8") == (
        "key,slug,name,attr_note,line,reasons\n"
        'svc-1,Bad Slug,,"a, b",2,"slug: \'Bad Slug\' must be lowercase letters, digits and '
        'single hyphens; name: is required"\n'
        'svc-3,x\\0,,,4,"expected 4 fields, found 2"\n'
    )


def test_ndjson_rejects_are_one_object_per_line_with_line_reasons_and_record(
    tmp_path: Path,
) -> None:
    source = ndjson(tmp_path, SERVICE, {**SERVICE, "slug": "Bad"}, "oops")
    output = tmp_path / "rejects.ndjson"
    with RejectsWriter(output, SERVICES, "ndjson", header_of(source, "ndjson")) as writer:
        for item in read(source, SERVICES):
            if isinstance(item, Rejected):
                writer.write(item)
    assert [orjson.loads(line) for line in output.read_bytes().splitlines()] == [
        {
            "line": 2,
            "reasons": ["slug: 'Bad' must be lowercase letters, digits and single hyphens"],
            "record": {**SERVICE, "slug": "Bad"},
        },
        {
            "line": 3,
            "reasons": ["not valid JSON: unexpected character, expected a JSON value at column 1"],
            "record": {"_raw": "oops"},
        },
    ]


def test_a_rejects_file_that_cannot_be_written_is_a_file_error(tmp_path: Path) -> None:
    with pytest.raises(SeedFileError, match="cannot write the file"):
        RejectsWriter(tmp_path / "missing" / "rejects.csv", SERVICES, "csv", ["key"])
