"""Packaging: a bento carrying its lineage, served by `bentoml serve <tag>` from anywhere."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

import bento_server
from conftest import quick_forest
from crowning import crown
from {{ cookiecutter.package_name }} import profiling, registry
from {{ cookiecutter.package_name }}.config import compose
from {{ cookiecutter.package_name }}.data import load_table
from {{ cookiecutter.package_name }}.deployment.loopback import free_port
from {{ cookiecutter.package_name }}.serving import packaging
from {{ cookiecutter.package_name }}.tools import ENGINES
from {{ cookiecutter.package_name }}.training import train

LINEAGE = ("model_version", "run_id", "data_digest", "git_commit")


def test_packaging__image_is_named_after_the_bento_version() -> None:
    repository = compose().serving.image_repository
    assert repository.endswith("/{{ cookiecutter.project_slug }}")
    assert packaging.image_reference(repository, "model:abc123") == f"{repository}:abc123"


def test_packaging__push_without_credentials_keeps_the_users_own_login(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in packaging.LOGIN_ENV:
        monkeypatch.delenv(name, raising=False)
    assert packaging.login("podman", "ghcr.io", tmp_path) == dict(os.environ)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not any(map(shutil.which, ENGINES)), reason="no container engine on this machine")
def test_packaging__push_logs_in_with_its_own_engine_and_names_a_failed_login(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The engine that built the image logs in (a podman-only host has no `docker login`)."""
    engine = next(name for name in ENGINES if shutil.which(name))
    monkeypatch.setenv("REGISTRY_USERNAME", "release-bot")
    monkeypatch.setenv("REGISTRY_PASSWORD", "not-a-token")
    closed = f"127.0.0.1:{free_port()}"  # nothing listens: the engine's own login must fail
    with pytest.raises(packaging.ImageError, match=f"{engine} login {closed} as release-bot failed"):
        packaging.login(engine, closed, tmp_path)


