"""Page building: what a worker keeps of a site."""

from __future__ import annotations

import numpy as np

from seo_engine.generate.pagebuild import Neighbours


def test_neighbours_are_each_locations_run_of_the_arrays_closest_first() -> None:
    neighbours = Neighbours(
        np.array([1, 1, 2], dtype=np.int64),
        np.array([5, 6, 7], dtype=np.int64),
        np.array([1.5, 2.25, 3.5], dtype=np.float32),
    )
    assert neighbours.of(1) == [(5, 1.5), (6, 2.25)]
    assert neighbours.of(2) == [(7, 3.5)]
    assert neighbours.of(3) == []
    empty = np.zeros(0, dtype=np.int64)
    assert Neighbours(empty, empty, empty.astype(np.float32)).of(1) == []
