"""The layout's rules (docs/ARCHITECTURE.md), checked on the source so they cannot drift:
dependencies point down, and no module grows past what a newcomer can hold in their head."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAX_LINES = 600  # per module; samples/ (data generators) and data files are exempt
# package -> top-level packages it must never import
FORBIDDEN = {
    "tasks": {"opsflow", "flows", "mcp_bridge", "deployments", "samples"},
    "samples": {"opsflow", "flows", "mcp_bridge", "deployments"},
    "blocks": {"opsflow", "flows", "mcp_bridge", "deployments", "samples", "tasks"},
    "flows": {"opsflow", "mcp_bridge", "deployments"},
    "mcp_bridge": {"opsflow", "deployments"},
}
PACKAGES = ("tasks", "samples", "blocks", "flows", "mcp_bridge", "deployments", "opsflow")


def modules(*packages: str) -> list[Path]:
    return sorted(p for pkg in packages for p in (REPO / pkg).rglob("*.py"))


def imported_top_levels(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_dependencies_point_down(package):
    wrong = {
        str(path.relative_to(REPO)): sorted(imported_top_levels(path) & FORBIDDEN[package])
        for path in modules(package)
    }
    assert {k: v for k, v in wrong.items() if v} == {}


def test_no_module_is_too_long():
    long = {
        str(p.relative_to(REPO)): n
        for p in modules(*(pkg for pkg in PACKAGES if pkg != "samples"))
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_the_checks_see_the_code():
    """Guard against the checks above passing on an empty or wrong tree."""
    assert len(modules("tasks")) > 40
    assert "tasks" in imported_top_levels(REPO / "flows" / "collect_costs.py")
