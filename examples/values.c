/* values.c: carry request-scoped values down a call chain.
 *
 * Go's ExampleWithValue, in C. Keys are compared by address, so each key is
 * a static object this file owns (Go advises an unexported key type for the
 * same reason): no other code can make a key equal to it by accident.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* strdup, strstr */
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <goctx.h>

static char user_key, trace_key, missing_key; /* only their addresses matter */

static int freed; /* how many times free_val ran */

static void free_user(void *p) {
    free(p);
    freed++;
}

/* A handler deep in the call chain: it sees whatever its callers attached. */
static void handle(const char *who, ctx_t *ctx) {
    const char *user = ctx_value(ctx, &user_key);
    const char *trace = ctx_value(ctx, &trace_key);
    printf("%-8s user=%s trace=%s\n", who, user ? user : "(none)", trace ? trace : "(none)");
}

/* Examples stop at the first failure; a real program would unwind. */
static ctx_t *must(ctx_t *ctx) {
    if (ctx == NULL) {
        perror("goctx");
        exit(1);
    }
    return ctx;
}

int main(void) {
    /* The value is heap memory; free_val hands its ownership to the context.
     * (Had ctx_with_value failed, we would still own it.) */
    char *alice = strdup("alice");
    if (alice == NULL)
        return 1;
    ctx_t *req = must(ctx_with_value(ctx_background(), &user_key, alice, free_user));
    /* A static string: nothing to free, so free_val is NULL. */
    ctx_t *traced = must(ctx_with_value(req, &trace_key, "7f3a", NULL));
    /* Values pass through other kinds of context, here a cancelable one. */
    ctx_cancel_t *cancel;
    ctx_t *cancelable = must(ctx_with_cancel(traced, &cancel));
    /* An inner value shadows an outer one with the same key, and a NULL
     * value shadows too (Go: a nil value). */
    ctx_t *admin = must(ctx_with_value(cancelable, &user_key, "root", NULL));
    ctx_t *untraced = must(ctx_with_value(admin, &trace_key, NULL, NULL));

    handle("request", cancelable);
    handle("admin", admin);
    handle("untraced", untraced);

    /* ctx_format works like snprintf: ask for the length, then fill. Values
     * and keys print as pointers, so the numbers change from run to run. */
    int len = ctx_format(untraced, NULL, 0);
    char *text = malloc((size_t)len + 1);
    if (text == NULL)
        return 1;
    ctx_format(untraced, text, (size_t)len + 1);
    printf("%s\n", text);

    int bad = 0;
    bad |= strcmp(ctx_value(cancelable, &user_key), "alice") != 0;
    bad |= strcmp(ctx_value(untraced, &user_key), "root") != 0;
    bad |= strcmp(ctx_value(admin, &trace_key), "7f3a") != 0;
    bad |= ctx_value(untraced, &trace_key) != NULL;
    bad |= ctx_value(untraced, &missing_key) != NULL;
    bad |= strncmp(text, "context.Background.WithValue(", 29) != 0;
    bad |= strstr(text, ").WithCancel.WithValue(") == NULL;
    free(text);

    /* Children hold their parents: releasing `req` first frees nothing, and
     * free_user runs once, when the last context above it goes. */
    ctx_release(req);
    ctx_release(traced);
    ctx_cancel(cancel);
    ctx_release(cancelable);
    ctx_release(admin);
    bad |= freed != 0;
    ctx_release(untraced);
    printf("free_val calls: %d\n", freed);
    bad |= freed != 1;

    if (bad)
        fprintf(stderr, "values: unexpected result\n");
    return bad;
}
