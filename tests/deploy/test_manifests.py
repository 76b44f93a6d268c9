"""The rendered k8s/ overlays: valid Kubernetes objects that agree with the code they deploy
(the gateway's routes and settings, the way `ich triton` runs Triton), pinned images,
non-root containers, ports that meet, autoscaling and policies that select what they mean to."""

from __future__ import annotations

import os
import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from deploy_manifests import (
    K8S,
    Manifests,
    Obj,
    container_named,
    container_port,
    containers,
    option,
    pod_spec,
    quantity,
    render,
    selects,
)
from fastapi import FastAPI

import api
from api.settings import Settings
from ich.serving.client import PIPELINE
from ich.serving.server import CPU_FLAGS, SHM_BYTES, TritonServer

KUBERNETES = ("1.29.0", kubernetes_validate.latest_version())
"""The oldest Kubernetes the manifests claim, and the newest the schemas know."""
GATEWAY, TRITON = "ich-gateway", "ich-triton"
OWN_IMAGES = ("ich-gateway", "ich-triton-cpu", "ich-triton-gpu", "ich-model-repository")
EXACT_TAG = re.compile(r"^\d+\.\d+(\.\d+)?([.-][0-9A-Za-z.-]+)?$")
"""A release tag: 0.1.0, 0.1.0-gpu, 24.10-py3. Never latest, never a moving major."""


def _routes(app: FastAPI) -> dict[str, str]:
    """The summary of each GET operation of the gateway's OpenAPI, by path."""
    paths = app.openapi()["paths"]
    return {path: ops["get"].get("summary", "") for path, ops in paths.items() if "get" in ops}


@pytest.mark.parametrize("version", KUBERNETES)
def test_every_object_is_valid_kubernetes(overlay: Manifests, version: str) -> None:
    for obj in overlay.objects:
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("version", KUBERNETES)
def test_the_prometheus_adapter_rules_render_as_a_valid_configmap(version: str) -> None:
    monitoring = Manifests("monitoring", render(K8S / "monitoring"))
    for obj in monitoring.objects:
        kubernetes_validate.validate(obj, version, strict=True)
    rules = yaml.safe_load(monitoring.data("ConfigMap", "ich-prometheus-adapter")["config.yaml"])
    source = yaml.safe_load((K8S / "monitoring" / "prometheus-adapter-rules.yaml").read_text())
    assert rules == source and rules["rules"]


def test_images_are_pinned_and_ours_carry_the_project_version(overlay: Manifests) -> None:
    for deployment in overlay.of("Deployment"):
        for container in containers(deployment):
            image = container["image"]
            name, _, tag = image.split("@")[0].rpartition(":")
            assert "@sha256:" in image or EXACT_TAG.match(tag), f"{image} is not pinned"
            assert tag != "latest"
            if name.rsplit("/", 1)[-1] in OWN_IMAGES:
                assert tag.split("-")[0] == api.__version__, (
                    f"{image} is not version {api.__version__}"
                )


def test_every_image_has_its_dockerfile(overlay: Manifests) -> None:
    for deployment in overlay.of("Deployment"):
        for container in containers(deployment):
            name = container["image"].split("@")[0].rpartition(":")[0].rsplit("/", 1)[-1]
            assert (K8S / "images" / f"{name.removeprefix('ich-')}.Dockerfile").is_file(), name


def test_triton_and_its_model_repository_come_from_one_release(overlay: Manifests) -> None:
    """The python steps' code is in the Triton image and their configs in the repository
    image: both must be built from the same commit."""
    tags = {
        c["image"].rpartition(":")[2].split("-")[0]
        for c in containers(overlay.one("Deployment", TRITON))
    }
    assert len(tags) == 1


def test_containers_run_as_non_root_with_nothing_to_escalate(overlay: Manifests) -> None:
    for deployment in overlay.of("Deployment"):
        spec = pod_spec(deployment)
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True
        assert isinstance(pod["runAsUser"], int) and pod["runAsUser"] > 0
        assert pod["seccompProfile"]["type"] == "RuntimeDefault"
        assert spec["automountServiceAccountToken"] is False
        for container in containers(deployment):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, container["name"]
            assert context["capabilities"]["drop"] == ["ALL"], container["name"]
            assert context["readOnlyRootFilesystem"] is True, container["name"]
            assert not context.get("privileged", False)
            assert context.get("runAsUser", pod["runAsUser"]) > 0


def test_the_namespace_enforces_the_restricted_pod_security_standard(overlay: Manifests) -> None:
    (namespace,) = overlay.of("Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert {
        o["metadata"].get("namespace") for o in overlay.objects if o["kind"] != "Namespace"
    } == {namespace["metadata"]["name"]}


