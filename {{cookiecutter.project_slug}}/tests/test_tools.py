"""Missing system programs are one line naming the program and its install, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from {{ cookiecutter.package_name }} import tools
from {{ cookiecutter.package_name }}.config import PROJECT_ROOT
from {{ cookiecutter.package_name }}.deployment import local, state
from {{ cookiecutter.package_name }}.tools import MissingToolError, require


def test_tools__present_program_is_found() -> None:
    assert Path(require("git", "this test")).name == "git"


def test_tools__missing_program_names_itself_its_user_and_its_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a machine with none of the programs
    with pytest.raises(
        MissingToolError, match=r"^wrk is not installed \(the latency check needs it\): .*apt"
    ):
        require("wrk", "the latency check")


def test_tools__router_without_haproxy_fails_before_writing_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    desired = state.load(PROJECT_ROOT / "deploy" / "staging.yaml")
    target = local.LocalTarget("staging", tmp_path / "state", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingToolError, match=r"haproxy is not installed .* apt-get install haproxy"):
        target.ensure_router(target.load(), desired)
    assert not (tmp_path / "state" / "staging" / "haproxy.cfg").exists()


def test_tools__no_container_engine_names_each_one_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a machine with neither engine
    engine = tools.container_engine({})
    assert engine.name is None
    assert engine.reason == "no docker on PATH; no podman on PATH"


def test_tools__container_engine_can_be_chosen_or_turned_off(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert tools.container_engine({"CONTAINER_ENGINE": "none"}) == tools.Engine(None, "CONTAINER_ENGINE=none")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert tools.container_engine({"CONTAINER_ENGINE": "podman"}).reason == "no podman on PATH"
