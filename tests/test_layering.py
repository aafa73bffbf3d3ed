"""Imports flow one way: a module imports only from its own layer or the layers below it."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "erasable"

# Bottom to top. A new module must be placed here, which is the point: say where it belongs.
# A package is one component, unless its modules are named ("ledger.store"): the ledger's
# in-memory registry sits under the model, its durable store (which persists models) above.
LAYERS: list[set[str]] = [
    {"terminal", "parameters"},  # leaves: they import nothing of erasable
    {"exact"},
    {"moments"},
    {"features"},
    {"heads"},
    {"memory_analysis"},
    {"ledger", "ledger.registry", "ledger.chain"},
    {"encoders", "datasets", "vector_files", "steering"},
    {"model"},
    {"model_file"},
    {"estimator"},
    {"distributed"},
    {"federated"},
    {"ledger.schema"},
    {"ledger.store"},
    {"ledger.keys"},
    {"audit"},
    {"service"},
    {"client"},
    {"cli", "demo"},
    {"__init__", "__main__"},
]
LAYER_OF = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def placed(parts: list[str]) -> str:
    """The layer name of a module path: ``ledger.store`` if that is placed, else the package ``ledger``."""
    qualified = ".".join(parts[:2])
    return qualified if qualified in LAYER_OF else parts[0]


def component(path: Path) -> str:
    """The component of a file: ``heads`` for heads/ridge.py, ``ledger.store`` for ledger/store.py."""
    relative = path.relative_to(PACKAGE)
    return placed([part.removesuffix(".py") for part in relative.parts])


def imported_components(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("erasable"):
            parts = node.module.split(".")
            if len(parts) > 1:
                found.add(placed(parts[1:]))
            else:  # from erasable import x
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(placed(a.name.split(".")[1:]) for a in node.names if a.name.startswith("erasable."))
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
