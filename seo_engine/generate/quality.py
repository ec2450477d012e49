"""The quality gate: score every page and say why, so thin and near-duplicate pages stay out.

A page's score (0-100) adds four parts:

- distinctiveness (45): how little of its text it shares with its closest sibling, after
  its own entity values (the city, region, population and service name) are masked. Its
  siblings are the pages of the same service in the other locations (its family) and the
  pages of the other services in the same location. Text is cut into 5-word shingles and
  each page gets a 64-value MinHash signature; siblings are paired by locality-sensitive
  hashing (16 bands of 4 values) within a family or a location, never all pairs, and the
  nearest one found is kept with its estimated Jaccard similarity (docs/quality.md says
  why);
- unique data (20): the share of its words that come from its own rows (location,
  service, nearby places, attributes) rather than from template text;
- substance (20): words of body text (intro, sections, FAQ answers);
- form (15): title and description within their limits, no empty section, no title or
  description shared with another page of the family.

Some findings keep a page out of the index whatever its score (`BLOCKING`): an exact or
near duplicate, and thin content. Everything here is deterministic: the same pages give
the same scores, reasons and nearest siblings in every run and every process.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from seo_engine.ingest.sites import QualityRules

SHINGLE_WORDS = 5
PERMUTATIONS = 64
BANDS = 16  # of PERMUTATIONS // BANDS values each: pairs above ~0.5 similarity meet
ROWS = PERMUTATIONS // BANDS
PAIR_CHUNK = 16_384  # pairs compared at once (bounds the memory of a large family: ~6 MB)
WINDOW = 2  # bucket-mates compared on each side of a page in each band's sort order
TITLE_LIMIT = 60
DESCRIPTION_MIN = 70
DESCRIPTION_LIMIT = 160
DISTINCT_POINTS, DATA_POINTS, SUBSTANCE_POINTS, FORM_POINTS = 45, 20, 20, 15
FULLY_DISTINCT = 0.5  # a nearest sibling at or below this similarity costs nothing
FULL_DATA_SHARE = 0.25  # a data share at or above this earns every unique-data point
DUPLICATE = 0.999  # estimated similarity treated as the same text
MASK = 0  # what an entity word becomes: a hash that stands for every masked word

Hashes = npt.NDArray[np.uint32]
Counts = npt.NDArray[np.int64]
# One row of PERMUTATIONS values per page: the low 16 bits of each bin's least hash, which
# are equal by chance once in 65,536 (a bias of 0.00002 on the estimate) at half the size.
Signature = npt.NDArray[np.uint16]

_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_MIX = np.array([0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D, 0x27D4EB2F, 0x165667B1], dtype=np.uint64)
_BIN_SHIFT = np.uint64(64 - PERMUTATIONS.bit_length() + 1)  # the top 6 bits pick the bin
_COLUMNS = np.arange(PERMUTATIONS)
_HALF, _LOW16, _LOW32 = np.uint64(32), np.uint64(0xFFFF), np.uint64(0xFFFFFFFF)
_ONE = np.uint64(1)
_FULL = np.iinfo(np.uint64).max
_EMPTY = np.iinfo(np.uint16).max
_NORMAL = re.compile(r"[^0-9a-z]+")
# Words are cut at ASCII whitespace and punctuation (both become a space) and folded to
# lowercase (ASCII letters only: a value and the text that shows it are folded alike).
_CUT = bytes(c for c in range(128) if not chr(c).isalnum())
_UPPER = bytes(range(ord("A"), ord("Z") + 1))
_FOLD = bytes.maketrans(_CUT + _UPPER, b" " * len(_CUT) + _UPPER.lower())
_DASHES = ("\u2013".encode(), "\u2014".encode())  # "$100\u2013$350" is two numbers
_SPACE = 32
# Polynomial word hashes from one prefix sum: hash(word at s..e) = (prefix[e] - prefix[s])
# times BASE^-s, all modulo 2^64 (numpy's uint64 arithmetic wraps).
_BASE = 0x100000001B3
_BASE_INVERSE = pow(_BASE, -1, 1 << 64)


@dataclass(frozen=True)
class Reason:
    code: str
    blocking: bool  # keeps the page out of the index whatever its score


# Codes in a fixed order: a page's reasons are also stored as a bit mask (bit i = REASONS[i]).
REASONS = (
    Reason("duplicate_content", True),
    Reason("near_duplicate", True),
    Reason("similar_content", False),
    Reason("thin_content", True),
    Reason("short_content", False),
    Reason("little_unique_data", False),
    Reason("title_too_long", False),
    Reason("description_length", False),
    Reason("empty_section", False),
    Reason("duplicate_title", False),
    Reason("duplicate_description", False),
    Reason("below_threshold", False),
    Reason("not_scored", False),
    Reason("noindex_override", True),
)
BIT = {reason.code: 1 << number for number, reason in enumerate(REASONS)}
BLOCKING = frozenset(reason.code for reason in REASONS if reason.blocking)


@dataclass(frozen=True)
class Signals:
    """What one page's text says about it, before it is compared with its siblings."""

    body_words: int
    data_words: int
    words: int
    title_length: int
    description_length: int
    empty_sections: int
    title_key: int  # text_key of the title and description: duplicates are counted on these
    description_key: int

    @property
    def data_share(self) -> float:
        return self.data_words / self.words if self.words else 0.0


