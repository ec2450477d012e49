"""Run the app under uvicorn with production defaults."""

from __future__ import annotations

import atexit
import gc
import os
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from seo_engine import logs
from seo_engine.db import database
from seo_engine.serve.app import create_app
from seo_engine.settings import Settings, load_settings

# uvicorn's httptools protocol writing each response in one system call (protocol.py).
HTTP_PROTOCOL = "seo_engine.serve.protocol:CoalescingHttpToolsProtocol"


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int | None = None  # None: one per CPU core


def default_workers() -> int:
    """One worker per core: the event loop is single-threaded and PostgreSQL is out of process."""
    return max(1, len(os.sched_getaffinity(0)))


def serving_app(settings: Settings) -> FastAPI:
    """The app as a server process runs it, with the collector told to leave alone what
    lives as long as the process (modules, routes, the OpenAPI models: most objects in
    it), which made every full collection slower (about 4% of the pages served)."""
    logs.configure(settings.log_format, settings.log_level)
    app = create_app(settings)
    gc.freeze()
    return app


def serving_app_from_environment() -> FastAPI:
    """Factory for uvicorn's worker processes: settings come from the environment."""
    return serving_app(load_settings())


def serve_app(settings: Settings, options: ServeOptions) -> None:
    """Serve until interrupted; this process owns the embedded server if one is used."""
    # uvicorn re-raises SIGTERM after its graceful shutdown; exiting through SystemExit
    # instead of the default handler lets atexit stop an embedded server we own.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    logs.configure(settings.log_format, settings.log_level)
    dsn = database.resolve_dsn(settings)
    workers = options.workers or default_workers()
    common: dict[str, object] = {
        "host": options.host,
        "port": options.port,
        "loop": "uvloop",
        "http": HTTP_PROTOCOL,
        "log_level": settings.log_level,
        "access_log": False,
        "server_header": False,
        "proxy_headers": True,
        "backlog": 2048,
        "timeout_graceful_shutdown": settings.shutdown_grace,
        "log_config": None,  # logs.configure: one format for uvicorn's lines and ours
    }
    if workers == 1:
        uvicorn.run(serving_app(settings.model_copy(update={"database_url": dsn})), **common)  # type: ignore[arg-type]
        return
    # Workers are separate processes: they read the settings from the environment, with the
    # DSN resolved here so that all of them share this process's embedded server, and
    # write their metrics into one folder (metrics.py), made new for this run.
    os.environ["DATABASE_URL"] = dsn
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        folder = tempfile.mkdtemp(prefix="seo-engine-metrics-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    uvicorn.run(
        "seo_engine.serve.server:serving_app_from_environment",
        factory=True,
        workers=workers,
        **common,  # type: ignore[arg-type]
    )
