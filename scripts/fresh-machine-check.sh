#!/usr/bin/env bash
# fresh-machine-check.sh: proves that `make demo` (and with --test, `make test`) works on a fresh Debian 12
# machine, i.e. that scripts/install-deps.sh (which `make` runs first) installs everything the build, the
# demo and the tests need. It makes a clean Debian 12 (bookworm) root with debootstrap from Debian's mirror,
# copies this working tree into it (tracked plus untracked-but-not-ignored files, so uncommitted work is
# checked too; no build folders, no benchmarks/peers/.venv), and runs `make demo` there as root via chroot
# with a clean environment. Nothing from this machine's installed packages leaks in.
#
# How long it takes, on 2 cores: the first run debootstraps (1m06s) and caches the pristine root as a
# tarball (0m24s); later runs unpack it (~5 s). Then `make demo` (install-deps.sh's apt install, the
# Release build of the kiln program, the peers from PyPI, the demo's kiln pipeline): 5m59s on an idle
# machine (2026-12-07), 6m02s in all; longer while other builds share the cores. --test adds the tests and
# the sanitizer build (tens of minutes more). Each phase's time is printed at the end.
#
# Needs root (debootstrap, mount, chroot) and network access to Debian's mirror (and PyPI for --test).
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/fresh-machine-check.sh [OPTIONS]

Checks that `make demo` works on a fresh Debian 12: debootstraps bookworm (minbase) into a folder,
copies this working tree into it and runs `make demo` inside via chroot, as root, with a clean
environment. Every check starts from the pristine debootstrap (cached as a tarball between runs).

Options:
  --dir DIR       work folder (default /var/tmp/kiln-fresh-check): DIR/root is the chroot,
                  DIR/cache/ holds the pristine tarball, DIR/make.log the output of make
  --mirror URL    Debian mirror (default http://deb.debian.org/debian)
  --test          also run `make test` after `make demo` (long: peers from PyPI, tests, sanitizer build)
  --target T      run `make T` instead of `make demo` (repeatable; --test adds `test`)
  --refresh       debootstrap again even if a cached pristine tarball exists (and replace it)
  --no-shared     do not copy ../shared (the fixtures folder CI has beside the clone)
  --no-host-ca    do not copy this machine's local CA certificates (see below)
  --strict        fail if the fresh system lacks `make` instead of installing it (see below)
  --keep          keep the chroot even when the check passes (default: removed on success)
  --clean         remove the chroot even when the check fails (default: kept for inspection)
  -h, --help      this help

A minimal Debian 12 has no `make`. Unless --strict, the check installs it with apt (as a user would have
to, before `make demo`) and says so; everything else must come from `make demo` itself.
This machine's local CA certificates (/usr/local/share/ca-certificates/*.crt, e.g. a TLS-intercepting
proxy's) are copied into the chroot's same folder unless --no-host-ca, so that PyPI over HTTPS works
behind such a proxy once install-deps.sh installs ca-certificates (which picks them up); no package.
Exit status: 0 when every make target passed, 1 when one failed (the chroot is kept, see the message),
2 on a usage error; another non-zero status (with its error above) when the check itself fails.
EOF
}

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=/var/tmp/kiln-fresh-check
MIRROR=http://deb.debian.org/debian
SUITE=bookworm
TARGETS=()
REFRESH=0
COPY_SHARED=1
HOST_CA=1
STRICT=0
KEEP=auto

while [ $# -gt 0 ]; do
  case "$1" in
    --dir) WORK=${2:?--dir needs a folder}; shift 2 ;;
    --dir=*) WORK=${1#*=}; shift ;;
    --mirror) MIRROR=${2:?--mirror needs a URL}; shift 2 ;;
    --mirror=*) MIRROR=${1#*=}; shift ;;
    --test) TEST=1; shift ;;
    --target) TARGETS+=("${2:?--target needs a make target}"); shift 2 ;;
    --target=*) TARGETS+=("${1#*=}"); shift ;;
    --refresh) REFRESH=1; shift ;;
    --no-shared) COPY_SHARED=0; shift ;;
    --no-host-ca) HOST_CA=0; shift ;;
    --strict) STRICT=1; shift ;;
    --keep) KEEP=yes; shift ;;
    --clean) KEEP=no; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "fresh-machine-check: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(demo)
[ "${TEST:-0}" = 1 ] && TARGETS+=(test)

if [ "$(id -u)" -ne 0 ]; then
  echo "fresh-machine-check: needs root (debootstrap, mount, chroot); run it with sudo" >&2
  exit 2
fi
# The physical path (pwd -P): the unmount and kill logic compares it with /proc's, which never holds
# symlinks; a logical path through one would find no mount and let rm -rf meet the host's /dev.
WORK=$(mkdir -p "$WORK" && cd "$WORK" && pwd -P)
if [ "$WORK" = / ]; then
  echo "fresh-machine-check: --dir / would put the chroot at /root: choose a folder of its own" >&2
  exit 2
