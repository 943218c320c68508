"""elbod_client: a one-file Python client of the elbod REST API (standard library only).

elbod hosts model-based reinforcement-learning agents behind a JSON REST API (see the
"REST API" section of the repository's README.md and api/openapi.yaml). This module wraps every
route, with Python 3.9+ and nothing but the standard library (``http.client``, ``json``)::

    from elbod_client import ElbodClient, ElbodError

    # base_url and token default to $ELBOD_URL (else http://127.0.0.1:8080) and $ELBOD_TOKEN
    client = ElbodClient("http://127.0.0.1:8080", token=None, timeout=60.0)
    client.create_agent("pendulum", observation_dim=3, action_dim=1,
                        action_low=[-2.0], action_high=[2.0],
                        planner={"horizon": 15, "population": 200}, exist_ok=True)

    # stateless: one observation in, one action out
    print(client.act("pendulum", [1.0, 0.0, 0.0]).action)

    # a session per running episode: reward is that of the previous action
    with client.open_session("pendulum") as session:
        result = session.act([1.0, 0.0, 0.0])
        result = session.act([0.99, 0.1, 0.2], reward=-0.5)
        print(result.action, result.model_version, result.request_id)
        # the last observation of an episode cut by a time limit: not terminal
        session.act([0.98, 0.2, 0.3], reward=-0.4, truncated=True)

    # how the episode went, for the dashboard's plot of returns
    client.report_episode("pendulum", -152.3, steps=200)
    print(client.list_episodes("pendulum")["total"])

    try:
        client.get_agent("nope")
    except ElbodError as err:
        print(err.status, err.code, err.message, err.field)  # 404 agent_not_found ...

Errors answered by the daemon raise :class:`ElbodError` (``.status``, ``.code``, ``.message``,
``.field``, ``.request_id``); a daemon that cannot be reached, a broken connection or a timeout
raise :class:`ElbodConnectionError` (a subclass of both ``ElbodError`` and the built-in
``ConnectionError``; timeouts are :class:`ElbodTimeoutError`). Connections are kept alive and
reused, one per thread, so a client may be shared by threads.

Gymnasium-style loops
---------------------

:class:`ElbodPolicy` lets a loop of the Gymnasium shape
(``obs, reward, terminated, truncated, info = env.step(action)``) use an elbod agent as its
policy, without importing gym. It opens a session and keeps it for the following episodes,
sends ``terminated`` as the daemon's ``done`` (a terminal state) and ``truncated`` (a time
limit) as its ``truncated`` (the episode stops without a terminal state). Observations may be
lists, tuples or anything with a ``.tolist()`` method (numpy arrays)::

    from elbod_client import ElbodClient, ElbodPolicy, run_episode

    client = ElbodClient("http://127.0.0.1:8080")
    policy = ElbodPolicy(client, "pendulum")

    obs, info = env.reset(seed=0)
    action = policy.reset(obs)
    while action is not None:
        obs, reward, terminated, truncated, info = env.step(action)
        action = policy.step(obs, reward, terminated, truncated)  # None once the episode ended

    # or, the same loop for any env with reset() and step() of the Gymnasium shape:
    stats = run_episode(env, policy, max_steps=200)
    print(stats.episode_return, stats.steps, stats.wall_time_s, stats.model_version)
    policy.close()

``ElbodPolicy(..., action_transform=numpy.asarray)`` hands the environment numpy arrays instead
of lists.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import re
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)

__all__ = [
    "ElbodError",
    "ElbodConnectionError",
    "ElbodTimeoutError",
    "ElbodClient",
    "Session",
    "ActResult",
    "Plan",
    "Episode",
    "Transition",
    "SubmitResult",
    "ElbodPolicy",
    "EpisodeStats",
    "run_episode",
    "parse_metrics",
]

__version__ = "0.1.0"

DEFAULT_URL = "http://127.0.0.1:8080"

JSON = Dict[str, Any]
Vector = Union[Sequence[float], Any]  # a sequence of numbers, or anything with .tolist()
Matrix = Union[Sequence[Sequence[float]], Any]


# ---- errors ---------------------------------------------------------------------------------


class ElbodError(Exception):
    """An error answered by elbod, parsed from its ``{"error": {...}}`` body.

    Attributes:
        status: the HTTP status (e.g. 404, 422); ``None`` for connection problems.
        code: the stable machine-readable code (e.g. ``agent_not_found``, ``invalid_config``).
        message: the human-readable explanation.
        field: the path of the offending request field (e.g. ``planner.elites``), or ``None``.
        request_id: the ``X-Request-Id`` of the response, when there was one.
        retry_after: seconds from the ``Retry-After`` header (429 and 503), or ``None``.
        body: the raw response body (bytes), for answers that were not of the error shape.
    """

    def __init__(
        self,
        status: Optional[int],
        code: str,
        message: str,
        field: Optional[str] = None,
        request_id: Optional[str] = None,
        retry_after: Optional[float] = None,
        body: bytes = b"",
    ) -> None:
        """Builds the error; see the class attributes for the arguments."""
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.request_id = request_id
        self.retry_after = retry_after
        self.body = body
        text = f"{code}: {message}" if status is None else f"{status} {code}: {message}"
        if field:
            text += f" (field {field})"
        super().__init__(text)


class ElbodConnectionError(ElbodError, ConnectionError):
    """elbod could not be reached, or the connection broke before a complete answer.

    ``status`` is ``None`` and ``code`` is ``connection_error`` (or ``timeout`` for
    :class:`ElbodTimeoutError`); ``__cause__`` holds the underlying exception.
    """

    def __init__(self, message: str, code: str = "connection_error") -> None:
        """Builds the error from a message (and a code, ``connection_error`` by default)."""
        ElbodError.__init__(self, None, code, message)


class ElbodTimeoutError(ElbodConnectionError):
    """No complete answer within the client's timeout (the request may still have run)."""

    def __init__(self, message: str) -> None:
        """Builds the error from a message; ``code`` is ``timeout``."""
        ElbodConnectionError.__init__(self, message, code="timeout")


# ---- value conversion -----------------------------------------------------------------------


