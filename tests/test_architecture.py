"""The house's rules (docs/architecture.md), checked on the code's own imports: rooms import only rooms on their
floor or below, no module imports itself round a circle (imports inside functions and under TYPE_CHECKING count),
inference never imports training, no module passes 400 lines, and only a family's own folder asks whether a
backend belongs to it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "zsseg"

#: floors from the top: a room may import rooms on its own floor or below (docs/architecture.md)
FLOORS: list[tuple[str, ...]] = [
    ("cli",),
    ("serve", "batch", "eval", "train", "cli_options"),
    ("pipeline", "plan", "validate"),
    ("assemble", "result", "viz", "data", "instances", "export"),
    ("classify",),
    ("models", "proposals"),
    ("prompts", "io"),
    ("precision", "onednn", "malloc", "errors"),
]
FLOOR = {room: i for i, rooms in enumerate(FLOORS) for room in rooms}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The zsseg modules ``path`` imports anywhere in it (top level, in functions, under TYPE_CHECKING)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("zsseg")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            if not base.startswith("zsseg"):
                continue
            for alias in node.names:  # `from zsseg.models import clip` imports the module zsseg.models.clip
                sub = f"{base}.{alias.name}"
                out.add(sub if sub in known else base)
    return {m for m in out if m in known and m != name}


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(path, name, set(mods)) for name, path in mods.items()}


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "zsseg"


def test_every_room_has_a_floor() -> None:
    rooms = {room(m) for m in modules()} - {"zsseg"}
    assert rooms <= set(FLOOR), f"rooms without a floor in FLOORS: {sorted(rooms - set(FLOOR))}"


def test_no_import_runs_up_the_house() -> None:
    upward = [
        f"{a} -> {b}"
        for a, targets in graph().items()
        for b in targets
        if room(a) != "zsseg" and room(b) != "zsseg" and FLOOR[room(b)] < FLOOR[room(a)]
    ]
    assert not upward, "imports that run up the house:\n" + "\n".join(sorted(upward))


def test_no_import_circles() -> None:
    g = graph()
    state: dict[str, int] = {}
    circles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(g[node]):
            if state.get(nxt) == 1:
                circles.append(stack[stack.index(nxt) :] + [nxt] if nxt in stack else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for start in sorted(g):
        if start not in state:
            visit(start, [start])
    assert not circles, "import circles:\n" + "\n".join(" -> ".join(c) for c in circles)


def test_inference_never_imports_training() -> None:
    g = graph()
    reach, todo = set(), ["zsseg.pipeline"]
    while todo:
        for nxt in g[todo.pop()] - reach:
            reach.add(nxt)
            todo.append(nxt)
    assert not {m for m in reach if room(m) == "train"}, "zsseg.pipeline reaches zsseg.train"


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_stay_under_400_lines(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= 400


def test_only_a_family_asks_whether_a_backend_is_its_own() -> None:
    families = [p.name for p in (PACKAGE / "models").iterdir() if (p / "__init__.py").is_file()]
    backends = {
        f: re.findall(r"^class (\w+)", (PACKAGE / "models" / f / "backend.py").read_text(), re.M) for f in families
    }
    found = []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        for family, names in backends.items():
            if path.is_relative_to(PACKAGE / "models" / family):
                continue
            found += [
                f"{path.relative_to(PACKAGE)}: {n}" for n in names if re.search(rf"isinstance\([^)]*\b{n}\b", text)
            ]
    assert not found, "isinstance on a model family outside its folder:\n" + "\n".join(found)


def test_training_functions_stay_short() -> None:
    """``zsseg/train`` keeps functions short (complexity is ruff's C901, at 12, for the whole package)."""
    long = []
    for path in (PACKAGE / "train").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                body = node.body[1:] if ast.get_docstring(node) is not None else node.body
                lines = (body[-1].end_lineno or 0) - body[0].lineno + 1 if body else 0
                if lines > 60:
                    long.append(f"train/{path.name}: {node.name} has {lines} lines of code")
    assert not long, "\n".join(long)


def test_the_docs_name_every_room() -> None:
    """README's layout section and docs/architecture.md name every room of the tree, and no room that is gone."""
    rooms = {room(m) for m in modules()} - {"zsseg"}
    readme = (PACKAGE.parent / "README.md").read_text()
    layout = readme[readme.index("## Layout") :].split("\n## ")[0]
    named = set(re.findall(r"`zsseg/(\w+)", layout))
    assert rooms == named, f"README layout: missing {sorted(rooms - named)}, gone {sorted(named - rooms)}"
    picture = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    missing = [r for r in sorted(rooms) if not re.search(rf"\b{r}\b", picture)]
    assert not missing, f"docs/architecture.md does not name {missing}"
    floors = {r for rooms_ in FLOORS for r in rooms_}
    assert floors == rooms, f"FLOORS: missing {sorted(rooms - floors)}, gone {sorted(floors - rooms)}"
