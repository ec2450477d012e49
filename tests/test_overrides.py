"""Overrides: hand edits of generated pages, loaded like the other seed files, applied by
`generate` in order of precedence (pair, service-wide, location-wide, template), and kept
by every later `generate`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.seeding import DATA, cli, fetch, write

HEADER = "service,location,field,value"
EDITS = [
    "roof-repair,*,title,Roof Repair you can trust",
    "*,austin-tx,intro,Austin's hail season runs from March to May.",
    "*,austin-tx,title,Austin: every service",
    "roof-repair,austin-tx,title,Austin Roof Repair since 1998",
    "roof-repair,waco-tx,local_paragraph,Waco's older homes often have cedar shingles.",
    "gutter-cleaning,round-rock-tx,sections 1 body,Round Rock sits on the Brushy Creek.",
    "gutter-cleaning,round-rock-tx,noindex,true",
]


def documents(dsn: str) -> dict[str, dict[str, Any]]:
    rows = fetch(dsn, "SELECT path, document FROM pages WHERE deleted_at IS NULL")
    return {row["path"]: orjson.loads(row["document"]) for row in rows}


def generate(dsn: str) -> str:
    result = cli(dsn, "generate", "--workers", "1")
    assert result.exit_code == 0, result.output
    return result.stdout


def seed(dsn: str, path: Path, *args: str) -> Any:
    return cli(dsn, "seed", "overrides", str(path), *args)


def test_each_level_applies_in_order_of_precedence(site_dsn: str, tmp_path: Path) -> None:
    before = documents(site_dsn)
    result = seed(site_dsn, write(tmp_path / "edits.csv", HEADER, EDITS))
    assert result.exit_code == 0, result.output
    assert "overrides: 7 rows read, 0 rejected; 7 inserted, 0 updated, 0 unchanged" in result.stdout
    assert documents(site_dsn) == before  # the pages change at the next generate
    output = generate(site_dsn)
    # Six pages rendered again; the other two only judged again (their siblings changed).
    assert "2 of 8 pages not rendered" in output
    pages = documents(site_dsn)
    austin = pages["/roof-repair/austin-tx"]
    assert austin["title"] == "Austin Roof Repair since 1998"  # the pair beats both others
    assert austin["intro"] == "Austin's hail season runs from March to May."  # location-wide
    assert austin["overridden"] == ["intro", "title"]
    assert pages["/gutter-cleaning/austin-tx"]["title"] == "Austin: every service"
    waco = pages["/roof-repair/waco-tx"]
    assert waco["title"] == "Roof Repair you can trust"  # service-wide beats the template
    assert waco["local_paragraph"] == "Waco's older homes often have cedar shingles."
    assert waco["intro"] == before["/roof-repair/waco-tx"]["intro"]
    assert waco["overridden"] == ["local_paragraph", "title"]
    round_rock = pages["/gutter-cleaning/round-rock-tx"]
    assert round_rock["sections"][0]["body"] == "Round Rock sits on the Brushy Creek."
    assert round_rock["indexable"] is False
    assert round_rock["quality"]["reasons"][0] == {
        "code": "noindex_override",
        "message": "noindex is set by an override",
    }
    assert round_rock["overridden"] == ["noindex", "sections 1 body"]
    # Pages no override targets say what they said (their quality may change with their
    # siblings').
    text = ("title", "meta_description", "h1", "intro", "sections", "faq")
    for path in ("/gutter-cleaning/waco-tx", "/gutter-cleaning/san-marcos-tx"):
        assert [pages[path][key] for key in text] == [before[path][key] for key in text]
    assert "overridden" not in pages["/gutter-cleaning/waco-tx"]


def test_overrides_survive_regeneration_and_reach_html_and_sitemap(
    site_dsn: str, tmp_path: Path
) -> None:
    assert seed(site_dsn, write(tmp_path / "edits.csv", HEADER, EDITS)).exit_code == 0
    generate(site_dsn)
    edited = documents(site_dsn)
    for _ in range(3):
        output = generate(site_dsn)
        assert "0 inserted, 0 updated, 8 unchanged" in output
    result = cli(site_dsn, "generate", "--workers", "1", "--force")
    assert result.exit_code == 0 and "0 updated, 8 unchanged" in result.stdout
    assert documents(site_dsn) == edited
    asyncio.run(_served(site_dsn))


async def _served(dsn: str) -> None:
    from seo_engine.serve.app import create_app
    from tests.conftest import _client, make_settings

    async for client in _client(create_app(make_settings(dsn))):
        waco = await client.get("/roof-repair/waco-tx")
        assert "<p>Waco&#39;s older homes often have cedar shingles.</p>" in waco.text
        assert "<title>Roof Repair you can trust" in waco.text
        hidden = await client.get("/gutter-cleaning/round-rock-tx")
        assert hidden.headers["x-robots-tag"] == "noindex, follow"
        api = await client.get("/api/v1/pages/gutter-cleaning/round-rock-tx")
        assert api.json()["overridden"] == ["noindex", "sections 1 body"]
        assert "/gutter-cleaning/round-rock-tx" not in await _sitemap_text(client)
        assert "/roof-repair/waco-tx" in await _sitemap_text(client)


async def _sitemap_text(client: httpx.AsyncClient) -> str:
    index = await client.get("/sitemap.xml")
    shards = [part.split("</loc>")[0] for part in index.text.split("<loc>")[1:]]
    texts = [(await client.get(httpx.URL(shard).path)).text for shard in shards]
    return "".join(texts)


def test_a_changed_override_renders_only_its_pages_and_a_pair_can_undo_noindex(
    site_dsn: str, tmp_path: Path
) -> None:
    assert seed(site_dsn, write(tmp_path / "a.csv", HEADER, EDITS)).exit_code == 0
    generate(site_dsn)
    waco = documents(site_dsn)["/gutter-cleaning/waco-tx"]["indexable"]
    changed = [
        *EDITS[:3],
        "roof-repair,austin-tx,title,Austin Roof Repair since 1999",
        *EDITS[4:],
        "gutter-cleaning,*,noindex,true",
        "gutter-cleaning,waco-tx,noindex,false",
    ]
    result = seed(site_dsn, write(tmp_path / "b.csv", HEADER, changed))
    assert "2 inserted, 1 updated, 6 unchanged, 0 removed" in result.stdout, result.output
    output = generate(site_dsn)
    # Rendered: roof repair in Austin, and 3 gutter pages (Round Rock's pair already had
    # noindex: its overrides are the same).
    assert "4 of 8 pages not rendered" in output
    pages = documents(site_dsn)
    assert pages["/roof-repair/austin-tx"]["title"] == "Austin Roof Repair since 1999"
    indexable = {path: page["indexable"] for path, page in pages.items() if "gutter" in path}
    assert indexable == {
        "/gutter-cleaning/austin-tx": False,
        "/gutter-cleaning/round-rock-tx": False,
        "/gutter-cleaning/san-marcos-tx": False,
        "/gutter-cleaning/waco-tx": waco,  # the pair's false undoes the service's true
    }
    assert "noindex" not in pages["/gutter-cleaning/waco-tx"].get("overridden", [])
    # --prune with only the first edit removes the others: the pages go back to the template.
    result = seed(site_dsn, write(tmp_path / "c.csv", HEADER, EDITS[:1]), "--prune")
    assert "0 inserted, 0 updated, 1 unchanged, 8 removed" in result.stdout, result.output
    generate(site_dsn)
    pages = documents(site_dsn)
    assert pages["/roof-repair/austin-tx"]["title"] == "Roof Repair you can trust"
    assert all(page["indexable"] for page in pages.values())


def test_bad_rows_are_named_by_line_and_nothing_is_loaded(site_dsn: str, tmp_path: Path) -> None:
    rows = [
        "roof-repair,austin-tx,title,Fine",
        "roof-repair,austin-tx,titel,Typo",
        "*,*,title,Everything",
        "plumbing,austin-tx,title,No such service",
        "roof-repair,dallas-tx,title,No such location",
        "roof-repair,austin-tx,noindex,maybe",
        "roof-repair,austin-tx,sections 4 body,No fourth section",
        "roof-repair,austin-tx,title,Again",
        "Roof Repair,austin-tx,h1,Not a slug",
    ]
    path = write(tmp_path / "bad.csv", HEADER, rows)
    result = seed(site_dsn, path)
    assert result.exit_code != 0
    assert result.stderr.splitlines()[:-1] == [
        "  line 3: field: 'titel' is not a field of this site's pages (did you mean 'title'?)",
        "  line 4: service and location are both *: change the template instead",
        "  line 7: value: noindex must be true or false, not 'maybe'",
        "  line 8: field: 'sections 4 body' is not a field of this site's pages "
        "(did you mean 'sections 1 body'?)",
        "  line 10: service: 'Roof Repair' must be a service slug or * (every service)",
        "  line 5: service: 'plumbing' is not a service of site 'testsite'",
        "  line 6: location: 'dallas-tx' is not a location of site 'testsite'",
        "  line 9: title of roof-repair in austin-tx is set again (first on line 2)",
    ]
    assert fetch(site_dsn, "SELECT count(*) FROM overrides")[0][0] == 0
    header = write(tmp_path / "header.csv", "service,location,field,value,attr_x", [])
    refused = seed(site_dsn, header)
    assert refused.exit_code != 0 and "unexpected: attr_x" in refused.stderr
    dry = seed(site_dsn, write(tmp_path / "ok.csv", HEADER, EDITS), "--dry-run")
    assert "7 inserted" in dry.stdout and "(dry run: nothing written)" in dry.stdout
    assert fetch(site_dsn, "SELECT count(*) FROM overrides")[0][0] == 0


def test_template_changes_under_overrides_are_reported_until_reviewed(
    site_dsn: str, tmp_path: Path
) -> None:
    title = documents(site_dsn)["/gutter-cleaning/austin-tx"]["title"]
    assert seed(site_dsn, write(tmp_path / "edits.csv", HEADER, EDITS)).exit_code == 0
    assert "overridden field" not in generate(site_dsn)
    quiet = cli(site_dsn, "overrides", "stale")
    assert (
        quiet.stdout == "no overridden field's template text changed since its override was set\n"
    )
    site_file = (DATA / "site.toml").read_text()
    old_title = next(line for line in site_file.splitlines() if line.startswith("title ="))
    edited = site_file.replace(old_title, 'title = "{{ service.name }} around {{ location.name }}"')
    (tmp_path / "site.toml").write_text(edited)
    assert cli(site_dsn, "sites", "add", str(tmp_path / "site.toml")).exit_code == 0
    output = generate(site_dsn)
    # Titles overridden: the 4 roof repair pages (service-wide, Austin's by its pair) and
    # gutter cleaning in Austin (location-wide); intros and bodies kept their template text.
    assert "5 overridden field(s) whose template text changed since the override was set" in output
    listed = cli(site_dsn, "overrides", "stale", "--location", "austin-tx")
    assert listed.stdout.splitlines()[:4] == [
        "/gutter-cleaning/austin-tx  title",
        f"  template then: {title}",
        "  template now:  Gutter Cleaning around Austin",
        "  override:      Austin: every service",
    ]
    accepted = cli(site_dsn, "overrides", "stale", "--service", "roof-repair", "--accept")
    assert accepted.stdout.endswith("4 field(s) marked reviewed\n")
    rows = [
        orjson.loads(line)
        for line in cli(site_dsn, "overrides", "stale", "--json").stdout.splitlines()
    ]
    assert [(row["path"], row["field"]) for row in rows] == [
        ("/gutter-cleaning/austin-tx", "title")
    ]
    # Nothing rendered: the report still counts the field not yet reviewed.
    assert "1 overridden field(s) whose template text changed" in generate(site_dsn)
    listed = cli(site_dsn, "overrides", "list")
    assert (
        listed.stdout.splitlines()[0]
        == "*\taustin-tx\tintro\tAustin's hail season runs from March to May."
    )
