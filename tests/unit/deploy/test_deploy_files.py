"""The deployment files agree with the code: ``Dockerfile``, ``compose.yaml`` and ``deploy/k8s/``.

Each fact is read from where the code keeps it, never restated here: the agents from
:func:`app.worker.agent_names` (a new metric module demands a compose service, a Deployment and
a PodDisruptionBudget), the settings from their declarations, the commands from the CLI's
parser, the probe paths from the worker's endpoint and the web routes, the drain deadlines from
the worker and the web process. No docker, hadolint or kubeconform runs here: the files are
parsed and checked.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import pytest
import yaml

from app.cli.main import _parser as cli_parser
from app.settings import VARIABLES, Settings
from app.web.process import DRAIN_SECONDS
from app.web.routes import ROUTES
from app.worker import agent_names
from app.worker.monitoring import HEALTH_PATH, READY_PATH
from app.worker.stopping import STOP_SECONDS

REPO: Final = Path(__file__).resolve().parents[3]
K8S: Final = REPO / "deploy" / "k8s"
#: variables that are not settings of ours, and who reads them
OTHER_VARIABLES: Final = {
    "PATH": "the shell and python, to find the virtual environment's python",
    "PYTHONUNBUFFERED": "python: log lines leave the container as they are written",
    "PIP_NO_CACHE_DIR": "pip, in the build stage",
    "PIP_DISABLE_PIP_VERSION_CHECK": "pip, in the build stage",
}
#: dummy values for the secrets compose and the Secret supply at run time
SECRETS: Final = {"INGEST_TOKEN": "ingest-token", "READ_TOKEN": "read-token"}


# -- reading the files --------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "compose.yaml").read_text(encoding="utf-8"))


@cache
def k8s_objects() -> tuple[dict[str, Any], ...]:
    """Every object of the kustomization's resources."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    objects = []
    for name in kustomization["resources"]:
        objects.extend(doc for doc in yaml.safe_load_all((K8S / name).read_text(encoding="utf-8")) if doc)
    return tuple(objects)


def k8s(kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in k8s_objects() if o["kind"] == kind}


def config_map_data() -> dict[str, str]:
    (config,) = k8s("ConfigMap").values()
    return dict(config["data"])


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def container_env(deployment: dict[str, Any]) -> dict[str, str]:
    """The container's environment: its ConfigMap's data, then its own variables (a secret's
    value stood in for by a dummy)."""
    env: dict[str, str] = {}
    c = container(deployment)
    configs = k8s("ConfigMap")
    for source in c.get("envFrom", []):
        name = source["configMapRef"]["name"]
        assert name in configs, f"{deployment['metadata']['name']}: envFrom names no ConfigMap {name!r}"
        env.update(configs[name]["data"])
    for var in c.get("env", []):
        if "valueFrom" in var:
            env[var["name"]] = SECRETS.get(var["name"], "x")
        else:
            env[var["name"]] = str(var["value"])
    return env


def parse_duration(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(s|m)", str(text))
    assert match, f"a duration compose understands, as 40s or 1m: {text!r}"
    return float(match[1]) * (60 if match[2] == "m" else 1)


# -- what is checked of every process -----------------------------------------------------------


def cli_accepts(argv: list[str]) -> argparse.Namespace:
    """``argv`` parsed as ``python -m app`` would; a worker's agent must be one of the agents."""
    try:
        args = cli_parser().parse_args(argv)
    except SystemExit as exited:
        raise AssertionError(f"`python -m app {shlex.join(argv)}` is not a command the CLI takes") from exited
    if args.command == "worker":
        assert args.agent in agent_names(), f"`python -m app {shlex.join(argv)}`: no agent {args.agent!r}"
    return args


def settings_of(env: Mapping[str, str], where: str) -> Settings:
    """The settings ``env`` makes, every variable in it one of ours (or named in OTHER_VARIABLES)."""
    unknown = set(env) - set(VARIABLES) - set(OTHER_VARIABLES)
    assert not unknown, f"{where}: {sorted(unknown)} are no settings (python -m app --help lists them)"
    return Settings.from_env(env)


def agent_of(argv: list[str]) -> str | None:
    return argv[1] if argv[:1] == ["worker"] else None


# -- the Dockerfile -----------------------------------------------------------------------------


def test_the_image_runs_python_m_app_as_a_user_without_privileges() -> None:
    stage = final_stage()
    (entrypoint,) = [json.loads(rest) for word, rest in stage if word == "ENTRYPOINT"]
    assert entrypoint == ["python", "-m", "app"]
    (cmd,) = [json.loads(rest) for word, rest in stage if word == "CMD"]
    with pytest.raises(SystemExit) as exited:  # --help prints and exits 0, as `docker run` would
        cli_parser().parse_args(cmd)
    assert exited.value.code == 0
    users = [rest for word, rest in stage if word == "USER"]
    assert users, "the image runs as root: the last stage has no USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}, "the image's USER is root"
    assert user.isdigit(), "a numeric USER, so Kubernetes' runAsNonRoot can check it"


def test_the_image_is_python_slim_with_no_build_tools() -> None:
    instructions = dockerfile_instructions()
    bases = [rest.split()[0] for word, rest in instructions if word == "FROM"]
    assert bases and all(base == "python:3.11-slim" for base in bases), bases
    runs = " ".join(rest for word, rest in final_stage() if word == "RUN")
    for tool in ("apt-get install", "gcc", "build-essential", "nats-server"):
        assert tool not in runs, f"the image's last stage runs {tool!r}"


def test_the_images_variables_are_settings() -> None:
    env: dict[str, str] = {}
    for word, rest in final_stage():
        if word == "ENV":
            env.update(dict(pair.split("=", 1) for pair in shlex.split(rest)))
    settings = settings_of(env, "Dockerfile")
    assert str(settings.data_dir) in {rest.strip('[]" ') for word, rest in final_stage() if word == "VOLUME"}


# -- compose.yaml ------------------------------------------------------------------------------


def compose_services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def app_services() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose_services().items() if "command" in s and s.get("build")}


