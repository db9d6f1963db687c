"""The ``deploy`` command: one subcommand per deployment task, each a nox session.

``deploy apply staging`` (``nox -s deploy-staging``) and ``deploy apply production``
(``nox -s promote``) reconcile an environment to ``deploy/<environment>.yaml``;
``deploy check staging`` (``nox -s check-staging``) runs the sanity checks through the
router; ``deploy push staging`` (``nox -s push-image``) pushes the image those checks passed;
``deploy rollback production`` (``nox -s rollback``) puts traffic back on the warm previous
color; ``deploy propose`` writes the promotion edit a pull request carries.
After every production apply or rollback (on Kubernetes, once ``rollout-status`` sees the cluster
serve it) the registry's ``champion`` alias is moved to the model
version production now serves: ``deploy/production.yaml`` is the truth, the alias its mirror
(what ``predict``, ``compare`` and ``monitor`` read by default).
Trailing ``key=value`` arguments are Hydra overrides of the project config.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import Config, compose, report_root, resolve, use_project_store
from ..errors import PipelineError
from ..reports import jsonfile, tables
from . import access, local, router, state

if TYPE_CHECKING:
    from . import checks, promotion

# Each subcommand imports the heavy modules it needs (MLflow, BentoML, the checks) when it runs:
# `deploy status` and `deploy stop` start in about a second, as an operator waiting on them expects.

EXPECTED = (PipelineError,)
SESSIONS = {"staging": "deploy-staging", "production": "promote"}


def desired_path(cfg: Config, environment: str) -> Path:
    """``deploy/<environment>.yaml`` under the configured desired-state folder."""
    return resolve(cfg.deploy.desired_dir) / f"{environment}.yaml"


def target_of(cfg: Config, environment: str) -> local.LocalTarget:
    """The local target of one environment, with state under ``.deploy/``."""
    return local.LocalTarget(environment, resolve(cfg.deploy.state_dir), resolve(cfg.deploy.serve_dir))


def promoter(cfg: Config, environment: str) -> promotion.Promoter:
    """A promoter wired to the project's config, registry and report folder."""
    from . import checks, promotion

    target = target_of(cfg, environment)
    return promotion.Promoter(
        desired=state.load(desired_path(cfg, environment)),
        target=target,
        journal=promotion.Journal(environment, target.dir / "decisions.jsonl"),
        holdout=lambda version: checks.load_holdout(cfg, version),
        report_dir=resolve(cfg.deploy.report_dir),
    )


def write_desired(cfg: Config, desired: state.DesiredState) -> Path:
    """Write a desired-state file and keep its Kubernetes overlay (if any) in step with it."""
    path = state.dump(
        desired, desired_path(cfg, desired.environment), SESSIONS.get(desired.environment, "promote")
    )
    overlays = resolve(cfg.deploy.desired_dir) / "kubernetes" / "overlays"
    if overlays.is_dir():  # only a Kubernetes bake has overlays
        from . import kubernetes

        kubernetes.sync_overlays(desired, overlays)
    return path


def latest_release(cfg: Config) -> state.Release:
    """The newest bento of this model in the store, with its image when ``containerize`` built one."""
    import bentoml

    from ..serving import packaging

    newest = bentoml.bentos.get(packaging.latest_bento(cfg.mlflow.model_name))
    version = newest.info.labels.get("model_version")
    if not version:
        raise state.StateError(
            f"bento {newest.tag} has no 'model_version' label; rebuild it with `nox -s package`"
        )
    image = packaging.built_image(cfg.serving.report_dir, str(newest.tag))
    return state.release_of(str(newest.tag), str(version), image.reference if image else None)


def apply(cfg: Config, args: argparse.Namespace) -> int:
    """Reconcile an environment to its desired state."""
    if args.from_store:
        release = latest_release(cfg)
        path = desired_path(cfg, args.environment)
        current = state.load(path)
        if current.release(current.live) != release:
            write_desired(cfg, state.with_release(current, release))
            served = f"{release.bento} as {release.image}" if release.image else release.bento
            print(f"  {path}: {served} (model v{release.model_version}) on {current.idle}, now live")
    outcome = promoter(cfg, args.environment).apply()
    path = outcome.write(resolve(cfg.deploy.report_dir), f"promotion-{args.environment}")
    print(f"  {outcome.status}: {outcome.serving}; report: {path}")
    mirror_champion(cfg, args.environment, outcome.live)
    if not outcome.ok:
        record_served(cfg, args.environment)
    return 0 if outcome.ok else 1


