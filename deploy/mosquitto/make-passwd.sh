#!/bin/sh
# make-passwd.sh DIR DOOR...: the mosquitto password file for facegate.
#
# Makes DIR/passwd (mosquitto's password_file) with the users of the ACL
# file beside this script: facegate-audit, and facegate-DOOR and
# facegate-relay-DOOR for each DOOR. Each user's password is random and kept
# in DIR/clients/USER.password (mode 0600), the file a client's
# mqtt.password_file names: copy it to the machine and the user that runs
# that client. Running it again keeps the passwords already made (and adds
# users for new doors), so it is safe to run twice. No password appears on
# a command line.
#
#   sudo sh make-passwd.sh /etc/mosquitto/facegate front
#   sudo install -m 0600 -o facegate /etc/mosquitto/facegate/clients/facegate-front.password /etc/facegate/mqtt.password
set -eu
umask 077
usage="usage: make-passwd.sh DIR DOOR..."
[ $# -ge 2 ] || { echo "$usage" >&2; exit 2; }
dir=$1
shift
users=facegate-audit
for door in "$@"; do
	case $door in
	'' | *[!a-z0-9_-]*) echo "make-passwd.sh: door \"$door\": want a-z, 0-9, _ and - only" >&2; exit 2 ;;
	esac
	users="$users facegate-$door facegate-relay-$door"
done
command -v mosquitto_passwd >/dev/null || { echo "make-passwd.sh: mosquitto_passwd not found (apt-get install mosquitto)" >&2; exit 1; }
mkdir -p "$dir/clients"
plain=$(mktemp "$dir/passwd.XXXXXX")
trap 'rm -f "$plain"' EXIT
for u in $users; do
	f=$dir/clients/$u.password
	if [ ! -s "$f" ]; then
		# 24 random bytes, base64 without / + = (32 characters or a few less).
		head -c 24 /dev/urandom | base64 | tr -d '\n/+=' >"$f"
	fi
	printf '%s:%s\n' "$u" "$(cat "$f")" >>"$plain"
done
mosquitto_passwd -U "$plain" # hashes the passwords in place
if getent group mosquitto >/dev/null 2>&1; then
	chgrp mosquitto "$plain" && chmod 0640 "$plain" # the broker drops to user mosquitto
fi
mv "$plain" "$dir/passwd"
trap - EXIT
echo "wrote $dir/passwd for: $users" >&2
