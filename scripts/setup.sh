#!/usr/bin/env bash
# scripts/setup.sh: install what facegate needs to build and run (`make setup`).
# Runs from anywhere; works relative to the repository this script is in.
#
# 1. Debian packages: libopencv-dev pkg-config mosquitto g++ libc6-dev (gocv
#    needs g++ and pkg-config; cgo needs libc6-dev), plus npm only when `npm`
#    is missing and something has to be fetched. They are checked with
#    `dpkg -s`; only if one is missing does it run `apt-get update` (once) and
#    `apt-get install` (through sudo when not root). While apt-get runs, a
#    temporary /usr/sbin/policy-rc.d (unless one exists) stops package scripts
#    from starting services, so no mosquitto daemon is left running.
# 2. Files listed in internal/models/manifest.tsv (the single source of truth,
#    also embedded in the Go package internal/models): every model into
#    LIB/models/NAME and the ONNX Runtime library for this machine
#    (x86_64 -> amd64, aarch64 -> arm64) into LIB/libonnxruntime.so.1.
#    A file already there with the right sha256 is left alone. Otherwise it is
#    extracted from its npm tarball, kept in REPO/.cache/npm/ (gitignored) and
#    fetched with `npm pack NAME@VERSION` (which runs no install scripts) when
#    not there. Tarballs and extracted files are sha256-checked; files are
#    written to a temp file next to the destination and renamed into place.
#    Temp files are removed on any exit.
#
# It is idempotent: when everything is in place it does no network work
# (no apt-get, no npm) and prints one line saying so.
#
# Checksum failures:
#   - cached tarball with a wrong sha256: deleted and fetched again (once);
#   - fetched tarball with a wrong sha256: deleted, and setup fails;
#   - extracted file with a wrong sha256 (tarball and manifest disagree):
#     setup fails and leaves nothing behind;
#   - installed file with a wrong sha256: replaced.
#
# Environment:
#   FACEGATE_LIB_DIR  where to install (default REPO/lib/facegate; a relative
#                     path is taken from the directory setup is run in).
#                     The Go helper models.FindRepoDir honours it too.
#
# Progress goes to stderr, each line prefixed "setup: ".
set -euo pipefail

