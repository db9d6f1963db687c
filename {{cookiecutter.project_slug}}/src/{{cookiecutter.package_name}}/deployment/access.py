"""Who may call the front door: keys made and revoked in desired state, applied as HAProxy's keys map.

A key is a random token handed to one client; desired state keeps only its SHA-256, so the file
can live in git and be reviewed in a pull request like any other change to production. The
router hashes the bearer token of each request and looks the hash up in the keys map, one line
per key: ``<sha256> <client>:<requests per second>`` (the runtime API takes a one-word value).
While ``access`` is null the map holds a single ``open`` entry, which admits keyless callers as
``anonymous``. The map is replaced atomically over the runtime API (see
:meth:`router.RuntimeApi.replace_map`), so adding, rotating or revoking a key restarts nothing
and fails no request of a valid key.

Behind the doors, one more key: each environment's operator key, made on first use and kept in
its state folder (owner-only), never in git. The router presents it on every request it sends
to a color, and a color answers nothing else (``serving/guard.py``): a local process reaching a
color's port directly, or naming itself ``X-Client: operator``, gets 401. The preview door, the
operators' own, asks for it too, and the deployment tooling (checks, warm-up, watch) holds it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import secrets
from pathlib import Path

from pydantic import ValidationError

from .state import RESERVED_CLIENTS, Access, Client, DesiredState, StateError, client_of

OPEN = "open"
"""The map entry present only while access is null; a SHA-256 in hex can never equal it."""

ANONYMOUS, OPERATOR = RESERVED_CLIENTS
PREFIX_CHARS = 12
"""How much of a key's hash identifies it in messages and in ``revoke-key``."""
OPERATOR_KEY_FILE = "operator.key"


def hash_key(key: str) -> str:
    """The SHA-256 of a key in lowercase hex: what desired state stores and the router computes."""
    return hashlib.sha256(key.encode()).hexdigest()


def entries(access: Access | None) -> dict[str, str]:
    """The keys map's lines as ``{key: value}``: each key's hash to ``<client>:<limit>``, or ``open``."""
    if access is None:
        return {OPEN: f"{ANONYMOUS}:0"}
    return {client.key_sha256: f"{client.name}:{client.requests_per_s}" for client in access.clients}


def render_map(access: Access | None) -> str:
    """The keys map file HAProxy reads at start (later changes go over its runtime API)."""
    return "".join(f"{key} {value}\n" for key, value in entries(access).items())


def add_key(desired: DesiredState, name: str, requests_per_s: int = 0) -> tuple[DesiredState, str]:
    """A new key for ``name`` (an existing client keeps its other keys): the new state and the key.

    The key is returned once and stored nowhere: the caller shows it to the person who will hand
    it to the client.
    """
    key = secrets.token_urlsafe(32)
    clients = desired.access.clients if desired.access else ()
    client = client_of(name, hash_key(key), requests_per_s)
    return with_access(desired, (*clients, client)), key


def revoke(desired: DesiredState, who: str) -> tuple[DesiredState, list[Client]]:
    """Remove a client's keys (``who`` is its name) or one key (``who`` starts its hash).

    Raises:
        StateError: Nothing matches, or a hash prefix is too short to name one key.
    """
    clients = desired.access.clients if desired.access else ()
    by_name = [c for c in clients if c.name == who]
    by_hash = [c for c in clients if len(who) >= PREFIX_CHARS and c.key_sha256.startswith(who)]
    removed = by_name or by_hash
    if not removed:
        listed = ", ".join(f"{c.name} ({c.key_sha256[:PREFIX_CHARS]})" for c in clients) or "none"
        raise StateError(
            f"no client named {who!r} and no key whose SHA-256 starts with it "
            f"(at least {PREFIX_CHARS} hex digits); clients: {listed}"
        )
    return with_access(desired, tuple(c for c in clients if c not in removed)), removed


def with_access(desired: DesiredState, clients: tuple[Client, ...]) -> DesiredState:
    """The state with exactly these clients (re-validated: a rule broken is a :class:`StateError`)."""
    try:
        return dataclasses.replace(desired, access=Access(clients=clients))
    except ValidationError as error:
        raise StateError(f"access.clients: {error.errors()[0]['msg']}") from None


def operator_key(folder: Path) -> str:
    """The environment's operator key from ``<folder>/operator.key``, made (owner-only) if absent.

    Made once and kept: the router's config and every running color were given it, so a new
    one would lock the tooling out of colors still running.
    """
    path = folder / OPERATOR_KEY_FILE
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        made = folder / f".{OPERATOR_KEY_FILE}.{os.getpid()}"
        with os.fdopen(os.open(made, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
            handle.write(secrets.token_urlsafe(32))
        try:
            os.link(made, path)  # atomic, and never over a key another process made meanwhile
        except FileExistsError:
            pass
        finally:
            made.unlink()
    return path.read_text().strip()


def bearer(key: str | None) -> dict[str, str]:
    """The header presenting ``key`` (none without a key)."""
    return {"Authorization": f"Bearer {key}"} if key else {}
