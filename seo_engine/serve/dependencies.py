"""Typed dependencies that hand the lifespan's resources to route handlers."""

from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from seo_engine.db.database import ReadSource
from seo_engine.serve.answers import Resources
from seo_engine.settings import Settings


def _reads(request: Request) -> ReadSource:
    reads: ReadSource = request.app.state.reads
    return reads


def _primary(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.pool
    return pool


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _answers(request: Request) -> Resources:
    resources: Resources = request.app.state.answers
    return resources


# Reads: a read replica in use (SEO_ENGINE_READ_DATABASE_URL), else the primary's pool.
Pool = Annotated[ReadSource, Depends(_reads)]
# The primary's pool: what writes, and what must be read where it is written (the cursor key).
PrimaryPool = Annotated[asyncpg.Pool, Depends(_primary)]
AppSettings = Annotated[Settings, Depends(_settings)]
AnswerResources = Annotated[Resources, Depends(_answers)]
