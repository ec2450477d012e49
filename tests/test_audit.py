"""`seo-engine audit` through the real CLI, over the planted pages of the quality tests."""

from __future__ import annotations

import json
import re
from pathlib import Path

from seo_engine.generate.quality import REASONS
from tests.seeding import SERVICE_HEADER, cli, write
from tests.test_quality import QUALITY_LOCATIONS, QUALITY_SITE, STORY, prose, setup_quality_site


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


def test_audit_html_is_one_self_contained_file(fresh_dsn: str, tmp_path: Path) -> None:
    setup_quality_site(fresh_dsn, tmp_path, prose(23, 40))
    report = tmp_path / "audit.html"
    result = cli(fresh_dsn, "audit", "--html", str(report))
    assert result.exit_code == 0, result.output
    assert f"report written to {report}" in result.stdout
    html = report.read_text()
    # Nothing to fetch: no scripts, stylesheets, images or fonts from anywhere.
    assert re.findall(r"<(?:script|link|img|iframe)\b|url\(|@import", html) == []
    assert re.findall(r"(?:src|href)=", html) == []
    assert html.count("<svg") == 4
    assert "<code>/repair/alpha-xx</code>" in html and "40 words of body text" in html
    assert "1 of 5 live pages pass the quality gate (20%)" in html
    failed = cli(fresh_dsn, "audit", "--html", str(tmp_path / "no" / "such" / "dir.html"))
    assert failed.exit_code == 73 and "No such file or directory" in failed.output


def test_audit_finds_links_to_missing_pages_orphans_and_long_titles(
    fresh_dsn: str, tmp_path: Path
) -> None:
    """One place, two services of one category, only one generated: its page links to the
    other service's page, which does not exist, and no page links to it."""
    site = tmp_path / "quality.toml"
    site.write_text(QUALITY_SITE)
    services = write(
        tmp_path / "s.csv",
        SERVICE_HEADER,
        ["s1,repair,Repair,Home,Fixes.,1", "s2,install,Install,Home,Fits.,1"],
    )
    name = "Llanfairpwllgwyngyll Gogerychwyrndrobwll Llantysiliogogogoch"
    locations = write(
        tmp_path / "l.csv",
        QUALITY_LOCATIONS,
        [f"1,ll-xx,{name},Region,R,US,3000,53.2,-4.2,{STORY}"],
    )
    for args in (
        ("sites", "add", str(site)),
        ("seed", "services", str(services)),
        ("seed", "locations", str(locations)),
        ("generate", "--service", "repair"),
    ):
        assert cli(fresh_dsn, *args).exit_code == 0
    plain = json.loads(cli(fresh_dsn, "audit", "--json").stdout)
    assert plain["links"] is None
    assert plain["over_limits"] == 1
    assert plain["over_limit_pages"] == [
        {
            "path": "/repair/ll-xx",
            "title_length": len(f"Repair in {name}"),
            "description_length": len(
                f"Repair in {name}, Region: local crews, fixed prices, work we stand behind."
            ),
        }
    ]
    result = cli(fresh_dsn, "audit", "--json", "--links")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["links"] == {
        "links": 1,
        "dangling_links": 1,
        "dangling_targets": 1,
        "dangling": [{"target": "/install/ll-xx", "links": 1, "example": "/repair/ll-xx"}],
        "orphans": 1,
        "orphan_paths": ["/repair/ll-xx"],
    }
    text = cli(fresh_dsn, "audit", "--links").stdout
    assert "Internal links: 1 between pages, 1 lead nowhere" in text
    assert "Pages only the hubs link to: 1" in text
    assert "Pages over the length limits (title 60, description 160 characters): 1" in text
