/* seed.c: the Go program of the project's seed text (sleepRandom,
 * sleepRandomContext, doWorkContext, main), in C with goctx's contexts,
 * channels, select and chan_go.
 *
 * It prints what the Go program prints, in the same circumstances: a random
 * 100-199 ms sleep in each sleepRandom, a 150 ms timeout in doWorkContext,
 * main's context cancelled by a "goroutine" after its own random sleep, and
 * selects between a result channel and a context's done. Each line is one
 * write(2), as Go's fmt.Println on os.Stdout.
 *
 *   seed [-s N]     N (or env GOCTX_SEED): a fixed seed, for repeatable runs;
 *                   each sleepRandom call derives its number from N and its
 *                   caller's name. Default: the clock, per call, as in Go.
 *
 * Ending the process. Go's main returns and the process dies with any
 * goroutine still blocked (here: a sender nobody receives from any more) or
 * still sleeping. A C program that just returned would leave those threads
 * running while exit() tears down stdio and the library, and a sanitizer
 * run would see their memory. So this program keeps Go's observable
 * behaviour but ends cleanly: every goroutine's blocking point (its sleep,
 * its sends) also waits on `life`, a context main cancels when it would
 * return, and every print first checks `life`; a goroutine that finds it
 * done returns at once without printing or running its "defers" (in Go the
 * process would be gone). main then waits for every goroutine to report on
 * `exited` and frees everything: exit status 0, no leak.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <goctx.h>
#include <goctx/chan.h>

/* ---- The scaffolding Go gives for free. ------------------------------- */

static ctx_t *life;            /* done once main has returned (in Go terms) */
static ctx_cancel_t *life_end; /* main's, used once at the end */
static chan_t *exited;         /* one token per goroutine that has ended */
static atomic_int spawned;     /* goroutines started so far */
static bool fixed_seed;
static uint64_t seed_value;

#define MAX_GOROUTINES 4 /* `exited` never blocks: the seed starts 3 */

/* fmt.Println of an already formatted line, in one write. false: the
 * process is ending, the calling goroutine must return without a word. */
