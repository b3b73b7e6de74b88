/* bench_util.h: shared pieces of goctx's benchmark programs (bench.c,
 * chan_bench.c, sync_bench.c, io_bench.c, scaling.c): a counting allocator
 * for ctx_set_allocator, a monotonic clock, a futex binary semaphore, a
 * small PRNG, the timed-run harness, and the knobs and op runner (BENCH_*
 * environment, one BENCH line per op). Header-only, static functions. */
#ifndef GOCTX_BENCH_UTIL_H
#define GOCTX_BENCH_UTIL_H

#include <linux/futex.h>
#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "goctx.h"

/* ---- Counting allocator ------------------------------------------------
 *
 * Installed with ctx_set_allocator before any context exists. Every block
 * carries a 16-byte header (keeps malloc's alignment) holding its requested
 * size, so frees are subtracted exactly for the retained-memory ops. Counts
 * are the *requested* sizes, as the C++ peer counts them.
 *
 * Counters are per thread: each thread that allocates gets its own
 * cache-line-aligned block, linked into a global list on first use and never
 * freed (so a thread that has exited still counts). Only the owner writes its
 * block (relaxed load + store: plain moves, no locked instruction); a
 * snapshot sums all blocks. Snapshots are taken when the threads that did the
 * timed work have been joined, so they are exact. */

struct bench_counts {
	uint64_t allocs, bytes, frees, freed_bytes;
};

struct bench_reg {
	_Atomic uint64_t allocs, bytes, frees, freed_bytes;
	struct bench_reg *next;
} __attribute__((aligned(64)));

#define BENCH_UNUSED __attribute__((unused))

static _Thread_local struct bench_reg *bench_tl_reg BENCH_UNUSED;
static _Atomic(struct bench_reg *) bench_regs BENCH_UNUSED;

#define BENCH_HDR 16

BENCH_UNUSED static struct bench_reg *bench_my_reg(void)
{
	struct bench_reg *r = bench_tl_reg;
	if (__builtin_expect(r != NULL, 1))
		return r;
	r = aligned_alloc(64, sizeof *r);
	if (!r)
		abort();
	memset(r, 0, sizeof *r);
	struct bench_reg *head = atomic_load(&bench_regs);
	do
		r->next = head;
	while (!atomic_compare_exchange_weak(&bench_regs, &head, r));
	bench_tl_reg = r;
	return r;
}

static inline void bench_bump(_Atomic uint64_t *c, uint64_t by)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + by,
	                      memory_order_relaxed);
}

BENCH_UNUSED static void *bench_alloc(size_t size)
{
	unsigned char *base = malloc(BENCH_HDR + size);
	if (!base)
		return NULL;
	memcpy(base, &size, sizeof size);
	struct bench_reg *r = bench_my_reg();
	bench_bump(&r->allocs, 1);
	bench_bump(&r->bytes, size);
	return base + BENCH_HDR;
}

BENCH_UNUSED static void bench_free(void *p)
{
	if (!p)
		return;
	unsigned char *base = (unsigned char *)p - BENCH_HDR;
	size_t size;
	memcpy(&size, base, sizeof size);
	struct bench_reg *r = bench_my_reg();
	bench_bump(&r->frees, 1);
	bench_bump(&r->freed_bytes, size);
	free(base);
}

BENCH_UNUSED static struct bench_counts bench_snapshot(void)
{
	struct bench_counts c = {0, 0, 0, 0};
	for (struct bench_reg *r = atomic_load(&bench_regs); r; r = r->next) {
		c.allocs += atomic_load_explicit(&r->allocs, memory_order_relaxed);
		c.bytes += atomic_load_explicit(&r->bytes, memory_order_relaxed);
		c.frees += atomic_load_explicit(&r->frees, memory_order_relaxed);
		c.freed_bytes += atomic_load_explicit(&r->freed_bytes, memory_order_relaxed);
	}
	return c;
}

/* ---- Clock ---------------------------------------------------------------- */

static inline double bench_secs(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Keeps the compiler from assuming anything about memory across it. */
#define BENCH_CLOBBER() __asm__ __volatile__("" ::: "memory")

/* ---- A binary semaphore on a futex -------------------------------------
 *
 * States: 0 empty, 1 posted, 2 empty with a sleeper. post wakes only when
 * someone sleeps; wait spins briefly (as libstdc++'s semaphore does) before
 * it sleeps. Used for the waiter's answer in wake_roundtrip (Go answers on
 * an unbuffered channel, C++ with a std::binary_semaphore). */

static inline void bench_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

static inline void bench_sem_post(_Atomic uint32_t *w)
{
	if (atomic_exchange_explicit(w, 1, memory_order_release) == 2)
		syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 1, NULL, NULL, 0);
}

static inline void bench_sem_wait(_Atomic uint32_t *w)
{
	for (int i = 0; i < 64; i++) {
		uint32_t one = 1;
		if (atomic_load_explicit(w, memory_order_relaxed) == 1 &&
		    atomic_compare_exchange_weak_explicit(w, &one, 0, memory_order_acquire,
		                                          memory_order_relaxed))
			return;
		bench_cpu_relax();
	}
	for (;;) {
		uint32_t one = 1;
		if (atomic_compare_exchange_strong_explicit(w, &one, 0, memory_order_acquire,
		                                            memory_order_relaxed))
			return;
		uint32_t zero = 0;
		if (one == 0 &&
		    !atomic_compare_exchange_strong_explicit(w, &zero, 2, memory_order_relaxed,
		                                             memory_order_relaxed))
			continue; /* posted meanwhile */
		syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT | FUTEX_PRIVATE_FLAG, 2, NULL, NULL, 0);
	}
}

