#!/bin/sh
# install.sh BUILD_DIR PREFIX [CMAKE]: install a build into a fresh PREFIX,
# the tree the shipping checks read (the fixture of tests/ship's tests).
set -eu
rm -rf "$2"
"${3:-cmake}" --install "$1" --prefix "$2" >/dev/null
echo "installed $1 into $2:"
(cd "$2" && find . -type f -o -type l | LC_ALL=C sort | sed 's/^/  /')
