"""deploy/ and k8s/ stay in step with the code: every service of the registry is deployed,
probed on /health/live and /health/ready on the port it serves, scraped for metrics, and
configured only with settings that exist."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from services.registry import SERVICES
from shared.artifact_blobs import artifact_dir_of
from shared.settings import Settings, documented_settings, load_settings
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


# --- The artifact store: the gateway alone reads and writes the registry's artifact bytes. ---

ARTIFACT_STORE = "gatehouse-artifact-store"
DEV = K8S / "overlays" / "dev"
# Expansions in a shell script: $NAME or ${NAME}.
_SHELL_VARIABLE = re.compile(r"\$\{?(\w+)\}?")
# Compose's interpolations: ${NAME}, ${NAME:-default}, ${NAME:?message}.
_COMPOSE_VARIABLE = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}")


def _dev_overlay() -> tuple[
    list[dict[str, Any]], dict[str, dict[str, str]], dict[str, dict[str, str]]
]:
    """The dev overlay's documents (the base's and its own), its ConfigMaps' data (the base's
    with the overlay's inline patches) and its generated Secrets, by name before hashing."""
    kustomization = yaml.safe_load((DEV / "kustomization.yaml").read_text())
    docs = _base_documents()
    for resource in kustomization["resources"]:
        if (DEV / resource).is_file() and resource != "namespace.yaml":
            docs.extend(_documents(DEV / resource))
    configmaps = {
        name: dict(cm.get("data", {})) for name, cm in _by_kind(docs, "ConfigMap").items()
    }
    for patch in kustomization.get("patches", []):
        if "patch" in patch and (patched := yaml.safe_load(patch["patch"]))["kind"] == "ConfigMap":
            configmaps[patched["metadata"]["name"]].update(patched["data"])
    secrets = {
        s["name"]: dict(item.split("=", 1) for item in s["literals"])
        for s in kustomization["secretGenerator"]
    }
    return docs, configmaps, secrets


def _container_env(
    container: dict[str, Any],
    configmaps: dict[str, dict[str, str]],
    secrets: dict[str, dict[str, str]],
) -> dict[str, str]:
    """The environment the container starts with: envFrom in order (a later source wins),
    then env (which wins over envFrom). A source that does not exist fails the test, unless
    the manifest marks it optional."""
    env: dict[str, str] = {}
    for ref in container.get("envFrom", []):
        if "configMapRef" in ref:
            env.update(configmaps[ref["configMapRef"]["name"]])
        else:
            env.update(secrets[ref["secretRef"]["name"]])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
            continue
        source = item["valueFrom"]
        objects, ref = next(
            (objects, source[key])
            for objects, key in ((configmaps, "configMapKeyRef"), (secrets, "secretKeyRef"))
            if key in source
        )
        value = objects.get(ref["name"], {}).get(ref["key"])
        if value is None:
            assert ref.get("optional"), f"{item['name']}: {ref['name']}/{ref['key']} missing"
            continue
        env[item["name"]] = value
    return env