@dataclass(frozen=True)
class Verdict:
    score: float
    indexable: bool
    reasons: list[dict[str, str]]  # {"code": ..., "message": ...}, most serious first
    flags: int  # the reasons as a bit mask (BIT)

    def summary(self, nearest_path: str | None, similarity: float | None) -> dict[str, Any]:
        """The page document's `quality` object."""
        nearest = None
        if nearest_path is not None and similarity is not None:
            nearest = {"path": nearest_path, "similarity": round(similarity, 3)}
        return {
            "score": self.score,
            "indexable": self.indexable,
            "reasons": self.reasons,
            "nearest": nearest,
        }


def noindexed(verdict: Verdict) -> Verdict:
    """The verdict of a page an override sets `noindex`: served noindex, whatever its score."""
    reason = {"code": "noindex_override", "message": "noindex is set by an override"}
    return Verdict(
        verdict.score, False, [reason, *verdict.reasons], verdict.flags | BIT["noindex_override"]
    )


# What every page gets when a site turns the gate off ([quality] gate = false).
UNSCORED = Verdict(
    0.0,
    True,
    [{"code": "not_scored", "message": "the quality gate is off for this site"}],
    BIT["not_scored"],
)


def normalised(text: str) -> str:
    """Lowercase letters and digits only: "Roof Repair | Austin" and "roof repair - austin"
    are the same title."""
    return _NORMAL.sub(" ", text.lower()).strip()


