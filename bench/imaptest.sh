#!/usr/bin/env bash
# rmail against Dovecot under Dovecot's own load tool, imaptest (issue 16), and imaptest's
# scripted conformance suite (issue 14).
#
#   bench/imaptest.sh [ROUNDS]        # load: ROUNDS (default 3) alternating runs of each mix
#   bench/imaptest.sh --scripted      # scripted suite (test=/opt/imaptest/tests), summary lines
#
# Needs imaptest in /opt/imaptest (../shared/tools/imaptest/build.sh). The reference Dovecot
# (../shared/tools/reference/setup.sh) is measured too when 127.0.0.1:2143 answers; otherwise
# only rmail is run. Environment: IMAPTEST, CLIENTS (20), SECS (20), MSGS (500),
# MBOX (default: every tests/corpus/*.mbox concatenated, a unique Message-ID for each message),
# PYTHON (default: the main checkout's venv), KEEP=1 keeps the scratch dir, ONLY_RMAIL=1 skips
# Dovecot, PYSPY=SECONDS profiles rmail with py-spy during each steady run (needs root/ptrace).
#
# rmail is started as `run.py serve` on a scratch data dir with the default config except the
# ports (IMAP on a free port, every other listener off, API on a free port), data_dir, and
# `[dns] nameserver = "127.0.0.1:1"` so that nothing queries the system resolver. One user,
# alice@example.com / password, bcrypt at the default cost (12).
#
# Each load run gets a fresh mailbox (CREATE before, DELETE after) on both servers, so every
# run starts from an empty box that imaptest fills to MSGS messages and keeps there.
# Mixes: steady = `logout=0` (clients log in once and stay), default = imaptest's default
# (each client logs out and back in every cycle). Runs alternate rmail, Dovecot, rmail, ...
#
# What is counted:
#   commands/s   the sum of imaptest's "Totals:" line (every command of every type, LOGIN
#                included) divided by SECS.
#   errors       imaptest "Error:" lines (protocol violations it detects and failed commands).
#   CPU/command  server CPU (user+system) during the run divided by the commands counted.
#                rmail: the `run.py serve` process (all threads) from /proc/PID/stat, fields
#                utime+stime+cutime+cstime. Dovecot: the whole process tree under the master
#                (imap, imap-login, auth, anvil, log, config, stats...): live processes'
#                utime+stime plus the master's cutime+cstime, which collects the CPU of the
#                imap/imap-login processes that exited during the run (default mix). Postfix
#                is not counted (it does nothing here). imaptest's own CPU is not counted.
# The ratio column is rmail/Dovecot of the medians (commands/s: higher is better for rmail;
# CPU/command: lower is better for rmail).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-/work/main/.venv/bin/python}
[ -x "$PY" ] || PY=$ROOT/.venv/bin/python
IMAPTEST=${IMAPTEST:-/opt/imaptest/bin/imaptest}
TESTS=${IMAPTEST_TESTS:-/opt/imaptest/tests}
CLIENTS=${CLIENTS:-20}
SECS=${SECS:-20}
MSGS=${MSGS:-500}
MODE=load
ROUNDS=3
case "${1:-}" in
    --scripted) MODE=scripted ;;
    "") ;;
    *) ROUNDS=$1 ;;
