"""Baseline C, a straightforward rendered page: asyncpg `fetchrow` + a Jinja2 render per
request of the product's own page template (`templates/page.html`) with a stock Jinja2
environment, so that both write the same page. Run with uvicorn's defaults:
`uvicorn bench.baselines.async_jinja:app`."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import jinja2
from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse

SITE_ID = int(os.environ.get("SITE_ID", "1"))
TEMPLATES = Path(__file__).resolve().parent.parent.parent / "templates"
pool: asyncpg.Pool | None = None
site: dict[str, Any] = {}
templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, trim_blocks=True, lstrip_blocks=True
)


def numbered(items: Iterable[Any]) -> Iterator[tuple[int, Any]]:
    """The template's one filter of the product's own: items numbered from 1."""
    return enumerate(items, 1)


templates.filters["numbered"] = numbered


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    global pool
    pool = await asyncpg.create_pool(os.environ["DATABASE_URL"])
    site.update(await pool.fetchrow("SELECT * FROM sites WHERE id = $1", SITE_ID) or {})
    yield
    await pool.close()


app = FastAPI(lifespan=lifespan)


@app.get("/{path:path}", response_class=HTMLResponse)
async def page(path: str) -> str:
    assert pool is not None
    row = await pool.fetchrow(
        "SELECT * FROM pages WHERE site_id = $1 AND path = $2 AND deleted_at IS NULL",
        SITE_ID,
        "/" + path,
    )
    if row is None:
        raise HTTPException(status_code=404)
    page = json.loads(row["document"])
    service, location = page["service"]["slug"], page["location"]["slug"]
    return templates.get_template("page.html").render(
        site=site,
        page=page,
        title=page["title"],
        description=page["meta_description"],
        canonical=page["url"],
        indexable=page["indexable"],
        json_url=f"/api/v1/pages/{service}/{location}?site={site['slug']}",
        json_ld=[page["json_ld"]],
        breadcrumbs=page["breadcrumbs"],
    )
