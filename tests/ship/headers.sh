#!/bin/sh
# headers.sh PREFIX [CC [CXX]]: every installed public header compiles on
# its own, included twice, as C11, C17 and C23 (C2x where the compiler has
# no -std=c23) with CC, and as C++17 with CXX, all with -Wall -Wextra
# -Werror -pedantic. The libraries a bridge header includes (found through
# its pkg-config file) are system headers here: their warnings are theirs.
# The core's headers get no feature macro at all; a bridge header gets
# _POSIX_C_SOURCE=200809L, which the libraries it includes need under a
# strict -std (libuv's uv.h uses pthread_rwlock_t), as their users have.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
prefix=$(cd "$1" && pwd) || exit 1
cc=${2:-cc}
cxx=${3:-g++}
tmp=${TMPDIR:-/tmp}/ship-headers.$$
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT

c23=c23
echo 'int x;' | "$cc" -std=c23 -x c -fsyntax-only - 2>/dev/null || c23=c2x
have_cxx=1
command -v "$cxx" >/dev/null 2>&1 || have_cxx=0

fail=0
n=0
for h in $(ship_headers "$prefix"); do
  rel=${h#"$prefix"/include/}
  owner=$(ship_header_lib "$prefix" "$h")
  flags=
  [ "$owner" = libgoctx ] || flags=-D_POSIX_C_SOURCE=200809L
  for f in $(ship_cflags "$prefix" "$owner"); do
    case $f in
      -I"$prefix"/include | -I*/lib/pkgconfig/../../include) flags="$flags $f" ;;
      -I*) flags="$flags -isystem ${f#-I}" ;;
      *) flags="$flags $f" ;;
    esac
  done
  printf '#include <%s>\n#include <%s>\n' "$rel" "$rel" >"$tmp/t.c"
  cp "$tmp/t.c" "$tmp/t.cpp"
  for std in c11 c17 $c23; do
    # shellcheck disable=SC2086  # flags are words
    if "$cc" -std=$std -Wall -Wextra -Werror -pedantic -I"$prefix/include" $flags \
         -fsyntax-only "$tmp/t.c" 2>"$tmp/err"; then
      n=$((n + 1))
    else
      echo "FAIL $rel as $std ($cc):"; cat "$tmp/err"; fail=1
    fi
  done
  if [ "$have_cxx" = 1 ]; then
    # shellcheck disable=SC2086
    if "$cxx" -std=c++17 -Wall -Wextra -Werror -pedantic -I"$prefix/include" $flags \
         -fsyntax-only "$tmp/t.cpp" 2>"$tmp/err"; then
      n=$((n + 1))
    else
      echo "FAIL $rel as C++17 ($cxx):"; cat "$tmp/err"; fail=1
    fi
  fi
  echo "  $rel ($owner)"
done
if [ "$have_cxx" = 0 ]; then
  echo "FAIL headers: no C++ compiler ($cxx; Debian: apt-get install g++, or make deps)"
  fail=1
fi
[ "$fail" = 0 ] || { echo "headers: FAILED"; exit 1; }
echo "headers: ok, $n compilations (c11 c17 $c23 with $cc; c++17 with $cxx)"
