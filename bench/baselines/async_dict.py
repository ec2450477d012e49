"""Baseline A, the straightforward async way: FastAPI + an asyncpg pool, `SELECT *` by path,
`return dict(row)`. Run with uvicorn's defaults: `uvicorn bench.baselines.async_dict:app`."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import FastAPI, HTTPException

SITE_ID = int(os.environ.get("SITE_ID", "1"))
pool: asyncpg.Pool | None = None


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    global pool
    pool = await asyncpg.create_pool(os.environ["DATABASE_URL"])
    yield
    await pool.close()


app = FastAPI(lifespan=lifespan)


@app.get("/pages/{path:path}")
async def page(path: str) -> dict[str, Any]:
    assert pool is not None
    row = await pool.fetchrow(
        "SELECT * FROM pages WHERE site_id = $1 AND path = $2 AND deleted_at IS NULL",
        SITE_ID,
        "/" + path,
    )
    if row is None:
        raise HTTPException(status_code=404)
    page = dict(row)
    page["content_hash"] = page["content_hash"].hex()  # bytes are not JSON
    page["document"] = page["document"].decode()  # the page's JSON document (UTF-8)
    return page
