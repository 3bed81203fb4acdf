#!/usr/bin/env bash
# REST API throughput with wrk (a C load generator, so the client does not eat the server's CPU).
#
#   bench/api_bench.sh [DURATION_SECONDS] [CONNECTIONS]
#
# Starts `run.py serve` on a scratch data dir with one user and 200 messages in INBOX, then
# measures requests/s for GET /folders, GET /folders/INBOX/messages?limit=25 and
# GET /folders/INBOX/messages/{uid} with CONNECTIONS concurrent connections (default 10),
# and POST /auth/login separately (bcrypt-bound by design, at the configured cost).
set -euo pipefail

DURATION=${1:-10}
CONNS=${2:-10}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
ROUNDS=${BCRYPT_ROUNDS:-12}
for tool in wrk curl jq; do
    command -v "$tool" >/dev/null || { echo "api_bench: $tool is not installed (apt-get install $tool)" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/rmail-api-bench.XXXXXX)
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$WORK/rmail.toml" <<TOML
hostname = "bench.example.com"
data_dir = "$WORK/data"
bcrypt_rounds = $ROUNDS
[ports]
smtp = 0
submission = 0
smtps = 0
imap = 0
imaps = 0
api = $PORT
TOML
PASS=bench-password
cd "$ROOT"
"$PY" run.py user add alice@example.com --password "$PASS" --config "$WORK/rmail.toml" >/dev/null
"$PY" run.py serve --config "$WORK/rmail.toml" --log-level WARNING 2>"$WORK/serve.log" &
SERVER_PID=$!
BASE="http://127.0.0.1:$PORT"
for _ in $(seq 100); do curl -s -o /dev/null "$BASE/openapi.json" && break; sleep 0.1; done

LOGIN='{"username":"alice","password":"'$PASS'","domain":"example.com"}'
TOKEN=$(curl -s -X POST "$BASE/auth/login" -H "Content-Type: application/json" -d "$LOGIN" | jq -r .token)
[ -n "$TOKEN" ] && [ "$TOKEN" != null ] || { echo "api_bench: login failed" >&2; cat "$WORK/serve.log" >&2; exit 1; }

# 200 realistic messages (headers, a paragraph of text) appended through the API.
for i in $(seq 200); do
    printf 'From: Carol Example <carol@example.org>\r\nTo: alice@example.com\r\nSubject: Benchmark message %d\r\nDate: Mon, 01 Jan 2024 10:00:00 +0000\r\nMessage-ID: <bench-%d@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n' \
        "$i" "$i" "$(printf 'Lorem ipsum dolor sit amet, consectetur adipiscing elit %.0s' $(seq 8))" \
        | curl -s -o /dev/null -X POST "$BASE/folders/INBOX/messages" -H "Authorization: Bearer $TOKEN" \
            -H "Content-Type: message/rfc822" --data-binary @-
done

cat > "$WORK/login.lua" <<LUA
wrk.method = "POST"
wrk.body = '$LOGIN'
wrk.headers["Content-Type"] = "application/json"
LUA

run() {  # name, wrk args...
    local name=$1; shift
    local out cpu0 cpu1 n cpu_us
    cpu0=$(awk '{print $14 + $15}' "/proc/$SERVER_PID/stat")
    out=$(wrk --latency -t2 -c"$CONNS" -d"${DURATION}s" "$@")
    cpu1=$(awk '{print $14 + $15}' "/proc/$SERVER_PID/stat")
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    # Server CPU per request (user+sys clock ticks → µs): unlike req/s, not skewed by other load.
    cpu_us=$(( (cpu1 - cpu0) * 1000000 / $(getconf CLK_TCK) / (n > 0 ? n : 1) ))
    local rps p50 p99 non2xx errors
    rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
    errors=$(awk '/Socket errors/ {print $0}' <<<"$out" | sed 's/^ *Socket errors: //')
    printf '| %-34s | %10s | %8s | %8s | %8s | %s non-2xx %s |\n' "$name" "$rps" "$p50" "$p99" "$cpu_us" "${non2xx:-0}" "${errors:+($errors)}"
}

echo "rmail REST API, $(nproc) CPU(s), load $(cut -d" " -f1 /proc/loadavg), wrk -t2 -c$CONNS -d${DURATION}s, $("$PY" -c 'import aiohttp; print("aiohttp", aiohttp.__version__)')"
echo "| request                            |  req/s     | p50      | p99      | CPU µs/req | errors |"
echo "|------------------------------------|-----------:|---------:|---------:|---------:|--------|"
AUTH="Authorization: Bearer $TOKEN"
run "GET /folders" -H "$AUTH" "$BASE/folders"
run "GET /folders/INBOX/messages (25)" -H "$AUTH" "$BASE/folders/INBOX/messages?offset=0&limit=25"
run "GET /folders/INBOX/messages/100" -H "$AUTH" "$BASE/folders/INBOX/messages/100"
# bcrypt makes each login cost ~0.1-0.5 s of CPU by design; give it a longer window and timeout.
DURATION=$((DURATION * 2)) run "POST /auth/login (bcrypt $ROUNDS)" --timeout 30s -s "$WORK/login.lua" "$BASE/auth/login"
