/* curl.c: libcurl transfers bounded by goctx contexts (see goctx/curl.h).
 *
 * A hook is one after-func on its context. When the context is done the
 * after-func (any thread) appends the hook to its multi's done queue under
 * `mu` and calls curl_multi_wakeup, which libcurl allows from any thread and
 * which makes a curl_multi_poll under way (or the next one) return. The loop
 * thread takes hooks from the queue with ctx_curl_multi_next_done.
 *
 * ctx_curl_multi_remove stops the after-func; ctx_after_stop waits if it is
 * running in another thread, so once it returns the hook is either queued
 * (unlinked here under `mu`; the queue is doubly linked for that) or never
 * will be, and can be freed. The multi state therefore outlives every
 * wake-up: ctx_curl_multi_free refuses while hooks exist.
 *
 * ctx_curl_perform is that loop on a multi handle of its own.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "goctx/curl.h"

struct ctx_curl_multi {
	CURLM *multi;
	pthread_mutex_t mu;          /* guards the done queue, and q_next/q_prev in it */
	ctx_curl_hook_t *done;       /* hooks whose context is done, oldest first */
	ctx_curl_hook_t **done_tail;
	size_t hooks;                /* added and not yet removed; loop thread only */
};

struct ctx_curl_hook {
	ctx_curl_multi_t *cm;
	CURL *easy;
	ctx_t *ctx;                  /* held until removed */
	ctx_after_t *after;
	ctx_curl_hook_t *q_next;     /* in cm's done queue */
	ctx_curl_hook_t **q_prev;    /* NULL: not queued (never, or handed out) */
};

CURLcode ctx_curl_code(int err)
{
	if (err == 0)
		return CURLE_OK;
	return err == ETIMEDOUT ? CTX_CURL_TIMEDOUT : CTX_CURL_CANCELLED;
}

ctx_curl_multi_t *ctx_curl_multi_new(CURLM *multi)
{
	if (!multi) {
		errno = EINVAL;
		return NULL;
	}
	ctx_curl_multi_t *cm = calloc(1, sizeof *cm);
	if (!cm) {
		errno = ENOMEM;
		return NULL;
	}
	cm->multi = multi;
	pthread_mutex_init(&cm->mu, NULL);
	cm->done_tail = &cm->done;
	return cm;
}

int ctx_curl_multi_free(ctx_curl_multi_t *cm)
{
	if (!cm)
		return 0;
	if (cm->hooks)
		return EBUSY;
	pthread_mutex_destroy(&cm->mu);
	free(cm);
	return 0;
}

/* The after-func: any thread, once the hook's context is done. */
static void hook_done(void *arg)
{
	ctx_curl_hook_t *h = arg;
	ctx_curl_multi_t *cm = h->cm;
	pthread_mutex_lock(&cm->mu);
	h->q_next = NULL;
	h->q_prev = cm->done_tail;
	*cm->done_tail = h;
	cm->done_tail = &h->q_next;
	pthread_mutex_unlock(&cm->mu);
	/* cm outlives this call: remove (before any free) waits for us. */
	curl_multi_wakeup(cm->multi);
}

/* Set CURLOPT_TIMEOUT_MS to the time left before ctx's deadline, if any. */
static void set_timeout(CURL *easy, ctx_t *ctx)
{
	ctx_time_t deadline;
	if (!ctx_deadline(ctx, &deadline))
		return;
	ctx_duration_t left = deadline - ctx_now();
	long ms = 1;
	if (left > 0)
		ms = left / CTX_MILLISECOND + (left % CTX_MILLISECOND != 0);
	if (ms < 1)
		ms = 1;
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, ms);
}

ctx_curl_hook_t *ctx_curl_multi_add(ctx_curl_multi_t *cm, CURL *easy, ctx_t *ctx)
{
	if (!cm || !easy || !ctx) {
		errno = EINVAL;
		return NULL;
	}
	ctx_curl_hook_t *h = calloc(1, sizeof *h);
	if (!h) {
		errno = ENOMEM;
		return NULL;
	}
	h->cm = cm;
	h->easy = easy;
	h->ctx = ctx_retain(ctx);
	set_timeout(easy, ctx);
	CURLMcode mc = curl_multi_add_handle(cm->multi, easy);
	if (mc != CURLM_OK) {
		ctx_release(ctx);
		free(h);
		errno = mc == CURLM_OUT_OF_MEMORY ? ENOMEM : EINVAL;
		return NULL;
	}
	/* For a context done already this queues h at once (and wakes the multi
	 * handle, which is harmless). */
	int err = ctx_after_func(ctx, hook_done, h, &h->after);
	if (err != 0) {
		curl_multi_remove_handle(cm->multi, easy);
		ctx_release(ctx);
		free(h);
		errno = err;
		return NULL;
	}
	cm->hooks++;
	return h;
}

