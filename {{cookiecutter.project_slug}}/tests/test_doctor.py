"""`nox -s doctor`: each finding holds or names the one thing to do; exit 1 when one is missing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }} import doctor
from {{ cookiecutter.package_name }}.config import compose
from {{ cookiecutter.package_name }}.tools import INSTALL


def test_doctor__missing_programs_are_named_with_their_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    findings = doctor.programs(tmp_path)
    assert [(f.name, f.ok, f.detail) for f in findings] == [
        (tool, False, INSTALL[tool]) for tool in doctor.PROGRAMS
    ]
    (tmp_path / "deploy" / "kubernetes").mkdir(parents=True)  # a Kubernetes bake checks its manifests
    assert [f.name for f in doctor.programs(tmp_path)] == [*doctor.PROGRAMS, "kubectl", "node"]


@pytest.mark.parametrize(
    ("origin", "ok", "says"),
    [
        ("git@github.com:acme/churn.git", True, "github.com"),
        ("https://github.com/ACME/churn", True, "github.com"),
        ("https://github.com/other/churn.git", False, "set serving.image_repository"),
        ("https://gitlab.com/acme/churn.git", False, "git remote add origin"),
        (None, False, "no git remote 'origin'"),
    ],
)
def test_doctor__the_remote_owns_the_image_repository(
    tmp_path: Path, origin: str | None, ok: bool, says: str
) -> None:
    subprocess.run(["git", "init", "--quiet", str(tmp_path)], check=True)
    if origin:
        subprocess.run(["git", "-C", str(tmp_path), "remote", "add", "origin", origin], check=True)
    found = doctor.git_remote("ghcr.io/acme/churn", tmp_path)
    assert (found.ok, says in found.detail) == (ok, True), found


def test_doctor__deploy_home_must_be_a_folder_this_user_can_write(tmp_path: Path) -> None:
    assert doctor.deploy_home({}).ok  # not the production host
    assert doctor.deploy_home({"DEPLOY_HOME": str(tmp_path / "not-yet" / "made")}).ok  # created on first use
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    found = doctor.deploy_home({"DEPLOY_HOME": str(blocker / "home")})
    assert not found.ok
    assert str(blocker) in found.detail


def test_doctor__an_empty_tracking_uri_is_named() -> None:
    cfg = compose(["mlflow.tracking_uri="])
    assert doctor.tracking(cfg) == doctor.Finding(
        "tracking URI", False, "export MLFLOW_TRACKING_URI (and MLFLOW_TRACKING_TOKEN)"
    )
    assert doctor.tracking(compose(["mlflow.tracking_uri=https://user:secret@mlflow.example"])).detail == (
        "mlflow.example"
    )


def test_doctor__command_lists_every_finding_and_exits_1_when_one_is_missing(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = subprocess.run(
        [str(Path(sys.executable).with_name("doctor"))],
        env={
            "PATH": str(Path(sys.executable).parent),
            "DEPLOY_HOME": str(blocker / "home"),
            "HOME": str(tmp_path),
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    for name in (*doctor.PROGRAMS, "container engine", "git remote", "tracking URI", "DEPLOY_HOME"):
        assert f"| {name} |" in result.stdout
    assert "Traceback" not in result.stderr


FAKE_GH = """#!/bin/sh
# Stand-in for the GitHub CLI (the GitHub API cannot be reached from tests): lists the names it was given.
case "$1" in
  variable) echo '$VARIABLES' ;;
  secret) echo '$SECRETS' ;;
esac
"""


@pytest.mark.parametrize(
    ("variables", "secrets", "ok", "says"),
    [
        (None, None, None, "no gh CLI"),
        ([], [], False, "lacks variable PROMOTION_APP_CLIENT_ID and secret PROMOTION_APP_PRIVATE_KEY"),
        (["PROMOTION_APP_CLIENT_ID"], [], False, "lacks secret PROMOTION_APP_PRIVATE_KEY: create"),
        (["PROMOTION_APP_CLIENT_ID"], ["PROMOTION_APP_PRIVATE_KEY"], True, "in environment 'promotion'"),
    ],
    ids=["no-gh", "nothing-set", "no-key", "set"],
)
def test_doctor__the_promotion_app_is_named_when_missing_and_unchecked_without_gh(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    variables: list[str] | None,
    secrets: list[str] | None,
    ok: bool | None,
    says: str,
) -> None:
    """A promotion pull request opened with GITHUB_TOKEN starts no checks: the App must be set."""
    monkeypatch.setenv("PATH", str(tmp_path))
    if variables is not None:
        listed = {
            "$VARIABLES": [{"name": n} for n in variables],
            "$SECRETS": [{"name": n} for n in secrets or []],
        }
        script = FAKE_GH
        for marker, names in listed.items():
            script = script.replace(marker, json.dumps(names))
        (tmp_path / "gh").write_text(script)
        (tmp_path / "gh").chmod(0o755)
    found = doctor.promotion_app(tmp_path)
    assert found.ok is ok, found
    assert says in found.detail, found
