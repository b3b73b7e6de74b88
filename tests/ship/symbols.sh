#!/bin/sh
# symbols.sh PREFIX: every installed shared library exports exactly the
# functions its public headers declare (see lib.sh for which header belongs
# to which library), and the symbols of libgoctx (and of any library with a
# version script) all carry a GOCTX_ version node.
# Fails on an exported symbol no public header declares (an internal
# function leaking: name it ctx__... / chan__..., or make it static) and on
# a declared function with no exported symbol (not defined, or missing from
# the library's version script, src/libgoctx.map for libgoctx).
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
prefix=$(cd "$1" && pwd) || exit 1
libdir=$(ship_libdir "$prefix") || exit 1
tmp=${TMPDIR:-/tmp}/ship-symbols.$$
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
fail=0

for h in $(ship_headers "$prefix"); do
  lib=$(ship_header_lib "$prefix" "$h")
  ship_decls "$prefix" "$h" extern >>"$tmp/$lib.extern" || fail=1
  ship_decls "$prefix" "$h" inline >>"$tmp/$lib.inline" || fail=1
  # Objects (extern variables) a header declares, by word: rare, allowed.
  tr -c 'A-Za-z0-9_' '\n' <"$h" >>"$tmp/$lib.words"
done
[ "$fail" = 0 ] || exit 1

total=0
for so in "$libdir"/libgoctx*.so; do
  lib=$(basename "$so" .so)
  real=$(readlink -f "$so")
  [ -f "$tmp/$lib.extern" ] || : >"$tmp/$lib.extern"
  [ -f "$tmp/$lib.inline" ] || : >"$tmp/$lib.inline"
  [ -f "$tmp/$lib.words" ] || : >"$tmp/$lib.words"
  ship_exports "$real" >"$tmp/$lib.exports"
  sed 's/@.*//' "$tmp/$lib.exports" | sort -u >"$tmp/$lib.names"
  sort -u "$tmp/$lib.extern" -o "$tmp/$lib.extern"
  sort -u "$tmp/$lib.extern" "$tmp/$lib.inline" >"$tmp/$lib.allowed"
  n=$(wc -l <"$tmp/$lib.names")
  total=$((total + n))
  echo "$lib ($(basename "$real")): $n exported symbols, $(wc -l <"$tmp/$lib.extern") public functions"

  # Exported but not a public function: allowed only for a data object a
  # header names (an extern variable).
  ship_objects "$real" >"$tmp/$lib.objects"
  comm -23 "$tmp/$lib.names" "$tmp/$lib.allowed" >"$tmp/extra"
  while read -r s; do
    if grep -qx "$s" "$tmp/$lib.objects" && grep -qx "$s" "$tmp/$lib.words"; then
      echo "  $s: exported object, named in a header"
    else
      echo "FAIL $lib exports $s, which no public header declares"
      fail=1
    fi
  done <"$tmp/extra"
  comm -13 "$tmp/$lib.names" "$tmp/$lib.extern" | sed "s/^/FAIL $lib does not export public function /"
  [ -z "$(comm -13 "$tmp/$lib.names" "$tmp/$lib.extern")" ] || fail=1

  # libgoctx (src/libgoctx.map) and every library with a version script:
  # each symbol in a version node.
  if [ "$lib" = libgoctx ] || grep -q '@' "$tmp/$lib.exports"; then
    bad=$(grep -v '@GOCTX_' "$tmp/$lib.exports")
    if [ -n "$bad" ]; then
      echo "FAIL $lib symbols without a GOCTX_ version node (its version script):"
      echo "$bad" | sed 's/^/  /'
      fail=1
    fi
    echo "  version nodes: $(sed -n 's/.*@//p' "$tmp/$lib.exports" | sort | uniq -c | awk '{ printf "%s%s (%d)", (NR > 1 ? ", " : ""), $2, $1 }')"
  else
    echo "  note: $lib has no version script (its symbols are unversioned)"
  fi
  rm -f "$tmp/$lib.extern"
done

# A header whose library is not installed (its functions went nowhere).
for f in "$tmp"/*.extern; do
  [ -f "$f" ] || continue
  echo "FAIL functions declared for $(basename "$f" .extern).so, which is not installed:"
  sed 's/^/  /' "$f"
  fail=1
done

if [ "$fail" != 0 ]; then
  echo "symbols: FAILED"
  exit 1
fi
echo "symbols: ok, $total exported symbols in all, each declared in a public header"