def text_key(text: str) -> int:
    """A 64-bit key of a title or description after `normalised` (a signed bigint)."""
    digest = hashlib.blake2b(normalised(text).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _mixed(values: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64's finaliser: every input bit reaches every output bit."""
    values = (values ^ (values >> _S30)) * _M1
    values = (values ^ (values >> _S27)) * _M2
    mixed: npt.NDArray[np.uint64] = values ^ (values >> _S31)
    return mixed


CUT_BYTES = 1 << 17  # text cut at once (the powers it needs are kept: 2 MB)


class _Powers:
    """BASE^i and BASE^-i modulo 2^64 for every offset up to CUT_BYTES (a longer text's
    are computed for it and not kept)."""

    forward = np.ones(0, dtype=np.uint64)
    backward = np.ones(0, dtype=np.uint64)

    @classmethod
    def upto(cls, size: int) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
        if len(cls.forward) >= size:
            return cls.forward, cls.backward
        powers = []
        for base in (_BASE, _BASE_INVERSE):
            every = np.full(max(size, CUT_BYTES), base, dtype=np.uint64)
            every[0] = 1
            powers.append(np.cumprod(every, dtype=np.uint64))
        if size <= CUT_BYTES:
            cls.forward, cls.backward = powers
        return powers[0], powers[1]


def cut(texts: Sequence[bytes]) -> tuple[Hashes, Counts]:
    """The words of many UTF-8 texts as 32-bit hashes, all texts' words in order, and each
    text's number of words. Words are cut at ASCII whitespace, ASCII punctuation and
    dashes, with ASCII letters lowercased; other characters are parts of words (the quotes
    of "Sa\u2018\u012bd\u0101b\u0101d" are letters), so a value and the text that shows
    it are cut alike. Deterministic across processes and runs: a word's hash is a
    polynomial of its bytes (one prefix sum over about CUT_BYTES of texts at a time), mixed."""
    hashes: list[Hashes] = []
    counts: list[Counts] = []
    group: list[bytes] = []
    size = 0
    for text in texts:
        if group and size + len(text) + 2 > CUT_BYTES:  # the joined bytes stay within
            hashes.append((part := _cut(group))[0])
            counts.append(part[1])
            group, size = [], 0
        group.append(text)
        size += len(text) + 1
    if group or not hashes:
        hashes.append((part := _cut(group))[0])
        counts.append(part[1])
    return np.concatenate(hashes), np.concatenate(counts)


def _cut(texts: Sequence[bytes]) -> tuple[Hashes, Counts]:
    joined = b" ".join([b"", *texts, b""])
    for dash in _DASHES:
        if dash in joined:  # a dash becomes as many spaces as its bytes: offsets stay
            joined = joined.replace(dash, b" " * len(dash))
    data = np.frombuffer(joined.translate(_FOLD), dtype=np.uint8)
    inside = data != _SPACE
    edges = np.flatnonzero(inside[1:] != inside[:-1]) + 1
    starts, ends = edges[0::2], edges[1::2]
    forward, backward = _Powers.upto(len(data))
    prefix = np.multiply(data, forward[: len(data)], dtype=np.uint64)  # 8 bytes a byte of text:
    np.cumsum(prefix, out=prefix)  # in place, the batch's largest array is held once
    hashed = _mixed((prefix[ends - 1] - prefix[starts - 1]) * backward[starts])
    bounds = np.cumsum([0, *(len(text) + 1 for text in texts)])
    counts = np.diff(np.searchsorted(starts, bounds))
    return (hashed >> _HALF).astype(np.uint32), counts.astype(np.int64)


@dataclass(frozen=True)
class Words:
    """Many pages' words: hashes in order (their own words masked), and per page its
    number of words and how many of them come from its data."""

    hashes: Hashes
    counts: Counts
    data: Counts


class WordReader:
    """Reads the words of many pages at once, for the quality gate.

    `template_text` is the literal text of the site's content templates: its words are the
    templates' own (`the`, `in`, `new`), so they neither count as a page's data nor are
    masked when a data value happens to contain them ("New" in "New South Wales").
    """

    def __init__(self, template_text: str = "") -> None:
        self.template = np.unique(cut([template_text.encode()])[0])

    def values(self, values: Iterable[str]) -> Hashes:
        """The distinct words of data values that are not the templates' own, sorted;
        computed once per service or location and kept by the caller."""
        words, _ = cut([" ".join(values).encode()])
        return np.setdiff1d(words, self.template)

    def read(
        self,
        texts: Sequence[str],
        masked: Sequence[Sequence[Hashes]],
        data: Sequence[Sequence[Hashes]],
    ) -> Words:
        """The words of many pages: each page's `masked` words (its own names and numbers,
        see `values`) become MASK, and every word of its `masked` or `data` (the other
        values its rows put in it) counts as its data."""
        hashes, counts = cut([text.encode() for text in texts])
        owner = np.repeat(np.arange(len(texts), dtype=np.uint64), counts)
        # One search for both: keys are (page << 32 | hash) << 1 | 0 for a masked word and
        # | 1 for a data word, so a word's first key at or after (query << 1) is its masked
        # key if it has one.
        query = ((owner << _HALF) | hashes) << _ONE
        keys = np.sort(np.concatenate([_keys(masked) << _ONE, (_keys(data) << _ONE) | _ONE]))
        hidden, found = _member(query, keys)
        hashes[hidden] = MASK
        data_words = np.bincount(owner[found].astype(np.int64), minlength=len(texts))
        return Words(hashes, counts, data_words.astype(np.int64))


def _keys(sets: Sequence[Sequence[Hashes]]) -> npt.NDArray[np.uint64]:
    """Each page's words as (page << 32 | hash), in no order."""
    parts = [part for words in sets for part in words]
    owner = np.repeat(
        np.arange(len(sets), dtype=np.uint64),
        [sum(len(part) for part in words) for words in sets],
    )
    merged = np.concatenate(parts).astype(np.uint64) if parts else np.zeros(0, np.uint64)
    keys: npt.NDArray[np.uint64] = (owner << _HALF) | merged
    return keys


def _member(
    query: npt.NDArray[np.uint64], keys: npt.NDArray[np.uint64]
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Which queries (tag bit 0) are among the sorted tagged keys with tag 0 (masked), and
    which with either tag (masked or data)."""
    if not len(keys):
        nothing = np.zeros(len(query), dtype=bool)
        return nothing, nothing
    at = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    first = keys[at]
    masked: npt.NDArray[np.bool_] = first == query
    either: npt.NDArray[np.bool_] = (first >> _ONE) == (query >> _ONE)
    return masked, either


def signatures(words: Words) -> Signature:
    """A MinHash signature (one row) for each page's 5-word shingles, computed for many
    pages at once; deterministic across processes and runs.

    One-permutation hashing: each shingle is hashed once to 64 bits; the top bits pick one
    of PERMUTATIONS bins and each bin keeps its least value, which estimates Jaccard
    similarity like PERMUTATIONS separate hash functions at a 64th of the cost. An empty
    bin (a text of few shingles) borrows the value of the next filled bin, circularly
    ("densification"), so that two short unrelated texts do not agree on empty bins. A run
    of masked words is one mask (a city of two words masks like a city of one), and a text
    of fewer than five words is one shingle.
    """
    pages = len(words.counts)
    result = np.full((pages, PERMUTATIONS), _EMPTY, dtype=np.uint16)
    if not pages:
        return result
    hashes = words.hashes.astype(np.uint64)
    lengths = words.counts.copy()
    owner = np.repeat(np.arange(pages), lengths)
    repeated = np.r_[
        False, (hashes[1:] == MASK) & (hashes[:-1] == MASK) & (owner[1:] == owner[:-1])
    ]
    if repeated.any():
        hashes, owner = hashes[~repeated], owner[~repeated]
        lengths = np.bincount(owner, minlength=pages)
    short = np.flatnonzero((lengths > 0) & (lengths < SHINGLE_WORDS))
    if len(short):  # rare: resize each to one shingle's words
        starts = np.r_[0, np.cumsum(lengths)[:-1]]
        parts = np.split(hashes, starts[1:])
        for page in short.tolist():
            parts[page] = np.resize(parts[page], SHINGLE_WORDS)
        lengths[short] = SHINGLE_WORDS
        hashes = np.concatenate(parts)
        owner = np.repeat(np.arange(pages), lengths)
    if len(hashes) < SHINGLE_WORDS:
        return result
    count = len(hashes) - SHINGLE_WORDS + 1
    shingles = hashes[:count] * _MIX[0]
    for offset in range(1, SHINGLE_WORDS):
        shingles ^= hashes[offset : offset + count] * _MIX[offset]
    # A shingle belongs to a page when its five words do.
    whole = owner[:count] == owner[SHINGLE_WORDS - 1 :]
    hashed, page = _mixed(shingles[whole]), owner[:count][whole]
    least = np.full((pages, PERMUTATIONS), _FULL, dtype=np.uint64)
    bins = page * PERMUTATIONS + (hashed >> _BIN_SHIFT).astype(np.int64)
    np.minimum.at(least.reshape(-1), bins, hashed)
    # Each bin takes the next filled bin at or after it (circularly).
    filled = least != _FULL
    column = np.where(filled, _COLUMNS, 2 * PERMUTATIONS)
    following = np.minimum.accumulate(np.c_[column, column + PERMUTATIONS][:, ::-1], axis=1)
    take = following[:, ::-1][:, :PERMUTATIONS] % PERMUTATIONS
    rows = np.flatnonzero(filled.any(axis=1))
    chosen = np.take_along_axis(least[rows], take[rows], axis=1)
    result[rows] = (chosen & _LOW16).astype(np.uint16)
    return result


def signature(text: str, entities: Iterable[str] = ()) -> Signature:
    """One text's signature (see `signatures`), the words of `entities` masked."""
    reader = WordReader()
    one: Signature = signatures(reader.read([text], [[reader.values(entities)]], [[]]))[0]
    return one


def _band_keys(matrix: Signature, band: int) -> npt.NDArray[np.uint64]:
    """One 64-bit key per page: a band's ROWS 16-bit values side by side (equal values,
    equal keys)."""
    key = np.zeros(len(matrix), dtype=np.uint64)
    for column in range(band * ROWS, (band + 1) * ROWS):
        key = (key << np.uint64(16)) | matrix[:, column].astype(np.uint64)
    return key


def nearest(
    matrix: Signature, groups: npt.NDArray[np.int64] | None = None
) -> tuple[Counts, Counts]:
    """Each page's most similar sibling among those LSH pairs it with: its row (-1: no
    candidate) and how many of their PERMUTATIONS values are equal (similarity = equal /
    PERMUTATIONS). With `groups`, only pages of the same group are siblings.

    `matrix` holds one signature per row. For each band, pages are sorted by group and the
    band's values; a page is compared with the WINDOW pages on either side that share its
    group and its band exactly (LSH candidates). Bucket-mates of a large bucket are all
    similar, so a few of them find the nearest closely enough; an exact duplicate is always
    found (it shares every band). Each page keeps its most similar candidate, ties to the
    lowest row, so that the answer does not depend on the order pairs were found in.
    """
    matrix = np.asarray(matrix)
    count = len(matrix)
    # Per page, the best (equal values << 32 | ~other) seen: the maximum is the most
    # similar candidate and, among equals, the lowest row.
    best = np.zeros(count, dtype=np.uint64)
    for band in range(BANDS if count > 1 else 0):
        keys = _band_keys(matrix, band)
        # Stable: within a bucket, pages keep their row order, so one page that moves
        # changes the candidates of its bucket-mates next to it only.
        order = (
            np.lexsort((keys, groups)) if groups is not None else np.argsort(keys, kind="stable")
        )
        for shift in range(1, WINDOW + 1):
            left, right = order[:-shift], order[shift:]
            same = keys[left] == keys[right]
            if groups is not None:
                same &= groups[left] == groups[right]
            first, second = left[same], right[same]
            for at in range(0, len(first), PAIR_CHUNK):
                one, other = first[at : at + PAIR_CHUNK], second[at : at + PAIR_CHUNK]
                equal = (matrix[one] == matrix[other]).sum(axis=1).astype(np.uint64) << _HALF
                np.maximum.at(best, one, equal | (_LOW32 - other.astype(np.uint64)))
                np.maximum.at(best, other, equal | (_LOW32 - one.astype(np.uint64)))
    found = best != 0
    rows = np.where(found, (_LOW32 - (best & _LOW32)).astype(np.int64), -1)
    equal = np.where(found, (best >> _HALF).astype(np.int64), 0)
    return rows, equal


def keep_previous(
    matrix: Signature, rows: Counts, equal: Counts, previous: Counts
) -> tuple[Counts, Counts]:
    """`nearest`'s answer, but each page keeps its previous nearest (`previous`: its row,
    -1 for none) unless a strictly more similar one was found.

    LSH compares each page with a few bucket-mates, so which ones depends on the pages
    around it: without this, one changed page would give dozens of unrelated pages another,
    equally good, nearest sibling, and a new document. The previous one's similarity is
    computed again from the current signatures, so a sibling that changed is judged as it
    is now.
    """
    rows, equal = rows.copy(), equal.copy()
    had = np.flatnonzero(previous >= 0)
    if len(had):
        again = (matrix[had] == matrix[previous[had]]).sum(axis=1)
        better = (again >= equal[had]) & (again > 0)
        rows[had[better]] = previous[had[better]]
        equal[had[better]] = again[better]
    return rows, equal


def _points(value: float, full: float) -> float:
    return min(1.0, max(0.0, value / full)) if full > 0 else 1.0


def judge(
    signals: Signals,
    similarity: float | None,
    nearest_path: str | None,
    same_titles: int,
    same_descriptions: int,
    rules: QualityRules,
) -> Verdict:
    """Score one page against the site's rules and say why it lost points.

    `similarity` is to its nearest sibling (None: none found), `same_titles` and
    `same_descriptions` count the pages of its family (itself included) whose title or
    description has its key.
    """
    reasons: list[tuple[str, str]] = []
    similarity = similarity or 0.0
    shared = f"{similarity:.0%} of its text is shared with {nearest_path}"
    if similarity >= DUPLICATE:
        reasons.append(("duplicate_content", f"its text is the same as {nearest_path}'s"))
    elif similarity >= rules.near_duplicate:
        reasons.append(("near_duplicate", f"{shared} (limit {rules.near_duplicate:.0%})"))
    elif similarity > FULLY_DISTINCT:
        reasons.append(("similar_content", shared))
    if signals.body_words < rules.thin_body_words:
        reasons.append(
            (
                "thin_content",
                f"{signals.body_words} words of body text (at least {rules.thin_body_words})",
            )
        )
    elif signals.body_words < rules.min_body_words:
        reasons.append(
            (
                "short_content",
                f"{signals.body_words} words of body text ({rules.min_body_words} earn full marks)",
            )
        )
    if signals.data_share < rules.min_unique_data:
        reasons.append(
            (
                "little_unique_data",
                f"{signals.data_share:.0%} of its words come from its own data "
                f"(at least {rules.min_unique_data:.0%})",
            )
        )
    form = 0.0
    if signals.title_length > TITLE_LIMIT:
        reasons.append(
            ("title_too_long", f"title of {signals.title_length} characters (at most 60)")
        )
    else:
        form += 5
    if not DESCRIPTION_MIN <= signals.description_length <= DESCRIPTION_LIMIT:
        reasons.append(
            (
                "description_length",
                f"meta description of {signals.description_length} characters (70 to 160)",
            )
        )
    else:
        form += 5
    uniqueness = 5.0
    if signals.empty_sections:
        reasons.append(("empty_section", f"{signals.empty_sections} section(s) with no text"))
        uniqueness = 0.0
    if same_titles > 1:
        others = same_titles - 1
        reasons.append(("duplicate_title", f"its title is also used by {others} other page(s)"))
        uniqueness = 0.0
    if same_descriptions > 1:
        others = same_descriptions - 1
        reasons.append(
            ("duplicate_description", f"its description is also used by {others} other page(s)")
        )
        uniqueness = 0.0
    score = (
        DISTINCT_POINTS * _points(1.0 - similarity, 1.0 - FULLY_DISTINCT)
        + DATA_POINTS * _points(signals.data_share, FULL_DATA_SHARE)
        + SUBSTANCE_POINTS * _points(signals.body_words, rules.min_body_words)
        + form
        + uniqueness
    )
    score = round(score, 1)
    blocked = any(code in BLOCKING for code, _ in reasons)
    indexable = score >= rules.index_threshold and not blocked
    reasons.sort(key=lambda reason: reason[0] not in BLOCKING)
    if not indexable and not blocked:
        reasons.append(("below_threshold", f"score {score:g} is below {rules.index_threshold:g}"))
    flags = 0
    for code, _ in reasons:
        flags |= BIT[code]
    return Verdict(
        score, indexable, [{"code": code, "message": message} for code, message in reasons], flags
    )
