#!/bin/sh
# build.sh OUTDIR VERSION SCDOC PAGE.N.scd...: turn every page into
# OUTDIR/manN/PAGE.N with scdoc, and give every other name in a page's NAME
# section a link page, OUTDIR/manN/OTHER.N holding ".so manN/PAGE.N", so
# that `man OTHER` finds it.
set -eu
out=$1
version=$2
scdoc=$3
shift 3
rm -rf "$out"
mkdir -p "$out"
for f; do
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
