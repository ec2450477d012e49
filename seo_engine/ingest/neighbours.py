"""Nearest locations by great-circle distance, for internal links between nearby pages."""

from __future__ import annotations

import heapq
import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

EARTH_RADIUS_KM = 6371.0088
DEFAULT_COUNT = 8
CELL = 0.02  # cube edge on the unit sphere, about 127 km (fastest on the bundled data)


@dataclass(frozen=True)
class Point:
    id: int
    latitude: float
    longitude: float


def _unit_vector(point: Point) -> tuple[float, float, float]:
    lat, lng = math.radians(point.latitude), math.radians(point.longitude)
    return math.cos(lat) * math.cos(lng), math.cos(lat) * math.sin(lng), math.sin(lat)


def _chord_to_km(chord_squared: float) -> float:
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(chord_squared) / 2))


def distance_km(a: Point, b: Point) -> float:
    """Great-circle distance between two points."""
    (x1, y1, z1), (x2, y2, z2) = _unit_vector(a), _unit_vector(b)
    return _chord_to_km((x1 - x2) ** 2 + (y1 - y2) ** 2 + (z1 - z2) ** 2)


def _shell(cell: tuple[int, int, int], radius: int) -> Iterator[tuple[int, int, int]]:
    """The cells at Chebyshev distance `radius` from `cell`."""
    cx, cy, cz = cell
    for dx in range(-radius, radius + 1):
        for dy in range(-radius, radius + 1):
            if abs(dx) == radius or abs(dy) == radius:
                for dz in range(-radius, radius + 1):
                    yield cx + dx, cy + dy, cz + dz
            else:
                yield cx + dx, cy + dy, cz - radius
                yield cx + dx, cy + dy, cz + radius


def _cell(vector: tuple[float, float, float]) -> tuple[int, int, int]:
    x, y, z = vector
    return math.floor(x / CELL), math.floor(y / CELL), math.floor(z / CELL)


def nearest(
    points: Sequence[Point], count: int = DEFAULT_COUNT
) -> dict[int, list[tuple[int, float]]]:
    """For every point, its `count` nearest other points as (id, km), closest first.

    Points become unit vectors bucketed in a 3-D grid of cubes; shells of cubes are searched
    outwards until no unvisited cube can hold anything closer than the count-th best. Chord
    length on the unit sphere is monotonic in great-circle distance, so it ranks candidates.
    """
    grid: dict[tuple[int, int, int], list[tuple[int, float, float, float]]] = defaultdict(list)
    vectors = {point.id: _unit_vector(point) for point in points}
    for point_id, vector in vectors.items():
        grid[_cell(vector)].append((point_id, *vector))
    wanted = min(count, len(points) - 1)
    result: dict[int, list[tuple[int, float]]] = {}
    for point in points:
        best: list[tuple[float, int]] = []  # max-heap of (-chord², id)
        x, y, z = vector = vectors[point.id]
        home = _cell(vector)
        radius = 0
        while wanted > 0:
            for cell in _shell(home, radius) if radius else [home]:
                for other, ox, oy, oz in grid.get(cell, ()):
                    if other == point.id:
                        continue
                    chord = (x - ox) ** 2 + (y - oy) ** 2 + (z - oz) ** 2
                    if len(best) < wanted:
                        heapq.heappush(best, (-chord, other))
                    elif chord < -best[0][0]:
                        heapq.heapreplace(best, (-chord, other))
            # Cubes in the next shell are at least `radius` whole cubes away.
            if len(best) >= wanted and (radius * CELL) ** 2 >= -best[0][0]:
                break
            radius += 1
        ranked = sorted(best, reverse=True)
        result[point.id] = [(other, _chord_to_km(-negative)) for negative, other in ranked]
    return result
