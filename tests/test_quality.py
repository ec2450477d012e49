"""The quality gate: its similarity method on its own, then through the real generate,
the API, the HTML pages and the sitemaps, with pages planted to be duplicates, near
duplicates, thin or distinct."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import numpy as np
import pytest

from seo_engine.generate import quality
from seo_engine.ingest.sites import QualityRules
from seo_engine.serve.app import create_app
from tests.conftest import _client, make_settings
from tests.seeding import SERVICE_HEADER, cli, fetch, write

RULES = QualityRules()  # the documented defaults


def prose(seed: int, words: int) -> str:
    """Made-up words in sentences: texts with different seeds share no 5-word run."""
    chooser = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    made = ["".join(chooser.choices(letters, k=chooser.randint(3, 9))) for _ in range(words)]
    return " ".join(f"{word}." if number % 12 == 11 else word for number, word in enumerate(made))


def signals(body_words: int = 400, data_share: float = 0.3) -> quality.Signals:
    return quality.Signals(
        body_words=body_words,
        data_words=round(1000 * data_share),
        words=1000,
        title_length=40,
        description_length=120,
        empty_sections=0,
        title_key=quality.text_key("t"),
        description_key=quality.text_key("t"),
    )


def codes(verdict: quality.Verdict) -> list[str]:
    return [reason["code"] for reason in verdict.reasons]


# --- the method on its own ---


def test_signatures_are_deterministic_and_estimate_jaccard() -> None:
    text = prose(1, 400)
    assert (quality.signature(text) == quality.signature(text)).all()
    assert (quality.signature(prose(1, 400)) == quality.signature(text)).all()
    words = text.split()
    # The first 300 words against all 400: 296 of 396 shingles shared, J = 0.75.
    first = quality.signature(" ".join(words[:300]))
    estimate = float((first == quality.signature(text)).mean())
    assert 0.6 <= estimate <= 0.9, estimate
    assert float((quality.signature(prose(2, 400)) == quality.signature(text)).mean()) < 0.1


def test_masking_makes_pages_that_differ_only_in_their_city_the_same() -> None:
    body = prose(3, 200)
    austin = quality.signature(f"Roof repair in Austin. {body} Call Austin today.", ["Austin"])
    waco = quality.signature(f"Roof repair in Waco. {body} Call Waco today.", ["Waco"])
    marcos = quality.signature(
        f"Roof repair in San Marcos. {body} Call San Marcos today.", ["San Marcos"]
    )
    assert (austin == waco).all() and (austin == marcos).all()  # a masked run is one mask
    unmasked = quality.signature(f"Roof repair in Waco. {body} Call Waco today.")
    assert not (unmasked == austin).all()


def hashes(*words: str) -> list[int]:
    """Each word's hash as the gate cuts it alone."""
    return [int(quality.cut([word.encode()])[0][0]) for word in words]


def test_words_flag_data_and_mask_entities_but_not_template_words() -> None:
    reader = quality.WordReader("Roof repair in {{ city }}. Call today, new roofs")
    masked = reader.values(["New Braunfels"])  # "new" is a template word: kept
    data = reader.values(["12,500", "Seguin"])
    assert masked.tolist() == hashes("braunfels")
    assert data.tolist() == sorted(hashes("12", "500", "seguin"))
    text = "Roof repair in New Braunfels. 12,500 people; near Seguin"
    words = reader.read([text, text], [[masked], []], [[data], []])
    assert words.counts.tolist() == [10, 10]
    assert words.data.tolist() == [4, 0]  # braunfels, 12, 500, seguin; none for the other
    assert int(words.hashes[4]) == quality.MASK  # the first page's own name
    assert int(words.hashes[14]) == hashes("braunfels")[0]  # the second page's: a word


def test_words_are_cut_at_punctuation_and_dashes_and_folded_to_lowercase() -> None:
    text = "Roof REPAIR: $100\u2013$350 in Sa\u2018\u012bd\u0101b\u0101d"
    words, counts = quality.cut([text.encode(), b"", b"two words"])
    expected = hashes("roof", "repair", "100", "350", "in", "sa\u2018\u012bd\u0101b\u0101d")
    assert words.tolist() == [*expected, *hashes("two", "words")]
    assert counts.tolist() == [6, 0, 2]


