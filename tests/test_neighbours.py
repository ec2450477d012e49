from __future__ import annotations

import random

from seo_engine.ingest.neighbours import Point, distance_km, nearest


def brute_force(points: list[Point], point: Point, count: int) -> list[float]:
    ranked = sorted(distance_km(point, other) for other in points if other != point)
    return [round(km, 6) for km in ranked[:count]]


def test_distance_between_two_known_cities() -> None:
    paris = Point(1, 48.85341, 2.3488)
    london = Point(2, 51.50853, -0.12574)
    assert round(distance_km(paris, london)) == 344


def test_nearest_matches_brute_force_everywhere_on_the_globe() -> None:
    generator = random.Random(7)
    points = [
        Point(i, generator.uniform(-89.9, 89.9), generator.uniform(-180, 180)) for i in range(600)
    ]
    # Clusters near a pole and across the antimeridian, where grids usually go wrong.
    points += [Point(1000 + i, 89 - i * 0.01, generator.uniform(-180, 180)) for i in range(20)]
    points += [Point(2000 + i, i * 0.013, 179.95 if i % 2 else -179.95) for i in range(20)]
    found = nearest(points, count=8)
    for point in points:  # compared by distance: equidistant neighbours may come in any order
        assert [round(km, 6) for _, km in found[point.id]] == brute_force(points, point, 8)


def test_distances_are_returned_closest_first() -> None:
    points = [Point(1, 0, 0), Point(2, 0, 1), Point(3, 0, 3), Point(4, 0, 2)]
    found = nearest(points, count=3)
    assert [other for other, _ in found[1]] == [2, 4, 3]
    assert [round(km) for _, km in found[1]] == [111, 222, 334]


def test_fewer_points_than_wanted_gives_every_other_point() -> None:
    found = nearest([Point(1, 10, 10), Point(2, 11, 11)], count=8)
    assert [other for other, _ in found[1]] == [2]
    assert nearest([Point(1, 0, 0)], count=8) == {1: []}