def test_containers_set_requests_and_memory_limits(overlay: Manifests) -> None:
    for deployment in overlay.of("Deployment"):
        for container in containers(deployment):
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), container["name"]
            assert "memory" in resources["limits"], container["name"]


def test_gateway_probes_point_at_its_liveness_and_readiness_routes(
    overlay: Manifests, gateway_app: FastAPI
) -> None:
    gateway = container_named(overlay.one("Deployment", GATEWAY), "gateway")
    routes = _routes(gateway_app)
    for probe, meaning in (
        ("livenessProbe", "Liveness"),
        ("startupProbe", "Liveness"),
        ("readinessProbe", "Readiness"),
    ):
        path = gateway[probe]["httpGet"]["path"]
        assert path in routes, f"{probe} {path} is not a GET route of the gateway"
        assert routes[path].startswith(meaning), (probe, routes[path])
        container_port(gateway, gateway[probe]["httpGet"]["port"])


def test_gateway_listens_where_its_probes_service_and_scrape_look(
    overlay: Manifests, gateway_app: FastAPI
) -> None:
    deployment = overlay.one("Deployment", GATEWAY)
    gateway = container_named(deployment, "gateway")
    port = int(option(gateway["args"], "--port"))
    assert container_port(gateway, "http") == port
    assert option(gateway["args"], "--host") == "0.0.0.0"
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == port
    assert annotations["prometheus.io/path"] in _routes(gateway_app)


def test_triton_listens_on_the_ports_it_declares(overlay: Manifests) -> None:
    deployment = overlay.one("Deployment", TRITON)
    triton = container_named(deployment, "triton")
    for flag, name in (
        ("--http-port", "http"),
        ("--grpc-port", "grpc"),
        ("--metrics-port", "metrics"),
    ):
        assert int(option(triton["args"], flag)) == container_port(triton, name)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container_port(triton, triton[probe]["httpGet"]["port"]) == container_port(
            triton, "http"
        )
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == container_port(triton, "metrics")


def test_services_select_pods_and_reach_declared_ports(overlay: Manifests) -> None:
    for service in overlay.of("Service"):
        selector = service["spec"]["selector"]
        (deployment,) = [
            d
            for d in overlay.of("Deployment")
            if selects(selector, d["spec"]["template"]["metadata"]["labels"])
        ]
        main = pod_spec(deployment)["containers"]
        for port in service["spec"]["ports"]:
            assert any(_has_port(c, port["targetPort"]) for c in main), (
                service["metadata"]["name"],
                port,
            )


def _has_port(container: Obj, port: int | str) -> bool:
    try:
        container_port(container, port)
    except AssertionError:
        return False
    return True


def test_gateway_settings_are_ones_the_gateway_reads(overlay: Manifests) -> None:
    known = {f"ICH_{name.upper()}" for name in Settings.model_fields} | {"DATABASE_URL"}
    environment = overlay.environment(GATEWAY, "gateway")
    ours = {k for k in environment if k.startswith("ICH_") or k == "DATABASE_URL"}
    assert ours <= known, f"not gateway settings: {sorted(ours - known)}"
    assert "DATABASE_URL" in environment  # PostgreSQL by URL: replicas and restarts share it


