"""Who may call the front door: keys in desired state, checked by a real HAProxy, rotated under load."""

from __future__ import annotations

import dataclasses
import re
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from {{ cookiecutter.package_name }}.config import PROJECT_ROOT
from {{ cookiecutter.package_name }}.deployment import access, cli, load, local, router, state
from {{ cookiecutter.package_name }}.deployment.loopback import client, free_ports
from {{ cookiecutter.package_name }}.headers import CLIENT_HEADER

needs_haproxy = pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed")
needs_wrk = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed")


class EchoClient(BaseHTTPRequestHandler):
    """A color that answers 200 and says which client the router named (``X-Client`` as received)."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Seen-Client", self.headers.get(CLIENT_HEADER, "-"))
        self.send_header("Seen-Authorization", self.headers.get("Authorization", "-"))
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def do_POST(self) -> None:
        self.do_GET()

    def log_message(self, *args: object) -> None:
        pass


@dataclasses.dataclass
class Door:
    """A running router in front of two echo colors, and the desired state it was started from."""

    target: local.LocalTarget
    desired: state.DesiredState

    def call(self, path: str = "/predict", key: str | None = None, **headers: str) -> tuple[int, str]:
        """One request at the front door: its status and the client name the color received."""
        return self.call_at(self.desired.router.port, path, key, **headers)

    def call_at(self, port: int, path: str, key: str | None = None, **headers: str) -> tuple[int, str]:
        sent = dict(router.JSON_HEADERS) | {name.replace("_", "-"): value for name, value in headers.items()}
        if key is not None:
            sent["Authorization"] = f"Bearer {key}"
        response = client().post(f"http://127.0.0.1:{port}{path}", content=b"{}", headers=sent, timeout=5)
        return response.status_code, response.headers.get("Seen-Client", "")

    def grant(self, desired: state.DesiredState) -> None:
        """Apply a changed access section to the running router, as a reconcile does."""
        self.desired = desired
        self.target.apply_access(desired)


@pytest.fixture
def door(tmp_path: Path) -> Iterator[Door]:
    port, preview, blue, green = free_ports(4)
    servers = [ThreadingHTTPServer(("127.0.0.1", p), EchoClient) for p in (blue, green)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    desired = state.parse(
        {
            "environment": "test",
            "live": "blue",
            "colors": {"blue": {"bento": "a:1", "model_version": "1"}, "green": None},
            "traffic": {"blue": 100, "green": 0},
            "router": {"port": port, "preview_port": preview, "blue_port": blue, "green_port": green},
        }
    )
    target = local.LocalTarget("test", tmp_path / ".deploy", tmp_path)
    actual = local.Actual(weights={"blue": 100, "green": 0})
    target.ensure_router(actual, desired)
    target.save(actual)
    target.wait_router_sees("blue")
    target.api().set_weights({"blue": 100, "green": 0}, backend=router.PREVIEW)
    yield Door(target, desired)
    target.stop_all(target.load())
    for server in servers:
        server.shutdown()


def with_keys(desired: state.DesiredState, *clients: tuple[str, int]) -> tuple[state.DesiredState, list[str]]:
    keys = []
    for name, rate in clients:
        desired, key = access.add_key(desired, name, rate)
        keys.append(key)
    return desired, keys


@pytest.mark.slow
@needs_haproxy
def test_access__open_door_names_keyless_callers_anonymous_and_keeps_operator_paths(door: Door) -> None:
    assert door.call() == (200, "anonymous")
    assert door.call(X_Client="operator") == (200, "anonymous")  # a caller cannot pick its name
    assert door.call("/metrics")[0] == 200
    assert door.call_at(door.desired.router.preview_port, "/predict", door.target.operator_key()) == (
        200,
        "operator",
    )


@pytest.mark.slow
@needs_haproxy
def test_access__keys_decide_who_is_served(door: Door) -> None:
    desired, (web, batch) = with_keys(door.desired, ("web-app", 0), ("batch", 0))
    door.grant(desired)
    assert door.call() == (401, "")
    assert door.call(key="not-a-key") == (401, "")
    assert door.call(key=web[:-1]) == (401, "")
    assert door.call(key=web) == (200, "web-app")
    assert door.call(key=batch, X_Client="web-app") == (200, "batch")
    assert door.call(key=web, Authorization=f"bearer {web}") == (200, "web-app")  # the scheme in any case
    # health stays open for load balancers; metrics and metadata are the operators' (preview door)
    assert door.call("/readyz")[0] == 200
    assert door.call("/metrics", key=web)[0] == 403
    assert door.call("/metadata", key=web)[0] == 403
    assert door.call_at(door.desired.router.preview_port, "/metadata", door.target.operator_key()) == (
        200,
        "operator",
    )


@pytest.mark.slow
@needs_haproxy
def test_access__the_preview_door_asks_the_operator_key(door: Door) -> None:
    """The operators' door: no key, a client's key or a forged name is 401; the operator key passes."""
    preview = door.desired.router.preview_port
    desired, (web,) = with_keys(door.desired, ("web-app", 0))
    door.grant(desired)
    assert door.call_at(preview, "/predict") == (401, "")
    assert door.call_at(preview, "/predict", X_Client="operator") == (401, "")
    assert door.call_at(preview, "/predict", web) == (401, "")  # a client's key opens the front door only
    assert door.call_at(preview, "/predict", door.target.operator_key()) == (200, "operator")


@pytest.mark.slow
@needs_haproxy
def test_access__colors_receive_the_router_s_key_never_the_caller_s(door: Door) -> None:
    """Every request the router forwards presents the operator key, which the colors answer alone."""
    desired, (web,) = with_keys(door.desired, ("web-app", 0))
    door.grant(desired)
    response = client().post(
        f"http://127.0.0.1:{door.desired.router.port}/predict",
        content=b"{}",
        headers=router.JSON_HEADERS | access.bearer(web),
        timeout=5,
    )
    assert response.status_code == 200
    assert response.headers.get("Seen-Authorization") == f"Bearer {door.target.operator_key()}"
    assert door.target.config_file.stat().st_mode & 0o777 == 0o600  # the config holds the key


def test_operator_key__made_once_per_environment_owner_only(tmp_path: Path) -> None:
    key = access.operator_key(tmp_path / "production")
    assert access.operator_key(tmp_path / "production") == key  # kept: running colors were given it
    assert (tmp_path / "production" / access.OPERATOR_KEY_FILE).stat().st_mode & 0o777 == 0o600
    assert len(key) >= 40
    assert access.operator_key(tmp_path / "staging") != key
    assert sorted(path.name for path in (tmp_path / "production").iterdir()) == [access.OPERATOR_KEY_FILE]


@pytest.mark.slow
@needs_haproxy
def test_access__a_client_over_its_rate_gets_429_and_others_are_not_slowed(door: Door) -> None:
    desired, (limited, other) = with_keys(door.desired, ("limited", 5), ("other", 0))
    door.grant(desired)
    statuses = [door.call(key=limited)[0] for _ in range(12)]
    assert statuses.count(200) >= 5
    assert 429 in statuses
    assert statuses.index(429) >= 5  # the first five in a second are always served
    assert [door.call(key=other)[0] for _ in range(12)] == [200] * 12


@pytest.mark.slow
@needs_haproxy
def test_access__revoked_keys_and_closed_doors_apply_without_a_restart(door: Door) -> None:
    pid = door.target.load().router_pid
    desired, (old, new) = with_keys(door.desired, ("web-app", 0), ("web-app", 0))
    door.grant(desired)
    assert door.call(key=old) == door.call(key=new) == (200, "web-app")
    prefix = access.hash_key(old)[: access.PREFIX_CHARS]
    revoked, removed = access.revoke(desired, prefix)
    assert [client.key_sha256 for client in removed] == [access.hash_key(old)]
    door.grant(revoked)
    assert door.target.api().map_entries(door.target.keys_map) == access.entries(revoked.access)
    assert door.call(key=old) == (401, "")
    assert door.call(key=new) == (200, "web-app")
    closed, _ = access.revoke(revoked, "web-app")
    door.grant(closed)
    assert door.call(key=new)[0] == 401
    door.grant(dataclasses.replace(closed, access=None))
    assert door.call() == (200, "anonymous")
    assert door.target.load().router_pid == pid
    assert (door.target.keys_map).read_text() == access.render_map(None)  # what a restart would read


@pytest.mark.slow
@needs_haproxy
@needs_wrk
def test_access__rotating_keys_under_load_fails_no_request_of_a_valid_key(door: Door) -> None:
    """wrk holds the old key while the map is swapped again and again; then clients move, and it goes."""
    desired, (old,) = with_keys(door.desired, ("web-app", 0))
    door.grant(desired)
    url = f"http://127.0.0.1:{desired.router.port}/predict"
    swaps = 0
    with load.background(url, "{}", clients=4, duration_s=4, key=old) as on_old:
        rotated, (new,) = with_keys(desired, ("web-app", 0))
        door.grant(rotated)
        with load.background(url, "{}", clients=2, duration_s=2, key=new) as on_new:
            while on_new.process.poll() is None:  # other clients come and go meanwhile
                churned, _ = with_keys(rotated, ("batch", 0))
                door.grant(churned)
                door.grant(rotated)
                swaps += 2
            moved = on_new.result()
        old_numbers = on_old.result()
    print(f"old key {old_numbers.requests} requests, new key {moved.requests}, {swaps} map swaps")
    assert swaps >= 10
    assert old_numbers.requests > 100
    assert moved.requests > 50
    assert old_numbers.errors == moved.errors == 0
    door.grant(access.revoke(rotated, access.hash_key(old)[: access.PREFIX_CHARS])[0])
    assert door.call(key=old)[0] == 401
    assert door.call(key=new) == (200, "web-app")


@pytest.mark.slow
@needs_haproxy
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=80))
def test_access__the_router_hashes_a_key_as_desired_state_does(door: Door, key: str) -> None:
    """Any printable token, however odd, works at the door when its hash is listed (and only then)."""
    client = state.client_of("any", access.hash_key(key), 0)
    door.grant(dataclasses.replace(door.desired, access=state.Access(clients=(client,))))
    assert door.call(key=key) == (200, "any")
    assert door.call(key=key + "x")[0] == 401


def test_access__add_and_revoke_keep_the_file_valid_and_say_what_is_wrong() -> None:
    desired = state.parse({"environment": "p", "live": "blue", "colors": {}, "traffic": {"blue": 100}})
    with pytest.raises(state.StateError, match="client: name: expected a lowercase name like 'web-app'"):
        access.add_key(desired, "Web App")
    with pytest.raises(state.StateError, match="'operator' is the router's own name"):
        access.add_key(desired, "operator")
    with pytest.raises(state.StateError, match="requests_per_s: expected a whole number >= 0"):
        access.add_key(desired, "web", -1)
    with pytest.raises(state.StateError, match=r"no client named 'web'.*clients: none"):
        access.revoke(desired, "web")
    granted, key = access.add_key(desired, "web", 5)
    with pytest.raises(state.StateError, match=r"at least 12 hex digits\); clients: web \("):
        access.revoke(granted, access.hash_key(key)[:6])


@pytest.mark.parametrize(
    ("access_section", "address", "message"),
    [
        (None, "0.0.0.0", "router.address 0.0.0.0 reaches beyond this host, and access is null"),
        ({"clients": [{"name": "web", "key_sha256": "abc"}]}, "127.0.0.1", "access.clients[0].key_sha256"),
        ({"clients": [{"name": "w", "key_sha256": "a" * 64}] * 2}, "127.0.0.1", "listed twice"),
        (None, "localhost", "router.address: expected an IPv4 address"),
    ],
)
def test_access__desired_state_refuses_an_unguarded_or_malformed_door(
    access_section: object, address: str, message: str
) -> None:
    raw = {"environment": "p", "live": "blue", "colors": {}, "traffic": {"blue": 100}}
    raw |= {"router": {"address": address}, "access": access_section}
    with pytest.raises(state.StateError, match=re.escape(message)):
        state.parse(raw)


def test_access__cli_prints_the_key_once_and_files_only_its_hash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    desired_dir = tmp_path / "deploy"
    shutil.copytree(PROJECT_ROOT / "deploy", desired_dir)

    def run(*args: str) -> int:
        return cli.main([*args, f"deploy.desired_dir={desired_dir}"])

    assert run("add-key", "production", "web-app", "--requests-per-s", "50") == 0
    said = capsys.readouterr().out
    key = said.split("as a secret): ")[1].split()[0]
    text = (desired_dir / "production.yaml").read_text()
    assert key not in text
    assert access.hash_key(key) in text
    granted = state.load(desired_dir / "production.yaml")
    assert granted.access == state.Access((state.Client("web-app", access.hash_key(key), 50),))
    assert run("status", "production") == 0  # nothing released or running: matches
    assert f"access: keys of web-app {access.hash_key(key)[:12]}" in capsys.readouterr().out
    assert run("revoke-key", "production", "web-app") == 0
    assert state.load(desired_dir / "production.yaml").access == state.Access(())
    assert run("revoke-key", "production", "web-app") == 1
    assert "deploy revoke-key: error: no client named 'web-app'" in capsys.readouterr().err