fi
exec 9>"$WORK/.lock"
flock -n 9 || { echo "fresh-machine-check: another check is using $WORK (--dir to use another folder)" >&2; exit 2; }
ROOT=$WORK/root
MARKER=.kiln-fresh-check-root
CACHE=$WORK/cache
ARCH=$(dpkg --print-architecture)
TARBALL=$CACHE/$SUITE-minbase-$ARCH.tar.gz
LOG=$WORK/make.log
CHROOT_SRC=/work/kiln   # the clone inside the chroot; ../shared beside it, as CI has it

say() { printf '\n=== fresh-machine-check: %s\n' "$*"; }
fmt_time() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# Phase timing: each phase's name and seconds, printed at the end (also on failure).
PHASES=()
START_ALL=$(date +%s)
PHASE_NAME=""
PHASE_START=0
phase() {
  phase_end
  PHASE_NAME=$1
  PHASE_START=$(date +%s)
  say "$PHASE_NAME"
}
phase_end() {
  if [ -n "$PHASE_NAME" ]; then
    PHASES+=("$PHASE_NAME|$(($(date +%s) - PHASE_START))")
    PHASE_NAME=""
  fi
}
print_times() {
  phase_end
  echo
  echo "fresh-machine-check: time per phase"
  local p
  for p in "${PHASES[@]}"; do
    printf '  %-44s %s\n' "${p%|*}" "$(fmt_time "${p##*|}")"
  done
  printf '  %-44s %s\n' "total" "$(fmt_time $(($(date +%s) - START_ALL)))"
}

# Mounts under a folder, deepest first (from /proc/self/mountinfo, field 5 = mount point).
mounts_under() {
  awk -v r="$1" '$5 == r || index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r
}

# Ends the processes still running inside the chroot (their root is $ROOT): only ours.
kill_chroot_processes() {
  local sig pid found
  for sig in TERM KILL; do
    found=0
    for pid in /proc/[0-9]*; do
      if [ "$(readlink "$pid/root" 2>/dev/null)" = "$ROOT" ]; then
        kill -s "$sig" "${pid#/proc/}" 2>/dev/null && found=1
      fi
    done
    [ $found = 1 ] || return 0
    sleep 2
  done
}

unmount_all() {
  [ -d "$ROOT" ] || return 0
  kill_chroot_processes
  local m
  for m in $(mounts_under "$ROOT"); do
    umount "$m" 2>/dev/null || umount -l "$m" || true
  done
  if [ -n "$(mounts_under "$ROOT")" ]; then
    echo "fresh-machine-check: could not unmount everything under $ROOT:" >&2
    mounts_under "$ROOT" >&2
    return 1
  fi
}

# Removes the chroot, never while anything is mounted under it (that would delete the host's /dev).
remove_root() {
  [ -e "$ROOT" ] || return 0
  # Only a folder this script unpacked (it leaves a marker there) is ever removed.
  [ -e "$ROOT/$MARKER" ] || { echo "fresh-machine-check: not removing $ROOT: no $MARKER in it, not made here" >&2; return 1; }
  unmount_all || { echo "fresh-machine-check: not removing $ROOT while mounts remain" >&2; return 1; }
  rm -rf --one-file-system "$ROOT"
}

RESULT="the check itself failed, see the error above"
on_exit() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  unmount_all
  print_times
  case "$RESULT" in
    pass)
      if [ "$KEEP" = yes ]; then
        echo "fresh-machine-check: PASSED; the chroot is kept at $ROOT (chroot $ROOT /bin/bash)"
      else
        remove_root
        echo "fresh-machine-check: PASSED: make ${TARGETS[*]} works on a fresh Debian 12"
      fi
      ;;
    *)
      if [ "$KEEP" = no ]; then
        remove_root
        echo "fresh-machine-check: FAILED ($RESULT); the chroot was removed (--clean)" >&2
      elif [ -d "$ROOT" ]; then
        echo "fresh-machine-check: FAILED ($RESULT); the chroot is kept for inspection at $ROOT" >&2
        echo "  look inside with: sudo mount --bind /proc $ROOT/proc && sudo chroot $ROOT /bin/bash" >&2
        echo "  (the tree is at $ROOT$CHROOT_SRC; make's output in $LOG)" >&2
      else
        echo "fresh-machine-check: FAILED ($RESULT)" >&2
      fi
      [ "$rc" -ne 0 ] || rc=1
      ;;
  esac
  exit "$rc"
}
trap on_exit EXIT
trap 'RESULT="interrupted"; exit 130' INT
trap 'RESULT="terminated"; exit 143' TERM

# Runs a command inside the chroot as root with a clean environment.
in_chroot() {
  chroot "$ROOT" /usr/bin/env -i \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" \
    /bin/bash -c "$1"
}

# --- 1. debootstrap (or unpack the cached pristine root) -------------------------------------------------
phase "prepare the host"
if ! command -v debootstrap >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap
fi
[ -f /usr/share/keyrings/debian-archive-keyring.gpg ] ||
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debian-archive-keyring
if [ -e "$ROOT" ]; then
  echo "removing the previous chroot $ROOT"
  remove_root
fi
mkdir -p "$CACHE"

