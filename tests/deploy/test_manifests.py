"""Static checks of the deployment files: the compose file, the nginx configuration, the Kubernetes
manifests in deploy/ and the image's build files agree with each other and with the app.

Nothing here needs Docker or a cluster; the images and the compose profiles themselves are exercised
by ``bench/replicas.py`` and the README's Docker steps.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
from pathlib import Path

import pytest
import typer.main
import yaml

from service.app import create_app
from service.cli import app as cli_app
from service.settings import ENV_PREFIX, Settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib", reason="Python 3.11 reads TOML")
    return tomllib.loads((REPO / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_yaml(REPO / "docker-compose.yml")


@pytest.fixture(scope="module")
def manifests() -> dict[tuple[str, str], dict]:
    """Every Kubernetes object in deploy/, by (kind, name)."""
    objects = {}
    for path in sorted(DEPLOY.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document.get("kind") != "Kustomization":
                objects[document["kind"], document["metadata"]["name"]] = document
    return objects


@pytest.fixture(scope="module")
def app_paths() -> set[str]:
    """The paths the app serves, from its OpenAPI schema (built, not started: no model is loaded)."""
    return set(create_app(Settings()).openapi()["paths"])


def image_port() -> int:
    """The port the image's server listens on (the Dockerfile's SIMLINK_PORT)."""
    return int(re.search(r"SIMLINK_PORT=(\d+)", (REPO / "Dockerfile").read_text()).group(1))


def published(service: dict) -> list[str]:
    return [str(port) for port in service.get("ports", [])]


# --- docker-compose.yml --------------------------------------------------------------------------


def test_the_default_service_alone_starts_without_a_profile_and_publishes_8000(compose: dict) -> None:
    unprofiled = [name for name, service in compose["services"].items() if not service.get("profiles")]
    assert unprofiled == ["simlink"]
    assert published(compose["services"]["simlink"]) == [f"${{SIMLINK_PUBLISH_PORT:-8000}}:{image_port()}"]


def test_the_scale_profile_publishes_only_the_load_balancer(compose: dict) -> None:
    scale = {name: s for name, s in compose["services"].items() if "scale" in s.get("profiles", [])}
    assert set(scale) == {"simlink-replica", "nginx"}
    assert published(scale["simlink-replica"]) == []  # so that --scale can start several
    assert published(scale["nginx"]) == ["${SIMLINK_LB_PUBLISH_PORT:-8080}:80"]


def test_nginx_waits_for_healthy_replicas_whose_health_check_asks_an_endpoint_the_app_serves(
    compose: dict, app_paths: set[str]
) -> None:
    assert compose["services"]["nginx"]["depends_on"] == {"simlink-replica": {"condition": "service_healthy"}}
    check = " ".join(compose["services"]["simlink-replica"]["healthcheck"]["test"])
    url = re.search(r"http://127\.0\.0\.1:(\d+)(/\w*)", check)
    assert url and int(url.group(1)) == image_port() and url.group(2) in app_paths


def test_nginx_proxies_to_the_replica_service_by_name_through_dockers_dns(compose: dict) -> None:
    nginx = compose["services"]["nginx"]
    config_file, target = nginx["volumes"][0].split(":")[:2]
    assert target == "/etc/nginx/nginx.conf"
    config = (REPO / config_file).read_text()
    config = "\n".join(line.split("#", 1)[0] for line in config.splitlines())
    variables = dict(re.findall(r"set \$(\w+) ([^;]+);", config))
    proxied = re.findall(r"proxy_pass http://\$(\w+);", config)
    # A variable in proxy_pass makes nginx resolve the name at run time (replicas added by --scale are
    # found); an upstream block would resolve it once, at start-up.
    assert proxied and all(name in variables for name in proxied)
    assert {variables[name] for name in proxied} == {f"simlink-replica:{image_port()}"}
    assert not re.search(r"^\s*upstream\s", config, flags=re.MULTILINE)
    assert re.search(r"resolver 127\.0\.0\.11\b", config)
    assert re.search(r"proxy_next_upstream [^;]*\berror\b[^;]*\bhttp_503\b[^;]*\bnon_idempotent\b", config)


def test_serving_mounts_are_read_only_and_the_jobs_write_the_volume_serving_reads(compose: dict) -> None:
    services = compose["services"]
    for name in ("simlink", "simlink-replica"):
        assert all(volume.endswith(":ro") for volume in services[name]["volumes"]), name
    assert "linker:/srv/linker:ro" in services["simlink"]["volumes"]
    assert "linker:/srv/linker" in services["simlink-job"]["volumes"]
    assert "linker" in compose["volumes"]


def test_compose_settings_are_real_settings(compose: dict) -> None:
    fields = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    for name, service in compose["services"].items():
        for variable in service.get("environment", {}):
            assert variable in fields, f"{name}: {variable} is no setting"


def test_compose_passes_every_build_argument_of_the_dockerfile_with_its_default(compose: dict) -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    defaults = dict(re.findall(r"^ARG (\w+)=(\S*)$", dockerfile, flags=re.MULTILINE))
    args = compose["services"]["simlink"]["build"]["args"]
    assert set(args) == set(defaults)
    for name, value in args.items():
        assert re.fullmatch(rf"\$\{{{name}:?-{re.escape(defaults[name])}\}}", value), (name, value)


# --- the image's build files ------------------------------------------------------------------------


def test_the_build_context_keeps_every_package_the_project_installs() -> None:
    packages = [pattern.rstrip("*") for pattern in pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]]
    ignored = [
        line.strip().rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    needed = [
        *packages,
        "pyproject.toml",
        "README.md",
        "examples",
        "docker",
        "docker/wheels",
        "docker/requirements.lock",
    ]
    for name in needed:
        assert not any(fnmatch.fnmatch(name, pattern) for pattern in ignored), f"{name} is kept out of the build"
    # The Dockerfile installs the whole context rather than naming packages, so a new one needs no change.
    dockerfile = (REPO / "Dockerfile").read_text()
    assert not [name for name in packages if re.search(rf"^COPY {name}\b", dockerfile, flags=re.MULTILINE)]


def test_the_lock_pins_every_dependency_for_the_base_images_python() -> None:
    lock = (REPO / "docker" / "requirements.lock").read_text()

    def normal(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    pinned = {normal(line.split("==")[0]) for line in lock.splitlines() if "==" in line and not line.startswith("#")}
    wanted = {
        normal(re.match(r"[A-Za-z0-9_.-]+", dependency).group())
        for dependency in pyproject()["project"]["dependencies"]
    }
    assert "torch" not in pinned  # the build installs TORCH_SPEC
    assert wanted - {"torch"} <= pinned
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==\S+", line) for line in lock.splitlines() if not line.startswith("#"))
    base = re.search(r"^ARG BASE_IMAGE=python:(\d+\.\d+)", (REPO / "Dockerfile").read_text(), flags=re.MULTILINE)
    assert re.search(rf"Python {re.escape(base.group(1))}\.\d+", lock)


# --- Kubernetes (deploy/) ---------------------------------------------------------------------------


def container(deployment: dict) -> dict:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def test_the_probes_ask_endpoints_the_app_serves_on_the_port_it_listens_on(manifests: dict, app_paths: set) -> None:
    simlink = container(manifests["Deployment", "simlink"])
    ports = {port["name"]: port["containerPort"] for port in simlink["ports"]}
    assert ports == {"http": image_port()}
    assert simlink["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert simlink["livenessProbe"]["httpGet"]["path"] == "/health"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert simlink[probe]["httpGet"]["path"] in app_paths
        assert simlink[probe]["httpGet"]["port"] in ports


def test_the_deployment_has_resources_and_reads_its_settings_and_volume(manifests: dict) -> None:
    deployment = manifests["Deployment", "simlink"]
    simlink = container(deployment)
    assert {"cpu", "memory"} <= set(simlink["resources"]["requests"]) <= set(simlink["resources"]["limits"])
    (settings,) = simlink["envFrom"]
    assert ("ConfigMap", settings["configMapRef"]["name"]) in manifests
    volumes = {volume["name"]: volume for volume in deployment["spec"]["template"]["spec"]["volumes"]}
    linker = next(mount for mount in simlink["volumeMounts"] if mount["mountPath"] == "/srv/linker")
    assert linker["readOnly"] is True
    claim = volumes[linker["name"]]["persistentVolumeClaim"]["claimName"]
    assert ("PersistentVolumeClaim", claim) in manifests
    job = manifests["Job", "simlink-linker"]["spec"]["template"]["spec"]
    assert claim in {v["persistentVolumeClaim"]["claimName"] for v in job["volumes"] if "persistentVolumeClaim" in v}


def test_the_configmap_holds_only_real_settings(manifests: dict) -> None:
    fields = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    data = manifests["ConfigMap", "simlink-settings"]["data"]
    assert data and set(data) <= fields
    threads = int(data["SIMLINK_ENCODER_WORKERS"]) * int(data["SIMLINK_TORCH_THREADS"])
    limit = container(manifests["Deployment", "simlink"])["resources"]["limits"]["cpu"]
    assert threads == int(data["SIMLINK_LINK_THREADS"]) == int(limit)


def test_the_service_selects_the_deployments_pods_on_a_named_port(manifests: dict) -> None:
    deployment = manifests["Deployment", "simlink"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = manifests["Service", "simlink"]["spec"]
    assert service["selector"].items() <= labels.items()
    assert {port["targetPort"] for port in service["ports"]} <= {p["name"] for p in container(deployment)["ports"]}


def test_the_autoscaler_targets_the_deployment_on_cpu(manifests: dict) -> None:
    hpa = manifests["HorizontalPodAutoscaler", "simlink"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    deployment = manifests[target["kind"], target["name"]]
    assert target["apiVersion"] == deployment["apiVersion"]
    assert "replicas" not in deployment["spec"]  # the autoscaler owns the count
    assert [metric["resource"]["name"] for metric in hpa["spec"]["metrics"]] == ["cpu"]
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


def test_kustomization_lists_the_serving_manifests() -> None:
    listed = load_yaml(DEPLOY / "kustomization.yaml")["resources"]
    files = {path.name for path in DEPLOY.glob("*.yaml")} - {"kustomization.yaml", "linker-job.yaml"}
    assert sorted(listed) == sorted(files)


def test_the_linker_job_runs_real_commands_on_files_in_the_image(manifests: dict) -> None:
    commands = typer.main.get_command(cli_app).commands
    (train,) = manifests["Job", "simlink-linker"]["spec"]["template"]["spec"]["containers"]
    script = train["command"][-1]
    ran = []
    for part in script.split("&&"):
        words = shlex.split(part)
        assert words[0] == "simlink"
        command = commands[words[1]]
        options = {option for param in command.params for option in param.opts}
        given = [word for word in words[2:] if word.startswith("--")]
        assert set(given) <= options, set(given) - options
        for word in words[2:]:
            if word.startswith("examples/"):
                assert (REPO / word).is_file(), word  # examples/ is in the image at /srv/examples
        ran.append(words[1])
    assert ran == ["train", "build-index"]
