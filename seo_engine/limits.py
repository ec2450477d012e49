"""Refuse oversized requests before any work is done (uvicorn's httptools sets no limit)."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from seo_engine import problems

MAX_URL_BYTES = 8 * 1024
MAX_HEADER_BYTES = 16 * 1024
MAX_HEADERS = 100


class RequestLimits:
    """ASGI middleware: 414 for an over-long URL, 431 for too many or too large headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            url_bytes = len(scope.get("raw_path") or b"") + len(scope.get("query_string", b""))
            headers = scope["headers"]
            header_bytes = sum(len(name) + len(value) for name, value in headers)
            if url_bytes > MAX_URL_BYTES:
                detail = f"the URL is longer than {MAX_URL_BYTES} bytes"
                await problems.problem(414, detail)(scope, receive, send)
                return
            if header_bytes > MAX_HEADER_BYTES or len(headers) > MAX_HEADERS:
                detail = f"the headers exceed {MAX_HEADERS} fields or {MAX_HEADER_BYTES} bytes"
                await problems.problem(431, detail)(scope, receive, send)
                return
        await self.app(scope, receive, send)
