"""Kubernetes manifests, checked without a cluster (none can run here; the cluster is the one fake).

The overlays are built by the real kustomize (kubectl's), every built object is validated against
Kubernetes' own OpenAPI schemas and the kubernetes-models JSON schemas (Argo CD, Argo Rollouts and
Flux CRDs included), and the promotion and rollback edits are held to the lines they may change.
"""

from __future__ import annotations

import copy
import difflib
import http.server
import json
import os
import shutil
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from {{ cookiecutter.package_name }} import registry
from {{ cookiecutter.package_name }}.config import PROJECT_ROOT, compose
from {{ cookiecutter.package_name }}.deployment import cli, kubernetes, probe, state

KUBERNETES = PROJECT_ROOT / "deploy" / "kubernetes"
SCHEMAS = KUBERNETES / "schemas"
DIGEST = "sha256:" + "ab" * 32


@pytest.fixture(scope="module")
def documents() -> list[dict[str, Any]]:
    return kubernetes.build(KUBERNETES / "overlays" / "production")


def test_kubernetes__every_overlay_and_gitops_object_passes_the_offline_check() -> None:
    found = kubernetes.check(PROJECT_ROOT, compose().serving.image_repository)
    assert set(found) >= {
        "deploy/kubernetes/overlays/production",
        "deploy/kubernetes/overlays/staging",
        "deploy/gitops/argocd/production.yaml",
        "deploy/gitops/flux/production.yaml",
    }
    assert {where: problems for where, problems in found.items() if problems} == {}


def test_kubernetes__the_built_overlay_holds_the_blue_green_objects(documents: list[dict[str, Any]]) -> None:
    kinds = sorted(doc["kind"] for doc in documents)
    assert kinds == [
        "AnalysisTemplate",
        "ConfigMap",
        "HorizontalPodAutoscaler",
        "Ingress",
        "Rollout",
        "Service",
        "Service",
    ]
    assert {doc["metadata"]["namespace"] for doc in documents} == {"{{ cookiecutter.project_slug }}-production"}


@pytest.mark.parametrize(
    ("kind", "path", "value", "problem"),
    [
        (
            "Rollout",
            ("spec", "replicas"),
            "two",
            "Rollout/{{ cookiecutter.project_slug }}: data/spec/replicas must be integer",
        ),
        ("AnalysisTemplate", ("spec", "metrics"), "none", "data/spec/metrics must be array"),
        ("Service", ("spec", "ports", 0, "port"), "eighty", "must be integer"),
    ],
)
def test_kubernetes__a_wrong_type_in_any_kind_fails_its_schema(
    documents: list[dict[str, Any]], kind: str, path: tuple[str | int, ...], value: object, problem: str
) -> None:
    broken = copy.deepcopy(documents)
    node: Any = next(doc for doc in broken if doc["kind"] == kind)
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert any(problem in line for line in kubernetes.schema_problems(broken, SCHEMAS))


def test_kubernetes__a_kind_no_package_models_is_a_problem_not_a_pass() -> None:
    unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert kubernetes.schema_problems([unknown], SCHEMAS) == [
        "Widget/w: no schema for example.com/v1 Widget in @kubernetes-models/argo-rollouts, "
        "@kubernetes-models/argo-cd, @kubernetes-models/flux-cd or kubernetes-models"
    ]


def test_kubernetes__an_unknown_core_field_fails_strictly(documents: list[dict[str, Any]]) -> None:
    broken = copy.deepcopy(documents)
    next(doc for doc in broken if doc["kind"] == "Service")["spec"]["portz"] = []
    assert any("Service/{{ cookiecutter.project_slug }}-active" in line for line in kubernetes.validate_core(broken))


