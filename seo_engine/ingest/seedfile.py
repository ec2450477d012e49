"""Seed files: stream CSV or NDJSON records into COPY-ready rows or explained rejections."""

from __future__ import annotations

import csv
import difflib
import math
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, Protocol, Self

import orjson

from seo_engine import paths

FORMATS = ("csv", "ndjson")
MAX_ATTRIBUTES_JSON = 4000
MAX_QUOTED = 40
# Key of Rejected.record when a NDJSON line has no fields to show (not JSON, not an object).
RAW_LINE = "_raw"

_Kind = Literal["text", "slug", "country", "timezone", "integer", "float"]

_COUNTRY = re.compile(r"[A-Za-z]{2}")
_TIMEZONE = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+)*")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_ATTRIBUTE_NAME = re.compile(r"[a-z0-9_]{1,50}")
_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x01-\x08\x0a-\x1f\x7f]")
_ATTRIBUTE_RULE = "attribute names must be 1-50 lowercase letters, digits or underscores"
_BOM = b"\xef\xbb\xbf"


class SeedFileError(Exception):
    """The whole file is unusable: unreadable, unknown format, or not matching the schema."""


@dataclass(frozen=True)
class _Column:
    name: str
    kind: _Kind = "text"
    required: bool = False
    max_length: int | None = None
    bounds: tuple[int, int] = (0, 0)
    reserved: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Schema:
    """The columns of one seed kind, in COPY order, and how each is checked."""

    name: str
    columns: tuple[str, ...]
    required: frozenset[str]
    _rules: tuple[_Column, ...] = field(repr=False, compare=False)
    attributes: bool = True  # attr_* columns (an NDJSON attributes object) are allowed

    def __post_init__(self) -> None:
        if tuple(rule.name for rule in self._rules) != self.columns:
            raise ValueError(f"schema {self.name}: rules do not match the columns")


def _schema(name: str, *rules: _Column, attributes: bool = True) -> Schema:
    return Schema(
        name=name,
        columns=tuple(rule.name for rule in rules),
        required=frozenset(rule.name for rule in rules if rule.required),
        _rules=rules,
        attributes=attributes,
    )


LOCATIONS = _schema(
    "locations",
    _Column("key", required=True, max_length=100),
    _Column("slug", "slug", required=True, max_length=paths.MAX_SLUG),
    _Column("name", required=True, max_length=200),
    _Column("region_name", max_length=100),
    _Column("region_code", max_length=20),
    _Column("country_code", "country", required=True),
    _Column("population", "integer", required=True, bounds=(0, 10_000_000_000)),
    _Column("latitude", "float", required=True, bounds=(-90, 90)),
    _Column("longitude", "float", required=True, bounds=(-180, 180)),
    _Column("timezone", "timezone", max_length=64),
)

SERVICES = _schema(
    "services",
    _Column("key", required=True, max_length=100),
    _Column(  # a service hub lives at /<slug>/: not at a path the app serves itself
        "slug", "slug", required=True, max_length=paths.MAX_SLUG, reserved=paths.RESERVED_SEGMENTS
    ),
    _Column("name", required=True, max_length=200),
    _Column("category", max_length=100),
    _Column("description", max_length=2000),
)


# Hand edits of generated pages: `service` and `location` are slugs or `*` (every one);
# `field` names a generated field (ingest/overrides.py checks it against the site).
OVERRIDES = _schema(
    "overrides",
    _Column("service", required=True, max_length=paths.MAX_SLUG),
    _Column("location", required=True, max_length=paths.MAX_SLUG),
    _Column("field", required=True, max_length=100),
    _Column("value", required=True, max_length=5000),
    attributes=False,
)


@dataclass(frozen=True)
class Row:
    """A valid record: values in Schema.columns order, then the attributes as JSON text."""

    line: int
    values: tuple[object, ...]


@dataclass(frozen=True)
class Rejected:
    """An invalid record with every reason found and its fields as displayable text."""

    line: int
    reasons: tuple[str, ...]
    record: dict[str, str]


class _Unreadable:
    """Marks a CSV field that is not valid UTF-8 (already reported once for the record)."""


_UNREADABLE = _Unreadable()


class _CsvReader(Protocol):
    line_num: int

    def __next__(self) -> list[str]: ...


def detect_format(path: Path, explicit: str | None = None) -> str:
    """Return "csv" or "ndjson": the explicit choice if given, else from the file suffix."""
    if explicit is not None:
        return _normalise_format(explicit)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".ndjson", ".jsonl"):
        return "ndjson"
    raise SeedFileError(
        f"{path}: cannot tell the format from the file name; "
        "name it .csv, .ndjson or .jsonl, or give the format explicitly"
    )


