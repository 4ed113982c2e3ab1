/*
 * test_exporter.c -- the exporter core: the response parser and URL
 * vectors of its HTTP client, the per-worker rings (bounded, never
 * blocking, drops counted), failure modes of the agent (down, stalled,
 * 500, garbage) that must never slow exporter_submit, the flush on
 * exporter_free, the stdout line format, "none", the /metrics
 * families, the exporter thread's scheduling (exporter.thread_nice)
 * with a large batch still delivered whole, and the one keep-alive
 * connection to the agent (reused, reopened after the agent's close).
 */
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/utsname.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>

#include <jansson.h>

#include "config.h"
#include "export_int.h"
#include "exporter.h"
#include "metrics.h"
#include "span.h"
#include "util.h"
#include "export_fixture.h"

static void
setup(void)
{
	export_fixture_setup(CONFIG_EXPORTER_DATADOG, NULL, "", "", 1000);
	ts_expect_warning(NULL);
}

static void
teardown(void)
{
	export_fixture_teardown();
}

static struct exporter *
new_exporter(uint64_t timeout_ms, bool no_retry)
{
	return export_fixture_exporter(timeout_ms, no_retry);
}

static void
make_span(struct span *sp)
{
	export_fixture_span(sp, "GET /users");
	sp->trace_id.low = 99;
	sp->span_id = 100;
	sp->parent_id = 101;
	sp->start_ns = 1700000000000000000ULL;
	sp->has_priority = true;
	sp->priority = 1;
	ck_assert_int_eq(span_set_meta(sp, "http.status_code", "200"), 0);
	span_finish(sp, sp->start_ns + 1000);
}

/*
 * The ts-exporter thread's task id in this process, once it has named
 * itself (after its scheduling is set: exporter_main); -1 after 5 s.
 */
static int
exporter_tid(void)
{
	char path[64], comm[32];
	int i, tid;

	for (i = 0; i < 2500; i++) {
		DIR *d = opendir("/proc/self/task");
		struct dirent *de;

		ck_assert_ptr_nonnull(d);
		while ((de = readdir(d)) != NULL) {
			FILE *fp;

			if ((tid = atoi(de->d_name)) <= 0)
				continue;
			snprintf(path, sizeof path, "/proc/self/task/%d/comm",
			    tid);
			if ((fp = fopen(path, "re")) == NULL)
				continue;
			if (fgets(comm, sizeof comm, fp) != NULL &&
			    strcmp(comm, "ts-exporter\n") == 0) {
				fclose(fp);
				closedir(d);
				return tid;
			}
			fclose(fp);
		}
		closedir(d);
		usleep(2000);
	}
	return -1;
}

/* Field 19 of /proc/self/task/TID/stat: the task's nice value. */
static int
task_nice(int tid)
{
	char path[64], buf[1024], *p;
	int field;
	FILE *fp;

	snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
	ck_assert_ptr_nonnull(fp = fopen(path, "re"));
	ck_assert_ptr_nonnull(fgets(buf, sizeof buf, fp));
	fclose(fp);
	/* After "pid (comm) " (comm may hold blanks): field 3 on. */
	ck_assert_ptr_nonnull(p = strrchr(buf, ')'));
	p += 2;
	for (field = 3; field < 19; field++) {
		ck_assert_ptr_nonnull(p = strchr(p, ' '));
		p++;
	}
	return atoi(p);
}

/* se.slice of /proc/self/task/TID/sched in ns, or 0 when not shown. */
static long long
task_slice(int tid)
{
	char path[64], line[256];
	long long v = 0;
	FILE *fp;

	snprintf(path, sizeof path, "/proc/self/task/%d/sched", tid);
	if ((fp = fopen(path, "re")) == NULL)
		return 0;
	while (fgets(line, sizeof line, fp) != NULL)
		if (strncmp(line, "se.slice ", 9) == 0)
			v = atoll(strchr(line, ':') + 1);
	fclose(fp);
	return v;
}

/*
 * Linux >= 6.12: a SCHED_OTHER thread's sched_runtime is its slice; and
 * sched_getattr(2) works here (where it does not, neither may
 * sched_setattr: the exporter then sets its nice value alone).
 */
static bool
kernel_custom_slice(void)
{
	struct utsname u;
	uint32_t attr[14];
	int maj = 0, min = 0;

	memset(attr, 0, sizeof attr);
	if (syscall(SYS_sched_getattr, 0, attr, (unsigned)sizeof attr, 0u)
	    != 0)
		return false;
	ck_assert_int_eq(uname(&u), 0);
	if (sscanf(u.release, "%d.%d", &maj, &min) != 2)
		return false;
	return maj > 6 || (maj == 6 && min >= 12);
}

/*
 * exporter.thread_nice: the exporter thread runs at the process's nice
 * value plus the key (19 at most) with a 100 us slice where the kernel
 * has custom slices; 0 leaves it as the workers are (issue 11, "the
 * tail").  Rows: the key, and whether it changes anything.
 */
static const unsigned nice_vec[] = { 0, 7, 10, 19 };

START_TEST(test_thread_sched)
{
	unsigned add = nice_vec[_i];
	struct exporter *ex;
	int base, want, tid;

	errno = 0;
	base = getpriority(PRIO_PROCESS, 0);
	ck_assert(base != -1 || errno == 0);
	want = base + (int)add > 19 ? 19 : base + (int)add;
	cfg.exporter.thread_nice = add;
	ex = new_exporter(1000, true);
	tid = exporter_tid();
	ck_assert_int_gt(tid, 0);
	ck_assert_int_ne(tid, (int)gettid());
	ck_assert_int_eq(task_nice(tid), want);
	/* This thread (a worker's stand-in) is left as it was. */
	ck_assert_int_eq(task_nice((int)gettid()), base);
	if (add > 0 && kernel_custom_slice() && task_slice(tid) != 0)
		ck_assert_int_eq(task_slice(tid), 100000);
	exporter_free(ex);
}
END_TEST

