"""The scratch folder of one `generate`: what each step leaves for the steps after it.

A page's document can only be built once it has been compared with every sibling: the
pages of its service in other locations, and the pages of the other services in its
location, which other workers render. So rendering (step 1) keeps, per service, the texts
it rendered (compressed in blocks of pages, about 0.2 KB a page), what the quality gate
read in them and their signatures; comparing (step 2) reads the signatures of every
service for a few locations at a time (memory-mapped) and writes, per service, each page's
nearest in its location; building (step 3) reads one service's texts back in the order
they were written, and its results of step 2. Holding the texts in memory would
take gigabytes at millions of pages, and rendering them again as long as the first time.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from isal import isal_zlib

from seo_engine.generate import quality
from seo_engine.ingest.content import SEPARATOR

BLOCK = struct.Struct("<II")  # pages in the block, compressed bytes
LEVEL = 1  # ISA-L's level 1 keeps a tenth of the text at about 1.5 µs a page
SIGNALS = 8  # quality.Signals' fields, as int64 columns in their order
TITLE_KEY, DESCRIPTION_KEY = 6, 7  # their columns

Signals = npt.NDArray[np.int64]


def signals_row(signals: quality.Signals) -> tuple[int, ...]:
    return (
        signals.body_words,
        signals.data_words,
        signals.words,
        signals.title_length,
        signals.description_length,
        signals.empty_sections,
        signals.title_key,
        signals.description_key,
    )


@dataclass(frozen=True)
class Family:
    """What rendering one service wrote: its rendered pages, in location order."""

    locations: npt.NDArray[np.int64]  # location ids, ascending
    inputs: npt.NDArray[np.void]  # each page's inputs digest (16 bytes)
    signals: Signals  # SIGNALS columns
    signatures: quality.Signature  # memory-mapped when read back


class FamilyWriter:
    """Writes one service's rendered pages, a block at a time."""

    def __init__(self, folder: Path, service_id: int) -> None:
        self.folder = folder
        self.service_id = service_id
        self._texts = (folder / f"{service_id}.texts").open("wb")
        # Numpy blocks, not Python objects: a family of 34,000 pages takes 6 MB, not 20.
        self._locations: list[npt.NDArray[np.int64]] = []
        self._inputs: list[npt.NDArray[np.void]] = []
        self._signals: list[Signals] = []
        self._signatures: list[quality.Signature] = []

    def add_block(
        self,
        locations: list[int],
        inputs: list[bytes],
        texts: list[list[str]],
        signals: list[quality.Signals],
        signatures: quality.Signature,
    ) -> None:
        encoded = [SEPARATOR.join(page).encode() for page in texts]
        lengths = np.array([len(page) for page in encoded], dtype="<u4").tobytes()
        packed = isal_zlib.compress(lengths + b"".join(encoded), level=LEVEL)
        self._texts.write(BLOCK.pack(len(encoded), len(packed)) + packed)
        self._locations.append(np.array(locations, dtype=np.int64))
        self._inputs.append(np.array(inputs, dtype="V16"))
        rows = [signals_row(one) for one in signals]
        self._signals.append(np.array(rows, dtype=np.int64).reshape(-1, SIGNALS))
        self._signatures.append(signatures)

    def close(self) -> None:
        self._texts.close()
        base = self.folder / str(self.service_id)
        np.save(f"{base}.locations.npy", np.concatenate([np.zeros(0, np.int64), *self._locations]))
        np.save(f"{base}.inputs.npy", np.concatenate([np.zeros(0, "V16"), *self._inputs]))
        np.save(f"{base}.signals.npy", np.concatenate([_NO_SIGNALS, *self._signals]))
        np.save(f"{base}.signatures.npy", np.concatenate([_no_signatures(), *self._signatures]))


_NO_SIGNALS = np.zeros((0, SIGNALS), dtype=np.int64)


def _no_signatures() -> quality.Signature:
    return np.zeros((0, quality.PERMUTATIONS), dtype=np.uint16)


def written(folder: Path, service_id: int) -> bool:
    return (folder / f"{service_id}.signatures.npy").exists()


def read_family(folder: Path, service_id: int) -> Family:
    """A service's rendered pages (its signatures memory-mapped)."""
    base = folder / str(service_id)
    return Family(
        np.load(f"{base}.locations.npy"),
        np.load(f"{base}.inputs.npy"),
        np.load(f"{base}.signals.npy"),
        np.load(f"{base}.signatures.npy", mmap_mode="r"),
    )


def read_texts(folder: Path, service_id: int) -> Iterator[list[str]]:
    """A service's rendered texts (each page's blocks), in the order they were written."""
    with (folder / f"{service_id}.texts").open("rb") as stream:
        while header := stream.read(BLOCK.size):
            count, size = BLOCK.unpack(header)
            data = isal_zlib.decompress(stream.read(size))
            lengths = np.frombuffer(data, dtype="<u4", count=count).tolist()
            at = 4 * count
            for length in lengths:
                yield data[at : at + length].decode().split(SEPARATOR)
                at += length


def write_places(
    folder: Path,
    block: int,
    services: npt.NDArray[np.int64],
    locations: npt.NDArray[np.int64],
    nearest: npt.NDArray[np.int64],
    equal: npt.NDArray[np.int64],
) -> list[int]:
    """Step 2's results for one block of locations, a file per service (its locations, the
    nearest service's id or -1, the values shared); returns the services written."""
    written = []
    for service in np.unique(services).tolist():
        mine = services == service
        table = np.stack((locations[mine], nearest[mine], equal[mine]), axis=1)
        np.save(folder / f"places-{service}-{block}.npy", table)
        written.append(service)
    return written


def read_places(folder: Path, service_id: int) -> dict[int, tuple[int | None, int]]:
    """A service's step-2 results: location id -> (nearest service id or None, values shared)."""
    found: dict[int, tuple[int | None, int]] = {}
    for path in sorted(folder.glob(f"places-{service_id}-*.npy")):
        for location, nearest, equal in np.load(path).tolist():
            found[location] = (None if nearest < 0 else nearest, equal)
    return found