def header_of(path: Path, fmt: str, schema: Schema | None = None) -> list[str]:
    """Return the header columns (CSV first row, or the first NDJSON object's keys).

    With a schema, also raise SeedFileError on schema drift, as read_records would.
    """
    if _normalise_format(fmt) == "csv":
        with _open_csv(path) as stream:
            header = _csv_header(path, csv.reader(stream))
        if schema is not None:
            _check_names(path, schema, header, "the header does not match", "csv")
        return header
    with _open_binary(path) as stream:
        line, first = _first_object(path, enumerate(stream, 1))
    header = list(first)
    if schema is not None:
        _check_names(path, schema, header, _first_object_mismatch(line), "ndjson")
    return header


def read_records(path: Path, schema: Schema, fmt: str) -> Iterator[Row | Rejected]:
    """Yield one Row or Rejected per record; SeedFileError comes before any record."""
    if _normalise_format(fmt) == "csv":
        yield from _read_csv(path, schema)
    else:
        yield from _read_ndjson(path, schema)


class RejectsWriter:
    """Write rejected records to a file in the input's format, with line and reasons."""

    def __init__(self, path: Path, schema: Schema, fmt: str, header: Sequence[str]) -> None:
        self._format = _normalise_format(fmt)
        self._header = list(header) or list(schema.columns)
        try:
            self._file = path.open("w", encoding="utf-8", newline="")
        except OSError as error:
            raise SeedFileError(f"{path}: cannot write the file: {_os_reason(error)}") from error
        self._csv = csv.writer(self._file, lineterminator="\n")
        if self._format == "csv":
            self._csv.writerow([*self._header, "line", "reasons"])

    def write(self, rejected: Rejected) -> None:
        """Append one rejected record."""
        if self._format == "csv":
            values = [rejected.record.get(name, "") for name in self._header]
            self._csv.writerow([*values, rejected.line, "; ".join(rejected.reasons)])
        else:
            entry = {"line": rejected.line, "reasons": rejected.reasons, "record": rejected.record}
            self._file.write(orjson.dumps(entry).decode() + "\n")

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


# --- files and formats ---------------------------------------------------------------


def _normalise_format(fmt: str) -> str:
    lowered = fmt.strip().lower()
    if lowered == "jsonl":
        return "ndjson"
    if lowered not in FORMATS:
        raise SeedFileError(f"unknown seed file format {fmt!r}; use csv or ndjson")
    return lowered


def _os_reason(error: OSError) -> str:
    return error.strerror or str(error)


def _open_csv(path: Path) -> IO[str]:
    try:
        return path.open(encoding="utf-8-sig", errors="surrogateescape", newline="")
    except OSError as error:
        raise SeedFileError(f"{path}: cannot read the file: {_os_reason(error)}") from error


def _open_binary(path: Path) -> IO[bytes]:
    try:
        return path.open("rb")
    except OSError as error:
        raise SeedFileError(f"{path}: cannot read the file: {_os_reason(error)}") from error


def _check_names(path: Path, schema: Schema, names: Sequence[str], what: str, fmt: str) -> None:
    """Raise SeedFileError with a readable diff when the names drift from the schema."""
    extra = schema.attributes and fmt == "ndjson"
    allowed = set(schema.columns) | ({"attributes"} if extra else set())
    present = set(names)
    missing = [column for column in schema.columns if column in schema.required - present]
    unexpected = [
        n
        for n in dict.fromkeys(names)
        if n not in allowed and not (schema.attributes and _is_attribute(n))
    ]
    duplicated = [name for name, count in Counter(names).items() if count > 1]
    if not (missing or unexpected or duplicated):
        return
    absent = [column for column in schema.columns if column not in present]
    attributes = (
        ""
        if not schema.attributes
        else " (attr_* columns become attributes)"
        if fmt == "csv"
        else " (attr_* keys and an attributes object become attributes)"
    )
    lines = [f"{path}: {what} the {schema.name} schema"]
    if missing:
        lines.append(f"  missing:    {', '.join(missing)}")
    if unexpected:
        described = ", ".join(_describe_unexpected(name, absent) for name in unexpected)
        lines.append(f"  unexpected: {described}")
    if duplicated:
        lines.append(f"  duplicated: {', '.join(_shown_name(name) for name in duplicated)}")
    lines.append(f"  expected:   {', '.join(schema.columns)}{attributes}")
    raise SeedFileError("\n".join(lines))