log() { printf 'setup: %s\n' "$*" >&2; }
die() {
	printf 'setup: error: %s\n' "$*" >&2
	exit 1
}

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
root=$(cd -- "$script_dir/.." && pwd -P)
lib_dir=${FACEGATE_LIB_DIR:-$root/lib/facegate}
[[ $lib_dir == /* ]] || lib_dir=$PWD/$lib_dir
cd "$root"
manifest=$root/internal/models/manifest.tsv
cache_dir=$root/.cache/npm

sudo=()
policy_rc=/usr/sbin/policy-rc.d
policy_rc_ours=
tmp_paths=()
cleanup() {
	local p
	for p in "${tmp_paths[@]}"; do
		rm -rf -- "$p"
	done
	if [[ -n $policy_rc_ours ]]; then
		"${sudo[@]}" rm -f -- "$policy_rc" || true
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# rel PATH: PATH relative to the repository when inside it, for messages.
rel() {
	local p=$1
	[[ $p == "$root"/* ]] && p=${p#"$root"/}
	printf '%s' "$p"
}

# sha_of FILE: print the sha256 of FILE.
sha_of() {
	local out
	out=$(sha256sum <"$1") || return 1
	printf '%s' "${out%% *}"
}

# tarball_name NAME@VERSION: the file `npm pack` writes (@scope/x@1 -> scope-x-1.tgz).
tarball_name() {
	local spec=$1 name ver
	name=${spec%@*}
	ver=${spec##*@}
	name=${name#@}
	printf '%s-%s.tgz' "${name//\//-}" "$ver"
}

case $(uname -m) in
x86_64 | amd64) goarch=amd64 ;;
aarch64 | arm64) goarch=arm64 ;;
*) die "unsupported machine $(uname -m): the manifest has ONNX Runtime for x86_64 (amd64) and aarch64 (arm64) only" ;;
esac

# ---- read the manifest -------------------------------------------------------
[[ -r $manifest ]] || die "$(rel "$manifest"): not found"
rows=$(awk -F'\t' -v arch="$goarch" '
	{ sub(/\r$/, "") }
	/^[ \t]*(#|$)/ { next }
	NF != 6 { printf "setup: error: %s line %d: want 6 tab-separated fields, got %d\n", FILENAME, FNR, NF > "/dev/stderr"; exit 1 }
	$1 == "package" { print "package\t" $2 "\t" $3; next }
	$1 == "model" { print "model\t" $2 "\t" $3 "\t" $4 "\t" $5; next }
	$1 == "runtime" { if ($6 == arch) print "runtime\t" $2 "\t" $3 "\t" $4 "\t" $5; next }
	{ printf "setup: error: %s line %d: unknown kind \"%s\"\n", FILENAME, FNR, $1 > "/dev/stderr"; exit 1 }
' "$manifest") || die "$(rel "$manifest") is malformed (go test ./internal/models/ explains)"

declare -A pkg_sha=()
t_kind=() t_name=() t_sha=() t_src=() t_member=() t_dest=()
n_models=0 n_runtimes=0
while IFS=$'\t' read -r kind name sha src member; do
	[[ $sha =~ ^[0-9a-f]{64}$ ]] || die "manifest: $name: bad sha256 \"$sha\""
	if [[ $kind == package ]]; then
		pkg_sha[$name]=$sha
		continue
	fi
	[[ $name =~ ^[A-Za-z0-9._+-]+$ && $name != . && $name != .. ]] ||
		die "manifest: $kind \"$name\": not a plain file name"
	[[ $member =~ ^[A-Za-z0-9._+/-]+$ && $member != /* && /$member/ != */../* ]] ||
		die "manifest: $kind $name: bad path \"$member\""
	t_kind+=("$kind") t_name+=("$name") t_sha+=("$sha") t_src+=("$src") t_member+=("$member")
	if [[ $kind == model ]]; then
		t_dest+=("$lib_dir/models/$name")
		n_models=$((n_models + 1))
	else
		t_dest+=("$lib_dir/$name")
		n_runtimes=$((n_runtimes + 1))
	fi
done <<<"$rows"
((n_runtimes == 1)) || die "manifest: want exactly one runtime row for $goarch, found $n_runtimes"
for src in "${t_src[@]}"; do
	[[ -n ${pkg_sha[$src]:-} ]] || die "manifest: source $src is not a package row"
done

# ---- what is missing? (local checks only) ------------------------------------
need=()             # indexes into t_* of files to install
declare -A pkg_ok=() # NAME@VERSION -> 1 once its cached tarball is verified
declare -A pkg_fetch=()
for i in "${!t_name[@]}"; do
	dest=${t_dest[i]}
	if [[ -d $dest ]]; then
		die "$(rel "$dest") is a directory; remove it and run setup again"
	fi
	if [[ -f $dest ]]; then
		got=$(sha_of "$dest")
		[[ $got == "${t_sha[i]}" ]] && continue
		log "${t_name[i]}: sha256 is ${got:0:12}…, want ${t_sha[i]:0:12}…; replacing $(rel "$dest")"
	fi
	need+=("$i")
	src=${t_src[i]}
	[[ -n ${pkg_ok[$src]:-} || -n ${pkg_fetch[$src]:-} ]] && continue
	tgz=$cache_dir/$(tarball_name "$src")
	if [[ -f $tgz ]]; then
		got=$(sha_of "$tgz")
		if [[ $got == "${pkg_sha[$src]}" ]]; then
			pkg_ok[$src]=1
			continue
		fi
		log "cached $(rel "$tgz"): sha256 is ${got:0:12}…, want ${pkg_sha[$src]:0:12}…; deleting it to fetch it again"
		rm -f -- "$tgz"
	fi
	pkg_fetch[$src]=1
done

# ---- Debian packages ---------------------------------------------------------
debs=(libopencv-dev pkg-config mosquitto g++ libc6-dev)
missing=()
have_dpkg=
if command -v dpkg >/dev/null 2>&1; then
	have_dpkg=1
	for p in "${debs[@]}"; do
		st=$(dpkg -s "$p" 2>/dev/null) || st=
		[[ $st == *$'\nStatus: install ok installed'* ]] || missing+=("$p")
	done
else
	log "warning: no dpkg here (not Debian?); make sure these or their equivalents are installed: ${debs[*]}"
fi
if ((${#pkg_fetch[@]})) && ! command -v npm >/dev/null 2>&1; then
	[[ -n $have_dpkg ]] || die "npm not found; install Node.js with npm and run setup again"
	missing+=(npm)
fi
if ((${#missing[@]})); then
	if ((EUID != 0)); then
		command -v sudo >/dev/null 2>&1 ||
			die "missing Debian packages: ${missing[*]}; as root run: apt-get install ${missing[*]}"
		sudo=(sudo)
	fi
	command -v apt-get >/dev/null 2>&1 || die "missing Debian packages: ${missing[*]} (and no apt-get here)"
	log "installing Debian packages: ${missing[*]}"
	if [[ ! -e $policy_rc ]]; then
		# Keep package scripts (mosquitto's) from starting services; removed below or on exit.
		policy_rc_ours=1
		printf '#!/bin/sh\n# temporary, from facegate scripts/setup.sh: start no services\nexit 101\n' |
			"${sudo[@]}" tee "$policy_rc" >/dev/null
		"${sudo[@]}" chmod 755 "$policy_rc"
	fi
	"${sudo[@]}" apt-get -qq update >&2 || die "apt-get update failed"
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -qq -y -o Dpkg::Use-Pty=0 install "${missing[@]}" >&2 ||
		die "apt-get install ${missing[*]} failed"
	if [[ -n $policy_rc_ours ]]; then
		"${sudo[@]}" rm -f -- "$policy_rc"
		policy_rc_ours=
	fi
fi

if ((${#need[@]} == 0)); then
	if ((${#missing[@]})); then
		log "files in place ($n_models models, runtime for $goarch), nothing fetched"
	else
		log "everything in place ($n_models models, runtime for $goarch), nothing fetched"
	fi
	exit 0
fi

# ---- fetch tarballs ------------------------------------------------------------
# fetch NAME@VERSION: npm pack into a temp dir in the cache, check, move into the cache.
fetch() {
	local spec=$1 want=${pkg_sha[$1]} file tmpd got
	file=$(tarball_name "$spec")
	mkdir -p -- "$cache_dir"
	tmpd=$(mktemp -d "$cache_dir/.pack.XXXXXX")
	tmp_paths+=("$tmpd")
	log "fetching $spec with npm pack"
	npm pack "$spec" --pack-destination "$tmpd" --ignore-scripts --loglevel=error >/dev/null ||
		die "npm pack $spec failed"
	[[ -f $tmpd/$file ]] || die "npm pack $spec did not write $file"
	got=$(sha_of "$tmpd/$file")
	if [[ $got != "$want" ]]; then
		rm -rf -- "$tmpd"
		die "tarball $file from npm: sha256 is $got, want $want (deleted; check the registry or the manifest)"
	fi
	mv -fT -- "$tmpd/$file" "$cache_dir/$file"
	rm -rf -- "$tmpd"
}

n_fetched=0
for spec in "${!pkg_fetch[@]}"; do
	fetch "$spec"
	n_fetched=$((n_fetched + 1))
done

# ---- install files ---------------------------------------------------------------
for i in "${need[@]}"; do
	name=${t_name[i]} want=${t_sha[i]} member=${t_member[i]} dest=${t_dest[i]}
	file=$(tarball_name "${t_src[i]}")
	tgz=$cache_dir/$file
	dir=$(dirname -- "$dest")
	mkdir -p -- "$dir"
	tmp=$(mktemp "$dir/.$name.XXXXXX")
	tmp_paths+=("$tmp")
	tar -xzOf "$tgz" -- "$member" >"$tmp" || die "$name: cannot extract $member from $(rel "$tgz")"
	got=$(sha_of "$tmp")
	if [[ $got != "$want" ]]; then
		rm -f -- "$tmp"
		die "$name: $member in $file has sha256 $got, want $want (manifest and tarball disagree; not installed)"
	fi
	chmod 644 -- "$tmp"
	mv -fT -- "$tmp" "$dest"
	log "$name: installed $(rel "$dest")"
done

log "done: ${#need[@]} file(s) installed in $(rel "$lib_dir"), $n_fetched tarball(s) fetched with npm, $((${#pkg_ok[@]})) from the cache"
