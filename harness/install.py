"""The install step: the project on hosts that share nothing with the controller (every backend but netns/local).

On the controller (:func:`build_bundle`, cached): a wheel of this checkout plus a wheelhouse of what the hosts need
at run time (:data:`HOST_PACKAGES`: what raftkv's node and the nemeses' daemons import, with the versions
pyproject.toml asks for; not the controller's report and analysis stack). Both are built by the controller's own
pip (``pip wheel``, from its index or cache), so the hosts need no internet. Cached under
``$RAFTKV_LAB_CACHE`` (default ``~/.cache/raftkv-lab``): the wheelhouse by requirements and interpreter, the
project's wheel by a hash of its sources.

On a host (:func:`install`, through Remote only): ``<dir>/install/<key>/`` holds ``wheels/``, ``venv/`` and an
``ok`` file with the key, written last. A host whose ``ok`` holds the bundle's key is reused as is; else the wheels
are uploaded and unpacked into a fresh venv (:data:`UNPACK_PY`) under a lock (two runs installing at once wait for each
other). Debian prerequisites are checked first (:func:`check_host`), and a host whose Python is not the
controller's (version or machine) is refused: the wheels are built for the controller's.

The clock nemesis ships its shim prebuilt (compiled on the controller, uploaded), so the hosts need no compiler.
"""

from __future__ import annotations

import asyncio
import base64
import fnmatch
import hashlib
import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.protocols import HostPython, PythonRuntime, Remote, RemoteError

REPO_ROOT = Path(__file__).resolve().parent.parent
DIST_NAME = "raftkv-lab"
# What runs on a host: `python -m raftkv serve` and the nemeses' daemons (nemesis.nfqueue: standard library only).
HOST_PACKAGES = ("aiohttp", "msgpack", "prometheus-client", "uvloop")
# tool on the host -> the Debian package that provides it
HOST_TOOLS = {"python3": "python3", "ip": "iproute2", "iptables": "iptables", "setsid": "util-linux",
              "flock": "util-linux", "timeout": "coreutils", "od": "coreutils", "dd": "coreutils",
              "sed": "sed", "kill": "procps"}
PIP_TIMEOUT_S = 600.0
INSTALL_TIMEOUT_S = 300.0


class InstallError(RuntimeError):
    """The project could not be built on the controller or installed on a host (the message says which and why,
    and what to install where a prerequisite is missing)."""


@dataclass(frozen=True, slots=True)
class Bundle:
    """What a host installs: every wheel in ``wheels`` (the project's and its host dependencies'), under ``key``."""

    key: str
    wheels: tuple[Path, ...]
    python: str  # "3.11": the hosts' python3 must be this version
    machine: str  # "x86_64": and this machine


def runtime_for(host: Remote) -> PythonRuntime:
    """How to run the project's modules on ``host``: its own install (HostPython), else the controller's
    interpreter with this checkout on PYTHONPATH (hosts that share the controller's file system)."""
    if isinstance(host, HostPython):
        return host.python_runtime()
    return PythonRuntime(sys.executable, {"PYTHONPATH": str(REPO_ROOT)}, str(REPO_ROOT))


def cache_root() -> Path:
    return Path(os.environ.get("RAFTKV_LAB_CACHE") or Path.home() / ".cache" / "raftkv-lab")


def host_requirements() -> list[str]:
    """The HOST_PACKAGES requirements exactly as the project's metadata states them (one table: pyproject.toml)."""
    try:
        declared = importlib.metadata.requires(DIST_NAME) or []
    except importlib.metadata.PackageNotFoundError:
        raise InstallError(f"{DIST_NAME} is not installed on the controller (run scripts/bootstrap)") from None
    wanted = {_canonical(n) for n in HOST_PACKAGES}
    out = [r for r in declared if "extra ==" not in r and _requirement_name(r) in wanted]
    missing = wanted - {_requirement_name(r) for r in out}
    if missing:
        raise InstallError(f"pyproject.toml does not list {', '.join(sorted(missing))} among the dependencies")
    return sorted(out)


def _requirement_name(requirement: str) -> str:
    return _canonical(re.split(r"[<>=!~; \[]", requirement, maxsplit=1)[0])


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _layout(root: Path = REPO_ROOT) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(top-level packages, package-data suffixes) as pyproject.toml's [tool.setuptools] tables declare them."""
    table = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    include = table["packages"]["find"]["include"]
    packages = tuple(sorted(d.name for d in root.iterdir() if (d / "__init__.py").is_file()
                            and any(fnmatch.fnmatch(d.name, pat) for pat in include)))
    data = tuple(sorted({pat.removeprefix("*") for pats in table.get("package-data", {}).values() for pat in pats}))
    return packages, (".py", *data)


