"""API fuzzing (issue #16): schemathesis over every operation of
proto/openapi.yaml, against the real programs.

For reallive-server, then reallive-nvr (recording a fake RTSP camera so
that playback has files to serve):

1. start it on 127.0.0.1 with a fresh data dir and a known first admin
   password;
2. sign in as the admin, and through the admin API make a viewer, a
   camera (the NVR's comes from its config) with a `view` grant for the
   viewer, a spare user and a spare camera;
3. run schemathesis over every operation the program serves, with the
   viewer's token, then (after step 4) the admin's, whose run changes and
   deletes what the others use: at least API_FUZZ_EXAMPLES examples
   per operation (examples, coverage and fuzzing phases), checking
   not_a_server_error, status_code_conformance, content_type_conformance
   and response_schema_conformance, plus the hooks' checks
   (tests/api-fuzz/hooks.py): in the viewer's run no operation beyond a
   viewer's `x-reallive-role` answers 2xx, and no documented operation
   falls through to the router's "route not found". Many generated ids,
   files and times are ones that exist (see the hooks), so the cases get
   past "not found";
4. `POST /api/auth/logout` and `logout-all` alone, with the spare user's
   token: they revoke the token they are called with (or all of the
   user's), so in a shared run every later case would be a 401;
5. stop the program (SIGTERM): it must exit 0, and its log must hold no
   panic.

Operations left out of the runs, and why: reallive-server does not serve
the `nvr` and `recordings` tags (the document says so); logout runs on its
own (above); PUT and DELETE of the run's own user, and DELETE of the
first camera, are filtered out by the hooks (a new password or a deletion
revokes the token under test; without the camera, every later case about
it is a 404).
Changing one's own password needs the current one, which the fuzzer never
has, so it stays in.
"""

import json
import concurrent.futures
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "tests" / "api-fuzz"
SPEC = ROOT / "proto" / "openapi.yaml"
VENV = Path(os.environ.get("REALLIVE_TOOLS_VENV", ROOT / ".venv-tools"))
ST = VENV / "bin" / "st"
BIN = Path(os.environ.get("REALLIVE_BIN_DIR", ROOT / "target" / "debug"))
OUT = ROOT / "target" / "api-fuzz"
EXAMPLES = int(os.environ.get("API_FUZZ_EXAMPLES", "100"))
# One worker: Debian 12's Python 3.11.2 has a race in `ast.parse` across
# threads (CPython gh-106905, fixed in 3.11.5) that hypothesis hits with two
# ("AST constructor recursion depth mismatch"); the server is the
# bottleneck on 2 cores anyway.
WORKERS = os.environ.get("API_FUZZ_WORKERS", "1")
SEED = os.environ.get("API_FUZZ_SEED")
ONLY = os.environ.get("API_FUZZ_ONLY")
# The programs' log level (their logs are in target/api-fuzz/).
RUST_LOG = os.environ.get("API_FUZZ_RUST_LOG", "warn")
# One schemathesis run may take this long before it counts as hung.
RUN_TIMEOUT = int(os.environ.get("API_FUZZ_RUN_TIMEOUT", "600"))

ADMIN_PW = "fuzz-admin-password-1"
VIEWER_PW = "fuzz-viewer-password-1"
SPARE_PW = "fuzz-spare-password-1"

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        # tests/api-fuzz/hooks.py
        "viewer_stays_a_viewer",
        "documented_route_is_served",
    ]
)

NVR_ONLY_TAGS = ("nvr", "recordings", "review", "exports")


def say(msg):
    print(f"api-fuzz: {msg}", flush=True)