def rollback(cfg: Config, args: argparse.Namespace) -> int:
    """Put traffic back on the previous color."""
    outcome = promoter(cfg, args.environment).rollback()
    path = outcome.write(resolve(cfg.deploy.report_dir), f"rollback-{args.environment}")
    print(f"  {outcome.serving}; report: {path}")
    print(
        "  `promote` will not move forward again by itself: the release rolled back from returns "
        "only once it is proposed again (`nox -s propose-promotion`) and that pull request merged"
    )
    mirror_champion(cfg, args.environment, outcome.live)
    record_served(cfg, args.environment)
    return 0


def revert(cfg: Config, args: argparse.Namespace) -> int:
    """Roll back in git: the previous release live again in deploy/<environment>.yaml and its overlay.

    The Kubernetes target's rollback: a pull request of this edit, which Argo CD syncs and Argo
    Rollouts switches to the old ReplicaSet it kept warm. Nothing in the cluster is touched here.
    """
    desired = state.load(desired_path(cfg, args.environment))
    previous = state.rolled_back(desired)
    path = write_desired(cfg, previous)
    print(f"  {path}: live {desired.live} -> {previous.live} ({previous.release(previous.live)})")
    return 0


def manifests(cfg: Config, args: argparse.Namespace) -> int:
    """Check the Kubernetes manifests offline: overlays built, every object against its schema."""
    from . import kubernetes

    found = kubernetes.check(resolve(cfg.deploy.desired_dir).parent, cfg.serving.image_repository)
    for where, problems in found.items():
        print(f"  {where}: " + ("ok" if not problems else f"{len(problems)} problem(s)"))
        for problem in problems:
            print(f"    {problem}")
    return 1 if any(found.values()) else 0


def rollout_status(cfg: Config, args: argparse.Namespace) -> int:
    """Report the cluster's Rollout against git, read-only; skipped (and said) without a kubeconfig.

    Waits while Argo CD syncs and Argo Rollouts runs its analysis, up to ``--wait-s``; exit 1
    when the Rollout settles on anything but the release git names (the workflow then proposes
    the revert). Once production is seen serving git's release, ``champion`` moves to it (back,
    after a merged revert). ``rollout-<environment>.{json,md}`` say what was seen.
    """
    from . import kubernetes

    desired = state.load(desired_path(cfg, args.environment))
    overlay = resolve(cfg.deploy.desired_dir) / "kubernetes" / "overlays" / args.environment
    healthy: bool | None = None
    if not os.environ.get("KUBECONFIG"):
        said = (
            "skipped: no read-only kubeconfig (the environment secret KUBECONFIG_READONLY); "
            "Argo CD syncs the merged overlay on its own, but 'champion' stays where it is: "
            "nothing saw production serve the release"
        )
    else:
        deadline = time.monotonic() + args.wait_s
        while True:
            healthy, said = kubernetes.rollout_status(kubernetes.cluster_rollout(overlay), desired)
            if healthy or time.monotonic() > deadline:
                break
            time.sleep(10)
        if healthy:  # seen serving git's release: the registry's alias follows, as on the host
            mirror_champion(cfg, args.environment, desired.live)
    report = resolve(cfg.deploy.report_dir) / f"rollout-{args.environment}.json"
    verdict = {None: "skipped", True: "healthy", False: "not serving git's release"}[healthy]
    jsonfile.write_json({"environment": args.environment, "verdict": verdict, "said": said}, report)
    report.with_suffix(".md").write_text(f"**Rollout of {args.environment}: {verdict}.** {said}\n")
    print(f"  rollout of {args.environment}: {said}")
    return 1 if healthy is False else 0


