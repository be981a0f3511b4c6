#!/bin/sh
# Runs e2e/live.mjs against e2e/mock-server.mjs inside a new network namespace
# whose only network is a veth pair made here (10.213.0.1 <-> 10.213.0.2, with
# a default route so Chromium gathers ICE candidates). Nothing leaves it.
# Needs root (or user namespaces) for `unshare -n`, and a built dist/.
set -eu
cd "$(dirname "$0")/.."
[ -f dist/index.html ] || { echo "run npm run build first" >&2; exit 2; }
exec unshare -n sh -eu -c '
  ip link set lo up
  ip link add rl0 type veth peer name rl1
  ip addr add 10.213.0.1/24 dev rl0
  ip addr add 10.213.0.2/24 dev rl1
  ip link set rl0 up
  ip link set rl1 up
  ip route add default via 10.213.0.2 dev rl0
  MOCK_ICE_ADDR=10.213.0.1 exec node e2e/mock-server.mjs --run-e2e
'