static bool say(const char *fmt, ...)
{
	if (ctx_done(life))
		return false;
	char line[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return true;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	for (ssize_t off = 0; off < n;) {
		ssize_t w = write(STDOUT_FILENO, line + off, (size_t)(n - off));
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += w;
	}
	return true;
}

struct goroutine {
	void (*fn)(void *);
	void *arg;
};

static void goroutine_main(void *p)
{
	struct goroutine g = *(struct goroutine *)p;
	chan_t *done = exited;
	free(p);
	g.fn(g.arg);
	/* Capacity MAX_GOROUTINES: never blocks. Sent after anything this
	 * goroutine started was counted in `spawned`. The goroutine holds its
	 * own reference to `exited` until its send has returned. */
	chan_send(done, NULL);
	chan_release(done);
}

/* Go's `go fn(arg)`. */
static void go(void (*fn)(void *), void *arg)
{
	struct goroutine *g = malloc(sizeof(*g));
	if (!g) {
		perror("go");
		exit(1);
	}
	g->fn = fn;
	g->arg = arg;
	atomic_fetch_add(&spawned, 1);
	chan_retain(exited);
	int err = chan_go(goroutine_main, g);
	if (err) {
		fprintf(stderr, "go: %s\n", strerror(err));
		exit(1);
	}
}

/* rand.New(rand.NewSource(seed)).Intn(n), seed = time.Now().UnixNano(),
 * or the fixed seed mixed with the caller's name. */
static int random_intn(const char *from, int n)
{
	uint64_t x;
	if (fixed_seed) {
		x = seed_value;
		for (const char *p = from; *p; p++) /* FNV-1a */
			x = (x ^ (unsigned char)*p) * 0x100000001b3ull;
	} else {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		x = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	}
	x += 0x9e3779b97f4a7c15ull; /* splitmix64 */
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	x ^= x >> 31;
	return (int)(x % (uint64_t)n);
}

/* ---- The seed program. ------------------------------------------------ */

/* Slow function. Returns false if the process ended meanwhile. */
static bool sleep_random(const char *from_function, chan_t *ch)
{
	/* Perform a slow task: sleep here for a random number of ms. */
	int random_number = random_intn(from_function, 100);
	int sleeptime = random_number + 100;
	if (!say("%s Starting sleep for %d ms", from_function, sleeptime))
		return false;
	if (ctx_sleep(life, sleeptime * CTX_MILLISECOND) != 0)
		return false;
	if (!say("%s Waking up, slept for  %d ms", from_function, sleeptime))
		return false;
	/* Write on the channel if it was passed in. */
	if (ch != NULL && chan_send_ctx(life, ch, &sleeptime) != 0)
		return false;
	/* defer */
	return say("%s sleepRandom complete", from_function);
}

struct sleep_random_args {
	const char *from_function;
	chan_t *ch; /* one reference, the goroutine's */
};

static void sleep_random_goroutine(void *p)
{
	struct sleep_random_args *a = p;
	sleep_random(a->from_function, a->ch);
	chan_release(a->ch);
	free(a);
}

/* Function that does slow processing with a context (the first argument).
 * Returns false if the process ended meanwhile. */
static bool sleep_random_context(ctx_t *ctx, chan_t *ch)
{
	/* Make a channel; start slow processing in a goroutine, sending the
	 * channel for communication. */
	chan_t *sleeptime_chan = chan_make(sizeof(int), 0);
	struct sleep_random_args *a = malloc(sizeof(*a));
	if (!sleeptime_chan || !a) {
		perror("sleepRandomContext");
		exit(1);
	}
	a->from_function = "sleepRandomContext";
	a->ch = chan_retain(sleeptime_chan);
	go(sleep_random_goroutine, a);

	/* Use a select statement to exit out if the context expires. */
	int sleeptime = 0;
	chan_case_t cases[] = {
		CHAN_CASE_DONE(ctx),
		CHAN_CASE_RECV(sleeptime_chan, &sleeptime),
	};
	size_t fired;
	chan_select(cases, 2, CTX_FOREVER, &fired);
	chan_release(sleeptime_chan);
	bool alive;
	if (fired == 0) {
		/* The context was cancelled: the timeout of doWorkContext
		 * expired, or main cancelled. */
		alive = say("sleepRandomContext: Time to return");
	} else {
		/* Processing finished before the context was cancelled. */
		alive = say("Slept for  %d ms", sleeptime);
	}
	if (!alive)
		return false;
	/* defer */
	if (!say("sleepRandomContext complete"))
		return false;
	bool done = true;
	return chan_send_ctx(life, ch, &done) == 0;
}

struct sleep_random_context_args {
	ctx_t *ctx;  /* one reference, the goroutine's */
	chan_t *ch;  /* idem */
};

static void sleep_random_context_goroutine(void *p)
{
	struct sleep_random_context_args *a = p;
	sleep_random_context(a->ctx, a->ch);
	ctx_release(a->ctx);
	chan_release(a->ch);
	free(a);
}

/* A helper that, in the real world, would do various things. */
static void do_work_context(ctx_t *ctx)
{
	/* Derive a timeout context from the context with cancel: 150 ms. */
	ctx_cancel_t *cancel_function;
	ctx_t *ctx_with_timeout_ = ctx_with_timeout(ctx, 150 * CTX_MILLISECOND, &cancel_function);
	/* Make a channel and call the context function. */
	chan_t *ch = chan_make(sizeof(bool), 0);
	struct sleep_random_context_args *a = malloc(sizeof(*a));
	if (!ctx_with_timeout_ || !ch || !a) {
		perror("doWorkContext");
		exit(1);
	}
	a->ctx = ctx_retain(ctx_with_timeout_);
	a->ch = chan_retain(ch);
	go(sleep_random_context_goroutine, a);

	/* Use a select statement to exit out if the context expires. */
	chan_case_t cases[] = {
		CHAN_CASE_DONE(ctx),
		CHAN_CASE_RECV(ch, NULL),
	};
	size_t fired;
	chan_select(cases, 2, CTX_FOREVER, &fired);
	if (fired == 0) {
		/* The passed-in context says stop: main cancelled it. */
		say("doWorkContext: Time to return");
	} else {
		/* Processing finished before the context was cancelled. */
		say("sleepRandomContext returned");
	}
	/* defer */
	say("doWorkContext complete");
	ctx_cancel(cancel_function);
	ctx_release(ctx_with_timeout_);
	chan_release(ch);
}

/* go func() { sleepRandom("Main", nil); cancelFunction(); Println(...) }() */
static void main_canceller(void *p)
{
	ctx_cancel_t *cancel_function = p;
	bool alive = sleep_random("Main", NULL);
	/* Also when the process ended: the handle must be used once, and main
	 * has cancelled this context already, so this changes nothing. */
	ctx_cancel(cancel_function);
	if (alive)
		say("Main Sleep complete. canceling context");
}

static int usage(const char *argv0)
{
	fprintf(stderr, "usage: %s [-s SEED]\n", argv0);
	return 2;
}

static bool parse_seed(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s || *end)
		return false;
	*out = v;
	return true;
}

int main(int argc, char **argv)
{
	const char *s = getenv("GOCTX_SEED");
	if (s && *s) {
		if (!parse_seed(s, &seed_value))
			return usage(argv[0]);
		fixed_seed = true;
	}
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-s") == 0 && i + 1 < argc) {
			if (!parse_seed(argv[++i], &seed_value))
				return usage(argv[0]);
			fixed_seed = true;
		} else {
			return usage(argv[0]);
		}
	}
	life = ctx_with_cancel(ctx_background(), &life_end);
	exited = chan_make(0, MAX_GOROUTINES);
	if (!life || !exited) {
		perror("seed");
		return 1;
	}

	/* Make a background context; derive a context with cancel. */
	ctx_t *ctx = ctx_background();
	ctx_cancel_t *cancel_function;
	ctx_t *ctx_with_cancel_ = ctx_with_cancel(ctx, &cancel_function);
	/* The goroutine below cancels too: it gets a handle of its own. */
	ctx_cancel_t *goroutine_cancel = ctx_with_cancel_ ? ctx_cancel_dup(cancel_function) : NULL;
	if (!goroutine_cancel) {
		perror("seed");
		return 1;
	}
	/* Cancel the context after a random time. */
	go(main_canceller, goroutine_cancel);
	/* Do work. */
	do_work_context(ctx_with_cancel_);
	/* defer */
	say("Main Defer: canceling context");
	ctx_cancel(cancel_function);
	ctx_release(ctx_with_cancel_);

	/* Here Go's process ends. End the goroutines instead, then free. */
	ctx_cancel(life_end);
	for (int n = 0; n < atomic_load(&spawned); n++)
		chan_recv(exited, NULL, NULL);
	chan_release(exited);
	ctx_release(life);
	return 0;
}
