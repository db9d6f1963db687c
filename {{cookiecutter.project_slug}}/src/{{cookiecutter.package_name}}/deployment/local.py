"""The local target: one ``bentoml serve`` process (or image container) per color and one HAProxy.

The processes are supervisord's programs (see :mod:`supervision`): one that dies is started again
with the same command, so a killed HAProxy answers again in about a second and a killed color
comes back serving the same release. What runs where (programs, ports, releases, weights) is
recorded in ``.deploy/<environment>/state.json``, so ``status``, ``promote`` and ``rollback``
pick up where the last command left off, even after the tooling itself restarted. HAProxy's
config file always holds the weights and fallback in force, so a restarted HAProxy routes as
the one that died did.

On a production host the command is a CI job, which ends. So the processes get nothing of the
job's: every path they use is resolved to where it really lives (the job's workspace links its
stores to a folder that outlives it, and the workspace itself is cleaned or deleted), and
``RUNNER_TRACKING_ID`` is dropped from their environment, because the GitHub runner kills every
process carrying its job's id when the job ends.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import PipelineError
from ..tools import container_engine, last_line, require
from . import access, router
from .loopback import alive, answering_instance, listening, ready, stop_process
from .state import COLORS, DesiredState, Release
from .supervision import FAILED, Program, Supervisor

SOCKET_PATH_MAX = 97  # HAProxy: 'stats socket' path too long (max 97)
PROGRESS_EVERY_S = 15.0  # a line this often while a color starts: a CI log never goes quiet for long
IMAGE_UID = 1034  # the user BentoML's images run as (bentoml): never root in a container
JOB_MARK = "RUNNER_TRACKING_ID"  # the runner reaps the processes whose environment carries it
ROUTER = "router"  # HAProxy's program name under supervision; the colors' are their own names


class DeployError(PipelineError, RuntimeError):
    """A process would not start, became unready, or the recorded state is unusable."""


@dataclass
class ColorProcess:
    """A running color: what it serves and where."""

    bento: str
    model_version: str
    pid: int
    port: int
    started_at: float
    image: str | None = None
    engine: str | None = None  # the container engine running the image; None for a bento process
    instance: str | None = None  # the name it answers /metadata with (SERVING_INSTANCE)
    program: str | None = None  # its supervisord program; None for a process recorded before supervision

    @property
    def release(self) -> Release:
        """The release this process serves."""
        return Release(self.bento, self.model_version, self.image)


@dataclass
class Actual:
    """What the tooling last did in one environment (``state.json``)."""

    router_pid: int | None = None
    router_port: int | None = None
    colors: dict[str, ColorProcess] = field(default_factory=dict)
    weights: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COLORS, 0))
    live: str | None = None
    previous: str | None = None

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Actual:
        """Inverse of :func:`dataclasses.asdict`."""
        colors = {color: ColorProcess(**spec) for color, spec in doc.get("colors", {}).items()}
        return cls(**(doc | {"colors": colors}))


def admin_socket(folder: Path, name: str = "haproxy.sock") -> Path:
    """``<folder>/<name>``, or a stable short path in the temp dir when that is too long.

    HAProxy refuses a socket path over 97 characters (a project in a deep folder reaches it), and
    the kernel any Unix socket path over 107, so the long path is replaced by one derived from it:
    every tooling process finds the same one.
    """
    natural = folder.resolve() / name
    if len(str(natural)) <= SOCKET_PATH_MAX:
        return natural
    digest = hashlib.sha256(str(natural).encode()).hexdigest()[:16]
    stem, _, suffix = name.partition(".")
    return Path(tempfile.gettempdir()) / f"{stem}-{digest}.{suffix}"


def write_atomically(path: Path, text: str) -> None:
    """Write through a temporary file and rename, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text)
    temporary.replace(path)


