"""Ceiling: a bare ASGI app answering every request with a constant body of a given size
(BARE_BODY_BYTES), served exactly like the product (`seo-engine serve`'s uvicorn settings)."""

from __future__ import annotations

import os
from typing import Any

BODY = b"x" * int(os.environ.get("BARE_BODY_BYTES", "4096"))
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