def record_served(cfg: Config, environment: str) -> Path | None:
    """After a refusal or a rollback, make the desired-state file say what serves; its path if changed.

    Git stays the truth: the workflow proposes the changed file back to ``main`` as a pull
    request, so the next proposal starts from the color that really is live, not the one the
    refused edit named.
    """
    path = desired_path(cfg, environment)
    desired = state.load(path)
    actual = target_of(cfg, environment).load()
    if actual.live is None or (actual.live, actual.weights) == (desired.live, desired.traffic):
        return None
    write_desired(cfg, dataclasses.replace(desired, live=actual.live, traffic=dict(actual.weights)))
    print(f"  {path}: now says what serves (live={actual.live}); the workflow proposes it back to main")
    return path


def mirror_champion(cfg: Config, environment: str, live: str | None) -> str | None:
    """Point ``champion`` at the model version the live production color serves; the version moved to.

    A registry that cannot be reached does not undo a deployment that happened: it is reported,
    and the next ``promote`` (which finds production unchanged) moves the alias.
    """
    from mlflow.exceptions import MlflowException

    from .. import registry

    if environment != "production" or live is None:
        return None
    release = state.load(desired_path(cfg, environment)).release(live)
    if release is None:
        return None
    name = cfg.mlflow.model_name
    try:
        client = registry.connect(cfg.mlflow)
        current = registry.version_by_alias(client, name, registry.CHAMPION)
        if current is not None and str(current.version) == release.model_version:
            return None
        registry.set_alias(client, name, registry.CHAMPION, release.model_version)
    except (MlflowException, registry.TrackingError) as error:  # never fails what was deployed
        print(
            f"  registry: 'champion' not moved to v{release.model_version} "
            f"({getattr(error, 'message', error)}); re-run promote"
        )
        return None
    print(f"  registry: {name} v{release.model_version} is now 'champion' (production serves it)")
    return release.model_version


def check(cfg: Config, args: argparse.Namespace) -> int:
    """Run the sanity checks through the environment's router (what clients see).

    With ``--color`` the checks reach that color alone, through the router's preview door. With
    access on, they go through the preview door at the front door's weights (with the operator
    key). Latency is judged beside a reference measured at the same time (:func:`reference_of`).
    """
    from . import checks

    desired = state.load(desired_path(cfg, args.environment))
    target = target_of(cfg, args.environment)
    color, release = measured(desired, target.load(), args.color)
    if release is None:
        deploy_first = "nox -s deploy-staging" if args.environment == "staging" else "nox -s promote"
        raise state.StateError(
            f"colors.{color}: no release to check in deploy/{args.environment}.yaml; "
            f"deploy one first (`{deploy_first}`)"
        )
    if color != (args.color or desired.live):
        print(f"  deploy/{args.environment}.yaml names {desired.live} live, but {color} serves: checking it")
    port = desired.router.port
    if args.color or desired.access is not None:
        # with access on, the front door asks a key: the operators' preview door carries its weights
        weights = {color: 100, state.other(color): 0} if args.color else target.api().weights()
        target.api().set_weights(weights, backend=router.PREVIEW)
        target.wait_router_sees(color, backend=router.PREVIEW)
        port = desired.router.preview_port
    report = checks.Report(
        args.environment, f"{color}, {release.bento}", f"http://127.0.0.1:{port}", bento=release.bento
    )
    reference = reference_of(cfg, args.environment, target, color)
    print(f"  latency judged beside {reference.name}" if reference else "  latency: no reference running")
    holdout = checks.load_holdout(cfg, release.model_version)
    key = access.operator_key(target.dir)
    checks.run_all(port, holdout, desired.checks, report, key=key, reference=reference)
    json_path, _ = report.write(resolve(cfg.deploy.report_dir), args.environment)
    print(f"  {'passed' if report.passed else 'FAILED'}; report: {json_path}")
    return 0 if report.passed else 1