def _is_attribute(name: str) -> bool:
    return name.startswith("attr_") and _ATTRIBUTE_NAME.fullmatch(name[5:]) is not None


def _shown_name(name: str) -> str:
    return name if name else "(blank name)"


def _describe_unexpected(name: str, absent: Sequence[str]) -> str:
    if name.startswith("attr_") and not _is_attribute(name):
        return f"{name} ({_ATTRIBUTE_RULE})"
    suggestion = _suggest(name, absent)
    if suggestion is None:
        return _shown_name(name)
    return f"{name} (did you mean {suggestion}?)"


def _suggest(name: str, absent: Sequence[str]) -> str | None:
    lowered = name.lower()
    if not lowered:
        return None
    if lowered in absent:
        return lowered
    prefixed = [column for column in absent if len(lowered) >= 3 and column.startswith(lowered)]
    if len(prefixed) == 1:
        return prefixed[0]
    close = difflib.get_close_matches(lowered, absent, n=1, cutoff=0.5)
    return close[0] if close else None


# --- CSV -----------------------------------------------------------------------------


def _read_csv(path: Path, schema: Schema) -> Iterator[Row | Rejected]:
    with _open_csv(path) as stream:
        try:
            reader = csv.reader(stream)
            header = _csv_header(path, reader)
            _check_names(path, schema, header, "the header does not match", "csv")
            columns = {name: index for index, name in enumerate(header) if name in schema.columns}
            attributes = [
                (name[5:], index) for index, name in enumerate(header) if _is_attribute(name)
            ]
            previous = reader.line_num
            while True:
                fields = _next_csv_row(path, reader, previous + 1)
                if fields is None:
                    return
                start, previous = previous + 1, reader.line_num
                if not _is_blank(fields):
                    yield _csv_item(schema, header, columns, attributes, fields, start)
        except OSError as error:
            raise SeedFileError(f"{path}: cannot read the file: {_os_reason(error)}") from error


def _next_csv_row(path: Path, reader: _CsvReader, line: int) -> list[str] | None:
    try:
        row = next(reader)
    except StopIteration:
        return None
    except csv.Error as error:
        raise SeedFileError(
            f"{path}: line {line}: cannot parse the CSV record ({error})"
        ) from error
    return row


def _csv_header(path: Path, reader: _CsvReader) -> list[str]:
    while (row := _next_csv_row(path, reader, reader.line_num + 1)) is not None:
        if _is_blank(row):
            continue
        if any(_SURROGATE.search(cell) for cell in row):
            raise SeedFileError(f"{path}: the header is not valid UTF-8; save the file as UTF-8")
        return [cell.strip() for cell in row]
    raise SeedFileError(f"{path}: the file is empty")


def _is_blank(fields: Sequence[str]) -> bool:
    return not fields or (len(fields) == 1 and not fields[0].strip())


def _csv_item(
    schema: Schema,
    header: Sequence[str],
    columns: Mapping[str, int],
    attributes: Sequence[tuple[str, int]],
    fields: Sequence[str],
    line: int,
) -> Row | Rejected:
    if len(fields) != len(header):
        reason = f"expected {len(header)} fields, found {len(fields)}"
        return Rejected(line, (reason,), _csv_record(header, fields))
    reasons: list[str] = []
    if any(_SURROGATE.search(value) for value in fields):
        reasons.append("invalid UTF-8")
    values = {name: _csv_cell(fields[index]) for name, index in columns.items()}
    parsed = _parse_columns(schema, values, reasons)
    collected: dict[str, object] = {}
    for name, index in attributes:
        if _SURROGATE.search(fields[index]):
            continue
        text = _clean_text(f"attr_{name}", fields[index], reasons, control=True)
        if text:
            collected[name] = text
    values_out = _finish(parsed, collected, reasons)
    if values_out is None:
        return Rejected(line, tuple(reasons), _csv_record(header, fields))
    return Row(line, values_out)


def _csv_cell(value: str) -> str | _Unreadable:
    return _UNREADABLE if _SURROGATE.search(value) else value


def _csv_record(header: Sequence[str], fields: Sequence[str]) -> dict[str, str]:
    record = {name: _display(value) for name, value in zip(header, fields, strict=False)}
    for position in range(len(header), len(fields)):
        record[f"_field_{position + 1}"] = _display(fields[position])
    return record