def source_files(root: Path = REPO_ROOT) -> list[Path]:
    """Every file of the project's wheel: its packages' modules and package data, sorted."""
    packages, suffixes = _layout(root)
    return [p for pkg in packages for p in sorted((root / pkg).rglob("*"))
            if p.suffix in suffixes and "__pycache__" not in p.parts and p.is_file()]


def source_digest(root: Path = REPO_ROOT) -> str:
    """A hash of everything the project's wheel is built from (its files and pyproject.toml)."""
    h = hashlib.sha256()
    for f in [root / "pyproject.toml", *source_files(root)]:
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def _pip(args: list[str], what: str) -> None:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise InstallError(f"building {what} on the controller: pip took over {PIP_TIMEOUT_S:g} s") from None
    if res.returncode != 0:
        raise InstallError(f"building {what} on the controller failed (pip needs its index or a cache holding "
                           f"these packages; PIP_FIND_LINKS/PIP_NO_INDEX point it at a local wheelhouse): "
                           f"{res.stderr.strip()[-800:]}")


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_project_wheel(out: Path) -> Path:
    """A wheel (PEP 427, pure Python) of this checkout's packages, written directly: building one through pip
    and setuptools takes about 20 s in an isolated build environment, this takes a fraction of a second. Its
    METADATA and entry points are those the controller's own install of this pyproject.toml carries."""
    dist = importlib.metadata.distribution(DIST_NAME)
    version = dist.version
    info = f"{DIST_NAME.replace('-', '_')}-{version}.dist-info"
    wheel_text = "Wheel-Version: 1.0\nGenerator: raftkv-lab harness.install\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    meta = {"METADATA": dist.read_text("METADATA") or f"Metadata-Version: 2.1\nName: {DIST_NAME}\nVersion: {version}\n",
            "WHEEL": wheel_text, "entry_points.txt": dist.read_text("entry_points.txt") or ""}
    path = out / f"{DIST_NAME.replace('-', '_')}-{version}-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as whl:
        for f in source_files():
            name, data = f.relative_to(REPO_ROOT).as_posix(), f.read_bytes()
            whl.writestr(name, data)
            record.append(_record_line(name, data))
        for name, text in meta.items():
            whl.writestr(f"{info}/{name}", text)
            record.append(_record_line(f"{info}/{name}", text.encode()))
        record.append(f"{info}/RECORD,,")
        whl.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return path


def _constraints() -> str:
    """The controller's installed versions, as pip constraints: the hosts run what the controller was tested with."""
    pins = {_canonical(d.metadata["Name"]): f"{d.metadata['Name']}=={d.version}"
            for d in importlib.metadata.distributions() if d.metadata["Name"] and d.metadata["Name"] != DIST_NAME}
    return "\n".join(sorted(pins.values())) + "\n"


def _cached(directory: Path, build: Callable[[Path], object]) -> tuple[Path, ...]:
    """The wheels in ``directory``, built into a fresh sibling and renamed into place when absent (atomic: a
    build cut short leaves no half directory that looks complete)."""
    if not directory.is_dir():
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
        try:
            build(tmp)
            os.replace(tmp, directory)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return tuple(sorted(directory.glob("*.whl")))


def build_bundle(cache: Path | None = None) -> Bundle:
    """The bundle for this checkout and this controller's interpreter, built or taken from the cache. Blocking
    (run it in a thread); InstallError when pip fails."""
    cache = cache or cache_root()
    python, machine = f"{sys.version_info[0]}.{sys.version_info[1]}", platform.machine()
    reqs, pins = host_requirements(), _constraints()
    req_key = hashlib.sha256(f"{python} {machine} {sys.implementation.name} {reqs} {pins}".encode()).hexdigest()[:16]
    src_key = source_digest()[:16]

    def wheelhouse(out: Path) -> None:
        (out / "constraints.txt").write_text(pins)
        _pip(["wheel", "-q", "-w", str(out), "-c", str(out / "constraints.txt"), *reqs],
             "the wheelhouse of " + ", ".join(reqs))

    deps = _cached(cache / f"wheelhouse-{req_key}", wheelhouse)
    project = _cached(cache / f"project-{src_key}", build_project_wheel)
    key = hashlib.sha256(f"{req_key} {src_key}".encode()).hexdigest()[:16]
    return Bundle(key=key, wheels=deps + project, python=python, machine=machine)


