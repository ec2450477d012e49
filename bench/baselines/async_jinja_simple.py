"""Baseline C as it was until 2026-12-02, for information: asyncpg `fetchrow` + a Jinja2
render per request of a simplified page (`simple_page.html`: no stylesheet, structured
data, breadcrumbs or social tags; 3.4 KB against the product's 7.7 KB). Run with
uvicorn's defaults: `uvicorn bench.baselines.async_jinja_simple:app`."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import jinja2
from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse

SITE_ID = int(os.environ.get("SITE_ID", "1"))
pool: asyncpg.Pool | None = None
templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent), autoescape=True
)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    global pool
    pool = await asyncpg.create_pool(os.environ["DATABASE_URL"])
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
    return templates.get_template("simple_page.html").render(page=json.loads(row["document"]))