if [ "$REFRESH" = 1 ] || [ ! -s "$TARBALL" ]; then
  phase "debootstrap $SUITE (minbase)"
  echo "from $MIRROR into $WORK/debootstrap.tmp"
  BOOT=$WORK/debootstrap.tmp
  rm -rf --one-file-system "$BOOT"
  debootstrap --variant=minbase --arch="$ARCH" \
    --keyring=/usr/share/keyrings/debian-archive-keyring.gpg "$SUITE" "$BOOT" "$MIRROR"
  # The sources a Debian 12 installation has: the release, its updates and security updates.
  security=${MIRROR%/debian}/debian-security
  [ "$security" != "$MIRROR/debian-security" ] || security=http://deb.debian.org/debian-security
  cat >"$BOOT/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $security $SUITE-security main
EOF
  for m in $(mounts_under "$BOOT"); do umount "$m"; done
  rm -rf "$BOOT/var/cache/apt/archives/"*.deb "$BOOT/var/lib/apt/lists/"* 2>/dev/null || true
  phase "cache the pristine root"
  tar -C "$BOOT" --numeric-owner --xattrs -czf "$TARBALL.tmp" .
  mv "$TARBALL.tmp" "$TARBALL"
  rm -rf --one-file-system "$BOOT"
fi

phase "unpack the pristine root"
mkdir -p "$ROOT"
touch "$ROOT/$MARKER"
tar -C "$ROOT" --numeric-owner --xattrs -xzf "$TARBALL"
echo "fresh root at $ROOT ($(du -sh --one-file-system "$ROOT" | cut -f1)) from $TARBALL"

# --- 2. copy the working tree (and ../shared) ------------------------------------------------------------
phase "copy the working tree"
git -C "$SRC" rev-parse --git-dir >/dev/null 2>&1 ||
  { echo "fresh-machine-check: $SRC is not a git checkout" >&2; exit 2; }
mkdir -p "$ROOT$CHROOT_SRC"
# Tracked plus untracked-but-not-ignored files; a tracked file deleted in the working tree is skipped,
# and build folders and the peers' venv are left out even if .gitignore stops ignoring them.
(cd "$SRC" && git ls-files -z -co --exclude-standard |
   while IFS= read -r -d '' f; do
     case "$f" in build*/*|benchmarks/peers/.venv/*|*/node_modules/*) continue ;; esac
     if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
   done |
   tar --null --no-recursion -T - -cf -) | tar -C "$ROOT$CHROOT_SRC" -xf -
echo "copied $(find "$ROOT$CHROOT_SRC" -type f | wc -l) files from $SRC ($(git -C "$SRC" rev-parse --short HEAD)" \
  "plus uncommitted changes: $(git -C "$SRC" status --porcelain | wc -l) paths)"
if [ "$COPY_SHARED" = 1 ] && [ -d "$SRC/../shared" ]; then
  mkdir -p "$ROOT$CHROOT_SRC/../shared"
  tar -C "$SRC/../shared" -cf - . | tar -C "$ROOT$CHROOT_SRC/../shared" -xf -
  echo "copied $SRC/../shared to $(dirname "$CHROOT_SRC")/shared"
fi

# --- 3. mounts, resolv.conf, then make -------------------------------------------------------------------
phase "mount /proc /sys /dev /dev/pts"
mount -t proc proc "$ROOT/proc"
mount -t sysfs sysfs "$ROOT/sys"
mount --bind /dev "$ROOT/dev"
mount --bind /dev/pts "$ROOT/dev/pts"
if mountpoint -q /dev/shm; then mount --bind /dev/shm "$ROOT/dev/shm"; fi
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
if [ "$HOST_CA" = 1 ] && compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
  mkdir -p "$ROOT/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
  echo "copied this machine's local CA certificates into the chroot:" \
    "$(cd /usr/local/share/ca-certificates && echo ./*.crt) (--no-host-ca to leave them out)"
fi

if ! in_chroot 'command -v make >/dev/null'; then
  if [ "$STRICT" = 1 ]; then
    RESULT="a fresh Debian 12 has no make, so \`make demo\` cannot start (--strict)"
    exit 1
  fi
  phase "install make (a fresh Debian 12 has none)"
  echo "NOTE: \`make\` is not in a fresh Debian 12; installing it the way a user would have to first:"
  echo "      apt-get update && apt-get install make"
  in_chroot 'export DEBIAN_FRONTEND=noninteractive; apt-get update -q && apt-get install -y -q --no-install-recommends make'
fi

: >"$LOG"
for t in "${TARGETS[@]}"; do
  phase "make $t (in the chroot)"
  # In the background and waited for, so that Ctrl-C or a TERM reaches the traps at once (they end what
  # still runs in the chroot, then unmount).
  (set +e; in_chroot "cd $CHROOT_SRC && make $t" 2>&1 | tee -a "$LOG"; exit "${PIPESTATUS[0]}") &
  rc=0
  wait $! || rc=$?
  if [ "$rc" -ne 0 ]; then
    RESULT="\`make $t\` exited with $rc inside the chroot; its output is in $LOG"
    exit 1
  fi
done
RESULT=pass
