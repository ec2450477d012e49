"""`python -m seo_engine …`: the same command line as `seo-engine …`."""

import os

from seo_engine.cli import app

# Worker processes (uvicorn's, generate's) write their logs as they happen.
os.environ.setdefault("PYTHONUNBUFFERED", "1")
app(prog_name="seo-engine")
