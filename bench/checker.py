"""Benchmark of the linearizability checker (issue 4). Prints, per case: wall and CPU time, peak memory, verdict.

Cases:
- knossos: the 122 histories of ../shared/data/knossos (search time, and with EDN parsing), against Porcupine's
  0.027 s for the same histories on this machine;
- kv-10k-valid / kv-10k-invalid: generated versioned-kv histories of 10,000 operations on 1 key, 10 processes,
  10% info operations (checker.generate.generate_kv);
- kv-200k-valid / kv-200k-invalid: 200,000 operations over 200 keys, 20 processes, 10% info (target < 60 s and
  < 2 GiB).
Every case runs in a fresh process (so peak RSS is its own); generation happens before, in another process, and the
measured time is what `harness check` does: read the JSONL file, validate, pair, search (parallel where it pays).

    python bench/checker.py              # all cases
    python bench/checker.py knossos kv-10k-invalid
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PORCUPINE_KNOSSOS_S = 0.027
KV_CASES = {
    "kv-10k-valid": dict(ops=10_000, keys=1, processes=10, info_rate=0.1, seed=1, invalid=False),
    "kv-10k-invalid": dict(ops=10_000, keys=1, processes=10, info_rate=0.1, seed=1, invalid=True),
    "kv-200k-valid": dict(ops=200_000, keys=200, processes=20, info_rate=0.1, seed=2, invalid=False),
    "kv-200k-invalid": dict(ops=200_000, keys=200, processes=20, info_rate=0.1, seed=2, invalid=True),
}
CASES = ["knossos", *KV_CASES]


def _corpus() -> Path:
    for candidate in (ROOT.parent / "shared" / "data" / "knossos", Path("/work/shared/data/knossos")):
        if (candidate / "manifest.json").exists():
            return candidate
    raise SystemExit("Knossos corpus not found (../shared/data/knossos)")


def _peak_mb() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def run_knossos() -> dict:
    from checker import edn
    from checker.jepsen import read_edn_history
    from checker.linearizability import check_linearizability
    from checker.models import make_model

    corpus = _corpus()
    manifest = json.loads((corpus / "manifest.json").read_text())
    wall_parse = cpu_parse = wall_check = cpu_check = 0.0
    wrong = []
    for entry in manifest:
        w, c = time.perf_counter(), time.process_time()
        events = read_edn_history(str(corpus / entry["file"]))
        model = make_model(entry["model"], edn.loads(entry["initial"]), jepsen=True)
        w2, c2 = time.perf_counter(), time.process_time()
        result = check_linearizability(events, model, validated=True, parallel=False)
        wall_check += time.perf_counter() - w2
        cpu_check += time.process_time() - c2
        wall_parse += w2 - w
        cpu_parse += c2 - c
        if result["valid"] is not entry["expected"]:
            wrong.append(entry["file"])
    own, _ = _peak_mb()
    return {
        "case": "knossos", "histories": len(manifest), "wall_s": round(wall_check, 4), "cpu_s": round(cpu_check, 4),
        "with_parsing_wall_s": round(wall_check + wall_parse, 4), "peak_mb": round(own, 1),
        "porcupine_s": PORCUPINE_KNOSSOS_S, "ratio_cpu": round(cpu_check / PORCUPINE_KNOSSOS_S, 2),
        "ratio_wall": round(wall_check / PORCUPINE_KNOSSOS_S, 2),
        "verdict": "all as in the manifest" if not wrong else f"WRONG: {wrong}",
    }


def generate_file(name: str, path: str) -> None:
    from checker.generate import generate_kv

    generated = generate_kv(**KV_CASES[name])
    with open(path, "w") as handle:
        handle.writelines(json.dumps(event) + "\n" for event in generated.events)
    with open(path + ".anomaly", "w") as handle:
        json.dump(generated.anomaly, handle)


def run_kv(name: str, path: str) -> dict:
    from checker.history import read_history
    from checker.linearizability import check_linearizability
    from checker.models import make_model

    w, c = time.perf_counter(), time.process_time()
    events = read_history(path)
    read_s = time.perf_counter() - w
    result = check_linearizability(events, make_model("versioned-kv"), validated=True, timeout=300)
    wall = time.perf_counter() - w
    cpu = time.process_time() - c
    own, children = _peak_mb()
    workers_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    anomaly = json.loads(Path(path + ".anomaly").read_text())
    expected = anomaly is None
    evidence = ""
    if "failure" in result:
        stuck = [s["op"] for s in result["failure"]["stuck"]]
        evidence = f"names key {result['failure']['part']}, anomaly op {'among' if anomaly and anomaly['op'] in stuck else 'NOT among'} the stuck ops"
    return {
        "case": name, "ops": result["ops"], "parts": result["parts"]["total"], "info_ops": result["info_ops"],
        "wall_s": round(wall, 2), "cpu_s_main": round(cpu, 2),
        "cpu_s_workers": round(workers_cpu.ru_utime + workers_cpu.ru_stime, 2), "read_s": round(read_s, 2),
        "peak_mb": round(own, 1), "peak_worker_mb": round(children, 1), "nodes": result["nodes"],
        "verdict": result["valid"], "expected": expected,
        "ok": result["valid"] is expected, "evidence": evidence,
    }


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        name = argv[1]
        if name == "knossos":
            out = run_knossos()
        elif argv[2] == "generate":
            generate_file(name, argv[3])
            return 0
        else:
            out = run_kv(name, argv[3])
        print(json.dumps(out))
        return 0
    selected = argv or CASES
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        for name in selected:
            if name == "knossos":
                done = subprocess.run([sys.executable, __file__, "--child", name], capture_output=True, text=True,
                                      env=env, check=True)
            else:
                path = str(Path(tmp) / f"{name}.jsonl")
                subprocess.run([sys.executable, __file__, "--child", name, "generate", path], env=env, check=True)
                done = subprocess.run([sys.executable, __file__, "--child", name, "check", path],
                                      capture_output=True, text=True, env=env, check=True)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            print(" ".join(f"{k}={v}" for k, v in result.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