def test_words_of_a_batch_longer_than_one_cut_equal_each_text_cut_alone() -> None:
    # Texts are cut about CUT_BYTES at a time; one longer than that is cut alone.
    texts = [prose(seed, 400).encode() for seed in range(120)]
    texts.insert(7, (prose(99, 30000) + " Zz–top").encode())
    assert sum(len(text) for text in texts) > 2 * quality.CUT_BYTES
    assert len(texts[7]) > quality.CUT_BYTES
    words, counts = quality.cut(texts)
    alone = [quality.cut([text]) for text in texts]
    assert counts.tolist() == [int(count[0]) for _, count in alone]
    assert words.tolist() == [word for hashed, _ in alone for word in hashed.tolist()]
    assert words[-(len(alone[-1][0])) :].tolist() == alone[-1][0].tolist()


def test_signatures_of_many_pages_at_once_equal_each_alone() -> None:
    reader = quality.WordReader()
    texts = [prose(11, 250), "", "two words", prose(12, 40) + " Austin Austin", prose(13, 400)]
    entities = reader.values(["Austin"])
    together = quality.signatures(reader.read(texts, [[entities]] * 5, [[]] * 5))
    for row, text in zip(together, texts, strict=True):
        alone = quality.signatures(reader.read([text], [[entities]], [[]]))[0]
        assert (row == alone).all()
    assert (together[1] == np.iinfo(np.uint16).max).all()  # an empty text


def test_nearest_pairs_duplicates_and_near_duplicates_only() -> None:
    base = prose(4, 300)
    texts = [
        base,  # 0
        base,  # 1: the same text as 0
        base + " " + prose(5, 30),  # 2: 0's text and a little more
        prose(6, 300),  # 3: a text of its own
        prose(7, 300),  # 4: another
    ]
    rows, equal = quality.nearest(np.array([quality.signature(text) for text in texts]))
    assert rows.tolist()[:2] == [1, 0] and equal.tolist()[:2] == [64, 64]  # ties: lowest row
    assert rows[2] == 0 and 0.8 <= equal[2] / quality.PERMUTATIONS < 1.0
    assert rows.tolist()[3:] == [-1, -1] and equal.tolist()[3:] == [0, 0]
    one = quality.nearest(np.array([quality.signature(base)]))
    assert (one[0].tolist(), one[1].tolist()) == ([-1], [0])


def test_nearest_pairs_pages_of_the_same_group_only() -> None:
    base, other = prose(4, 300), prose(6, 300)
    matrix = np.array([quality.signature(text) for text in (base, base, other, other, base)])
    rows, _ = quality.nearest(matrix, np.array([1, 2, 1, 2, 2]))
    # 0 has no copy in group 1; 1 and 4 are copies in group 2; 3 has none there.
    assert rows.tolist() == [-1, 4, -1, -1, 1]


def test_nearest_does_not_depend_on_the_order_of_pages() -> None:
    texts = [prose(8, 200)] * 3 + [prose(9, 200) + " " + prose(10, 20), prose(9, 200)]
    forward = quality.nearest(np.array([quality.signature(text) for text in texts]))
    backward = quality.nearest(np.array([quality.signature(text) for text in reversed(texts)]))
    last = len(texts) - 1
    for index in range(len(texts)):
        mirrored = last - index
        assert forward[1][index] == backward[1][mirrored]
        assert texts[forward[0][index]] == texts[last - backward[0][mirrored]]


def test_a_distinct_full_page_scores_every_point_and_is_indexable() -> None:
    verdict = quality.judge(signals(), None, None, 1, 1, RULES)
    assert (verdict.score, verdict.indexable, verdict.reasons, verdict.flags) == (
        100.0,
        True,
        [],
        0,
    )


def test_duplicates_and_thin_pages_are_kept_out_whatever_their_score() -> None:
    same = quality.judge(signals(), 1.0, "/a/b", 1, 1, RULES)
    assert codes(same) == ["duplicate_content"] and not same.indexable
    assert same.reasons[0]["message"] == "its text is the same as /a/b's"
    assert same.score == 55.0  # every point but distinctiveness: blocked all the same
    near = quality.judge(signals(), 0.85, "/a/b", 1, 1, RULES)
    assert codes(near) == ["near_duplicate"] and not near.indexable
    assert near.reasons[0]["message"] == "85% of its text is shared with /a/b (limit 80%)"
    thin = quality.judge(signals(body_words=50), None, None, 1, 1, RULES)
    assert codes(thin) == ["thin_content"] and not thin.indexable
    assert thin.flags == quality.BIT["thin_content"]