def _vector(value: Any, name: str) -> List[float]:
    """A list of finite floats from a sequence or an array-like (anything with .tolist())."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (int, float)):
        value = [value]
    try:
        out = [float(v) for v in value]
    except TypeError as exc:
        kind = type(value).__name__
        raise TypeError(f"{name} must be a sequence of numbers, got {kind}") from exc
    for i, v in enumerate(out):
        if not math.isfinite(v):
            raise ValueError(f"{name}[{i}] is not finite ({v}); elbod takes finite numbers only")
    return out


def _matrix(value: Any, name: str) -> List[List[float]]:
    """A list of rows of finite floats from nested sequences or a 2-D array-like."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    return [_vector(row, f"{name}[{i}]") for i, row in enumerate(value)]


def _number(value: Any, name: str) -> float:
    """A finite float from a number (numpy scalars included)."""
    if hasattr(value, "item") and not isinstance(value, (int, float)):
        value = value.item()
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} is not finite ({v}); elbod takes finite numbers only")
    return v


def _jsonable(value: Any) -> Any:
    """Converts array-likes (anything with .tolist()) inside dicts and lists to plain JSON."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (str, bytes, bool, int, float)) or value is None:
        return value
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _put_optional(body: JSON, **fields: Any) -> JSON:
    """Sets each field that is not None into body; returns body."""
    for key, value in fields.items():
        if value is not None:
            body[key] = value
    return body


# ---- results --------------------------------------------------------------------------------


@dataclass
class Plan:
    """The whole plan of a ``POST .../plan`` answer.

    ``actions`` and ``action_std`` are (horizon, action_dim) in action units;
    ``predicted_rewards``/``predicted_reward_std`` (horizon) and ``predicted_observations``/
    ``predicted_observation_std`` (horizon, observation_dim) are the model's predictions after
    each planned action (raw units); ``terms`` the planning objective's terms
    (``expected_return``, ``info_bonus``, ``action_logratio``, ``terminal_value``,
    ``objective``). ``u_mean``/``u_std`` are the same plan in the pre-squash space, when the
    daemon sends them (the form ``Episode.action_mean``/``action_std`` take). Values the daemon
    wrote as ``null`` (non-finite) are ``None``.
    """

    horizon: int
    actions: List[List[Optional[float]]]
    action_std: List[List[Optional[float]]]
    predicted_rewards: List[Optional[float]]
    predicted_reward_std: List[Optional[float]]
    predicted_observations: List[List[Optional[float]]]
    predicted_observation_std: List[List[Optional[float]]]
    terms: Dict[str, Optional[float]]
    u_mean: Optional[List[List[Optional[float]]]] = None
    u_std: Optional[List[List[Optional[float]]]] = None
    raw: JSON = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Plan":
        """Builds a Plan from the ``plan`` object of a response."""
        return cls(
            horizon=int(data.get("horizon", 0)),
            actions=list(data.get("actions", [])),
            action_std=list(data.get("action_std", [])),
            predicted_rewards=list(data.get("predicted_rewards", [])),
            predicted_reward_std=list(data.get("predicted_reward_std", [])),
            predicted_observations=list(data.get("predicted_observations", [])),
            predicted_observation_std=list(data.get("predicted_observation_std", [])),
            terms=dict(data.get("terms", {})),
            u_mean=data.get("u_mean"),
            u_std=data.get("u_std"),
            raw=dict(data),
        )


@dataclass
class ActResult:
    """An action answer (stateless act, session open/act, plan).

    Attributes:
        action: the action to take now (action_dim floats inside the action box).
        model_version: the training step of the parameters used.
        request_id: the response's ``X-Request-Id``.
        mode: ``"plan"`` or ``"policy"`` (``policy`` for the answer to ``done=True``).
        degraded: a ``deadline_ms`` cut planning short.
        iterations: planner refits done (0 in policy mode).
        plan_ms: planning time in milliseconds (``None`` if the daemon wrote null).
        session_id, episode_step, episode_done: sessions only (else ``None``).
        plan: the whole :class:`Plan`, for ``POST .../plan`` only.
        raw: the decoded JSON body.
    """

    action: List[float]
    model_version: int
    request_id: str
    mode: str
    degraded: bool
    iterations: int
    plan_ms: Optional[float]
    session_id: Optional[str] = None
    episode_step: Optional[int] = None
    episode_done: Optional[bool] = None
    plan: Optional[Plan] = None
    raw: JSON = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "ActResult":
        """Builds an ActResult from a decoded action response."""
        plan = data.get("plan")
        return cls(
            action=list(data.get("action", [])),
            model_version=int(data.get("model_version", 0)),
            request_id=str(data.get("request_id", "")),
            mode=str(data.get("mode", "")),
            degraded=bool(data.get("degraded", False)),
            iterations=int(data.get("iterations", 0)),
            plan_ms=data.get("plan_ms"),
            session_id=data.get("session_id"),
            episode_step=data.get("episode_step"),
            episode_done=data.get("episode_done"),
            plan=Plan.from_json(plan) if isinstance(plan, Mapping) else None,
            raw=dict(data),
        )


@dataclass
class SubmitResult:
    """The answer to a transitions submission.

    Attributes:
        accepted: transitions newly stored and fed to the agent.
        duplicates: entries skipped because their ``id`` was accepted before.
        episodes: entries in the request (duplicates included).
    """

    accepted: int
    duplicates: int
    episodes: int


@dataclass
class Episode:
    """One episode for :meth:`ElbodClient.submit_episodes`, in the Gym convention.

    For ``obs_0 = reset()`` then ``obs_{t+1}, r_t, terminated, truncated = step(a_t)``:
    ``observations`` holds T+1 rows (obs_0..obs_T), ``actions`` T rows, ``rewards`` T numbers
    (``rewards[t]`` the reward of ``actions[t]``); ``done`` is True when obs_T is terminal.
    ``id`` (at most 128 characters, unique per agent) makes a retry idempotent. ``action_mean``
    and ``action_std`` (together, T rows each) are the planner's distribution over the
    pre-squash action. Rows may be numpy arrays.
    """

    observations: Matrix
    actions: Matrix
    rewards: Vector
    done: bool = False
    id: Optional[str] = None
    action_mean: Optional[Matrix] = None
    action_std: Optional[Matrix] = None

    def to_json(self) -> JSON:
        """The JSON object of this episode, as the daemon takes it."""
        body: JSON = {
            "observations": _matrix(self.observations, "observations"),
            "actions": _matrix(self.actions, "actions"),
            "rewards": _vector(self.rewards, "rewards"),
            "done": bool(self.done),
        }
        if self.id is not None:
            body["id"] = str(self.id)
        if self.action_mean is not None:
            body["action_mean"] = _matrix(self.action_mean, "action_mean")
        if self.action_std is not None:
            body["action_std"] = _matrix(self.action_std, "action_std")
        return body


@dataclass
class Transition:
    """One flat transition for :meth:`ElbodClient.submit_transitions`.

    Stored by the daemon as a one-step episode (prefer :class:`Episode` for whole episodes).
    ``done`` marks ``next_observation`` terminal; ``id`` makes a retry idempotent.
    """

    observation: Vector
    action: Vector
    reward: float
    next_observation: Vector
    done: bool = False
    id: Optional[str] = None

    def to_json(self) -> JSON:
        """The JSON object of this transition, as the daemon takes it."""
        body: JSON = {
            "observation": _vector(self.observation, "observation"),
            "action": _vector(self.action, "action"),
            "reward": _number(self.reward, "reward"),
            "next_observation": _vector(self.next_observation, "next_observation"),
            "done": bool(self.done),
        }
        if self.id is not None:
            body["id"] = str(self.id)
        return body


# ---- metrics --------------------------------------------------------------------------------

_METRIC_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> Dict[str, List[Tuple[Dict[str, str], float]]]:
    """Parses Prometheus text (as :meth:`ElbodClient.metrics` returns) into samples.

    Returns ``{metric name: [(labels, value), ...]}``; comment lines are skipped.
    Example: ``parse_metrics(client.metrics())["elbod_up"][0][1] == 1.0``.
    """
    out: Dict[str, List[Tuple[Dict[str, str], float]]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _METRIC_LINE.match(line)
        if not m:
            continue
        labels = {
            k: v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
            for k, v in _LABEL.findall(m.group(3) or "")
        }
        try:
            value = float(m.group(4))
        except ValueError:
            continue
        out.setdefault(m.group(1), []).append((labels, value))
    return out


# ---- the client -----------------------------------------------------------------------------

# Errors that mean a kept-alive connection was closed by the server while idle: a request on
# it is retried once on a fresh connection.
_STALE_ERRORS = (
    http.client.RemoteDisconnected,
    ConnectionResetError,
    BrokenPipeError,
    ConnectionAbortedError,
)


class _Response:
    """A complete HTTP response: status, lower-cased headers and body."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: Dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        """The body decoded as JSON."""
        return json.loads(self.body.decode("utf-8")) if self.body else None


class ElbodClient:
    """A client of one elbod daemon.

    Args:
        base_url: the daemon's address (``https://`` and a path prefix such as
            ``http://host/elbod`` work too); ``None`` (the default) takes ``$ELBOD_URL``, else
            ``http://127.0.0.1:8080``, as elboctl and the robots do.
        token: an API key, sent as ``Authorization: Bearer <token>`` (needed when elbod has a
            keys file; see its README, Authentication); ``None`` (the default) takes
            ``$ELBOD_TOKEN``, and ``""`` sends no key even when that is set.
        timeout: seconds to wait for connecting and for each answer (planning with a large
            population or horizon may need more than the default 60).
        retries: how many times a request refused with 503 ``overloaded`` (or
            ``out_of_memory``) is sent again after its ``Retry-After``; a refused request
            changes nothing, so this is safe for every route.
        user_agent: the ``User-Agent`` header.

    Every method raises :class:`ElbodError` for an error answer and
    :class:`ElbodConnectionError` when the daemon cannot be reached. Connections are kept
    alive and reused (one per thread); :meth:`close` (or ``with ElbodClient(...) as c``)
    closes them.
    """

    def __init__(
        self,
        base_url: Optional[str] = None,
        token: Optional[str] = None,
        timeout: float = 60.0,
        retries: int = 2,
        user_agent: str = f"elbod-python/{__version__}",
    ) -> None:
        """Sets up the client; no connection is made until the first request."""
        if base_url is None:
            base_url = os.environ.get("ELBOD_URL") or DEFAULT_URL
        if token is None:
            token = os.environ.get("ELBOD_TOKEN") or None
        parsed = urllib.parse.urlsplit(base_url if "://" in base_url else "http://" + base_url)
        if parsed.scheme not in ("http", "https"):
            raise ValueError(f"base_url must be http:// or https://, got {base_url!r}")
        if not parsed.hostname:
            raise ValueError(f"base_url has no host: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.user_agent = user_agent
        self._scheme = parsed.scheme
        self._host = parsed.hostname
        self._port = parsed.port or (443 if parsed.scheme == "https" else 80)
        self._prefix = parsed.path.rstrip("/")
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: List[http.client.HTTPConnection] = []

    # ---- plumbing --------------------------------------------------------------------------

    def __enter__(self) -> "ElbodClient":
        """Returns the client itself."""
        return self

    def __exit__(self, *exc: Any) -> None:
        """Closes the kept-alive connections."""
        self.close()

    def __repr__(self) -> str:
        """The client's base URL."""
        return f"ElbodClient({self.base_url!r})"

    def close(self) -> None:
        """Closes every kept-alive connection (the client stays usable: it reconnects)."""
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            try:
                conn.close()
            except Exception:  # closing a broken socket must not raise
                pass
        self._local = threading.local()

    def _connection(self) -> Tuple[http.client.HTTPConnection, bool]:
        """This thread's connection and whether it was used before (so may be stale)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn, True
        cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
        conn = cls(self._host, self._port, timeout=self.timeout)
        self._local.conn = conn
        with self._lock:
            self._conns.append(conn)
        return conn, False

    def _drop_connection(self) -> None:
        """Closes and forgets this thread's connection."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is None:
            return
        with self._lock:
            if conn in self._conns:
                self._conns.remove(conn)
        try:
            conn.close()
        except Exception:
            pass

    def _send_once(
        self,
        method: str,
        path: str,
        body: Optional[bytes],
        headers: Dict[str, str],
        timeout: Optional[float],
    ) -> _Response:
        """One HTTP exchange, reusing this thread's connection (one retry if it was stale)."""
        url = self._prefix + path
        for attempt in (0, 1):
            conn, reused = self._connection()
            try:
                t = self.timeout if timeout is None else float(timeout)
                conn.timeout = t
                if conn.sock is not None:
                    conn.sock.settimeout(t)
                conn.request(method, url, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                hdrs = {k.lower(): v for k, v in resp.getheaders()}
                if resp.will_close:
                    self._drop_connection()
                return _Response(resp.status, hdrs, data)
            except _STALE_ERRORS as exc:
                self._drop_connection()
                if reused and attempt == 0:
                    continue  # the server closed the idle connection: retry on a fresh one
                raise ElbodConnectionError(
                    f"connection to elbod at {self.base_url} broke during {method} {path}: {exc}"
                ) from exc
            except (socket.timeout, TimeoutError) as exc:
                self._drop_connection()
                raise ElbodTimeoutError(
                    f"no answer from elbod at {self.base_url} to {method} {path} within "
                    f"{t:g} s"
                ) from exc
            except (OSError, http.client.HTTPException) as exc:
                self._drop_connection()
                raise ElbodConnectionError(
                    f"cannot reach elbod at {self.base_url} ({method} {path}): {exc}"
                ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _request(
        self,
        method: str,
        path: str,
        json_body: Any = None,
        raw_body: Optional[bytes] = None,
        content_type: Optional[str] = None,
        ok: Sequence[int] = (200,),
        timeout: Optional[float] = None,
    ) -> _Response:
        """Sends a request and returns the response if its status is in ``ok``, else raises."""
        headers = {"Accept": "application/json", "User-Agent": self.user_agent}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        body: Optional[bytes] = raw_body
        if json_body is not None:
            body = json.dumps(json_body, allow_nan=False, separators=(",", ":")).encode("utf-8")
            content_type = "application/json"
        if body is not None and content_type:
            headers["Content-Type"] = content_type
        attempt = 0
        while True:
            resp = self._send_once(method, path, body, headers, timeout)
            if resp.status in ok:
                return resp
            err = self._error(resp)
            if resp.status == 503 and attempt < self.retries and err.code != "starting":
                attempt += 1
                time.sleep(min(1.0 if err.retry_after is None else err.retry_after, 5.0))
                continue
            raise err

    @staticmethod
    def _error(resp: _Response) -> ElbodError:
        """An ElbodError from an error response (of the error shape, or anything else)."""
        retry_after: Optional[float] = None
        if "retry-after" in resp.headers:
            try:
                retry_after = float(resp.headers["retry-after"])
            except ValueError:
                retry_after = None
        request_id = resp.headers.get("x-request-id")
        code, message, fld = f"http_{resp.status}", "", None
        try:
            data = resp.json()
        except (ValueError, UnicodeDecodeError):
            data = None
        if isinstance(data, Mapping) and isinstance(data.get("error"), Mapping):
            e = data["error"]
            code = str(e.get("code") or code)
            message = str(e.get("message") or "")
            fld = e.get("field") or None
        elif isinstance(data, Mapping) and "status" in data:
            code, message = str(data["status"]), f"elbod answered {data['status']!r}"
        else:
            message = resp.body[:200].decode("utf-8", "replace").strip()
        if not message:
            message = http.client.responses.get(resp.status, "error")
        return ElbodError(resp.status, code, message, fld, request_id, retry_after, resp.body)

    @staticmethod
    def _seg(value: str) -> str:
        """One URL path segment, percent-encoded."""
        return urllib.parse.quote(str(value), safe="")

    def _agent_path(self, agent: str, *rest: str) -> str:
        """The path /v1/agents/{agent}/rest..."""
        return "/".join(["/v1/agents", self._seg(agent), *rest]).rstrip("/")

    # ---- daemon ----------------------------------------------------------------------------

    def health(self) -> JSON:
        """``GET /healthz``: liveness, ``{"status": "ok"}`` while the daemon serves HTTP."""
        return self._request("GET", "/healthz").json()

    def ready(self) -> bool:
        """``GET /readyz``: True when the store is open and the agents are loaded (False on 503)."""
        resp = self._request("GET", "/readyz", ok=(200, 503))
        return resp.status == 200

    def wait_ready(self, timeout: float = 30.0, interval: float = 0.05) -> None:
        """Polls ``/readyz`` until the daemon is ready; connection errors count as not ready.

        Raises :class:`ElbodTimeoutError` (carrying the last connection error as its cause)
        when the daemon is not ready within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        last: Optional[BaseException] = None
        while True:
            try:
                if self.ready():
                    return
            except ElbodConnectionError as exc:
                last = exc
            if time.monotonic() >= deadline:
                raise ElbodTimeoutError(
                    f"elbod at {self.base_url} not ready within {timeout:g} s"
                ) from last
            time.sleep(interval)

    def version(self) -> JSON:
        """``GET /v1/version``: ``name``, ``version``, ``api``, ``checkpoint_format``."""
        return self._request("GET", "/v1/version").json()

    def metrics(self) -> str:
        """``GET /metrics``: the Prometheus text (see :func:`parse_metrics`)."""
        return self._request("GET", "/metrics").body.decode("utf-8")

    # ---- agents ----------------------------------------------------------------------------

    def create_agent(
        self,
        name: str,
        observation_dim: int,
        action_dim: int,
        action_low: Vector,
        action_high: Vector,
        model: Optional[Mapping[str, Any]] = None,
        planner: Optional[Mapping[str, Any]] = None,
        training: Optional[Mapping[str, Any]] = None,
        exist_ok: bool = False,
    ) -> JSON:
        """``POST /v1/agents``: creates an agent; returns its full specification and status.

        ``model``, ``planner`` and ``training`` are the optional settings sections (see the
        README's "Agent settings"); anything left out takes its default. With
        ``exist_ok=True`` an existing agent of that name (409 ``agent_exists``) is returned
        as it is (its settings are not compared).
        """
        body: JSON = {
            "name": name,
            "observation_dim": int(observation_dim),
            "action_dim": int(action_dim),
            "action_low": _vector(action_low, "action_low"),
            "action_high": _vector(action_high, "action_high"),
        }
        _put_optional(
            body,
            model=_jsonable(model) if model is not None else None,
            planner=_jsonable(planner) if planner is not None else None,
            training=_jsonable(training) if training is not None else None,
        )
        try:
            return self._request("POST", "/v1/agents", json_body=body, ok=(201,)).json()
        except ElbodError as err:
            if exist_ok and err.status == 409 and err.code == "agent_exists":
                return self.get_agent(name)
            raise

    def list_agents(self) -> List[JSON]:
        """``GET /v1/agents``: every agent (specification and status), in name order."""
        return list(self._request("GET", "/v1/agents").json()["agents"])

    def get_agent(self, name: str) -> JSON:
        """``GET /v1/agents/{name}``: one agent's specification, open sessions and status."""
        return self._request("GET", self._agent_path(name)).json()

    def patch_agent(
        self,
        name: str,
        model: Optional[Mapping[str, Any]] = None,
        planner: Optional[Mapping[str, Any]] = None,
        training: Optional[Mapping[str, Any]] = None,
    ) -> JSON:
        """``PATCH /v1/agents/{name}``: changes live settings; returns the new agent object.

        Every ``planner`` and ``training`` key may change, and of ``model`` the training
        weights (``obs_std``, ``lr``, ...); shapes are refused with 422 ``immutable_field``.
        """
        body = _put_optional(
            {},
            model=_jsonable(model) if model is not None else None,
            planner=_jsonable(planner) if planner is not None else None,
            training=_jsonable(training) if training is not None else None,
        )
        return self._request("PATCH", self._agent_path(name), json_body=body).json()

    def delete_agent(self, name: str, missing_ok: bool = False) -> JSON:
        """``DELETE /v1/agents/{name}``: deletes the agent and all its stored data.

        Returns ``{"deleted": name}``; with ``missing_ok=True`` an unknown agent gives
        ``{}`` instead of raising 404 ``agent_not_found``.
        """
        try:
            return self._request("DELETE", self._agent_path(name)).json()
        except ElbodError as err:
            if missing_ok and err.status == 404 and err.code == "agent_not_found":
                return {}
            raise

    # ---- acting ----------------------------------------------------------------------------

    def act(
        self,
        agent: str,
        observation: Vector,
        mode: Optional[str] = None,
        explore: Optional[bool] = None,
        deadline_ms: Optional[float] = None,
        timeout: Optional[float] = None,
    ) -> ActResult:
        """``POST /v1/agents/{agent}/act``: a stateless action (fresh filter state, no record).

        ``mode`` is ``"plan"`` (the default: run the planner) or ``"policy"`` (the learned
        action prior alone, fast); ``explore`` samples instead of taking the mean;
        ``deadline_ms`` bounds planning. ``timeout`` overrides the client's for this call.
        """
        body: JSON = {"observation": _vector(observation, "observation")}
        _put_optional(body, mode=mode, explore=explore, deadline_ms=deadline_ms)
        resp = self._request(
            "POST", self._agent_path(agent, "act"), json_body=body, timeout=timeout
        )
        return ActResult.from_json(resp.json())

    def plan(
        self,
        agent: str,
        observation: Optional[Vector] = None,
        session_id: Optional[str] = None,
        explore: Optional[bool] = None,
        deadline_ms: Optional[float] = None,
        timeout: Optional[float] = None,
    ) -> ActResult:
        """``POST /v1/agents/{agent}/plan``: an action with the whole plan (``result.plan``).

        Without ``session_id`` it plans from a fresh filter state on ``observation``
        (required then). With ``session_id`` it plans from that session's state without
        changing it; an ``observation``, if given, is filtered in as the next one (reward 0).
        """
        body: JSON = {}
        if observation is not None:
            body["observation"] = _vector(observation, "observation")
        _put_optional(body, session_id=session_id, explore=explore, deadline_ms=deadline_ms)
        resp = self._request(
            "POST", self._agent_path(agent, "plan"), json_body=body, timeout=timeout
        )
        return ActResult.from_json(resp.json())

    # ---- sessions --------------------------------------------------------------------------

    def open_session(
        self,
        agent: str,
        observation: Optional[Vector] = None,
        mode: Optional[str] = None,
        explore: Optional[bool] = None,
        deadline_ms: Optional[float] = None,
        record: Optional[bool] = None,
        timeout: Optional[float] = None,
    ) -> "Session":
        """``POST /v1/agents/{agent}/sessions``: opens a session (one per running episode).

        With ``observation`` the session's first action comes back too (``session.first``,
        an :class:`ActResult`), in the same round trip unless ``record=False`` (the open
        request cannot leave its step unrecorded, so that takes a second call). ``mode``,
        ``explore``, ``deadline_ms`` and ``record`` become the session's defaults for
        :meth:`Session.act`.
        """
        body: JSON = {}
        # The open request has no `record` field: an unrecorded first step is a separate act.
        act_now = observation is not None and record is not False
        if act_now:
            body["observation"] = _vector(observation, "observation")
            _put_optional(body, mode=mode, explore=explore, deadline_ms=deadline_ms)
        resp = self._request(
            "POST",
            self._agent_path(agent, "sessions"),
            json_body=body if body else None,
            ok=(201,),
            timeout=timeout,
        )
        data = resp.json()
        first = ActResult.from_json(data) if "action" in data else None
        session = Session(
            self,
            agent,
            str(data["session_id"]),
            model_version=int(data.get("model_version", 0)),
            first=first,
            mode=mode,
            explore=explore,
            deadline_ms=deadline_ms,
            record=record,
        )
        if observation is not None and not act_now:
            session.first = session.act(observation, timeout=timeout)
        return session

    def session_act(
        self,
        agent: str,
        session_id: str,
        observation: Vector,
        reward: float = 0.0,
        done: bool = False,
        record: Optional[bool] = None,
        mode: Optional[str] = None,
        explore: Optional[bool] = None,
        deadline_ms: Optional[float] = None,
        timeout: Optional[float] = None,
        truncated: bool = False,
    ) -> ActResult:
        """``POST /v1/agents/{agent}/sessions/{id}/act``: observation, reward, done in.

        ``reward`` is the reward of the previous action (ignored on an episode's first call);
        ``done=True`` marks this observation terminal (Gym's ``terminated``) and the next call
        starts a new episode; ``truncated=True`` says the episode stops at this observation
        without a terminal state (Gym's ``truncated``, e.g. a time limit): it is recorded with
        its reward but without an action and not as terminal, and the next call starts a new
        episode too. Either way the answer carries the action prior's action (``mode``
        ``"policy"``, ``episode_done`` True), which may be ignored. ``record=False`` acts
        without recording (evaluation).
        """
        body: JSON = {
            "observation": _vector(observation, "observation"),
            "reward": _number(reward, "reward"),
            "done": bool(done),
        }
        if truncated:
            body["truncated"] = True
        _put_optional(body, record=record, mode=mode, explore=explore, deadline_ms=deadline_ms)
        path = self._agent_path(agent, "sessions", self._seg(session_id), "act")
        resp = self._request("POST", path, json_body=body, timeout=timeout)
        return ActResult.from_json(resp.json())

    def close_session(self, agent: str, session_id: str) -> JSON:
        """``DELETE /v1/agents/{agent}/sessions/{id}``: closes a session (``{"closed": id}``).

        Its current episode ends in replay without being marked terminal.
        """
        path = self._agent_path(agent, "sessions", self._seg(session_id))
        return self._request("DELETE", path).json()

    # ---- experience ------------------------------------------------------------------------

    def submit_episodes(
        self, agent: str, episodes: Iterable[Union[Episode, Mapping[str, Any]]]
    ) -> SubmitResult:
        """``POST /v1/agents/{agent}/transitions`` with whole ``episodes``.

        Each entry is an :class:`Episode` or a dict of the same fields. An entry whose ``id``
        was accepted before is skipped and counted in ``duplicates``, so resubmitting after a
        timeout is safe.
        """
        items = [e.to_json() if isinstance(e, Episode) else _jsonable(e) for e in episodes]
        resp = self._request(
            "POST", self._agent_path(agent, "transitions"), json_body={"episodes": items}
        )
        return self._submitted(resp.json())

    def submit_transitions(
        self, agent: str, transitions: Iterable[Union[Transition, Mapping[str, Any]]]
    ) -> SubmitResult:
        """``POST /v1/agents/{agent}/transitions`` with flat ``transitions``.

        Each entry is a :class:`Transition` or a dict of the same fields; each is stored as a
        one-step episode. ``id`` makes retries idempotent as for episodes.
        """
        items = [t.to_json() if isinstance(t, Transition) else _jsonable(t) for t in transitions]
        resp = self._request(
            "POST", self._agent_path(agent, "transitions"), json_body={"transitions": items}
        )
        return self._submitted(resp.json())

    @staticmethod
    def _submitted(data: Mapping[str, Any]) -> SubmitResult:
        """A SubmitResult from the decoded answer."""
        return SubmitResult(
            accepted=int(data["accepted"]),
            duplicates=int(data["duplicates"]),
            episodes=int(data["episodes"]),
        )

    # ---- training --------------------------------------------------------------------------

    def training_status(self, agent: str) -> JSON:
        """``GET /v1/agents/{agent}/training``: step, replay sizes, speed, ELBO terms..."""
        return self._request("GET", self._agent_path(agent, "training")).json()

    def pause_training(self, agent: str) -> JSON:
        """``POST .../training {"action":"pause"}``: stops gradient steps; returns the status."""
        return self._request(
            "POST", self._agent_path(agent, "training"), json_body={"action": "pause"}
        ).json()

    def resume_training(self, agent: str) -> JSON:
        """``POST .../training {"action":"resume"}``: resumes training; returns the status."""
        return self._request(
            "POST", self._agent_path(agent, "training"), json_body={"action": "resume"}
        ).json()

    # ---- episode returns -------------------------------------------------------------------

    def report_episode(
        self, agent: str, episode_return: float, steps: Optional[int] = None
    ) -> JSON:
        """``POST /v1/agents/{agent}/episodes/report``: says how a finished episode went.

        ``episode_return`` is the episode's return (the sum of its rewards, a finite number),
        ``steps`` its length (0 to 1000000000; left out: 0). The dashboard plots the reports;
        elbod keeps the last 1000 per agent in memory only (lost when the agent is deleted or
        the daemon restarts) and does not train on them. Returns the report as kept:
        ``{"index", "return", "steps", "model_version", "time"}`` (``model_version`` the
        agent's when it arrived, ``time`` Unix seconds).
        """
        body: JSON = {"return": _number(episode_return, "episode_return")}
        if steps is not None:
            body["steps"] = int(steps)
        return self._request(
            "POST", self._agent_path(agent, "episodes", "report"), json_body=body
        ).json()

    def list_episodes(self, agent: str) -> JSON:
        """``GET /v1/agents/{agent}/episodes``: the reported episode returns.

        Returns ``{"episodes": [report, ...], "total": n}``: the last 1000 reports, oldest
        first, each as :meth:`report_episode` returns it (a ``return`` the daemon wrote as
        ``null`` is ``None``), and ``total`` the reports received in all.
        """
        return self._request("GET", self._agent_path(agent, "episodes")).json()

    # ---- checkpoints -----------------------------------------------------------------------

    def export_checkpoint(self, agent: str, timeout: Optional[float] = None) -> bytes:
        """``GET /v1/agents/{agent}/checkpoint``: the learned state as bytes.

        Parameters, value target, Adam moments, normaliser, step and random state; not the
        settings, not the replay.
        """
        resp = self._request("GET", self._agent_path(agent, "checkpoint"), timeout=timeout)
        return resp.body

    def import_checkpoint(
        self, agent: str, data: Union[bytes, bytearray, memoryview], timeout: Optional[float] = None
    ) -> int:
        """``PUT /v1/agents/{agent}/checkpoint``: imports a checkpoint; returns its model version.

        The shapes must match (409 ``checkpoint_mismatch``); a damaged file is 422
        ``invalid_checkpoint`` and leaves the agent as it was.
        """
        resp = self._request(
            "PUT",
            self._agent_path(agent, "checkpoint"),
            raw_body=bytes(data),
            content_type="application/octet-stream",
            timeout=timeout,
        )
        return int(resp.json()["model_version"])


# ---- sessions -------------------------------------------------------------------------------


class Session:
    """An open session of one agent: a running episode whose steps the daemon records.

    Made by :meth:`ElbodClient.open_session`. Attributes: ``id``, ``agent``, ``client``,
    ``first`` (the first action when the session was opened with an observation),
    ``last`` (the latest :class:`ActResult`), ``model_version`` and ``closed``. Usable as a
    context manager that closes the session on exit.
    """

    def __init__(
        self,
        client: ElbodClient,
        agent: str,
        session_id: str,
        model_version: int = 0,
        first: Optional[ActResult] = None,
        mode: Optional[str] = None,
        explore: Optional[bool] = None,
        deadline_ms: Optional[float] = None,
        record: Optional[bool] = None,
    ) -> None:
        """Wraps an open session; the mode/explore/deadline_ms/record given are the defaults."""
        self.client = client
        self.agent = agent
        self.id = session_id
        self.model_version = first.model_version if first else model_version
        self.first = first
        self.last: Optional[ActResult] = first
        self.closed = False
        self.mode = mode
        self.explore = explore
        self.deadline_ms = deadline_ms
        self.record = record

    def __repr__(self) -> str:
        """The agent and session id."""
        state = " closed" if self.closed else ""
        return f"Session({self.agent!r}, {self.id!r}{state})"

    def __enter__(self) -> "Session":
        """Returns the session itself."""
        return self

    def __exit__(self, *exc: Any) -> None:
        """Closes the session (an already closed or expired one is fine)."""
        self.close()

    def act(
        self,
        observation: Vector,
        reward: float = 0.0,
        done: bool = False,
        record: Optional[bool] = None,
        mode: Optional[str] = None,
        explore: Optional[bool] = None,
        deadline_ms: Optional[float] = None,
        timeout: Optional[float] = None,
        truncated: bool = False,
    ) -> ActResult:
        """Sends an observation and the previous action's reward; returns the next action.

        ``done=True`` says this observation ends the episode (terminal); ``truncated=True``
        says the episode stops here without a terminal state (a time limit). The answer then
        carries the action prior's action, which may be ignored, and the next call starts a
        new episode in this session. Options left ``None`` take the session's defaults.
        """
        result = self.client.session_act(
            self.agent,
            self.id,
            observation,
            reward=reward,
            done=done,
            truncated=truncated,
            record=self.record if record is None else record,
            mode=self.mode if mode is None else mode,
            explore=self.explore if explore is None else explore,
            deadline_ms=self.deadline_ms if deadline_ms is None else deadline_ms,
            timeout=timeout,
        )
        self.last = result
        self.model_version = result.model_version
        return result

    def plan(
        self,
        observation: Optional[Vector] = None,
        explore: Optional[bool] = None,
        deadline_ms: Optional[float] = None,
        timeout: Optional[float] = None,
    ) -> ActResult:
        """A whole plan from this session's state, without changing the session."""
        return self.client.plan(
            self.agent,
            observation,
            session_id=self.id,
            explore=self.explore if explore is None else explore,
            deadline_ms=self.deadline_ms if deadline_ms is None else deadline_ms,
            timeout=timeout,
        )

    def close(self, missing_ok: bool = True) -> None:
        """Closes the session; its running episode ends without being terminal.

        With ``missing_ok`` (the default) a session the daemon no longer knows (expired,
        closed, or lost in a restart: 404 ``session_not_found``) counts as closed.
        """
        if self.closed:
            return
        try:
            self.client.close_session(self.agent, self.id)
        except ElbodError as err:
            if not (missing_ok and err.status == 404 and err.code == "session_not_found"):
                raise
        self.closed = True


# ---- the Gymnasium-style adapter ------------------------------------------------------------


class ElbodPolicy:
    """An elbod agent as the policy of a Gymnasium-style loop (gym is not imported).

    ``reset(obs)`` starts an episode and returns the first action; ``step(obs, reward,
    terminated, truncated)`` takes what ``env.step`` returned and gives the next action, or
    ``None`` once the episode is over (``terminated`` or ``truncated``):

    * ``terminated`` is sent as ``done=True``: the observation is recorded as terminal;
    * ``truncated`` (a time limit) is sent as ``truncated=True``: the observation and its
      reward are recorded, without an action and not as terminal.

    Either way the session is kept, and the next ``reset`` starts the next episode in it.

    Args:
        client: the :class:`ElbodClient`.
        agent: the agent's name.
        mode, explore, deadline_ms: acting options of every step (``None``: the daemon's
            defaults, i.e. planning, mean action, no deadline).
        record: False to act without recording (evaluation episodes).
        action_transform: applied to every action before it is returned (e.g.
            ``numpy.asarray``); actions are lists of floats otherwise.
        reopen_expired: when the daemon no longer knows the session (expired, or the daemon
            restarted: 404 ``session_not_found``), open a new one and go on.

    Attributes: ``session`` (the open :class:`Session` or ``None``), ``last_result`` (the
    latest :class:`ActResult`), ``episode_return``, ``episode_steps``, ``episodes`` (episodes
    ended), ``model_version``.
    """

    def __init__(
        self,
        client: ElbodClient,
        agent: str,
        mode: Optional[str] = None,
        explore: Optional[bool] = None,
        deadline_ms: Optional[float] = None,
        record: bool = True,
        action_transform: Optional[Callable[[List[float]], Any]] = None,
        reopen_expired: bool = True,
    ) -> None:
        """Sets up the policy; no request is made until :meth:`reset`."""
        self.client = client
        self.agent = agent
        self.mode = mode
        self.explore = explore
        self.deadline_ms = deadline_ms
        self.record = record
        self.action_transform = action_transform
        self.reopen_expired = reopen_expired
        self.session: Optional[Session] = None
        self.last_result: Optional[ActResult] = None
        self.episode_return = 0.0
        self.episode_steps = 0
        self.episodes = 0
        self._in_episode = False

    def __enter__(self) -> "ElbodPolicy":
        """Returns the policy itself."""
        return self

    def __exit__(self, *exc: Any) -> None:
        """Closes the open session, if any."""
        self.close()

    @property
    def model_version(self) -> int:
        """The model version of the latest action (0 before the first)."""
        return self.last_result.model_version if self.last_result else 0

    @property
    def session_id(self) -> Optional[str]:
        """The id of the open session, or None."""
        return self.session.id if self.session and not self.session.closed else None

    def _out(self, result: ActResult) -> Any:
        """Remembers the result and returns its action, transformed if asked."""
        self.last_result = result
        action = list(result.action)
        return self.action_transform(action) if self.action_transform else action

    def _open(self, observation: Vector) -> ActResult:
        """Opens a session with the first observation and returns its first action."""
        self.session = self.client.open_session(
            self.agent,
            observation,
            mode=self.mode,
            explore=self.explore,
            deadline_ms=self.deadline_ms,
            record=self.record,
        )
        assert self.session.first is not None
        return self.session.first

    def _act(
        self, observation: Vector, reward: float, done: bool, truncated: bool = False
    ) -> ActResult:
        """A session act, reopening an expired session when allowed."""
        assert self.session is not None
        try:
            return self.session.act(observation, reward=reward, done=done, truncated=truncated)
        except ElbodError as err:
            if not (self.reopen_expired and err.status == 404 and err.code == "session_not_found"):
                raise
            self.session.closed = True
            if done or truncated:  # nothing to continue: the episode ends here either way
                self.session = None
                return ActResult([], self.model_version, err.request_id or "", "policy",
                                 False, 0, 0.0, episode_done=True)
            return self._open(observation)

    def reset(self, observation: Vector) -> Any:
        """Starts an episode at ``observation`` (from ``env.reset()``); returns the first action.

        An episode still running (neither terminated nor truncated) is ended first, as if
        truncated, but without its last reward.
        """
        if self._in_episode:
            self.end_episode()
        self.episode_return = 0.0
        self.episode_steps = 0
        self._in_episode = True
        if self.session is None or self.session.closed:
            return self._out(self._open(observation))
        # The session of an ended episode goes on: this call starts its next episode.
        return self._out(self._act(observation, 0.0, False))

    def step(
        self,
        observation: Vector,
        reward: float,
        terminated: bool = False,
        truncated: bool = False,
    ) -> Optional[Any]:
        """Feeds ``env.step``'s ``obs, reward, terminated, truncated``; returns the next action.

        Returns ``None`` when the episode ended (``terminated`` or ``truncated``): call
        :meth:`reset` with the environment's next first observation.
        """
        if not self._in_episode:
            raise RuntimeError("ElbodPolicy.step() before reset(): start an episode first")
        reward = _number(reward, "reward")
        self.episode_return += reward
        self.episode_steps += 1
        if terminated or truncated:
            # The last observation and reward: terminal (done) or cut by a time limit
            # (truncated; terminated wins when both are set). The session goes on.
            self.last_result = self._act(observation, reward, terminated, not terminated)
            self._finish()
            return None
        return self._out(self._act(observation, reward, False))

    def end_episode(self) -> None:
        """Ends a running episode without a terminal state (closes the session)."""
        if self._in_episode:
            self._close_session()
            self._finish()

    def close(self) -> None:
        """Ends any running episode and closes the session."""
        self.end_episode()
        self._close_session()

    def _finish(self) -> None:
        """Marks the episode as ended."""
        self._in_episode = False
        self.episodes += 1

    def _close_session(self) -> None:
        """Closes and forgets the session, if one is open."""
        if self.session is not None:
            try:
                self.session.close()
            finally:
                self.session = None


@dataclass
class EpisodeStats:
    """What :func:`run_episode` returns.

    Attributes: ``episode_return`` (sum of rewards), ``steps``, ``terminated``, ``truncated``
    (True also when ``max_steps`` cut the episode), ``wall_time_s``, ``model_version`` (of the
    last action), ``session_id`` (the session that ran the episode).
    """

    episode_return: float
    steps: int
    terminated: bool
    truncated: bool
    wall_time_s: float
    model_version: int
    session_id: Optional[str] = None


def _reset_env(env: Any, seed: Optional[int]) -> Any:
    """env.reset(), returning the observation (Gymnasium's (obs, info) or old gym's obs)."""
    out = env.reset(seed=seed) if seed is not None else env.reset()
    if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], Mapping):
        return out[0]
    return out


def _step_env(env: Any, action: Any) -> Tuple[Any, float, bool, bool]:
    """env.step(action) as (obs, reward, terminated, truncated), for 5- or 4-tuple envs."""
    out = env.step(action)
    if len(out) == 5:
        obs, reward, terminated, truncated, _info = out
        return obs, reward, bool(terminated), bool(truncated)
    obs, reward, done, info = out  # old gym: done, with TimeLimit.truncated in info
    truncated = bool(isinstance(info, Mapping) and info.get("TimeLimit.truncated", False))
    return obs, reward, bool(done) and not truncated, truncated


def run_episode(
    env: Any,
    policy: ElbodPolicy,
    max_steps: Optional[int] = None,
    seed: Optional[int] = None,
) -> EpisodeStats:
    """Runs one episode of ``env`` with ``policy``; returns its :class:`EpisodeStats`.

    ``env`` is any object with ``reset()`` and ``step(action)`` of the Gymnasium shape
    (``reset() -> (obs, info)``, ``step() -> (obs, reward, terminated, truncated, info)``;
    the older ``reset() -> obs`` and 4-tuple ``step`` are understood too). ``max_steps``
    ends the episode as truncated after that many steps; ``seed`` is passed to ``reset``.
    """
    start = time.monotonic()
    obs = _reset_env(env, seed)
    action = policy.reset(obs)
    session_id = policy.session_id
    steps = 0
    terminated = truncated = False
    total = 0.0
    while True:
        obs, reward, terminated, truncated = _step_env(env, action)
        steps += 1
        total += float(reward)
        if max_steps is not None and steps >= max_steps and not terminated:
            truncated = True
        action = policy.step(obs, reward, terminated, truncated)
        if terminated or truncated:
            break
    return EpisodeStats(
        episode_return=total,
        steps=steps,
        terminated=terminated,
        truncated=truncated,
        wall_time_s=time.monotonic() - start,
        model_version=policy.model_version,
        session_id=session_id,
    )
