"""deploy/ and k8s/ stay in step with the code: every service of the registry is deployed,
probed on /health/live and /health/ready on the port it serves, scraped for metrics, and
configured only with settings that exist."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.registry import SERVICES
from shared.settings import documented_settings
from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"
K8S = ROOT / "k8s"
OVERLAYS = sorted(p.parent for p in (K8S / "overlays").glob("*/kustomization.yaml"))
SETTINGS = {name for name, _type, _default in documented_settings()}
# Variables that are not Gatehouse settings but are read by the image or compose itself.
NOT_SETTINGS = {"SERVICE"}


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d.get("kind") == kind}


def _base_documents() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for resource in kustomization["resources"]:
        docs.extend(_documents(K8S / "base" / resource))
    return docs


def test_every_yaml_file_parses() -> None:
    files = [*DEPLOY.rglob("*.yaml"), *K8S.rglob("*.yaml")]
    assert len(files) >= 10
    for path in files:
        assert _documents(path), f"{path} is empty"


@pytest.mark.parametrize(
    "directory", [K8S / "base", *OVERLAYS], ids=lambda p: str(p.relative_to(K8S))
)
def test_kustomization_names_only_files_that_exist(directory: Path) -> None:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    for resource in kustomization.get("resources", []):
        target = directory / resource
        assert target.is_file() or (target / "kustomization.yaml").is_file(), target
    for patch in kustomization.get("patches", []):
        if "path" in patch:
            assert (directory / patch["path"]).is_file(), patch["path"]
        else:
            assert yaml.safe_load(patch["patch"]), "an inline patch parses"
    listed = set(kustomization.get("resources", [])) | {
        p["path"] for p in kustomization.get("patches", []) if "path" in p
    }
    for path in directory.glob("*.yaml"):
        assert path.name == "kustomization.yaml" or path.name in listed, f"{path} is not used"


def _check_deployments(docs: list[dict[str, Any]]) -> None:
    deployments = _by_kind(docs, "Deployment")
    services = _by_kind(docs, "Service")
    for name in SERVICES:
        deployment = deployments.get(f"gatehouse-{name}")
        assert deployment is not None, f"no Deployment for {name}"
        pod = deployment["spec"]["template"]
        labels = pod["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        (container,) = pod["spec"]["containers"]
        env = {e["name"]: e for e in container.get("env", [])}
        assert env["SERVICE"]["value"] == name
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for probe, path in (("livenessProbe", "/health/live"), ("readinessProbe", "/health/ready")):
            get = container[probe]["httpGet"]
            assert get["path"] == path, f"{name} {probe}"
            assert ports.get(get["port"], get["port"]) in ports.values(), f"{name} {probe} port"
        annotations = pod["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/path"] == "/metrics"
        assert int(annotations["prometheus.io/port"]) in ports.values()
        refs = {
            kind: {ref[kind]["name"] for ref in container["envFrom"] if kind in ref}
            for kind in ("configMapRef", "secretRef")
        }
        assert any(n.startswith("gatehouse-config") for n in refs["configMapRef"]), name
        assert any(n.startswith("gatehouse-secrets") for n in refs["secretRef"]), name
        assert set(env) - NOT_SETTINGS <= SETTINGS, f"{name}: unknown settings"
        service = services[f"gatehouse-{name}"]
        assert service["spec"]["selector"].items() <= labels.items()
        (port,) = service["spec"]["ports"]
        assert ports.get(port["targetPort"], port["targetPort"]) in ports.values()


def test_every_service_has_a_probed_scraped_deployment_and_a_service() -> None:
    _check_deployments(_base_documents())


def test_the_config_map_holds_only_known_settings() -> None:
    config = _by_kind(_base_documents(), "ConfigMap")["gatehouse-config"]
    assert set(config["data"]) <= SETTINGS
    assert config["data"]["GATEHOUSE_HTTP_HOST"] == "0.0.0.0"


def test_nats_and_postgres_are_references_to_servers_run_elsewhere() -> None:
    docs = _base_documents()
    services = _by_kind(docs, "Service")
    for name in ("gatehouse-nats", "gatehouse-postgres"):
        assert services[name]["spec"]["type"] == "ExternalName"
    nats_url = _by_kind(docs, "ConfigMap")["gatehouse-config"]["data"]["GATEHOUSE_NATS_URL"]
    assert "//gatehouse-nats:" in nats_url


def test_the_gateway_scales_on_cpu() -> None:
    docs = _base_documents()
    (hpa,) = _by_kind(docs, "HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "gatehouse-gateway",
    }
    assert "replicas" not in _by_kind(docs, "Deployment")["gatehouse-gateway"]["spec"]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.name)
def test_overlays_build(overlay: Path) -> None:
    built = subprocess.run(
        ["kubectl", "kustomize", str(overlay)], capture_output=True, text=True, timeout=60
    )
    assert built.returncode == 0, built.stderr
    docs = [d for d in yaml.safe_load_all(built.stdout) if d]
    _check_deployments(docs)
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {
        f"gatehouse-{overlay.name}" if overlay.name != "prod" else "gatehouse"
    }


def test_compose_runs_every_service_health_checked_with_the_same_settings() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"nats", "postgres"} <= set(services)
    assert "--jetstream" in services["nats"]["command"]
    for name in SERVICES:
        service = services[name]
        env = service["environment"]
        assert env["SERVICE"] == name
        assert set(env) - NOT_SETTINGS <= SETTINGS, f"{name}: unknown settings"
        assert env["GATEHOUSE_NATS_URL"] == "nats://nats:4222"
        assert "@postgres:5432/" in env["GATEHOUSE_DATABASE_URL"]
        assert "/health/ready" in " ".join(service["healthcheck"]["test"])
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
        for needed in ("nats", "postgres"):
            assert service["depends_on"][needed]["condition"] == "service_healthy"
    assert [p.split(":")[-1] for p in services["gateway"]["ports"]] == ["8080"]
    assert env["GATEHOUSE_HTTP_PORT"] == "8080"


def test_compose_variables_are_all_in_the_env_example() -> None:
    used = set(re.findall(r"\$\{(\w+)", (DEPLOY / "compose.yaml").read_text()))
    example = {
        line.split("=", 1)[0]
        for line in (DEPLOY / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert used <= example, f"missing from .env.example: {used - example}"
    assert {v for v in example if v.startswith("GATEHOUSE_")} <= SETTINGS


def test_the_image_runs_one_service_as_a_non_root_user() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.M)
    user = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert user and user[-1].split(":")[0] not in ("root", "0")
    assert re.search(r'gatehouse serve \\?"\$\{SERVICE', dockerfile)
    for copied in re.findall(r"^COPY (\S+)", dockerfile, re.M):
        assert (ROOT / copied).exists(), copied


def test_every_service_connects_with_its_own_credentials() -> None:
    """The per-service Secret comes after the shared one (envFrom: the last one wins), so the
    service's own NATS user and database role replace any shared setting."""
    deployments = _by_kind(_base_documents(), "Deployment")
    for name in SERVICES:
        (container,) = deployments[f"gatehouse-{name}"]["spec"]["template"]["spec"]["containers"]
        secrets = [ref["secretRef"]["name"] for ref in container["envFrom"] if "secretRef" in ref]
        assert secrets[-1] == f"gatehouse-{name}-credentials", name


