"""HAProxy in front of the two colors: its config, generated from desired state, and its runtime API.

Traffic moves with ``set weight`` over the admin socket, never with a reload or restart: a
weight change takes effect for the next request, while requests in flight finish where they
started, so a switch drops nothing. A color that dies loses no request: the first refused
connection marks it down at once (``observe layer4``), and every failed request is retried and
redispatched to the warm previous color, the one a rollback would choose, which stands in the
production backend as a ``backup`` server (HAProxy redispatches only to a server with weight or
to a backup); a color that was refused or rolled back from is never a fallback. Every response
carries ``X-Deploy-Color`` naming the color that answered, which the checks and the switch
benchmark read.

The front door checks who calls (see :mod:`access`): a bearer key's SHA-256 is looked up in
the keys map, and the client's name travels to the color as ``X-Client``; a client over its
rate gets 429. Health stays open for load balancers, and ``/metrics`` and ``/metadata`` answer
there only while access is open. The preview door is the operators' side: loopback only, the
environment's operator key asked, its traffic named ``operator``. Every request the router sends
to a color carries that key, and a color answers no other (see :mod:`access`), so only the
router names clients.
"""

from __future__ import annotations

import csv
import io
import re
import socket
import string
from dataclasses import dataclass
from pathlib import Path

from ..errors import PipelineError
from ..headers import CLIENT_HEADER
from ..serving.body import GET_ROUTES
from .access import OPEN, OPERATOR, hash_key
from .state import COLORS, Router

BACKEND = "colors"
PREVIEW = "preview"
FALLBACK = "-fallback"
"""The suffix of a color's backup server in the production backend (``green-fallback``)."""
OBSERVED = "check observe layer4 error-limit 1 on-error mark-down"
COLOR_HEADER = "X-Deploy-Color"
HEALTH_PATHS = ("/livez", "/readyz", "/healthz")
JSON_HEADERS = {"Content-Type": "application/json"}
OPERATOR_HEADERS = JSON_HEADERS | {CLIENT_HEADER: OPERATOR}
"""What the operators' own requests (checks, warm-up, watch) send, so profiles can tell them apart."""

CONFIG = """\
# Generated from deploy/{environment}.yaml by the deployment tooling; do not edit.
global
    stats socket {socket} mode 600 level admin
    stats timeout 30s
    maxconn 4096

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 10s
    timeout check 3s
    # A request that meets a dead color is sent again (HAProxy manual, "retries", "retry-on"): its
    # connection refused (conn-failure), or the color died holding it (empty-response). Sending a
    # POST twice is safe here only because a prediction is idempotent: the same rows get the same
    # answer and change no state. retry-on beyond conn-failure copies the request into a buffer,
    # and "requests not fitting in a single buffer will never be retried" (tune.bufsize, 16 kB):
    # a large batch in flight when its color dies still fails.
    retries 3
    retry-on conn-failure empty-response response-timeout 503
    # Every retry is redispatched, not sent to the same server again ("option redispatch <interval>":
    # 1 = on every retry); the choice is "any active, non-backup server, if any", else a backup.
    option redispatch 1
    http-reuse safe
    # a busy color answers its health check late: three slow checks, not one, take it out
    # No per-server maxconn: requests queued behind it are not moved by `set weight` (HAProxy
    # 2.6 left them waiting for the weight-0 color until the queue timed out).
    # fastinter: checks every 250 ms while a color's state is changing (one marked down by an
    # error, one coming back), so a restarted color is seen up again within about half a second.
    default-server inter 1s fastinter 250ms downinter 1s fall 3 rise 2

# Production traffic: the live color, by weight.
frontend public
    bind {address}:{port}
{access}
{body_limit}
{json_only}
    default_backend {backend}

# Candidate traffic only: the checks reach the idle color here, through the same edge rules,
# while its weight in the production backend stays 0.
frontend preview
    bind 127.0.0.1:{preview_port}
{body_limit}
{json_only}
{preview_key}
    http-request set-header {client_header} {operator}
    default_backend {preview}

# The colors by weight, then the failover: the warm previous color as a backup server, weight 100
# (the other backup 0: "a value of 0 means the server will not participate in load-balancing").
# Backups serve only "when all other non-backup servers are unavailable", and a redispatched retry
# goes to one, so a dead live color's requests land on the warm previous color. A refused
# connection marks a color down at once ("observe layer4" with "on-error mark-down" and
# "error-limit 1"), without the three failed checks: its next retry already goes to the backup.
# Only connection errors count (layer4): one 5xx, a bad row, never takes the live color out.
backend {backend}
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    option allbackups
{router_key}
    http-response set-header {header} %[srv_name,field(1,-)]
{servers}
{fallback_servers}

backend {preview}
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
{router_key}
    http-response set-header {header} %s
{preview_servers}
"""


