"""Package a registered model as a bento, and (where docker or podman runs) its container image.

The bento is self-contained: the model (imported from MLflow into the BentoML store, with the
training reference profile beside it in ``reference/``, so the image carries what monitoring
holds its traffic against), the package source, the serving settings frozen as bento
arguments, pinned requirements exported from ``uv.lock``, and labels naming the model version,
run id, data digest and git commit, so ``bentoml list`` and the image metadata answer "what
exactly is running?". The BentoML store lives in the project (``.bentoml/``, git-ignored)
unless ``BENTOML_HOME`` says otherwise.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import bentoml
import mlflow
from bentoml.exceptions import NotFound

from .. import reference, registry
from ..config import PROJECT_ROOT, Config, resolve, use_project_store
from ..data import DataError
from ..errors import PipelineError
from ..reports import jsonfile
from ..tools import last_line, require
from . import example, schema, settings

PACKAGE = __name__.split(".")[0]
SERVICE = f"{PACKAGE}.serving.service:ModelService"
DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")  # the last line `docker push` prints


class ImageError(PipelineError, RuntimeError):
    """An image could not be pushed, or the registry named no digest for it."""


@dataclass(frozen=True)
class Packaged:
    """What ``nox -s package`` built."""

    bento_tag: str
    model_tag: str
    labels: dict[str, str]


def model_labels(cfg: Config, alias: str) -> dict[str, str]:
    """Lineage of the version behind ``alias``; a clear error when there is none yet."""
    client = registry.connect(cfg.mlflow)
    version = registry.version_by_alias(client, cfg.mlflow.model_name, alias)
    if version is None:
        hint = (
            "promote sets it; before any promotion, package the candidate: "
            "`nox -s package -- serving.model_alias=candidate`"
            if alias == "champion"
            else "run `nox -s train` first"
        )
        raise DataError(f"no model has the alias {alias!r} yet: {hint}")
    lineage = registry.lineage(client, cfg.mlflow.model_name, str(version.version))
    return {
        "model_name": lineage.model_name,
        "model_version": lineage.version,
        "model_alias": alias,
        "run_id": lineage.run_id,
        "data_digest": lineage.data_digest,
        "git_commit": lineage.git_commit,
    }


def import_model(name: str, labels: dict[str, str]) -> str:
    """The BentoML model for this registry version, imported once (re-packaging reuses it).

    It holds the MLflow model (``schema.BENTO_MLFLOW_FOLDER``) and its training reference
    (``reference/``).
    """
    try:
        stored_models = bentoml.models.list(name)
    except NotFound:
        stored_models = []
    for stored in stored_models:
        same = all(stored.info.labels.get(key) == labels[key] for key in ("model_version", "run_id"))
        if same and Path(stored.path_of(reference.REFERENCE_DIR)).is_dir():
            return str(stored.tag)
    uri = f"models:/{labels['model_name']}/{labels['model_version']}"
    model = {"name": labels["model_name"], "version": labels["model_version"], "alias": labels["model_alias"]}
    with tempfile.TemporaryDirectory() as scratch, bentoml.models.create(name, labels=labels) as stored:
        downloaded = mlflow.artifacts.download_artifacts(uri, dst_path=scratch)
        shutil.copytree(downloaded, stored.path_of(schema.BENTO_MLFLOW_FOLDER))
        reference.download_reference(model, labels["run_id"], stored.path)
    return str(stored.tag)


def bento_reference(bento_tag: str) -> Path:
    """The ``reference/`` folder inside a bento's model (from the local BentoML store)."""
    use_project_store()
    try:
        bento = bentoml.bentos.get(bento_tag)
        folder = Path(bentoml.models.get(bento.info.models[0].tag).path_of(reference.REFERENCE_DIR))
    except (NotFound, IndexError):
        raise DataError(
            f"bento {bento_tag!r} is not in {os.environ['BENTOML_HOME']}; "
            "`nox -s package` it, or `bentoml import` the exported bento"
        ) from None
    if not folder.is_dir():
        raise DataError(f"bento {bento_tag!r} carries no reference profile; package it again")
    return folder


def bento_arguments(cfg: Config, model_tag: str) -> dict[str, Any]:
    """The service's settings, frozen into the bento: no tracking URI, the model is inside."""
    return asdict(settings.from_config(cfg, model_tag=model_tag, tracking_uri=""))


def _export_lock(*options: str) -> str:
    """The runtime part of ``uv.lock`` (no dev groups, not the project itself) in another format."""
    command = [require("uv", "packaging"), "export", "--frozen", "--no-dev", "--no-emit-project", *options]
    return subprocess.run(command, cwd=PROJECT_ROOT, check=True, capture_output=True, text=True).stdout