CHECK_HOST_SH = """
missing=""
for tool in "$@"; do command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"; done
python3 -c 'import venv' >/dev/null 2>&1 || missing="$missing python3-venv"
echo "missing:$missing"
python3 -c 'import sys, platform; print("python: %d.%d %s" % (sys.version_info[0], sys.version_info[1], platform.machine()))' 2>/dev/null
"""


async def check_host(host: Remote, bundle: Bundle) -> None:
    """InstallError naming the Debian packages the host lacks, or why its Python cannot run the bundle."""
    res = await host.exec(["sh", "-c", CHECK_HOST_SH, "sh", *HOST_TOOLS], timeout=30)
    lines = dict(line.split(":", 1) for line in res.stdout.splitlines() if ":" in line)
    missing = lines.get("missing", "").split()
    if missing:
        packages = sorted({HOST_TOOLS.get(m, m) for m in missing})
        raise InstallError(f"{host.name} lacks {', '.join(missing)}: apt-get install -y {' '.join(packages)}")
    have = lines.get("python", "").split()
    if have != [bundle.python, bundle.machine]:
        raise InstallError(f"{host.name} has python3 {' '.join(have) or '?'}, the controller {bundle.python} "
                           f"{bundle.machine}: the wheels are built for the controller's; use hosts with the "
                           "same Python version and machine (Debian 12: 3.11)")


# python3 UNPACK_PY SITE WHEEL...: install wheels into a venv by unpacking them, as the wheel format intends
# (PEP 427: the archive's root goes to site-packages, <name>.data/purelib and platlib too). What pip would add
# beyond that (console scripts, RECORD rewriting, byte-compiling) the lab does not use: nodes and daemons run as
# `python -m`. pip on a host costs 10 s and more per install; this a second.
UNPACK_PY = """
import sys, zipfile
site = sys.argv[1]
for wheel in sys.argv[2:]:
    with zipfile.ZipFile(wheel) as z:
        for info in z.infolist():
            parts = info.filename.split("/")
            if parts[0].endswith(".data"):
                if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                    continue
                info.filename = "/".join(parts[2:])
            z.extract(info, site)
"""

INSTALL_SH = """
set -e
dir="$1"; key="$2"; new="$3"; target="$dir/install/$key"
exec 9>"$dir/install/.lock"
flock 9
if [ "$(cat "$target/ok" 2>/dev/null)" = "$key" ]; then rm -rf "$new"; exit 0; fi
rm -rf "$target"
mkdir -p "$target"
mv "$new/wheels" "$target/wheels"
rm -rf "$new"
python3 -m venv --without-pip "$target/venv"
site=$("$target/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
"$target/venv/bin/python" -c "$4" "$site" "$target"/wheels/*.whl
"$target/venv/bin/python" -c 'import raftkv.server, nemesis.nfqueue, aiohttp, msgpack, prometheus_client'
echo "$key" > "$target/ok"
"""


async def install(host: Remote, bundle: Bundle, lab_dir: str) -> tuple[PythonRuntime, bool]:
    """Install the bundle on the host under ``<lab_dir>/install/<key>`` unless it is there already; returns the
    runtime (its venv's python) and whether anything was installed. InstallError naming the host on failure."""
    target = f"{lab_dir}/install/{bundle.key}"
    runtime = PythonRuntime(f"{target}/venv/bin/python", {}, None)
    await check_host(host, bundle)
    ok = await host.exec(["cat", f"{target}/ok"], check=False)
    if ok.returncode == 0 and ok.stdout.strip() == bundle.key:
        return runtime, False
    new = f"{lab_dir}/install/.new-{bundle.key}-{os.getpid()}-{id(host):x}"
    try:
        await host.exec(["mkdir", "-p", f"{new}/wheels"])
        await asyncio.gather(*(host.upload(w, f"{new}/wheels/{w.name}") for w in bundle.wheels))
        await host.exec(["sh", "-c", INSTALL_SH, "sh", lab_dir, bundle.key, new, UNPACK_PY],
                        timeout=INSTALL_TIMEOUT_S)
    except RemoteError as e:
        await host.exec(["rm", "-rf", new], check=False)
        raise InstallError(f"installing the project on {host.name} failed: {e}") from None
    return runtime, True
