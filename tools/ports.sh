#!/bin/sh
# tools/ports.sh: build goctx for other C libraries and CPUs and run every
# example (examples/*.c, seed last) there. `make ports` runs it; `make
# deps-ports` installs the tools. One line per target on stdout:
#
#   ports: musl           musl-gcc, x86-64, Linux backend (futex)
#   ports: musl-portable  musl-gcc, x86-64, POSIX backend (GOCTX_PORTABLE=1)
#   ports: i386           gcc -m32, glibc, Linux backend
#   ports: i386-portable  gcc -m32, glibc, POSIX backend
#   ports: i386-time64    gcc -m32, glibc with a 64-bit time_t (_TIME_BITS=64, as
#                         musl has on every 32-bit CPU): futex_time64
#   ports: aarch64        aarch64-linux-gnu-gcc, glibc, under qemu-aarch64
#   ports: aarch64-portable  the same, POSIX backend
#
# Each target compiles the library from the plain compiler line the README
# shows (no build system), with -Wall -Wextra -Werror, links every example
# against it and runs it (TIMEOUT seconds each), or, as `make demo` does,
# runs examples/NAME.sh with the directory of the programs when there is one
# (under qemu each program there is a wrapper script that starts the real
# one under the emulator). Logs: $OUT/<target>/.
# PORTS="musl i386" limits the run to those targets. Exit status: the
# number of targets that failed (0: all passed).
set -u
cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-build/ports}
TIMEOUT=${TIMEOUT:-120}
PORTS=${PORTS:-musl musl-portable i386 i386-portable i386-time64 aarch64 aarch64-portable}
CFLAGS_COMMON="-std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror -Iinclude"

examples=$(cd examples && ls *.c | sed 's/\.c$//' | LC_ALL=C sort | grep -vx seed)
[ -f examples/seed.c ] && examples="$examples seed"

qemu_aarch64() {
	for q in qemu-aarch64 qemu-aarch64-static; do
		command -v "$q" >/dev/null 2>&1 && { echo "$q"; return 0; }
	done
	return 1
}

# gcc -m32 needs <asm/...> (errno.h includes it). gcc-multilib provides it,
# but on Debian gcc-multilib conflicts with the aarch64 cross compiler, so
# make deps-ports installs the 32-bit libraries without it; then point -m32
# at the native kernel headers' asm/ (the x86 ones serve both word sizes).
m32_flags() {
	if echo '#include <errno.h>' | gcc -m32 -E -x c - >/dev/null 2>&1; then
		echo "-m32"
		return
	fi
	inc=$OUT/m32-include
	mkdir -p "$inc"
	arch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
	ln -sfn "/usr/include/$arch/asm" "$inc/asm"
	echo "-m32 -idirafter $inc"
}

# port TARGET CC FLAGS RUNNER: build and run; prints the target's line.
port() {
	t=$1 cc=$2 flags=$3 runner=$4
	dir=$OUT/$t
	rm -rf "$dir"
	mkdir -p "$dir/obj" "$dir/bin"
	if ! command -v "${cc%% *}" >/dev/null 2>&1; then
		printf 'ports: %-16s FAILED: no %s (make deps-ports)\n' "$t" "${cc%% *}"
		return 1
	fi
	objs=""
	for src in src/*/*.c; do
		o=$dir/obj/$(echo "$src" | sed 's|^src/||; s|/|_|g; s|\.c$|.o|')
		# shellcheck disable=SC2086
		if ! $cc $CFLAGS_COMMON $flags -c "$src" -o "$o" >>"$dir/build.log" 2>&1; then
			printf 'ports: %-16s FAILED: compiling %s (%s)\n' "$t" "$src" "$dir/build.log"
			return 1
		fi
		objs="$objs $o"
	done
	n=0
	for e in $examples; do
		exe=$dir/bin/$e
		[ -n "$runner" ] && exe=$dir/bin/real/$e && mkdir -p "$dir/bin/real"
		# shellcheck disable=SC2086
		if ! $cc $CFLAGS_COMMON $flags "examples/$e.c" $objs -lpthread -o "$exe" \
		     >>"$dir/build.log" 2>&1; then
			printf 'ports: %-16s FAILED: linking examples/%s (%s)\n' "$t" "$e" "$dir/build.log"
			return 1
		fi
		if [ -n "$runner" ]; then
			printf '#!/bin/sh\nexec %s "%s" "$@"\n' "$runner" "$(cd "$dir/bin/real" && pwd)/$e" \
				>"$dir/bin/$e"
			chmod +x "$dir/bin/$e"
		fi
	done
	for e in $examples; do
		if [ -f "examples/$e.sh" ]; then
			timeout "$TIMEOUT" sh "examples/$e.sh" "$dir/bin" >"$dir/$e.log" 2>&1
		else
			timeout "$TIMEOUT" "$dir/bin/$e" >"$dir/$e.log" 2>&1
		fi
		rc=$?
		if [ $rc != 0 ]; then
			printf 'ports: %-16s FAILED: examples/%s exit %s (%s)\n' "$t" "$e" "$rc" "$dir/$e.log"
			return 1
		fi
		n=$((n + 1))
	done
	printf 'ports: %-16s ok: library built, %d examples passed (%s)\n' "$t" "$n" "$cc $flags"
	return 0
}

failed=0
for t in $PORTS; do
	case $t in
	musl) port musl musl-gcc "" "" ;;
	musl-portable) port musl-portable musl-gcc "-DGOCTX_PORTABLE=1" "" ;;
	i386) port i386 gcc "$(m32_flags)" "" ;;
	i386-portable) port i386-portable gcc "$(m32_flags) -DGOCTX_PORTABLE=1" "" ;;
	i386-time64) port i386-time64 gcc "$(m32_flags) -D_FILE_OFFSET_BITS=64 -D_TIME_BITS=64" "" ;;
	aarch64 | aarch64-portable)
		flags=""
		[ "$t" = aarch64-portable ] && flags="-DGOCTX_PORTABLE=1"
		if q=$(qemu_aarch64); then
			port "$t" aarch64-linux-gnu-gcc "$flags" "$q -L /usr/aarch64-linux-gnu"
		else
			printf 'ports: %-16s FAILED: no qemu-aarch64 (make deps-ports)\n' "$t"
			false
		fi
		;;
	*) printf 'ports: %-16s FAILED: unknown target\n' "$t"; false ;;
	esac || failed=$((failed + 1))
done
exit $failed