def reference_of(
    cfg: Config, environment: str, target: local.LocalTarget, color: str
) -> checks.Reference | None:
    """What the checked color's latency is judged beside: another release running on this host.

    The environment's other color first (staging keeps the release before this one warm there),
    else, for staging, production's live color when this host runs it; a busy host slows the
    reference as much as the candidate, a slower release only the candidate. None when neither
    answers (a first deploy on a fresh runner): the fixed budget alone decides then.
    """
    from . import checks

    owners = [(target, state.other(color))]
    if environment != "production":
        production = target_of(cfg, "production")
        owners.append((production, production.load().live or ""))
    for owner, which in owners:
        process = owner.load().colors.get(which)
        if process is not None and owner.color_answering(process):
            name = f"{owner.environment} {which} ({process.bento})"
            return checks.Reference(process.port, name, access.operator_key(owner.dir))
    return None


def measured(
    desired: state.DesiredState, actual: local.Actual, color: str | None
) -> tuple[str, state.Release | None]:
    """The color a check measures and the release it really serves.

    Through the front door that is the color serving (after an automatic rollback, not the one
    the file names), and its release is what its process runs: the report never names a release
    it did not measure.
    """
    chosen = color or actual.live or desired.live
    process = actual.colors.get(chosen)
    return chosen, process.release if process else desired.release(chosen)


def status(cfg: Config, args: argparse.Namespace) -> int:
    """Desired against running, color by color, with HAProxy's live weights; 1 when they differ.

    An environment with nothing released yet matches. Otherwise the router must run, every color
    with a release must serve it and answer, and the weights must be the desired traffic.
    """
    desired = state.load(desired_path(cfg, args.environment))
    target = target_of(cfg, args.environment)
    actual = target.load()
    weights = target.api().weights() if target.router_running(actual) else {}
    print(
        f"  router: {'running' if weights else 'stopped'} on port {desired.router.port}; live={actual.live}"
    )
    matches = desired.empty or bool(weights)
    for color in state.COLORS:
        process = actual.colors.get(color)
        running = target.color_running(process)
        answering = process is not None and running and target.color_answering(process)
        health = "ready" if answering else ("up" if running else "stopped")
        serving = process.release if process and answering else None
        print(
            f"  {color:5} desired={desired.release(color)} running={process.release if process else None} "
            f"{health} weight={weights.get(color, '-')} (desired {desired.traffic[color]})"
        )
        if answering and process is not None and (said := profile_writes(target, process)):
            print(f"  {color:5} {said}")
        if not desired.empty and desired.release(color) is not None:
            matches &= serving == desired.release(color) and weights.get(color) == desired.traffic[color]
    matches &= access_status(desired, target if weights else None)
    print(f"  {'matches' if matches else 'DIFFERS FROM'} deploy/{args.environment}.yaml")
    return 0 if matches else 1


def profile_writes(target: local.LocalTarget, process: local.ColorProcess) -> str | None:
    """What the color's ``/metrics`` says of its profile writes, when they fail; None when they do not.

    A profile it cannot write (a full disk) only costs a log line in the color, which keeps
    serving and keeps the rows for later: said here, where an operator looks. ``/metrics``
    answers without the operator key (``serving/guard.py``).
    """
    from ..monitoring import health as metrics  # httpx: paid only once a color answers

    url = f"http://127.0.0.1:{process.port}/metrics"
    try:
        failures = metrics.profile_failures(metrics.read_source(url, timeout_s=2.0), url)
    except metrics.MetricsError as error:
        return f"profiles: not known, {error}"
    return f"profiles: {metrics.profile_failures_line(failures, target.profile_dir())}" if failures else None


def access_status(desired: state.DesiredState, running: local.LocalTarget | None) -> bool:
    """Print who may call the front door (and whose signature images need); False if the router differs."""
    from . import access

    granted = desired.access
    if granted is None:
        print("  access: open, no key asked")
    else:
        keys = [f"{c.name} {c.key_sha256[: access.PREFIX_CHARS]}" for c in granted.clients]
        print(f"  access: keys of {', '.join(keys) or 'no client'}")
    if desired.signed_by:
        print(f"  images: only signed by {desired.signed_by}")
    if running is None:
        return True
    applied = running.api().map_entries(running.keys_map) == access.entries(granted)
    if not applied:
        print("  access: the router holds other keys; `deploy apply` brings them in line")
    return applied