def _only_container(workload: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = workload["spec"]["template"]["spec"]["containers"]
    (container,) = containers
    return container


def _gateway_settings_env() -> dict[str, str]:
    docs, configmaps, secrets = _dev_overlay()
    gateway = _by_kind(docs, "Deployment")["gatehouse-gateway"]
    return _container_env(_only_container(gateway), configmaps, secrets)


def test_the_gateway_alone_gets_the_artifact_store_config_and_secret() -> None:
    docs = _base_documents()
    deployments = _by_kind(docs, "Deployment")
    for name in SERVICES:
        refs = [
            (kind, ref[kind]["name"])
            for ref in _only_container(deployments[f"gatehouse-{name}"])["envFrom"]
            for kind in ("configMapRef", "secretRef")
            if kind in ref
        ]
        store_refs = {ref for ref in refs if ref[1] == ARTIFACT_STORE}
        if name == "gateway":
            assert store_refs == {("configMapRef", ARTIFACT_STORE), ("secretRef", ARTIFACT_STORE)}
        else:
            assert not store_refs, f"{name} must not get the artifact store"
    configmaps = _by_kind(docs, "ConfigMap")
    store = configmaps[ARTIFACT_STORE]["data"]
    assert set(store) <= SETTINGS
    # Several gateway replicas (the autoscaler) must see the same artifacts: not a pod's disk.
    assert store["GATEHOUSE_ARTIFACT_STORE"] == "s3"
    assert store["GATEHOUSE_S3_BUCKET"]
    # Every service reads gatehouse-config: an s3 store there, without the keys, stops them.
    shared = configmaps["gatehouse-config"]["data"]
    assert not {k for k in shared if k.startswith(("GATEHOUSE_S3_", "GATEHOUSE_ARTIFACT_"))}
    header = (K8S / "base" / "config.yaml").read_text().split("apiVersion", 1)[0]
    assert ARTIFACT_STORE in header, "config.yaml's header lists the Secrets"


def test_every_service_s_settings_load_from_the_dev_overlay() -> None:
    docs, configmaps, secrets = _dev_overlay()
    deployments = _by_kind(docs, "Deployment")
    for name in SERVICES:
        env = _container_env(_only_container(deployments[f"gatehouse-{name}"]), configmaps, secrets)
        settings = load_settings({k: v for k, v in env.items() if k.startswith("GATEHOUSE_")})
        expected = "s3" if name == "gateway" else "filesystem"
        assert settings.artifact_store == expected, name


def test_the_dev_minio_serves_the_bucket_and_keys_the_gateway_uses() -> None:
    docs, configmaps, secrets = _dev_overlay()
    gateway = load_settings(
        {k: v for k, v in _gateway_settings_env().items() if k.startswith("GATEHOUSE_")}
    )
    endpoint = urlsplit(gateway.s3_endpoint_url)

    minio = _by_kind(docs, "Deployment")["dev-minio"]
    server = _only_container(minio)
    server_env = _container_env(server, configmaps, secrets)
    assert server_env["MINIO_ROOT_USER"] == gateway.s3_access_key_id
    assert server_env["MINIO_ROOT_PASSWORD"] == gateway.s3_secret_access_key
    service = _by_kind(docs, "Service")[endpoint.hostname or ""]
    assert service["spec"]["selector"].items() <= minio["spec"]["selector"]["matchLabels"].items()
    (port,) = [p for p in service["spec"]["ports"] if p["port"] == endpoint.port]
    assert port["targetPort"] in {p["name"] for p in server["ports"]}

    job = _by_kind(docs, "Job")["dev-minio-bucket"]
    mc = _only_container(job)
    job_env = _container_env(mc, configmaps, secrets)
    script = " ".join(mc["command"][-1].replace("\\\n", " ").split())
    script = _SHELL_VARIABLE.sub(lambda m: job_env[m.group(1)], script)
    assert (
        f'mc alias set local "{gateway.s3_endpoint_url}" '
        f'"{gateway.s3_access_key_id}" "{gateway.s3_secret_access_key}"'
    ) in script
    assert f'mc mb --ignore-existing "local/{gateway.s3_bucket}"' in script


def test_the_dev_minio_is_pinned_probed_limited_and_unprivileged() -> None:
    workloads = [d for d in _documents(DEV / "minio.yaml") if d["kind"] in ("Deployment", "Job")]
    assert {d["kind"] for d in workloads} == {"Deployment", "Job"}
    for workload in workloads:
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            image = container["image"]
            assert re.fullmatch(r"[\w./-]+:RELEASE\.[\w-]+", image), f"{image} is not pinned"
            assert container["resources"]["requests"]
            assert container["resources"]["limits"]["memory"]
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            if workload["kind"] == "Deployment":
                assert container["livenessProbe"]["httpGet"]["path"] == "/minio/health/live"
                assert container["readinessProbe"]["httpGet"]["path"] == "/minio/health/ready"


def _compose_interpolate(text: str, variables: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name, operator, argument = match.groups()
        found = variables.get(name, "")
        if operator == "-" and not found:
            return argument
        assert found or operator != "?", f"{name} is required"
        return found

    return _COMPOSE_VARIABLE.sub(value, text)


def _env_example(commented: bool = False) -> dict[str, str]:
    """deploy/.env.example's values; with ``commented``, the example lines in its comments."""
    pattern = r"^#\s+(GATEHOUSE_\w+)=(.*)$" if commented else r"^(\w+)=(.*)$"
    text = (DEPLOY / ".env.example").read_text()
    return {m[1]: m[2] for m in re.finditer(pattern, text, re.M)}


def test_compose_keeps_the_gateway_s_artifacts_on_a_named_volume() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    gateway = compose["services"]["gateway"]
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    image_data_dir = re.search(r"\bGATEHOUSE_DATA_DIR=(\S+)", dockerfile)
    assert image_data_dir
    data_dir = gateway["environment"].get("GATEHOUSE_DATA_DIR", image_data_dir[1])
    artifacts = artifact_dir_of(
        Settings(
            data_dir=data_dir, artifact_dir=gateway["environment"].get("GATEHOUSE_ARTIFACT_DIR", "")
        )
    )
    mounts = dict(reversed(v.split(":")[:2]) for v in gateway.get("volumes", []))
    holding = [target for target in mounts if artifacts.is_relative_to(target)]
    assert holding, f"nothing of the gateway's is mounted at {artifacts}"
    (target,) = holding
    volume = mounts[target]
    assert volume in compose["volumes"], f"{volume} is a named volume, not a host folder"
    # A fresh named volume takes the owner of the image's folder it covers: the service's user.
    user = re.search(
        r"^RUN useradd .*--uid (\d+) .*--home-dir (\S+) .*?(\w+)\s*\\?$", dockerfile, re.M
    )
    assert user
    uid, home, name = user.groups()
    made = {home} | set(
        re.findall(rf"install -d -o {name} -g {name}(?: -m \d+)? (\S+)", dockerfile)
    )
    assert target in made, f"the image does not make {target} for user {name}"
    assert re.findall(r"^USER (\S+)", dockerfile, re.M)[-1].split(":")[0] == uid
    for other in set(SERVICES) - {"gateway"}:
        assert not any(
            v.split(":")[0] == volume for v in compose["services"][other].get("volumes", [])
        ), f"{other} shares the gateway's artifacts"


def test_compose_switches_the_artifact_store_with_deploy_env() -> None:
    """deploy/.env as shipped keeps artifacts on the volume; the S3 lines of its comments
    reach the gateway's settings."""
    text = (DEPLOY / "compose.yaml").read_text()
    example = _env_example()
    required = {m[0] for m in _COMPOSE_VARIABLE.findall(text) if not example.get(m[0])}
    filled = {**example, **{name: "gh_dev0123456789abcdef" for name in required}}
    for variables, store in (
        (filled, "filesystem"),
        ({**filled, **_env_example(commented=True)}, "s3"),
    ):
        compose = yaml.safe_load(_compose_interpolate(text, variables))
        env = compose["services"]["gateway"]["environment"]
        settings = load_settings({k: v for k, v in env.items() if k.startswith("GATEHOUSE_")})
        assert settings.artifact_store == store
        if store == "s3":
            s3 = _env_example(commented=True)
            assert settings.s3_bucket == s3["GATEHOUSE_S3_BUCKET"]
            assert settings.s3_endpoint_url == s3["GATEHOUSE_S3_ENDPOINT_URL"]
            assert settings.s3_secret_access_key == s3["GATEHOUSE_S3_SECRET_ACCESS_KEY"]
        for other in set(SERVICES) - {"gateway"}:
            other_env = compose["services"][other]["environment"]
            assert "GATEHOUSE_ARTIFACT_STORE" not in other_env, other