def test_the_dev_overlay_runs_nats_and_postgres_with_the_permission_model() -> None:
    from tests.unit.dev_credentials import DEV, nats_conf, roles_sql

    stale = "stale: python -m tests.unit.dev_credentials"
    assert (DEV / "nats.conf").read_text() == nats_conf(), stale
    assert (DEV / "roles.sql").read_text() == roles_sql(), stale
    kustomization = yaml.safe_load((DEV / "kustomization.yaml").read_text())
    secrets = {s["name"]: s["literals"] for s in kustomization["secretGenerator"]}
    for name in SERVICES:
        literals = dict(item.split("=", 1) for item in secrets[f"gatehouse-{name}-credentials"])
        assert literals["GATEHOUSE_NATS_USER"] == name
        assert f"gatehouse_{name.replace('-', '_')}:" in literals["GATEHOUSE_DATABASE_URL"]


def test_compose_gives_every_service_its_own_nats_user_and_role() -> None:
    from tests.unit.dev_credentials import (
        compose_nats_conf,
        compose_roles_script,
        password_variable,
    )

    stale = "stale: python -m tests.unit.dev_credentials"
    assert (DEPLOY / "nats.conf").read_text() == compose_nats_conf(), stale
    assert (DEPLOY / "postgres-roles.sh").read_text() == compose_roles_script(), stale
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert "/etc/nats/nats.conf" in services["nats"]["command"]
    assert any("nats.conf" in v for v in services["nats"]["volumes"])
    assert any("postgres-roles.sh" in v for v in services["postgres"]["volumes"])
    for name in SERVICES:
        env = services[name]["environment"]
        variable = password_variable(name)
        assert env["GATEHOUSE_NATS_USER"] == name
        assert variable in env["GATEHOUSE_NATS_PASSWORD"]
        role = f"gatehouse_{name.replace('-', '_')}"
        assert env["GATEHOUSE_DATABASE_URL"].startswith(f"postgresql://{role}:${{{variable}")
        assert variable in services["nats"]["environment"]
        assert variable in services["postgres"]["environment"]
