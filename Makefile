# goctx: a wrapper around CMake. Every build dir lives under build/.
#
#   make deps      check the tools and libraries; as root, apt-get what is missing
#   make           build the plain configuration (build/plain)
#   make test      four configurations, each built and run with ctest:
#                    build/plain  gcc   -O2 -g
#                    build/asan   clang ASan+UBSan
#                    build/tsan   gcc   TSan
#                    build/portable clang ASan+UBSan, GOCTX_PORTABLE=ON (POSIX backend)
#   make demo      build, then run every example (bridges/*/example.c as
#                  NAME_example; examples/NAME.sh instead of the program when
#                  there is one; `seed` last)
#                  (build steps are quiet: their output goes to build/*/build.log,
#                  shown only if a step fails; V=1 shows it as it comes)
#   make install   install the plain build under PREFIX (/usr/local)
#   make abi-update  record the plain build's ABI as the baseline, abi/*.abi
#                  (after adding functions, or with a soname bump: README, "Symbols, ABI")
#   make deb       the Debian packages (debian/) in build/deb/, checked by lintian
#   make bench     optimised build (build/bench); bench/run.sh: one table of every op,
#                  goctx and its peers (shared/bench peers, bench/go-*) from one run
#   make bench-io  goctx-io-bench beside its Go peer (bench/go-io), then httpd beside
#                  net/http (bench/go-httpd) under the same wrk run
#   make scaling   redraw docs/scaling.png (goctx and Go, 1k..1M timers and nodes)
#   make valgrind  memcheck over every test and example (also: make helgrind, make drd;
#                  slow, not part of make test; suppressions in tests/*.supp)
#   make ports     build the library and run every example for musl, i386 and aarch64
#                  (qemu-user): tools/ports.sh, one line per target; not part of make test
#                  (make deps-ports installs its tools)
#   make fuzz      clang+ASan build (build/fuzz) of goctx-fuzz, run FUZZ_SECONDS on
#                  fuzz/corpus (new inputs go to build/fuzz/fuzz/corpus-run)
#   make fuzz-chan the same for goctx-fuzz-chan (channels) on fuzz/corpus-chan
#   make stress    TSan build (build/tsan) of goctx-stress, run for DURATION seconds
#   make clean

PREFIX       ?= /usr/local
SHARED       ?= ../shared
FUZZ_SECONDS ?= 60
DURATION     ?= 10
CMAKE        ?= cmake
CTEST        ?= ctest
JOBS         ?= $(shell nproc 2>/dev/null || echo 2)
CTEST_JOBS   ?= 2
B            := build
QUIET        := sh tools/quiet.sh
RUN_CTEST    := SUMMARY=$(B)/test-summary.txt sh tools/ctest.sh

export ASAN_OPTIONS  ?= detect_leaks=1:halt_on_error=1
export UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1
export TSAN_OPTIONS  ?= halt_on_error=1 second_deadlock_stack=1 atexit_sleep_ms=0

# $(call configure,DIR,CC,SANITIZE,FLAGS[,EXTRA]): (re)configure a build dir.
# FLAGS replace the build type's own (RelWithDebInfo keeps asserts on here).
define configure
$(CMAKE) -S . -B $(1) -DCMAKE_C_COMPILER=$(2) -DGOCTX_SANITIZE=$(3) \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS_RELWITHDEBINFO="$(4)" \
	  -DCMAKE_INSTALL_PREFIX=$(PREFIX) $(5)
endef

# $(call tsan_prefix,PROGRAM): sets shell variable `run` to what TSan programs
# must be started under. TSan dies with "unexpected memory mapping" on kernels
# with many mmap random bits; with ASLR off (setarch -R) it works.
define tsan_prefix
run=""; \
	if ! $(1) >/dev/null 2>&1; then \
	  if setarch "$$(uname -m)" -R $(1) >/dev/null 2>&1; then \
	    run="setarch $$(uname -m) -R"; echo "TSan needs ASLR off on this kernel: running under $$run"; \
	  else echo "TSan does not run here:"; $(1); exit 1; fi; \
	fi
endef

.PHONY: all build deps test test-plain test-asan test-tsan demo install bench scaling fuzz fuzz-chan stress clean

all: build

