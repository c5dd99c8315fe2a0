"""The Knossos example corpus (../shared/data/knossos): every history gets the verdict of its manifest.

Models and initial values come from the manifest (cas-register, multi-register, mutex); Knossos conventions apply
(a read of nil is legal). Also: every history survives an EDN export and re-import unchanged.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from checker import edn
from checker.jepsen import dumps_history, loads_history, read_edn_history
from checker.linearizability import check_linearizability
from checker.models import make_model

CORPUS = Path(os.environ.get("KNOSSOS_CORPUS", Path(__file__).resolve().parents[3] / "shared" / "data" / "knossos"))
if not (CORPUS / "manifest.json").exists():
    CORPUS = Path("/work/shared/data/knossos")
MANIFEST = json.loads((CORPUS / "manifest.json").read_text()) if (CORPUS / "manifest.json").exists() else []

pytestmark = pytest.mark.skipif(not MANIFEST, reason=f"Knossos corpus not found at {CORPUS}")


def test_the_corpus_is_complete() -> None:
    assert len(MANIFEST) == 122


@pytest.mark.parametrize("entry", MANIFEST, ids=[e["file"] for e in MANIFEST])
def test_knossos_history_gets_the_manifest_verdict(entry: dict) -> None:
    events = read_edn_history(str(CORPUS / entry["file"]))
    model = make_model(entry["model"], edn.loads(entry["initial"]), jepsen=True)
    result = check_linearizability(events, model, timeout=60, validated=True)
    assert result["valid"] is entry["expected"], result.get("failure", {}).get("explanation")
    if not entry["expected"]:
        failure = result["failure"]
        assert failure["stuck"], "an invalid verdict names the operations that could not be linearized"
        known = {op["id"] for op in failure["ops"]}
        assert all(s["op"] in known for s in failure["stuck"])
        assert all(i in known for prefix in failure["longest_prefixes"] for i in prefix)


@pytest.mark.parametrize("entry", MANIFEST[::10], ids=[e["file"] for e in MANIFEST[::10]])
def test_edn_export_round_trips(entry: dict) -> None:
    events = read_edn_history(str(CORPUS / entry["file"]))
    assert loads_history(dumps_history(events)) == events