def test_kubernetes__the_analysis_job_runs_the_promoted_image_with_its_built_config_map(
    documents: list[dict[str, Any]],
) -> None:
    template = next(doc for doc in documents if doc["kind"] == "AnalysisTemplate")
    job = template["spec"]["metrics"][0]["provider"]["job"]["spec"]["template"]["spec"]
    rollout = next(doc for doc in documents if doc["kind"] == "Rollout")
    config_map = next(doc for doc in documents if doc["kind"] == "ConfigMap")["metadata"]["name"]
    assert job["containers"][0]["image"] == rollout["spec"]["template"]["spec"]["containers"][0]["image"]
    assert job["containers"][0]["command"] == ["python", "-m", "{{ cookiecutter.package_name }}.deployment.probe"]
    assert job["volumes"][0]["configMap"]["name"] == config_map  # kustomize's hashed name reached the Job
    assert kubernetes.analysis_problems(documents) == []
    other = copy.deepcopy(documents)
    job_of = next(doc for doc in other if doc["kind"] == "AnalysisTemplate")["spec"]["metrics"][0]
    job_of["provider"]["job"]["spec"]["template"]["spec"]["containers"][0]["image"] = "curlimages/curl"
    job_of["provider"]["job"]["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"] = "gone"
    assert len(kubernetes.analysis_problems(other)) == 2


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        (
            ("spec", "strategy", "blueGreen", "previewService"),
            "missing",
            "previewService 'missing' is not a Service",
        ),
        (
            ("spec", "strategy", "blueGreen", "prePromotionAnalysis", "templates"),
            [],
            "prePromotionAnalysis names []",
        ),
        (("spec", "selector", "matchLabels"), {"app": "other"}, "does not match pod labels"),
        (("spec", "strategy"), {"canary": {}}, "spec.strategy.blueGreen is missing"),
    ],
)
def test_kubernetes__references_no_schema_sees_are_checked(
    documents: list[dict[str, Any]], path: tuple[str, ...], value: object, problem: str
) -> None:
    broken = copy.deepcopy(documents)
    node = next(doc for doc in broken if doc["kind"] == "Rollout")
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert any(problem in line for line in kubernetes.rollout_problems(broken))


def test_kubernetes__every_container_runs_unprivileged_on_a_read_only_root(
    documents: list[dict[str, Any]],
) -> None:
    rollout = next(doc for doc in documents if doc["kind"] == "Rollout")["spec"]["template"]["spec"]
    template = next(doc for doc in documents if doc["kind"] == "AnalysisTemplate")
    job = template["spec"]["metrics"][0]["provider"]["job"]["spec"]["template"]["spec"]
    for pod in (rollout, job):
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 1034  # the image's own user
        for container in pod["containers"]:
            assert container["securityContext"] == {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            }
    assert {mount["mountPath"] for mount in rollout["containers"][0]["volumeMounts"]} == {"/tmp"}


def test_kubernetes__the_front_door_exposes_only_predict_behind_hashed_keys(
    documents: list[dict[str, Any]],
) -> None:
    ingress = next(doc for doc in documents if doc["kind"] == "Ingress")
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/auth-type"] == "basic"  # htpasswd: bcrypt hashes
    assert annotations["nginx.ingress.kubernetes.io/limit-rps"] == "50"
    assert kubernetes.ingress_problems(documents) == []
    opened = copy.deepcopy(documents)
    paths = next(doc for doc in opened if doc["kind"] == "Ingress")["spec"]["rules"][0]["http"]["paths"]
    paths.append({"path": "/metrics", "pathType": "Prefix", "backend": {"service": {"name": "gone"}}})
    assert kubernetes.ingress_problems(opened) == [
        "Ingress/{{ cookiecutter.project_slug }}: /metrics goes to 'gone', not a Service here",
        "Ingress/{{ cookiecutter.project_slug }}: exposes /metrics (Prefix)",
    ]


def test_kubernetes__admission_admits_only_this_repository_s_image_by_digest() -> None:
    policy, binding = kubernetes.load_documents(
        [PROJECT_ROOT / "deploy" / "gitops" / "admission" / "images-by-digest.yaml"]
    )
    namespaces = set()
    for environment in ("staging", "production"):
        overlay = yaml.safe_load((KUBERNETES / "overlays" / environment / "kustomization.yaml").read_text())
        repository = overlay["images"][0]["newName"]
        assert f"c.image.startsWith('{repository}@sha256:')" in policy["spec"]["validations"][0]["expression"]
        namespaces.add(overlay["namespace"])
    assert set(binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"][0]["values"]) == (
        namespaces
    )
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]


def test_kubernetes__an_application_syncing_no_overlay_is_reported() -> None:
    application = kubernetes.load_documents(
        [PROJECT_ROOT / "deploy" / "gitops" / "argocd" / "production.yaml"]
    )
    application[0]["spec"]["source"]["path"] = "deploy/kubernetes/overlays/prod"
    assert kubernetes.gitops_problems(application, PROJECT_ROOT) == [
        "Application/{{ cookiecutter.project_slug }}-production: syncs 'deploy/kubernetes/overlays/prod', "
        "which holds no overlay"
    ]


