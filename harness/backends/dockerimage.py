"""The node image of the Docker backend: this checkout baked into deploy/docker/Dockerfile on a configurable base.

The image carries the project (hosts share nothing with the controller, and have no network): a wheel of the
checkout plus a wheelhouse of its dependencies, both made on the controller, go into the build context
(``deps/`` with a requirements.txt, ``project/``), and the Dockerfile installs them into /opt/venv with pip
``--no-index``. Its tag is ``raftkv-lab-node:<hash>``, the hash over every file the wheel is made from, the
Dockerfile, the reaper and the base image's id: an unchanged checkout reuses the image (no build), a changed one
builds a new image and removes the older tags (images some container still uses stay).

The dependency wheelhouse is cached under the cache directory by a hash of pyproject.toml (pip fetches it once, from
the controller's configured index); the Dockerfile installs the dependencies in a layer of their own, so a change to
the project's code rebuilds only the last layers (a few seconds).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("harness.docker")

ROOT = Path(__file__).resolve().parent.parent.parent
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
LAB_INIT = ROOT / "deploy" / "docker" / "lab-init.py"
IMAGE_REPO = "raftkv-lab-node"
DEFAULT_BASE = "raftkv-lab-base:bookworm"  # what scripts/docker-setup builds
ROLE_LABEL = "org.raftkv-lab.role"
# What the project's wheel is made of (pyproject's package list and package data), and only that: a change
# anywhere else in the checkout (tests, docs, store/) does not rebuild the image.
PACKAGES = ("raftkv", "harness", "nemesis", "workloads", "reports", "checker")
PACKAGE_SUFFIXES = (".py", ".yaml", ".json", ".html", ".css", ".js", ".c")
TOP_FILES = ("pyproject.toml", "README.md")
UNHASHED = frozenset({Path("README.md")})  # the wheel's long description: an edit of the docs is no new image
PIP_TIMEOUT_S = 900.0
BUILD_TIMEOUT_NOTE = "the first build installs every dependency wheel (about a minute on two cores)"


class ImageError(RuntimeError):
    """The node image could not be made (the message says which step and why)."""


@dataclass(frozen=True, slots=True)
class ImageRecipe:
    """What an image is built from: the base image (name and id) and the hash of the checkout's wheel sources."""

    base: str
    base_id: str
    sources: str

    @property
    def tag(self) -> str:
        digest = hashlib.sha256(f"{self.base_id}\0{self.sources}".encode()).hexdigest()[:16]
        return f"{IMAGE_REPO}:{digest}"


def source_files(root: Path = ROOT) -> list[Path]:
    """The files the project's wheel is made from, sorted, relative to root."""
    found = [Path(name) for name in TOP_FILES if (root / name).is_file()]
    for package in PACKAGES:
        for path in (root / package).rglob("*"):
            if path.is_file() and path.suffix in PACKAGE_SUFFIXES and "__pycache__" not in path.parts:
                found.append(path.relative_to(root))
    return sorted(found)


def sources_hash(root: Path = ROOT) -> str:
    """sha256 over the wheel's sources (names and contents, README aside), the Dockerfile and the reaper."""
    h = hashlib.sha256()
    for rel in source_files(root):
        if rel in UNHASHED:
            continue
        h.update(str(rel).encode() + b"\0" + (root / rel).read_bytes() + b"\0")
    for extra in (DOCKERFILE, LAB_INIT):
        h.update(extra.name.encode() + b"\0" + extra.read_bytes() + b"\0")
    return h.hexdigest()


def dependencies(root: Path = ROOT) -> list[str]:
    """The project's runtime requirements as pyproject.toml declares them."""
    with open(root / "pyproject.toml", "rb") as f:
        deps = tomllib.load(f)["project"]["dependencies"]
    return [str(d) for d in deps]


def default_cache_dir() -> Path:
    """Where wheelhouses are cached: next to scripts/docker-setup's data root as root, else the user's cache."""
    if os.geteuid() == 0:
        return Path(os.environ.get("RAFTKV_DOCKER_DIR", "/var/lib/raftkv-lab-docker")) / "wheels"
    return Path.home() / ".cache" / "raftkv-lab" / "docker-wheels"


def _pip(args: list[str], what: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True,
                          timeout=PIP_TIMEOUT_S, check=False)
    if proc.returncode != 0:
        raise ImageError(f"{what} failed (pip exited {proc.returncode}): {proc.stderr.strip()[-800:]}")