def test_lesser_findings_cost_points_and_the_threshold_decides() -> None:
    verdict = quality.judge(signals(body_words=150, data_share=0.02), 0.65, "/x/y", 3, 3, RULES)
    assert codes(verdict) == [
        "similar_content",
        "short_content",
        "little_unique_data",
        "duplicate_title",
        "duplicate_description",
        "below_threshold",
    ]
    # 45 * 0.7 + 20 * 0.08 + 20 * 0.5 + 10 (lengths) + 0 (uniqueness)
    assert verdict.score == 53.1 and not verdict.indexable
    assert verdict.reasons[-1]["message"] == "score 53.1 is below 60"
    assert verdict.reasons[3]["message"] == "its title is also used by 2 other page(s)"
    assert verdict.flags == sum(quality.BIT[code] for code in codes(verdict))
    lenient = QualityRules(index_threshold=50)
    assert quality.judge(
        signals(body_words=150, data_share=0.02), 0.65, "/x/y", 3, 3, lenient
    ).indexable


def test_reason_codes_are_a_fixed_list_of_bits() -> None:
    assert len({reason.code for reason in quality.REASONS}) == len(quality.REASONS) <= 31
    blocking = {"duplicate_content", "near_duplicate", "thin_content", "noindex_override"}
    assert blocking == quality.BLOCKING


# --- through generate, the API, the pages and the sitemaps ---

QUALITY_SITE = """\
slug = "qualitysite"
name = "Quality Pros"
base_url = "https://quality.example"

[generate]
nearby_radius_km = 1

[quality]
min_body_words = 200
thin_body_words = 100

[content]
title = "{{ service.name }} in {{ location.name }}"
meta_description = \"\"\"{{ service.name }} in {{ location.name }}, {{ location.region_name }}: \
  local crews, fixed prices, work we stand behind.\"\"\"
h1 = "{{ service.name }} in {{ location.name }}"
intro = "{{ location.attributes.story }}"
"""
QUALITY_LOCATIONS = (
    "key,slug,name,region_name,region_code,country_code,population,latitude,longitude,attr_story"
)
STORY = prose(20, 220)


def quality_locations(thin_story: str) -> list[str]:
    """Far apart, so that no page lists another as nearby; each with its own story."""
    rows = {
        # same text as bravo, once each page's own name is masked
        "alpha": f"Alpha {STORY} Alpha",
        "bravo": f"Bravo {STORY} Bravo",
        # alpha's text and a little more
        "charlie": f"Charlie {STORY} {prose(21, 15)}",
        "delta": thin_story,
        "echo": prose(22, 220),
    }
    return [
        f"{number},{slug}-xx,{slug.title()},Region {number},R{number},US,{1000 * number},"
        f"{10 * number},{10 * number},{story}"
        for number, (slug, story) in enumerate(rows.items(), 1)
    ]


def setup_quality_site(dsn: str, tmp_path: Path, thin_story: str) -> None:
    site = tmp_path / "quality.toml"
    site.write_text(QUALITY_SITE)
    services = write(tmp_path / "s.csv", SERVICE_HEADER, ["s1,repair,Repair,Home,Fixes.,1"])
    locations = write(tmp_path / "l.csv", QUALITY_LOCATIONS, quality_locations(thin_story))
    for args in (
        ("sites", "add", str(site)),
        ("seed", "services", str(services)),
        ("seed", "locations", str(locations)),
        ("generate", "--workers", "1"),
    ):
        result = cli(dsn, *args)
        assert result.exit_code == 0, result.output


def stored(dsn: str) -> dict[str, dict[str, object]]:
    rows = fetch(
        dsn,
        """SELECT p.path, p.indexable, p.quality_score, p.quality_flags, p.nearest_similarity,
                  l.slug AS nearest, p.updated_at, p.document
           FROM pages p LEFT JOIN locations l ON l.id = p.nearest_location_id""",
    )
    return {
        row["path"].split("/")[-1].removesuffix("-xx"): {
            **dict(row),
            "quality": json.loads(row["document"])["quality"],
        }
        for row in rows
    }