def pinned_requirements() -> list[str]:
    """Runtime pins exported from uv.lock, for the image (the package itself ships as source)."""
    lines = (line.split("#")[0].strip() for line in _export_lock("--no-hashes", "--no-header").splitlines())
    return [line for line in lines if line and not line.startswith("-")]


def write_sbom(report_dir: str | Path) -> Path:
    """``sbom.cdx.json``: a CycloneDX SBOM of the Python packages the bento and its image install.

    It is the same export of the same lock as :func:`pinned_requirements`, so it lists exactly the
    packages, versions and artifact hashes the image holds; the release evidence carries it.
    """
    document = _export_lock("--format", "cyclonedx1.5", "--preview-features", "sbom-export")
    path = resolve(report_dir) / "sbom.cdx.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document)
    return path


def package(cfg: Config, alias: str | None = None) -> Packaged:
    """Import the model behind ``alias`` (default ``serving.model_alias``) and build the bento."""
    use_project_store()
    logging.getLogger("bentoml.build").setLevel(logging.WARNING)  # at INFO it retells the pinned bentoml
    labels = model_labels(cfg, alias or cfg.serving.model_alias)
    model_tag = import_model(cfg.mlflow.model_name, labels)
    bento = bentoml.bentos.build(
        SERVICE,
        name=cfg.mlflow.model_name,
        labels=labels,
        description=f"{cfg.mlflow.model_name} v{labels['model_version']} (run {labels['run_id']})",
        include=[f"{PACKAGE}/**/*.py"],
        models=[model_tag],
        build_ctx=str(PROJECT_ROOT / "src"),
        python={"packages": pinned_requirements(), "lock_packages": False},
        docker={"python_version": project_python()},
        args=bento_arguments(cfg, model_tag),
    )
    return Packaged(str(bento.tag), model_tag, labels)


def project_python() -> str:
    """The Python of the image's base: ``.python-version``, which uv and CI read too.

    Not the interpreter that happens to run ``package``: the image must match what was tested.
    """
    return (PROJECT_ROOT / ".python-version").read_text().strip()


@dataclass(frozen=True)
class Image:
    """What ``nox -s containerize`` built: the reference, its content-addressed id and size.

    ``pushed`` is ``<repository>@sha256:…`` once ``nox -s push-image`` stored it in a registry:
    the name a promotion edit gives production, which can then only run these exact bytes.
    ``signed_by`` is the GPG key that signed it on the way (``IMAGE_SIGNER``), if any.
    """

    reference: str
    bento_tag: str
    image_id: str
    size_mb: float
    engine: str
    build_s: float
    pushed: str | None = None
    signed_by: str | None = None


SIGNER_ENV = "IMAGE_SIGNER"
"""A GPG key id in the pushing user's keyring: set, every pushed image is signed with it."""
LOGIN_ENV = ("REGISTRY_USERNAME", "REGISTRY_PASSWORD")
"""Credentials for the registry the image goes to; set, the push logs in with them first."""


def containerize(bento_tag: str, reference: str, engine: str) -> Image:
    """Build the bento's OCI image as ``reference`` with ``engine`` and measure what it built.

    ``bentoml containerize`` assembles the build context (the bento plus its models) and runs the
    engine; the build uses the host's network, so package indexes reachable here are reachable
    inside the build too.
    """
    use_project_store()
    bentoml_cli = str(Path(sys.executable).with_name("bentoml"))
    started = time.perf_counter()
    build = [bentoml_cli, "containerize", bento_tag, "--backend", engine, "--opt", "network=host"]
    subprocess.run([*build, "--image-tag", reference], check=True)
    seconds = time.perf_counter() - started
    inspected = subprocess.run(
        [engine, "image", "inspect", reference], capture_output=True, text=True, check=True
    ).stdout
    found = json.loads(inspected)[0]
    image_id = "sha256:" + str(found["Id"]).removeprefix("sha256:")  # podman omits the algorithm
    return Image(reference, bento_tag, image_id, round(found["Size"] / 1e6, 1), engine, round(seconds, 1))


def built_image(report_dir: str | Path, bento_tag: str) -> Image | None:
    """The image ``nox -s containerize`` built from this bento (``image.json``), if any."""
    found = jsonfile.load(resolve(report_dir) / "image.json")
    return Image(**found) if found and found.get("bento_tag") == bento_tag else None