def test_kubernetes__a_broken_overlay_is_one_line_naming_it(tmp_path: Path) -> None:
    overlay = tmp_path / "overlays" / "production"
    overlay.mkdir(parents=True)
    (overlay / "kustomization.yaml").write_text("resources: [../../nowhere]\n")
    with pytest.raises(kubernetes.ManifestError, match=f"kustomize build {overlay}: "):
        kubernetes.build(overlay)


def test_kubernetes__the_production_overlay_matches_its_desired_state() -> None:
    desired = state.load(PROJECT_ROOT / "deploy" / "production.yaml")
    assert kubernetes.mismatches(desired, KUBERNETES / "overlays" / "production") == []


def test_kubernetes__promotion_edit_moves_image_tag_and_model_version(tmp_path: Path) -> None:
    overlay = tmp_path / "production"
    shutil.copytree(KUBERNETES / "overlays" / "production", overlay)
    desired = state.load(PROJECT_ROOT / "deploy" / "production.yaml")
    promoted = state.with_release(desired, state.Release("{{ cookiecutter.project_slug }}:v7abc", "7"))
    assert kubernetes.mismatches(promoted, overlay)  # stale until synced
    kubernetes.sync_overlay(promoted, overlay)
    assert kubernetes.mismatches(promoted, overlay) == []
    doc = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    assert doc["images"][0]["newTag"] == "v7abc"
    assert doc["commonAnnotations"]["mlops/model-version"] == "7"
    assert doc["resources"] == ["../../base"]
    assert (overlay / "kustomization.yaml").read_text().startswith("# Generated from deploy/production.yaml")


def test_kubernetes__a_pushed_image_is_pinned_by_digest_and_nothing_else_changes(tmp_path: Path) -> None:
    overlay = tmp_path / "production"
    shutil.copytree(KUBERNETES / "overlays" / "production", overlay)
    before = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    digest = "sha256:" + "ab" * 32
    pushed = state.Release("svc:v8def", "8", f"registry.example:5000/team/svc@{digest}")
    promoted = state.with_release(state.load(PROJECT_ROOT / "deploy" / "production.yaml"), pushed)
    kubernetes.sync_overlay(promoted, overlay)
    after = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    assert kubernetes.mismatches(promoted, overlay) == []
    assert after["images"] == [
        {"name": kubernetes.IMAGE_NAME, "newName": "registry.example:5000/team/svc", "digest": digest}
    ]  # no tag left beside the digest: kustomize would otherwise have two pins to choose from
    assert after["commonAnnotations"] == {"mlops/bento": "svc:v8def", "mlops/model-version": "8"}
    assert {key: value for key, value in after.items() if key not in {"images", "commonAnnotations"}} == {
        key: value for key, value in before.items() if key not in {"images", "commonAnnotations"}
    }
    # a later release not pushed goes back to a tag, and a stale digest is reported until synced
    unpushed = state.with_release(promoted, state.Release("svc:v9", "9"))
    assert any("digest" in problem for problem in kubernetes.mismatches(unpushed, overlay))
    kubernetes.sync_overlay(unpushed, overlay)
    assert yaml.safe_load((overlay / "kustomization.yaml").read_text())["images"][0] == {
        "name": kubernetes.IMAGE_NAME,
        "newName": after["images"][0]["newName"],
        "newTag": "v9",
    }


def _changed_lines(before: str, after: str) -> list[str]:
    diff = difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
    return [line for line in diff if line[:1] in "+-" and line[:3] not in {"+++", "---"}]


