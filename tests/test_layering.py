"""The minds stand alone: no module under agents/ imports the run side."""

from __future__ import annotations

import ast
from pathlib import Path

AGENTS = Path(__file__).resolve().parents[1] / "agents"


def imported_modules(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def test_agents_never_import_orchestrator() -> None:
    modules = sorted(AGENTS.rglob("*.py"))
    assert len(modules) > 10  # the walk found the package
    offenders = [
        f"{path.relative_to(AGENTS.parent)}: {name}"
        for path in modules
        for name in imported_modules(path)
        if name == "orchestrator" or name.startswith("orchestrator.")
    ]
    assert offenders == []


def test_the_check_sees_imports(tmp_path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("import os\nfrom orchestrator.world import World\n", encoding="utf-8")
    assert "orchestrator.world" in imported_modules(probe)