def push(image: Image) -> Image:
    """Push the image to the registry its reference names; the same image, named by digest.

    The digest is the one the registry stored (podman writes it to a file, docker prints it), so
    ``<repository>@<digest>`` pulls these bytes and no others, whatever later happens to the tag.
    With ``IMAGE_SIGNER`` set, podman signs the manifest with that GPG key ("simple signing") and
    stores the signature where its registries.d configuration says (by default
    ``/var/lib/containers/sigstore``; a lookaside web server serves it to other hosts).
    """
    repository = image.reference.rpartition(":")[0]
    signer = os.environ.get(SIGNER_ENV) or None
    if signer and image.engine != "podman":
        raise ImageError(
            f"{SIGNER_ENV} is set, and only podman signs what it pushes; set CONTAINER_ENGINE=podman"
        )
    registry_host = repository.partition("/")[0]
    with tempfile.TemporaryDirectory() as scratch:
        environ = login(image.engine, registry_host, Path(scratch))
        digest_file = Path(scratch) / "digest"
        options = ["--digestfile", str(digest_file)] if image.engine == "podman" else []
        options += ["--sign-by", signer] if signer else []
        command = [image.engine, "push", *options, image.reference]
        pushed = subprocess.run(command, capture_output=True, text=True, check=False, env=environ)
        if pushed.returncode:
            reason = last_line(pushed.stderr)
            raise ImageError(
                f"pushing {image.reference} failed: {reason}; log in to the registry first "
                f"(set {' and '.join(LOGIN_ENV)}, or `{image.engine} login {registry_host}`)"
            )
        printed = DIGEST.findall(pushed.stdout)
        digest = digest_file.read_text().strip() if digest_file.is_file() else (printed or [""])[-1]
    if not digest.startswith("sha256:"):
        raise ImageError(f"{image.engine} pushed {image.reference} but reported no digest")
    return replace(image, pushed=f"{repository}@{digest}", signed_by=signer)


def login(engine: str, registry_host: str, scratch: Path) -> dict[str, str]:
    """Log ``engine`` in to the registry for this push only; the environment the push runs with.

    The engine that built the image logs in (``docker/login-action`` runs ``docker login``, which a
    podman-only host does not have). Its credentials go to a file in ``scratch``, deleted with it:
    podman reads ``REGISTRY_AUTH_FILE`` and docker ``DOCKER_CONFIG``, so nothing stays behind in
    the runner user's own auth file for a later job on a self-hosted runner to find. Without
    :data:`LOGIN_ENV`, the push uses whatever login the user made beforehand.
    """
    username, password = (os.environ.get(name, "") for name in LOGIN_ENV)
    if not (username and password):
        return dict(os.environ)
    environ = {**os.environ, "REGISTRY_AUTH_FILE": str(scratch / "auth.json"), "DOCKER_CONFIG": str(scratch)}
    command = [engine, "login", "--username", username, "--password-stdin", registry_host]
    signed_in = subprocess.run(
        command, input=password, capture_output=True, text=True, check=False, env=environ
    )
    if signed_in.returncode:
        reason = last_line(signed_in.stderr)
        raise ImageError(f"{engine} login {registry_host} as {username} failed: {reason}")
    return environ


def write_image(image: Image, report_dir: str | Path) -> Path:
    """``image.json``: which image holds which bento, for the release evidence."""
    return jsonfile.write_json(asdict(image), resolve(report_dir) / "image.json")


def latest_bento(name: str) -> str:
    """The newest bento of this project, or an error saying to package first."""
    use_project_store()
    try:
        return str(bentoml.bentos.get(f"{name}:latest").tag)
    except NotFound:
        raise DataError(
            f"no bento named {name!r} in {os.environ['BENTOML_HOME']}; run `nox -s package` first"
        ) from None


def image_reference(repository: str, bento_tag: str) -> str:
    """``<repository>:<bento version>``: the image says which bento it holds."""
    return f"{repository}:{bento_tag.partition(':')[2]}"


def write_summary(packaged: Packaged, report_dir: str | Path) -> Path:
    """``package.json``: the bento tag and lineage, for CI and the deploy stage."""
    return jsonfile.write_json(asdict(packaged), resolve(report_dir) / "package.json")


def write_example(cfg: Config, packaged: Packaged) -> example.Example:
    """``request.json``: a body the packaged model's service accepts, from a real row of the table.

    Built from the bento's own model signature and the settings frozen into the bento, so the
    body fits what is served, not what the current config would serve.
    """
    use_project_store()
    model_dir = bentoml.models.get(packaged.model_tag).path_of(schema.BENTO_MLFLOW_FOLDER)
    frozen = settings.from_config(cfg, model_tag=packaged.model_tag, tracking_uri="")
    return example.write(cfg, model_dir, frozen)
