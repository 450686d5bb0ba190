"""infra/k8s: the workers on Kubernetes, scaled by KEDA on the cpu queue's depth.

Kubernetes and KEDA are not needed: the manifests are parsed. A stopped pod must be able to finish the
task it runs (late acks: one killed midway is redelivered, and counts against FARM_MAX_DELIVERIES), so its
grace period must exceed the task time limit of the farm's config; each container runs a real `farm`
command (``--help`` fails for a command or an option that does not exist); the autoscaler reads the farm's
own queue-depth metric for the queue the scaled workers consume. That metric counts every priority list of
the queue on a real Redis: tests/unit/web/test_prometheus.py; its name is exported: test_queries.py.
"""

from __future__ import annotations

from typing import Any

import promql_parser
import yaml
from typer.testing import CliRunner

from tests.support.infra import SCALED_OBJECTS
from tests.support.services import REPO_ROOT
from trainfarm.cli.app import app
from trainfarm.shared.config import load_config
from trainfarm.workers.routing import QUEUES

K8S = REPO_ROOT / "infra" / "k8s"
#: Seconds a stopping worker has, beyond the longest task, to record it and exit.
SHUTDOWN_MARGIN_S = 60


def _deployments() -> dict[str, dict[str, Any]]:
    docs = [doc for path in sorted(K8S.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text())]
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}


def _scaled_object() -> dict[str, Any]:
    (doc,) = list(yaml.safe_load_all(SCALED_OBJECTS.read_text()))
    assert doc["apiVersion"] == "keda.sh/v1alpha1" and doc["kind"] == "ScaledObject"
    return dict(doc)


def _worker(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def _queues(deployment: dict[str, Any]) -> list[str]:
    args = _worker(deployment)["args"]
    return str(args[args.index("--queues") + 1]).split(",")


def test_every_worker_outlives_its_longest_task_when_stopped() -> None:
    limit = load_config(REPO_ROOT / "farm.toml").training.task_time_limit_s
    deployments = _deployments()
    assert set(deployments) == {"trainfarm-worker-cpu", "trainfarm-worker-control"}
    for name, deployment in deployments.items():
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace >= limit + SHUTDOWN_MARGIN_S, f"{name}: {grace} s to stop, tasks may run {limit} s"


def test_every_container_runs_a_real_farm_command() -> None:
    for name, deployment in _deployments().items():
        container = _worker(deployment)
        assert container["image"] == "trainfarm:latest", name
        args = [str(a) for a in container["args"]]
        result = CliRunner().invoke(app, [*args, "--help"])
        assert result.exit_code == 0, f"{name}: `farm {' '.join(args)}` is no farm command: {result.output}"


def test_the_workers_consume_every_cpu_queue_and_do_not_oversubscribe() -> None:
    deployments = _deployments()
    assert _queues(deployments["trainfarm-worker-cpu"]) == ["cpu"]
    assert _queues(deployments["trainfarm-worker-control"]) == ["meta", "control"]
    assert set(QUEUES) - {"gpu"} == {q for d in deployments.values() for q in _queues(d)}
    for name, deployment in deployments.items():
        container = _worker(deployment)
        args = container["args"]
        concurrency = int(args[args.index("--concurrency") + 1])
        env = {e["name"]: e.get("value") for e in container["env"]}
        cores = float(container["resources"]["requests"]["cpu"])
        assert concurrency * int(env["FARM_WORKER_THREADS"]) <= cores, name
        assert deployment["spec"]["replicas"] >= 1 and env["FARM_CONFIG_FILE"], name


def test_keda_scales_the_cpu_workers_on_the_farms_queue_depth_of_their_queue() -> None:
    scaled = _scaled_object()
    target = scaled["spec"]["scaleTargetRef"]["name"]
    assert target == "trainfarm-worker-cpu" and target in _deployments()
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "prometheus"  # not "redis": LLEN of one list misses the priority lists
    meta = trigger["metadata"]
    selectors: list[promql_parser.VectorSelector] = []

    def visit(node: promql_parser.Expr) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            selectors.append(node)
        return True

    query = promql_parser.parse(meta["query"])
    promql_parser.walk(query, pre_visit=visit)
    assert isinstance(query, promql_parser.AggregateExpr)  # one number for the whole farm
    (selector,) = selectors
    (matcher,) = selector.matchers.matchers
    assert selector.name == "trainfarm_queue_depth" and not selector.matchers.or_matchers
    assert (matcher.name, matcher.op, matcher.value) == ("queue", promql_parser.MatchOp.Equal, "cpu")
    assert _queues(_deployments()[target]) == ["cpu"]
    assert float(meta["threshold"]) > 0 and meta["ignoreNullValues"] == "false"
    spec = scaled["spec"]
    assert 0 <= spec["minReplicaCount"] < spec["maxReplicaCount"] and spec["fallback"]["replicas"] >= 1