# A body over the limit is answered 413 from its Content-Length, before a byte of it reaches a
# color (a 39 MB body kept a worker parsing for 5 s while other requests waited behind it). A
# chunked body announces no length, so it could pass any limit: it gets 411, and every client
# that sends a whole document (curl, requests, httpx, wrk) sends its length anyway.
BODY_LIMIT = """\
    acl big req.hdr_val(content-length) gt {bytes}
    acl chunked req.hdr(transfer-encoding) -m found
    http-request return status 411 content-type text/plain string "send Content-Length" if chunked
    http-request return status 413 content-type text/plain string "over {mb:g} MB: split the rows" if big"""


# A POST to an API route must say application/json (optionally with parameters such as charset):
# not a prefix, which let application/jsonx through. A POST to a GET route is left to the color,
# which answers 405 as its OpenAPI says, not 415.
JSON_ONLY = f"""\
    acl json req.hdr(content-type) -m reg -i ^application/json([[:blank:]]*;.*)?$
    acl get_route path {" ".join(GET_ROUTES)}
    http-request return status 415 content-type text/plain string "send application/json" \
if METH_POST !json !get_route"""


# Access at the front door. A bearer key's SHA-256 finds "<client>:<requests/s>" in the keys map;
# keyless callers get the `open` entry, present only while access is null. Rates are counted per
# client over one second, refused requests included (a client hammering past its limit stays out).
ACCESS = string.Template("""\
    stick-table type string len 64 size 100k expire 10s store http_req_rate(1s)
    acl health path $health
    acl operators path /metrics /metadata
    acl open str($open),map($keys) -m found
    acl keyed var(txn.entry) -m found
    acl limited var(txn.limit) -m int gt 0
    acl over sc_http_req_rate(0),sub(txn.limit) gt 0
    http-request del-header $client_header
    http-request set-var(txn.entry) req.fhdr(authorization),regsub("^[Bb]earer +",""),sha2(256),hex,lower,map($keys)
    http-request set-var(txn.entry) str($open),map($keys) if !keyed
    http-request return status 403 content-type text/plain string "operators only: preview door" if operators !open
    http-request return status 401 content-type text/plain string "send Authorization: Bearer <key>" if !health !keyed
    http-request set-var(txn.client) var(txn.entry),field(1,:)
    http-request set-var(txn.limit) var(txn.entry),field(2,:)
    http-request track-sc0 var(txn.client) if !health
    http-request return status 429 content-type text/plain hdr Retry-After 1 string "over the key's rate" if !health limited over
    http-request set-header $client_header %[var(txn.client)] if keyed""")  # noqa: E501 (HAProxy lines do not wrap)


# The preview door asks for the operator key (its SHA-256, as the front door compares keys), and
# every request sent on to a color carries the key itself in place of the caller's own header
# (HAProxy manual: "http-request set-header" replaces every occurrence of the header).
PREVIEW_KEY = """\
    acl operator_key req.fhdr(authorization),regsub("^[Bb]earer +",""),sha2(256),hex,lower -m str {sha}
    http-request return status 401 content-type text/plain string "send Authorization: Bearer <operator key>" if !operator_key"""  # noqa: E501 (HAProxy lines do not wrap)
ROUTER_KEY = '    http-request set-header Authorization "Bearer {key}"'


class RouterError(PipelineError, RuntimeError):
    """HAProxy's runtime API refused a command or could not be reached."""


def render(
    environment: str,
    router: Router,
    weights: dict[str, int],
    socket_path: Path,
    *,
    keys_map: Path,
    fallback: str | None = None,
    operator_key: str | None = None,
) -> str:
    """The HAProxy configuration for one environment, starting at the given weights and fallback.

    ``keys_map`` is the file of the front door's keys (:func:`access.render_map` writes it);
    ``operator_key`` the environment's (:func:`access.operator_key`), which the preview door asks
    for and the router presents to the colors (the config then holds a secret: owner-only).
    """

    def servers(chosen: dict[str, int], how: str = "check", suffix: str = "") -> str:
        lines = [
            f"    server {c}{suffix} 127.0.0.1:{router.color_port(c)} weight {chosen.get(c, 0)} "
            + how.format(color=c)
            for c in COLORS
        ]
        return "\n".join(lines)

    return CONFIG.format(
        environment=environment,
        socket=socket_path,
        address=router.address,
        port=router.port,
        access=ACCESS.substitute(
            health=" ".join(HEALTH_PATHS), keys=keys_map, open=OPEN, client_header=CLIENT_HEADER
        ),
        client_header=CLIENT_HEADER,
        operator=OPERATOR,
        preview_port=router.preview_port,
        backend=BACKEND,
        preview=PREVIEW,
        header=COLOR_HEADER,
        servers=servers(weights, OBSERVED),
        preview_servers=servers(dict.fromkeys(COLORS, 0)),
        json_only=JSON_ONLY,
        body_limit=BODY_LIMIT.format(bytes=int(router.max_body_mb * 1e6), mb=router.max_body_mb),
        fallback_servers=servers(fallback_weights(fallback), "backup track {color}", FALLBACK),
        preview_key=PREVIEW_KEY.format(sha=hash_key(operator_key)) if operator_key else "",
        router_key=ROUTER_KEY.format(key=operator_key) if operator_key else "",
    )


