# RealLive: the two commands a fresh machine needs are `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
DEMO_OUT ?= demo-out

.PHONY: setup ui ui-test build demo demo-file test fmt clippy doc nextest package bench bench-remote fuzz fuzz-ci api-fuzz deb test-deb test-arm64

setup:
	./scripts/setup

# The web UI: dependencies from package-lock.json, then a type-checked build
# into web-ui/dist (which release builds embed).
ui: setup
	cd web-ui && npm ci --no-audit --no-fund && npm run build

ui-test: ui
	cd web-ui && npm test

build: ui
	$(CARGO) build --workspace --release

# The main job on embedded defaults: reallive-server on 127.0.0.1:8080 with
# data in ./data/demo, a demo camera, and reallive-pusher publishing the test
# pattern through the relay. Open the printed URL and log in. Ctrl-C stops it.
demo: ui
	$(CARGO) build --release -p reallive-server -p reallive-pusher
	./scripts/demo

# The pusher alone, no server: 10 s of the test pattern to an MP4, checked
# by ffprobe.
demo-file: setup
	$(CARGO) build --release -p reallive-pusher
	mkdir -p $(DEMO_OUT)
	./target/release/reallive-pusher --source test --output $(DEMO_OUT)/test-pattern.mp4 --seconds 10
	ffprobe -v error -count_frames -select_streams v:0 \
	  -show_entries stream=codec_name,profile,width,height,avg_frame_rate,nb_read_frames,has_b_frames \
	  -show_entries format=duration -of default=noprint_wrappers=1 $(DEMO_OUT)/test-pattern.mp4

test: setup ui-test fmt clippy doc nextest package fuzz-ci api-fuzz test-deb

fmt:
	$(CARGO) fmt --all --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The crates' docs, as a program that links them reads them: no warnings
# (missing docs, broken links).
doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps

nextest:
	$(CARGO) nextest run --workspace

# Every library crate packages for crates.io (in one run, so cargo orders
# them and resolves their path dependencies on each other).
LIB_CRATES := core motion auth signaling relay store encode capture rtsp stream record http node
package:
	$(CARGO) package --no-verify --allow-dirty $(addprefix -p reallive-,$(LIB_CRATES))

# Parser fuzzing (fuzz/README.md): libFuzzer targets for the signaling JSON,
# the fMP4 scanner, SDP offers, the H.264/H.265 parameter sets and the RTSP
# ingest (a scripted camera's bytes through retina and AccessUnits), built on
# stable Rust by fuzz/run (the flags cargo-fuzz would pass, no nightly).
# Each runs for FUZZ_SECONDS with -max_total_time, -print_final_stats=1,
# -rss_limit_mb=2048, -timeout=10 and a -max_len per target; `fuzz` then
# minimises fuzz/corpus again (-merge=1 -use_counters=0; named seeds are
# kept), `fuzz-ci` only reads it. Any crash, panic, timeout or OOM fails the
# target, its input left in fuzz/artifacts/TARGET/.
FUZZ_SECONDS ?= 600
FUZZ_CI_SECONDS ?= 30
fuzz: setup
	CARGO=$(CARGO) ./fuzz/run $(FUZZ_SECONDS)

fuzz-ci: setup
	CARGO=$(CARGO) ./fuzz/run $(FUZZ_CI_SECONDS) --ci

# API fuzzing (tests/api-fuzz/fuzz.py): schemathesis over every operation of
# proto/openapi.yaml against a real reallive-server and reallive-nvr (the
# debug builds), as an admin and as a viewer, 100 examples per operation:
# no 5xx, every status, content type and body as documented, no viewer
# answered 2xx beyond its role. Logs and JUnit reports in target/api-fuzz/.
# The binaries are the ones nextest's build left in target/debug:
# `cargo test --no-run` builds them with the same features (dev-dependencies
# included), so after `make nextest` it compiles nothing, where
# `cargo build --bins` would build the workspace again without them. The
# server and the NVR are fuzzed side by side.
api-fuzz: setup
	$(CARGO) test --workspace --no-run
	./tests/api-fuzz/run

# Debian packages of the four programs (docs/guide/packages.md): a release
# build with the web UI embedded, into target/deb/. DEB_ARCH=arm64 packages
# what scripts/cross-arm64 built instead; all does both.
DEB_ARCH ?= amd64
deb: ui
	./scripts/deb --arch $(DEB_ARCH)

# The amd64 packages installed for real, as root: install, the units'
# checks and sandbox, an upgrade that keeps recordings and edited config,
# and purge (scripts/test-deb). It packages the debug binaries that
# nextest's build left (`cargo test --no-run`: after `make nextest` nothing
# is compiled again).
test-deb: setup
	$(CARGO) test --workspace --no-run
	./scripts/test-deb

# The arm64 build, proven by running it under qemu-user-static
# (scripts/test-arm64): scripts/cross-arm64 installs Debian's rustc-web and
# the arm64 libraries (as root) and builds into target/arm64; then the
# pusher writes 90 frames of constrained baseline, and publishes to an
# amd64 server that a WHEP viewer decodes. About 30 s warm; the first
# (cold) build is in docs/benchmarks.md.
test-arm64: setup
	./scripts/test-arm64

# Figures for docs/benchmarks.md.
bench: setup ui
	$(CARGO) bench -p reallive-capture --bench capture -- --seconds 20
	$(CARGO) bench -p reallive-encode --bench live_transcode -- --seconds 20
	$(CARGO) bench -p reallive-store --bench store
	$(CARGO) bench -p reallive-node --bench api
	$(CARGO) bench -p reallive-relay --bench fanout -- --seconds 10 --n 0,10,50,100,200
	$(CARGO) build --release -p reallive-server -p reallive-pusher
	$(CARGO) bench -p reallive-puller --bench cost -- --seconds 60 --cameras 1,4
	$(CARGO) build --release -p reallive-test-support --bin reallive-fake-camera && $(CARGO) bench -p reallive-nvr --bench nvr -- --seconds 60 --cameras 8,16,32 --backend retina,gstreamer --motion off,default --ffmpeg --long-n 32 --long-seconds 600
	$(CARGO) bench -p reallive-nvr --bench motion -- --seconds 30 --cameras 1,8
	$(CARGO) bench -p reallive-nvr --bench review
	$(CARGO) bench -p reallive-nvr --bench manage
	$(CARGO) bench -p reallive-nvr --bench join
	$(CARGO) build --release -p reallive-server && $(CARGO) bench -p reallive-pusher --bench sync -- --runs 3
	$(MAKE) bench-remote

# The ICE ladder's time to first frame per rung (root: network namespaces).
bench-remote: setup ui
	$(CARGO) build --release -p reallive-server -p reallive-pusher -p reallive-puller
	./scripts/bench-remote target/release 3