def stop(cfg: Config, args: argparse.Namespace) -> int:
    """Stop every process of the environment (state is kept for the next apply)."""
    target = target_of(cfg, args.environment)
    with local.exclusive(target):
        actual = target.load()
        target.stop_all(actual)
        actual.weights = dict.fromkeys(state.COLORS, 0)
        actual.weights[actual.live or "blue"] = 100
        target.save(actual)
    print(f"  {args.environment}: stopped")
    return 0


def propose(cfg: Config, args: argparse.Namespace) -> int:
    """Write the promotion edit: the release goes to the idle color, which becomes live.

    Without ``--bento`` the release is staging's live one: what just passed ``check-staging``.
    """
    path = desired_path(cfg, args.environment)
    current = state.load(path)
    if args.bento and args.model_version:
        release: state.Release | None = state.release_of(args.bento, args.model_version)
    else:
        release = staged_release(cfg)
        if release is not None:
            require_checked(cfg, release)
            release = by_digest(cfg, release)
    if release is None:
        raise state.StateError(
            "nothing to propose: staging has no live release and --bento/--model-version are not given"
        )
    if current.release(current.live) == release:
        print(f"  {path}: {release.bento} is already live; nothing to propose")
        return 0
    proposed = state.with_release(current, release, recorded_scores(cfg, release))
    write_desired(cfg, proposed)
    stage_on_cluster(cfg, proposed)
    report = write_proposal(cfg, current, proposed)
    print(f"  {path}: {release} on {current.idle}, now live; proposal: {report}")
    return 0


def recorded_scores(cfg: Config, release: state.Release) -> state.Scores | None:
    """The release's held-out scores, from this job's ``nox -s compare``, to record beside it.

    Pull requests gate against them (``compare`` without a champion in their registry); a
    release that compare did not score here (proposed by hand) records none, and says so.
    """
    gate = resolve(cfg.training.report_dir) / "gate.json"
    found = state.scores_of(jsonfile.load(gate) or {}, release.model_version)
    if found is None:
        print(f"  {gate} does not score model v{release.model_version}: no held-out scores recorded for it")
    return found


def stage_on_cluster(cfg: Config, proposed: state.DesiredState) -> None:
    """A Kubernetes bake's staging overlay pins the proposed release too (same digest, same PR)."""
    overlays = resolve(cfg.deploy.desired_dir) / "kubernetes" / "overlays"
    if overlays.is_dir():
        from . import kubernetes

        kubernetes.stage(proposed, overlays)


def write_proposal(cfg: Config, current: state.DesiredState, proposed: state.DesiredState) -> Path:
    """``proposal.{json,md}``: live beside proposed, what merging does, where the evidence is.

    The release job's page (the promotion pull request's body) shows the Markdown as its section.
    """
    live, new = current.release(current.live), proposed.release(proposed.live)
    steps = [*proposed.canary_steps, 100]
    watch = proposed.checks.post_switch
    run = os.environ.get("GITHUB_RUN_ID")
    evidence = (
        f"{os.environ.get('GITHUB_SERVER_URL', 'https://github.com')}/{os.environ.get('GITHUB_REPOSITORY')}"
        f"/actions/runs/{run}"
        if run and os.environ.get("GITHUB_REPOSITORY")
        else None
    )
    folder = resolve(cfg.deploy.report_dir)
    staged = staging_times(folder, new.bento if new else None)
    payload = {
        "environment": proposed.environment,
        "live": {"color": current.live, "release": dataclasses.asdict(live) if live else None},
        "proposed": {"color": proposed.live, "release": dataclasses.asdict(new) if new else None},
        "traffic_steps": steps,
        "watch_s": watch.window_s,
        "evidence": evidence,
        "staging": staged,
    }
    json_path = jsonfile.write_json(payload, folder / "proposal.json")
    rows: list[list[object]] = [
        ["color", current.live, proposed.live],
        ["bento", live.bento if live else None, new.bento if new else None],
        [
            "model version",
            f"v{live.model_version}" if live else None,
            f"v{new.model_version}" if new else None,
        ],
        ["image", live.image if live else None, new.image if new else None],
    ]
    merging = (
        f"Merging sends {' → '.join(f'{share}%' for share in steps)} of the traffic to {proposed.live}, "
        f"watching each step for {watch.window_s:g} s (error rate ≤ {watch.max_error_rate:.1%}, p95 ≤ "
        f"{watch.p95_ms:g} ms); a failed step rolls traffic back to {current.live}, which stays warm."
    )
    lines = [
        f"### Proposed for {proposed.environment}",
        tables.table(["", "live now", "proposed"], rows),
        *([staging_line(staged)] if staged else []),
        merging,
    ]
    if evidence:
        lines.append(
            f"Evidence (reports, SBOM, the proposed file): [release run {run}]({evidence}), "
            "artifact `release-evidence`."
        )
    (folder / "proposal.md").write_text("\n\n".join(lines) + "\n")
    return json_path


