#!/bin/sh
# version.sh SRCDIR VERSION: the version is the same everywhere a release
# states it: CMake's project() (VERSION, passed in), the GOCTX_VERSION_*
# macros of goctx.h, and the top entry of debian/changelog (its upstream
# part, before any Debian revision).
set -u
src=$1
want=$2
fail=0
h=$src/include/goctx.h
hv=$(for p in MAJOR MINOR PATCH; do
  sed -n "s/^#define GOCTX_VERSION_$p \([0-9]*\).*/\1/p" "$h"
done | paste -sd. -)
if [ "$hv" != "$want" ]; then
  echo "FAIL version: goctx.h says $hv (GOCTX_VERSION_*), CMakeLists.txt says $want"
  fail=1
fi
if [ -f "$src/debian/changelog" ]; then
  dv=$(sed -n '1s/^[^ ]* (\([^)]*\)).*/\1/p' "$src/debian/changelog")
  dv=${dv%-*}
  if [ "$dv" != "$want" ]; then
    echo "FAIL version: debian/changelog says $dv, CMakeLists.txt says $want"
    fail=1
  fi
fi
[ "$fail" = 0 ] || exit 1
echo "version: ok, $want in CMakeLists.txt, goctx.h and debian/changelog"
