"""The Dockerfiles of k8s/images, read as text (no Docker here): multi-stage, pinned bases,
a non-root numeric user in the image that ships, sources the build context really holds,
versions the tests passed with; and the gateway image's logging as `ich serve` configures it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from deploy_manifests import K8S, ROOT
from packaging.requirements import Requirement
from packaging.version import Version

IMAGES = K8S / "images"
DOCKERFILES = sorted(IMAGES.glob("*.Dockerfile"))
PINNED = re.compile(r"^[\w.-]+(/[\w.-]+)*:(?P<tag>\d+\.\d+[\w.-]*)(@sha256:[0-9a-f]{64})?$")
"""registry/name:release-tag, optionally @sha256:digest."""
NEVER_IN_CONTEXT = (".venv", ".ich", ".data", ".demo", "runs", ".cache", ".git", "tests")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)


def _stages(text: str) -> list[Stage]:
    """Instructions (keyword, arguments) by stage; continuation lines joined, comments dropped."""
    joined = re.sub(
        r"\\\n",
        " ",
        "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")),
    )
    stages: list[Stage] = []
    for line in joined.splitlines():
        if not line.strip():
            continue
        keyword, _, rest = line.strip().partition(" ")
        if keyword.upper() == "FROM":
            words = [w for w in rest.split() if not w.startswith("--")]
            stages.append(
                Stage(words[0], words[2] if len(words) > 2 and words[1].upper() == "AS" else None)
            )
        else:
            stages[-1].instructions.append((keyword.upper(), rest.strip()))
    return stages


def _ignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _in_context(path: str) -> bool:
    """Whether ``path`` reaches the build: .dockerignore starts by excluding everything and lets
    named paths back in (a path is in when one of them is it or a folder above it), then
    excludes names inside those again."""
    parts = path.strip("/").split("/")
    allowed = [p[1:] for p in _ignore_patterns() if p.startswith("!")]
    excluded = [p.removeprefix("**/") for p in _ignore_patterns()[1:] if not p.startswith("!")]
    let_in = any(parts[: len(a.split("/"))] == a.split("/") for a in allowed)
    return let_in and not any(
        part == e or (e.startswith("*.") and part.endswith(e[1:]))
        for part in parts
        for e in excluded
    )


def test_there_is_a_dockerfile_for_each_image() -> None:
    names = {p.name.removesuffix(".Dockerfile") for p in DOCKERFILES}
    assert names == {"gateway", "triton-cpu", "triton-gpu", "model-repository"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_builds_are_multi_stage_from_pinned_bases(dockerfile: Path) -> None:
    stages = _stages(dockerfile.read_text())
    assert len(stages) >= 2, "build tools and caches stay in a build stage"
    names = {s.name for s in stages if s.name}
    for stage in stages:
        if stage.base in names or stage.base == "scratch":
            continue
        found = PINNED.match(stage.base)
        assert found, f"{stage.base}: not pinned to a release tag (digest optional)"
        assert "latest" not in found["tag"]
    external = [s.base for s in stages if s.base not in names and s.base != "scratch"]
    by_name: dict[str, set[str]] = {}
    for base in external:
        by_name.setdefault(base.split(":")[0], set()).add(base)
    assert all(len(refs) == 1 for refs in by_name.values()), f"one pin per base image: {by_name}"


def test_python_bases_are_pinned_by_digest() -> None:
    """Docker Hub re-pushes release tags with OS updates: the digest keeps builds repeatable."""
    for dockerfile in DOCKERFILES:
        for stage in _stages(dockerfile.read_text()):
            if stage.base.startswith(("python:", "busybox:")):
                assert "@sha256:" in stage.base, f"{dockerfile.name}: {stage.base}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_the_shipped_stage_runs_as_a_numeric_non_root_user(dockerfile: Path) -> None:
    final = _stages(dockerfile.read_text())[-1]
    users = [args for keyword, args in final.instructions if keyword == "USER"]
    assert users, "the final stage sets no USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) > 0, users[-1]
    assert not gid or (gid.isdigit() and int(gid) > 0), users[-1]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_copied_sources_exist_and_reach_the_build_context(dockerfile: Path) -> None:
    stages = _stages(dockerfile.read_text())
    names = {s.name for s in stages if s.name}
    for stage in stages:
        for keyword, args in stage.instructions:
            if keyword not in ("COPY", "ADD"):
                continue
            words = args.split()
            source_from = [w.split("=", 1)[1] for w in words if w.startswith("--from=")]
            if source_from:
                assert source_from[0] in names, f"COPY --from={source_from[0]}: no such stage"
                continue
            for source in [w for w in words if not w.startswith("--")][:-1]:
                assert (ROOT / source).exists(), source
                assert _in_context(source), f"{source} is left out by .dockerignore"


def test_the_build_context_leaves_out_environments_data_and_caches() -> None:
    assert _ignore_patterns()[0] == "*", "the context starts empty and lets in what images need"
    for path in NEVER_IN_CONTEXT:
        assert not _in_context(path), path
    assert not _in_context("ich/__pycache__/cli.cpython-311.pyc")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_constraints_pin_every_requirement_the_images_install() -> None:
    pins: dict[str, Version] = {}
    for line in (IMAGES / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"not an exact pin: {line}"
            pins[_normal(name)] = Version(version)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    for text in [*project["dependencies"], *extras["model"], *extras["serve"], *extras["export"]]:
        requirement = Requirement(text)
        name = _normal(requirement.name)
        assert name in pins, f"{name} is not pinned in k8s/images/constraints.txt"
        assert requirement.specifier.contains(pins[name], prereleases=True), (text, pins[name])


_LOGGERS = """
import json, logging, sys
names = ["", "uvicorn", "uvicorn.error", "httpx", "httpcore", "highdicom", "pydicom"]
state = {}
for name in names + sorted(logging.root.manager.loggerDict):
    logger = logging.getLogger(name or None)
    state[name] = [
        logging.getLevelName(logger.level), logger.propagate,
        [type(h).__name__ + "/" + type(h.formatter).__name__ for h in logger.handlers],
    ]
print(json.dumps(state))
"""


def _logger_state(setup: str) -> dict[str, list[object]]:
    code = setup + "\n" + _LOGGERS
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_the_gateway_image_logs_as_ich_serve_does() -> None:
    """uvicorn --log-config k8s/images/gateway-logging.json sets up the loggers as
    api.logs.configure does for `ich serve` (access lines are off by --no-access-log)."""
    served = _logger_state("import api.logs; api.logs.configure('INFO')")
    config = IMAGES / "gateway-logging.json"
    setup = (
        "import json, logging.config, api.logs; logging.config.dictConfig(json.load(open({!r})))"
    )
    imaged = _logger_state(setup.format(str(config)))
    changed = {name for name, state in served.items() if state != imaged.get(name)}
    assert changed <= {"uvicorn.access"}, {n: (served[n], imaged.get(n)) for n in changed}
    assert served[""][2] == ["StreamHandler/JsonFormatter"]
    gateway = (IMAGES / "gateway.Dockerfile").read_text()
    assert '"--no-access-log"' in gateway and "/etc/ich/logging.json" in gateway