class Program:
    """A child process whose stderr goes to a log file, watched for lines."""

    def __init__(self, name, argv, env, log_path, stdin=subprocess.DEVNULL):
        self.name = name
        self.log_path = log_path
        self.lines = []
        self.cond = threading.Condition()
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(
            [str(a) for a in argv],
            env={**os.environ, "RUST_BACKTRACE": "1", **env},
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.log.write(line)
            self.log.flush()
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_line(self, prefix, timeout=60):
        """The rest of the first line starting with `prefix`."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    if line.startswith(prefix):
                        return line[len(prefix) :]
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise SystemExit(
                        f"api-fuzz: {self.name} never printed {prefix!r}; see {self.log_path}"
                    )
                self.cond.wait(min(left, 0.5))

    def stop(self):
        """SIGTERM, then the exit status (None if it had to be killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


class Api:
    def __init__(self, base, token=None):
        self.base = base
        self.token = token

    def call(self, method, path, body=None, expect=(200, 201, 204)):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, text = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        if status not in expect:
            raise SystemExit(f"api-fuzz: {method} {path}: {status} {text}")
        return json.loads(text) if text else None

    def login(self, username, password):
        r = self.call("POST", "/api/auth/login", {"username": username, "password": password})
        return Api(self.base, r["token"]), r["user"]["id"]


def accounts(base, camera):
    """The admin, a viewer with `view` on `camera` (created if None), a
    spare user and a spare camera: `(admin, viewer, spare, ids)`, each an
    `Api` with its token, `ids` by `admin`, `viewer`, `spare`, `camera`
    and `spare_camera`."""
    admin, admin_id = Api(base).login("admin", ADMIN_PW)
    if camera is None:
        camera = admin.call("POST", "/api/cameras", {"name": "fuzz-camera"})["camera"]["id"]
    spare_camera = admin.call("POST", "/api/cameras", {"name": "fuzz-spare-camera"})
    spare_camera = spare_camera["camera"]["id"]
    users = {}
    for name, pw in (("fuzz-viewer", VIEWER_PW), ("fuzz-spare", SPARE_PW)):
        u = admin.call(
            "POST",
            "/api/users",
            {"username": name, "email": f"{name}@example.org", "password": pw, "role": "viewer"},
        )
        users[name] = u["id"]
    admin.call(
        "POST",
        f"/api/cameras/{camera}/grants",
        {"user_id": users["fuzz-viewer"], "permission": "view"},
    )
    viewer, viewer_id = Api(base).login("fuzz-viewer", VIEWER_PW)
    spare, spare_id = Api(base).login("fuzz-spare", SPARE_PW)
    ids = {
        "admin": admin_id,
        "viewer": viewer_id,
        "spare": spare_id,
        "camera": camera,
        "spare_camera": spare_camera,
    }
    return admin, viewer, spare, ids


def operations(served_by):
    """`(method, path, role)` of every operation `served_by` serves."""
    doc = yaml.safe_load(SPEC.read_text())
    ops = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            tags = op.get("tags", [])
            if served_by == "server" and any(t in NVR_ONLY_TAGS for t in tags):
                continue
            ops.append((method.upper(), path, op.get("x-reallive-role")))
    return ops


def schemathesis(label, base, token, role, self_id, filters, known):
    """One schemathesis run; returns its exit status."""
    report = OUT / f"{label}.xml"
    argv = [
        ST,
        "--config-file",
        HERE / "schemathesis.toml",
        "run",
        SPEC,
        "--url",
        base,
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        CHECKS,
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(EXAMPLES),
        "--workers",
        WORKERS,
        "--request-timeout",
        "30",
        "--report",
        "junit",
        "--report-junit-path",
        report,
        "--no-color",
        *filters,
    ]
    if SEED:
        argv += ["--seed", SEED]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": str(HERE / "hooks.py"),
        "API_FUZZ_OUT": str(OUT),
        # Hypothesis's caches under target/, not a .hypothesis/ in the repo.
        "HYPOTHESIS_STORAGE_DIRECTORY": str(OUT / "hypothesis"),
        "REALLIVE_FUZZ_ROLE": role,
        "REALLIVE_FUZZ_SELF_ID": str(self_id),
        **known,
    }
    say(f"{label}: schemathesis as the {role}")
    started = time.monotonic()
    try:
        rc = subprocess.run(
            [str(a) for a in argv], env=env, cwd=ROOT, timeout=RUN_TIMEOUT
        ).returncode
    except subprocess.TimeoutExpired:
        say(f"{label}: still running after {RUN_TIMEOUT} s: stopped")
        rc = 124
    say(f"{label}: exit {rc} in {time.monotonic() - started:.0f} s (report: {report})")
    return rc


def fuzz_program(name, base, ids, admin, viewer, spare, excluded, known):
    """The viewer's run, logout alone, then the admin's: the admin's run
    changes and deletes the cameras, grants and users the others use."""
    results = {}
    # The event, log and motion-meter streams never end: a client reads
    # them for as long as it likes (apps/nvr/tests/nvr.rs and manage.rs,
    # and http's logs tests follow them and check their refusals). The
    # probe connects to whatever host its URL names, and test traffic stays
    # on loopback: apps/nvr/tests/manage.rs probes real and broken cameras.
    common = [
        "--exclude-path", "/api/events/stream",
        "--exclude-path", "/api/logs/stream",
        "--exclude-path", "/api/cameras/{id}/motion/live",
        "--exclude-path", "/api/nvr/cameras/probe",
    ]
    for tag in excluded:
        common += ["--exclude-tag", tag]
    known = {
        "REALLIVE_FUZZ_CAMERAS": f"{ids['camera']},{ids['spare_camera']}",
        "REALLIVE_FUZZ_USERS": ",".join(str(ids[u]) for u in ("viewer", "spare", "admin")),
        **known,
    }
    results[f"{name}-viewer"] = schemathesis(
        f"{name}-viewer",
        base,
        viewer.token,
        "viewer",
        ids["viewer"],
        common + ["--exclude-operation-id", "logout", "--exclude-operation-id", "logout_all"],
        known,
    )
    results[f"{name}-logout"] = schemathesis(
        f"{name}-logout",
        base,
        spare.token,
        "viewer",
        ids["spare"],
        ["--include-operation-id", "logout", "--include-operation-id", "logout_all"],
        known,
    )
    results[f"{name}-admin"] = schemathesis(
        f"{name}-admin",
        base,
        admin.token,
        "admin",
        ids["admin"],
        common + ["--exclude-operation-id", "logout", "--exclude-operation-id", "logout_all"],
        known,
    )
    return results


def recorded(admin, camera):
    """Waits for a few seconds of recordings of `camera`; their files and
    span, for the hooks."""
    deadline = time.monotonic() + 30
    while True:
        recs = admin.call("GET", f"/api/recordings?camera={camera}")
        if recs and recs[-1]["end_ms"] - recs[0]["start_ms"] >= 3000:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"api-fuzz: the NVR recorded too little in 30 s: {recs}")
        time.sleep(0.5)
    req = urllib.request.Request(
        f"{admin.base}/api/cameras/{camera}/vod.m3u8",
        headers={"Authorization": f"Bearer {admin.token}"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        playlist = r.read().decode()
    files = sorted(set(re.findall(r"/files/([^?\"\s]+)", playlist)))
    return {
        "REALLIVE_FUZZ_FILES": json.dumps(files),
        "REALLIVE_FUZZ_RANGE": f"{recs[0]['start_ms']},{recs[-1]['end_ms']}",
    }


def stopped_cleanly(program):
    rc = program.stop()
    log = Path(program.log_path).read_text(errors="replace")
    ok = rc == 0 and "panicked" not in log
    if not ok:
        say(f"{program.name}: exit {rc}; panic in the log: {'panicked' in log} ({program.log_path})")
        # The log stays on the machine that ran it: say where it panicked.
        lines = log.splitlines()
        for i, line in enumerate(lines):
            if "panicked" in line:
                for shown in lines[max(0, i - 5) : i + 15]:
                    say(f"  | {shown}")
    return ok


def run_server(work):
    data = work / "server"
    srv = Program(
        "reallive-server",
        [BIN / "reallive-server", "--data-dir", data, "--listen", "127.0.0.1:0", "--rtc-port", "0"],
        {"REALLIVE_ADMIN_PASSWORD": ADMIN_PW, "RUST_LOG": RUST_LOG},
        OUT / "server.log",
    )
    try:
        base = "http://" + srv.wait_line("reallive-server: listening on http://")
        say(f"reallive-server on {base}")
        admin, viewer, spare, ids = accounts(base, None)
        results = fuzz_program("server", base, ids, admin, viewer, spare, NVR_ONLY_TAGS, {})
    finally:
        clean = stopped_cleanly(srv)
    results["server-exit"] = 0 if clean else 1
    return results


def run_nvr(work):
    camera_bin = BIN / "reallive-fake-camera"
    cam = Program(
        "reallive-fake-camera",
        [
            camera_bin,
            "--width", "320", "--height", "180", "--fps", "10", "--keyframe-interval", "10",
            "--exit-on-stdin-eof",
        ],
        {},
        OUT / "fake-camera.log",
        stdin=subprocess.PIPE,
    )
    url = "rtsp://" + cam.wait_line("rtsp://")
    config = work / "nvr.toml"
    config.write_text(f'[[cameras]]\nname = "front"\nurl = "{url}"\n')
    nvr = Program(
        "reallive-nvr",
        [
            BIN / "reallive-nvr", "--config", config, "--data-dir", work / "nvr",
            "--listen", "127.0.0.1:0", "--rtc-port", "0",
        ],
        {"REALLIVE_ADMIN_PASSWORD": ADMIN_PW, "RUST_LOG": RUST_LOG},
        OUT / "nvr.log",
    )
    try:
        camera = int(nvr.wait_line("reallive-nvr: camera ").split(":")[0])
        base = "http://" + nvr.wait_line("reallive-nvr: listening on http://")
        say(f"reallive-nvr on {base}, recording camera {camera} from {url}")
        admin, viewer, spare, ids = accounts(base, camera)
        known = recorded(admin, camera)
        results = fuzz_program("nvr", base, ids, admin, viewer, spare, (), known)
    finally:
        clean = stopped_cleanly(nvr)
        cam.proc.stdin.close()
        cam.stop()
    results["nvr-exit"] = 0 if clean else 1
    return results


def main():
    for b in ("reallive-server", "reallive-nvr", "reallive-fake-camera"):
        if not (BIN / b).is_file():
            raise SystemExit(f"api-fuzz: no {BIN / b}: run `cargo test --workspace --no-run`")
    OUT.mkdir(parents=True, exist_ok=True)
    unmarked = [f"{m} {p}" for m, p, r in operations("nvr") if r is None]
    say(
        f"{len(operations('server'))} operations on reallive-server, "
        f"{len(operations('nvr'))} on reallive-nvr, {EXAMPLES} examples each"
    )
    if unmarked:
        say("no x-reallive-role (not role-checked): " + ", ".join(unmarked))
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="reallive-api-fuzz-"))
    results = {}
    # The two programs are fuzzed side by side (each schemathesis run is
    # one process waiting on one server): on two cores that halves the
    # wall time, and each keeps its own data directory, port and log.
    runs = [f for name, f in (("server", run_server), ("nvr", run_nvr)) if ONLY in (None, "", name)]
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(runs) or 1) as pool:
            for r in [pool.submit(f, work) for f in runs]:
                results.update(r.result())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    failed = [k for k, rc in results.items() if rc != 0]
    say(f"{len(results)} steps in {time.monotonic() - started:.0f} s; failed: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