def staging_times(folder: Path, bento: str | None) -> dict[str, float] | None:
    """When the proposed bento went live in staging and was checked there, and now (epoch seconds).

    From staging's own reports: the promotion that put it live and the check-staging run. A
    release proposed by hand (``--bento``) that staging never served has none.
    """
    checked = jsonfile.load(folder / "staging.json")
    deployed = jsonfile.load(folder / "promotion-staging.json")
    if bento is None or checked is None or checked.get("bento") != bento:
        return None
    times = [d["at"] for d in (deployed or {}).get("decisions", []) if isinstance(d, dict) and "at" in d]
    return {
        "deployed_at": min(times) if times else float(checked["started_at"]),
        "checked_at": float(checked["started_at"]),
        "proposed_at": time.time(),
    }


def staging_line(staged: dict[str, float]) -> str:
    """How long the proposed release was in staging, and when it was deployed, checked, proposed."""
    minutes = (staged["proposed_at"] - staged["deployed_at"]) / 60
    when = {key: tables.meaning(key, value) for key, value in staged.items()}
    return (
        f"In staging for {minutes:.1f} min: deployed {when['deployed_at']}, checks passed from "
        f"{when['checked_at']}, proposed {when['proposed_at']}."
    )


def staged_release(cfg: Config) -> state.Release | None:
    """What staging serves live: the release its checks were run against."""
    staging = state.load(desired_path(cfg, "staging"))
    return staging.release(staging.live)


def by_digest(cfg: Config, release: state.Release) -> state.Release:
    """The release with its image named by registry digest, once ``push-image`` pushed it.

    An image that was never pushed keeps its local tag (production on the machine that built it
    can run it) and the edit says so; the release workflow always pushes before proposing.
    """
    from ..serving import packaging

    if release.image is None:
        return release
    image = packaging.built_image(cfg.serving.report_dir, release.bento)
    if image is None or image.pushed is None:
        print(f"  {release.image} is not in a registry (`nox -s push-image`): only this machine can run it")
        return release
    return state.release_of(release.bento, release.model_version, image.pushed)


def push(cfg: Config, args: argparse.Namespace) -> int:
    """Push the image staging checked to its registry; ``image.json`` records its digest.

    Only a release whose ``check-staging`` passed is pushed: a digest in the registry is a
    release that may be proposed.
    """
    from ..serving import packaging

    release = staged_release(cfg)
    if release is None or release.image is None:
        print("  nothing to push: staging's live release runs no image (`nox -s containerize` built none)")
        return 0
    require_checked(cfg, release)
    image = packaging.built_image(cfg.serving.report_dir, release.bento)
    if image is None or image.reference != release.image:
        raise state.StateError(
            f"{release.image}: reports/image.json does not describe it; run `nox -s containerize` again"
        )
    pushed = packaging.push(image)
    path = packaging.write_image(pushed, cfg.serving.report_dir)
    print(f"  pushed {pushed.pushed}; report: {path}")
    return 0


def add_key(cfg: Config, args: argparse.Namespace) -> int:
    """Make a key for a client of the front door: its hash goes to deploy/<environment>.yaml.

    The key is printed once and kept nowhere; a client may hold several (rotation). Merging the
    edit and reconciling (``nox -s promote``) applies it without a restart.
    """
    from . import access

    desired = state.load(desired_path(cfg, args.environment))
    updated, key = access.add_key(desired, args.client, args.requests_per_s)
    path = write_desired(cfg, updated)
    hashed = access.hash_key(key)[: access.PREFIX_CHARS]
    print(f"  {path}: key {hashed}… for {args.client!r}, {args.requests_per_s or 'no'} limit in requests/s")
    print(f"  the key (shown once; hand it to the client as a secret): {key}")
    if desired.access is None:
        print("  access was open: once applied, callers without a listed key get 401")
    return 0


