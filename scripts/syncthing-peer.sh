#!/usr/bin/env bash
# The peer benchmark: Syncthing as a store-and-forward node that holds only ciphertext.
#
# Three Syncthing instances on 127.0.0.1, each with its own home and ports: A and B are trusted
# devices that share a folder, and M sits between them as an untrusted "receive encrypted"
# device (A and B share the folder with M under an encryption password, so M stores only
# ciphertext; A and B do not know each other's addresses, so everything goes through M).
# Global and local discovery, relays, NAT traversal, usage and crash reporting are off.
#
# It moves ITEMS (default 1000) small files from A to B, ROUNDS (default 3) times, and
# ONE_ITEM_SAMPLES (default 5) single files; completion is read from B's REST API
# (/rest/db/status), never guessed with sleeps. Prints, on stdout:
#
#   VERSION syncthing v1.19.2 …
#   RESULT items=1000 seconds=S one_item_ms=M      (one line per round)
#
# `cargo run --release -p candor-tests --bin bench` runs it as case 6. It installs the Debian
# package `syncthing` if it is missing, and stops everything it started, also on failure.
set -euo pipefail

ITEMS=${ITEMS:-1000}
ROUNDS=${ROUNDS:-3}
ONE_ITEM_SAMPLES=${ONE_ITEM_SAMPLES:-5}
DEADLINE_SECS=${DEADLINE_SECS:-300}

log() { echo "syncthing-peer: $*" >&2; }

if ! command -v syncthing >/dev/null 2>&1; then
  log "installing the Debian package syncthing"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq syncthing >&2
fi
for tool in curl python3; do
  command -v "$tool" >/dev/null 2>&1 || { log "$tool is needed"; exit 1; }
done

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

KEY="candor-bench-$RANDOM$RANDOM"
PASSWORD="candor-bench-folder-password"
FOLDER=bench

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
now() { date +%s.%N; }

declare -A ID GUI LISTEN
for n in a m b; do
  syncthing generate --home "$WORK/$n" --no-default-folder >/dev/null 2>&1
  ID[$n]=$(syncthing serve --home "$WORK/$n" --device-id)
  GUI[$n]=$(free_port)
  LISTEN[$n]=$(free_port)
  mkdir -p "$WORK/data-$n"
  # Options that must hold from the first start: listen on loopback only, no discovery, relays,
  # NAT traversal, usage or crash reporting, no browser.
  python3 - "$WORK/$n/config.xml" "${LISTEN[$n]}" <<'PY'
import sys, xml.etree.ElementTree as ET
path, port = sys.argv[1], sys.argv[2]
tree = ET.parse(path)
options = tree.getroot().find("options")
def set_option(name, value):
    for old in options.findall(name):
        options.remove(old)
    element = ET.SubElement(options, name)
    element.text = value
set_option("listenAddress", f"tcp://127.0.0.1:{port}")
for name in ("globalAnnounceEnabled", "localAnnounceEnabled", "relaysEnabled", "natEnabled",
             "startBrowser", "crashReportingEnabled"):
    set_option(name, "false")
set_option("urAccepted", "-1")
set_option("autoUpgradeIntervalH", "0")
tree.write(path)
PY
done

api() { # NODE METHOD PATH [JSON]
  local node=$1 method=$2 path=$3 body=${4:-}
  if [ -n "$body" ]; then
    curl -sSf -X "$method" -H "X-API-Key: $KEY" -H 'Content-Type: application/json' \
      -d "$body" "http://127.0.0.1:${GUI[$node]}$path"
  else
    curl -sSf -X "$method" -H "X-API-Key: $KEY" "http://127.0.0.1:${GUI[$node]}$path"
  fi
}

for n in a m b; do
  STNODEFAULTFOLDER=1 syncthing serve --home "$WORK/$n" --no-browser --no-restart --no-upgrade \
    --gui-address="http://127.0.0.1:${GUI[$n]}" --gui-apikey="$KEY" >"$WORK/$n.log" 2>&1 &
  PIDS+=($!)
done

# Polls until COMMAND succeeds or the deadline passes (the REST API is the only source of truth).
until_ok() { # WHAT COMMAND...
  local what=$1
  shift
  local start
  start=$(now)
  until "$@" >/dev/null 2>&1; do
    if python3 -c "import sys; sys.exit(0 if $(now) - $start > $DEADLINE_SECS else 1)"; then
      log "timed out waiting for $what"
      for n in a m b; do
        log "$n: $(api "$n" GET "/rest/db/status?folder=$FOLDER" 2>&1 | tr -d '\n' | cut -c1-600)"
        tail -n 8 "$WORK/$n.log" >&2 || true
      done
      exit 1
    fi
    sleep 0.02
  done
}
for n in a m b; do until_ok "the REST API of $n" api "$n" GET /rest/system/ping; done
echo "VERSION $(api a GET /rest/system/version | python3 -c 'import json,sys; print(json.load(sys.stdin)["longVersion"])')"

