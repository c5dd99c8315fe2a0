"""The arrows of docs/architecture.md as a test.

The import rules are the table under "Which may import which" in docs/architecture.md: one row per module prefix,
the prefixes it must never import, and whether it is pure (never calls the module-level random generator). This
test reads that table, walks every module of the project's packages, collects what it imports (absolute and
relative, at any depth of the code, since a lazy import inside a function is still an arrow), and fails on any
forbidden one.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
PACKAGES = ("raftkv", "checker", "harness", "nemesis", "workloads", "reports")
SECTION = "## Which may import which"


def _rule_rows(text: str) -> list[list[str]]:
    """The cells of every body row of the first table after SECTION (ValueError when there is none)."""
    if SECTION not in text:
        raise ValueError(f"{DOC} has no section {SECTION!r}")
    rows: list[list[str]] = []
    for line in text.split(SECTION, 1)[1].splitlines():
        if rows and not line.startswith("|"):
            break
        if line.startswith("|") and not set(line) <= set("|- "):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    if len(rows) < 2:
        raise ValueError(f"{DOC}: no table under {SECTION!r}")
    return rows[1:]  # the header row is not a rule


def parse_rules(text: str) -> tuple[dict[str, tuple[str, ...]], tuple[str, ...]]:
    """(module prefix -> import prefixes it must never use, the pure module prefixes) from the doc's table."""
    forbidden: dict[str, tuple[str, ...]] = {}
    pure: list[str] = []
    for cells in _rule_rows(text):
        module = re.fullmatch(r"`([\w.]+)`", cells[0])
        if module is None or len(cells) < 3 or cells[2] not in ("yes", "no"):
            raise ValueError(f"{DOC}: a rule row must be | `module` | `a`, `b` | yes/no | why |, got {cells}")
        forbidden[module.group(1)] = tuple(re.findall(r"`([\w.]+)`", cells[1]))
        if cells[2] == "yes":
            pure.append(module.group(1))
    return forbidden, tuple(pure)


# module prefix -> import prefixes it must never use. The most specific prefix that matches a module applies, and
# so do all less specific ones.
FORBIDDEN, NO_GLOBAL_RANDOM = parse_rules(DOC.read_text())


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


def test_the_doc_states_the_rules_the_project_was_built_on() -> None:
    """The table is the rule: it must keep the arrows (the engine knows no concrete part, the database knows no
    lab, the checker is pure)."""
    assert set(FORBIDDEN["harness"]) >= {"raftkv", "nemesis", "workloads"}
    assert set(FORBIDDEN["raftkv"]) >= {"harness", "nemesis", "workloads", "checker", "reports"}
    assert {"raftkv.core", "raftkv.kv", "raftkv.sim", "checker"} <= set(NO_GLOBAL_RANDOM)


def test_a_malformed_rule_row_is_refused() -> None:
    with pytest.raises(ValueError, match="a rule row must be"):
        parse_rules(f"{SECTION}\n\n| module | must not | pure | why |\n|-|-|-|-|\n| harness | `raftkv` | maybe | x |\n")