deps:
	@have() { command -v "$$1" >/dev/null 2>&1; }; \
	pkgs=""; \
	have cmake      || pkgs="$$pkgs cmake"; \
	have gcc        || pkgs="$$pkgs gcc"; \
	have clang      || pkgs="$$pkgs clang"; \
	have pkg-config || pkgs="$$pkgs pkg-config"; \
	have g++        || pkgs="$$pkgs g++"; \
	have abidiff    || pkgs="$$pkgs abigail-tools"; \
	have scdoc      || pkgs="$$pkgs scdoc"; \
	have groff      || pkgs="$$pkgs groff-base"; \
	have dpkg-buildpackage || pkgs="$$pkgs dpkg-dev"; \
	have dh         || pkgs="$$pkgs debhelper"; \
	have lintian    || pkgs="$$pkgs lintian"; \
	{ have pkg-config && pkg-config --exists cmocka; } || pkgs="$$pkgs libcmocka-dev"; \
	[ -d /usr/share/gocode/src/golang.org/x/sync ] || pkgs="$$pkgs golang-golang-x-sync-dev"; \
	have curl       || pkgs="$$pkgs curl"; \
	have wrk        || pkgs="$$pkgs wrk"; \
	have python3    || pkgs="$$pkgs python3"; \
	have ip         || pkgs="$$pkgs iproute2"; \
	{ have pkg-config && pkg-config --exists libuv; } || pkgs="$$pkgs libuv1-dev"; \
	{ have pkg-config && pkg-config --exists gio-2.0 gio-unix-2.0; } || pkgs="$$pkgs libglib2.0-dev"; \
	{ have pkg-config && pkg-config --exists libcurl; } || pkgs="$$pkgs libcurl4-openssl-dev"; \
	if have clang && ! echo 'int main(void){return 0;}' | \
	     clang -fsanitize=address,undefined -x c -o /dev/null - >/dev/null 2>&1; then \
	  pkgs="$$pkgs libclang-rt-$$(clang -dumpversion | cut -d. -f1)-dev"; \
	fi; \
	if [ -z "$$pkgs" ]; then echo "deps: all present"; exit 0; fi; \
	cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y$$pkgs"; \
	if [ "$$(id -u)" != 0 ]; then echo "deps: missing, run as root: $$cmd"; exit 1; fi; \
	echo "deps: $$cmd"; \
	apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$pkgs || exit 1; \
	if ! echo 'int main(void){return 0;}' | \
	     clang -fsanitize=address,undefined -x c -o /dev/null - >/dev/null 2>&1; then \
	  rt="libclang-rt-$$(clang -dumpversion | cut -d. -f1)-dev"; \
	  echo "deps: apt-get install -y $$rt"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y $$rt || exit 1; \
	fi

# Build steps run through $(QUIET) LOG ...: output in LOG, printed only on failure.
build:
	@echo "build: gcc -O2 -g in $(B)/plain (log: $(B)/plain/build.log)"
	@rm -f $(B)/plain/build.log
	@$(QUIET) $(B)/plain/build.log $(call configure,$(B)/plain,gcc,,-O2 -g)
	@$(QUIET) $(B)/plain/build.log $(CMAKE) --build $(B)/plain -j $(JOBS)

# Each test-* target runs its ctest through $(RUN_CTEST) NAME DIR ctest...:
# the output goes to DIR/test.log (printed in full on failure), one summary
# line is printed and kept for `make test` to print all of them at the end.
test: deps
	@rm -f $(B)/test-summary.txt
	@$(MAKE) --no-print-directory test-plain
	@$(MAKE) --no-print-directory test-asan
	@$(MAKE) --no-print-directory test-tsan
	@$(MAKE) --no-print-directory test-portable
	@sh tools/ctest.sh --print $(B)/test-summary.txt

test-plain: build
	@$(RUN_CTEST) plain $(B)/plain $(CTEST) --output-on-failure -j$(CTEST_JOBS)

test-asan:
	@echo "build: clang ASan+UBSan -O1 -g in $(B)/asan (log: $(B)/asan/build.log)"
	@rm -f $(B)/asan/build.log
	@$(QUIET) $(B)/asan/build.log $(call configure,$(B)/asan,clang,address,-O1 -g)
	@$(QUIET) $(B)/asan/build.log $(CMAKE) --build $(B)/asan -j $(JOBS)
	@$(RUN_CTEST) asan $(B)/asan $(CTEST) --output-on-failure -j$(CTEST_JOBS)

test-tsan: $(B)/tsan/tsan-probe
	@echo "build: gcc TSan -O1 -g in $(B)/tsan (log: $(B)/tsan/build.log)"
	@rm -f $(B)/tsan/build.log
	@$(QUIET) $(B)/tsan/build.log $(call configure,$(B)/tsan,gcc,thread,-O1 -g)
	@$(QUIET) $(B)/tsan/build.log $(CMAKE) --build $(B)/tsan -j $(JOBS)
	@$(call tsan_prefix,$(B)/tsan/tsan-probe); \
	$(RUN_CTEST) tsan $(B)/tsan $$run $(CTEST) --output-on-failure -j$(CTEST_JOBS)

