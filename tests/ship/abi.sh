#!/bin/sh
# abi.sh PREFIX SRCDIR [C_COMPILER_ID]: compare the ABI of every installed
# shared library with its baseline, SRCDIR/abi/LIB.abi (libabigail's abidw
# output). Fails when a function or variable of the baseline was removed or
# changed (a changed type behind it included); functions added since the
# baseline are compatible and only noted. A library without a baseline (a
# new bridge) is noted too.
#   abi.sh --update PREFIX SRCDIR   rewrite the baselines (make abi-update)
#
# Only the public part of the types counts: abidw gets the public headers'
# folders (SRCDIR/include, SRCDIR/bridges/*/include) and drops the types
# defined elsewhere, so the
# layout of an opaque struct (struct ctx, struct chan) may change freely.
# The baselines were made from a gcc -O2 -g build on x86_64; on another
# architecture or compiler this check is skipped (exit 77).
set -u
update=0
if [ "$1" = --update ]; then
  update=1
  shift
fi
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
prefix=$(cd "$1" && pwd) || exit 1
src=$(cd "$2" && pwd)
ccid=${3:-GNU}
for tool in abidw abidiff; do
  if ! command -v $tool >/dev/null 2>&1; then
    echo "abi: $tool is missing (Debian: apt-get install abigail-tools, or make deps)"
    exit 1
  fi
done
if [ "$update" = 0 ] && [ "$ccid" != GNU ]; then
  echo "abi: skipped: the baselines are of a gcc build, this one is $ccid"
  exit 77
fi
libdir=$(ship_libdir "$prefix") || exit 1
tmp=${TMPDIR:-/tmp}/ship-abi.$$
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT

# abi_of SOFILE OUT: the library's ABI as abidw sees it, with the source
# folder taken out of the translation units' paths.
abi_of() {
  hd="--headers-dir $src/include"
  for d in "$src"/bridges/*/include; do
    [ -d "$d" ] && hd="$hd --headers-dir $d"
  done
  # shellcheck disable=SC2086  # $hd is words (no spaces in the folders)
  abidw --no-corpus-path --no-comp-dir-path --no-show-locs \
    $hd --drop-private-types "$1" >"$2.raw" || return 1
  sed "s|path='$src/|path='|" "$2.raw" >"$2"
}

fail=0
for so in "$libdir"/libgoctx*.so; do
  lib=$(basename "$so" .so)
  real=$(readlink -f "$so")
  base=$src/abi/$lib.abi
  abi_of "$real" "$tmp/$lib.abi" || { echo "abi: abidw failed on $real"; exit 1; }
  if [ "$update" = 1 ]; then
    mkdir -p "$src/abi"
    cp "$tmp/$lib.abi" "$base"
    echo "abi: wrote abi/$lib.abi ($(grep -c '<elf-symbol ' "$base") symbols, soname $(sed -n "s/.* soname='\([^']*\)'.*/\1/p" "$base" | head -n 1))"
    continue
  fi
  if [ ! -f "$base" ]; then
    echo "abi: $lib: no baseline abi/$lib.abi yet (a new library): \`make abi-update\` makes it"
    continue
  fi
  arch_base=$(sed -n "s/.* architecture='\([^']*\)'.*/\1/p" "$base" | head -n 1)
  arch_now=$(sed -n "s/.* architecture='\([^']*\)'.*/\1/p" "$tmp/$lib.abi" | head -n 1)
  if [ "$arch_base" != "$arch_now" ]; then
    echo "abi: skipped: abi/$lib.abi is for $arch_base, this build is $arch_now"
    exit 77
  fi
  # Everything but additions: exit bits 1 (error), 2 (usage), 4 (change),
  # 8 (incompatible change, such as a removed symbol).
  abidiff --no-added-syms "$base" "$tmp/$lib.abi" >"$tmp/diff" 2>&1
  rc=$?
  if [ "$rc" != 0 ]; then
    cat "$tmp/diff"
    if [ $((rc & 3)) != 0 ]; then
      echo "FAIL abi: abidiff could not compare abi/$lib.abi with $real (exit $rc)"
    else
      echo "FAIL abi: $lib's ABI changed from abi/$lib.abi (abidiff exit $rc, above)."
      echo "  Programs built against the baseline could break. Undo the change, or,"
      echo "  if it is meant, bump the soname (GOCTX_SOVERSION in CMakeLists.txt) and"
      echo "  run \`make abi-update\`: see abi/README.md."
    fi
    fail=1
    continue
  fi
  abidiff "$base" "$tmp/$lib.abi" >"$tmp/diff" 2>&1
  rc=$?
  if [ $((rc & 4)) != 0 ]; then
    echo "abi: $lib: compatible with abi/$lib.abi; added since then:"
    grep "^  \[A\]" "$tmp/diff" || sed 's/^/  /' "$tmp/diff"
    echo "  (\`make abi-update\` records them in the baseline)"
  else
    echo "abi: $lib: same ABI as abi/$lib.abi"
  fi
done

# The layout goctx.h's inline code reads (the inline ctx_err and ctx_done)
# and the caller-provided storage it sizes: programs compiled against the
# header carry these numbers, so they are ABI the symbols do not show.
cat >"$tmp/inline.c" <<'PROBE'
#include <stdalign.h>
#include <stdio.h>
#include <goctx.h>
int main(void)
{
	printf("ctx__abi_head.ctx__src offset %zu\n", offsetof(struct ctx__abi_head, ctx__src));
	printf("ctx__abi_cnode.ctx__state offset %zu\n",
	       offsetof(struct ctx__abi_cnode, ctx__state));
	printf("GOCTX__STATE_ERR 0x%x\n", GOCTX__STATE_ERR);
	printf("GOCTX__STATE_SLOW 0x%x\n", GOCTX__STATE_SLOW);
	printf("ctx_after_slot_t size %zu align %zu\n", sizeof(ctx_after_slot_t),
	       alignof(ctx_after_slot_t));
	return 0;
}
PROBE
inline_base=$src/abi/libgoctx.inline
if ! ${CC:-cc} -std=c11 -I"$prefix/include" -o "$tmp/inline" "$tmp/inline.c" 2>"$tmp/err"; then
  cat "$tmp/err"; echo "FAIL abi: the inline layout probe does not build"; exit 1
fi
{ echo "arch $(uname -m)"; "$tmp/inline"; } >"$tmp/libgoctx.inline"
if [ "$update" = 1 ]; then
  cp "$tmp/libgoctx.inline" "$inline_base"
  echo "abi: wrote abi/libgoctx.inline"
elif [ "$(head -n 1 "$inline_base")" != "$(head -n 1 "$tmp/libgoctx.inline")" ]; then
  echo "abi: inline layout skipped: abi/libgoctx.inline is for another architecture"
elif ! diff -u "$inline_base" "$tmp/libgoctx.inline"; then
  echo "FAIL abi: the layout goctx.h's inline code reads changed from abi/libgoctx.inline"
  echo "  (above). Programs compiled against the old header read the old places. Undo"
  echo "  the change, or bump the soname and run \`make abi-update\`: see abi/README.md."
  fail=1
else
  echo "abi: libgoctx: same inline layout as abi/libgoctx.inline"
fi

[ "$fail" = 0 ] || exit 1
[ "$update" = 1 ] || echo "abi: ok"