def fallback_weights(color: str | None) -> dict[str, int]:
    """All failover traffic to ``color``; none anywhere when there is no warm previous color."""
    return {c: 100 if c == color else 0 for c in COLORS}


@dataclass(frozen=True)
class ServerStats:
    """One color's counters as HAProxy reports them (``show stat``)."""

    color: str
    status: str
    weight: int
    requests: int
    errors_5xx: int
    connection_errors: int
    response_errors: int
    retries: int

    @property
    def failures(self) -> int:
        """Failures at this color: what clients saw, and the retries HAProxy hid from them."""
        return self.errors_5xx + self.connection_errors + self.response_errors + self.retries


class RuntimeApi:
    """A small client of HAProxy's admin socket; one command per connection."""

    def __init__(self, socket_path: Path, timeout_s: float = 2.0) -> None:
        self.socket_path = socket_path
        self.timeout_s = timeout_s

    def command(self, line: str) -> str:
        """Send one command and return HAProxy's answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(self.timeout_s)
            try:
                client.connect(str(self.socket_path))
            except OSError as error:
                raise RouterError(f"HAProxy admin socket {self.socket_path} unreachable: {error}") from error
            client.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := client.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def change(self, line: str) -> None:
        """Send a command that answers nothing on success; any answer is HAProxy refusing it."""
        answer = self.command(line).strip()
        if answer:
            raise RouterError(f"HAProxy refused {line!r}: {answer}")

    def set_weights(self, weights: dict[str, int], backend: str = BACKEND) -> None:
        """Apply new weights; the color gaining traffic first, so there is never a moment with none."""
        for color in sorted(weights, key=lambda c: -weights[c]):
            self.change(f"set weight {backend}/{color} {weights[color]}")

    def set_fallback(self, color: str | None) -> None:
        """Name the color the front door fails over to when no weighted color is up (None: none)."""
        weights = {f"{c}{FALLBACK}": weight for c, weight in fallback_weights(color).items()}
        self.set_weights(weights)

    def fallback(self) -> dict[str, int]:
        """Each color's weight as the failover (backup) server: 100 for the warm previous color."""
        return {
            row["svname"].removesuffix(FALLBACK): int(row["weight"] or 0)
            for row in self.rows()
            if row["pxname"] == BACKEND and row["svname"].endswith(FALLBACK)
        }

    def replace_map(self, path: Path, entries: dict[str, str]) -> None:
        """Swap a map's whole content at once: lookups see the old map or the new, never a mix.

        HAProxy builds the new version aside (``prepare map``), then ``commit map`` makes it the
        current one in a single step, so a key present in both is never missing for a request.
        """
        answer = self.command(f"prepare map {path}")
        version = re.search(r"New version created: (\d+)", answer)
        if version is None:
            raise RouterError(f"HAProxy refused to prepare map {path}: {answer.strip()}")
        for key, value in entries.items():
            self.change(f"add map @{version[1]} {path} {key} {value}")
        self.change(f"commit map @{version[1]} {path}")

    def map_entries(self, path: Path) -> dict[str, str]:
        """A map's current content as ``{key: value}`` (``show map``: one ``<id> <key> <value>`` a line)."""
        lines = [line.split() for line in self.command(f"show map {path}").splitlines()]
        return {fields[1]: fields[2] for fields in lines if len(fields) == 3}

    def weights(self, backend: str = BACKEND) -> dict[str, int]:
        """Current weight of each color."""
        return {stat.color: stat.weight for stat in self.stats(backend)}

    def stats(self, backend: str = BACKEND) -> list[ServerStats]:
        """Per-color counters of one backend from ``show stat``."""
        rows = self.rows()
        return [
            ServerStats(
                color=row["svname"],
                status=row["status"],
                weight=int(row["weight"] or 0),
                requests=int(row["stot"] or 0),
                errors_5xx=int(row["hrsp_5xx"] or 0),
                connection_errors=int(row["econ"] or 0),
                response_errors=int(row["eresp"] or 0),
                retries=int(row["wretr"] or 0) + int(row["wredis"] or 0),
            )
            for row in rows
            if row["pxname"] == backend and row["svname"] in COLORS
        ]

    def rows(self) -> list[dict[str, str]]:
        """``show stat`` as one mapping per proxy and server."""
        return list(csv.DictReader(io.StringIO(self.command("show stat").lstrip("# "))))
