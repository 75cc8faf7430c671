#!/usr/bin/env bash
# make demo: what facegate can show today on the shared test data. Run after
# make build (the Makefile does that first).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${SHARED:-../shared/data}
fg=./bin/facegate
lfw=$data/lfw-view1/images
say() { printf '\n== %s\n' "$*"; }

say "Same person? Two photos of George W. Bush"
$fg compare "$lfw/George_W_Bush/George_W_Bush_0001.jpg" "$lfw/George_W_Bush/George_W_Bush_0002.jpg"

say "Same person? Aaron Eckhart and Zico"
$fg compare "$lfw/Aaron_Eckhart/Aaron_Eckhart_0001.jpg" "$lfw/Zico/Zico_0001.jpg"

say "Liveness: a live face, a printed photo and a tablet replay of one woman"
$fg embed "$data"/fixtures/live_exif6.jpg "$data"/fixtures/print_attack_exif6.jpg "$data"/fixtures/screen_replay_exif6.jpg

say "Speed: every stage on 100 frames of a 400x300 webcam clip"
$fg bench -n 100 "$data/clips/cap13_edit2.mp4" | head -n -1