def test_kubernetes__promotion_and_revert_change_exactly_the_pin_and_the_release(tmp_path: Path) -> None:
    """Two releases promoted, then reverted: each edit touches the digest, bento and version lines only."""
    shutil.copytree(KUBERNETES, tmp_path, ignore=shutil.ignore_patterns("schemas"), dirs_exist_ok=True)
    overlay = tmp_path / "overlays" / "production"
    path = overlay / "kustomization.yaml"
    desired = state.load(PROJECT_ROOT / "deploy" / "production.yaml")
    first = state.with_release(desired, state.Release("svc:v1", "1", f"ghcr.io/o/svc@sha256:{'1' * 64}"))
    kubernetes.sync_overlay(first, overlay)
    after_first = path.read_text()
    second = state.with_release(first, state.Release("svc:v2", "2", f"ghcr.io/o/svc@sha256:{'2' * 64}"))
    kubernetes.sync_overlay(second, overlay)
    after_second = path.read_text()
    assert _changed_lines(after_first, after_second) == [
        f"-    digest: sha256:{'1' * 64}",
        f"+    digest: sha256:{'2' * 64}",
        "-  mlops/bento: svc:v1",
        "-  mlops/model-version: '1'",
        "+  mlops/bento: svc:v2",
        "+  mlops/model-version: '2'",
    ]
    assert [line for line in after_second.splitlines() if line.lstrip().startswith("#")] == [
        line
        for line in (KUBERNETES / "overlays" / "production" / "kustomization.yaml").read_text().splitlines()
        if line.lstrip().startswith("#")
    ]  # every comment survives the edits
    kubernetes.sync_overlay(state.rolled_back(second), overlay)
    assert path.read_text() == after_first  # the revert is the first release's overlay, byte for byte
    rollout = next(doc for doc in kubernetes.build(overlay) if doc["kind"] == "Rollout")
    assert rollout["spec"]["template"]["spec"]["containers"][0]["image"] == f"ghcr.io/o/svc@sha256:{'1' * 64}"


def test_kubernetes__no_previous_release_means_no_revert() -> None:
    desired = state.load(PROJECT_ROOT / "deploy" / "production.yaml")
    only = state.with_release(desired, state.Release("svc:v1", "1"))
    with pytest.raises(state.StateError, match="holds no release, so there is nothing to roll back to"):
        state.rolled_back(only)


def _rollout(image: str, phase: str, *, current: str = "abc", stable: str = "abc") -> dict[str, Any]:
    """What `kubectl get rollout -o json` answers, cut to the fields read (a fake: no cluster here)."""
    return {
        "metadata": {"annotations": {"mlops/model-version": "2"}},
        "spec": {"template": {"spec": {"containers": [{"image": image}]}}},
        "status": {
            "phase": phase,
            "currentPodHash": current,
            "stableRS": stable,
            "message": "analysis running",
        },
    }


@pytest.mark.parametrize(
    ("rollout", "healthy", "said"),
    [
        (
            _rollout(f"ghcr.io/o/svc@{DIGEST}", "Healthy"),
            True,
            f"model v2 serves: Rollout Healthy, active pods run {DIGEST}",
        ),
        (_rollout("ghcr.io/o/svc@sha256:" + "0" * 64, "Healthy"), False, "not the pinned"),
        (
            _rollout(f"ghcr.io/o/svc@{DIGEST}", "Paused", stable="old"),
            False,
            "rollout is Paused: analysis running",
        ),
    ],
)
def test_kubernetes__rollout_status_reads_health_and_the_pinned_image(
    rollout: dict[str, Any], healthy: bool, said: str
) -> None:
    desired = state.with_release(
        state.load(PROJECT_ROOT / "deploy" / "production.yaml"),
        state.Release("svc:v2", "2", f"ghcr.io/o/svc@{DIGEST}"),
    )
    verdict, line = kubernetes.rollout_status(rollout, desired)
    assert verdict is healthy
    assert said in line


class _Color(http.server.BaseHTTPRequestHandler):
    """A stand-in for one color's HTTP surface; the real image runs the probe in the template's tests."""

    answer: bytes = b'{"predictions": [{"id": "C1", "churn": 0}]}'

    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/readyz" else 404)
        self.end_headers()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(self.answer)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def color() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Color)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_probe__a_color_of_the_right_shape_passes(color: str, tmp_path: Path) -> None:
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"rows": [{"customer_id": "C1"}]}))
    assert probe.main(["--url", color, "--request", str(request), "--requests", "5"]) == 0


@pytest.mark.parametrize(
    ("answer", "rows", "budget", "failure"),
    [
        (b'{"predictions": []}', 1, 500.0, "expected 'predictions' with 1 item(s)"),
        (b"oops", 1, 500.0, "not JSON"),
        (b'{"predictions": [{"id": "C1", "churn": 0}]}', 2, 500.0, "expected 'predictions' with 2 item(s)"),
        (b'{"predictions": [{"id": "C1", "churn": 0}]}', 1, 0.0, "over the 0 ms budget"),
    ],
)
def test_probe__a_wrong_answer_or_a_slow_color_fails_with_the_reason(
    color: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    answer: bytes,
    rows: int,
    budget: float,
    failure: str,
) -> None:
    _Color.answer = answer
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"rows": [{"customer_id": "C1"}] * rows}))
    try:
        code = probe.main(
            ["--url", color, "--request", str(request), "--requests", "3", "--p95-ms", str(budget)]
        )
    finally:
        _Color.answer = b'{"predictions": [{"id": "C1", "churn": 0}]}'
    assert code == 1
    assert failure in capsys.readouterr().err


