#!/bin/sh
# build.sh SRCDIR OUTDIR VERSION [SCDOC]: turn every SRCDIR/NAME.N.scd into
# OUTDIR/manN/NAME.N with scdoc, and give every other name in a page's NAME
# section a link page, OUTDIR/manN/OTHER.N holding ".so manN/NAME.N", so
# that `man OTHER` finds it.
set -eu
src=$1
out=$2
version=$3
scdoc=${4:-scdoc}
rm -rf "$out"
mkdir -p "$out"
for f in "$src"/*.scd; do
  page=$(basename "$f" .scd)     # ctx_wait.3
  name=${page%.*}
  sect=${page##*.}
  mkdir -p "$out/man$sect"
  sed "s/@VERSION@/$version/g" "$f" | "$scdoc" >"$out/man$sect/$page"
  # The NAME section is one line: "a, b, c - what they do".
  names=$(awk '/^# NAME/ { on = 1; next } on && NF { print; exit }' "$f" |
    sed 's/ - .*//; s/,/ /g')
  for n in $names; do
    [ "$n" = "$name" ] && continue
    if [ -e "$out/man$sect/$n.$sect" ]; then
      echo "man/build.sh: $n.$sect is named by two pages" >&2
      exit 1
    fi
    echo ".so man$sect/$page" >"$out/man$sect/$n.$sect"
  done
done
touch "$out/stamp"
