"""A seed file of over 200 MB with bad rows at known lines: strict mode loads nothing,
reports exactly those lines, and the CLI's memory stays flat (it streams)."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from tests.seeding import LOCATION_HEADER, LOCATIONS, cli, fetch, write

pytestmark = pytest.mark.faults

ROWS = 215_000
NOTE = "n" * 950  # an attribute that makes each row about 1 KB
PEAK_RSS_LIMIT_MB = 300
EXIT_DATA = 65
SAMPLE_SECONDS = 0.02
TIMEOUT_SECONDS = 300


def good_row(number: int) -> str:
    return f"k{number},city-{number},City {number},Texas,TX,US,{number},30.1,-97.7,,{NOTE}"


# line number -> (bad row, the reason the report must give for that line)
PLANTED = {
    2: ("k0,city-0,City 0,Texas,TX,US,0,123.4,-97.7,,x", "line 2: latitude"),
    50_001: ("k49999,city-49999,City,Texas,TX,US,-5,30,-97,,x", "line 50001: population"),
    123_457: ("k123455,Bad Slug,City,Texas,TX,US,5,30,-97,,x", "line 123457: slug"),
    160_000: (
        good_row(1).replace("city-1,", "city-dup,"),
        "line 160000: duplicate key 'k1' (first on line 3)",
    ),
    ROWS + 1: ("k-last,city-last,Last", "line 215001:"),
}


def run_measured(
    command: list[str], env: dict[str, str]
) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run the real CLI; sample its resident memory (its own, after exec) while it runs.

    (`ru_maxrss` would not do: Linux keeps it across exec, so a child forked from a large
    pytest process would report pytest's size.)
    """
    peak = 0
    with subprocess.Popen(
        command,
        env=env,
        cwd=Path(__file__).parent.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        watched = psutil.Process(process.pid)
        outputs: list[str] = []
        reader = threading.Thread(target=lambda: outputs.extend(process.communicate()))
        reader.start()
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while reader.is_alive():
            if time.monotonic() > deadline:
                process.kill()
                raise AssertionError(f"the CLI ran longer than {TIMEOUT_SECONDS} s")
            with contextlib.suppress(psutil.Error):
                peak = max(peak, watched.memory_info().rss)
            reader.join(SAMPLE_SECONDS)
    stdout, stderr = outputs
    completed = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    return peak / (1024 * 1024), completed


def write_large_file(path: Path) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write(LOCATION_HEADER + ",attr_notes\n")
        for line in range(2, ROWS + 2):
            planted = PLANTED.get(line)
            out.write((planted[0] if planted else good_row(line - 2)) + "\n")


def test_a_200_mb_file_with_planted_bad_rows_loads_nothing(fresh_dsn: str, tmp_path: Path) -> None:
    from tests.seeding import DATA

    assert cli(fresh_dsn, "sites", "add", str(DATA / "site.toml")).exit_code == 0
    existing = write(tmp_path / "existing.csv", LOCATION_HEADER, LOCATIONS)
    assert cli(fresh_dsn, "seed", "locations", str(existing)).exit_code == 0
    before = fetch(fresh_dsn, "SELECT * FROM locations ORDER BY id")
    large = tmp_path / "large.csv"
    write_large_file(large)
    assert large.stat().st_size >= 200 * 1024 * 1024

    command = [sys.executable, "-m", "seo_engine", "seed", "locations", str(large), "--prune"]
    peak_mb, result = run_measured(command, {**os.environ, "DATABASE_URL": fresh_dsn})

    assert result.returncode == EXIT_DATA, result.stderr[-2000:]
    reported = sorted(int(n) for n in re.findall(r"^\s*line (\d+):", result.stderr, re.M))
    assert reported == sorted(PLANTED), result.stderr[-2000:]
    for _, reason in PLANTED.values():
        assert reason in result.stderr
    assert "nothing was loaded" in result.stderr
    assert fetch(fresh_dsn, "SELECT * FROM locations ORDER BY id") == before
    print(f"peak RSS {peak_mb:.0f} MB")
    assert peak_mb < PEAK_RSS_LIMIT_MB, f"peak RSS {peak_mb:.0f} MB"