def test_probe__an_unreachable_color_fails_once_readiness_times_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"rows": [{}]}))
    assert probe.main(["--url", "http://127.0.0.1:9", "--request", str(request), "--ready-s", "0"]) == 1
    assert "not ready within 0 s" in capsys.readouterr().err


def test_kubernetes__no_rollout_an_hpa_scales_declares_replicas() -> None:
    """Argo CD's self-heal would reset every scale the HPA makes to a count declared in git."""
    for environment in ("staging", "production"):
        built = kubernetes.build(KUBERNETES / "overlays" / environment)
        assert kubernetes.autoscaling_problems(built) == []
        assert "replicas" not in next(doc for doc in built if doc["kind"] == "Rollout")["spec"]
        declared = copy.deepcopy(built)
        next(doc for doc in declared if doc["kind"] == "Rollout")["spec"]["replicas"] = 2
        assert kubernetes.autoscaling_problems(declared) == [
            "Rollout/{{ cookiecutter.project_slug }}: declares replicas: 2, but HorizontalPodAutoscaler/"
            "{{ cookiecutter.project_slug }} scales it: Argo CD's self-heal would undo every scale; "
            "leave replicas out (minReplicas is the floor)"
        ]


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_kubernetes__each_application_leaves_the_replica_count_to_the_hpa(environment: str) -> None:
    path = PROJECT_ROOT / "deploy" / "gitops" / "argocd" / f"{environment}.yaml"
    application = kubernetes.load_documents([path])
    assert kubernetes.gitops_problems(application, PROJECT_ROOT) == []
    diff_only = copy.deepcopy(application)
    diff_only[0]["spec"]["syncPolicy"]["syncOptions"].remove(kubernetes.RESPECT_IGNORED)
    unignored = copy.deepcopy(application)
    del unignored[0]["spec"]["ignoreDifferences"]
    for broken in (diff_only, unignored):  # a sync would still apply git's count without the option
        assert [line.split(":")[0] for line in kubernetes.gitops_problems(broken, PROJECT_ROOT)] == [
            f"Application/{{ cookiecutter.project_slug }}-{environment}"
        ]


def test_kubernetes__the_admission_policy_admits_serving_image_repository_and_no_other() -> None:
    documents = kubernetes.load_documents(
        [PROJECT_ROOT / "deploy" / "gitops" / "admission" / "images-by-digest.yaml"]
    )
    repository = compose().serving.image_repository
    assert kubernetes.admission_problems(documents, repository) == []
    assert kubernetes.admitted(f"{repository}@{DIGEST}", documents)
    assert not kubernetes.admitted(f"{repository}:v1", documents)  # a tag is never enough
    # A project whose images go elsewhere: the check names both, instead of every pod being denied.
    other = compose(["serving.image_repository=registry.example:5000/team/churn"]).serving.image_repository
    assert kubernetes.admission_problems(documents, other) == [
        f"the admission policy admits ['{repository}@sha256:'], but serving.image_repository "
        f"(conf/serving/default.yaml) is '{other}': every pod would be denied; admit "
        f"'{other}@sha256:' in deploy/gitops/admission/images-by-digest.yaml and apply it again"
    ]
    moved = yaml.safe_load_all(
        (PROJECT_ROOT / "deploy" / "gitops" / "admission" / "images-by-digest.yaml")
        .read_text()
        .replace(repository, other)
    )
    assert kubernetes.admission_problems([doc for doc in moved if doc], other) == []
    built = kubernetes.build(KUBERNETES / "overlays" / "production")
    assert kubernetes.repository_problems(built, repository) == []
    assert kubernetes.repository_problems(built, other) == [
        f"Rollout/{{ cookiecutter.project_slug }}: runs '{repository}:unreleased', not an image of '{other}' "
        "(serving.image_repository): set the overlay's newName to it, or promote a release pushed there"
    ]


def test_kubernetes__the_offline_check_holds_the_policy_to_the_configured_repository() -> None:
    found = kubernetes.check(PROJECT_ROOT, "registry.example:5000/team/churn")
    assert found["deploy/gitops/admission/images-by-digest.yaml"][0].startswith("the admission policy admits")
    assert (
        "not an image of 'registry.example:5000/team/churn'" in found["deploy/kubernetes/overlays/staging"][0]
    )


