"""The quality gate: score every page and say why, so thin and near-duplicate pages stay out.

A page's score (0-100) adds four parts:

- distinctiveness (45): how little of its text it shares with its closest sibling (the
  pages of the same service in other locations), after its own entity values (the city,
  region, population and service name) are masked. Text is cut into 5-word shingles and
  each page gets a 64-value MinHash signature; siblings are paired by locality-sensitive
  hashing (16 bands of 4 values) within the family, never all pairs, and the nearest one
  found is kept with its estimated Jaccard similarity (docs/quality.md says why);
- unique data (20): the share of its words that come from its own rows (location,
  service, nearby places, attributes) rather than from template text;
- substance (20): words of body text (intro, sections, FAQ answers);
- form (15): title and description within their limits, no empty section, no title or
  description shared with another page of the family.

Some findings keep a page out of the index whatever its score (`BLOCKING`): an exact or
near duplicate, and thin content. Everything here is deterministic: the same pages give
the same scores, reasons and nearest siblings in every run.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
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
PAIR_CHUNK = 65_536  # pairs compared at once (bounds the memory of a large family)
WINDOW = 2  # bucket-mates compared on each side of a page in each band's sort order
TITLE_LIMIT = 60
DESCRIPTION_MIN = 70
DESCRIPTION_LIMIT = 160
DISTINCT_POINTS, DATA_POINTS, SUBSTANCE_POINTS, FORM_POINTS = 45, 20, 20, 15
FULLY_DISTINCT = 0.5  # a nearest sibling at or below this similarity costs nothing
FULL_DATA_SHARE = 0.25  # a data share at or above this earns every unique-data point
DUPLICATE = 0.999  # estimated similarity treated as the same text

_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_MIX = np.array([0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D, 0x27D4EB2F, 0x165667B1], dtype=np.uint64)
_BIN_SHIFT = np.uint64(64 - PERMUTATIONS.bit_length() + 1)  # the top 6 bits pick the bin
_BIN_STARTS = np.arange(PERMUTATIONS, dtype=np.uint64) << _BIN_SHIFT
_LOW = np.uint64(0xFFFFFFFF)
_EMPTY = np.full(PERMUTATIONS, np.iinfo(np.uint32).max, dtype=np.uint32)
_NORMAL = re.compile(r"[^0-9a-z]+")
MASK = " \x00 "  # what a masked entity value becomes: a token no template writes

Signature = npt.NDArray[np.uint32]


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
    title_key: str  # normalised title and description: duplicates are counted on these
    description_key: str

    @property
    def data_share(self) -> float:
        return self.data_words / self.words if self.words else 0.0


@dataclass(frozen=True)
class Nearest:
    """The closest sibling found and its estimated similarity (Jaccard of shingles)."""

    index: int
    similarity: float


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


def _words(text: str) -> int:
    return len(text.split())


def normalised(text: str) -> str:
    """Lowercase letters and digits only: "Roof Repair | Austin" and "roof repair - austin"
    are the same title."""
    return _NORMAL.sub(" ", text.lower()).strip()


def masked(text: str, entities: Iterable[str]) -> str:
    """The text in lowercase with every entity value replaced by one mask token."""
    lowered = text.lower()
    for value in sorted({e.lower() for e in entities if e}, key=len, reverse=True):
        lowered = lowered.replace(value, MASK)
    return lowered


def data_words(text: str, values: Iterable[str]) -> tuple[int, int]:
    """(words that come from data values, all words) of a text.

    Each value (a city's name, a population, a service's description, a nearby town …)
    is counted wherever it appears whole, longest values first, so that no word counts
    twice; values under three characters are too common to attribute.
    """
    lowered = text.lower()
    total = _words(lowered)
    found = 0
    for value in sorted({v.lower() for v in values if len(v) >= 3}, key=len, reverse=True):
        times = lowered.count(value)
        if times:
            found += times * _words(value)
            lowered = lowered.replace(value, " ")
    return min(found, total), total


def _mixed(values: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64's finaliser: every input bit reaches every output bit."""
    values = (values ^ (values >> _S30)) * _M1
    values = (values ^ (values >> _S27)) * _M2
    mixed: npt.NDArray[np.uint64] = values ^ (values >> _S31)
    return mixed


