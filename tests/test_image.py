"""Slow tier: a baked project's bento becomes a real OCI image (podman, daemonless); staging runs and
checks it, a real registry receives it signed, and production pulls it by digest, only with a valid
signature by the key its desired state names.

No image registry is reachable from the machines this runs on, so the base image the bento's
Dockerfile names (``python:3.X-slim``) is made here from Debian packages with mmdebstrap, once,
and tagged with that name: the build pulls nothing. Two settings this machine kind needs live in
a containers.conf of the test's own: the ``runc`` runtime (crun refuses cgroup v1 hybrid mode)
and no default ulimits (setting RLIMIT_NOFILE is not permitted here); the host's CA bundle and a
``uv.toml`` trusting it are mounted into build steps, because package downloads here go through a
TLS-inspecting proxy. On GitHub's runners none of this is needed: docker pulls the base image.
Signing uses a GPG key pair made here (podman's "simple signing"); no keyless (OIDC) signing is
possible on this machine.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import Bake, free_port, free_ports
from test_generated import assert_ok, run

pytestmark = pytest.mark.slow

PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"  # the bento's Dockerfile: FROM python:X.Y-slim
BASE = f"docker.io/library/python:{PYTHON}-slim"
CONF = """\
[containers]
default_ulimits = []
volumes = [
    "/etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro",
    "{uv}:/etc/uv/uv.toml:ro",
]

[engine]
runtime = "runc"
"""
REGISTRY = """\
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {root}
http:
  addr: {address}
