#!/bin/sh
# man.sh PREFIX: the installed man pages (PREFIX/share/man) document every
# function of the installed public headers, name no function the headers do
# not declare, link every name they document (.so pages), include goctx(7),
# and render without a warning (groff -ww, and man --warnings as lintian
# runs it). Pages may be gzipped, as in a Debian package.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
prefix=$(cd "$1" && pwd) || exit 1
mandir=$prefix/share/man
if [ ! -d "$mandir/man3" ]; then
  echo "FAIL man: no man pages under $mandir (scdoc missing when the build was"
  echo "  configured? Debian: apt-get install scdoc, or make deps; then reconfigure)"
  exit 1
fi
tmp=${TMPDIR:-/tmp}/ship-man.$$
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
fail=0

: >"$tmp/declared"
: >"$tmp/missing"
for h in $(ship_headers "$prefix"); do
  rel=${h#"$prefix"/include/}
  ship_decls "$prefix" "$h" extern >"$tmp/extern" || exit 1
  ship_decls "$prefix" "$h" inline >>"$tmp/declared" || exit 1
  cat "$tmp/extern" >>"$tmp/declared"
  while read -r f; do
    [ -e "$mandir/man3/$f.3" ] || [ -e "$mandir/man3/$f.3.gz" ] ||
      echo "$rel $f" >>"$tmp/missing"
  done <"$tmp/extern"
done
sort -u "$tmp/declared" -o "$tmp/declared"
if [ -s "$tmp/missing" ]; then
  echo "FAIL man: public functions no man page documents:"
  awk '{ printf "  %-22s %s\n", $1, $2 }' "$tmp/missing"
  echo "  Write man/FAMILY.3.scd for them: its NAME line lists every function the"
  echo "  page documents (each gets a link page); man/ctx_wait.3.scd is a model."
  fail=1
fi

pages=0
links=0
for f in "$mandir"/man*/*; do
  rel=${f#"$mandir"/}
  name=$(basename "$f" .gz)
  sect=${name##*.}
  name=${name%.*}
  if [ "$sect" = 3 ] && ! grep -qx "$name" "$tmp/declared"; then
    echo "FAIL man: $rel documents $name, which no public header declares"
    fail=1
  fi
  if [ -L "$f" ]; then  # a link page made a symlink (debhelper does)
    if [ ! -e "$f" ]; then
      echo "FAIL man: $rel is a dangling symlink"
      fail=1
    fi
    links=$((links + 1))
    continue
  fi
  if zcat -f "$f" | head -n 1 | grep -q '^\.so '; then
    target=$(zcat -f "$f" | head -n 1 | sed 's/^\.so //')
    if [ ! -f "$mandir/$target" ] && [ ! -f "$mandir/$target.gz" ]; then
      echo "FAIL man: $rel links to $target, which is not installed"
      fail=1
    fi
    links=$((links + 1))
    continue
  fi
  pages=$((pages + 1))
  out=$(cd "$mandir" && zcat -f "$rel" | groff -ww -z -man -Tutf8 2>&1)
  if [ -n "$out" ]; then
    echo "FAIL man: groff -ww warns on $rel:"; echo "$out" | sed 's/^/  /'; fail=1
  fi
  if command -v man >/dev/null 2>&1; then
    out=$(cd "$mandir" && LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 \
      man --warnings -E UTF-8 -l -Tutf8 -Z "$rel" 2>&1 >/dev/null)
    if [ -n "$out" ]; then
      echo "FAIL man: man --warnings warns on $rel:"; echo "$out" | sed 's/^/  /'; fail=1
    fi
  fi
done
if [ ! -f "$mandir/man7/goctx.7" ] && [ ! -f "$mandir/man7/goctx.7.gz" ]; then
  echo "FAIL man: goctx(7) is not installed"
  fail=1
fi
[ "$fail" = 0 ] || { echo "man: FAILED"; exit 1; }
echo "man: ok, $pages pages and $links links; every public function documented"