# The POSIX backend of src/os (parking lot, socket pair) on Linux.
.PHONY: test-portable
test-portable:
	@echo "build: clang ASan+UBSan -O1 -g, GOCTX_PORTABLE=ON in $(B)/portable (log: $(B)/portable/build.log)"
	@rm -f $(B)/portable/build.log
	@$(QUIET) $(B)/portable/build.log $(call configure,$(B)/portable,clang,address,-O1 -g,-DGOCTX_PORTABLE=ON)
	@$(QUIET) $(B)/portable/build.log $(CMAKE) --build $(B)/portable -j $(JOBS)
	@$(RUN_CTEST) portable $(B)/portable $(CTEST) --output-on-failure -j$(CTEST_JOBS)

# A threaded do-nothing program built like the TSan tests, to see if TSan runs.
$(B)/tsan/tsan-probe:
	@mkdir -p $(@D)
	@printf '#include <pthread.h>\nstatic void *f(void *a) { return a; }\nint main(void) { pthread_t t; if (pthread_create(&t, 0, f, 0)) return 1; return pthread_join(t, 0); }\n' | \
	  gcc -fsanitize=thread -pthread -x c -o $@ -

demo:
	@echo "demo: building goctx and its examples, then running each example"
	@$(MAKE) --no-print-directory deps build
	@set -e; names=$$(cd examples && ls *.c 2>/dev/null | sed 's/\.c$$//' | LC_ALL=C sort | grep -vx seed || true); \
	for b in $$(ls bridges/*/example.c 2>/dev/null | cut -d/ -f2); do \
	  [ -x $(B)/plain/examples/$${b}_example ] && names="$$names $${b}_example"; \
	done; \
	[ -f examples/seed.c ] && names="$$names seed"; \
	for n in $$names; do \
	  echo; echo "===== examples/$$n ====="; \
	  if [ -f examples/$$n.sh ]; then sh examples/$$n.sh $(B)/plain/examples; else $(B)/plain/examples/$$n; fi \
	    || { echo "===== examples/$$n FAILED (exit $$?)"; exit 1; }; \
	done; echo; echo "===== demo: all examples passed"

install: build
	$(CMAKE) --install $(B)/plain --prefix $(PREFIX)

.PHONY: abi-update
abi-update: build
	@sh tests/ship/install.sh $(B)/plain $(B)/plain/abi-prefix $(CMAKE) >/dev/null
	@sh tests/ship/abi.sh --update $(B)/plain/abi-prefix .

# Built from a copy of the sources (tools/deb.sh); the test ship_deb builds
# them too, unpacks them and builds tests/consumer against them.
.PHONY: deb
deb: deps
	@sh tools/deb.sh $(B)/deb

bench:
	$(CMAKE) -S . -B $(B)/bench -DCMAKE_C_COMPILER=gcc -DGOCTX_SANITIZE= \
	  -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS_RELEASE="-O2 -DNDEBUG" \
	  -DGOCTX_TESTS=OFF -DGOCTX_EXAMPLES=OFF
	$(CMAKE) --build $(B)/bench -j $(JOBS) --target goctx-benchmarks
	SHARED=$(SHARED) bench/run.sh $(B)/bench

# I/O: goctx-io-bench and bench/go-io in one sitting, then examples/httpd
# (the plain build, -O2) and bench/go-httpd under the same wrk run.
.PHONY: bench-io
bench-io: build
	$(CMAKE) -S . -B $(B)/bench -DCMAKE_C_COMPILER=gcc -DGOCTX_SANITIZE= \
	  -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS_RELEASE="-O2 -DNDEBUG" \
	  -DGOCTX_TESTS=OFF -DGOCTX_EXAMPLES=OFF
	$(CMAKE) --build $(B)/bench -j $(JOBS) --target goctx-io-bench
	bench/go-io/compare.sh $(B)/bench/bench/goctx-io-bench
	bench/httpd_compare.sh $(B)/plain/examples/httpd

# The scaling chart (docs/scaling.png): goctx and Go as timers and trees grow.
scaling:
	$(CMAKE) -S . -B $(B)/bench -DCMAKE_C_COMPILER=gcc -DGOCTX_SANITIZE= \
	  -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS_RELEASE="-O2 -DNDEBUG" \
	  -DGOCTX_TESTS=OFF -DGOCTX_EXAMPLES=OFF
	$(CMAKE) --build $(B)/bench -j $(JOBS) --target goctx-scaling
	SHARED=$(SHARED) bench/scaling.sh $(B)/bench/bench/goctx-scaling

fuzz:
	$(call configure,$(B)/fuzz,clang,address,-O1 -g,-DGOCTX_TESTS=OFF -DGOCTX_EXAMPLES=OFF)
	$(CMAKE) --build $(B)/fuzz -j $(JOBS) --target goctx-fuzz
	mkdir -p $(B)/fuzz/fuzz/corpus-run
	$(B)/fuzz/fuzz/goctx-fuzz -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	  $(B)/fuzz/fuzz/corpus-run fuzz/corpus

fuzz-chan:
	$(call configure,$(B)/fuzz,clang,address,-O1 -g,-DGOCTX_TESTS=OFF -DGOCTX_EXAMPLES=OFF)
	$(CMAKE) --build $(B)/fuzz -j $(JOBS) --target goctx-fuzz-chan
	mkdir -p $(B)/fuzz/fuzz/corpus-chan-run
	$(B)/fuzz/fuzz/goctx-fuzz-chan -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	  $(B)/fuzz/fuzz/corpus-chan-run fuzz/corpus-chan

stress: $(B)/tsan/tsan-probe
	$(call configure,$(B)/tsan,gcc,thread,-O1 -g)
	$(CMAKE) --build $(B)/tsan -j $(JOBS) --target goctx-stress
	@$(call tsan_prefix,$(B)/tsan/tsan-probe); \
	echo "$$run $(B)/tsan/stress/goctx-stress $(DURATION)"; \
	$$run $(B)/tsan/stress/goctx-stress $(DURATION)

# ---- ports: other C libraries and CPUs (tools/ports.sh) ----
# Not part of `make test`. deps-ports installs the tools as root, as `make
# deps` does: musl-gcc, gcc -m32's 32-bit libraries (not gcc-multilib: on
# Debian it conflicts with the aarch64 cross compiler), the aarch64 cross
# compiler and qemu-user.
.PHONY: ports deps-ports

ports: deps-ports
	sh tools/ports.sh

deps-ports:
	@have() { command -v "$$1" >/dev/null 2>&1; }; \
	gccv=$$(gcc -dumpversion | cut -d. -f1); pkgs=""; \
	have musl-gcc || pkgs="$$pkgs musl-tools"; \
	echo 'int main(void){return 0;}' | gcc -m32 -x c -o /dev/null - >/dev/null 2>&1 || \
	  pkgs="$$pkgs libc6-dev-i386 lib32gcc-$$gccv-dev"; \
	have aarch64-linux-gnu-gcc || pkgs="$$pkgs gcc-aarch64-linux-gnu"; \
	{ have qemu-aarch64 || have qemu-aarch64-static; } || pkgs="$$pkgs qemu-user"; \
	if [ -z "$$pkgs" ]; then echo "deps-ports: all present"; exit 0; fi; \
	cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y$$pkgs"; \
	if [ "$$(id -u)" != 0 ]; then echo "deps-ports: missing, run as root: $$cmd"; exit 1; fi; \
	echo "deps-ports: $$cmd"; \
	apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$pkgs

# ---- valgrind: memcheck, helgrind, DRD ----
# Not part of `make test`: under valgrind the suite takes minutes (helgrind's
# test_cancel alone takes several). Each builds the plain configuration
# (build/plain) and runs every test program and example under one tool with
# tests/valgrind.sh (logs in build/plain/valgrind-TOOL/); any error fails.
#   make valgrind  memcheck, --leak-check=full, definite/indirect leaks are
#                  errors; suppressions: tests/valgrind.supp
#   make helgrind  helgrind; tests/helgrind.supp (goctx's futex locks and C11
#                  atomics are invisible to it: each entry says why it is safe)
#   make drd       DRD; tests/drd.supp (likewise)
# VALGRIND_ONLY="test_cancel seed" limits a run to those programs.
.PHONY: valgrind helgrind drd

valgrind: build
	ONLY="$(VALGRIND_ONLY)" sh tests/valgrind.sh memcheck $(B)/plain

helgrind: build
	ONLY="$(VALGRIND_ONLY)" sh tests/valgrind.sh helgrind $(B)/plain

drd: build
	ONLY="$(VALGRIND_ONLY)" sh tests/valgrind.sh drd $(B)/plain

clean:
	rm -rf $(B)