/* voluntary_ctxt_switches of /proc/self/task/TID/status. */
static long
task_vswitches(int tid)
{
	char path[64], line[256];
	long v = -1;
	FILE *fp;

	snprintf(path, sizeof path, "/proc/self/task/%d/status", tid);
	ck_assert_ptr_nonnull(fp = fopen(path, "re"));
	while (fgets(line, sizeof line, fp) != NULL)
		if (strncmp(line, "voluntary_ctxt_switches:", 24) == 0)
			v = atol(line + 24);
	fclose(fp);
	ck_assert_int_ge(v, 0);
	return v;
}

/*
 * 4,096 spans of ~1.4 KB (about 5.7 MiB) arrive whole, every span
 * exported in requests of at most 1 MiB (EXPORT_BATCH_BYTES), none
 * dropped, both with the thread giving way (thread_nice 10) and without
 * (0).  Giving way, the thread drains each batch in 64 KiB pieces and
 * writes it in 64 KiB pieces and sleeps between two (export_give_way):
 * some 150 voluntary context switches in all (no tick runs meanwhile:
 * tick_ms 60 s).
 * Rows: exporter.thread_nice.
 */
static const unsigned big_vec[] = { 10, 0 };

START_TEST(test_big_batch_sliced)
{
	struct exporter_stats st;
	struct exporter_opts o;
	struct exporter *ex;
	struct exporter_queue *q;
	struct span *sp = span_new();
	char pad[1025], *cause = NULL;
	long sw0, sw1;
	unsigned i;
	int tid;

	memset(pad, 'x', sizeof pad - 1);
	pad[sizeof pad - 1] = '\0';
	cfg.exporter.thread_nice = big_vec[_i];
	cfg.exporter.max_queue_spans = 10000;
	memset(&o, 0, sizeof o);
	o.tick_ms = 60000;
	o.timeout_ms = 5000;
	o.no_retry = true;
	ex = exporter_new_opts(&cfg, &o, &cause);
	ck_assert_msg(ex != NULL, "%s", cause);
	q = exporter_queue_new(ex);
	ck_assert_int_gt(tid = exporter_tid(), 0);
	make_span(sp);
	ck_assert_int_eq(span_set_meta(sp, "bench.pad", pad), 0);
	for (i = 0; i < 4096; i++)
		ck_assert(exporter_submit(q, sp));
	sw0 = task_vswitches(tid);
	exporter_flush(ex);
	WAIT_STATS(ex, st, st.exported + st.dropped_agent_error +
	    st.dropped_queue_full >= 4096);
	sw1 = task_vswitches(tid);
	ck_assert_uint_eq(st.exported, 4096);
	ck_assert_uint_eq(st.dropped_agent_error, 0);
	ck_assert_uint_eq(st.dropped_queue_full, 0);
	/* ~5.7 MiB of spans: six requests of at most 1 MiB each. */
	ck_assert_uint_ge(st.requests, 6);
	ck_assert_uint_le(st.requests, 8);
	if (big_vec[_i] > 0)
		ck_assert_int_ge(sw1 - sw0, 100);
	exporter_free(ex);
	span_free(sp);
}
END_TEST

/* ------------------------------------------------------------ */

