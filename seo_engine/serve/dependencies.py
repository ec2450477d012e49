"""Typed dependencies that hand the lifespan's resources to route handlers."""

from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from seo_engine.serve.answers import Resources
from seo_engine.settings import Settings


def _pool(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.pool
    return pool


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _answers(request: Request) -> Resources:
    resources: Resources = request.app.state.answers
    return resources


Pool = Annotated[asyncpg.Pool, Depends(_pool)]
AppSettings = Annotated[Settings, Depends(_settings)]
AnswerResources = Annotated[Resources, Depends(_answers)]
