"""A clean install: the locks carry no machine's package-index settings, every pin has hashes, the runtime set
is the image's and the development set adds only tools on top; logrotate's options do not fight.

A real install of the lock from the index is `make check-lock` (it needs the network, so it is not a test)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOCKS = ("requirements.lock", "requirements-dev.lock", "requirements-bootstrap.lock")
DEV_TOOLS = {"pytest", "pytest-asyncio", "hypothesis", "ruff", "mypy", "import-linter"}


def _requirements(text: str) -> dict[str, tuple[str, set[str]]]:
    """name -> (version, hashes) from a pip-compile file: a requirement and its `\\`-continued --hash lines."""
    out: dict[str, tuple[str, set[str]]] = {}
    joined = re.sub(r"\s*\\\n\s*", " ", text)
    for line in joined.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        assert not line.startswith("-"), f"an option line in a lock: {line!r}"
        m = re.match(r"^([A-Za-z0-9._-]+)==([^\s;]+)(?:\s*;[^-]*)?((?:\s+--hash=sha256:[0-9a-f]{64})*)$", line)
        assert m, f"not a pinned, hashed requirement: {line[:120]!r}"
        hashes = set(re.findall(r"sha256:([0-9a-f]{64})", m.group(3)))
        assert hashes, f"{m.group(1)} has no --hash"
        out[m.group(1).lower()] = (m.group(2), hashes)
    return out


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _deps(spec: list[str]) -> set[str]:
    return {_norm(re.match(r"[A-Za-z0-9._-]+", s).group(0)) for s in spec}  # type: ignore[union-attr]


@pytest.mark.parametrize("name", LOCKS)
def test_lock_has_no_index_option_or_local_path(name: str) -> None:
    text = (ROOT / name).read_text()
    for bad in ("--extra-index-url", "--index-url", "--find-links", "--trusted-host", "file:", "/opt/", "/tmp/",
                "/home/", "/root/", "/work/"):
        assert bad not in text, f"{name} carries {bad!r}"
    reqs = _requirements(text)
    assert reqs  # at least one pinned, hashed requirement


def test_runtime_and_dev_sets_agree_and_split() -> None:
    runtime = _requirements((ROOT / "requirements.lock").read_text())
    dev = _requirements((ROOT / "requirements-dev.lock").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime_deps = _deps(project["dependencies"])
    dev_deps = _deps(project["optional-dependencies"]["test"])
    assert runtime_deps <= {_norm(n) for n in runtime}, "a runtime dependency missing from requirements.lock"
    assert dev_deps <= {_norm(n) for n in dev}, "a dev dependency missing from requirements-dev.lock"
    assert dev_deps >= DEV_TOOLS  # import-linter too: `make lint` runs its contracts
    # no test or lint tool in the runtime set (the Docker image installs exactly that set)
    assert not (DEV_TOOLS & {_norm(n) for n in runtime}), "a dev tool in the runtime lock"
    # the dev set is a superset with the very same pins and hashes: `make test` reinstalls nothing
    for n, (version, hashes) in runtime.items():
        assert n in dev, f"{n} missing from requirements-dev.lock"
        assert dev[n] == (version, hashes), f"{n}: the two locks disagree"


def test_make_and_docker_install_with_hashes_from_the_right_set() -> None:
    makefile = (ROOT / "Makefile").read_text()
    # uv, else pip: both with --require-hashes on the one file they are given
    install = re.search(r"^install_lock = (.*?[^\\])$", makefile, re.M | re.S)
    assert install and install.group(1).count("--require-hashes -r $(1)") == 2
    assert "$(call install_lock,requirements.lock)" in makefile
    assert "$(call install_lock,requirements-dev.lock)" in makefile
    assert "--require-hashes -r requirements-bootstrap.lock" in makefile
    assert set(_requirements((ROOT / "requirements-bootstrap.lock").read_text())) == {"uv"}
    assert re.search(r"^run: \$\(VENV\)/\.runtime$", makefile, re.M), "`make run` needs only the runtime set"
    assert re.search(r"^test: \$\(VENV\)/\.installed", makefile, re.M)
    docker = "\n".join(ln for ln in (ROOT / "Dockerfile").read_text().splitlines() if not ln.startswith("#"))
    assert "requirements-dev" not in docker
    assert "pip install --require-hashes -r requirements.lock" in docker
    assert "!requirements.lock" in (ROOT / ".dockerignore").read_text()


def test_logrotate_does_not_combine_copytruncate_with_create() -> None:
    for conf in (ROOT / "deploy").glob("logrotate*"):
        options = {ln.split()[0] for ln in conf.read_text().splitlines() if ln.strip() and not ln.lstrip()
                   .startswith("#")}
        assert not {"copytruncate", "create"} <= options, f"{conf.name}: copytruncate with create"
        assert "copytruncate" in options  # the bot keeps its descriptor: truncating in place is the one that works