def nats_services() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose_services().items() if str(s.get("image", "")).startswith("nats:")}


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    env = {k: str(v) for k, v in service.get("environment", {}).items()}
    for name, value in env.items():
        if value.startswith("${"):  # supplied when compose runs; required, so never unset
            assert name in SECRETS and ":?" in value, f"{name}: {value} (only the tokens come from outside)"
            env[name] = SECRETS[name]
    return env


def healthcheck_url(service: dict[str, Any]) -> str:
    test = " ".join(service["healthcheck"]["test"])
    match = re.search(r"https?://[^'\" ]+", test)
    assert match, f"the healthcheck calls no URL: {test}"
    return match[0]


def test_compose_runs_a_three_node_nats_cluster_with_jetstream() -> None:
    nodes = nats_services()
    assert len(nodes) == 3, sorted(nodes)
    names = []
    for service in nodes.values():
        command = service["command"]
        names += [arg.split("=", 1)[1] for arg in command if arg.startswith("--server_name=")]
        (config,) = [arg.split("=", 1)[1] for arg in command if arg.startswith("--config=")]
        (mount,) = [v for v in service["volumes"] if v.endswith(f":{config}:ro")]
        text = (REPO / mount.split(":")[0]).read_text(encoding="utf-8")
        assert "jetstream" in text and all(f"nats://{node}:6222" in text for node in nodes), mount
    assert sorted(names) == sorted(nodes), "each node is named, and uniquely (JetStream needs it)"


def test_compose_has_the_web_process_and_every_agents_workers() -> None:
    commands = {name: cli_accepts(s["command"]) for name, s in app_services().items()}
    agents = {args.agent: name for name, args in commands.items() if args.command == "worker"}
    assert set(agents) == set(agent_names()), "a compose service per agent, no more"
    assert [args.command for args in commands.values()].count("web") == 1


@pytest.mark.parametrize("name", sorted(agent_names()))
def test_a_compose_worker_is_probed_and_drained_as_the_code_says(name: str) -> None:
    found = [s for s in app_services().values() if agent_of(s["command"]) == name]
    assert len(found) == 1, f"compose.yaml has {len(found)} services running `worker {name}`"
    service = found[0]
    settings = settings_of(compose_env(service), f"compose.yaml {name}")
    assert service["deploy"]["replicas"] <= settings.partitions, "more workers than partitions: the extra are idle"
    assert settings.metrics_port, f"{name}: METRICS_PORT is not set, so nothing serves its probes"
    url = urlsplit(healthcheck_url(service))
    assert (url.port, url.path) == (settings.metrics_port, READY_PATH)
    assert parse_duration(service["stop_grace_period"]) > STOP_SECONDS, "compose would kill it mid-drain"


def test_the_compose_web_process_listens_where_it_is_published_and_probed() -> None:
    (service,) = [s for s in app_services().values() if s["command"] == ["web"]]
    settings = settings_of(compose_env(service), "compose.yaml web")
    assert settings.ingest_token is not None and settings.read_token is not None, "tokens: it listens on every interface"
    published = {int(p.rsplit(":", 1)[1]) for p in service["ports"]}
    assert published == {settings.port}
    url = urlsplit(healthcheck_url(service))
    assert url.port == settings.port and ("GET", url.path) in {(r.method, r.path) for r in ROUTES}
    assert parse_duration(service["stop_grace_period"]) > DRAIN_SECONDS


