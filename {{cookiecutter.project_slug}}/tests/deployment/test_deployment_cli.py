"""The `deploy` command: promotion edits, status of an empty environment, one-line errors."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from {{ cookiecutter.package_name }} import registry
from {{ cookiecutter.package_name }}.config import PROJECT_ROOT, compose
from {{ cookiecutter.package_name }}.deployment import checks, cli, kubernetes, local, state
from {{ cookiecutter.package_name }}.reports import ci_page, jsonfile
from {{ cookiecutter.package_name }}.serving import packaging

SHIPS_OVERLAYS = (PROJECT_ROOT / "deploy" / "kubernetes").is_dir()  # a Kubernetes bake's edits reach them


@pytest.fixture
def desired_dir(tmp_path: Path) -> Path:
    target = tmp_path / "deploy"
    shutil.copytree(PROJECT_ROOT / "deploy", target)
    return target


def overrides(desired_dir: Path) -> list[str]:
    """Every folder the deploy command writes, moved next to the copied desired state."""
    root = desired_dir.parent
    return [
        f"deploy.desired_dir={desired_dir}",
        f"deploy.state_dir={root / '.deploy'}",
        f"deploy.report_dir={root / 'reports'}",
        f"serving.report_dir={root / 'reports'}",
    ]


def run(desired_dir: Path, *args: str) -> int:
    return cli.main([*args, *overrides(desired_dir)])


def test_cli__propose_edits_desired_state_and_overlay(desired_dir: Path) -> None:
    code = run(desired_dir, "propose", "production", "--bento", "svc:abc123", "--model-version", "4")
    assert code == 0
    desired = state.load(desired_dir / "production.yaml")
    assert desired.live == "green"
    assert desired.release("green") == state.Release("svc:abc123", "4")
    assert desired.traffic == {"blue": 0, "green": 100}
    overlay = desired_dir / "kubernetes" / "overlays" / "production"
    if SHIPS_OVERLAYS:
        assert kubernetes.mismatches(desired, overlay) == []
        assert yaml.safe_load((overlay / "kustomization.yaml").read_text())["images"][0]["newTag"] == "abc123"
    else:
        assert not overlay.exists()  # a host-only project: nothing else is written
    # the next promotion lands on the other color, keeping this one as the warm rollback target
    assert run(desired_dir, "propose", "production", "--bento", "svc:def456", "--model-version", "5") == 0
    again = state.load(desired_dir / "production.yaml")
    assert (again.live, again.release("green")) == ("blue", state.Release("svc:abc123", "4"))


def test_cli__propose_writes_live_beside_proposed_and_what_merging_does(
    desired_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The section the promotion pull request's body shows for the proposal, with the run's link."""
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/churn")
    monkeypatch.setenv("GITHUB_RUN_ID", "77")
    assert run(desired_dir, "propose", "production", "--bento", "svc:abc123", "--model-version", "4") == 0
    assert run(desired_dir, "propose", "production", "--bento", "svc:def456", "--model-version", "5") == 0
    page = ci_page.render(desired_dir.parent / "reports")
    assert "### Proposed for production" in page
    assert "| model version | v4 | v5 |" in page
    assert "| color | green | blue |" in page
    assert "Merging sends 100% of the traffic to blue" in page
    assert "[release run 77](https://github.com/acme/churn/actions/runs/77)" in page
    assert page.count("### Proposed for production") == 1  # its own Markdown, not also a generic table


def test_cli__propose_says_how_long_the_release_was_in_staging(desired_dir: Path) -> None:
    staged(desired_dir, checked=True)
    deployed_at = time.time() - 300  # staging's promotion began five minutes ago
    jsonfile.write_json(
        {
            "status": "promoted",
            "decisions": [{"at": deployed_at, "step": "deploy green", "outcome": "starting"}],
        },
        desired_dir.parent / "reports" / "promotion-staging.json",
    )
    assert run(desired_dir, "propose", "production") == 0
    proposal = json.loads((desired_dir.parent / "reports" / "proposal.json").read_text())
    assert proposal["staging"]["deployed_at"] == deployed_at
    assert (
        proposal["staging"]["deployed_at"]
        <= proposal["staging"]["checked_at"]
        <= proposal["staging"]["proposed_at"]
    )
    page = (desired_dir.parent / "reports" / "proposal.md").read_text()
    assert re.search(
        r"In staging for 5\.\d min: deployed \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC, checks passed", page
    )


