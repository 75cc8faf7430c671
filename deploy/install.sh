#!/usr/bin/env bash
# deploy/install.sh: install facegate as a systemd service. Safe to run
# twice: files are replaced only when they differ, the configuration, the
# environment file and the database are never overwritten, and nothing is
# started. Run `make build` first (it runs setup).
#
#   sudo deploy/install.sh                 # into /
#   DESTDIR=/tmp/root deploy/install.sh    # into a staging root (no users, no systemctl)
#   PREFIX=/opt/facegate deploy/install.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
lib=lib/facegate
say() { printf 'install: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

[ -x bin/facegate ] || die "bin/facegate is missing: run make build first"
[ -f "$lib/libonnxruntime.so.1" ] || die "$lib/libonnxruntime.so.1 is missing: run make setup first"
for m in fr_detect fr_landmark fr_liveness fr_feature; do
  [ -f "$lib/models/$m.onnx" ] || die "$lib/models/$m.onnx is missing: run make setup first"
done

# put SRC DST MODE: copy when different (same bytes, same mode: untouched).
put() {
  local src=$1 dst=$DESTDIR$2 mode=$3
  install -d -m 0755 "$(dirname "$dst")"
  if [ -f "$dst" ] && cmp -s "$src" "$dst" && [ "$(stat -c %a "$dst")" = "${mode#0}" ]; then
    return
  fi
  install -m "$mode" "$src" "$dst.tmp.$$" && mv -f "$dst.tmp.$$" "$dst"
  say "installed $2"
}
# keep SRC DST MODE: install only when absent (an admin's edits survive).
keep() {
  local dst=$DESTDIR$2
  if [ -e "$dst" ]; then return; fi
  install -d -m 0755 "$(dirname "$dst")"
  install -m "$3" "$1" "$dst"
  say "installed $2 (edit it; reinstalling keeps your version)"
}

put bin/facegate "$PREFIX/bin/facegate" 0755
put "$lib/libonnxruntime.so.1" "$PREFIX/lib/facegate/libonnxruntime.so.1" 0644
for m in fr_detect fr_landmark fr_liveness fr_feature; do
  put "$lib/models/$m.onnx" "$PREFIX/lib/facegate/models/$m.onnx" 0644
done
put deploy/enroll "$PREFIX/bin/facegate-enroll" 0755
put README.md "$PREFIX/share/doc/facegate/README.md" 0644
sed "s#/usr/local#$PREFIX#g" deploy/facegate.service > "${TMPDIR:-/tmp}/facegate.service.$$"
put "${TMPDIR:-/tmp}/facegate.service.$$" /etc/systemd/system/facegate.service 0644
rm -f "${TMPDIR:-/tmp}/facegate.service.$$"
sed "s#/usr/local#$PREFIX#g" deploy/facegate.env > "${TMPDIR:-/tmp}/facegate.env.$$"
keep "${TMPDIR:-/tmp}/facegate.env.$$" /etc/facegate/facegate.env 0644
rm -f "${TMPDIR:-/tmp}/facegate.env.$$"
keep deploy/facegate.example.yaml /etc/facegate/facegate.yaml 0640
install -d -m 0755 "$DESTDIR/etc/facegate"

if [ -z "$DESTDIR" ]; then
  if ! getent passwd facegate >/dev/null; then
    useradd --system --home-dir /var/lib/facegate --shell /usr/sbin/nologin --groups video facegate
    say "created the system user facegate (in the video group)"
  fi
  chgrp facegate /etc/facegate/facegate.yaml
  systemctl daemon-reload 2>/dev/null || say "systemctl daemon-reload failed (no systemd?)"
  say "done. Edit /etc/facegate/facegate.yaml, then: systemctl enable --now facegate"
else
  say "done (staged in $DESTDIR; no user created, systemd not told)"
fi
