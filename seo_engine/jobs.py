"""A record of every CLI job that changes the page set (seed, generate, publishing steps):
when it ran, how long, how it ended and what it changed, kept in the database (migration
0013) and shown by `seo-engine jobs`. Its start and end are also log lines, and every line
logged meanwhile names the job (logs.JOB), so that with SEO_ENGINE_LOG_FORMAT=json a
job's phases come out as JSON lines too.

Recording is best effort: a database that is down, or not migrated yet, costs the job
nothing (the job itself then reports the problem).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import asyncpg

from seo_engine import logs
from seo_engine.db import database
from seo_engine.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

START = "INSERT INTO job_runs (job, site) VALUES ($1, $2) RETURNING id"
FINISH = "UPDATE job_runs SET finished_at = now(), outcome = $2, summary = $3 WHERE id = $1"
RECENT = """
SELECT id, job, site, started_at, finished_at, outcome, summary FROM job_runs
ORDER BY id DESC LIMIT $1
"""
MAX_SUMMARY = 2000


@dataclass
class JobRecord:
    """What the job says it did: set `summary` before the block ends."""

    summary: str = ""


@dataclass(frozen=True)
class JobRun:
    id: int
    job: str
    site: str | None
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    summary: str


def _best_effort(work: Coroutine[Any, Any, T]) -> T | None:
    try:
        return asyncio.run(work)
    except (database.DatabaseUnavailable, asyncpg.PostgresError, OSError) as error:
        log.debug("job not recorded: %s", error)
        return None


async def _execute(settings: Settings, query: str, *args: object) -> Any:
    async with database.session(settings) as connection:
        return await connection.fetchval(query, *args)


@contextmanager
def recorded(settings: Settings, job: str, site: str | None) -> Iterator[JobRecord]:
    """Record the job around the block: started, then ok, failed or interrupted."""
    record = JobRecord()
    job_id = _best_effort(_execute(settings, START, job, site))
    token = logs.JOB.set(job)
    started = time.monotonic()
    outcome = "failed"
    log.info("%s started", job, extra={"site": site})
    try:
        yield record
        outcome = "ok"
    except (KeyboardInterrupt, SystemExit) as stop:
        outcome = "interrupted"
        record.summary = record.summary or type(stop).__name__
        raise
    except Exception as error:
        record.summary = record.summary or str(error)
        raise
    finally:
        seconds = round(time.monotonic() - started, 3)
        log.info(
            "%s %s",
            job,
            outcome,
            extra={"outcome": outcome, "seconds": seconds, "summary": record.summary},
        )
        logs.JOB.reset(token)
        if job_id is not None:
            _best_effort(_execute(settings, FINISH, job_id, outcome, record.summary[:MAX_SUMMARY]))


async def recent(settings: Settings, limit: int) -> list[JobRun]:
    async with database.session(settings) as connection:
        rows = await connection.fetch(RECENT, limit)
    return [JobRun(**dict(row)) for row in rows]
