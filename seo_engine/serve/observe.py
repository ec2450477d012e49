"""The outermost middleware: a request id for every request, its metrics, an access log.

The id comes from the client's `X-Request-ID` (when it is a sane token: at most 128
letters, digits and `._:-`) or is made here; it is echoed in the response's X-Request-ID
and set as logs.REQUEST_ID, so that every line logged while the request is answered
carries it. It wraps the hot paths too (app.py), so every request is counted once.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from seo_engine import logs
from seo_engine.serve import metrics
from seo_engine.settings import Settings

REQUEST_ID_HEADER = b"x-request-id"
VALID_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
access = logging.getLogger("seo_engine.access")


class RequestIds:
    """Unique ids without a system call per request: a random prefix for this process,
    then a counter."""

    def __init__(self) -> None:
        self._prefix = os.urandom(6).hex()
        self._count = itertools.count(1)

    def new(self) -> str:
        return f"{self._prefix}-{next(self._count):x}"


class Observe:
    def __init__(self, app: ASGIApp, settings: Settings, stats: metrics.RequestStats) -> None:
        self.app = app
        self.metrics = settings.metrics
        self.access_log = settings.access_log
        self.ids = RequestIds()
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = None
        user_agent = b""
        for name, value in scope["headers"]:
            if name == REQUEST_ID_HEADER:
                if VALID_REQUEST_ID.fullmatch(value):
                    request_id = value.decode()
            elif name == b"user-agent":
                user_agent = value
        if request_id is None:
            request_id = self.ids.new()
        echoed = (REQUEST_ID_HEADER, request_id.encode())
        route = metrics.route_class(scope["path"])
        status = 500  # unless a response starts
        seconds = 0.0  # to the response's start

        async def observed(message: Message) -> None:
            nonlocal status, seconds
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), echoed]
                seconds = time.perf_counter() - started
            await send(message)

        token = logs.REQUEST_ID.set(request_id)
        try:
            await self.app(scope, receive, observed)
        finally:
            logs.REQUEST_ID.reset(token)
            if self.metrics:
                self.stats.record(route, status, self.stats.agent(user_agent), seconds)
            if self.access_log:
                access.info(
                    "%s %s %d",
                    scope["method"],
                    scope["path"],
                    status,
                    extra={
                        "request_id": request_id,
                        "route": route,
                        "status": status,
                        "ms": round((time.perf_counter() - started) * 1000, 2),
                        "client": (scope.get("client") or ("", 0))[0],
                        "agent": metrics.agent_class(user_agent),
                    },
                )