def signature(text: str) -> Signature:
    """A MinHash signature of the text's 5-word shingles (deterministic across processes).

    One-permutation hashing: each shingle is hashed once to 64 bits; the top bits pick one
    of PERMUTATIONS bins and each bin keeps its least value, which estimates Jaccard
    similarity like PERMUTATIONS separate hash functions at a 64th of the cost. An empty
    bin (a text of few shingles) borrows the value of the next filled bin, circularly
    ("densification"), so that two short unrelated texts do not agree on empty bins.
    """
    words = np.array(list(map(zlib.crc32, text.encode().split())), dtype=np.uint64)
    count = len(words) - SHINGLE_WORDS + 1
    if count <= 0:
        if not len(words):
            return _EMPTY.copy()
        count, words = 1, np.resize(words, SHINGLE_WORDS)  # a short text is one shingle
    shingles = words[:count] * _MIX[0]
    for offset in range(1, SHINGLE_WORDS):
        shingles ^= words[offset : offset + count] * _MIX[offset]
    hashed = np.sort(_mixed(shingles))
    first = np.searchsorted(hashed, _BIN_STARTS)  # the least value of each bin, if any
    filled = np.flatnonzero(
        (first < len(hashed))
        & (
            (hashed[np.minimum(first, len(hashed) - 1)] >> _BIN_SHIFT)
            == np.arange(PERMUTATIONS, dtype=np.uint64)
        )
    )
    # Each bin takes the next filled bin at or after it (circularly).
    take = np.searchsorted(filled, np.arange(PERMUTATIONS)) % len(filled)
    least: Signature = (hashed[first[filled[take]]] & _LOW).astype(np.uint32)
    return least


def _band_keys(matrix: Signature, band: int) -> npt.NDArray[np.uint64]:
    """One 64-bit key per page for a band's ROWS values (equal values, equal keys)."""
    columns = matrix[:, band * ROWS : (band + 1) * ROWS].astype(np.uint64)
    key = np.zeros(len(matrix), dtype=np.uint64)
    for column in range(ROWS):
        key = _mixed(key ^ columns[:, column])
    return key


def nearest_siblings(signatures: Sequence[Signature]) -> list[Nearest | None]:
    """Each page's most similar sibling among those LSH pairs it with (None: no candidate).

    For each band, pages are sorted by the band's values; a page is compared with the
    WINDOW pages on either side that share its band exactly (LSH candidates). Bucket-mates
    of a large bucket are all similar, so a few of them find the nearest closely enough;
    an exact duplicate is always found (it shares every band).
    """
    count = len(signatures)
    if count < 2:
        return [None] * count
    matrix = np.stack(signatures)
    firsts: list[npt.NDArray[np.int64]] = []
    seconds: list[npt.NDArray[np.int64]] = []
    for band in range(BANDS):
        keys = _band_keys(matrix, band)
        order = np.argsort(keys, kind="stable")
        for shift in range(1, WINDOW + 1):
            left, right = order[:-shift], order[shift:]
            same = keys[left] == keys[right]
            firsts.append(left[same])
            seconds.append(right[same])
    first = np.concatenate(firsts)
    second = np.concatenate(seconds)
    if not len(first):
        return [None] * count
    # A pair met in several bands is compared once.
    pairs = np.unique(np.minimum(first, second) * count + np.maximum(first, second))
    first, second = pairs // count, pairs % count
    similarity = np.concatenate(
        [
            (matrix[first[at : at + PAIR_CHUNK]] == matrix[second[at : at + PAIR_CHUNK]]).mean(
                axis=1
            )
            for at in range(0, len(first), PAIR_CHUNK)
        ]
    )
    # Both ends of a pair learn of it; for each page keep the most similar, ties to the
    # lowest index, so that the answer does not depend on the order pairs were found in.
    pages = np.concatenate([first, second])
    others = np.concatenate([second, first])
    scores = np.concatenate([similarity, similarity])
    order = np.lexsort((others, -scores, pages))
    pages, others, scores = pages[order], others[order], scores[order]
    starts = np.flatnonzero(np.r_[True, pages[1:] != pages[:-1]])
    found: list[Nearest | None] = [None] * count
    for start in starts.tolist():
        found[int(pages[start])] = Nearest(int(others[start]), float(scores[start]))
    return found


def _points(value: float, full: float) -> float:
    return min(1.0, max(0.0, value / full)) if full > 0 else 1.0


def judge(
    signals: Signals,
    nearest: Nearest | None,
    nearest_path: str | None,
    titles: Counter[str],
    descriptions: Counter[str],
    rules: QualityRules,
) -> Verdict:
    """Score one page against the site's rules and say why it lost points."""
    reasons: list[tuple[str, str]] = []
    similarity = nearest.similarity if nearest is not None else 0.0
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
    if titles[signals.title_key] > 1:
        others = titles[signals.title_key] - 1
        reasons.append(("duplicate_title", f"its title is also used by {others} other page(s)"))
        uniqueness = 0.0
    if descriptions[signals.description_key] > 1:
        others = descriptions[signals.description_key] - 1
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