async def test_generate_scores_planted_pages_and_serving_follows_the_verdict(
    fresh_dsn: str, tmp_path: Path
) -> None:
    await asyncio.to_thread(setup_quality_site, fresh_dsn, tmp_path, prose(23, 40))
    pages = await asyncio.to_thread(stored, fresh_dsn)
    verdicts = {slug: page["quality"] for slug, page in pages.items()}
    first_code = {
        slug: verdict["reasons"][0]["code"]
        for slug, verdict in verdicts.items()
        if verdict["reasons"]
    }
    assert first_code == {
        "alpha": "duplicate_content",
        "bravo": "duplicate_content",
        "charlie": "near_duplicate",
        "delta": "thin_content",
    }
    assert {slug for slug, page in pages.items() if page["indexable"]} == {"echo"}
    assert (pages["alpha"]["nearest"], pages["bravo"]["nearest"]) == ("bravo-xx", "alpha-xx")
    assert pages["charlie"]["nearest"] in ("alpha-xx", "bravo-xx")
    assert 0.8 <= float(str(pages["charlie"]["nearest_similarity"])) < 1.0
    assert verdicts["alpha"]["nearest"] == {"path": "/repair/bravo-xx", "similarity": 1.0}
    for slug, page in pages.items():
        assert page["quality_score"] == pytest.approx(verdicts[slug]["score"], abs=1e-4)
        assert page["quality_flags"] == sum(
            quality.BIT[r["code"]] for r in verdicts[slug]["reasons"]
        )

    async for client in _client(create_app(make_settings(fresh_dsn))):
        document = (await client.get("/api/v1/pages/repair/delta-xx?site=qualitysite")).json()
        assert document["indexable"] is False
        assert document["quality"]["reasons"][0] == {
            "code": "thin_content",
            "message": "40 words of body text (at least 100)",
        }
        listed = (await client.get("/api/v1/pages?site=qualitysite&indexable=false")).json()
        assert len(listed["items"]) == 4
        html = await client.get("/repair/alpha-xx")
        assert html.headers["x-robots-tag"] == "noindex, follow"
        assert '<meta name="robots" content="noindex,follow">' in html.text
        assert "x-robots-tag" not in (await client.get("/repair/echo-xx")).headers
        sitemap = (await client.get("/sitemap-pages-1.xml")).text
        assert "https://quality.example/repair/echo-xx" in sitemap
        assert "alpha-xx" not in sitemap and "delta-xx" not in sitemap


def test_a_page_that_improves_is_readmitted_as_a_change(fresh_dsn: str, tmp_path: Path) -> None:
    setup_quality_site(fresh_dsn, tmp_path, thin_story=prose(23, 40))
    before = stored(fresh_dsn)
    assert not before["delta"]["indexable"]
    rows = quality_locations(prose(24, 220))
    locations = write(tmp_path / "better.csv", QUALITY_LOCATIONS, rows)
    assert cli(fresh_dsn, "seed", "locations", str(locations)).exit_code == 0
    result = cli(fresh_dsn, "generate", "--workers", "1")
    assert result.exit_code == 0, result.output
    assert "0 inserted, 1 updated, 4 unchanged" in result.stdout, result.stdout
    after = stored(fresh_dsn)
    assert after["delta"]["indexable"] and after["delta"]["quality_flags"] == 0
    assert after["delta"]["updated_at"] > before["delta"]["updated_at"]  # type: ignore[operator]
    assert after["echo"]["updated_at"] == before["echo"]["updated_at"]


def test_the_bundled_site_file_keeps_the_documented_defaults() -> None:
    bundled = (Path(__file__).parent.parent / "seeds" / "site.toml").read_text()
    for name in ("index_threshold", "near_duplicate", "min_body_words", "thin_body_words"):
        value = getattr(RULES, name)
        assert f"{name} = {value:g}" in bundled, name
    assert f"min_unique_data = {RULES.min_unique_data:g}" in bundled


