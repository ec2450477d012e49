"""How `seo-engine serve` builds the app its processes run."""

from __future__ import annotations

import gc

from seo_engine.serve.server import HTTP_PROTOCOL, serving_app
from seo_engine.settings import Settings


def test_a_serving_process_freezes_what_lives_as_long_as_it(settings: Settings) -> None:
    gc.unfreeze()
    try:
        app = serving_app(settings)
        assert gc.get_freeze_count() > 0
        assert gc.is_tracked(app) and app.routes
    finally:
        gc.unfreeze()


def test_serve_runs_the_protocol_that_writes_each_response_once() -> None:
    from uvicorn.importer import import_from_string

    from seo_engine.serve.protocol import CoalescingHttpToolsProtocol

    assert import_from_string(HTTP_PROTOCOL) is CoalescingHttpToolsProtocol