/* ---- the SPEC's timing method, shared by every benchmark program ---------- */

typedef void (*bench_body_fn)(void *arg, uint64_t n);

struct bench_run {
	uint64_t n;
	double secs;
	uint64_t bytes, allocs;
};

static inline struct bench_run bench_timed_run(bench_body_fn body, void *arg, uint64_t n)
{
	struct bench_counts c0 = bench_snapshot();
	double t0 = bench_secs();
	body(arg, n);
	double t1 = bench_secs();
	struct bench_counts c1 = bench_snapshot();
	return (struct bench_run){n, t1 - t0, c1.bytes - c0.bytes, c1.allocs - c0.allocs};
}

/* Grow n (x1.2 the prediction, at most x100 a step) until one run lasts at
 * least min_time seconds, then keep n for `runs` runs in all (that first run
 * counts as one): best ns per op, average bytes and allocations per op. */
static inline void bench_measure(bench_body_fn body, void *arg, double min_time, int runs,
                                 double *ns, double *bytes, double *allocs)
{
	uint64_t n = 1;
	struct bench_run r;
	for (;;) {
		r = bench_timed_run(body, arg, n);
		if (r.secs >= min_time)
			break;
		uint64_t next = n * 100;
		if (r.secs > 0)
			next = (uint64_t)((double)n * 1.2 * min_time / r.secs);
		if (next > n * 100)
			next = n * 100;
		if (next <= n)
			next = n + 1;
		n = next;
	}
	double best = INFINITY, ops = 0, b = 0, a = 0;
	for (int i = 0; i < runs; i++) {
		if (i > 0)
			r = bench_timed_run(body, arg, n);
		double x = r.secs * 1e9 / (double)r.n;
		if (x < best)
			best = x;
		ops += (double)r.n;
		b += (double)r.bytes;
		a += (double)r.allocs;
	}
	*ns = best;
	*bytes = b / ops;
	*allocs = a / ops;
}

/* A per-op count: at most two decimals, trailing zeros dropped. */
static inline const char *bench_num(double x, char *buf, size_t size)
{
	snprintf(buf, size, "%.2f", x);
	if (strchr(buf, '.')) {
		size_t len = strlen(buf);
		while (buf[len - 1] == '0')
			buf[--len] = '\0';
		if (buf[len - 1] == '.')
			buf[--len] = '\0';
	}
	if (strcmp(buf, "-0") == 0)
		strcpy(buf, "0");
	return buf;
}

/* ---- PRNG (splitmix64), fixed seed ---------------------------------------- */

static inline uint64_t bench_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* A duration drawn uniformly from [1h, 2h]. */
static inline ctx_duration_t bench_rand_hour(uint64_t *s)
{
	const uint64_t hour = (uint64_t)3600 * CTX_SECOND;
	return (ctx_duration_t)(hour + bench_rand(s) % (hour + 1));
}

/* ---- the knobs and the op runner of every bench program ----
 * BENCH_MIN_TIME_MS (default 500): minimum duration of one timed run;
 * BENCH_RUNS (default 3): timed runs per op, the best is kept; BENCH_OPS:
 * comma-separated op names to run (default: all). bench_config(tag) reads
 * them (a bad value: a message, exit 2); bench_op runs one op if wanted and
 * prints its BENCH line, and "TAG: OP done in S" on stderr. */

static double bench_min_time BENCH_UNUSED = 0.5; /* seconds */
static int bench_runs BENCH_UNUSED = 3;
static const char *bench_ops BENCH_UNUSED;     /* NULL: every op */
static const char *bench_tag BENCH_UNUSED = "goctx";

static inline long bench_env_long(const char *name, long lo, long hi, long def)
{
	const char *v = getenv(name);
	if (!v || !*v)
		return def;
	char *end;
	long x = strtol(v, &end, 10);
	if (*end || x < lo || x > hi) {
		fprintf(stderr, "bad %s=%s\n", name, v);
		exit(2);
	}
	return x;
}

static inline void bench_config(const char *tag)
{
	bench_tag = tag;
	bench_min_time = (double)bench_env_long("BENCH_MIN_TIME_MS", 1, 3600000, 500) / 1000.0;
	bench_runs = (int)bench_env_long("BENCH_RUNS", 1, 1000, 3);
	bench_ops = getenv("BENCH_OPS");
	if (bench_ops && !*bench_ops)
		bench_ops = NULL;
}

/* Whether op is in BENCH_OPS (names separated by commas, spaces or tabs). */
static inline bool bench_wanted(const char *op)
{
	if (!bench_ops)
		return true;
	size_t len = strlen(op);
	for (const char *p = bench_ops; *p;) {
		p += strspn(p, ", \t");
		size_t n = strcspn(p, ", \t");
		if (n == len && strncmp(p, op, len) == 0)
			return true;
		p += n;
	}
	return false;
}

static inline void bench_op(const char *op, bench_body_fn body, void *arg)
{
	if (!bench_wanted(op))
		return;
	double start = bench_secs();
	double best, b, a;
	bench_measure(body, arg, bench_min_time, bench_runs, &best, &b, &a);
	char bb[64], ab[64];
	printf("BENCH %s %.2f %s %s\n", op, best, bench_num(b, bb, sizeof bb),
	       bench_num(a, ab, sizeof ab));
	fflush(stdout);
	fprintf(stderr, "%s: %-26s done in %.1fs\n", bench_tag, op, bench_secs() - start);
}

#endif
