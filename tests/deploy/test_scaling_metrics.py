"""The metrics the autoscalers and the adapter rules name are ones the running services export:
Triton's from a real tritonserver's /metrics, the gateway's from the app's /metrics."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
import yaml
from deploy_manifests import K8S
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from ich.serving.server import TritonServer, free_port

RULES = K8S / "monitoring" / "prometheus-adapter-rules.yaml"
_SERIES = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\{")
_MATCHER = re.compile(r'\b([a-zA-Z_][a-zA-Z0-9_]*)(=~|!~|=|!=)"([^"]*)"')
Series = dict[str, list[dict[str, str]]]
"""Label sets of each metric name."""


def _exposition(text: str) -> Series:
    """Parse the Prometheus text format."""
    series: Series = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition("{")
        name = name.split(" ")[0]
        labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"', rest.split("}")[0]))
        series.setdefault(name, []).append(labels)
    return series


def _queries() -> list[str]:
    rules = yaml.safe_load(RULES.read_text())["rules"]
    return [q for rule in rules for q in (rule["seriesQuery"], rule["metricsQuery"])]


def _named(prefix: str) -> set[str]:
    return {
        name for query in _queries() for name in _SERIES.findall(query) if name.startswith(prefix)
    }


def _matchers(metric: str) -> list[tuple[str, str, str]]:
    """(label, operator, value) of every selector on ``metric`` in the rules."""
    found = []
    for query in _queries():
        for selector in re.findall(rf"\b{metric}\{{([^}}]*)\}}", query):
            found += [m for m in _MATCHER.findall(selector) if "<<" not in m[2]]
    return found


@pytest.fixture(scope="module")
def triton_metrics(triton: TritonServer) -> Series:
    """A freshly started Triton exports its per-model counters at zero: no inference needed."""
    text = httpx.get(f"http://{triton.host}:{triton.metrics_port}/metrics", timeout=10).text
    return _exposition(text)


@pytest.fixture(scope="module")
def gateway_metrics(tmp_path_factory: pytest.TempPathFactory) -> Series:
    """The gateway's /metrics after a probe, a readiness check and a scrape (Triton absent)."""
    settings = Settings(
        data_dir=Path(tmp_path_factory.mktemp("gateway")), triton_url=f"127.0.0.1:{free_port()}"
    )
    with TestClient(create_app(settings)) as client:
        for path in ("/healthz", "/readyz", "/metrics"):
            client.get(path)
        return _exposition(client.get("/metrics").text)


def test_the_rules_name_triton_and_gateway_metrics() -> None:
    assert "nv_inference_queue_duration_us" in _named("nv_")
    assert "nv_inference_request_success" in _named("nv_")
    assert "ich_http_requests_total" in _named("ich_")
    assert _named("") == _named("nv_") | _named("ich_")


def test_triton_exports_every_metric_the_rules_use(triton_metrics: Series) -> None:
    missing = _named("nv_") - set(triton_metrics)
    assert not missing, f"not exported by Triton: {sorted(missing)}"


def test_triton_label_values_in_the_rules_exist(triton_metrics: Series) -> None:
    for metric in _named("nv_"):
        for label, operator, value in _matchers(metric):
            if operator == "=" and label not in ("namespace", "pod"):
                served = {s.get(label) for s in triton_metrics[metric]}
                assert value in served, f'{metric}{{{label}="{value}"}}: Triton has {served}'


def test_the_gateway_exports_every_metric_the_rules_use(gateway_metrics: Series) -> None:
    missing = _named("ich_") - set(gateway_metrics)
    assert not missing, f"not exported by the gateway: {sorted(missing)}"


def test_the_request_rate_leaves_out_routes_the_gateway_really_has(gateway_metrics: Series) -> None:
    """Probes and scrapes are not load: the excluded routes are ones the gateway counts."""
    counted = {s["route"] for s in gateway_metrics["ich_http_requests_total"]}
    (excluded,) = [v for label, op, v in _matchers("ich_http_requests_total") if label == "route"]
    assert set(excluded.split("|")) == {"/healthz", "/readyz", "/metrics"} <= counted
