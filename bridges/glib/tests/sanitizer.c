/* sanitizer.c: ThreadSanitizer suppressions for programs that use GLib,
 * linked into the GLib bridge's tests and example (bridges/CMakeLists.txt adds
 * tests/sanitizer.c of a bridge to each).
 *
 * GLib is not built with TSan, and its GMutex and GCond are futexes of its
 * own, which TSan does not see. It does see the libc calls GLib makes
 * (eventfd, write, read, close), so it reports GLib's lazily made wakeup
 * descriptors (a GCancellable's, a GMainContext's) as races: made under a
 * GMutex in one thread, written by g_cancellable_cancel or
 * g_main_context_wakeup in another. `called_from_lib` makes TSan ignore the
 * libc calls made from inside these libraries; our own code (the bridge,
 * goctx, the tests) stays checked. ASan and UBSan need no suppressions.
 */
#if defined(__SANITIZE_THREAD__)
#define GOCTX_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GOCTX_TSAN 1
#endif
#endif

#ifdef GOCTX_TSAN
const char *__tsan_default_suppressions(void);
const char *__tsan_default_suppressions(void)
{
	return "called_from_lib:libglib-2.0.so.0\n"
	       "called_from_lib:libgobject-2.0.so.0\n"
	       "called_from_lib:libgio-2.0.so.0\n";
}
#else
/* ISO C wants a translation unit to declare something. */
typedef int goctx_glib_sanitizer_unused;
#endif
