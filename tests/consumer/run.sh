#!/bin/sh
# Install a goctx build into a scratch prefix, then build tests/consumer against
# it with pkg-config and with CMake's find_package, and run what was built;
# likewise tests/consumer/bridge_NAME.c for each bridge installed (goctx-NAME.pc).
#   run.sh BUILD_DIR WORK_DIR [CMAKE [CC]]
#   run.sh --prefix PREFIX WORK_DIR [CMAKE [CC]]   use an install already made
#                                                  (tests/ship/deb.sh: packages)
set -eu
installed=
if [ "$1" = --prefix ]; then
  installed=$2
  shift 2
  set -- - "$@"
fi
build=$1
work=$2
cmake=${3:-cmake}
cc=${4:-cc}
here=$(cd "$(dirname "$0")" && pwd)

rm -rf "$work"
mkdir -p "$work"
if [ -n "$installed" ]; then
  prefix=$installed
else
  prefix=$work/prefix
  echo "== install into $prefix"
  "$cmake" --install "$build" --prefix "$prefix"
fi
libdir=$(dirname "$(find "$prefix" -name goctx.pc)")/..
libdir=$(cd "$libdir" && pwd)

echo "== pkg-config"
PKG_CONFIG_PATH=$libdir/pkgconfig
export PKG_CONFIG_PATH
flags=$(pkg-config --cflags --libs goctx)
echo "pkg-config --cflags --libs goctx: $flags"
# shellcheck disable=SC2086  # flags are words
"$cc" -std=c11 -Wall -Wextra -Werror -o "$work/consumer_pc" "$here/main.c" $flags
LD_LIBRARY_PATH=$libdir "$work/consumer_pc"

# Each bridge that was built (its goctx-NAME.pc installed): a program of its
# own, with nothing but pkg-config's flags.
for b in uv glib curl; do
	[ -f "$libdir/pkgconfig/goctx-$b.pc" ] || { echo "== goctx-$b: not built, skipped"; continue; }
	flags=$(pkg-config --cflags --libs "goctx-$b")
	echo "pkg-config --cflags --libs goctx-$b: $flags"
	# shellcheck disable=SC2086  # flags are words
	"$cc" -std=c11 -Wall -Wextra -Werror -o "$work/consumer_$b" "$here/bridge_$b.c" $flags
	LD_LIBRARY_PATH=$libdir "$work/consumer_$b"
done

echo "== find_package"
"$cmake" -S "$here" -B "$work/cmake" -DCMAKE_C_COMPILER="$cc" \
  -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=RelWithDebInfo
"$cmake" --build "$work/cmake"
LD_LIBRARY_PATH=$libdir "$work/cmake/consumer_shared"
"$work/cmake/consumer_static"
echo "== install_consumer: ok"
