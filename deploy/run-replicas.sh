#!/usr/bin/env bash
# Start N BYOK Dashboard replicas (default 2) on one PostgreSQL behind a private nginx with sticky
# sessions (deploy/nginx.conf), for trying replicas out by hand and for load tests. Ctrl-C (or
# SIGTERM) stops nginx and every replica.
#
#   export DATABASE_URL=postgresql://USER:PASSWORD@HOST/DB    # the same database for every replica
#   export ENCRYPTION_KEY=$(.venv/bin/byok gen-key)             # or ENCRYPTION_KEY_FILE; the same for all
#   deploy/run-replicas.sh        # -> http://127.0.0.1:8080, replicas on 127.0.0.1:8501 and :8502
#   deploy/run-replicas.sh 3      # three replicas
#
# Settings, all optional:
#   BYOK_PROXY_LISTEN   where nginx listens: PORT or HOST:PORT (default 127.0.0.1:8080)
#   BYOK_REPLICA_PORT   first replica's port; replica i listens on 127.0.0.1:(this + i - 1) (default 8501)
#   BYOK_RUN_DIR        nginx.conf, pid, temp files and logs, a data folder per replica (default: a new temp dir)
#   PYTHON              the app's Python (default .venv/bin/python)
#   NGINX               the nginx binary (default nginx on PATH, else /usr/sbin/nginx)
# Every other variable (provider keys and base URLs, BYOK_*, STREAMLIT_*) reaches the replicas as
# it is. Logs: $BYOK_RUN_DIR/replica-I.log, and nginx's access.log (with the replica that answered
# each request) and error.log.
set -euo pipefail
cd "$(dirname "$0")/.."

replicas=${1:-2}
[[ $replicas =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [NUMBER_OF_REPLICAS]" >&2; exit 2; }
listen=${BYOK_PROXY_LISTEN:-127.0.0.1:8080}
first_port=${BYOK_REPLICA_PORT:-8501}
python=${PYTHON:-.venv/bin/python}
nginx=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}

case "${DATABASE_URL:-}" in
  postgresql:* | postgresql+psycopg:* | postgres:*) ;;
  *) echo "Set DATABASE_URL to a PostgreSQL database (postgresql://USER:PASSWORD@HOST/DB): replicas share it." >&2
     exit 2 ;;
esac
if [[ -z ${ENCRYPTION_KEY:-} && -z ${ENCRYPTION_KEY_FILE:-} ]]; then
  echo "Set ENCRYPTION_KEY (or ENCRYPTION_KEY_FILE) to the one master key every replica uses" \
       "(make one with: $python -m byok_core gen-key)." >&2
  exit 2
fi
[[ -x $nginx ]] || { echo "No nginx at '$nginx': apt-get install nginx, or set NGINX." >&2; exit 2; }

run_dir=${BYOK_RUN_DIR:-$(mktemp -d -t byok-replicas.XXXXXX)}
mkdir -p "$run_dir"
run_dir=$(cd "$run_dir" && pwd)

pids=()
stop() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait || true
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

healthy() {  # URL answers /_stcore/health with 200
  "$python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + "/_stcore/health", timeout=1)' \
    "$1" 2>/dev/null
}
wait_healthy() {  # URL PID NAME: poll until it answers, fail when the process is gone or after 60 s
  local deadline=$((SECONDS + 60))
  until healthy "$1"; do
    kill -0 "$2" 2>/dev/null || { echo "$3 exited; see its log in $run_dir" >&2; exit 1; }
    ((SECONDS < deadline)) || { echo "$3 did not answer at $1 within 60 s" >&2; exit 1; }
    sleep 0.2
  done
}

upstreams=()
for i in $(seq 1 "$replicas"); do
  port=$((first_port + i - 1))
  mkdir -p "$run_dir/replica-$i"
  # Migrations take turns (a PostgreSQL advisory lock), so the replicas may start together.
  BYOK_DATA_DIR="$run_dir/replica-$i/data" "$python" -m streamlit run streamlit_app.py \
    --server.port "$port" --server.address 127.0.0.1 --server.headless true \
    >"$run_dir/replica-$i.log" 2>&1 &
  pids+=($!)
  upstreams+=(--upstream "127.0.0.1:$port")
done
for i in $(seq 1 "$replicas"); do
  wait_healthy "http://127.0.0.1:$((first_port + i - 1))" "${pids[i - 1]}" "replica $i"
done

"$python" deploy/nginx_conf.py --listen "$listen" "${upstreams[@]}" >"$run_dir/nginx.conf"
"$nginx" -p "$run_dir/" -c "$run_dir/nginx.conf" 2>>"$run_dir/nginx.stderr.log" &
nginx_pid=$!
pids+=("$nginx_pid")
[[ $listen == *:* ]] && proxy_url="http://$listen" || proxy_url="http://127.0.0.1:$listen"
wait_healthy "$proxy_url" "$nginx_pid" "nginx"

echo "BYOK Dashboard: $replicas replicas behind nginx at $proxy_url (files in $run_dir)."
grep -h "setup code" "$run_dir"/replica-*.log | head -n1 || true
echo "Ctrl-C stops everything."
wait "$nginx_pid"
