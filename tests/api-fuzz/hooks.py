"""Schemathesis hooks for tests/api-fuzz/run: what schemathesis cannot know
about RealLive by itself.

- `viewer_stays_a_viewer`: in the viewer's run, no operation whose
  `x-reallive-role` needs more than a viewer holds (a `view` grant on one
  camera) may answer 2xx.
- `documented_route_is_served`: an operation in the document must be
  routed; the router's fallback ("route not found") means it is not.
- `filter_case`: the run's own user is never the target of
  `PUT`/`DELETE /api/users/{id}` (a new password or a deletion would end
  the run's token, and every later case would only test the 401 path),
  and the first known camera is never deleted (the later cases would
  only find a 404 where its recordings were); the second is there to be.
- `application/sdp`: WHIP and WHEP bodies, sent as the text generated.

- Known values: in many of the generated cases an id, a file or a
  time range is one that exists (the run's cameras, users, recorded files
  and their span), so the cases reach past the 404 of an unknown id: the
  viewer's are asked of the camera they may view, the admin's play back
  and export real recordings. Range headers get real ranges too, and half
  the RTSP sources added point at a closed local port (a recorder that
  fails at once) instead of a random string.

The runner sets REALLIVE_FUZZ_ROLE (`admin` or `viewer`),
REALLIVE_FUZZ_SELF_ID (the token holder's user id), and the known values:
REALLIVE_FUZZ_CAMERAS and REALLIVE_FUZZ_USERS (ids, comma-separated; the
first camera is kept),
REALLIVE_FUZZ_FILES (a JSON list of recording paths) and
REALLIVE_FUZZ_RANGE (`start_ms,end_ms` of the recordings).
"""

import json
import os

from hypothesis import strategies as st

import schemathesis

ROLE = os.environ.get("REALLIVE_FUZZ_ROLE", "admin")
SELF_ID = os.environ.get("REALLIVE_FUZZ_SELF_ID", "")


def _ids(name):
    return [int(i) for i in os.environ.get(name, "").split(",") if i.strip()]


CAMERAS = _ids("REALLIVE_FUZZ_CAMERAS")
USERS = _ids("REALLIVE_FUZZ_USERS")
FILES = json.loads(os.environ.get("REALLIVE_FUZZ_FILES", "[]"))
RANGE = _ids("REALLIVE_FUZZ_RANGE")

# What a viewer with a `view` grant may be answered 2xx for. Everything
# else (`camera:playback`, `camera:control`, `camera:owner`, `operator`,
# `admin`, `stream-key`) must be refused. `admin-or-loopback` (/metrics)
# is open to anyone on loopback, where the fuzzer runs.
VIEWER_MAY = {"public", "user", "camera:view", "admin-or-loopback"}

# Operations documented without `x-reallive-role` are not checked here;
# the runner lists them.
UNMARKED = "unmarked"


def role_of(case):
    raw = case.operation.definition.raw
    return raw.get("x-reallive-role", UNMARKED) if isinstance(raw, dict) else UNMARKED


@schemathesis.check
def viewer_stays_a_viewer(ctx, response, case):
    """In the viewer's run, nothing beyond a viewer's role answers 2xx."""
    if ROLE != "viewer" or not 200 <= response.status_code < 300:
        return None
    role = role_of(case)
    if role != UNMARKED and role not in VIEWER_MAY:
        raise AssertionError(
            f"a viewer got {response.status_code} from {case.operation.label}, "
            f"which needs `{role}`"
        )
    return None


@schemathesis.check
def documented_route_is_served(ctx, response, case):
    """A documented operation never reaches the router's fallback."""
    if response.status_code not in (404, 405):
        return None
    if case.method.upper() != case.operation.method.upper():
        # A probe with a method the path does not document: 405 is right.
        return None
    try:
        message = json.loads(response.content)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return None
    if message in ("route not found", "method not allowed here"):
        raise AssertionError(
            f"{case.operation.label} is documented but not routed: {message}"
        )
    return None


@schemathesis.hook
def filter_case(ctx, case):
    """Keeps the run's own token and the first camera (see the module's
    doc)."""
    method = case.method.upper()
    target = str((case.path_parameters or {}).get("id"))
    if SELF_ID and case.operation.path == "/api/users/{id}" and method in ("PUT", "DELETE"):
        return target != SELF_ID
    if CAMERAS and case.operation.path == "/api/cameras/{id}" and method == "DELETE":
        return target != str(CAMERAS[0])
    return True


