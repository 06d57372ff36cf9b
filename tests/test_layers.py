"""The package's layers: a module imports only from its own subpackage or from a layer below it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "djdeploy"
# Lowest first. deploy/ uses ops/verify's named checks (deploy --verify); ops/ never uses deploy/.
LAYERS = {
    "errors": 0,
    "console": 1,
    "remote": 1,
    "host": 2,
    "inventory": 2,
    "ops": 3,
    "lab": 3,
    "deploy": 4,
    "tasks": 5,
    "cli": 6,
}


def _part(module: str) -> str:
    """djdeploy.host.sites -> host; djdeploy.errors -> errors."""
    return module.split(".")[1]


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("djdeploy."):
            found.add(_part(node.module))
        elif isinstance(node, ast.ImportFrom) and node.module == "djdeploy":
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(_part(a.name) for a in node.names if a.name.startswith("djdeploy."))
    return found


MODULES = sorted(
    path for path in PACKAGE.rglob("*.py") if path.name != "__init__.py" or path.parent != PACKAGE
)


def test_every_part_of_the_package_has_a_layer() -> None:
    parts = {path.relative_to(PACKAGE).parts[0].removesuffix(".py") for path in MODULES}
    assert parts == set(LAYERS)


@pytest.mark.parametrize("path", MODULES, ids=lambda path: str(path.relative_to(PACKAGE)))
def test_no_module_imports_from_a_layer_above_it(path: Path) -> None:
    own = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    above = {part for part in _imports(path) - {own} if LAYERS[part] >= LAYERS[own]}
    assert not above, f"{path.relative_to(PACKAGE)} imports from {sorted(above)}, not below layer {own}"
