#!/usr/bin/env bash
# The real servers the tests talk to, on 127.0.0.1 (see ../shared/services.md):
# kinesalite 3.3.3 (Kinesis, fast) and kinesis-local 0.6.2 (Kinesis with enhanced
# fan-out and ChildShards) from npm, and moto_server 5.2.5 (S3) from PyPI in a venv.
# Sourced by scripts/test.sh:
#   install_test_servers   installs them into $SLUICE_TEST_SERVERS (a cache folder)
#   start_test_servers     starts them, waits until they answer, and exports
#                          SLUICE_KINESIS_ENDPOINT, SLUICE_KINESIS_MOCK_ENDPOINT and
#                          SLUICE_S3_ENDPOINT;
#                          stop_test_servers stops them.
SLUICE_TEST_SERVERS="${SLUICE_TEST_SERVERS:-$HOME/.cache/sluice-test-servers}"
export SLUICE_TEST_SERVERS
_server_pids=()

install_test_servers() {
  command -v node >/dev/null 2>&1 || {
    if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq nodejs npm; else
      echo "please install Node.js and npm" >&2; return 1; fi
  }
  mkdir -p "$SLUICE_TEST_SERVERS"
  if [ ! -f "$SLUICE_TEST_SERVERS/node_modules/kinesalite/package.json" ]; then
    echo "== installing kinesalite 3.3.3 (npm) into $SLUICE_TEST_SERVERS"
    (cd "$SLUICE_TEST_SERVERS" && npm install --no-audit --no-fund --loglevel=error kinesalite@3.3.3)
  fi
  if [ ! -f "$SLUICE_TEST_SERVERS/node_modules/kinesis-local/package.json" ]; then
    echo "== installing kinesis-local 0.6.2 (npm) into $SLUICE_TEST_SERVERS"
    (cd "$SLUICE_TEST_SERVERS" && npm install --no-audit --no-fund --loglevel=error kinesis-local@0.6.2)
  fi
  if [ ! -x "$SLUICE_TEST_SERVERS/moto-venv/bin/moto_server" ]; then
    echo "== installing moto[server] 5.2.5 (PyPI) into $SLUICE_TEST_SERVERS/moto-venv"
    python3 -m venv "$SLUICE_TEST_SERVERS/moto-venv"
    "$SLUICE_TEST_SERVERS/moto-venv/bin/pip" install -q --disable-pip-version-check "moto[server]==5.2.5"
  fi
}

start_test_servers() {
  local here log port
  here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  log="$(mktemp)"
  node "$here/tests/servers/kinesalite.js" "$SLUICE_TEST_SERVERS/node_modules" 0 $$ >"$log" 2>&1 &
  _server_pids+=($!)
  for _ in $(seq 1 100); do
    port="$(head -n1 "$log" 2>/dev/null || true)"
    if [[ "$port" =~ ^[0-9]+$ ]] && curl -s -o /dev/null "http://127.0.0.1:$port/"; then break; fi
    sleep 0.1
  done
  [[ "$port" =~ ^[0-9]+$ ]] || { echo "kinesalite did not start:" >&2; cat "$log" >&2; return 1; }
  export SLUICE_KINESIS_ENDPOINT="http://127.0.0.1:$port"
  echo "== kinesalite answering on $SLUICE_KINESIS_ENDPOINT"

  local plain tls
  read -r plain tls < <(python3 -c 'import socket
s=[socket.socket() for _ in range(2)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*[x.getsockname()[1] for x in s])')
  KINESIS_MOCK_PLAIN_PORT=$plain KINESIS_MOCK_TLS_PORT=$tls \
    KINESIS_MOCK_CERT_PATH="$SLUICE_TEST_SERVERS/node_modules/kinesis-local/server.json" LOG_LEVEL=WARN \
    CREATE_STREAM_DURATION=50ms DELETE_STREAM_DURATION=50ms SPLIT_SHARD_DURATION=50ms \
    MERGE_SHARDS_DURATION=50ms UPDATE_SHARD_COUNT_DURATION=50ms REGISTER_STREAM_CONSUMER_DURATION=50ms \
    node "$SLUICE_TEST_SERVERS/node_modules/kinesis-local/main.js" >"$log.mock" 2>&1 &
  _server_pids+=($!)
  for _ in $(seq 1 150); do
    curl -s -o /dev/null "http://127.0.0.1:$plain/healthcheck" && break
    sleep 0.1
  done
  curl -s -o /dev/null "http://127.0.0.1:$plain/healthcheck" || { echo "kinesis-local did not start:" >&2; cat "$log.mock" >&2; return 1; }
  export SLUICE_KINESIS_MOCK_ENDPOINT="http://127.0.0.1:$plain"
  echo "== kinesis-local answering on $SLUICE_KINESIS_MOCK_ENDPOINT"

  local s3
  s3="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  "$SLUICE_TEST_SERVERS/moto-venv/bin/moto_server" -H 127.0.0.1 -p "$s3" >"$log.s3" 2>&1 &
  _server_pids+=($!)
  for _ in $(seq 1 150); do
    curl -sf -o /dev/null "http://127.0.0.1:$s3/moto-api/" && break
    sleep 0.1
  done
  curl -sf -o /dev/null "http://127.0.0.1:$s3/moto-api/" || { echo "moto_server did not start:" >&2; cat "$log.s3" >&2; return 1; }
  export SLUICE_S3_ENDPOINT="http://127.0.0.1:$s3"
  echo "== moto_server (S3) answering on $SLUICE_S3_ENDPOINT"
}

stop_test_servers() {
  for pid in "${_server_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
}