def test_gateway_settings_validate_and_name_the_triton_service(
    overlay: Manifests, monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = overlay.environment(GATEWAY, "gateway")
    for name in [n for n in os.environ if n.startswith("ICH_") or n == "DATABASE_URL"]:
        monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env()
    assert settings.database_url and settings.database_url.startswith("postgresql")
    host, port = settings.triton_url.rsplit(":", 1)
    service = overlay.one("Service", host)
    (served,) = [p for p in service["spec"]["ports"] if p["port"] == int(port)]
    assert served["name"] == settings.triton_protocol
    triton = container_named(overlay.one("Deployment", TRITON), "triton")
    assert container_port(triton, served["targetPort"]) == int(
        option(triton["args"], f"--{settings.triton_protocol}-port")
    )


def test_the_gateway_writes_only_to_its_volumes(overlay: Manifests) -> None:
    deployment = overlay.one("Deployment", GATEWAY)
    gateway = container_named(deployment, "gateway")
    mounts = {m["mountPath"]: m["name"] for m in gateway["volumeMounts"]}
    data_dir = overlay.environment(GATEWAY, "gateway")["ICH_DATA_DIR"]
    assert data_dir in mounts and "/tmp" in mounts
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    claim = overlay.one(
        "PersistentVolumeClaim", volumes[mounts[data_dir]]["persistentVolumeClaim"]["claimName"]
    )
    # Replicas share the volume and own their analyses by pod name: any of them serves any
    # analysis, and a stopped one's work is taken over (api/replicas.py).
    hpa = overlay.one("HorizontalPodAutoscaler", GATEWAY)
    assert hpa["spec"]["minReplicas"] >= 2
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    (owner,) = [e for e in gateway["env"] if e["name"] == "ICH_REPLICA_ID"]
    assert owner["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert pod_spec(deployment)["enableServiceLinks"] is False  # no ICH_TRITON_* service variables


def test_triton_runs_as_ich_triton_runs_it(overlay: Manifests, tmp_path: Path) -> None:
    """Every option `ich triton` passes, but addresses, ports and folders, is in the pod's
    command; the CPU-only options only on the cpu overlay."""
    args = container_named(overlay.one("Deployment", TRITON), "triton")["args"]
    assert args[0] == "tritonserver"
    local = TritonServer(cache=tmp_path).command()[1:]
    placed = re.compile(
        r"--(model-repository|backend-directory|(http|grpc|metrics)-(address|port))="
    )
    expected = [a for a in local if not placed.match(a) and a not in CPU_FLAGS]
    names = {a.split("=")[0] for a in args}
    for arg in expected:
        # The grace period of a pod, not of a terminal, bounds the exit timeout.
        if arg.startswith("--exit-timeout-secs="):
            assert "--exit-timeout-secs" in names
        else:
            assert arg in args, arg
    if overlay.name == "cpu":
        assert set(CPU_FLAGS) <= set(args)
    else:
        assert not set(CPU_FLAGS) & set(args)


def test_triton_finishes_studies_in_flight_before_it_is_killed(overlay: Manifests) -> None:
    deployment = overlay.one("Deployment", TRITON)
    args = container_named(deployment, "triton")["args"]
    assert (
        int(option(args, "--exit-timeout-secs"))
        < pod_spec(deployment)["terminationGracePeriodSeconds"]
    )


def test_the_model_repository_is_copied_where_triton_reads_it(overlay: Manifests) -> None:
    deployment = overlay.one("Deployment", TRITON)
    copier = container_named(deployment, "model-repository")
    triton = container_named(deployment, "triton")
    (target,) = [
        m for m in copier["volumeMounts"] if copier["command"][-1].rstrip("/") == m["mountPath"]
    ]
    (source,) = [m for m in triton["volumeMounts"] if m["name"] == target["name"]]
    assert option(triton["args"], "--model-repository") == source["mountPath"]
    assert source.get("readOnly") is True
    dockerfile = (K8S / "images" / "model-repository.Dockerfile").read_text()
    assert f"COPY --from=exported / {copier['command'][-2].removesuffix('.')}" in dockerfile


def test_shared_memory_holds_the_python_stubs(overlay: Manifests) -> None:
    deployment = overlay.one("Deployment", TRITON)
    triton = container_named(deployment, "triton")
    assert f"--backend-config=python,shm-default-byte-size={SHM_BYTES}" in triton["args"]
    (mount,) = [m for m in triton["volumeMounts"] if m["mountPath"] == "/dev/shm"]
    (volume,) = [v for v in pod_spec(deployment)["volumes"] if v["name"] == mount["name"]]
    shm = quantity(volume["emptyDir"]["sizeLimit"])
    assert volume["emptyDir"]["medium"] == "Memory"
    stubs = 5  # two preprocess, one detector, two postprocess instances
    largest = 32 * 3 * 20 * 256 * 256 * 4  # the blocks of a 32-block study (FP32)
    # Each stub's first region, and the largest study out of preprocess and into the detector.
    assert shm >= stubs * SHM_BYTES + 2 * largest
    assert quantity(triton["resources"]["limits"]["memory"]) > shm


def test_only_the_gpu_overlay_asks_for_a_gpu(overlay: Manifests) -> None:
    triton = container_named(overlay.one("Deployment", TRITON), "triton")
    resources = triton["resources"]
    gpus = {k: resources.get(k, {}).get("nvidia.com/gpu") for k in ("requests", "limits")}
    assert gpus == (
        {"requests": 1, "limits": 1}
        if overlay.name == "gpu"
        else {"requests": None, "limits": None}
    )


def test_autoscalers_target_deployments_with_adapter_metrics(overlay: Manifests) -> None:
    rules = yaml.safe_load((K8S / "monitoring" / "prometheus-adapter-rules.yaml").read_text())
    served = {rule["name"]["as"] for rule in rules["rules"]}
    for hpa in overlay.of("HorizontalPodAutoscaler"):
        spec = hpa["spec"]
        overlay.one(spec["scaleTargetRef"]["kind"], spec["scaleTargetRef"]["name"])
        assert 1 <= spec["minReplicas"] <= spec["maxReplicas"]
        for metric in spec["metrics"]:
            if metric["type"] == "Pods":
                assert metric["pods"]["metric"]["name"] in served
    gateway = overlay.one("HorizontalPodAutoscaler", GATEWAY)["spec"]["metrics"]
    assert {m["type"] for m in gateway} == {"Resource", "Pods"}
    triton = overlay.one("HorizontalPodAutoscaler", TRITON)["spec"]
    assert [m["pods"]["metric"]["name"] for m in triton["metrics"]] == [
        "ich_triton_queue_ms_per_study"
    ]
    assert {"scaleUp", "scaleDown"} <= set(triton["behavior"])
    assert triton["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 300


def test_the_queue_rule_counts_studies_of_the_served_pipeline() -> None:
    rules = yaml.safe_load((K8S / "monitoring" / "prometheus-adapter-rules.yaml").read_text())
    (queue,) = [r for r in rules["rules"] if r["name"]["as"] == "ich_triton_queue_ms_per_study"]
    assert f'model="{PIPELINE}"' in queue["metricsQuery"]


def test_disruption_budgets_cover_each_deployment(overlay: Manifests) -> None:
    budgets = overlay.of("PodDisruptionBudget")
    for deployment in overlay.of("Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        covering = [b for b in budgets if selects(b["spec"]["selector"]["matchLabels"], labels)]
        assert len(covering) == 1, deployment["metadata"]["name"]


def test_only_the_gateway_reaches_triton(overlay: Manifests) -> None:
    triton = overlay.one("Deployment", TRITON)
    gateway = overlay.one("Deployment", GATEWAY)
    triton_labels = triton["spec"]["template"]["metadata"]["labels"]
    gateway_labels = gateway["spec"]["template"]["metadata"]["labels"]
    policies = [
        p
        for p in overlay.of("NetworkPolicy")
        if selects(p["spec"]["podSelector"]["matchLabels"], triton_labels)
    ]
    assert len(policies) == 1 and "Ingress" in policies[0]["spec"]["policyTypes"]
    used = overlay.environment(GATEWAY, "gateway")["ICH_TRITON_URL"].rsplit(":", 1)[1]
    container = container_named(triton, "triton")
    for rule in policies[0]["spec"]["ingress"]:
        assert rule.get("from"), "a rule without `from` admits every pod"
        ports = {container_port(container, p["port"]) for p in rule["ports"]}
        for peer in rule["from"]:
            if "podSelector" in peer:
                assert "namespaceSelector" not in peer
                assert selects(peer["podSelector"]["matchLabels"], gateway_labels)
                assert int(used) in ports
            else:  # Prometheus reads metrics, nothing else
                assert peer["namespaceSelector"]["matchLabels"] == {
                    "kubernetes.io/metadata.name": "monitoring"
                }
                assert ports == {container_port(container, "metrics")}


def test_the_gateway_accepts_traffic_on_its_port_only(overlay: Manifests) -> None:
    gateway = overlay.one("Deployment", GATEWAY)
    labels = gateway["spec"]["template"]["metadata"]["labels"]
    (policy,) = [
        p
        for p in overlay.of("NetworkPolicy")
        if selects(p["spec"]["podSelector"]["matchLabels"], labels)
    ]
    ports = {
        container_port(container_named(gateway, "gateway"), p["port"])
        for r in policy["spec"]["ingress"]
        for p in r["ports"]
    }
    assert ports == {container_port(container_named(gateway, "gateway"), "http")}


def test_references_resolve_to_rendered_objects(overlay: Manifests) -> None:
    for deployment in overlay.of("Deployment"):
        for container in containers(deployment):
            for item in container.get("env", []):
                for key, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
                    ref = item.get("valueFrom", {}).get(key)
                    if ref:
                        assert ref["key"] in overlay.data(kind, ref["name"])
            for source in container.get("envFrom", []):
                for key, kind in (("secretRef", "Secret"), ("configMapRef", "ConfigMap")):
                    if key in source:
                        overlay.one(kind, source[key]["name"])
        names = {v["name"] for v in pod_spec(deployment)["volumes"]}
        for container in containers(deployment):
            assert {m["name"] for m in container.get("volumeMounts", [])} <= names


def test_the_shipped_database_secret_is_an_example_that_cannot_connect(overlay: Manifests) -> None:
    """CI renders without a real password; the example names a host that never resolves."""
    url = overlay.environment(GATEWAY, "gateway")["DATABASE_URL"]
    assert re.search(r"@[^/]+\.invalid[:/]", url), url


def test_dicomweb_senders_stay_on_one_gateway(overlay: Manifests) -> None:
    """STOW-RS studies are assembled in the memory of the replica receiving them."""
    service = overlay.one("Service", f"{GATEWAY}-dicomweb")
    assert service["spec"]["sessionAffinity"] == "ClientIP"
    gateway = container_named(overlay.one("Deployment", GATEWAY), "gateway")
    (port,) = service["spec"]["ports"]
    assert container_port(gateway, port["targetPort"]) == 8000
    selector = overlay.one("Service", GATEWAY)["spec"]["selector"]
    assert service["spec"]["selector"] == selector
