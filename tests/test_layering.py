"""Imports flow one way: a module imports only from its own layer or the layers below it, and inside a
package no module imports the rooms above it. And only the model changes a model: every other module goes
through its methods (plan / apply, restore)."""

from __future__ import annotations

import ast
from fnmatch import fnmatch
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "erasable"

# Bottom to top. A new module must be placed here, which is the point: say where it belongs.
# A package is one component: its modules import one another freely. The ledger's durable storage
# sits above the model it stores; the in-memory registry and the statistics with their codec under it.
LAYERS: list[set[str]] = [
    {"terminal", "parameters", "blas", "integer_gram"},  # leaves: they import nothing of erasable
    {"exact"},
    {"moments"},
    {"statistics", "registry"},
    {"features"},
    {"heads"},
    {"memory_analysis"},
    {"encoders", "io", "steering"},
    {"config"},
    {"changes", "served_heads"},
    {"model"},
    {"model_file"},
    {"estimator"},
    {"distributed"},
    {"federated"},
    {"ledger"},
    {"audit"},
    {"service"},
    {"client"},
    {"cli", "demo"},
    {"__init__", "__main__"},
]
LAYER_OF = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def component(path: Path) -> str:
    """The component of a file: ``heads`` for heads/ridge.py, ``model`` for model.py."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def imported_components(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("erasable"):
            parts = node.module.split(".")
            if len(parts) > 1:
                found.add(parts[1])
            else:  # from erasable import x
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("erasable."))
    return found


def test_every_module_has_a_layer() -> None:
    unplaced = {component(p) for p in PACKAGE.rglob("*.py")} - set(LAYER_OF)
    assert not unplaced, f"place these modules in LAYERS: {sorted(unplaced)}"


def test_imports_only_go_down() -> None:
    violations = []
    for path in PACKAGE.rglob("*.py"):
        here = component(path)
        for target in imported_components(path) - {"__version__"}:
            if target in LAYER_OF and LAYER_OF[target] > LAYER_OF[here]:
                violations.append(f"{path.relative_to(PACKAGE)} imports {target}")
    assert not violations, violations


#: What only a Model changes about itself (through :meth:`Model.apply`, :meth:`Model.restore` and its other methods).
MODEL_INTERNALS = {"registry", "next_auto_id", "steering", "_statistics", "_heads", "_memory", "_encoder"}
#: What changes a registry: outside the model, only a registry being built for :meth:`Model.restore` is.
REGISTRY_CHANGES = {"append", "remove_rows"}


def test_nothing_outside_the_model_sets_its_internals() -> None:
    """A change that goes around plan/apply corrupts state (issue 13: a Dask forget left a forgotten subject's
    steering weight, and the model file it saved could not be loaded)."""
    violations = []
    for path in PACKAGE.rglob("*.py"):
        if path == PACKAGE / "model.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            targets = node.targets if isinstance(node, ast.Assign) else []
            if isinstance(node, ast.AugAssign | ast.AnnAssign):
                targets = [node.target]
            for target in targets:
                of_self = isinstance(target, ast.Attribute) and ast.unparse(target.value) == "self"
                if isinstance(target, ast.Attribute) and target.attr in MODEL_INTERNALS and not of_self:
                    violations.append(f"{path.relative_to(PACKAGE)}:{node.lineno} sets .{target.attr}")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in REGISTRY_CHANGES
                and isinstance(node.func.value, ast.Attribute)
                and node.func.value.attr == "registry"
            ):
                violations.append(f"{path.relative_to(PACKAGE)}:{node.lineno} calls registry.{node.func.attr}")
    assert not violations, violations


#: Inside a package, what a module must not import: the rooms above it there. The routes and their dependencies
#: are mounted by the app, the command groups registered by the CLI's app, the memory's stores and file format
#: used by its head; none of them reaches back up (issue 13, item 6). Module names, or patterns (fnmatch).
ROOMS_ABOVE = {
    "service/dependencies.py": {"erasable.service.app", "erasable.service.routes*"},
    "service/middleware.py": {"erasable.service.app", "erasable.service.routes*"},
    "service/routes/*.py": {"erasable.service.app"},
    "cli/[!_]*.py": {"erasable.cli"},
    "heads/memory_index.py": {"erasable.heads.memory", "erasable.heads.memory_file"},
    "heads/memory_file.py": {"erasable.heads.memory"},
}


def imported_modules(path: Path) -> set[str]:
    """The erasable modules a file imports, by full name (``from erasable.cli import x`` names ``erasable.cli``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("erasable"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("erasable"))
    return found


def test_rooms_inside_a_package_point_one_way() -> None:
    violations = []
    for pattern, above in ROOMS_ABOVE.items():
        paths = sorted(PACKAGE.glob(pattern))
        assert paths, f"{pattern} matches no module"
        for path in paths:
            wrong = {name for name in imported_modules(path) if any(fnmatch(name, room) for room in above)}
            violations += [f"{path.relative_to(PACKAGE)} imports {name}" for name in sorted(wrong)]
    assert not violations, violations
