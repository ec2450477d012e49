"""`seo-engine audit` through the real CLI, over the planted pages of the quality tests."""

from __future__ import annotations

import json
from pathlib import Path

from seo_engine.generate.quality import REASONS
from tests.seeding import cli
from tests.test_quality import prose, setup_quality_site


def test_audit_json_reports_the_stored_verdicts(fresh_dsn: str, tmp_path: Path) -> None:
    setup_quality_site(fresh_dsn, tmp_path, prose(23, 40))
    result = cli(fresh_dsn, "audit", "--json", "--limit", "3")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["schema_version"] == 1
    assert (report["site"], report["pages"], report["passing"]) == ("qualitysite", 5, 1)
    assert sum(report["histogram"]) == 5 and len(report["histogram"]) == 10
    assert set(report["reasons"]) == {reason.code for reason in REASONS}
    assert report["reasons"]["duplicate_content"] == 2
    assert report["reasons"]["near_duplicate"] == 1
    assert report["reasons"]["thin_content"] == 1
    assert report["families"] == [
        {
            "service": "repair",
            "pages": 5,
            "passing": 1,
            "mean_score": report["families"][0]["mean_score"],
        }
    ]
    assert len(report["regions"]) == 3 and report["regions"][0]["passing"] == 0
    pairs = report["nearest_pairs"]
    assert pairs[0] == {
        "path": "/repair/alpha-xx",
        "nearest_path": "/repair/bravo-xx",
        "similarity": 1.0,
    }
    assert len({frozenset((p["path"], p["nearest_path"])) for p in pairs}) == len(pairs)
    worst = report["worst_pages"]
    assert [page["score"] for page in worst] == sorted(page["score"] for page in worst)
    assert all(page["reasons"] for page in worst)
    # Every page has the same title pattern with its own city: no duplicates.
    assert (report["duplicate_title_groups"], report["duplicate_titles"]) == (0, [])


def test_audit_prints_a_summary_for_a_person(fresh_dsn: str, tmp_path: Path) -> None:
    setup_quality_site(fresh_dsn, tmp_path, prose(23, 40))
    result = cli(fresh_dsn, "audit")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "qualitysite: 1 of 5 live pages pass the quality gate (20%)" in text
    assert "duplicate_content" in text and "thin_content" in text
    assert "40 words of body text (at least 100)" in text
    assert "Duplicate titles: none" in text


def test_audit_of_an_unknown_site_is_a_clear_error(fresh_dsn: str, tmp_path: Path) -> None:
    setup_quality_site(fresh_dsn, tmp_path, prose(23, 40))
    result = cli(fresh_dsn, "audit", "--site", "nosuchsite")
    assert result.exit_code == 65
    assert "nosuchsite" in result.output and "Traceback" not in result.output
