"""The arrows of docs/ARCHITECTURE (../shared/guide/ARCHITECTURE.md) as a test.

Walks every module of the project's packages, collects what it imports (absolute and relative, at any depth of the
code, since a lazy import inside a function is still an arrow), and fails on any forbidden one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("raftkv", "checker", "harness", "nemesis", "workloads", "reports")

# module prefix -> import prefixes it must never use. The most specific prefix that matches a module applies, and
# so do all less specific ones.
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "raftkv": ("harness", "nemesis", "workloads", "checker", "reports"),
    # The Raft core and the KV state machine are pure: no I/O, no clocks, no threads, no global randomness.
    "raftkv.core": ("asyncio", "socket", "threading", "time", "os", "subprocess", "selectors", "signal",
                    "multiprocessing", "datetime", "raftkv.server", "raftkv.sim", "raftkv.client", "raftkv.cli"),
    "raftkv.kv": ("asyncio", "socket", "threading", "time", "os", "subprocess", "selectors", "signal",
                  "multiprocessing", "datetime", "raftkv.server", "raftkv.sim", "raftkv.client", "raftkv.core",
                  "raftkv.cli"),
    "raftkv.sim": ("asyncio", "socket", "threading", "time", "subprocess", "selectors", "signal",
                   "multiprocessing", "datetime", "raftkv.server", "raftkv.client", "raftkv.cli"),
    # The shared client vocabulary is pure; the client library talks HTTP only (it never needs the server's insides).
    "raftkv.api": ("asyncio", "socket", "threading", "time", "os", "subprocess", "raftkv.server", "raftkv.core",
                   "raftkv.kv", "raftkv.sim", "raftkv.client", "raftkv.cli"),
    "raftkv.client": ("raftkv.server", "raftkv.core", "raftkv.kv", "raftkv.sim", "raftkv.cli", "threading",
                      "subprocess", "os"),
    "checker": ("raftkv", "harness", "nemesis", "workloads", "reports", "asyncio", "socket", "subprocess"),
    "reports": ("raftkv", "harness", "nemesis", "workloads"),
    "harness": ("raftkv", "nemesis", "workloads"),
    "nemesis": ("raftkv", "workloads"),
    "workloads": ("raftkv.core", "raftkv.server", "raftkv.sim"),
}

# Pure packages may hold a random.Random handed to them, but never call the module-level generator.
NO_GLOBAL_RANDOM = ("raftkv.core", "raftkv.kv", "raftkv.sim", "checker")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> list[tuple[str, Path]]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found.append((_module_name(path), path))
    return found


def _imports(module: str, path: Path, tree: ast.AST) -> set[str]:
    names: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            names.add(prefix)
            names.update(f"{prefix}.{alias.name}" for alias in node.names)
    return names


def _matches(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _rules_for(module: str) -> tuple[str, ...]:
    rules: list[str] = []
    for owner, forbidden in FORBIDDEN.items():
        if _matches(module, owner):
            rules.extend(forbidden)
    return tuple(rules)


MODULES = _modules()


@pytest.mark.parametrize(("module", "path"), MODULES, ids=[m for m, _ in MODULES])
def test_module_keeps_the_arrows(module: str, path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    imported = _imports(module, path, tree)
    bad = sorted(
        f"{name} (forbidden: {rule})"
        for name in imported
        for rule in _rules_for(module)
        if _matches(name, rule)
    )
    assert not bad, f"{module} imports {bad}"


@pytest.mark.parametrize(("module", "path"), MODULES, ids=[m for m, _ in MODULES])
def test_pure_modules_use_no_global_random(module: str, path: Path) -> None:
    if not any(_matches(module, p) for p in NO_GLOBAL_RANDOM):
        return
    tree = ast.parse(path.read_text(), filename=str(path))
    offenders = [
        f"line {node.lineno}: random.{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "random"
        and node.attr != "Random"
    ]
    offenders += [
        f"line {node.lineno}: from random import {alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "random"
        for alias in node.names
        if alias.name != "Random"
    ]
    assert not offenders, f"{module} uses the module-level random generator: {offenders}"


def test_the_rules_catch_a_forbidden_import(tmp_path: Path) -> None:
    """The checker of arrows itself: a core module importing time must be flagged."""
    source = "import time\nfrom ..server import node\n"
    tree = ast.parse(source)
    fake = ROOT / "raftkv" / "core" / "fake.py"
    imported = _imports("raftkv.core.fake", fake, tree)
    flagged = {name for name in imported for rule in _rules_for("raftkv.core.fake") if _matches(name, rule)}
    assert "time" in flagged
    assert "raftkv.server" in flagged