def stage(name: str, overrides: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).with_name(name)), *overrides]
    return subprocess.run(command, env=os.environ | env, capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Train and crown a quick model in a throwaway store, then `package` it into a throwaway bento store."""
    root = tmp_path_factory.mktemp("packaging")
    overrides = [*quick_forest(root), f"serving.report_dir={root}/reports"]
    cfg = compose(overrides)
    train.train(cfg)
    crown(cfg)
    env = {"BENTOML_HOME": str(root / "bentoml")}
    result = stage("package", overrides, env)
    assert result.returncode == 0, result.stderr
    summary = json.loads((root / "reports" / "package.json").read_text())
    client = registry.connect(cfg.mlflow)
    version = registry.version_by_alias(client, cfg.mlflow.model_name, registry.CHAMPION)
    assert version is not None
    return {
        "root": root,
        "env": env,
        "overrides": overrides,
        "summary": summary,
        "cfg": cfg,
        "lineage": registry.lineage(client, cfg.mlflow.model_name, str(version.version)),
        "printed": result.stdout,
    }


@pytest.mark.slow
def test_packaging__bento_labels_carry_the_lineage(packaged: dict[str, Any]) -> None:
    name, version = packaged["summary"]["bento_tag"].split(":")
    bento = yaml.safe_load(
        (packaged["root"] / "bentoml" / "bentos" / name / version / "bento.yaml").read_text()
    )
    lineage = packaged["lineage"]
    assert bento["labels"]["model_version"] == lineage.version
    assert bento["labels"]["run_id"] == lineage.run_id
    assert bento["labels"]["data_digest"] == lineage.data_digest
    assert bento["labels"]["git_commit"] == lineage.git_commit
    assert [model["tag"] for model in bento["models"]] == [packaged["summary"]["model_tag"]]


@pytest.mark.slow
def test_packaging__bento_carries_the_reference_monitoring_holds_traffic_against(
    packaged: dict[str, Any],
) -> None:
    root, model_tag = packaged["root"], packaged["summary"]["model_tag"]
    name, version = model_tag.split(":")
    reference = root / "bentoml" / "models" / name / version / "reference"
    assert profiling.row_count(profiling.read(reference / "reference.bin")) > 0
    assert json.loads((reference / "model.json").read_text())["version"] == packaged["lineage"].version
    monitor = root / "monitor"
    window = [
        *packaged["overrides"],
        f"monitoring.profile_dir={monitor / 'profiles'}",
        f"monitoring.prediction_log_dir={monitor / 'profiles'}",
        f"monitoring.labels_path={monitor / 'labels.csv'}",
        f"monitoring.report_dir={monitor / 'reports'}",
    ]
    replayed = stage("simulate-drift", window, packaged["env"])
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    from_bento = [
        f"monitoring.reference_bento={packaged['summary']['bento_tag']}",
        "monitoring.model_alias=none",
    ]
    monitored = stage("monitor", [*window, *from_bento], packaged["env"])
    assert monitored.returncode == 0, monitored.stdout + monitored.stderr
    report = json.loads((monitor / "reports" / "monitor.json").read_text())
    assert report["reference"]["source"] == str(reference / "reference.bin")


@pytest.mark.slow
def test_packaging__loading_the_bento_s_service_imports_no_model_stack(packaged: dict[str, Any]) -> None:
    """BentoML's supervisor loads the service only for its configuration: it starts ~2 s sooner so."""
    heavy = ("mlflow", "sklearn", "whylogs", "skops")
    probe = (
        "import sys, bentoml; "
        f"service = bentoml.load({packaged['summary']['bento_tag']!r}); "
        f"print(service.name, *[name for name in {heavy!r} if name in sys.modules])"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=packaged["root"],
        env=os.environ | packaged["env"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.split() == [packaged["cfg"].mlflow.model_name]  # the service, nothing heavy


@pytest.mark.slow
def test_packaging__bento_serves_outside_the_project(packaged: dict[str, Any]) -> None:
    elsewhere = packaged["root"] / "elsewhere"
    elsewhere.mkdir()
    tag = packaged["summary"]["bento_tag"]
    env = packaged["env"] | {"SERVING_PROFILE_DIR": str(elsewhere / "profiles")}
    process, url = bento_server.start(tag, elsewhere, env, packaged["root"] / "serve.log")
    try:
        metadata = httpx.get(f"{url}/metadata").json()
        row = json.loads(load_table(packaged["cfg"].data.path).head(1).to_json(orient="records"))[0]
        answer = httpx.post(f"{url}/predict", json={"rows": [row]}, timeout=30)
        metrics = httpx.get(f"{url}/metrics").text
    finally:
        bento_server.stop(process)
    assert metadata["bento"] == tag
    assert {key: metadata[key] for key in LINEAGE} == {
        key: packaged["summary"]["labels"][key] for key in LINEAGE
    }
    assert answer.status_code == 200
    assert answer.json()["predictions"][0]["id"] == row[packaged["cfg"].data.id_column]
    assert f'service_version="{tag.split(":")[1]}"' in metrics
    assert list((elsewhere / "profiles").glob("*.bin"))


@pytest.mark.slow
def test_packaging__the_request_it_prints_is_answered_by_the_bento_as_the_model_answers_offline(
    packaged: dict[str, Any],
) -> None:
    """``package`` prints a body from a real row and writes it for ``curl -d @``; the bento answers it."""
    printed = packaged["printed"].splitlines()
    request = packaged["root"] / "reports" / "request.json"
    shown = printed.index(next(line for line in printed if "a request it answers, from data row" in line))
    assert printed[shown + 1].strip() == request.read_text(encoding="utf-8").strip()
    assert printed[shown + 2].strip().endswith(f"-d @{request}")
    body = json.loads(request.read_text(encoding="utf-8"))
    cfg = packaged["cfg"]
    row = int(printed[shown].split("from data row ")[1].split()[0])
    original = load_table(cfg.data.path).iloc[[row - 1]]
    assert body["rows"][0][cfg.data.id_column] == original[cfg.data.id_column].item()
    process, url = bento_server.start(
        packaged["summary"]["bento_tag"], packaged["root"], packaged["env"], packaged["root"] / "example.log"
    )
    try:
        answer = httpx.post(
            f"{url}/predict", content=request.read_bytes(), headers={"content-type": "application/json"}
        )
    finally:
        bento_server.stop(process)
    assert answer.status_code == 200, answer.text
    registry.connect(cfg.mlflow)
    model = registry.load(cfg.mlflow.model_name, registry.CHAMPION)
    offline = model.predict(original[list(model.feature_names_in_)])[0]
    assert answer.json()["predictions"][0]["prediction"] == offline


@pytest.mark.slow
def test_packaging__containerize_explains_a_missing_engine(packaged: dict[str, Any]) -> None:
    result = stage("containerize", packaged["overrides"], packaged["env"] | {"CONTAINER_ENGINE": "none"})
    assert result.returncode == 0, result.stderr
    assert "skipped" in result.stdout
    assert packaged["summary"]["bento_tag"] in result.stdout


def test_packaging__sbom_lists_every_package_the_image_installs(tmp_path: Path) -> None:
    sbom = json.loads(packaging.write_sbom(tmp_path).read_text())
    listed = {(c["name"].lower(), c["version"]) for c in sbom["components"]}
    pinned = set()
    for line in packaging.pinned_requirements():
        name, _, version = line.split(";")[0].strip().partition("==")
        pinned.add((name.lower(), version))
    assert listed == pinned
    assert all(c["purl"].startswith("pkg:pypi/") for c in sbom["components"])
    assert sbom["bomFormat"] == "CycloneDX"