def _display(value: str) -> str:
    if _SURROGATE.search(value):
        value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return value.replace("\x00", "\\0")


# --- NDJSON --------------------------------------------------------------------------


def _read_ndjson(path: Path, schema: Schema) -> Iterator[Row | Rejected]:
    with _open_binary(path) as stream:
        try:
            lines = enumerate(stream, 1)
            line, first = _first_object(path, lines)
            _check_names(path, schema, list(first), _first_object_mismatch(line), "ndjson")
            yield _ndjson_item(schema, first, line)
            for line, raw in lines:
                if raw.strip():
                    yield _ndjson_line(schema, raw, line)
        except OSError as error:
            raise SeedFileError(f"{path}: cannot read the file: {_os_reason(error)}") from error


def _first_object_mismatch(line: int) -> str:
    return f"the keys of the first object (line {line}) do not match"


def _first_object(path: Path, lines: Iterator[tuple[int, bytes]]) -> tuple[int, dict[str, Any]]:
    """Return the first non-blank line and its object; anything else there is fatal."""
    for line, raw in lines:
        if line == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM) :]
        if not raw.strip():
            continue
        value, problem = _decode_json(raw)
        if problem is None and not isinstance(value, dict):
            problem = "expected a JSON object"
        if problem is not None:
            raise SeedFileError(f"{path}: line {line}: {problem}; is this an NDJSON file?")
        obj: dict[str, Any] = value
        return line, obj
    raise SeedFileError(f"{path}: the file is empty")


def _decode_json(raw: bytes) -> tuple[Any, str | None]:
    """Return the parsed value, or a reason why the line is not JSON."""
    raw = raw.rstrip(b"\r\n")
    try:
        return orjson.loads(raw), None
    except orjson.JSONDecodeError as error:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return None, "invalid UTF-8"
        return None, f"not valid JSON: {error.msg} at column {error.colno}"


def _ndjson_line(schema: Schema, raw: bytes, line: int) -> Row | Rejected:
    value, problem = _decode_json(raw)
    if problem is None and not isinstance(value, dict):
        problem = "expected a JSON object"
    if problem is not None:
        text = raw.decode("utf-8", "replace").rstrip("\r\n")
        return Rejected(line, (problem,), {RAW_LINE: _display(text)})
    return _ndjson_item(schema, value, line)


def _ndjson_item(schema: Schema, obj: Mapping[str, Any], line: int) -> Row | Rejected:
    reasons = [
        f"unknown field {_quote(key)}"
        for key in obj
        if key not in schema.columns
        and not (schema.attributes and (key == "attributes" or _is_attribute(key)))
    ]
    parsed = _parse_columns(schema, obj, reasons)
    collected: dict[str, object] = {}
    for key, value in obj.items():
        if _is_attribute(key):
            scalar = _attribute_value(key, value, reasons, strip=True)
            if scalar is not None and scalar != "":
                collected[key[5:]] = scalar
    _merge_attributes_object(obj.get("attributes"), collected, reasons)
    values = _finish(parsed, collected, reasons)
    if values is None:
        return Rejected(line, tuple(reasons), _ndjson_record(obj))
    return Row(line, values)


def _merge_attributes_object(
    value: object, collected: dict[str, object], reasons: list[str]
) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        reasons.append("attributes: must be a JSON object")
        return
    for name, item in value.items():
        if not _ATTRIBUTE_NAME.fullmatch(name):
            reasons.append(f"attributes: {_quote(name)} is not a valid name ({_ATTRIBUTE_RULE})")
            continue
        if name in collected:
            reasons.append(f"attributes: {_quote(name)} is given both as attr_{name} and here")
            continue
        scalar = _attribute_value(f"attributes.{name}", item, reasons, strip=False)
        if scalar is not None or item is None:
            collected[name] = scalar


def _attribute_value(label: str, value: object, reasons: list[str], *, strip: bool) -> object:
    """Return a checked scalar attribute value, or None (with a reason when it is bad)."""
    if isinstance(value, str):
        text = _clean_text(label, value, reasons, control=True)
        return text if strip or text is None else value
    if value is None or isinstance(value, bool | int | float):
        return value
    reasons.append(f"{label}: must be a string, number, boolean or null")
    return None


def _ndjson_record(obj: Mapping[str, Any]) -> dict[str, str]:
    return {
        key: _display(value if isinstance(value, str) else orjson.dumps(value).decode())
        for key, value in obj.items()
    }


# --- checking values -----------------------------------------------------------------