def dependency_wheels(cache_dir: Path, root: Path = ROOT) -> Path:
    """A directory of wheels for the project's dependencies (and requirements.txt listing them), cached by the hash
    of the requirement list. pip fetches them once from the controller's configured index."""
    deps = dependencies(root)
    key = hashlib.sha256("\n".join(deps).encode()).hexdigest()[:16]
    out = cache_dir / f"deps-{key}"
    if (out / "requirements.txt").is_file():
        return out
    tmp = Path(tempfile.mkdtemp(prefix="deps-", dir=cache_dir))
    try:
        log.info("fetching the dependency wheels of the node image into %s", out)
        _pip(["wheel", "-q", "--wheel-dir", str(tmp), *deps], "building the dependency wheelhouse")
        (tmp / "requirements.txt").write_text("\n".join(deps) + "\n")
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for old in cache_dir.glob("deps-*"):  # an earlier requirement list's wheels: never used again
        if old != out and (old / "requirements.txt").is_file():
            shutil.rmtree(old, ignore_errors=True)
    return out


def project_wheel(out_dir: Path, root: Path = ROOT) -> Path:
    """Build the project's wheel into out_dir from a copy of its sources (so the checkout gets no build/ or
    egg-info, and the wheel holds exactly what sources_hash covered)."""
    with tempfile.TemporaryDirectory(prefix="raftkv-src-") as src:
        for rel in source_files(root):
            dst = Path(src) / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / rel, dst)
        _pip(["wheel", "-q", "--no-deps", "--wheel-dir", str(out_dir), src],
             "building the project's wheel")
    wheels = sorted(out_dir.glob("*.whl"))
    if not wheels:
        raise ImageError(f"pip made no wheel in {out_dir}")
    return wheels[0]


def build_context(context: Path, cache_dir: Path, root: Path = ROOT) -> None:
    """Fill an empty directory with the Dockerfile's build context: deps/, project/, lab-init.py."""
    deps = dependency_wheels(cache_dir, root)
    shutil.copytree(deps, context / "deps")
    (context / "project").mkdir()
    project_wheel(context / "project", root)
    shutil.copy2(DOCKERFILE, context / "Dockerfile")
    shutil.copy2(LAB_INIT, context / "lab-init.py")


def ensure_image(client: Any, base: str, cache_dir: Path | None = None) -> str:
    """The tag of a node image for this checkout on ``base``, built now if it does not exist yet. ``client`` is a
    docker.DockerClient. ImageError when the base is missing (with the command that makes it) or the build fails."""
    import docker.errors

    try:
        base_id = client.images.get(base).id
    except docker.errors.ImageNotFound:
        raise ImageError(f"base image {base!r} is not on this Docker host: make it with scripts/docker-setup "
                         "(debootstrap + docker import), or pass --docker-base-image") from None
    recipe = ImageRecipe(base=base, base_id=base_id, sources=sources_hash())
    try:
        client.images.get(recipe.tag)
        return recipe.tag
    except docker.errors.ImageNotFound:
        pass
    cache = cache_dir or default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="context-", dir=cache) as context:
        build_context(Path(context), cache)
        log.info("building %s on %s (%s)", recipe.tag, base, BUILD_TIMEOUT_NOTE)
        try:
            client.images.build(path=context, tag=recipe.tag, buildargs={"BASE": base}, network_mode="none",
                                rm=True, forcerm=True, labels={ROLE_LABEL: "node"})
        except docker.errors.BuildError as e:
            tail = "".join(str(c.get("stream", c.get("error", ""))) for c in list(e.build_log)[-10:])
            raise ImageError(f"building {recipe.tag} failed: {e.msg}\n{tail}") from None
    _drop_older_tags(client, recipe.tag)
    return recipe.tag


def _drop_older_tags(client: Any, keep: str) -> None:
    """Remove the other raftkv-lab-node images (older checkouts'); one a container still uses stays."""
    import docker.errors

    for image in client.images.list(name=IMAGE_REPO):
        for tag in image.tags:
            if tag != keep:
                try:
                    client.images.remove(tag)
                except docker.errors.APIError as e:  # in use by another run's container: its teardown frees it
                    log.debug("kept %s: %s", tag, e)
