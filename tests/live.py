"""A real uvicorn server in a background thread, for tests that need real sockets."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from seo_engine.serve.app import create_app
from seo_engine.serve.server import HTTP_PROTOCOL
from seo_engine.settings import Settings
from tests.waiting import until


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def live_server(settings: Settings) -> Iterator[str]:
    """Serve the app on a free loopback port until the block ends; yield its base URL."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        http=HTTP_PROTOCOL,  # as `seo-engine serve` runs it
        log_level="warning",
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()

    def started() -> bool:
        assert thread.is_alive(), "the server stopped while starting"
        return bool(server.started)

    until(started, 20, "the server to start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@contextmanager
def served(environment: dict[str, str], workers: int = 2) -> Iterator[str]:
    """`seo-engine serve` as a process of its own (no GIL shared with the test)."""
    with serving(environment, workers) as (url, _):
        yield url


@contextmanager
def serving(environment: dict[str, str], workers: int = 2) -> Iterator[tuple[str, int]]:
    """Like `served`, also yielding the server's pid (the only process when workers=1)."""
    import os
    import signal
    import subprocess
    import sys

    import httpx

    port = free_port()
    env = {**os.environ, **environment}
    with subprocess.Popen(
        [
            sys.executable,
            "-m",
            "seo_engine",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as server:
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            assert server.poll() is None, "the server exited while starting"
            try:
                return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        until(ready, 30, "the server to be ready")
        try:
            yield url, server.pid
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