"""
DEBOOTSTRAP = [
    "mmdebstrap", "--quiet", "--variant=minbase",
    "--include=python3,python3-venv,python3-pip,python-is-python3,ca-certificates,passwd",
    # BentoML's Dockerfile pip-installs uv system-wide, which Debian's Python refuses by default
    '--customize-hook=rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED',
    '--customize-hook=rm -rf "$1"/var/lib/apt/lists/*',
    "bookworm",
]  # fmt: skip


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """podman set up for this machine kind, with the base image in its store; the environment to use."""
    for tool in ("podman", "mmdebstrap", "runc"):
        install = "apt-get install podman runc mmdebstrap uidmap fuse-overlayfs"
        assert shutil.which(tool), f"{tool} missing: {install}"
    folder = tmp_path_factory.mktemp("podman")
    (folder / "uv.toml").write_text("system-certs = true\n")
    (folder / "containers.conf").write_text(CONF.format(uv=folder / "uv.toml"))
    env = {"CONTAINERS_CONF": str(folder / "containers.conf")}
    if subprocess.run(["podman", "image", "exists", BASE], env=os.environ | env, check=False).returncode:
        rootfs = folder / "rootfs.tar"
        _ok(subprocess.run([*DEBOOTSTRAP, str(rootfs)], capture_output=True, text=True, check=False))
        imported = ["podman", "import", "--change", 'CMD ["python3"]', str(rootfs), BASE]
        _ok(subprocess.run(imported, env=os.environ | env, capture_output=True, text=True, check=False))
    return env


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, podman: dict[str, str]) -> Iterator[str]:
    """A real OCI registry (distribution, Debian's docker-registry) on loopback; its host:port.

    podman is told it speaks plain HTTP (a registries.conf of the test's own), as GHCR would not.
    """
    assert shutil.which("docker-registry"), "docker-registry missing: apt-get install docker-registry"
    folder = tmp_path_factory.mktemp("registry")
    address = f"127.0.0.1:{free_port()}"
    (folder / "config.yml").write_text(REGISTRY.format(root=folder / "data", address=address))
    (folder / "registries.conf").write_text(f'[[registry]]\nlocation = "{address}"\ninsecure = true\n')
    podman["CONTAINERS_REGISTRIES_CONF"] = str(folder / "registries.conf")
    with (folder / "log").open("w") as log:
        serve = ["docker-registry", "serve", str(folder / "config.yml")]
        server = subprocess.Popen(serve, stdout=log, stderr=log)
    try:
        for _ in range(100):
            try:
                _get(f"http://{address}/v2/")
                break
            except OSError:
                time.sleep(0.1)
        yield address
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_image__staging_checks_the_image_production_pulls_by_digest(
    bake: Bake, podman: dict[str, str], registry: str
) -> None:
    """containerize -> staging runs the image -> check-staging -> push-image -> propose -> promote.

    The local image is deleted before promote, so production can only get it from the registry,
    by the digest the promotion edit names; what it then runs has the image id staging checked.
    """
    project = bake()
    for environment in ("staging", "production"):
        _own_ports_and_loose_latency(project / "deploy" / f"{environment}.yaml")
    repository = f"serving.image_repository={registry}/customer-churn"
    for command in (
        ["uv", "sync", "--locked", "--quiet"],
        ["nox", "-s", "validate-data"],
        ["nox", "-s", "train", "--", "experiment=quick"],
        ["nox", "-s", "package", "--", "serving.model_alias=candidate"],
        ["nox", "-s", "containerize", "--", repository],
    ):
        assert_ok(run(project, *command, env=podman))
    image = json.loads((project / "reports" / "image.json").read_text())
    bento = json.loads((project / "reports" / "package.json").read_text())["bento_tag"]
    assert (image["bento_tag"], image["engine"], image["pushed"]) == (bento, "podman", None)
    assert image["image_id"].startswith("sha256:")
    staging = yaml.safe_load((project / "deploy" / "staging.yaml").read_text())
    try:
        assert_ok(run(project, "nox", "-s", "deploy-staging", env=podman))
        live = yaml.safe_load((project / "deploy" / "staging.yaml").read_text())
        expected = {"bento": bento, "model_version": "1", "image": image["reference"]}
        assert live["colors"][live["live"]] == expected  # staging serves the image, not the bento store
        assert _containers(project, podman) == {f"staging-{live['live']}": image["image_id"]}
        container = f"staging-{live['live']}"
        ids = "import os; print(os.getuid(), os.getgid())"
        user = run(project, "podman", "exec", container, "python", "-c", ids, env=podman)
        assert user.stdout.split() == ["1034", str(os.getgid())]  # the image's user, not root
        written = "import pathlib, os; pathlib.Path(os.environ['SERVING_PROFILE_DIR'], '.w').write_text('')"
        assert_ok(run(project, "podman", "exec", container, "python", "-c", written, env=podman))
        assert_ok(run(project, "nox", "-s", "check-staging", env=podman))  # health, format, fuzz, parity
        metadata = json.loads(_get(f"http://127.0.0.1:{staging['router']['port']}/metadata"))
        assert metadata["bento"] == bento  # what answers through the router is the image of this bento
        row = sample_rows(project, 1)[0]
        answer = json.loads(_post(f"http://127.0.0.1:{staging['router']['port']}/predict", {"rows": [row]}))
        assert answer["predictions"][0]["id"] == row["customer_id"]
        # Kubernetes' pre-promotion analysis: the same image runs the project's probe (the command
        # the AnalysisTemplate gives its Job; the Kubernetes bake's tests hold the manifest to it)
        request = project / "probe-request.json"
        request.write_text(json.dumps({"rows": [row]}))
        probe = [
            "podman", "run", "--rm", "--network", "host", "--read-only", "--cap-drop=all",
            "-v", f"{request}:/probe/request.json:ro", "-w", "/home/bentoml/bento/src",
            "--entrypoint", "python", image["image_id"], "-m", "customer_churn.deployment.probe",
            "--url", f"http://127.0.0.1:{staging['router']['port']}", "--request", "/probe/request.json",
            "--requests", "20", "--p95-ms", "5000",
        ]  # fmt: skip
        probed = run(project, *probe, env=podman)
        assert_ok(probed)
        assert "20 answers of the right shape" in probed.stdout

        keyring, signer = _gpg_key(project, "release")
        _gpg_key(project, "other")
        signing = podman | {"GNUPGHOME": str(keyring), "IMAGE_SIGNER": signer}
        # as release.yml pushes: podman itself logs in, into an auth file that goes with the push
        login = {"REGISTRY_USERNAME": "release-bot", "REGISTRY_PASSWORD": "token-for-this-push"}
        assert_ok(run(project, "nox", "-s", "push-image", env=signing | login))
        kept = run(project, "podman", "login", "--get-login", registry, env=podman)
        assert kept.returncode != 0, f"the push left a login behind: {kept.stdout}"
        pushed_image = json.loads((project / "reports" / "image.json").read_text())
        pushed = pushed_image["pushed"]
        assert pushed.startswith(f"{registry}/customer-churn@sha256:")
        assert pushed_image["signed_by"] == signer
        assert_ok(run(project, "nox", "-s", "propose-promotion", env=podman))
        production = yaml.safe_load((project / "deploy" / "production.yaml").read_text())
        assert production["colors"][production["live"]]["image"] == pushed  # the edit names the digest
        assert_ok(run(project, "nox", "-s", "deploy-stop", "--", "staging", env=podman))
        assert_ok(run(project, "podman", "rmi", "--force", image["image_id"], env=podman))

        # production runs only what the named key signed: another key's, or none, is refused
        signature = Path("/var/lib/containers/sigstore") / (
            "customer-churn@" + pushed.split("@")[1].replace(":", "=")
        )
        assert signature.is_dir(), "podman (as root) keeps simple signatures here by default"
        for key, refusal in (("other", "Invalid GPG signature"), ("release", "no signature exists")):
            _set(project / "deploy" / "production.yaml", signed_by=f"keys/{key}.asc")
            if key == "release":
                signature.rename(signature.with_name(signature.name + ".aside"))
            refused = run(project, "nox", "-s", "promote", env=podman)
            assert refused.returncode == 1
            assert refusal in refused.stdout + refused.stderr
            assert _containers(project, podman) == {}
        signature.with_name(signature.name + ".aside").rename(signature)

        assert_ok(run(project, "nox", "-s", "promote", env=podman))  # pulls signed by digest, gates, switches
        assert _containers(project, podman) == {f"production-{production['live']}": image["image_id"]}
        metadata = json.loads(_get(f"http://127.0.0.1:{production['router']['port']}/metadata"))
        assert metadata["bento"] == bento
    finally:
        for environment in ("staging", "production"):
            run(project, "nox", "-s", "deploy-stop", "--", environment, env=podman)
        remaining = run(project, "podman", "ps", "--all", "--format", "json", env=podman)
        run(project, "podman", "rmi", "--force", image["image_id"], env=podman)
        for keyring in project.parent.glob("gnupg-*"):  # gpg leaves an agent per keyring running
            subprocess.run(["gpgconf", "--homedir", str(keyring), "--kill", "gpg-agent"], check=False)
    assert json.loads(remaining.stdout or "[]") == []  # stopping leaves no container behind


def _gpg_key(project: Path, name: str) -> tuple[Path, str]:
    """A passphrase-less GPG key pair in a keyring of its own, its public key exported to
    ``keys/<name>.asc`` in the project; the keyring and the key's fingerprint."""
    home = project.parent / f"gnupg-{name}"
    home.mkdir(mode=0o700)
    gpg = ["gpg", "--batch", "--homedir", str(home)]
    identity = f"{name} <{name}@example.invalid>"
    _ok(subprocess.run([*gpg, "--passphrase", "", "--quick-gen-key", identity, "default", "default", "never"],
                       capture_output=True, text=True, check=False))  # fmt: skip
    listed = subprocess.run(
        [*gpg, "--with-colons", "--list-keys"], capture_output=True, text=True, check=True
    )
    fingerprint = next(line.split(":")[9] for line in listed.stdout.splitlines() if line.startswith("fpr"))
    exported = subprocess.run(
        [*gpg, "--armor", "--export", fingerprint], capture_output=True, text=True, check=True
    )
    (project / "keys").mkdir(exist_ok=True)
    (project / "keys" / f"{name}.asc").write_text(exported.stdout)
    return home, fingerprint


def _set(path: Path, **fields: object) -> None:
    desired = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump(desired | fields, sort_keys=False))


def _own_ports_and_loose_latency(path: Path) -> None:
    """Ports of its own (the act tests deploy on the shipped ones, at the same time), and a latency
    budget for two cores shared with an image build: this test is about the artifact."""
    desired = yaml.safe_load(path.read_text())
    names = ("port", "preview_port", "blue_port", "green_port")
    desired["router"] |= dict(zip(names, free_ports(len(names)), strict=True))
    desired["checks"]["latency"] |= {"p95_ms": 5000.0, "p99_ms": 10000.0}
    desired["checks"]["post_switch"] |= {"p95_ms": 10000.0}
    path.write_text(yaml.safe_dump(desired, sort_keys=False))


def _containers(project: Path, podman: dict[str, str]) -> dict[str, str]:
    """Running containers: name -> the id of the image it runs (with the algorithm prefix)."""
    listed = json.loads(run(project, "podman", "ps", "--format", "json", env=podman).stdout or "[]")
    return {c["Names"][0]: "sha256:" + c["ImageID"].removeprefix("sha256:") for c in listed}


def _ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"{result.args}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def sample_rows(project: Path, count: int) -> list[dict[str, object]]:
    """The first rows of the committed sample, typed as JSON would carry them (empty cells as null)."""
    with (project / "data" / "sample" / "customers.csv").open() as handle:
        rows = [row for _, row in zip(range(count), csv.DictReader(handle), strict=False)]
    return [{name: _typed(value) for name, value in raw.items()} for raw in rows]


def _typed(value: str) -> object:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value or None


def _post(url: str, body: object) -> str:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(response.read().decode())