def test_cli__a_release_staging_never_served_has_no_staging_time(desired_dir: Path) -> None:
    assert run(desired_dir, "propose", "production", "--bento", "svc:abc123", "--model-version", "4") == 0
    assert json.loads((desired_dir.parent / "reports" / "proposal.json").read_text())["staging"] is None


def test_cli__propose_of_a_blank_bento_is_one_line_and_writes_nothing(
    desired_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (desired_dir / "production.yaml").read_text()
    assert run(desired_dir, "propose", "production", "--bento", " ", "--model-version", "4") == 1
    error = capsys.readouterr().err
    assert error.startswith("deploy propose: error: release: bento:")
    assert len(error.strip().splitlines()) == 1
    assert (desired_dir / "production.yaml").read_text() == before


def staged(desired_dir: Path, *, checked: bool | None, image: str | None = None) -> None:
    """svc:stg live in staging; its check-staging report passed, failed, or was never written (None)."""
    staging = state.load(desired_dir / "staging.yaml")
    state.dump(
        state.with_release(staging, state.Release("svc:stg", "2", image)),
        desired_dir / "staging.yaml",
        "deploy-staging",
    )
    if checked is not None:
        results = [checks.CheckResult("health", True, {}), checks.CheckResult("latency", checked, {})]
        report = checks.Report("staging", "green (svc:stg)", "http://127.0.0.1:1", results, bento="svc:stg")
        report.write(desired_dir.parent / "reports", "staging")


def test_cli__propose_defaults_to_staging_release(desired_dir: Path) -> None:
    staged(desired_dir, checked=True)
    assert run(desired_dir, "propose", "production") == 0
    production = state.load(desired_dir / "production.yaml")
    assert production.release(production.live) == state.Release("svc:stg", "2")


def test_cli__propose_records_the_held_out_scores_compare_measured_for_that_model(
    desired_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What a pull request's compare gates against: written by the release, in the PR's file."""
    staged(desired_dir, checked=True)
    training = desired_dir.parent / "reports" / "training"
    gate = {"candidate_version": "2", "candidate_metrics": {"f1_macro": 0.81}, "test_rows": 150}
    jsonfile.write_json(gate | {"test_digest": "c" * 64}, training / "gate.json")
    moved = [*overrides(desired_dir), f"training.report_dir={training}"]
    assert cli.main(["propose", "production", *moved]) == 0
    production = state.load(desired_dir / "production.yaml")
    assert production.live_scores() == ("2", state.Scores({"f1_macro": 0.81}, 150, "c" * 64))
    # ...and a model compare did not score here (proposed by hand) gets none, said in one line
    assert cli.main(["propose", "production", "--bento", "svc:other", "--model-version", "3", *moved]) == 0
    assert state.load(desired_dir / "production.yaml").live_scores() == ("3", None)
    assert "does not score model v3: no held-out scores recorded for it" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("checked", "message"),
    [
        (False, "svc:stg failed check-staging (latency): nothing to propose"),
        (None, "run `nox -s check-staging`"),
    ],
)
def test_cli__propose_refuses_a_staging_release_that_did_not_pass_its_checks(
    desired_dir: Path, capsys: pytest.CaptureFixture[str], checked: bool | None, message: str
) -> None:
    staged(desired_dir, checked=checked)
    before = (desired_dir / "production.yaml").read_text()
    assert run(desired_dir, "propose", "production") == 1
    assert message in capsys.readouterr().err
    assert (desired_dir / "production.yaml").read_text() == before


DIGEST = "sha256:" + "5e" * 32


def built(desired_dir: Path, pushed: str | None) -> Path:
    """reports/image.json for svc:stg's image, as containerize (and push-image, if pushed) wrote it."""
    image = packaging.Image("registry.example/svc:stg", "svc:stg", "sha256:1d", 900.0, "podman", 60.0, pushed)
    return packaging.write_image(image, desired_dir.parent / "reports")


def test_cli__propose_names_a_pushed_image_by_its_digest(desired_dir: Path) -> None:
    staged(desired_dir, checked=True, image="registry.example/svc:stg")
    built(desired_dir, pushed=f"registry.example/svc@{DIGEST}")
    assert run(desired_dir, "propose", "production") == 0
    production = state.load(desired_dir / "production.yaml")
    pushed = state.Release("svc:stg", "2", f"registry.example/svc@{DIGEST}")
    assert production.release(production.live) == pushed
    if SHIPS_OVERLAYS:
        overlay = desired_dir / "kubernetes" / "overlays" / "production" / "kustomization.yaml"
        assert yaml.safe_load(overlay.read_text())["images"][0]["digest"] == DIGEST


def test_cli__propose_keeps_the_tag_of_an_image_never_pushed_and_says_so(
    desired_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    staged(desired_dir, checked=True, image="registry.example/svc:stg")
    built(desired_dir, pushed=None)
    assert run(desired_dir, "propose", "production") == 0
    production = state.load(desired_dir / "production.yaml")
    assert production.release(production.live).image == "registry.example/svc:stg"
    assert "not in a registry (`nox -s push-image`)" in capsys.readouterr().out


def test_cli__push_refuses_an_image_whose_staging_checks_failed(
    desired_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    staged(desired_dir, checked=False, image="registry.example/svc:stg")
    report = built(desired_dir, pushed=None)
    before = report.read_text()
    assert run(desired_dir, "push", "staging") == 1
    assert "svc:stg failed check-staging (latency)" in capsys.readouterr().err
    assert report.read_text() == before  # no digest recorded: nothing may be proposed from it


def test_cli__push_without_an_image_pushes_nothing(
    desired_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    staged(desired_dir, checked=True)
    assert run(desired_dir, "push", "staging") == 0
    assert "nothing to push" in capsys.readouterr().out


def test_cli__after_a_rollback_the_file_says_what_serves(desired_dir: Path) -> None:
    """Git stays the truth: the refused or rolled-back edit is undone in the file, releases kept."""
    assert run(desired_dir, "propose", "production", "--bento", "svc:v4", "--model-version", "4") == 0
    assert run(desired_dir, "propose", "production", "--bento", "svc:v5", "--model-version", "5") == 0
    proposed = state.load(desired_dir / "production.yaml")
    assert proposed.live == "blue"  # v5 on blue, v4 warm on green
    cfg = compose(overrides(desired_dir))
    serving = local.Actual(live="green", previous="blue", weights={"blue": 0, "green": 100})
    cli.target_of(cfg, "production").save(serving)  # what the rollback left running

    assert cli.record_served(cfg, "production") == desired_dir / "production.yaml"
    now = state.load(desired_dir / "production.yaml")
    assert (now.live, now.traffic, now.colors) == ("green", {"blue": 0, "green": 100}, proposed.colors)
    if SHIPS_OVERLAYS:
        overlay = desired_dir / "kubernetes" / "overlays" / "production"
        assert kubernetes.mismatches(now, overlay) == []  # the overlay names v4 again too
    assert cli.record_served(cfg, "production") is None  # in step: nothing to propose


def test_cli__checks_name_the_color_and_release_that_serve_not_the_file_s(desired_dir: Path) -> None:
    """After an automatic rollback the file names v5 live; v4 serves, so v4 is what gets measured."""
    assert run(desired_dir, "propose", "production", "--bento", "svc:v4", "--model-version", "4") == 0
    assert run(desired_dir, "propose", "production", "--bento", "svc:v5", "--model-version", "5") == 0
    desired = state.load(desired_dir / "production.yaml")  # v5 on blue, live; v4 on green
    green = local.ColorProcess("svc:v4", "4", pid=1, port=3002, started_at=0.0)
    rolled_back = local.Actual(live="green", colors={"green": green}, weights={"blue": 0, "green": 100})
    assert cli.measured(desired, rolled_back, None) == ("green", state.Release("svc:v4", "4"))
    assert cli.measured(desired, local.Actual(), None) == (
        "blue",
        state.Release("svc:v5", "5"),
    )  # nothing ran yet
    assert cli.measured(desired, rolled_back, "blue") == ("blue", state.Release("svc:v5", "5"))  # asked for


def test_cli__status_and_stop_import_no_ml_library(desired_dir: Path) -> None:
    """An operator waiting on status or stop waits for the answer, not for MLflow and BentoML to load."""
    script = (
        "import sys\n"
        "from {{ cookiecutter.package_name }}.deployment import cli\n"
        f"cli.main(['status', 'production', *{overrides(desired_dir)!r}])\n"
        f"cli.main(['stop', 'staging', *{overrides(desired_dir)!r}])\n"
        "print(sorted(m for m in ('mlflow', 'bentoml', 'sklearn', 'pandas', 'numpy') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout


def test_cli__empty_environment_deploys_nothing(
    desired_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(desired_dir, "apply", "production") == 0
    assert "nothing to deploy" in capsys.readouterr().out


def test_cli__status_exits_1_when_what_runs_differs_from_the_file(
    desired_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(desired_dir, "status", "production") == 0  # nothing released, nothing running: matches
    assert "matches deploy/production.yaml" in capsys.readouterr().out
    assert run(desired_dir, "propose", "production", "--bento", "svc:abc123", "--model-version", "4") == 0
    assert run(desired_dir, "status", "production") == 1  # green should serve svc:abc123; nothing runs
    out = capsys.readouterr().out
    assert "router: stopped" in out
    assert "DIFFERS FROM deploy/production.yaml" in out


def test_cli__bad_desired_state_is_one_line_error(
    desired_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = desired_dir / "production.yaml"
    path.write_text(path.read_text().replace("live: blue", "live: purple"))
    assert run(desired_dir, "status", "production") == 1
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0
    assert "production.yaml: live: expected 'blue' or 'green', got 'purple'" in error


def test_cli__champion_alias_follows_the_live_production_color(desired_dir: Path) -> None:
    """A real MLflow registry (sqlite) with two versions; the alias mirrors production.yaml."""
    root = desired_dir.parent
    cfg = compose([f"deploy.desired_dir={desired_dir}", f"mlflow.tracking_uri=sqlite:///{root}/mlflow.db"])
    client = registry.connect(cfg.mlflow)
    client.create_registered_model(cfg.mlflow.model_name)
    for _ in range(2):
        client.create_model_version(cfg.mlflow.model_name, source=str(root / "model"))
    production = state.load(desired_dir / "production.yaml")
    both = {"blue": state.Release("svc:one", "1"), "green": state.Release("svc:two", "2")}
    state.dump(replace(production, colors=both), desired_dir / "production.yaml", "promote")

    def champion() -> str:
        version = registry.version_by_alias(client, cfg.mlflow.model_name, registry.CHAMPION)
        assert version is not None
        return str(version.version)

    assert cli.mirror_champion(cfg, "production", "green") == "2"
    assert champion() == "2"
    assert cli.mirror_champion(cfg, "production", "green") is None  # already there: nothing moves
    assert cli.mirror_champion(cfg, "production", "blue") == "1"  # a rollback moves it back
    assert champion() == "1"
    assert cli.mirror_champion(cfg, "staging", "green") is None  # staging never crowns
    assert champion() == "1"
