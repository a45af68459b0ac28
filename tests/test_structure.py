"""The house rules of the package (shared/STYLE.md): modules of one concern each, imports that flow
one way, an errors module at the bottom, scripts in pipelines/ that use the library and not the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "molvae"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _imports(path: Path, top_level_only: bool = True) -> set[str]:
    """The molvae modules a file imports (at import time, with ``top_level_only``: not inside a
    function or an ``if TYPE_CHECKING`` block)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {name for name in names if name in MODULES}
    return found


def test_no_module_is_over_800_lines():
    long = {name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > 800}
    assert not long, f"split these by responsibility: {long}"


def test_imports_flow_one_way():
    graph = {name: _imports(path) - {name} for name, path in MODULES.items()}
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = "open"
        for target in sorted(graph[name]):
            assert state.get(target) != "open", "import circle: " + " -> ".join([*trail, name, target])
            if target not in state:
                visit(target, [*trail, name])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


def test_errors_sit_at_the_bottom():
    assert _imports(PACKAGE / "errors.py", top_level_only=False) == set()


def test_only_the_cli_imports_the_cli():
    outside = [path for path in [*PACKAGE.rglob("*.py"), *(ROOT / "pipelines").rglob("*.py")]
               if "cli" not in path.relative_to(ROOT).parts[:2]]
    offenders = [str(path.relative_to(ROOT)) for path in outside
                 if any(name == "molvae.cli" or name.startswith("molvae.cli.")
                        for name in _imports(path, top_level_only=False))]
    assert set(offenders) <= {"molvae/__main__.py"}, offenders  # `python -m molvae` runs the CLI


def test_recipes_stand_apart_from_scripts():
    pipelines = ROOT / "pipelines"
    assert not list(pipelines.glob("*.toml")) and not list(pipelines.glob("*.py"))
    assert list((pipelines / "recipes").glob("*.toml")) and not list((pipelines / "recipes").glob("*.py"))