def test_a_page_whose_sibling_changed_is_judged_again_without_being_rendered(
    fresh_dsn: str, tmp_path: Path
) -> None:
    setup_quality_site(fresh_dsn, tmp_path, thin_story=prose(23, 40))
    before = stored(fresh_dsn)
    assert before["alpha"]["quality"]["reasons"][0]["code"] == "duplicate_content"
    rows = quality_locations(prose(23, 40))
    rows[1] = rows[1].replace(f"Bravo {STORY} Bravo", prose(25, 220))
    locations = write(tmp_path / "bravo.csv", QUALITY_LOCATIONS, rows)
    assert cli(fresh_dsn, "seed", "locations", str(locations)).exit_code == 0
    result = cli(fresh_dsn, "generate", "--workers", "1")
    assert result.exit_code == 0, result.output
    assert "4 of 5 pages not rendered" in result.stdout  # only bravo's text changed
    after = stored(fresh_dsn)
    # Alpha's copy is gone; charlie, alpha's text and a little more, is now its nearest.
    assert after["alpha"]["quality"]["reasons"][0]["code"] == "near_duplicate"
    assert after["alpha"]["nearest"] == "charlie-xx"
    assert after["alpha"]["updated_at"] > before["alpha"]["updated_at"]  # type: ignore[operator]
    assert after["echo"]["updated_at"] == before["echo"]["updated_at"]


def test_pages_of_two_services_in_one_place_are_compared(fresh_dsn: str, tmp_path: Path) -> None:
    site = tmp_path / "quality.toml"
    site.write_text(QUALITY_SITE)
    services = write(
        tmp_path / "s.csv",
        SERVICE_HEADER,
        ["s1,repair,Repair,Home,Fixes.,1", "s2,cleaning,Cleaning,Home,Cleans.,2"],
    )
    locations = write(tmp_path / "l.csv", QUALITY_LOCATIONS, quality_locations(prose(23, 40)))
    for args in (
        ("sites", "add", str(site)),
        ("seed", "services", str(services)),
        ("seed", "locations", str(locations)),
        ("generate", "--workers", "2"),
    ):
        result = cli(fresh_dsn, *args)
        assert result.exit_code == 0, result.output
    # Echo's two pages say the same once each page's own service name is masked: no other
    # place has echo's text, but its other service's page in echo does.
    rows = fetch(
        fresh_dsn,
        """SELECT p.path, p.document, s.slug AS near_service, l.slug AS near_location
           FROM pages p JOIN services s ON s.id = p.nearest_service_id
           JOIN locations l ON l.id = p.nearest_location_id
           WHERE p.path LIKE '%/echo-xx' ORDER BY p.path""",
    )
    assert [(r["path"], r["near_service"], r["near_location"]) for r in rows] == [
        ("/cleaning/echo-xx", "repair", "echo-xx"),
        ("/repair/echo-xx", "cleaning", "echo-xx"),
    ]
    verdict = json.loads(rows[1]["document"])["quality"]
    assert verdict["reasons"][0] == {
        "code": "duplicate_content",
        "message": "its text is the same as /cleaning/echo-xx's",
    }
    assert verdict["nearest"] == {"path": "/cleaning/echo-xx", "similarity": 1.0}
    assert not verdict["indexable"]


def test_a_page_keeps_its_previous_nearest_unless_a_closer_one_is_found() -> None:
    base = prose(30, 300)
    texts = [base, base, base, base + " " + prose(31, 40), prose(32, 300)]
    matrix = np.array([quality.signature(text) for text in texts])
    rows, equal = quality.nearest(matrix)
    assert rows[0] == 1  # three copies: the lowest row of the others
    # 0's previous nearest was 2, an equal copy: kept. 3's was 4, no match at all: dropped.
    # 4's was 3, sharing nothing: LSH's answer (none) stands.
    previous = np.array([2, -1, -1, 4, 3])
    kept, shared = quality.keep_previous(matrix, rows, equal, previous)
    assert kept.tolist() == [2, *rows.tolist()[1:]]
    assert shared.tolist() == [64, *equal.tolist()[1:]]
    # A previous nearest less similar than what LSH found gives way.
    worse = quality.keep_previous(matrix, rows, equal, np.array([3, -1, -1, -1, -1]))
    assert worse[0].tolist() == rows.tolist()
