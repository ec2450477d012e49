"""Operational endpoints: liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from seo_engine.db import database, migrate, replicas
from seo_engine.serve import metrics, problems
from seo_engine.serve.dependencies import AppSettings, PrimaryPool

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str


class ReplicaState(BaseModel):
    name: str
    state: replicas.ReplicaState
    lag_seconds: float | None


class Readiness(BaseModel):
    status: str
    schema_version: str
    replicas: list[ReplicaState] = Field(
        default_factory=list,
        description="Each read replica (SEO_ENGINE_READ_DATABASE_URL) as the last check saw it.",
    )


@router.get("/healthz", response_model=Health, summary="Liveness; never touches the database")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Readiness: the pool answers and the schema is at head",
    responses={503: {"description": "Database unreachable or migrations pending"}},
)
async def readyz(
    request: Request, pool: PrimaryPool, settings: AppSettings
) -> Readiness | Response:
    async with database.acquire(pool, settings.acquire_timeout) as connection:
        try:
            current = await migrate.at_head(connection)
        except migrate.MigrationError as error:
            return problems.unavailable(str(error))
    if not current:
        return problems.unavailable("migrations are pending; run `seo-engine db migrate`")
    reads = request.app.state.reads
    states = []
    if isinstance(reads, replicas.ReadPools):
        states = [
            ReplicaState(name=replica.name, state=reads.state(replica), lag_seconds=replica.lag)
            for replica in reads.replicas
        ]
    return Readiness(status="ready", schema_version=migrate.head(), replicas=states)


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(request: Request, settings: AppSettings) -> Response:
    """Prometheus' text format, every worker's figures added up; only for the clients
    SEO_ENGINE_METRICS_ALLOW names (loopback by default): others get a 404."""
    client = request.client.host if request.client else None
    networks = metrics.allowed_networks(settings.metrics_allow)
    if not settings.metrics or not metrics.may_read(client, networks):
        return problems.problem(404, "not found")
    publisher: metrics.Publisher = request.app.state.metrics
    publisher.publish()  # this worker's latest; the others' are at most seconds old
    body, media_type = metrics.exposition()
    return Response(body, media_type=media_type, headers={"Cache-Control": "no-store"})
