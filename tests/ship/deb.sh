#!/bin/sh
# deb.sh OUTDIR [CC [CMAKE [CXX]]]: build the Debian packages (tools/deb.sh,
# as `make deb` does, lintian included), unpack them into a scratch root
# (dpkg -x, no installation), and check what they hold:
#   - libgoctx0 holds the shared library (libgoctx.so.0 and its file) and
#     its symbols file lists the GOCTX_0 symbols; libgoctx-dev holds every public header
#     of the source tree, the static library, the .so link, goctx.pc, the
#     CMake files and the man pages;
#   - the symbol, header and man page checks pass on the unpacked tree;
#   - tests/consumer builds and runs against it, with pkg-config and with
#     find_package.
# Skipped (exit 77) when dpkg-buildpackage or debhelper is missing.
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
out=$1
cc=${2:-cc}
cmake=${3:-cmake}
cxx=${4:-g++}
mkdir -p "$out"
out=$(cd "$out" && pwd)

sh "$src/tools/deb.sh" "$out/pkg"
rc=$?
[ "$rc" = 0 ] || exit "$rc"

root=$out/root
rm -rf "$root"
mkdir -p "$root"
fail=0
for deb in "$out"/pkg/*.deb; do
  case $deb in *-dbgsym_*) continue ;; esac
  dpkg -x "$deb" "$root"
  echo "$(basename "$deb"):"
  dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { sub(/^\.\//, "", $6); print "  " $6 }'
done
multi=$(ls -d "$root"/usr/lib/*-linux-gnu* 2>/dev/null | head -n 1)
if [ -z "$multi" ]; then
  echo "FAIL deb: no usr/lib/<triplet> in the packages"
  exit 1
fi
lib=${multi#"$root"/}

# What each package must hold.
has() { # PACKAGE PATH...
  p=$1
  shift
  list=$(dpkg-deb -c "$out"/pkg/"$p"_*.deb | awk '{ print $6 }' | sed 's|^\./||')
  for f; do
    if ! printf '%s\n' "$list" | grep -qx "$f"; then
      echo "FAIL deb: $p lacks $f"
      fail=1
    fi
  done
}
has libgoctx0 "$lib/libgoctx.so.0"
has libgoctx-dev "$lib/libgoctx.a" "$lib/libgoctx.so" "$lib/pkgconfig/goctx.pc" \
  "$lib/cmake/goctx/goctxConfig.cmake" "$lib/cmake/goctx/goctxTargets.cmake" \
  usr/share/man/man7/goctx.7.gz
# Each bridge's pair: libgoctx-B0 (the library), libgoctx-B-dev (the rest).
for deb in "$out"/pkg/libgoctx-*-dev_*.deb; do
  [ -f "$deb" ] || continue
  b=$(basename "$deb" | sed 's/^libgoctx-\(.*\)-dev_.*/\1/')
  has "libgoctx-${b}0" "$lib/libgoctx-$b.so.0"
  has "libgoctx-$b-dev" "$lib/libgoctx-$b.so" "$lib/libgoctx-$b.a" \
    "$lib/pkgconfig/goctx-$b.pc" "usr/include/goctx/$b.h"
done
if dpkg-deb -c "$out"/pkg/libgoctx0_*.deb | awk '{ print $6 }' | grep -q 'include/\|\.a$'; then
  echo "FAIL deb: libgoctx0 holds development files"
  fail=1
fi
# Every public header of the source tree is in some -dev package (a
# bridge's, bridges/NAME/include/goctx/NAME.h, when that bridge is built).
for h in "$src"/include/goctx.h "$src"/include/goctx/*.h "$src"/bridges/*/include/goctx/*.h; do
  [ -f "$h" ] || continue
  case $h in
    "$src"/bridges/*)
      b=$(basename "$h" .h)
      ls "$out"/pkg/libgoctx-"$b"-dev_*.deb >/dev/null 2>&1 || {
        echo "  note: bridge $b not packaged (not built here), goctx/$b.h not checked"
        continue
      } ;;
  esac
  rel=usr/include/goctx${h##*/include/goctx}
  [ -f "$root/$rel" ] || { echo "FAIL deb: no package holds $rel"; fail=1; }
done
if ! dpkg-deb -I "$out"/pkg/libgoctx0_*.deb symbols | grep -q '^ ctx_err@GOCTX_0 '; then
  echo "FAIL deb: libgoctx0's symbols file does not name GOCTX_0"
  fail=1
fi

echo "== the shipping checks on the unpacked packages"
sh "$here/symbols.sh" "$root/usr" || fail=1
sh "$here/headers.sh" "$root/usr" "$cc" "$cxx" || fail=1
sh "$here/man.sh" "$root/usr" || fail=1

echo "== tests/consumer against the unpacked packages"
sh "$src/tests/consumer/run.sh" --prefix "$root/usr" "$out/consumer" "$cmake" "$cc" || fail=1

[ "$fail" = 0 ] || { echo "deb: FAILED"; exit 1; }
echo "deb: ok"
