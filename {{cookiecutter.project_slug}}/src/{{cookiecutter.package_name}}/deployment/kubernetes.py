"""The Kubernetes target: kustomize overlays kept in step with the desired-state files, checked offline.

``deploy/kubernetes/base`` holds an Argo Rollouts ``blueGreen`` Rollout (active and preview
Services, a pre-promotion AnalysisTemplate) and an HPA; each overlay pins the live release's
image (by registry digest once pushed, else by the bento's version as tag) and model version.
:func:`sync_overlay` writes those from ``deploy/<environment>.yaml``; :func:`mismatches` says
where they disagree;
:func:`validate_core` checks core kinds against Kubernetes' own schemas (kubernetes-validate)
and :func:`rollout_problems` checks the Rollout's structure, whose CRD those schemas lack.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

from .state import DesiredState

UNRELEASED = "unreleased"
IMAGE_NAME = "model-image"
PIN_KEYS = ("newTag", "digest")  # kustomize pins an image by one of these
BENTO_KEY, VERSION_KEY = "mlops/bento", "mlops/model-version"
CORE_KINDS = {"Service", "HorizontalPodAutoscaler", "ConfigMap", "Deployment"}
KUBERNETES_VERSION = "1.31.0"


def expected(desired: DesiredState) -> tuple[dict[str, str], str, str]:
    """How the overlay should pin the image, and the bento tag and model version of the live release.

    A pushed image is pinned by digest (``newName`` + ``digest``): what staging checked is what
    the cluster pulls. An image never pushed can only be named by the bento version as its tag.
    """
    release = desired.release(desired.live)
    if release is None:
        return {"newTag": UNRELEASED}, "none", "none"
    if release.image and "@" in release.image:
        name, _, digest = release.image.partition("@")
        return {"newName": name, "digest": digest}, release.bento, release.model_version
    tag = release.bento.rpartition(":")[2] or UNRELEASED
    return {"newTag": tag}, release.bento, release.model_version


def sync_overlay(desired: DesiredState, overlay: Path) -> Path:
    """Rewrite the overlay's image pin and release annotations from the desired state."""
    path = overlay / "kustomization.yaml"
    text = path.read_text()
    header = "".join(line + "\n" for line in text.splitlines() if line.startswith("#"))
    doc = yaml.safe_load(text)
    pin, bento, version = expected(desired)
    for image in doc.get("images", []):
        if image.get("name") == IMAGE_NAME:
            for key in PIN_KEYS:
                image.pop(key, None)
            image.update(pin)
    doc.setdefault("commonAnnotations", {}).update({BENTO_KEY: bento, VERSION_KEY: version})
    path.write_text(header + yaml.safe_dump(doc, sort_keys=False))
    return path


def mismatches(desired: DesiredState, overlay: Path) -> list[str]:
    """Where the overlay disagrees with the desired state (empty when in step)."""
    doc = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    pin, bento, version = expected(desired)
    pins = [  # the pinning fields the overlay has, plus the name when the pin includes one
        {key: value for key, value in image.items() if key in PIN_KEYS or key in pin}
        for image in doc.get("images", [])
        if image.get("name") == IMAGE_NAME
    ]
    annotations = doc.get("commonAnnotations", {})
    problems = (
        [] if pins == [pin] else [f"{overlay}: image {pins} but deploy/{desired.environment}.yaml says {pin}"]
    )
    for key, want in ((BENTO_KEY, bento), (VERSION_KEY, version)):
        if str(annotations.get(key)) != want:
            problems.append(
                f"{overlay}: {key} is {annotations.get(key)!r}, "
                f"deploy/{desired.environment}.yaml says {want!r}"
            )
    return problems


def load_documents(directory: Path) -> list[dict[str, Any]]:
    """Every Kubernetes object in a folder's YAML files (kustomization files excluded)."""
    documents: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.yaml")):
        if path.name in {"kustomization.yaml", "rollout-transform.yaml"}:
            continue
        documents += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return documents


def validate_core(documents: list[dict[str, Any]], version: str = KUBERNETES_VERSION) -> list[str]:
    """Core kinds validated against the Kubernetes OpenAPI schemas, strictly (unknown fields fail)."""
    problems = []
    for doc in documents:
        if doc.get("kind") not in CORE_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{doc['kind']}/{doc['metadata']['name']}: {error.message}")
    return problems


def _by_kind(documents: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in documents if doc.get("kind") == kind}


def rollout_problems(documents: list[dict[str, Any]]) -> list[str]:
    """The Rollout's structure: blue/green Services and analysis exist, selectors and probes agree."""
    rollouts = _by_kind(documents, "Rollout")
    if len(rollouts) != 1:
        return [f"expected exactly one Rollout, found {len(rollouts)}"]
    name, rollout = next(iter(rollouts.items()))
    problems = (
        []
        if rollout.get("apiVersion") == "argoproj.io/v1alpha1"
        else [f"Rollout/{name}: apiVersion must be argoproj.io/v1alpha1"]
    )
    spec = rollout.get("spec", {})
    strategy = spec.get("strategy", {}).get("blueGreen")
    if not isinstance(strategy, dict):
        return [*problems, f"Rollout/{name}: spec.strategy.blueGreen is missing"]
    services = _by_kind(documents, "Service")
    for key in ("activeService", "previewService"):
        if strategy.get(key) not in services:
            problems.append(f"Rollout/{name}: {key} {strategy.get(key)!r} is not a Service here")
    if strategy.get("activeService") == strategy.get("previewService"):
        problems.append(f"Rollout/{name}: activeService and previewService must differ")
    templates = _by_kind(documents, "AnalysisTemplate")
    wanted = [t.get("templateName") for t in strategy.get("prePromotionAnalysis", {}).get("templates", [])]
    if not wanted or any(t not in templates for t in wanted):
        problems.append(
            f"Rollout/{name}: prePromotionAnalysis names {wanted}, templates here are {sorted(templates)}"
        )
    return problems + _pod_problems(name, spec, services) + _hpa_problems(name, documents)


def _pod_problems(name: str, spec: dict[str, Any], services: dict[str, dict[str, Any]]) -> list[str]:
    selector = spec.get("selector", {}).get("matchLabels", {})
    labels = spec.get("template", {}).get("metadata", {}).get("labels", {})
    problems = (
        []
        if selector and selector.items() <= labels.items()
        else [f"Rollout/{name}: selector {selector} does not match pod labels {labels}"]
    )
    for service_name, service in services.items():
        if not service["spec"].get("selector", {}).items() <= labels.items():
            problems.append(f"Service/{service_name}: selector does not match the Rollout's pods")
    containers = spec.get("template", {}).get("spec", {}).get("containers", [])
    for container in containers:
        paths = {
            container.get(probe, {}).get("httpGet", {}).get("path")
            for probe in ("readinessProbe", "livenessProbe")
        }
        if paths != {"/readyz", "/livez"}:
            problems.append(
                f"Rollout/{name}: container {container.get('name')} needs /readyz and /livez probes"
            )
    return problems if containers else [*problems, f"Rollout/{name}: no containers"]


def _hpa_problems(name: str, documents: list[dict[str, Any]]) -> list[str]:
    targets = [
        doc["spec"]["scaleTargetRef"] for doc in _by_kind(documents, "HorizontalPodAutoscaler").values()
    ]
    wanted = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": name}
    return [] if wanted in targets else [f"no HorizontalPodAutoscaler scales Rollout/{name}"]