esac
[ -x "$IMAPTEST" ] || { echo "imaptest.sh: $IMAPTEST missing (bash ../shared/tools/imaptest/build.sh)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/rmail-imaptest.XXXXXX)
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    if [ "${KEEP:-0}" = 1 ]; then echo "scratch kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

if [ -z "${MBOX:-}" ]; then
    # imaptest checks that a Message-ID always comes back with the same ENVELOPE/BODYSTRUCTURE;
    # the corpus reuses <a@b>-style IDs for different messages, so each message gets its own.
    MBOX=$WORK/corpus.mbox
    "$PY" - "$MBOX" "$ROOT"/tests/corpus/*.mbox <<'PY'
import re, sys
out, n = open(sys.argv[1], "w", encoding="latin-1", newline=""), 0
for path in sys.argv[2:]:
    text = open(path, encoding="latin-1", newline="").read().replace("\r\n", "\n")
    for msg in re.split(r"^(?=From )", text, flags=re.M):
        if not msg.startswith("From "):
            continue
        n += 1
        envelope, _, rest = msg.partition("\n")
        head, sep, body = rest.partition("\n\n")
        head = re.sub(r"^Message-ID:.*\n?(?:[ \t].*\n?)*", "", head, flags=re.M | re.I).rstrip("\n")
        head = f"Message-ID: <corpus-{n}@bench.example>\n" + head
        out.write(f"{envelope}\n{head}\n\n{body.rstrip(chr(10))}\n\n")
PY
fi

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
IMAP_PORT=$(free_port)
API_PORT=$(free_port)
cat > "$WORK/rmail.toml" <<TOML
hostname = "bench.example.com"
data_dir = "$WORK/data"
[ports]
smtp = 0
submission = 0
smtps = 0
imap = $IMAP_PORT
imaps = 0
api = $API_PORT
[dns]
nameserver = "127.0.0.1:1"
TOML
USER_NAME=alice@example.com
PASS=password
cd "$ROOT"
"$PY" run.py user add "$USER_NAME" --password "$PASS" --config "$WORK/rmail.toml" >/dev/null
"$PY" run.py serve --config "$WORK/rmail.toml" --log-level WARNING 2>"$WORK/serve.log" &
SERVER_PID=$!

answers() {  # host port: does an IMAP greeting come back?
    "$PY" - "$1" "$2" <<'PY' 2>/dev/null
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2) as s:
    s.settimeout(2)
    sys.exit(0 if s.recv(100).startswith(b"* OK") else 1)
PY
}
for _ in $(seq 150); do answers 127.0.0.1 "$IMAP_PORT" && break; sleep 0.2; done
answers 127.0.0.1 "$IMAP_PORT" || { echo "imaptest.sh: rmail did not start" >&2; cat "$WORK/serve.log" >&2; exit 1; }

SERVERS="rmail"
if [ "${ONLY_RMAIL:-0}" != 1 ] && answers 127.0.0.1 2143; then SERVERS="rmail dovecot"; DOVECOT_MASTER=$(pgrep -o -x dovecot || true); fi
port_of() { if [ "$1" = rmail ]; then echo "$IMAP_PORT"; else echo 2143; fi; }
echo "rmail: pid $SERVER_PID, IMAP 127.0.0.1:$IMAP_PORT; servers: $SERVERS; mbox $MBOX ($(grep -c '^From ' "$MBOX") messages)" >&2

if [ "$MODE" = scripted ]; then
    for server in $SERVERS; do
        # Dovecot: bob, whose mailboxes the load runs do not touch.
        user=$USER_NAME; [ "$server" = dovecot ] && user=bob@example.com
        out=$WORK/scripted-$server.out
        "$IMAPTEST" host=127.0.0.1 port="$(port_of "$server")" user="$user" pass="$PASS" test="$TESTS" >"$out" 2>&1 || true
        echo "== $server (imaptest test=$TESTS)"
        # Failing groups: imaptest names each failing test file ("*** Test NAME command ...").
        grep -E '^\*\*\* Test ' "$out" | sed -E 's/^\*\*\* Test ([^ ]+).*/\1/' | sort | uniq -c | awk '{printf "  failed group: %s (%d failed commands)\n", $2, $1}' || true
        tail -n 3 "$out"
        [ "$server" = rmail ] && cp "$out" /tmp/imaptest-scripted-rmail.out
        [ "$server" = dovecot ] && cp "$out" /tmp/imaptest-scripted-dovecot.out
    done
    exit 0
fi

mailbox() {  # server CREATE|DELETE name
    local server=$1 user=$USER_NAME
    "$PY" - 127.0.0.1 "$(port_of "$server")" "$user" "$PASS" "$2" "$3" <<'PY'
import imaplib, sys
host, port, user, pw, verb, name = sys.argv[1:]
c = imaplib.IMAP4(host, int(port)); c.login(user, pw)
typ, data = getattr(c, verb.lower())(name)
if typ != "OK" and verb == "CREATE":
    sys.exit(f"{verb} {name}: {data}")
c.logout()
PY
}

cpu_ticks() {  # server: cumulative CPU ticks as described above
    if [ "$1" = rmail ]; then
        awk '{print $14 + $15 + $16 + $17}' "/proc/$SERVER_PID/stat"
    else
        "$PY" - "$DOVECOT_MASTER" <<'PY'
import os, sys
root = int(sys.argv[1]); parent = {}; stat = {}
for d in os.listdir("/proc"):
    if not d.isdigit():
        continue
    try:
        raw = open(f"/proc/{d}/stat").read()
    except OSError:
        continue
    f = raw[raw.rindex(")") + 2:].split()   # fields from 3 (state) on
    parent[int(d)] = int(f[1]); stat[int(d)] = [int(x) for x in f[11:15]]  # utime stime cutime cstime
def under(p):
    while p > 1:
        if p == root:
            return True
        p = parent.get(p, 0)
    return False
total = sum(stat[root])
total += sum(s[0] + s[1] for p, s in stat.items() if p != root and under(p))
print(total)
PY
    fi
}

RESULTS=$WORK/results.tsv
: > "$RESULTS"
HZ=$(getconf CLK_TCK)
run=0
for round in $(seq "$ROUNDS"); do
    for mix in steady default; do
        extra=(); [ "$mix" = steady ] && extra=(logout=0)
        for server in $SERVERS; do
            run=$((run + 1))
            box="bench-$mix-$round-$$"
            mailbox "$server" CREATE "$box"
            out=$WORK/load-$server-$mix-$round.out
            c0=$(cpu_ticks "$server")
            if [ -n "${PYSPY:-}" ] && [ "$server" = rmail ] && [ "$mix" = steady ]; then
                # py-spy (all threads, raw collapsed stacks) for PYSPY seconds, 5 s into the run.
                # It costs CPU itself: do not take this run's figures as the baseline.
                (sleep 5; "$(dirname "$PY")/py-spy" record -p "$SERVER_PID" -d "$PYSPY" -f raw --threads \
                    -o "/tmp/imaptest-pyspy-$mix-$round.txt" >/dev/null 2>&1) &
            fi
            "$IMAPTEST" host=127.0.0.1 port="$(port_of "$server")" user="$USER_NAME" pass="$PASS" \
                mbox="$MBOX" box="$box" clients="$CLIENTS" secs="$SECS" msgs="$MSGS" "${extra[@]}" >"$out" 2>&1 || true
            c1=$(cpu_ticks "$server")
            mailbox "$server" DELETE "$box" || true
            cmds=$(awk '/^Totals:/ {t=1; next} t && /^ *[0-9]/ && !/%/ {s=0; for (i=1;i<=NF;i++) s+=$i; print s; exit}' "$out")
            logins=$(awk '/^Totals:/ {t=1; next} t && /^ *[0-9]/ && !/%/ {print $1; exit}' "$out")
            errors=$(grep -c '^Error:' "$out" || true)
            cmds=${cmds:-0}
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$mix" "$server" "$round" "$cmds" "${logins:-0}" "$errors" "$((c1 - c0))" >> "$RESULTS"
            printf 'run %d: %-7s %-8s round %d: %s commands, %s logins, %s errors, %s CPU ticks\n' \
                "$run" "$mix" "$server" "$round" "$cmds" "${logins:-0}" "$errors" "$((c1 - c0))" >&2
            cp "$out" "/tmp/imaptest-load-$server-$mix-$round.out"
        done
    done
done

# Error classes: the message with the client number, tags, UIDs and sequence numbers blanked.
echo
echo "Error classes (all rounds):"
for f in "$WORK"/load-*.out; do
    s=$(basename "$f" .out | cut -d- -f2-3)
    grep '^Error:' "$f" | sed -E 's/^Error: [^ ]+\[[0-9]+\]: //; s/[0-9]+/N/g' | cut -c1-90 | sed "s/^/$s\t/" || true
done | sort | uniq -c | sort -rn | head -20

"$PY" - "$RESULTS" "$SECS" "$HZ" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
secs, hz = float(sys.argv[2]), int(sys.argv[3])
med = {}
print()
print(f"{'mix':8} {'server':8} {'runs':>4} {'cmds/s':>8} {'logins/s':>8} {'errors':>14} {'CPU ms/cmd':>10}   (medians; errors per run)")
for mix in ("steady", "default"):
    for server in ("rmail", "dovecot"):
        rs = [r for r in rows if r[0] == mix and r[1] == server]
        if not rs:
            continue
        cps = statistics.median(int(r[3]) / secs for r in rs)
        lps = statistics.median(int(r[4]) / secs for r in rs)
        cpu = statistics.median(int(r[6]) * 1000 / hz / max(int(r[3]), 1) for r in rs)
        errs = ",".join(r[5] for r in rs)
        med[mix, server] = (cps, lps, cpu)
        print(f"{mix:8} {server:8} {len(rs):>4} {cps:>8.0f} {lps:>8.1f} {errs:>14} {cpu:>10.2f}")
for mix in ("steady", "default"):
    if (mix, "dovecot") in med and (mix, "rmail") in med:
        r, d = med[mix, "rmail"], med[mix, "dovecot"]
        print(f"{mix:8} ratio rmail/Dovecot: commands/s {r[0] / d[0]:.2f}, logins/s "
              f"{(r[1] / d[1]) if d[1] else float('nan'):.2f}, CPU per command {r[2] / d[2]:.1f}x")
PY
