#!/bin/sh
# deb.sh OUTDIR: build the Debian packages of this source tree (debian/)
# with dpkg-buildpackage -us -uc -b, from a copy of the sources in
# OUTDIR/goctx-VERSION/ (dpkg-buildpackage writes its output beside the
# tree it builds, and leaves build files inside it); the .deb files and
# OUTDIR/build.log end up in OUTDIR. Then lintian, when installed, checks
# them: its errors fail, its warnings are printed. The build profile
# pkg.goctx.NAME is on for each bridges/NAME/ (see debian/control).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
out=$1
mkdir -p "$out"
out=$(cd "$out" && pwd)
for tool in dpkg-buildpackage dh; do
  if ! command -v $tool >/dev/null 2>&1; then
    echo "deb: $tool is missing (Debian: apt-get install dpkg-dev debhelper, or make deps)"
    exit 77
  fi
done
version=$(cd "$src" && dpkg-parsechangelog -S Version)
tree=$out/goctx-$version
rm -rf "$out"/goctx-* "$out"/*.deb "$out"/*.changes "$out"/*.buildinfo "$out"/build.log
mkdir -p "$tree"
# The sources as git sees them (untracked files too, ignored ones not);
# without git, everything but build dirs.
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
  (cd "$src" && git ls-files -z --cached --others --exclude-standard |
    xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\n" "$f"; done' sh |
    tar -cf - -T -) | tar -C "$tree" -xf -
else
  (cd "$src" && tar --exclude=./build --exclude='./obj-*' -cf - .) | tar -C "$tree" -xf -
fi
profiles=
for d in "$tree"/bridges/*/; do
  b=$(basename "$d")
  [ -f "$d/$b.c" ] || continue    # a bridge is bridges/NAME/NAME.c
  profiles=${profiles:+$profiles,}pkg.goctx.$b
done
profiles=${profiles:+-P$profiles}
echo "deb: dpkg-buildpackage -us -uc -b${profiles:+ $profiles} in $tree (log: $out/build.log)"
# shellcheck disable=SC2086  # $profiles is one word or none
(cd "$tree" && sh "$here/quiet.sh" "$out/build.log" dpkg-buildpackage -us -uc -b $profiles)
ls "$out"/*.deb | sed 's|.*/|  |'
if command -v lintian >/dev/null 2>&1; then
  changes=$(ls "$out"/*.changes | head -n 1)
  lintian --fail-on error "$changes" >"$out/lintian.log" 2>&1 || {
    cat "$out/lintian.log"
    echo "deb: lintian found errors (above)"
    exit 1
  }
  n=$(grep -c '^W:' "$out/lintian.log" || true)
  echo "deb: lintian: no errors, $n warnings"
  grep '^W:' "$out/lintian.log" | sed 's/^/  /' || true
else
  echo "deb: lintian is not installed: not checked (apt-get install lintian)"
fi