device() { # NODE_FOR NAME UNTRUSTED
  printf '{"deviceID":"%s","name":"%s","addresses":["tcp://127.0.0.1:%s"],"untrusted":%s}' \
    "${ID[$1]}" "$1" "${LISTEN[$1]}" "$2"
}
folder() { # NODE TYPE DEVICES_JSON
  printf '{"id":"%s","label":"%s","path":"%s","type":"%s","devices":%s,"fsWatcherEnabled":false,"rescanIntervalS":3600}' \
    "$FOLDER" "$FOLDER" "$WORK/data-$1" "$2" "$3"
}
# M first, so that it knows the folder when A and B offer it. M knows A and B; A and B know
# only M, mark it untrusted, and share the folder with it under the password.
api m POST /rest/config/devices "$(device a false)" >/dev/null
api m POST /rest/config/devices "$(device b false)" >/dev/null
api m POST /rest/config/folders "$(folder m receiveencrypted \
  "$(printf '[{"deviceID":"%s"},{"deviceID":"%s"}]' "${ID[a]}" "${ID[b]}")")" >/dev/null
shared_with_m=$(printf '[{"deviceID":"%s","encryptionPassword":"%s"}]' "${ID[m]}" "$PASSWORD")
for n in a b; do
  api "$n" POST /rest/config/devices "$(device m true)" >/dev/null
  api "$n" POST /rest/config/folders "$(folder "$n" sendreceive "$shared_with_m")" >/dev/null
done

connected() { # NODE PEER
  api "$1" GET /rest/system/connections |
    python3 -c "import json,sys; sys.exit(0 if json.load(sys.stdin)['connections'].get('${ID[$2]}',{}).get('connected') else 1)"
}
until_ok "A to connect to M" connected a m
until_ok "B to connect to M" connected b m

folder_idle() { # NODE
  api "$1" GET "/rest/db/status?folder=$FOLDER" |
    python3 -c "import json,sys; s=json.load(sys.stdin); sys.exit(0 if s['state']=='idle' else 1)"
}
for n in a m b; do until_ok "the folder on $n" folder_idle "$n"; done

# B holds at least N files, all of them complete (no need left).
b_has() { # N
  api b GET "/rest/db/status?folder=$FOLDER" |
    python3 -c "import json,sys; s=json.load(sys.stdin); sys.exit(0 if s['localFiles']>=$1 and s['needTotalItems']==0 else 1)"
}

held=0
one_item() { # sets LAST_MS: milliseconds for one file A → B
  local start end
  start=$(now)
  echo "one small item $held" >"$WORK/data-a/one-$held.txt"
  api a POST "/rest/db/scan?folder=$FOLDER" >/dev/null
  held=$((held + 1))
  until_ok "B to receive one item" b_has "$held"
  end=$(now)
  LAST_MS=$(python3 -c "print(($end - $start) * 1000)")
}

for round in $(seq 1 "$ROUNDS"); do
  # One item at a time first (median of the samples), then the batch.
  samples=()
  for _ in $(seq 1 "$ONE_ITEM_SAMPLES"); do
    one_item
    samples+=("$LAST_MS")
  done
  one_ms=$(printf '%s\n' "${samples[@]}" | sort -n | python3 -c 'import sys; v=[float(x) for x in sys.stdin]; print(f"{v[len(v)//2]:.1f}")')
  start=$(now)
  for i in $(seq 1 "$ITEMS"); do
    echo "small item $round-$i: a line of ordinary length, like a note" >"$WORK/data-a/item-$round-$i.txt"
  done
  api a POST "/rest/db/scan?folder=$FOLDER" >/dev/null
  held=$((held + ITEMS))
  until_ok "B to receive $ITEMS items" b_has "$held"
  end=$(now)
  seconds=$(python3 -c "print(f'{$end - $start:.3f}')")
  log "round $round: $ITEMS items A → M → B in $seconds s; one item p50 $one_ms ms"
  echo "RESULT items=$ITEMS seconds=$seconds one_item_ms=$one_ms"
done
