"""The package's layout: the pipeline's stages only import earlier stages."""

from __future__ import annotations

import ast
from pathlib import Path

import seo_engine

PACKAGE = Path(seo_engine.__file__).parent
# db -> ingest -> generate -> publish -> serve; the modules at the package root are shared
# facts (settings, paths, etags, resources) or the command line over every stage.
STAGES = ("db", "ingest", "generate", "publish", "serve")
SHARED = {"settings", "paths", "etags", "resources"}


def imported_modules(path: Path) -> set[str]:
    """Every seo_engine module a file imports (`from seo_engine.x import y` gives x.y too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("seo_engine"):
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("seo_engine"))
    return found


def stage_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STAGES else None


def test_no_stage_imports_a_later_one() -> None:
    backwards = []
    for stage in STAGES:
        for path in sorted((PACKAGE / stage).rglob("*.py")):
            for module in imported_modules(path):
                target = stage_of(module)
                if target is not None and STAGES.index(target) > STAGES.index(stage):
                    backwards.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert backwards == []


def test_shared_modules_import_no_stage() -> None:
    for name in SHARED:
        imported = imported_modules(PACKAGE / f"{name}.py")
        assert {stage_of(module) for module in imported} <= {None}, name


def test_the_command_line_runs_as_a_module_of_the_package() -> None:
    import subprocess
    import sys

    shown = subprocess.run(
        [sys.executable, "-m", "seo_engine", "--version"], capture_output=True, text=True
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == f"seo-engine {seo_engine.__version__}\n"