def test_compose_processes_reach_every_node_and_replicate_on_all() -> None:
    for name, service in app_services().items():
        settings = settings_of(compose_env(service), f"compose.yaml {name}")
        hosts = {urlsplit(url).hostname for url in settings.nats_urls}
        assert hosts == set(nats_services()), f"{name}: NATS_URL names {sorted(hosts)}"
        assert settings.nats_replicas == len(nats_services()), f"{name}: NATS_REPLICAS"
        assert set(service["depends_on"]) == set(nats_services())


# -- deploy/k8s ---------------------------------------------------------------------------------


def deployments_by_command() -> Iterator[tuple[dict[str, Any], argparse.Namespace]]:
    for deployment in k8s("Deployment").values():
        yield deployment, cli_accepts(container(deployment)["args"])


def pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    return deployment["spec"]["template"]["metadata"]["labels"]


def probe_port(deployment: dict[str, Any], probe: str) -> int:
    """The probe's port as a number (a named port looked up among the container's)."""
    port = container(deployment)[probe]["httpGet"]["port"]
    if isinstance(port, str):
        (port,) = [p["containerPort"] for p in container(deployment)["ports"] if p["name"] == port]
    return int(port)


def test_every_k8s_file_is_a_resource_of_the_kustomization() -> None:
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "nats-values.yaml"}
    assert listed == on_disk, "a manifest `kubectl apply -k` would leave out (or one that is missing)"


def test_k8s_has_a_deployment_and_a_disruption_budget_per_agent() -> None:
    workers = {args.agent: d for d, args in deployments_by_command() if args.command == "worker"}
    assert set(workers) == set(agent_names()), "a Deployment per agent, no more"
    budgets = [b["spec"]["selector"]["matchLabels"] for b in k8s("PodDisruptionBudget").values()]
    for agent, deployment in workers.items():
        covering = [s for s in budgets if s.items() <= pod_labels(deployment).items()]
        assert len(covering) == 1, f"{agent}: {len(covering)} PodDisruptionBudgets select its pods"


@pytest.mark.parametrize("name", sorted(agent_names()))
def test_a_k8s_worker_is_probed_and_drained_as_the_code_says(name: str) -> None:
    found = [d for d, args in deployments_by_command() if getattr(args, "agent", None) == name]
    assert len(found) == 1, f"deploy/k8s has {len(found)} Deployments running `worker {name}`"
    deployment = found[0]
    settings = settings_of(container_env(deployment), f"deploy/k8s {name}")
    assert deployment["spec"]["replicas"] <= settings.partitions, "more workers than partitions: the extra are idle"
    assert settings.metrics_port, f"{name}: METRICS_PORT is not set, so nothing serves its probes"
    c = container(deployment)
    assert c["livenessProbe"]["httpGet"]["path"] == HEALTH_PATH
    assert c["readinessProbe"]["httpGet"]["path"] == READY_PATH
    for probe in ("livenessProbe", "readinessProbe"):
        assert probe_port(deployment, probe) == settings.metrics_port, f"{name}: {probe} is not on METRICS_PORT"
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > STOP_SECONDS, f"{name}: Kubernetes would kill it mid-drain"


def test_the_k8s_web_process_listens_where_its_service_and_probes_point() -> None:
    (deployment,) = [d for d, args in deployments_by_command() if args.command == "web"]
    settings = settings_of(container_env(deployment), "deploy/k8s web")
    assert settings.ingest_token is not None and settings.read_token is not None
    assert [p["containerPort"] for p in container(deployment)["ports"]] == [settings.port]
    routes = {(r.method, r.path) for r in ROUTES}
    for probe in ("livenessProbe", "readinessProbe"):
        assert probe_port(deployment, probe) == settings.port
        assert ("GET", container(deployment)[probe]["httpGet"]["path"]) in routes
    (service,) = [s for s in k8s("Service").values() if s["spec"]["selector"].items() <= pod_labels(deployment).items()]
    assert [p["targetPort"] for p in service["spec"]["ports"]] in ([settings.port], ["http"])
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > DRAIN_SECONDS


def test_k8s_processes_replicate_on_every_node_the_nats_chart_makes() -> None:
    values = yaml.safe_load((K8S / "nats-values.yaml").read_text(encoding="utf-8"))
    assert values["config"]["jetstream"]["enabled"] and values["config"]["cluster"]["enabled"]
    for deployment, _ in deployments_by_command():
        settings = settings_of(container_env(deployment), deployment["metadata"]["name"])
        assert settings.nats_replicas == values["config"]["cluster"]["replicas"]


def test_the_operations_guide_says_how_to_run_each() -> None:
    guide = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    for command in (
        "docker build -t learning-streams .",
        "docker compose up",
        "helm install nats nats/nats -f deploy/k8s/nats-values.yaml",
        "kubectl apply -k deploy/k8s",
    ):
        assert command in guide, f"docs/operations.md does not show `{command}`"