def _overlays_copy(tmp_path: Path) -> Path:
    shutil.copytree(
        KUBERNETES, tmp_path / "kubernetes", ignore=shutil.ignore_patterns("schemas", "node_modules")
    )
    return tmp_path / "kubernetes" / "overlays"


def _image(overlay: Path) -> str:
    rollout = next(doc for doc in kubernetes.build(overlay) if doc["kind"] == "Rollout")
    return str(rollout["spec"]["template"]["spec"]["containers"][0]["image"])


def test_kubernetes__a_proposal_pins_staging_to_production_s_digest_which_admission_admits(
    tmp_path: Path,
) -> None:
    """Git's staging overlay names what the cluster may run: the proposed digest, not `unreleased`."""
    overlays = _overlays_copy(tmp_path)
    policy = kubernetes.load_documents(
        [PROJECT_ROOT / "deploy" / "gitops" / "admission" / "images-by-digest.yaml"]
    )
    repository = compose().serving.image_repository
    assert not kubernetes.admitted(_image(overlays / "staging"), policy)  # nothing released yet
    staging = state.load(PROJECT_ROOT / "deploy" / "staging.yaml")
    # the release job's own staging runs the image by a local tag; its file does not move the overlay
    assert (
        kubernetes.sync_overlays(
            state.with_release(staging, state.Release("svc:v1", "1", "svc:v1")), overlays
        )
        == []
    )
    production = state.load(PROJECT_ROOT / "deploy" / "production.yaml")
    pushed = state.Release("svc:v1", "1", f"{repository}@{DIGEST}")
    proposed = state.with_release(production, pushed)
    assert kubernetes.sync_overlays(proposed, overlays) == [overlays / "production" / "kustomization.yaml"]
    assert kubernetes.stage(proposed, overlays) == overlays / "staging" / "kustomization.yaml"
    assert _image(overlays / "staging") == _image(overlays / "production") == f"{repository}@{DIGEST}"
    assert kubernetes.admitted(_image(overlays / "staging"), policy)
    assert kubernetes.mismatches(proposed, overlays / "staging") == []  # the same pin and release
    # a revert moves production only: staging keeps the newest release
    second = state.with_release(proposed, state.Release("svc:v2", "2", f"{repository}@sha256:{'2' * 64}"))
    kubernetes.sync_overlays(second, overlays)
    kubernetes.stage(second, overlays)
    kubernetes.sync_overlays(state.rolled_back(second), overlays)
    assert _image(overlays / "production") == f"{repository}@{DIGEST}"
    assert _image(overlays / "staging") == f"{repository}@sha256:{'2' * 64}"


def test_kubernetes__deploy_propose_writes_the_staging_pin_the_promotion_pr_carries(tmp_path: Path) -> None:
    shutil.copytree(
        PROJECT_ROOT / "deploy", tmp_path / "deploy", ignore=shutil.ignore_patterns("node_modules")
    )
    where = [f"deploy.desired_dir={tmp_path / 'deploy'}", f"deploy.report_dir={tmp_path / 'reports'}"]
    assert cli.main(["propose", "production", "--bento", "svc:abc123", "--model-version", "4", *where]) == 0
    overlays = tmp_path / "deploy" / "kubernetes" / "overlays"
    pins = [
        yaml.safe_load((overlays / env / "kustomization.yaml").read_text())
        for env in ("staging", "production")
    ]
    assert pins[0]["images"] == pins[1]["images"]
    assert pins[0]["commonAnnotations"] == {"mlops/bento": "svc:abc123", "mlops/model-version": "4"}
    # ...and the pull request carries that file; merging it retrains nothing
    workflow = yaml.safe_load((PROJECT_ROOT / ".github" / "workflows" / "release.yml").read_text())
    opened = next(
        step["with"]
        for step in workflow["jobs"]["promotion-pr"]["steps"]
        if "create-pull-request" in step.get("uses", "")
    )
    staged = "deploy/kubernetes/overlays/staging/kustomization.yaml"
    assert staged in opened["add-paths"].split()
    assert staged in workflow[True]["push"]["paths-ignore"]  # YAML 1.1 reads the key `on` as True