class LocalTarget:
    """One environment's processes and recorded state under ``<state_dir>/<environment>/``."""

    def __init__(self, environment: str, state_dir: Path, serve_dir: Path) -> None:
        self.environment = environment
        self.dir = state_dir.resolve() / environment  # through the workspace's links, once
        self.serve_dir = serve_dir.resolve()
        self.state_file = self.dir / "state.json"
        self.socket = admin_socket(self.dir)
        self.config_file = self.dir / "haproxy.cfg"
        self.keys_map = self.dir / "keys.map"
        self.supervisor = Supervisor(environment, self.dir, admin_socket(self.dir, "supervisor.sock"))

    def load(self) -> Actual:
        """The recorded state (empty when nothing was ever deployed here)."""
        if not self.state_file.is_file():
            return Actual()
        try:
            return Actual.from_json(json.loads(self.state_file.read_text()))
        except (ValueError, TypeError) as error:
            raise DeployError(
                f"{self.state_file}: unreadable ({error}); run `stop` and deploy again"
            ) from error

    def save(self, actual: Actual) -> None:
        """Record the state atomically, so a crash never leaves half a file."""
        write_atomically(self.state_file, json.dumps(asdict(actual), indent=2))

    def api(self) -> router.RuntimeApi:
        """HAProxy's runtime API for this environment."""
        return router.RuntimeApi(self.socket)

    def router_running(self, actual: Actual) -> bool:
        """Whether this environment's HAProxy runs (supervisord's ``router`` program, restarted or not).

        supervisord is found by its socket under the state folder, so a project folder reached
        through a symlink (a CI workspace), or a new tooling process, finds the router it keeps.
        """
        return self.supervisor.alive(ROUTER)

    def ensure_supervisor(self) -> None:
        """Start this environment's supervisord unless it answers (systemd's, or one started before)."""
        self.supervisor.write_config(self._program_env())
        try:
            self.supervisor.ensure(self._spawn)
        except RuntimeError as error:
            raise DeployError(f"{error}:\n{self.log_tail('supervisord')}") from error

    def ensure_router(self, actual: Actual, desired: DesiredState) -> None:
        """Start HAProxy under supervision (config generated from desired state) unless it runs."""
        haproxy = require("haproxy", f"the {self.environment} router")  # before anything starts
        self.ensure_supervisor()
        if self.router_running(actual):
            return
        self.supervisor.remove(ROUTER)  # one that gave up restarting, if any
        self.require_free(desired.router.port, "router.port")
        self.require_free(desired.router.preview_port, "router.preview_port")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        write_atomically(self.keys_map, access.render_map(desired.access))
        self.write_router_config(actual, desired)
        program = self.supervisor.put(
            ROUTER, [haproxy, "-db", "-f", str(self.config_file)], self._program_env(), retries=10
        )
        actual.router_pid = program.pid
        actual.router_port = desired.router.port
        self._wait(self.socket.exists, ROUTER, 10.0)

    def write_router_config(self, actual: Actual, desired: DesiredState) -> None:
        """Write HAProxy's config at the recorded weights and fallback, checked by HAProxy first.

        Called after every weight or fallback change: a HAProxy that supervisord restarts reads
        this file, and must route as the one that died did, not as the first deploy did.
        """
        haproxy = require("haproxy", f"the {self.environment} router")
        text = router.render(
            self.environment,
            desired.router,
            actual.weights,
            self.socket,
            keys_map=self.keys_map,
            fallback=actual.previous,
            operator_key=self.operator_key(),
        )
        self.dir.mkdir(parents=True, exist_ok=True)
        candidate = self.config_file.with_suffix(".new")
        candidate.touch(mode=0o600)  # it holds the operator key: owner-only before a byte is written
        candidate.chmod(0o600)
        candidate.write_text(text)
        check = subprocess.run(
            [haproxy, "-c", "-f", str(candidate)], capture_output=True, text=True, check=False
        )
        if check.returncode:
            raise DeployError(
                f"generated {self.config_file} is invalid: {check.stderr.strip() or check.stdout.strip()}"
            )
        candidate.replace(self.config_file)

    def apply_access(self, desired: DesiredState) -> None:
        """Bring the running router's keys to desired state's ``access``, without a restart.

        The file is rewritten too, so a router started later (after a reboot) reads the same keys.
        """
        write_atomically(self.keys_map, access.render_map(desired.access))
        self.api().replace_map(self.keys_map, access.entries(desired.access))

    def start_color(
        self, color: str, release: Release, port: int, timeout_s: float, signed_by: Path | None = None
    ) -> ColorProcess:
        """Serve ``release`` on ``port`` (its image when it has one, else the bento) until ready.

        Ready means the process started here answers: it is named (``SERVING_INSTANCE``) and the
        wait is for ``/metadata`` to say that name, so a leftover server on the same port is never
        taken for the release; a port already taken is refused before anything starts. With
        ``signed_by`` (an armored GPG public key) the image runs only once podman has pulled it
        with a valid signature by that key.
        """
        self.require_free(port, f"router.{color}_port")
        instance = f"{self.environment}-{color}-{uuid.uuid4().hex[:12]}"
        engine = None
        if release.image:
            found = container_engine()
            if found.name is None:
                raise DeployError(
                    f"{release.image}: cannot run the image, no container engine ({found.reason})"
                )
            engine = found.name
            if signed_by is not None:
                self.pull_signed(engine, release.image, signed_by)
            self._remove_container(engine, color)  # one left by a killed earlier run
            command = self.container_command(
                engine, release.image, self.container_name(color), port, instance
            )
        else:
            command = [sys.executable, "-m", "bentoml", "serve", release.bento, "--host", "127.0.0.1",
                       "--port", str(port), "--working-dir", str(self.serve_dir)]  # fmt: skip
        own = {"SERVING_PROFILE_DIR": self.profile_dir(), "SERVING_INSTANCE": instance} | self.key_env()
        self.ensure_supervisor()
        env = self._program_env() | own | {"SERVING_METRICS_DIR": str(self.metrics_dir(color))}
        program = self.supervisor.put(color, command, env)
        key = self.operator_key()
        self._wait(
            lambda: answering_instance(port, key=key) == instance, color, timeout_s, first_pid=program.pid
        )
        started = self.supervisor.program(color) or program
        return ColorProcess(
            release.bento, release.model_version, started.pid or 0, port, time.time(), release.image,
            engine, instance, program=color,
        )  # fmt: skip

    def pull_signed(self, engine: str, image: str, key: Path) -> None:
        """Pull ``image`` from its registry only if it carries a valid signature by ``key``.

        podman checks it against a signature policy written here, which admits the image's
        repository with a ``signedBy`` requirement and rejects everything else: an unsigned image,
        or one signed by another key, never reaches the local store from this pull, and the run
        that follows takes the image just verified (by digest, as promotion edits name it).
        """
        if Path(engine).name != "podman":
            raise DeployError(
                f"signed_by: {engine} does not verify image signatures; set CONTAINER_ENGINE=podman"
            )
        if not key.is_file():
            raise DeployError(
                f"signed_by: {key} not found; export the signer's key: gpg --armor --export KEY > {key}"
            )
        repository = image.partition("@")[0]
        if ":" in repository.rpartition("/")[2]:
            repository = repository.rpartition(":")[0]
        requirement = {"type": "signedBy", "keyType": "GPGKeys", "keyPath": str(key.resolve())}
        policy = {"default": [{"type": "reject"}], "transports": {"docker": {repository: [requirement]}}}
        policy_file = self.dir / "signature-policy.json"
        write_atomically(policy_file, json.dumps(policy, indent=2))
        pulled = subprocess.run(
            [engine, "pull", "--quiet", "--signature-policy", str(policy_file), image],
            capture_output=True,
            text=True,
            check=False,
        )
        if pulled.returncode:
            reason = last_line(pulled.stderr).removeprefix("Error: ")
            raise DeployError(f"{image} refused: {reason} (signed_by: {key.name})")

    def operator_key(self) -> str:
        """This environment's operator key (:func:`access.operator_key`): the router's and the tooling's."""
        return access.operator_key(self.dir)

    def operator_headers(self) -> dict[str, str]:
        """What the tooling sends to a color's port or the preview door: the key, named ``operator``."""
        return router.OPERATOR_HEADERS | access.bearer(self.operator_key())

    def key_env(self) -> dict[str, str]:
        """Tells a color the one key it answers (its SHA-256 only: see ``serving/guard.py``)."""
        return {"SERVING_KEY_SHA256": access.hash_key(self.operator_key())}

    def metrics_dir(self, color: str) -> Path:
        """The color's own Prometheus folder (``SERVING_METRICS_DIR``), one per environment and color.

        A starting server empties its folder: with one shared folder (BentoML's default, under
        ``BENTOML_HOME``) each start wiped every other color's ``/metrics``. An image has its own
        anyway (its ``/tmp``).
        """
        return self.dir / "metrics" / color

    def container_name(self, color: str) -> str:
        """The engine's name for a color's container: one per environment and color."""
        return f"{self.environment}-{color}"

    def _remove_container(self, engine: str, color: str) -> None:
        subprocess.run(
            [engine, "rm", "--force", self.container_name(color)], capture_output=True, check=False
        )

    def container_command(self, engine: str, image: str, name: str, port: int, instance: str) -> list[str]:
        """``<engine> run`` of the image in the foreground, on the host network, profiles mounted.

        The image's entrypoint passes ``--host``/``--port`` to ``bentoml serve``, so the command
        line carries ``--port N`` like a bento process and is recognised the same way. It runs as
        the image's own non-root user (BentoML's ``bentoml``, uid 1034) with the deploying user's
        group, which owns the profile folder: the folder is made group-writable (setgid, so the
        profiles stay in that group and the host's monitor reads them). No capability, no way to
        gain one, a read-only root filesystem: only ``/tmp`` (BentoML's home, for its metrics
        files) and the profile folder can be written.
        """
        profiles = self.profile_dir()
        mount: list[str] = []
        if "://" not in profiles:
            folder = Path(profiles)
            folder.mkdir(parents=True, exist_ok=True)
            if folder.stat().st_uid == os.getuid():  # a folder of another owner is theirs to open
                folder.chmod(0o2775)
            mount = ["--volume", f"{profiles}:{profiles}"]
        # podman run --replace: a container of that name left by a killed client is replaced, so
        # supervisord's restart of the color is not refused for the name (docker has no such flag)
        replace = ["--replace"] if Path(engine).name == "podman" else []
        return [
            engine, "run", "--rm", "--name", name, *replace, "--network=host",
            "--user", f"{IMAGE_UID}:{os.getgid()}",
            *mount, "--read-only", "--cap-drop=all", "--security-opt=no-new-privileges",
            "--tmpfs", "/tmp", "--env", "BENTOML_HOME=/tmp/bentoml",  # noqa: S108 (the container's /tmp)
            "--env", f"SERVING_PROFILE_DIR={profiles}", "--env", f"SERVING_INSTANCE={instance}",
            *[f"--env={name}={value}" for name, value in self.key_env().items()],
            image, "--host", "127.0.0.1", "--port", str(port),
        ]  # fmt: skip

    def require_free(self, port: int, field: str) -> None:
        """Refuse a port something already listens on, naming the field that chose it."""
        if listening(port):
            raise DeployError(
                f"{self.environment}: port {port} ({field} in deploy/{self.environment}.yaml) is already "
                f"in use; stop what listens there (`ss -ltnp 'sport = :{port}'`) or choose another port"
            )

    def color_running(self, process: ColorProcess | None) -> bool:
        """Whether a recorded color still runs: its supervised program, whatever pid it has now."""
        if process is None:
            return False
        if process.program is None:  # recorded before supervision: its pid, recognised by its port
            return alive(process.pid, f"--port {process.port}")
        return self.supervisor.alive(process.program)

    def pid_of(self, program: str) -> int | None:
        """The pid program ``program`` (``router`` or a color) runs as now; None when it does not run."""
        found = self.supervisor.program(program)
        return found.pid if found is not None and found.alive else None

    def color_answering(self, process: ColorProcess) -> bool:
        """Whether the color's own server answers on its port (not some other server there)."""
        if process.instance is None:  # recorded before colors were named
            return ready(process.port)
        return answering_instance(process.port, key=self.operator_key()) == process.instance

    def stop_color(self, actual: Actual, color: str) -> None:
        """Stop one color's process and forget it."""
        process = actual.colors.pop(color, None)
        if process and process.program:
            self.supervisor.remove(process.program)
        elif process and self.color_running(process):
            stop_process(process.pid)
        if process and process.engine:  # a killed `run` client can leave its container behind
            self._remove_container(process.engine, color)

    def stop_all(self, actual: Actual) -> None:
        """Stop every process of this environment: supervisord stops its programs as it shuts down."""
        self.supervisor.shutdown()  # a clean exit: systemd (Restart=on-failure) leaves it stopped
        for color in list(actual.colors):
            self.stop_color(actual, color)
        self.supervisor.remove(ROUTER)  # its program file: a supervisord started later starts no router
        actual.router_pid = None
        self.socket.unlink(missing_ok=True)

    def wait_router_sees(self, color: str, timeout_s: float = 30.0, backend: str = router.BACKEND) -> None:
        """Wait until HAProxy's own health check marks ``color`` UP, so its first request lands."""
        api = self.api()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(stat.color == color and stat.status.startswith("UP") for stat in api.stats(backend)):
                return
            time.sleep(0.1)
        raise DeployError(f"{self.environment}: HAProxy does not see {color} as UP after {timeout_s:.0f}s")

    def log_tail(self, name: str, lines: int = 15) -> str:
        """The end of a process's log, for error messages."""
        path = self.dir / "logs" / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.is_file() else ""

    def profile_dir(self) -> str:
        """Where this environment's colors profile their traffic: ``<profiles>/<environment>``.

        Staging's checks and fuzzing then never count as production traffic: ``monitor`` reads
        ``profiles/production``. ``SERVING_PROFILE_DIR`` (a folder or an fsspec URI) moves the root.
        A folder is given to the colors as the real absolute path, which outlives the workspace.
        """
        root = os.environ.get("SERVING_PROFILE_DIR", "profiles").rstrip("/")
        if "://" in root:
            return f"{root}/{self.environment}"
        return str((self.serve_dir / root).resolve() / self.environment)

    def _program_env(self) -> dict[str, str]:
        """What every supervised program is given beyond supervisord's own environment.

        Under systemd supervisord has none of the deploying shell's environment, so what a color
        needs to find its bento and resolve its paths is given to each program explicitly.
        """
        env = {"PWD": str(self.serve_dir)}
        if "BENTOML_HOME" in os.environ:
            env["BENTOML_HOME"] = str(Path(os.environ["BENTOML_HOME"]).resolve())
        return env

    def _spawn(self, command: list[str], name: str, env: dict[str, str] | None = None) -> int:
        """Start ``command`` in ``serve_dir``, detached, logging to ``logs/<name>.log``.

        ``PWD`` is set to ``serve_dir`` too: the service resolves relative paths (its profile
        directory) against ``PWD``, and an inherited one names whatever directory launched the
        tooling, not where the color runs. ``BENTOML_HOME`` is the store's real path, and the
        runner's job mark is dropped (see the module docstring).
        """
        logs = self.dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        environment = {key: value for key, value in os.environ.items() if key != JOB_MARK}
        if "BENTOML_HOME" in environment:
            environment["BENTOML_HOME"] = str(Path(environment["BENTOML_HOME"]).resolve())
        environment |= {"PWD": str(self.serve_dir)} | (env or {})
        with (logs / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                command,
                cwd=self.serve_dir,
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return process.pid

    def _wait(
        self, condition: Callable[[], bool], name: str, timeout_s: float, first_pid: int | None = None
    ) -> None:
        """Until ``condition`` holds; a line every ``PROGRESS_EVERY_S`` says the wait goes on, and why.

        Program ``name`` exiting (supervisord retrying it, or giving up) ends the wait at once:
        a release that cannot start is refused, not restarted until the timeout.
        """
        started = time.monotonic()
        deadline, note = started + timeout_s, started + PROGRESS_EVERY_S
        while time.monotonic() < deadline:
            if condition():
                return
            if self._exited(name, first_pid):
                self.supervisor.remove(name)
                raise DeployError(f"{self.environment}/{name} exited while starting:\n{self.log_tail(name)}")
            if (now := time.monotonic()) >= note:
                last = self.log_tail(name, 1).strip()
                said = f"; its log: {last[:160]}" if last else ""
                print(
                    f"[{self.environment}] {name}: starting, {now - started:.0f} s of {timeout_s:.0f} s{said}"
                )
                note = now + PROGRESS_EVERY_S
            time.sleep(0.25)
        self.supervisor.remove(name)
        raise DeployError(
            f"{self.environment}/{name} not ready after {timeout_s:.0f}s:\n{self.log_tail(name)}"
        )

    def _exited(self, name: str, first_pid: int | None) -> bool:
        """Whether program ``name`` stopped or was restarted since it was started as ``first_pid``."""
        program: Program | None = self.supervisor.program(name)
        if program is None:
            return False  # not supervised (a test's own condition): nothing to watch
        return program.state in FAILED or (first_pid is not None and program.pid not in (None, first_pid))


@contextmanager
def exclusive(target: LocalTarget) -> Iterator[None]:
    """Hold the environment's promotion lock, or fail at once naming who holds it."""
    target.dir.mkdir(parents=True, exist_ok=True)
    path = target.dir / "promotion.lock"
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise DeployError(
                f"another promotion or rollback of {target.environment!r} is running "
                f"({handle.read().strip() or 'holder unknown'}); wait for it to finish"
            ) from None
        handle.truncate(0)
        handle.write(f"pid {os.getpid()} since {time.strftime('%H:%M:%S')}")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
