"""Baseline B, the synchronous ORM way: a sync FastAPI endpoint, SQLAlchemy 2 ORM, psycopg2.
Run with uvicorn's defaults: `uvicorn bench.baselines.sync_orm:app`."""

from __future__ import annotations

import datetime
import os
from typing import Any

from fastapi import FastAPI, HTTPException
from sqlalchemy import create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column


class Base(DeclarativeBase):
    pass


class Page(Base):
    __tablename__ = "pages"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int]
    service_id: Mapped[int]
    location_id: Mapped[int]
    path: Mapped[str]
    title: Mapped[str]
    meta_description: Mapped[str]
    h1: Mapped[str]
    document: Mapped[bytes | None]  # the page's JSON document (UTF-8)
    quality_score: Mapped[float]
    indexable: Mapped[bool]
    content_hash: Mapped[bytes]
    created_at: Mapped[datetime.datetime]
    updated_at: Mapped[datetime.datetime]
    deleted_at: Mapped[datetime.datetime | None]


url = os.environ["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg2://", 1)
engine = create_engine(url, pool_size=10)
SITE_ID = int(os.environ.get("SITE_ID", "1"))
app = FastAPI()
COLUMNS = [column.name for column in Page.__table__.columns]


@app.get("/pages/{path:path}")
def page(path: str) -> dict[str, Any]:
    with Session(engine) as session:
        found = session.scalars(
            select(Page).where(
                Page.site_id == SITE_ID, Page.path == "/" + path, Page.deleted_at.is_(None)
            )
        ).first()
        if found is None:
            raise HTTPException(status_code=404)
        result = {name: getattr(found, name) for name in COLUMNS}
    result["content_hash"] = result["content_hash"].hex()  # bytes are not JSON
    result["document"] = result["document"].decode()
    return result