FAKE_KUBECTL = """#!/bin/sh
# The cluster is the one fake (none can run here): `get` answers the Rollout the test wrote;
# `kustomize` is the real kubectl's. Every call is recorded, to show CI only ever reads.
echo "$*" >> "$FAKE_CALLS"
case "$1" in get) cat "$FAKE_ROLLOUT" ;; *) exec "$REAL_KUBECTL" "$@" ;; esac
"""


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A read-only kubeconfig's view of one Rollout: write the JSON ``kubectl get`` answers to the path."""
    real = shutil.which("kubectl")
    assert real is not None, "kubectl builds the overlays"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").write_text(FAKE_KUBECTL)
    (bin_dir / "kubectl").chmod(0o755)
    (tmp_path / "kubeconfig").write_text("apiVersion: v1\nkind: Config\n")
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("REAL_KUBECTL", real)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
    monkeypatch.setenv("FAKE_CALLS", str(tmp_path / "calls"))
    monkeypatch.setenv("FAKE_ROLLOUT", str(tmp_path / "rollout.json"))
    return tmp_path / "rollout.json"


def test_rollout_status__champion_follows_what_the_cluster_serves_through_promotions_and_a_revert(
    tmp_path: Path, cluster: Path
) -> None:
    """A real MLflow registry (sqlite) with two versions and no alias set by hand: only
    ``deploy propose`` / ``deploy revert`` (the merged pull requests) and ``deploy rollout-status``
    (promote.yml) run; ``champion`` moves when, and only when, the cluster serves git's release."""
    shutil.copytree(
        PROJECT_ROOT / "deploy", tmp_path / "deploy", ignore=shutil.ignore_patterns("node_modules")
    )
    where = [
        f"deploy.desired_dir={tmp_path / 'deploy'}",
        f"deploy.report_dir={tmp_path / 'reports'}",
        f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
    ]
    cfg = compose(where)
    client = registry.connect(cfg.mlflow)
    client.create_registered_model(cfg.mlflow.model_name)
    for _ in range(2):
        client.create_model_version(cfg.mlflow.model_name, source=str(tmp_path / "model"))

    def serves(version: str, phase: str = "Healthy") -> int:
        """The cluster runs svc:v<version>; then promote.yml's step looks (no waiting here)."""
        cluster.write_text(json.dumps(_rollout(f"ghcr.io/o/svc:v{version}", phase) | {"metadata": {}}))
        return cli.main(["rollout-status", "production", "--wait-s", "0", *where])

    def champion() -> str | None:
        found = registry.version_by_alias(client, cfg.mlflow.model_name, registry.CHAMPION)
        return None if found is None else str(found.version)

    def merged(*command: str) -> None:
        assert cli.main([*command, *where]) == 0

    merged("propose", "production", "--bento", "svc:v1", "--model-version", "1")
    assert champion() is None
    assert serves("1") == 0
    assert champion() == "1"  # seen serving: crowned without anyone crowning by hand
    merged("propose", "production", "--bento", "svc:v2", "--model-version", "2")
    assert serves("1") == 1  # Argo CD has not synced v2 yet: the alias stays on what serves
    assert serves("2", phase="Paused") == 1  # v2's analysis still running
    assert champion() == "1"
    assert serves("2") == 0
    assert champion() == "2"
    merged("revert", "production")  # the rollback pull request, merged
    assert serves("2") == 1
    assert champion() == "2"  # the cluster still serves v2 until it syncs the revert
    assert serves("1") == 0
    assert champion() == "1"  # ...and back once it serves v1 again
    calls = (tmp_path / "calls").read_text().splitlines()
    assert {call.split()[0] for call in calls} == {"kustomize", "get"}  # CI only ever reads the cluster


def test_rollout_status__without_a_kubeconfig_it_says_champion_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    where = [
        f"deploy.report_dir={tmp_path / 'reports'}",
        f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
    ]
    assert cli.main(["rollout-status", "production", *where]) == 0
    assert "'champion' stays where it is" in capsys.readouterr().out


