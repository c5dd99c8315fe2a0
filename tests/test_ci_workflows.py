"""The GitHub workflows run what the README and .ci promise: every push and pull request runs .ci/run (the README's
test command), the nightly runs .ci/nightly and keeps the store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"


def _load(name: str) -> dict[Any, Any]:
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    assert isinstance(doc, dict), name
    return doc


def _triggers(doc: dict[Any, Any]) -> dict[str, Any]:
    on = doc.get("on", doc.get(True))  # YAML 1.1 reads a bare `on` key as the boolean true
    assert isinstance(on, dict)
    return on


def _runs(doc: dict[Any, Any]) -> list[str]:
    return [step["run"] for job in doc["jobs"].values() for step in job["steps"] if "run" in step]


def _uses(doc: dict[Any, Any]) -> list[dict[str, Any]]:
    return [step for job in doc["jobs"].values() for step in job["steps"] if "uses" in step]


def test_every_push_and_pull_request_runs_the_ci_script() -> None:
    ci = _load("ci.yml")
    assert {"push", "pull_request"} <= set(_triggers(ci))
    assert ".ci/run" in _runs(ci)
    for job in ci["jobs"].values():
        assert job["timeout-minutes"] <= 90  # the CI budget
        assert "--privileged" in job["container"]["options"]  # namespaces, iptables, FUSE


def test_the_nightly_is_scheduled_runs_the_nightly_script_and_keeps_the_store() -> None:
    nightly = _load("nightly.yml")
    assert "schedule" in _triggers(nightly)
    assert ".ci/nightly" in _runs(nightly)
    uploads = [s for s in _uses(nightly) if s["uses"].startswith("actions/upload-artifact")]
    assert uploads and uploads[0]["with"]["path"].rstrip("/") == "store"
    assert uploads[0].get("if") == "always()"  # a failing night keeps its reports too


def test_the_scripts_the_workflows_name_exist_and_are_executable() -> None:
    for script in (".ci/run", ".ci/nightly"):
        path = ROOT / script
        assert path.is_file() and path.stat().st_mode & 0o111, script