static const struct {
	const char	*in;
	bool		 eof;
	int		 rv;
	int		 status;
	const char	*body;
} resp_vec[] = {
	{ "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", false, 1, 200,
	    "{}" },
	{ "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}", false, 0, 0,
	    NULL },
	{ "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}", true, -1, 0,
	    NULL },
	{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n", false, 1, 200, "abcde" },
	{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab",
	    false, 0, 0, NULL },
	{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
	    false, -1, 0, NULL },
	{ "HTTP/1.0 200 OK\r\n\r\nclose-delimited", true, 1, 200,
	    "close-delimited" },
	{ "HTTP/1.0 200 OK\r\n\r\nclose-delimited", false, 0, 0, NULL },
	{ "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n",
	    false, 1, 500, "" },
	{ "HTTP/1.1 204 No Content\r\n\r\n", false, 1, 204, NULL },
	{ "THIS IS NOT HTTP\r\n\r\n", false, -1, 0, NULL },
	{ "HTTP/1.1 2000 OK\r\n\r\n", false, -1, 0, NULL },
	/* RFC 9112 6.3: repeated Content-Length values must agree (the
	 * shared parser, http_response.c, accepts equal ones). */
	{ "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"
	    "x", false, 1, 200, "x" },
	{ "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
	    "xy", false, -1, 0, NULL },
	{ "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: "
	    "chunked\r\n\r\nx", false, -1, 0, NULL },
	{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false, -1, 0,
	    NULL },
	{ "HTTP/1.1 200 OK\r\nbad header\r\n\r\n", false, -1, 0, NULL },
	{ "HTTP/1.1 200 OK\r\nContent-Le", false, 0, 0, NULL },
	{ "", true, -1, 0, NULL },
	/* RFC 9110 15.2: a client skips interim responses it did not ask
	 * for; only the final one ends the exchange. */
	{ "HTTP/1.1 100 Continue\r\n\r\n", false, 0, 0, NULL },
	{ "HTTP/1.1 100 Continue\r\n\r\n", true, -1, 0, NULL },
	{ "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 202 "
	    "Accepted\r\nContent-Length: 2\r\n\r\nok", false, 1, 202, "ok" },
	/* The strict parser's rules (http_response.c), new for the
	 * exporter: a bare LF, obs-fold and a CTL in a value are refused. */
	{ "HTTP/1.1 200 OK\nContent-Length: 0\n\n", false, -1, 0, NULL },
	{ "HTTP/1.1 200 OK\r\nA: b\r\n c\r\nContent-Length: 0\r\n\r\n",
	    false, -1, 0, NULL },
	{ "HTTP/1.1 200 OK\r\nA: \x01\r\nContent-Length: 0\r\n\r\n", false,
	    -1, 0, NULL },
};

START_TEST(test_http_parse)
{
	struct export_http_resp r;
	int rv;

	rv = export_http_parse(resp_vec[_i].in, strlen(resp_vec[_i].in),
	    resp_vec[_i].eof, &r);
	ck_assert_msg(rv == resp_vec[_i].rv, "vector %d: rv %d want %d (%s)",
	    _i, rv, resp_vec[_i].rv, r.error != NULL ? r.error : "");
	if (rv == 1) {
		ck_assert_int_eq(r.status, resp_vec[_i].status);
		if (resp_vec[_i].body != NULL)
			ck_assert_str_eq(r.body, resp_vec[_i].body);
	}
	if (rv == -1)
		ck_assert_ptr_nonnull(r.error);
	export_http_resp_clear(&r);
}
END_TEST

static const struct {
	const char	*url;
	int		 rv;
	bool		 unix_socket;
	const char	*host, *port, *path;
} url_vec[] = {
	{ "http://localhost:8126", 0, false, "localhost", "8126",
	    "/v0.4/traces" },
	{ "http://127.0.0.1:4318/v1/traces", 0, false, "127.0.0.1", "4318",
	    "/v1/traces" },
	{ "http://[::1]:8126", 0, false, "::1", "8126", "/v0.4/traces" },
	{ "http://agent", 0, false, "agent", "80", "/v0.4/traces" },
	{ "unix:///var/run/datadog/apm.socket", 0, true,
	    "/var/run/datadog/apm.socket", "", "/v0.4/traces" },
	{ "https://agent:8126", 0, false, "agent", "8126", "/v0.4/traces" },
	{ "https://collector/v1/traces", 0, false, "collector", "443",
	  "/v1/traces" },
	{ "http://agent:x1", -1, false, NULL, NULL, NULL },
	{ "http://:8126", -1, false, NULL, NULL, NULL },
	{ "unix://relative.sock", -1, false, NULL, NULL, NULL },
	/* The configuration's URL parser (url.c) decides these now. */
	{ "http://agent:70000", -1, false, NULL, NULL, NULL },
	{ "http://user@agent:8126", -1, false, NULL, NULL, NULL },
	{ "http://agent/v0.4/traces?x=1", -1, false, NULL, NULL, NULL },
	{ "HTTP://[::1]", 0, false, "::1", "80", "/v0.4/traces" },
};

START_TEST(test_url_parse)
{
	struct export_url u;
	char *cause = NULL;
	int rv;

	rv = export_url_parse(url_vec[_i].url, "/v0.4/traces", &u, &cause);
	ck_assert_int_eq(rv, url_vec[_i].rv);
	if (rv == 0) {
		ck_assert_int_eq(u.unix_socket, url_vec[_i].unix_socket);
		ck_assert_str_eq(u.host, url_vec[_i].host);
		ck_assert_str_eq(u.port, url_vec[_i].port);
		ck_assert_str_eq(u.path, url_vec[_i].path);
		export_url_clear(&u);
	} else {
		ck_assert_ptr_nonnull(cause);
		free(cause);
	}
}
END_TEST

/* ------------------------------------------------------------ */

/* Queue full -> false and counted; memory bounded by the queue. */
START_TEST(test_queue_full)
{
	struct span *sp = span_new();
	struct exporter *ex;
	struct exporter_queue *q;
	struct exporter_stats st;
	int i, ok = 0;

	cfg.exporter.max_queue_spans = 16;
	ex = new_exporter(1000, true);
	q = exporter_queue_new(ex);
	make_span(sp);
	for (i = 0; i < 100; i++)
		ok += exporter_submit(q, sp) ? 1 : 0;
	ck_assert_int_eq(ok, 16);
	exporter_get_stats(ex, &st);
	ck_assert_uint_eq(st.submitted, 16);
	ck_assert_uint_eq(st.queued, 16);
	ck_assert_uint_eq(st.dropped_queue_full, 84);
	/* Draining frees the ring again. */
	exporter_flush(ex);
	WAIT_STATS(ex, st, st.exported == 16);
	ck_assert(fa_wait(&agent, 1, 5000));
	for (i = 0; i < 16; i++)
		ck_assert(exporter_submit(q, sp));
	exporter_free(ex);	/* flushes the second 16 */
	ck_assert(fa_wait(&agent, 2, 5000));
	span_free(sp);
}
END_TEST

/* Many wraps of a small ring keep every record intact and in order. */
START_TEST(test_ring_wrap)
{
	struct span *sp = span_new();
	struct exporter *ex;
	struct exporter_queue *q;
	struct exporter_stats st;
	uint64_t i, n = 0;

	cfg.exporter.max_queue_spans = 40;
	ex = new_exporter(1000, true);
	q = exporter_queue_new(ex);
	make_span(sp);
	for (i = 0; i < 400; i++) {
		sp->trace_id.low = i;
		/* Variable sizes so records straddle the ring's end. */
		ck_assert_int_eq(span_set_meta_len(sp, "pad",
		    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", (size_t)(i % 90)),
		    0);
		while (!exporter_submit(q, sp)) {
			exporter_flush(ex);
			usleep(1000);
		}
		n++;
	}
	exporter_flush(ex);
	WAIT_STATS(ex, st, st.exported + st.dropped_agent_error == n);
	ck_assert_uint_eq(st.exported, n);
	exporter_free(ex);
	span_free(sp);
}
END_TEST

/*
 * A stall that starts while records sit past the ring's hot start keeps
 * the whole queue: after 2000 spans were taken into a request the agent
 * never answers, 15000 more (~22 MiB) are all queued (max_queue_spans
 * 20000), none dropped as queue_full.
 */
START_TEST(test_stall_keeps_capacity)
{
	static char pad[1401];
	struct span *sp = span_new();
	struct exporter *ex;
	struct exporter_queue *q;
	struct exporter_stats st;
	const char *pre;
	int i, ok = 0;

	fa_set(&agent, FA_STALL, NULL);
	ts_expect_warning("spans");
	cfg.exporter.max_queue_spans = 20000;
	/* Far longer than the submits below take (valgrind: ~50x). */
	pre = getenv("LD_PRELOAD");
	ex = new_exporter(pre != NULL && strstr(pre, "vgpreload") != NULL ?
	    8000 : 1000, true);
	q = exporter_queue_new(ex);
	make_span(sp);
	memset(pad, 'p', sizeof pad - 1);
	ck_assert_int_eq(span_set_meta(sp, "pad", pad), 0);
	for (i = 0; i < 2000; i++)
		ck_assert(exporter_submit(q, sp));
	exporter_flush(ex);
	/* Taken into the batch, sent, never answered. */
	WAIT_STATS(ex, st, st.queued == 0);
	ck_assert(fa_wait(&agent, 1, 5000));
	for (i = 0; i < 15000; i++)
		ok += exporter_submit(q, sp) ? 1 : 0;
	exporter_get_stats(ex, &st);
	ck_assert_int_eq(ok, 15000);
	ck_assert_uint_eq(st.dropped_queue_full, 0);
	ck_assert_uint_eq(st.queued, 15000);
	exporter_free(ex);
	span_free(sp);
}
END_TEST

/*
 * Every span in exactly one bucket (issue 9 item 7): a thread samples
 * the stats as fast as it can while the agent answers, stalls (accepts,
 * never answers), answers 500 and dies, and each sample must satisfy
 * submitted == exported + dropped + queued + inflight.  The batch the
 * stalled agent holds is in flight: it left the ring but is neither
 * exported nor dropped yet, and it once went missing from all three.
 */
struct acct_sampler {
	struct exporter		*ex;
	int			 stop;		/* atomic */
	uint64_t		 samples, with_inflight, bad;
	struct exporter_stats	 first_bad;
};

static bool
acct_holds(const struct exporter_stats *st)
{
	return st->exported + st->dropped_agent_error +
	    st->dropped_unsampled + st->queued + st->inflight ==
	    st->submitted;
}

static void *
acct_sample(void *arg)
{
	struct acct_sampler *s = arg;
	struct exporter_stats st;

	while (!__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
		exporter_get_stats(s->ex, &st);
		s->samples++;
		if (st.inflight > 0)
			s->with_inflight++;
		if (!acct_holds(&st) && s->bad++ == 0)
			s->first_bad = st;
		/*
		 * Let the exporter thread run: it is niced (thread_nice), and
		 * under valgrind, which runs one thread at a time, a reader
		 * that never blocks kept it off the lock for many minutes.
		 */
		sched_yield();
	}
	return NULL;
}

START_TEST(test_accounting_stalled_agent)
{
	struct acct_sampler smp;
	struct exporter *ex;
	struct exporter_queue *q;
	struct exporter_stats st;
	struct span *sp = span_new();
	pthread_t th;
	int i;

	ts_expect_warning("spans dropped");
	cfg.exporter.max_queue_spans = 20000;
	ex = new_exporter(300, false);	/* 300 ms timeout, 2 retries */
	q = exporter_queue_new(ex);
	make_span(sp);
	memset(&smp, 0, sizeof smp);
	smp.ex = ex;
	ck_assert_int_eq(pthread_create(&th, NULL, acct_sample, &smp), 0);

	/* The agent answers: 100 exported. */
	for (i = 0; i < 100; i++)
		ck_assert(exporter_submit(q, sp));
	exporter_flush(ex);
	WAIT_STATS(ex, st, st.exported == 100);

	/* It stalls: 500 taken into a request that is never answered. */
	fa_set(&agent, FA_STALL, NULL);
	for (i = 0; i < 500; i++)
		ck_assert(exporter_submit(q, sp));
	exporter_flush(ex);
	ck_assert(fa_wait(&agent, 2, 5000));
	WAIT_STATS(ex, st, st.queued == 0);
	ck_assert_uint_eq(st.inflight, 500);
	/* More arrive meanwhile and wait in the ring. */
	for (i = 0; i < 700; i++)
		ck_assert(exporter_submit(q, sp));

	/* The stalled request times out; the retries get 500s. */
	fa_set(&agent, FA_500, NULL);
	WAIT_STATS(ex, st, st.dropped_agent_error >= 500);

	/* It dies: connections refused, the rest dropped after retries. */
	for (i = 0; i < 300; i++)
		ck_assert(exporter_submit(q, sp));
	fa_fini(&agent);
	exporter_flush(ex);
	WAIT_STATS(ex, st, st.queued == 0 && st.inflight == 0 &&
	    st.dropped_agent_error == 1500);

	__atomic_store_n(&smp.stop, 1, __ATOMIC_RELEASE);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_uint_eq(st.submitted, 1600);
	ck_assert_uint_eq(st.exported, 100);
	ck_assert(acct_holds(&st));
	ck_assert_msg(smp.bad == 0, "%llu of %llu samples lost spans; first: "
	    "submitted %llu exported %llu dropped %llu queued %llu inflight "
	    "%llu", (unsigned long long)smp.bad,
	    (unsigned long long)smp.samples,
	    (unsigned long long)smp.first_bad.submitted,
	    (unsigned long long)smp.first_bad.exported,
	    (unsigned long long)smp.first_bad.dropped_agent_error,
	    (unsigned long long)smp.first_bad.queued,
	    (unsigned long long)smp.first_bad.inflight);
	/* The sampler saw the stall (the request lasts 300 ms). */
	ck_assert_uint_ge(smp.samples, 1000);
	ck_assert_uint_ge(smp.with_inflight, 100);
	exporter_free(ex);
	span_free(sp);
}
END_TEST

/*
 * The queue's memory follows the load (issue 11 item 3): a chunk or two
 * at light load, up to the backlog while the agent stalls, and back to a
 * chunk or two once the backlog is drained (after two demand windows:
 * 20 ticks of 5 ms each here).
 */
#define KIB	1024ULL
#define MIB	(1024ULL * 1024ULL)

START_TEST(test_queue_memory_follows_load)
{
	static char pad[1401];
	struct span *sp = span_new();
	struct exporter *ex;
	struct exporter_queue *q;
	struct exporter_stats st;
	const char *pre = getenv("LD_PRELOAD");
	bool vg = pre != NULL && strstr(pre, "vgpreload") != NULL;
	uint64_t most = 0, n = 0, t0;
	int i, j;

	ts_expect_warning("spans dropped");
	cfg.exporter.max_queue_spans = 20000;
	cfg.exporter.flush_interval_ms = 20;
	/* The stall outlasts the submits below (valgrind: ~50x slower). */
	ex = new_exporter(vg ? 8000 : 1000, true);
	q = exporter_queue_new(ex);
	make_span(sp);
	memset(pad, 'p', sizeof pad - 1);
	ck_assert_int_eq(span_set_meta(sp, "pad", pad), 0);

	/* Light load: 10 spans (~17 KiB) every 5 ms, for 1 s. */
	for (i = 0; i < 200; i++) {
		for (j = 0; j < 10; j++, n++)
			ck_assert(exporter_submit(q, sp));
		exporter_get_stats(ex, &st);
		if (st.queue_bytes > most)
			most = st.queue_bytes;
		usleep(5000);
	}
	WAIT_STATS(ex, st, st.exported == n);
	/* A ring touches all it has passed through: 3.4 MiB by now. */
	ck_assert_msg(most <= 4 * 256 * KIB, "light load: %llu bytes",
	    (unsigned long long)most);

	/*
	 * A stall: of 15000 spans (~22 MiB) one batch (<= 4096) is held by
	 * the agent, the rest wait in the queue, all of them in memory, in
	 * at most the byte bound (64 MiB) and the spares (8 MiB).
	 */
	fa_set(&agent, FA_STALL, NULL);
	for (i = 0; i < 15000; i++, n++)
		ck_assert(exporter_submit(q, sp));
	exporter_get_stats(ex, &st);
	ck_assert_uint_eq(st.dropped_queue_full, 0);
	ck_assert_uint_ge(st.queued, 15000 - 4096);
	ck_assert_msg(st.queue_bytes >= st.queued * 1400 && st.queue_bytes <=
	    (64 + 8) * MIB, "stalled: %llu bytes for %llu spans",
	    (unsigned long long)st.queue_bytes,
	    (unsigned long long)st.queued);

	/*
	 * The agent answers again: once the stalled request times out, the
	 * backlog drains and the memory goes back.
	 */
	fa_set(&agent, FA_NORMAL, NULL);
	t0 = util_mono_ns();
	do {
		exporter_get_stats(ex, &st);
		if (st.queued == 0 && st.inflight == 0 &&
		    st.queue_bytes <= 2 * 256 * KIB)
			break;
		usleep(2000);
	} while (util_mono_ns() - t0 < 30000000000ULL);
	ck_assert_msg(st.queued == 0 && st.inflight == 0 &&
	    st.queue_bytes <= 2 * 256 * KIB, "after the drain: queued %llu "
	    "inflight %llu, %llu bytes", (unsigned long long)st.queued,
	    (unsigned long long)st.inflight,
	    (unsigned long long)st.queue_bytes);
	ck_assert_uint_eq(st.exported + st.dropped_agent_error, n);
	exporter_free(ex);
	span_free(sp);
}
END_TEST

/*
 * A record larger than a chunk (256 KiB) gets a chunk of its own size
 * (with the page's rest for the next records), unmapped once the queue
 * has moved past it and it is sent; one larger than a quarter of the
 * byte bound (2 MiB here) is dropped as queue_full.
 */
START_TEST(test_queue_large_record)
{
	static char big[60001];
	static const char *const keys[9] = {
		"big0", "big1", "big2", "big3", "big4", "big5", "big6",
		"big7", "big8",
	};
	struct span *small = span_new(), *large = span_new();
	struct exporter *ex;
	struct exporter_queue *q;
	struct exporter_stats st;
	size_t body = 0, r;
	int i;

	memset(big, 'b', sizeof big - 1);
	ex = new_exporter(1000, true);
	q = exporter_queue_new(ex);
	make_span(small);
	make_span(large);
	/* Borrowed, not copied: the span's arena holds 24 KiB. */
	for (i = 0; i < 5; i++)
		ck_assert_int_eq(span_add_meta_static(large, keys[i], 4, big,
		    60000), 0);
	ck_assert(exporter_submit(q, small));
	ck_assert(exporter_submit(q, large));	/* ~300 KB */
	/* Past the rest of its last page (< 4 KiB). */
	for (i = 0; i < 20; i++)
		ck_assert(exporter_submit(q, small));
	exporter_get_stats(ex, &st);
	ck_assert_uint_gt(st.queue_bytes, 300000);
	exporter_flush(ex);
	WAIT_STATS(ex, st, st.exported == 22);
	ck_assert(fa_wait(&agent, 1, 5000));
	pthread_mutex_lock(&agent.mu);
	for (r = 0; r < agent.nreqs; r++)
		body += agent.reqs[r].body_len;
	pthread_mutex_unlock(&agent.mu);
	ck_assert_uint_gt(body, 5 * 60000);
	/* Sent: its chunk is unmapped, not kept as a spare. */
	WAIT_STATS(ex, st, st.queue_bytes <= 2 * 256 * 1024);

	for (i = 5; i < 9; i++)
		ck_assert_int_eq(span_add_meta_static(large, keys[i], 4, big,
		    60000), 0);
	ck_assert(!exporter_submit(q, large));	/* ~540 KB > 512 KiB */
	ck_assert(exporter_submit(q, small));
	exporter_flush(ex);
	WAIT_STATS(ex, st, st.exported == 23);
	ck_assert_uint_eq(st.dropped_queue_full, 1);
	exporter_free(ex);
	span_free(small);
	span_free(large);
}
END_TEST

/* Submits while the agent is down, stalled, failing: never slow. */
static void
assert_submit_fast(struct exporter *ex, int count)
{
	struct exporter_queue *q = exporter_queue_new(ex);
	struct span *sp = span_new();
	const char *pre = getenv("LD_PRELOAD");
	uint64_t t0, worst = 0, bound = 2000000;
	int i;

	/* Valgrind runs everything ~50x slower; a stuck submit still
	 * shows (the stalled agent never answers). */
	if (pre != NULL && strstr(pre, "vgpreload") != NULL)
		bound = 500000000;
	make_span(sp);
	for (i = 0; i < count; i++) {
		t0 = util_mono_ns();
		(void)exporter_submit(q, sp);
		if (util_mono_ns() - t0 > worst)
			worst = util_mono_ns() - t0;
		if (i % 50 == 0)
			exporter_flush(ex);
	}
	/* Generous for a shared 2-core box; a blocking submit takes ms. */
	ck_assert_msg(worst < bound, "slowest submit %llu ns",
	    (unsigned long long)worst);
	span_free(sp);
}

START_TEST(test_agent_down)
{
	struct exporter *ex;
	struct exporter_stats st;
	int i;

	/* A port nobody listens on: a fake agent's, once closed. */
	ts_expect_warning("spans");
	{
		struct fa_agent dead;

		ck_assert_int_eq(fa_init(&dead, 0, NULL), 0);
		snprintf(url, sizeof url, "http://127.0.0.1:%d", dead.port);
		fa_fini(&dead);
	}
	ex = new_exporter(500, false);
	assert_submit_fast(ex, 200);
	exporter_flush(ex);
	WAIT_STATS(ex, st, st.dropped_agent_error + st.exported +
	    st.queued == st.submitted && st.queued == 0 &&
	    st.dropped_agent_error > 0);
	ck_assert_uint_eq(st.exported, 0);
	ck_assert_uint_ge(st.errors, 3);	/* first try + 2 retries */
	/* The drops are counted just before the warning is logged. */
	for (i = 0; i < 2500 && __atomic_load_n(&ts_warnings_seen,
	    __ATOMIC_RELAXED) < 1; i++)
		usleep(2000);
	ck_assert_int_ge(ts_warnings_seen, 1);
	exporter_free(ex);
}
END_TEST

START_TEST(test_agent_stall)
{
	struct exporter *ex;
	struct exporter_stats st;

	fa_set(&agent, FA_STALL, NULL);
	/* "timeout (N spans dropped)", or at shutdown "N spans not
	 * delivered": both are logged on the exporter thread. */
	ts_expect_warning("spans");
	ex = new_exporter(200, true);
	assert_submit_fast(ex, 100);
	exporter_flush(ex);
	WAIT_STATS(ex, st, st.errors >= 1 && st.queued == 0 &&
	    st.dropped_agent_error == st.submitted);
	ck_assert_uint_eq(st.exported, 0);
	exporter_free(ex);
	ck_assert_uint_ge(fa_count(&agent), 1);
}
END_TEST

START_TEST(test_agent_500)
{
	struct exporter *ex;
	struct exporter_queue *q;
	struct exporter_stats st;
	struct span *sp = span_new();
	int i;

	fa_set(&agent, FA_500, NULL);
	ts_expect_warning("HTTP 500");
	ex = new_exporter(1000, false);
	q = exporter_queue_new(ex);
	make_span(sp);
	for (i = 0; i < 5; i++)
		ck_assert(exporter_submit(q, sp));
	exporter_flush(ex);
	WAIT_STATS(ex, st, st.dropped_agent_error == 5);
	ck_assert_uint_eq(st.errors, 3);	/* retried twice */
	ck_assert(fa_wait(&agent, 3, 5000));
	ck_assert_uint_eq(st.exported, 0);
	/* The agent recovers: the next batch goes through. */
	fa_set(&agent, FA_NORMAL, NULL);
	ck_assert(exporter_submit(q, sp));
	exporter_flush(ex);
	WAIT_STATS(ex, st, st.exported == 1);
	exporter_free(ex);
	span_free(sp);
}
END_TEST

/*
 * Restart the fake agent in keep-alive mode (issue 14 item 3): it keeps
 * each connection for close_after answers (0: for ever), closes it, unanswered,
 * at its drop_request-th request (0: never), and counts connections.
 */
static void
agent_keepalive(unsigned close_after, unsigned drop_request)
{
	fa_fini(&agent);
	ck_assert_int_eq(fa_init(&agent, 0, NULL), 0);
	agent.keepalive = true;
	agent.close_after = close_after;
	agent.drop_request = drop_request;
	fa_start(&agent);
	snprintf(url, sizeof url, "http://127.0.0.1:%d", agent.port);
}

static size_t
agent_conns(void)
{
	size_t n;

	pthread_mutex_lock(&agent.mu);
	n = agent.nconns;
	pthread_mutex_unlock(&agent.mu);
	return n;
}

/* n batches of one span each, every one exported before the next. */
static void
send_batches(struct exporter *ex, struct exporter_queue *q, int n)
{
	struct exporter_stats st;
	struct span *sp = span_new();
	uint64_t base;
	int i;

	exporter_get_stats(ex, &st);
	base = st.exported;
	make_span(sp);
	for (i = 0; i < n; i++) {
		ck_assert(exporter_submit(q, sp));
		exporter_flush(ex);
		WAIT_STATS(ex, st, st.exported == base + (uint64_t)i + 1);
	}
	span_free(sp);
}

/* A keep-alive agent: N batches over one connection. */
START_TEST(test_agent_keepalive)
{
	struct exporter *ex;
	struct exporter_stats st;

	agent_keepalive(0, 0);
	ex = new_exporter(2000, false);
	send_batches(ex, exporter_queue_new(ex), 6);
	exporter_get_stats(ex, &st);
	ck_assert_uint_eq(st.requests, 6);
	ck_assert_uint_eq(st.errors, 0);
	ck_assert_uint_eq(fa_count(&agent), 6);
	ck_assert_uint_eq(agent_conns(), 1);
	exporter_free(ex);
}
END_TEST

/*
 * The agent closes the connection after every second answer (as its idle
 * timeout would): one reconnect each time, no error, no span lost.
 */
START_TEST(test_agent_closes_connection)
{
	struct exporter *ex;
	struct exporter_stats st;

	agent_keepalive(2, 0);
	ex = new_exporter(2000, false);
	send_batches(ex, exporter_queue_new(ex), 5);
	exporter_get_stats(ex, &st);
	ck_assert_uint_eq(st.exported, 5);
	ck_assert_uint_eq(st.errors, 0);
	ck_assert_uint_eq(st.dropped_agent_error, 0);
	ck_assert_uint_eq(agent_conns(), 3);
	exporter_free(ex);
}
END_TEST

/*
 * The agent's close crosses the second request of each connection (it
 * closes the kept connection as the request arrives): the request is sent
 * again on a new connection within the same attempt; no error, no retry,
 * no span lost.
 */
START_TEST(test_agent_close_crosses_batch)
{
	struct exporter *ex;
	struct exporter_stats st;

	agent_keepalive(0, 2);
	ex = new_exporter(2000, false);
	send_batches(ex, exporter_queue_new(ex), 3);
	exporter_get_stats(ex, &st);
	ck_assert_uint_eq(st.exported, 3);
	ck_assert_uint_eq(st.errors, 0);
	ck_assert_uint_eq(st.dropped_agent_error, 0);
	/*
	 * Each connection's second request is dropped: 1, 2 (dropped) on
	 * the first; 2, 3 (dropped) on the second; 3 on the third.
	 */
	ck_assert_uint_eq(fa_count(&agent), 5);
	ck_assert_uint_eq(agent_conns(), 3);
	exporter_free(ex);
}
END_TEST

/* A 500 on a kept connection: the backoff and the accounting as before. */
START_TEST(test_agent_keepalive_500)
{
	struct exporter *ex;
	struct exporter_queue *q;
	struct exporter_stats st;
	struct span *sp = span_new();
	int i;

	agent_keepalive(0, 0);
	fa_set(&agent, FA_500, NULL);
	ts_expect_warning("HTTP 500");
	ex = new_exporter(1000, false);
	q = exporter_queue_new(ex);
	make_span(sp);
	for (i = 0; i < 5; i++)
		ck_assert(exporter_submit(q, sp));
	exporter_flush(ex);
	WAIT_STATS(ex, st, st.dropped_agent_error == 5);
	ck_assert_uint_eq(st.errors, 3);	/* retried twice */
	fa_set(&agent, FA_NORMAL, NULL);
	send_batches(ex, q, 2);
	ck_assert_uint_eq(agent_conns(), 1);
	exporter_free(ex);
	span_free(sp);
}
END_TEST

START_TEST(test_agent_garbage)
{
	struct exporter *ex;
	struct exporter_stats st;

	fa_set(&agent, FA_GARBAGE, NULL);
	ts_expect_warning("invalid status line");
	ex = new_exporter(1000, true);
	assert_submit_fast(ex, 10);
	exporter_flush(ex);
	WAIT_STATS(ex, st, st.dropped_agent_error + st.exported ==
	    st.submitted && st.queued == 0);
	ck_assert_uint_eq(st.exported, 0);
	ck_assert_uint_ge(st.errors, 1);
	exporter_free(ex);
}
END_TEST

/* A 200 whose body is not JSON: spans count as exported, no rates. */
START_TEST(test_agent_bad_json)
{
	struct exporter *ex;
	struct exporter_stats st;

	fa_set(&agent, FA_NORMAL, "not json at all");
	ex = new_exporter(1000, true);
	assert_submit_fast(ex, 3);
	exporter_flush(ex);
	WAIT_STATS(ex, st, st.exported == 3);
	ck_assert_uint_eq(exporter_rates_version(ex), 0);
	exporter_free(ex);
}
END_TEST

/* A slow agent (answers within the timeout) is fine. */
START_TEST(test_agent_slow)
{
	struct exporter *ex;
	struct exporter_stats st;

	fa_set(&agent, FA_SLOW, NULL);
	agent.delay_ms = 150;
	ex = new_exporter(2000, true);
	assert_submit_fast(ex, 20);
	exporter_flush(ex);
	WAIT_STATS(ex, st, st.exported == 20);
	ck_assert_uint_eq(st.errors, 0);
	exporter_free(ex);
}
END_TEST

/* exporter_free flushes what is queued. */
START_TEST(test_free_flushes)
{
	struct exporter *ex = new_exporter(1000, true);
	struct exporter_queue *q = exporter_queue_new(ex);
	struct span *sp = span_new();

	make_span(sp);
	ck_assert(exporter_submit(q, sp));
	ck_assert(exporter_submit(q, sp));
	exporter_free(ex);
	ck_assert_uint_eq(fa_count(&agent), 1);
	span_free(sp);
}
END_TEST

/* The flush timer sends without being asked. */
START_TEST(test_flush_timer)
{
	struct exporter *ex;
	struct exporter_queue *q;
	struct span *sp = span_new();

	cfg.exporter.flush_interval_ms = 50;
	ex = new_exporter(1000, true);
	q = exporter_queue_new(ex);
	make_span(sp);
	ck_assert(exporter_submit(q, sp));
	ck_assert(fa_wait(&agent, 1, 5000));
	exporter_free(ex);
	span_free(sp);
}
END_TEST

/* stdout: one JSON object per span per line on the configured fd. */
START_TEST(test_stdout)
{
	struct exporter_opts o;
	struct exporter *ex;
	struct exporter_queue *q;
	struct span *sp = span_new();
	char *cause = NULL, buf[8192];
	json_t *line, *meta;
	ssize_t n;
	size_t len = 0;
	int fds[2];

	ck_assert_int_eq(pipe(fds), 0);
	cfg.exporter.type = CONFIG_EXPORTER_STDOUT;
	memset(&o, 0, sizeof o);
	o.stdout_fd = fds[1] + 1;
	o.tick_ms = 5;
	ex = exporter_new_opts(&cfg, &o, &cause);
	ck_assert_ptr_nonnull(ex);
	q = exporter_queue_new(ex);
	make_span(sp);
	sp->trace_id.high = 0x6650a1b200000000ULL;
	span_finish(sp, sp->start_ns + 1000);
	ck_assert(exporter_submit(q, sp));
	ck_assert(exporter_submit(q, sp));
	exporter_free(ex);
	close(fds[1]);
	while ((n = read(fds[0], buf + len, sizeof buf - 1 - len)) > 0)
		len += (size_t)n;
	close(fds[0]);
	buf[len] = '\0';
	ck_assert_ptr_nonnull(strchr(buf, '\n'));
	ck_assert_ptr_eq(strchr(buf, '\n') + 1 + (strchr(buf, '\n') - buf) +
	    1, buf + len);	/* two identical lines */
	*strchr(buf, '\n') = '\0';
	line = json_loads(buf, 0, NULL);
	ck_assert_ptr_nonnull(line);
	ck_assert_str_eq(json_string_value(json_object_get(line, "trace_id")),
	    "6650a1b20000000000000000000000" "63");
	ck_assert_str_eq(json_string_value(json_object_get(line, "span_id")),
	    "0000000000000064");
	ck_assert_str_eq(json_string_value(json_object_get(line,
	    "parent_id")), "0000000000000065");
	ck_assert_str_eq(json_string_value(json_object_get(line, "name")),
	    "tracestitch.request");
	ck_assert_str_eq(json_string_value(json_object_get(line, "resource")),
	    "GET /users");
	ck_assert_int_eq(json_integer_value(json_object_get(line, "start")),
	    1700000000000000000LL);
	ck_assert_int_eq(json_integer_value(json_object_get(line,
	    "duration")), 1000);
	ck_assert_int_eq(json_integer_value(json_object_get(line, "error")),
	    0);
	meta = json_object_get(line, "meta");
	ck_assert_str_eq(json_string_value(json_object_get(meta,
	    "http.method")), "GET");
	ck_assert_str_eq(json_string_value(json_object_get(meta,
	    "_dd.p.tid")), "6650a1b200000000");
	ck_assert_double_eq_tol(json_real_value(json_object_get(
	    json_object_get(line, "metrics"), "_sampling_priority_v1")), 1,
	    1e-9);
	json_decref(line);
	span_free(sp);
}
END_TEST

/* "none": no thread, submit drops without counting. */
START_TEST(test_none)
{
	struct exporter *ex;
	struct exporter_queue *q;
	struct span *sp = span_new();
	char *cause = NULL;

	cfg.exporter.type = CONFIG_EXPORTER_NONE;
	ex = exporter_new(&cfg, &cause);
	ck_assert_ptr_nonnull(ex);
	q = exporter_queue_new(ex);
	make_span(sp);
	ck_assert(!exporter_submit(q, sp));
	ck_assert_uint_eq(exporter_rates_version(ex), 0);
	exporter_free(ex);
	span_free(sp);
}
END_TEST

/* The exporter's families in /metrics. */
START_TEST(test_metrics)
{
	struct exporter *ex;
	struct exporter_queue *q;
	struct exporter_stats st;
	struct span *sp = span_new();
	char *out;
	int i;

	cfg.exporter.max_queue_spans = 4;
	ex = new_exporter(1000, true);
	q = exporter_queue_new(ex);
	make_span(sp);
	for (i = 0; i < 6; i++)
		(void)exporter_submit(q, sp);
	exporter_flush(ex);
	WAIT_STATS(ex, st, st.exported == 4);
	out = metrics_render();
	ck_assert_ptr_nonnull(out);
	ck_assert_ptr_nonnull(strstr(out, "tracestitch_export_spans_total 4\n"));
	ck_assert_ptr_nonnull(strstr(out, "tracestitch_export_dropped_spans_"
	    "total{reason=\"queue_full\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(out, "tracestitch_export_dropped_spans_"
	    "total{reason=\"agent_error\"} 0\n"));
	ck_assert_ptr_nonnull(strstr(out, "tracestitch_export_dropped_spans_"
	    "total{reason=\"unsampled\"} 0\n"));
	ck_assert_ptr_nonnull(strstr(out, "tracestitch_export_requests_total "
	    "1\n"));
	ck_assert_ptr_nonnull(strstr(out, "tracestitch_export_errors_total "
	    "0\n"));
	ck_assert_ptr_nonnull(strstr(out, "tracestitch_export_queue_spans 0\n"));
	/* 4 exported + 2 queue_full: every span handed over is in one. */
	ck_assert_ptr_nonnull(strstr(out, "tracestitch_export_submitted_"
	    "spans_total 6\n"));
	ck_assert_ptr_nonnull(strstr(out, "tracestitch_export_inflight_spans "
	    "0\n"));
	ck_assert_ptr_nonnull(strstr(out, "tracestitch_export_queue_bytes "));
	ck_assert_ptr_nonnull(strstr(out, "tracestitch_export_duration_"
	    "seconds_count 1\n"));
	free(out);
	exporter_free(ex);
	out = metrics_render();
	ck_assert_ptr_null(strstr(out, "tracestitch_export_spans_total"));
	free(out);
	span_free(sp);
}
END_TEST

static Suite *
exporter_suite(void)
{
	Suite *s = suite_create("exporter");
	TCase *tc;

	tc = tcase_create("http");
	tcase_add_loop_test(tc, test_http_parse, 0, (int)TS_NITEMS(resp_vec));
	tcase_add_loop_test(tc, test_url_parse, 0, (int)TS_NITEMS(url_vec));
	suite_add_tcase(s, tc);

	tc = tcase_create("queue");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_queue_full);
	tcase_add_test(tc, test_ring_wrap);
	tcase_add_test(tc, test_queue_large_record);
	tcase_add_test(tc, test_free_flushes);
	tcase_add_test(tc, test_flush_timer);
	tcase_add_test(tc, test_stdout);
	tcase_add_test(tc, test_none);
	tcase_add_test(tc, test_metrics);
	suite_add_tcase(s, tc);

	tc = tcase_create("agent");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_agent_down);
	tcase_add_test(tc, test_agent_stall);
	tcase_add_test(tc, test_stall_keeps_capacity);
	tcase_add_test(tc, test_accounting_stalled_agent);
	tcase_add_test(tc, test_queue_memory_follows_load);
	tcase_add_test(tc, test_agent_500);
	tcase_add_test(tc, test_agent_garbage);
	tcase_add_test(tc, test_agent_bad_json);
	tcase_add_test(tc, test_agent_slow);
	tcase_add_test(tc, test_agent_keepalive);
	tcase_add_test(tc, test_agent_closes_connection);
	tcase_add_test(tc, test_agent_close_crosses_batch);
	tcase_add_test(tc, test_agent_keepalive_500);
	tcase_add_loop_test(tc, test_thread_sched, 0, (int)TS_NITEMS(nice_vec));
	tcase_add_loop_test(tc, test_big_batch_sliced, 0,
	    (int)TS_NITEMS(big_vec));
	suite_add_tcase(s, tc);
	return s;
}

TS_TEST_MAIN(exporter_suite)
