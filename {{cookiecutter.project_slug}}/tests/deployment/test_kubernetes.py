"""Kubernetes manifests: core kinds valid, the Rollout well formed, overlays in step with deploy/*.yaml."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from {{ cookiecutter.package_name }}.config import PROJECT_ROOT
from {{ cookiecutter.package_name }}.deployment import kubernetes, state

KUBERNETES = PROJECT_ROOT / "deploy" / "kubernetes"


@pytest.fixture
def documents() -> list[dict[str, Any]]:
    return kubernetes.load_documents(KUBERNETES / "base")


def test_kubernetes__core_kinds_validate_against_the_schemas(documents: list[dict[str, Any]]) -> None:
    assert {doc["kind"] for doc in documents} >= {
        "Rollout",
        "Service",
        "AnalysisTemplate",
        "HorizontalPodAutoscaler",
    }
    assert kubernetes.validate_core(documents) == []


def test_kubernetes__invalid_core_kind_is_reported(documents: list[dict[str, Any]]) -> None:
    broken = copy.deepcopy(documents)
    hpa = next(doc for doc in broken if doc["kind"] == "HorizontalPodAutoscaler")
    hpa["spec"]["minReplicas"] = "two"
    assert any("HorizontalPodAutoscaler" in problem for problem in kubernetes.validate_core(broken))


def test_kubernetes__rollout_is_blue_green_with_analysis(documents: list[dict[str, Any]]) -> None:
    assert kubernetes.rollout_problems(documents) == []


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
def test_kubernetes__broken_rollout_is_reported(
    documents: list[dict[str, Any]], path: tuple[str, ...], value: object, problem: str
) -> None:
    broken = copy.deepcopy(documents)
    node = next(doc for doc in broken if doc["kind"] == "Rollout")
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert any(problem in line for line in kubernetes.rollout_problems(broken))


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_kubernetes__shipped_overlays_match_desired_state(environment: str) -> None:
    desired = state.load(PROJECT_ROOT / "deploy" / f"{environment}.yaml")
    assert kubernetes.mismatches(desired, KUBERNETES / "overlays" / environment) == []


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
