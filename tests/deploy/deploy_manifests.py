"""The k8s/ manifests as `kubectl kustomize` renders them, and the lookups the tests share."""

from __future__ import annotations

import base64
import functools
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
OVERLAYS = ("cpu", "gpu")
"""The deployable overlays; every test of a rendered deployment runs on each."""

Obj = dict[str, Any]
_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9}


@functools.cache
def _kustomize(path: Path) -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not on PATH: the kustomizations cannot be rendered")
    done = subprocess.run(
        [kubectl, "kustomize", str(path)], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, f"kubectl kustomize {path} failed:\n{done.stderr}"
    return done.stdout


def render(path: Path) -> list[Obj]:
    """Every object of the kustomization at ``path``."""
    return [doc for doc in yaml.safe_load_all(_kustomize(path)) if doc]


@dataclass(frozen=True)
class Manifests:
    """One rendered kustomization."""

    name: str
    objects: list[Obj]

    def of(self, kind: str) -> list[Obj]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str, name: str) -> Obj:
        found = [o for o in self.of(kind) if o["metadata"]["name"] == name]
        assert len(found) == 1, f"{self.name}: expected one {kind} {name}, found {len(found)}"
        return found[0]

    def data(self, kind: str, name: str) -> dict[str, str]:
        """A ConfigMap's or Secret's values (Secrets decoded)."""
        obj = self.one(kind, name)
        if kind == "Secret":
            return {k: base64.b64decode(v).decode() for k, v in obj.get("data", {}).items()}
        return dict(obj.get("data", {}))

    def environment(self, deployment: str, container: str) -> dict[str, str]:
        """A container's environment as the kubelet builds it: ``envFrom`` ConfigMaps and
        Secrets, then ``env`` (values, or the referenced ConfigMap or Secret key)."""
        spec = container_named(self.one("Deployment", deployment), container)
        values: dict[str, str] = {}
        for source in spec.get("envFrom", []):
            for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                if key in source:
                    values |= self.data(kind, source[key]["name"])
        for item in spec.get("env", []):
            if "value" in item:
                values[item["name"]] = item["value"]
                continue
            ref = item["valueFrom"]
            for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                if key in ref:
                    values[item["name"]] = self.data(kind, ref[key]["name"])[ref[key]["key"]]
            if "resourceFieldRef" in ref or "fieldRef" in ref:
                values[item["name"]] = "<from the pod>"
        return values


def pod_spec(deployment: Obj) -> Obj:
    return deployment["spec"]["template"]["spec"]


def containers(deployment: Obj, init: bool = True) -> list[Obj]:
    spec = pod_spec(deployment)
    return [*(spec.get("initContainers", []) if init else []), *spec["containers"]]


def container_named(deployment: Obj, name: str) -> Obj:
    return next(c for c in containers(deployment) if c["name"] == name)


def container_port(container: Obj, port: int | str) -> int:
    """The number of a container port given by name or number (fails if the port is absent)."""
    for declared in container.get("ports", []):
        if port in (declared["containerPort"], declared.get("name")):
            return int(declared["containerPort"])
    raise AssertionError(f"container {container['name']} has no port {port!r}")


def option(args: list[str], name: str) -> str:
    """The value of ``--name=value`` or ``--name value`` in a command line."""
    for index, arg in enumerate(args):
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
        if arg == name:
            return args[index + 1]
    raise AssertionError(f"{name} is not set in {args}")


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def quantity(value: str | int) -> int:
    """Bytes in a Kubernetes memory quantity (``2Gi``, ``512Mi``, ``1000``)."""
    text = str(value)
    for suffix, factor in _UNITS.items():
        if text.endswith(suffix):
            return int(float(text.removesuffix(suffix)) * factor)
    return int(text)