ctx_curl_hook_t *ctx_curl_multi_next_done(ctx_curl_multi_t *cm)
{
	pthread_mutex_lock(&cm->mu);
	ctx_curl_hook_t *h = cm->done;
	if (h) {
		cm->done = h->q_next;
		if (cm->done)
			cm->done->q_prev = &cm->done;
		else
			cm->done_tail = &cm->done;
		h->q_next = NULL;
		h->q_prev = NULL;
	}
	pthread_mutex_unlock(&cm->mu);
	return h;
}

CURLMcode ctx_curl_multi_remove(ctx_curl_hook_t *h)
{
	if (!h)
		return CURLM_BAD_EASY_HANDLE;
	ctx_curl_multi_t *cm = h->cm;
	if (!ctx_after_stop(h->after)) {
		/* hook_done has run (or ctx_after_stop waited for it): h may still
		 * be queued. */
		pthread_mutex_lock(&cm->mu);
		if (h->q_prev) {
			if (cm->done_tail == &h->q_next)
				cm->done_tail = h->q_prev;
			*h->q_prev = h->q_next;
			if (h->q_next)
				h->q_next->q_prev = h->q_prev;
		}
		pthread_mutex_unlock(&cm->mu);
	}
	CURLMcode mc = curl_multi_remove_handle(cm->multi, h->easy);
	ctx_release(h->ctx);
	free(h);
	cm->hooks--;
	return mc;
}

CURL *ctx_curl_hook_easy(const ctx_curl_hook_t *h) { return h->easy; }
ctx_t *ctx_curl_hook_ctx(const ctx_curl_hook_t *h) { return h->ctx; }
CURLcode ctx_curl_hook_code(const ctx_curl_hook_t *h) { return ctx_curl_code(ctx_err(h->ctx)); }

/* ---- curl_easy_perform bounded by a context ---- */

/* libcurl's timer for the deadline fired (CURLE_OPERATION_TIMEDOUT): if the
 * context's deadline is (about) now, wait for goctx's timer to catch up, so
 * that ctx_err says ETIMEDOUT. */
static void settle_deadline(ctx_t *ctx)
{
	ctx_time_t deadline;
	if (ctx_err(ctx) || !ctx_deadline(ctx, &deadline))
		return;
	ctx_duration_t left = deadline - ctx_now();
	if (left <= 5 * CTX_MILLISECOND)
		ctx_wait(ctx, (left > 0 ? left : 0) + 100 * CTX_MILLISECOND);
}

CURLcode ctx_curl_perform(ctx_t *ctx, CURL *easy)
{
	if (!ctx || !easy)
		return CURLE_BAD_FUNCTION_ARGUMENT;
	int err = ctx_err(ctx);
	if (err)
		return ctx_curl_code(err);
	CURLM *multi = curl_multi_init();
	if (!multi)
		return CURLE_OUT_OF_MEMORY;
	ctx_curl_multi_t *cm = ctx_curl_multi_new(multi);
	ctx_curl_hook_t *h = cm ? ctx_curl_multi_add(cm, easy, ctx) : NULL;
	if (!h) {
		CURLcode rc = errno == ENOMEM ? CURLE_OUT_OF_MEMORY : CURLE_BAD_FUNCTION_ARGUMENT;
		ctx_curl_multi_free(cm);
		curl_multi_cleanup(multi);
		return rc;
	}
	CURLcode rc = CURLE_OK;
	for (;;) {
		int running;
		CURLMcode mc = curl_multi_perform(multi, &running);
		if (mc != CURLM_OK) {
			rc = mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT;
			break;
		}
		/* Finished first? Its own code, whatever the context does now. */
		CURLMsg *msg;
		int left;
		bool finished = false;
		while ((msg = curl_multi_info_read(multi, &left)))
			if (msg->msg == CURLMSG_DONE && msg->easy_handle == easy) {
				rc = msg->data.result;
				finished = true;
			}
		if (finished) {
			if (rc == CURLE_OPERATION_TIMEDOUT)
				settle_deadline(ctx);
			break;
		}
		if (ctx_curl_multi_next_done(cm)) {
			rc = ctx_curl_code(ctx_err(ctx));
			break;
		}
		/* Wakes for the transfer's sockets, libcurl's timers (the deadline
		 * among them) and curl_multi_wakeup from hook_done. */
		mc = curl_multi_poll(multi, NULL, 0, 1000, NULL);
		if (mc != CURLM_OK) {
			rc = mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT;
			break;
		}
	}
	ctx_curl_multi_remove(h);
	ctx_curl_multi_free(cm);
	curl_multi_cleanup(multi);
	return rc;
}