def revoke_key(cfg: Config, args: argparse.Namespace) -> int:
    """Remove a client's keys (by name) or one key (by the start of its hash) from the front door."""
    from . import access

    desired = state.load(desired_path(cfg, args.environment))
    updated, removed = access.revoke(desired, args.who)
    path = write_desired(cfg, updated)
    for client in removed:
        print(f"  {path}: revoked key {client.key_sha256[: access.PREFIX_CHARS]}… of {client.name!r}")
    return 0


def require_checked(cfg: Config, release: state.Release) -> None:
    """Refuse to propose a release unless ``check-staging`` passed for exactly that bento."""
    path = resolve(cfg.deploy.report_dir) / "staging.json"
    report = jsonfile.load(path)
    if report is None or report.get("bento") != release.bento:
        raise state.StateError(
            f"{release.bento} has no staging check report ({path}): run `nox -s check-staging` first"
        )
    if not report.get("passed"):
        failed = ", ".join(r["name"] for r in report.get("results", []) if not r.get("passed"))
        raise state.StateError(f"{release.bento} failed check-staging ({failed}): nothing to propose")


def parser() -> argparse.ArgumentParser:
    """The argument parser: subcommands, environment, Hydra overrides."""
    root = argparse.ArgumentParser(
        prog="deploy", description=__doc__.splitlines()[0], epilog="key=value words are Hydra overrides."
    )
    commands = root.add_subparsers(dest="command", required=True)
    handlers: dict[str, Callable[[Config, argparse.Namespace], int]] = {
        "apply": apply, "check": check, "rollback": rollback, "status": status, "stop": stop,
        "propose": propose, "push": push, "add-key": add_key, "revoke-key": revoke_key,
        "revert": revert, "manifests": manifests, "rollout-status": rollout_status,
    }  # fmt: skip
    for name, handler in handlers.items():
        command = commands.add_parser(name, help=(handler.__doc__ or "").splitlines()[0])
        command.set_defaults(handler=handler)
        if name != "manifests":  # the manifest check covers every environment at once
            environments = ["staging"] if name == "push" else ["staging", "production"]
            command.add_argument("environment", choices=environments)
    commands.choices["check"].add_argument("--color", choices=state.COLORS, help="check one color directly")
    commands.choices["apply"].add_argument(
        "--from-store", action="store_true", help="first put the newest packaged bento live"
    )
    commands.choices["add-key"].add_argument("client", help="the caller's name, as profiles will show it")
    commands.choices["add-key"].add_argument(
        "--requests-per-s", type=int, default=0, help="rate limit of this key (0: none)"
    )
    commands.choices["revoke-key"].add_argument("who", help="a client's name, or the start of a key's hash")
    commands.choices["rollout-status"].add_argument(
        "--wait-s", type=float, default=600.0, help="how long the Rollout may take to settle"
    )
    commands.choices["propose"].add_argument("--bento", help="bento tag (default: staging's live release)")
    commands.choices["propose"].add_argument("--model-version", help="MLflow model version inside the bento")
    return root


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse, compose config, run, one-line errors."""
    given = sys.argv[1:] if argv is None else argv
    # key=value words are Hydra overrides wherever they stand; the rest is the subcommand's
    overrides = [word for word in given if "=" in word and not word.startswith("-")]
    args = parser().parse_args([word for word in given if word not in overrides])
    args.overrides = overrides
    use_project_store()  # `bentoml serve <tag>` finds the bentos `nox -s package` built
    cfg: Config | None = None
    try:
        cfg = compose(args.overrides)
        code = args.handler(cfg, args)
    except EXPECTED as error:
        print(f"deploy {args.command}: error: {error}", file=sys.stderr)
        jsonfile.record_failure(
            report_root(cfg), f"deploy-{args.command}", str(error)
        )  # for the job's summary
        code = 1
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