def _parse_columns(
    schema: Schema, values: Mapping[str, object], reasons: list[str]
) -> list[object]:
    return [_parse(rule, values.get(rule.name), reasons) for rule in schema._rules]


def _finish(
    parsed: list[object], attributes: dict[str, object], reasons: list[str]
) -> tuple[object, ...] | None:
    encoded = orjson.dumps(attributes, option=orjson.OPT_SORT_KEYS).decode()
    if len(encoded) > MAX_ATTRIBUTES_JSON:
        reasons.append(f"attributes: longer than {MAX_ATTRIBUTES_JSON} characters of JSON")
    if reasons:
        return None
    return (*parsed, encoded)


def _clean_text(label: str, value: str, reasons: list[str], *, control: bool) -> str | None:
    """Return the stripped text, or None with a reason when it holds NUL or control characters."""
    if "\x00" in value:
        reasons.append(f"{label}: contains a NUL byte")
        return None
    text = value.strip()
    if control and _CONTROL.search(text):
        reasons.append(f"{label}: contains a control character")
        return None
    return text


def _parse(rule: _Column, raw: object, reasons: list[str]) -> object:
    """Return the typed value of one column, or None after adding a reason."""
    numeric = rule.kind in ("integer", "float")
    if raw is _UNREADABLE:
        return None
    if raw is None:
        text: str | None = ""
    elif isinstance(raw, str):
        text = _clean_text(rule.name, raw, reasons, control=rule.kind == "text")
    elif numeric and isinstance(raw, int | float) and not isinstance(raw, bool):
        return _check_number(rule, raw, repr(raw), reasons)
    else:
        reasons.append(f"{rule.name}: must be a {'number' if numeric else 'string'}")
        return None
    if text is None:
        return None
    if not text:
        if rule.required:
            reasons.append(f"{rule.name}: is required")
            return None
        return ""
    if rule.max_length is not None and len(text) > rule.max_length:
        reasons.append(f"{rule.name}: longer than {rule.max_length} characters")
        return None
    if rule.kind == "slug" and not paths.SLUG_RE.fullmatch(text):
        reasons.append(f"slug: {_quote(text)} must be lowercase letters, digits and single hyphens")
        return None
    if text in rule.reserved:
        reasons.append(f"slug: {_quote(text)} is reserved for the site's own pages")
        return None
    if rule.kind == "country":
        if not _COUNTRY.fullmatch(text):
            reasons.append(f"{rule.name}: {_quote(text)} must be a two-letter ISO code")
            return None
        return text.upper()
    if rule.kind == "timezone" and not _TIMEZONE.fullmatch(text):
        reasons.append(f"{rule.name}: {_quote(text)} is not a time zone name like America/New_York")
        return None
    if numeric:
        return _parse_number(rule, text, reasons)
    return text


def _parse_number(rule: _Column, text: str, reasons: list[str]) -> object:
    if rule.kind == "integer":
        if not _INTEGER.fullmatch(text):
            reasons.append(f"{rule.name}: {_quote(text)} is not a whole number")
            return None
        # Far more digits than any bound; int() would also refuse past 4300 digits.
        number = int(text) if len(text) <= 100 else rule.bounds[1] + 1
        return _check_number(rule, number, _shown(text), reasons)
    if _DECIMAL.fullmatch(text) and math.isfinite(float(text)):
        return _check_number(rule, float(text), _shown(text), reasons)
    if _DECIMAL.fullmatch(text) or text.lower().lstrip("+-") in ("nan", "inf", "infinity"):
        reasons.append(f"{rule.name}: {_quote(text)} is not a finite number")
    else:
        reasons.append(f"{rule.name}: {_quote(text)} is not a number")
    return None


def _check_number(rule: _Column, number: int | float, shown: str, reasons: list[str]) -> object:
    if rule.kind == "integer":
        if isinstance(number, float):
            if not number.is_integer():
                reasons.append(f"{rule.name}: {shown} is not a whole number")
                return None
            number = int(number)
    else:
        number = float(number)
    low, high = rule.bounds
    if not low <= number <= high:
        reasons.append(f"{rule.name}: {shown} is outside {low}..{high}")
        return None
    return number


def _shown(number: str) -> str:
    """Show a number as typed, quoted and shortened only when it is very long."""
    return number if len(number) <= MAX_QUOTED else _quote(number)


def _quote(text: str) -> str:
    """Quote a value for a reason, shortened so one bad cell cannot flood the report."""
    return repr(text if len(text) <= MAX_QUOTED else text[:MAX_QUOTED] + "…")