def test_readme__the_documented_rollback_survives_self_heal_and_says_what_a_late_revert_costs() -> None:
    """`kubectl argo rollouts undo` under self-heal is undone within seconds: the README pauses the
    Application's automated sync first, names the warm window the Rollout really has, and says
    what a revert after it costs."""
    readme = " ".join((PROJECT_ROOT / "README.md").read_text().split())
    application = kubernetes.load_documents(
        [PROJECT_ROOT / "deploy" / "gitops" / "argocd" / "production.yaml"]
    )[0]
    rollout = next(
        doc for doc in kubernetes.build(KUBERNETES / "overlays" / "production") if doc["kind"] == "Rollout"
    )
    pause = (
        f"kubectl patch application {application['metadata']['name']} -n argocd --type merge "
        """-p '{"spec":{"syncPolicy":{"automated":null}}}'"""
    )
    undo = f"kubectl argo rollouts undo {rollout['metadata']['name']} -n {rollout['metadata']['namespace']}"
    resume = "kubectl apply -n argocd -f deploy/gitops/argocd/production.yaml"
    assert readme.index(pause) < readme.index(undo) < readme.index(resume)
    assert readme.count("kubectl argo rollouts undo") == 1  # never advised without the pause
    window = rollout["spec"]["strategy"]["blueGreen"]["scaleDownDelaySeconds"]
    assert f"`scaleDownDelaySeconds` ({window} s)" in readme
    assert "cold start" in readme
    assert "pre-promotion analysis" in readme
    assert "https://argo-rollouts.readthedocs.io/en/stable/features/rollback/" in readme


# The sweeps' RayCluster (KubeRay). No kubernetes-models package models ray.io, so the CRD's own
# schema is kept beside the manifest (KubeRay v1.7.0, see its $comment), made strict as
# kubeconform's -strict makes schemas (an unknown field fails), and each group's pod template is
# held to Kubernetes' own PodTemplateSpec schema, strictly, as the core kinds are.
RAY = KUBERNETES / "ray"


def strict(schema: Any) -> Any:
    """Every object schema that lists its properties refuses others, unless it keeps unknown fields."""
    if isinstance(schema, dict):
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        for value in schema.values():
            strict(value)
    elif isinstance(schema, list):
        for value in schema:
            strict(value)
    return schema


def raycluster_problems(cluster: dict[str, Any]) -> list[str]:
    """The RayCluster against its CRD schema and each pod template against the core schema."""
    schema = strict(json.loads((RAY / "raycluster.schema.json").read_text()))
    problems = [
        f"RayCluster/{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in jsonschema.Draft7Validator(schema).iter_errors(cluster)
    ]
    groups = [cluster["spec"]["headGroupSpec"], *cluster["spec"].get("workerGroupSpecs", [])]
    for group in groups:
        pod = {
            "apiVersion": "v1",
            "kind": "PodTemplate",
            "metadata": {"name": "t"},
            "template": group["template"],
        }
        try:
            kubernetes_validate.validate(pod, kubernetes.KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"PodTemplate of {group.get('groupName', 'head')}: {error.message}")
    return problems


@pytest.fixture
def raycluster() -> dict[str, Any]:
    return dict(yaml.safe_load((RAY / "raycluster.yaml").read_text()))


def test_raycluster__passes_the_crd_schema_and_the_core_pod_schema(raycluster: dict[str, Any]) -> None:
    assert raycluster["apiVersion"] == "ray.io/v1"
    assert raycluster_problems(raycluster) == []


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        (("spec", "workerGroupSpecs", 0, "replicas"), "two", "'two' is not of type 'integer'"),
        (("spec", "rayVersoin"), "2.60.0", "Additional properties are not allowed ('rayVersoin'"),
        (("spec", "authOptions", "mode"), "tokens", "'tokens' is not one of"),
        (
            ("spec", "headGroupSpec", "template", "spec", "containers", 0, "imagePullSecret"),
            "x",
            "PodTemplate of head",
        ),
    ],
)
def test_raycluster__a_wrong_type_or_unknown_field_fails(
    raycluster: dict[str, Any], path: tuple[Any, ...], value: str, problem: str
) -> None:
    broken = copy.deepcopy(raycluster)
    node = broken
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert any(problem in line for line in raycluster_problems(broken)), raycluster_problems(broken)


def test_raycluster__runs_the_ray_and_python_of_the_lock(raycluster: dict[str, Any]) -> None:
    """A driver and its cluster must run one Ray release: the lock's, in the image tag and rayVersion."""
    lock = tomllib.loads((PROJECT_ROOT / "uv.lock").read_text())
    ray = next(package["version"] for package in lock["package"] if package["name"] == "ray")
    python = (PROJECT_ROOT / ".python-version").read_text().strip().replace(".", "")
    assert raycluster["spec"]["rayVersion"] == ray
    groups = [raycluster["spec"]["headGroupSpec"], *raycluster["spec"]["workerGroupSpecs"]]
    images = {c["image"] for group in groups for c in group["template"]["spec"]["containers"]}
    assert images == {f"rayproject/ray:{ray}-py{python}"}
