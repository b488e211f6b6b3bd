"""The Kubernetes manifests (deploy/kubernetes): valid against the API schemas of a pinned
Kubernetes version, offline (no cluster is reachable here), and consistent with the service."""

from __future__ import annotations

import copy
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from app.config import Settings

ROOT = Path(__file__).resolve().parents[1] / "deploy" / "kubernetes"
KUBERNETES = "1.33.0"  # the schemas the manifests are checked against
KINDS = ["ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"]


def _resources() -> dict[str, dict]:
    kustomization = yaml.safe_load((ROOT / "kustomization.yaml").read_text())
    docs = [yaml.safe_load((ROOT / name).read_text()) for name in kustomization["resources"]]
    return {doc["kind"]: doc for doc in docs}


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((ROOT / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in ROOT.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(_resources()) == sorted(KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_manifest_is_valid_against_the_api_schema(kind):
    kubernetes_validate.validate(_resources()[kind], KUBERNETES, strict=True)


@pytest.mark.parametrize(
    "path, key, typo",
    [
        (("spec", "template", "spec", "containers", 0), "readinessProbe", "readynessProbe"),
        (("spec", "template", "spec"), "terminationGracePeriodSeconds", "terminationGracePeriod"),
        (("spec",), "strategy", "stratgy"),
    ],
)
def test_a_typo_fails_validation(path, key, typo):
    deployment = copy.deepcopy(_resources()["Deployment"])
    node = deployment
    for step in path:
        node = node[step]
    node[typo] = node.pop(key)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES, strict=True)


def test_the_deployment_fits_the_service():
    r = _resources()
    settings = r["ConfigMap"]["data"]
    assert set(settings) <= {name.upper() for name in Settings.model_fields}  # no misspelt setting
    Settings(**{k.lower(): v for k, v in settings.items()})  # and every value parses
    pod = r["Deployment"]["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert pod["spec"]["terminationGracePeriodSeconds"] > float(settings["SHUTDOWN_TIMEOUT"])
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["startupProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert int(settings["COMPUTE_THREADS"]) == int(container["resources"]["requests"]["cpu"])
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] and security["capabilities"]["drop"] == ["ALL"]
    assert pod["spec"]["securityContext"]["runAsNonRoot"]
    labels = pod["metadata"]["labels"]
    for selector in (r["Service"]["spec"]["selector"], r["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"]):
        assert selector.items() <= labels.items()
    assert r["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == r["Deployment"]["metadata"]["name"]
    assert container["envFrom"][0]["configMapRef"]["name"] == r["ConfigMap"]["metadata"]["name"]


def test_the_rayjob_runs_the_cli_on_the_cluster_with_the_ray_image():
    import shlex

    from app.cli import parser

    job = yaml.safe_load((ROOT.parent / "ray" / "rayjob.yaml").read_text())
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    argv = shlex.split(job["spec"]["entrypoint"])
    assert argv[:2] == ["dex-age", "predict"]
    args = parser().parse_args(argv[1:])
    assert args.ray == "auto" and args.out.startswith("s3://") and args.resume
    cluster = job["spec"]["rayClusterSpec"]
    pods = [cluster["headGroupSpec"]["template"]] + [g["template"] for g in cluster["workerGroupSpecs"]]
    for pod in pods:
        (container,) = pod["spec"]["containers"]
        assert container["image"].endswith("dex-age:ray")
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["MODEL_DIR"] == "/srv/dex-age/models/dex-age"  # where the Dockerfile puts the shipped model
        assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"])  # Ray's writable folder
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
