"""The `seo-engine` command line from a checkout: `python cli.py …` (installed, the
`seo-engine` script and `python -m seo_engine` run the same app, seo_engine/cli.py)."""

from seo_engine.cli import app

if __name__ == "__main__":
    app(prog_name="seo-engine")