@schemathesis.serializer("application/sdp")
def sdp(ctx, value):
    """An SDP offer is text; anything else generated goes as its JSON."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    return json.dumps(value).encode()


def _known_path_parameters(path):
    """Strategies for the path parameters of `path` that name things that
    exist."""
    known = {}
    if CAMERAS and ("{camera}" in path or (
        "{id}" in path and not path.startswith("/api/users/")
    )):
        known["camera" if "{camera}" in path else "id"] = st.sampled_from(CAMERAS)
    if USERS and path.startswith("/api/users/"):
        known["id"] = st.sampled_from(USERS)
    if USERS and "{user_id}" in path:
        known["user_id"] = st.sampled_from(USERS)
    if FILES and "{path}" in path:
        known["path"] = st.sampled_from(FILES)
    return known


def _times():
    """`start` and `end` in Unix ms, in that order, overlapping the
    recordings (the other half of the cases finds the gaps)."""
    lo, hi = RANGE
    return st.integers(lo - 5_000, hi - 1).flatmap(
        lambda start: st.fixed_dictionaries(
            {"start": st.just(start), "end": st.integers(max(start, lo) + 1, hi + 5_000)}
        )
    )


def _known_query(path):
    known = {}
    if CAMERAS and path in ("/api/recordings", "/api/events"):
        known["camera"] = st.sampled_from(CAMERAS)
    strategy = st.fixed_dictionaries(known)
    if len(RANGE) == 2 and path in (
        "/api/recordings",
        "/api/events",
        "/api/cameras/{id}/vod.m3u8",
        "/api/cameras/{id}/export.mp4",
        "/api/cameras/{id}/timeline",
    ):
        strategy = st.tuples(strategy, _times()).map(lambda t: {**t[0], **t[1]})
    elif len(RANGE) == 2 and path == "/api/cameras/{id}/thumbnail.jpg":
        lo, hi = RANGE
        at = st.fixed_dictionaries({"at": st.integers(lo - 5_000, hi + 5_000)})
        strategy = st.tuples(strategy, at).map(lambda t: {**t[0], **t[1]})
    elif not known:
        return None
    return strategy


def _over(generated, known):
    """`known` over a generated dict of parameters. A negative case comes
    wrapped (not a dict) and stays as generated: its point is the value
    that breaks the schema."""
    if generated is not None and not isinstance(generated, dict):
        return generated
    return {**(generated or {}), **known}


def _half_known(strategy, known, known_first=True):
    """`strategy` with `known`'s values over it, or as it is. `known` is a
    dict of strategies, or a strategy of dicts. The known branch comes
    first: Hypothesis leans to the first branch of `one_of`, and without
    the lean a case reaches both a known path id and a known query in
    only a few percent of the draws."""
    if not known:
        return strategy
    if isinstance(known, dict):
        known = st.fixed_dictionaries(known)
    with_known = st.tuples(strategy, known).map(lambda t: _over(*t))
    if known_first:
        return st.one_of(with_known, strategy)
    return st.one_of(strategy, with_known)


@schemathesis.hook
def before_generate_path_parameters(ctx, strategy):
    return _half_known(strategy, _known_path_parameters(ctx.operation.path))


@schemathesis.hook
def before_generate_query(ctx, strategy):
    return _half_known(strategy, _known_query(ctx.operation.path))


RANGES = st.one_of(
    st.builds("bytes={}-{}".format, st.integers(0, 4096), st.integers(0, 1 << 20)),
    st.builds("bytes=-{}".format, st.integers(0, 1 << 20)),
    st.builds("bytes={}-".format, st.integers(0, 1 << 24)),
)


# Nothing listens there: a recorder for it fails at once and backs off.
CLOSED_RTSP = "rtsp://127.0.0.1:9/fuzz"


@schemathesis.hook
def before_generate_body(ctx, strategy):
    if ctx.operation.path == "/api/nvr/cameras" and ctx.operation.method.upper() == "POST":
        return _half_known(strategy, {"url": st.just(CLOSED_RTSP), "sub_url": st.none()})
    return strategy


@schemathesis.hook
def before_generate_headers(ctx, strategy):
    params = ctx.operation.definition.raw.get("parameters", [])
    if not any(p.get("in") == "header" and p.get("name") == "Range" for p in params):
        return strategy
    # The generated headers first: most go without a Range, and get the
    # whole file or a streamed export.
    return _half_known(strategy, {"Range": RANGES}, known_first=False)
