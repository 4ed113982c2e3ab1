/*
 * exporter.c -- the exporter core: per-worker SPSC chunk queues, the span
 * encoder that runs on the worker, and the exporter thread (its own event
 * base) that drains the queues on a tick, batches, flushes on
 * exporter.flush_interval or when enough is queued, retries transient
 * failures with exponential backoff, counts every drop, and publishes the
 * agent's rate_by_service table as an immutable, versioned snapshot
 * (ARCHITECTURE.md "Threads", PROPAGATION.md 11).
 *
 * Queue protocol (one producer: the worker; one consumer: the exporter
 * thread).  A queue is a chain of chunks, each mapped on its own, so that
 * its memory follows the load: one chunk while the exporter keeps up, as
 * many as the backlog needs while the agent is slow (up to the byte
 * bound), and back to one or two once it is drained.  Records are a
 * uint32 length and the bytes, 8-aligned; a length of UINT32_MAX (or the
 * chunk's end) means "continue in the next chunk".  The producer
 * publishes each record with a release store of nprod, the consumer
 * publishes what it took with a release store of ncons: no locks, no
 * read-modify-write instruction per span, and the producer reads the
 * consumer's counters only when its cached copies say the queue looks
 * full.  A record count bound (exporter.max_queue_spans split over the
 * workers) sits on top of the byte bound.
 *
 * Chunks go round: the consumer keeps the chunks it has emptied and hands
 * them back to the producer, already resident, through a few hand-over
 * slots, topped up on every tick to what the producer took per tick
 * lately (plus one); new ones it maps with MAP_POPULATE on its own
 * thread, so the worker neither faults nor makes a system call in steady
 * state.  Only when every slot is empty (a burst) does the worker map a
 * chunk itself.  When the demand falls (EXPORT_TRIM_TICKS ticks of it),
 * the consumer takes the spare chunks back from the slots and unmaps
 * them: the pages go back to the kernel at once.  A slot changes hands
 * with an atomic exchange, so either side may empty it; the worker does
 * that once per chunk (every few hundred spans), never per span.
 *
 * Accounting.  Every span accepted into a queue is, at every moment, in
 * exactly one of: queued (in a queue: nprod - ncons), in flight (taken
 * into the batch, being sent or waiting for a retry), exported, or
 * dropped (agent error, unsampled, shutdown).  The exporter thread moves
 * spans between the last four; it does each move inside a sequence lock
 * (acct_begin/acct_end) so that exporter_get_stats, and so /metrics,
 * reads them as one consistent snapshot even while a batch is in flight.
 * Queue-full drops never enter a queue; they are counted on the worker.
 */
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <msgpack.h>

#include "config.h"
#include "export_int.h"
#include "exporter.h"
#include "log.h"
#include "metrics.h"
#include "sampler.h"
#include "span.h"
#include "ts_config.h"
#include "util.h"

#define EXPORT_CACHELINE	64
#define EXPORT_WRAP		UINT32_MAX
#define EXPORT_MIN_RING		(64 * 1024)
#define EXPORT_MAX_RING		(64 * 1024 * 1024)
#define EXPORT_CHUNK		(256 * 1024)	/* a chunk's mapping */
#define EXPORT_HAND		32		/* hand-over slots */
#define EXPORT_TRIM_TICKS	20		/* demand window, ticks */
#define EXPORT_BYTES_PER_SPAN	2048
#define EXPORT_BATCH_SPANS	4096
/*
 * A batch (one HTTP request to the agent) carries at most this much: the
 * batch buffer was the largest piece of the gateway's resident memory at
 * saturation (5.3 of 15 MiB with 4096 spans of ~860 bytes; issue 11),
 * and 1 MiB is still ~1200 gateway spans per request.
 */
#define EXPORT_BATCH_BYTES	(1024 * 1024)
#define EXPORT_WARN_EVERY_NS	(60ULL * 1000000000ULL)
#define EXPORT_NBUCKETS		11	/* incl. +Inf */
#define EXPORT_SLICE_NS		100000	/* the exporter thread's slice */
#define EXPORT_PIECE		(64 * 1024) /* drained between pauses */

/* Export request latency buckets, microseconds, and their labels. */
static const uint64_t lat_le_us[EXPORT_NBUCKETS - 1] = {
	1000, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000,
	2500000,
};
static const char *const lat_le[EXPORT_NBUCKETS] = {
	"0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1",
	"2.5", "+Inf",
};

/*
 * One chunk of a queue: a mapping of map_len bytes, this header, then the
 * records.  Mapped with mmap, not malloc, so that unmapping it gives its
 * pages back to the kernel at once (malloc may keep them).
 */
struct export_chunk {
	struct export_chunk	*next;		/* in the chain, or the pool */
	uint64_t		 map_len;
	uint64_t		 size;		/* bytes of records */
	uint64_t		 pad;		/* data 8-aligned */
	char			 data[];
};

struct exporter_queue {
	/* Producer side: written by the worker only. */
	uint64_t		 nprod __attribute__((aligned(EXPORT_CACHELINE)));
	struct export_chunk	*wchunk;	/* the chunk written to */
	uint64_t		 wpos;
	uint64_t		 linked;	/* bytes ever linked into the chain */
	uint64_t		 released_cache;
	uint64_t		 ncons_cache;
	uint64_t		 ntaken;	/* hand-over chunks taken */
	unsigned		 hnext;		/* slot to look at first */
	uint64_t		 nmapped_prod;	/* chunks the worker mapped */
	uint64_t		 mapped_prod;	/* their bytes */
	uint64_t		 dropped;
	char			*scratch;
	size_t			 scratch_len;
	size_t			 scratch_cap;

	/* Consumer side: written by the exporter thread only. */
	uint64_t		 ncons __attribute__((aligned(EXPORT_CACHELINE)));
	struct export_chunk	*rchunk;	/* the chunk read from */
	uint64_t		 rpos;
	uint64_t		 released;	/* bytes ever unlinked */
	uint64_t		 mapped_cons;	/* bytes mapped - unmapped here
						   (mod 2^64: it unmaps the
						   worker's chunks too) */
	struct export_chunk	*pool;		/* emptied chunks, spare */
	unsigned		 npool;
	uint64_t		 ntaken_seen, nmapped_seen;
	unsigned		 peak, peak_prev; /* chunks taken per tick */
	unsigned		 pool_low;	/* fewest spares this window */
	unsigned		 ticks;

	/* Ready chunks, exporter thread -> worker; NULL: empty slot. */
	struct export_chunk	*hand[EXPORT_HAND]
	    __attribute__((aligned(EXPORT_CACHELINE)));

	/* Immutable after creation. */
	struct exporter		*ex __attribute__((aligned(EXPORT_CACHELINE)));
	struct exporter_queue	*next;
	uint64_t		 cap;		/* bytes of chunks in the chain */
	uint64_t		 chunk_len;	/* a standard chunk's mapping */
	uint64_t		 max_recs;
	bool			 disabled;
};

struct exporter {
	enum config_exporter_type type;
	struct exporter_opts	 opts;
	struct export_proc	 proc;
	char			*s_service, *s_env, *s_version;
	char			 runtime_id[37];
	char			*container_id;
	struct export_url	 url;
	struct export_client	*client;	/* keeps the connection */
	bool			 otlp_json;	/* http/json, else protobuf */
	uint64_t		 flush_ns;
	uint64_t		 max_queue;
	uint64_t		 per_queue;
	uint64_t		 ring_bytes;
	unsigned		 nworkers;
	unsigned		 thread_nice;	/* exporter.thread_nice */
	bool			 yield;		/* give way between pieces */

	pthread_t		 thread;
	bool			 started;
	struct event_base	*base;
	struct event		*tick_ev, *wake_ev, *retry_ev, *stop_ev;
	int			 wake[2];

	pthread_mutex_t		 qlock;		/* the list of queues */
	struct exporter_queue	*queues;
	struct exporter_queue	*dead_queue;	/* for "none" */

	/*
	 * The batch being sent (exporter thread): EXPORT_BATCH_RESERVE
	 * spare bytes, then the records back to back, each after one spare
	 * byte, so that the Datadog payload is framed in place and sent by
	 * reference (export_datadog_frame).  Kept from batch to batch.
	 */
	char			*bbuf;
	size_t			 blen, bcap;
	bool			 full;		/* last batch hit a bound */
	char			*req_body;	/* OTLP body being sent */
	size_t			*boff;
	size_t			*blens;
	size_t			 bn, bncap;
	size_t			 bsent;		/* spans in the request */
	struct export_http	*inflight;
	unsigned		 attempt;
	uint64_t		 sent_ns;
	uint64_t		 batch_cpu_ns;	/* thread CPU at the drain */
	uint64_t		 batch_ns;	/* and the clock */
	uint64_t		 last_flush_ns;
	bool			 flush_asked;
	bool			 stopping;
	bool			 failing;
	unsigned		 idle_ticks;	/* nothing queued or sent */
	uint64_t		 last_warn_ns;

	/* Published rates. */
	pthread_mutex_t		 rlock;
	struct sampler_rate	*rates;
	size_t			 nrates;
	uint64_t		 rates_version;	/* atomic */

	/* Exporter-thread counters (relaxed stores, single writer). */
	uint64_t		 exported, dropped_agent, dropped_unsampled;
	uint64_t		 inflight_spans; /* out of the queues,
						   not yet exported or dropped */
	uint64_t		 acct_seq;	/* odd while moving spans */
	uint64_t		 requests, errors;
	uint64_t		 lat_buckets[EXPORT_NBUCKETS];	/* not cumul. */
	uint64_t		 lat_sum_us;
	bool			 section;
};

static void exporter_try_flush(struct exporter *, bool force);
static void latency_add(struct exporter *, uint64_t us);
static void render_section(FILE *, void *);
static uint64_t queued_total(struct exporter *);

/*
 * The writer's side of the accounting sequence lock (exporter thread
 * only): acct_begin makes the sequence odd before any counter of the
 * move changes, acct_end even again after all of them changed.  A reader
 * that saw the same even value before and after its reads saw no move
 * half done (the seqlock of Boehm, "Can seqlocks get along with
 * programming language memory models?", MSPC 2012).
 */
static void
acct_begin(struct exporter *ex)
{
	__atomic_store_n(&ex->acct_seq, ex->acct_seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
}

static void
acct_end(struct exporter *ex)
{
	__atomic_store_n(&ex->acct_seq, ex->acct_seq + 1, __ATOMIC_RELEASE);
}

/* n in-flight spans leave as exported (ok) or dropped. */
static void
acct_settle(struct exporter *ex, uint64_t n, uint64_t *to)
{
	acct_begin(ex);
	util_counter_add(to, n);
	__atomic_store_n(&ex->inflight_spans, ex->inflight_spans - n,
	    __ATOMIC_RELAXED);
	acct_end(ex);
}

static uint64_t
next_pow2(uint64_t v)
{
	uint64_t p = 1;

	while (p < v)
		p <<= 1;
	return p;
}

/* ---------------------------------------------------------------- */
/* Encoding on the worker.                                           */

/*
 * The record is packed with msgpack-c (the design card: never hand-roll
 * msgpack) into the queue's scratch buffer.  The packer is a local of
 * encode_span() whose write callback is a static function, and the
 * helpers below are always inlined, so the compiler sees the callback and
 * calls it directly (no indirect call, no sbuffer, one bounds check per
 * write; measured: no indirect call left in exporter_submit).  Forms as dd-trace sends them: ids uint64 (0xcf), times int64
 * (0xd3), metrics float64 (0xcb), the smallest str/map/array headers.
 */

/* Grow the scratch buffer so that n more bytes fit (rare). */
static void __attribute__((noinline))
scratch_grow(struct exporter_queue *q, size_t n)
{
	size_t ncap = q->scratch_cap * 2;

	while (ncap - q->scratch_len < n)
		ncap *= 2;
	q->scratch = xrealloc(q->scratch, ncap);
	q->scratch_cap = ncap;
}

/* msgpack-c write callback: append to the scratch buffer. */
static inline int
mp_write(void *data, const char *buf, size_t len)
{
	struct exporter_queue *q = data;

	if (__builtin_expect(q->scratch_cap - q->scratch_len < len, 0))
		scratch_grow(q, len);
	memcpy(q->scratch + q->scratch_len, buf, len);
	q->scratch_len += len;
	return 0;
}

#define MP_INLINE static inline __attribute__((always_inline))

/* A str of len bytes. */
MP_INLINE void
mp_str(msgpack_packer *pk, const char *s, size_t len)
{
	(void)msgpack_pack_str_with_body(pk, s, len);
}

/* A C string (NULL packs as ""). */
MP_INLINE void
mp_cstr(msgpack_packer *pk, const char *s)
{
	if (s == NULL)
		s = "";
	mp_str(pk, s, strlen(s));
}

/* A string literal: its length is a constant. */
#define MP_LIT(pk, lit)	mp_str((pk), (lit), sizeof(lit) - 1)
#define mp_map(pk, n)	(void)msgpack_pack_map((pk), (n))
#define mp_array(pk, n)	(void)msgpack_pack_array((pk), (n))
#define mp_u64(pk, v)	(void)msgpack_pack_fix_uint64((pk), (v))
#define mp_i64(pk, v)	(void)msgpack_pack_fix_int64((pk), (int64_t)(v))
#define mp_double(pk, d) (void)msgpack_pack_double((pk), (d))
#define mp_uint32(pk, v) (void)msgpack_pack_uint32((pk), (v))

MP_INLINE void
mp_kv(msgpack_packer *pk, const char *k, const char *v)
{
	mp_cstr(pk, k);
	mp_cstr(pk, v);
}

/* The native v0.4 span_links field [cpp-span span_link.cpp]. */
static void
pack_links(msgpack_packer *pk, const struct span *sp)
{
	size_t i;

	MP_LIT(pk, "span_links");
	mp_array(pk, sp->n_links);
	for (i = 0; i < sp->n_links; i++) {
		const struct trace_link *l = &sp->links[i];
		size_t n = 2, na = 0;

		if (l->trace_id.high != 0)
			n++;
		if (l->reason != NULL)
			na++;
		if (l->context_headers != NULL)
			na++;
		if (na > 0)
			n++;
		if (l->tracestate != NULL)
			n++;
		if (l->has_flags)
			n++;
		mp_map(pk, n);
		MP_LIT(pk, "trace_id");
		mp_u64(pk, l->trace_id.low);
		if (l->trace_id.high != 0) {
			MP_LIT(pk, "trace_id_high");
			mp_u64(pk, l->trace_id.high);
		}
		MP_LIT(pk, "span_id");
		mp_u64(pk, l->span_id);
		if (na > 0) {
			MP_LIT(pk, "attributes");
			mp_map(pk, na);
			if (l->reason != NULL) {
				MP_LIT(pk, "reason");
				mp_cstr(pk, l->reason);
			}
			if (l->context_headers != NULL) {
				MP_LIT(pk, "context_headers");
				mp_cstr(pk, l->context_headers);
			}
		}
		if (l->tracestate != NULL) {
			MP_LIT(pk, "tracestate");
			mp_cstr(pk, l->tracestate);
		}
		if (l->has_flags) {
			/* The agent's proto: when set, bit 31 is set too. */
			MP_LIT(pk, "flags");
			mp_uint32(pk, l->flags | 0x80000000u);
		}
	}
}

/* Process-level meta tags added when the span lacks them (11.4). */
enum {
	EXTRA_ENV,
	EXTRA_VERSION,
	EXTRA_LANGUAGE,
	EXTRA_RUNTIME_ID,
	EXTRA_COMPONENT,
	EXTRA_N,
};

/*
 * Which of the process-level keys the span's meta already has, as a bit
 * mask: one pass over the keys, a strcmp only when the first byte
 * matches (instead of one span_get_meta walk per key).
 */
static unsigned
meta_present(const struct span *sp)
{
	unsigned have = 0;
	size_t i;

#define KEY_IS(lit) (sp->meta_klen[i] == sizeof(lit) - 1 &&		\
	memcmp(k, (lit), sizeof(lit) - 1) == 0)
	for (i = 0; i < sp->n_meta; i++) {
		const char *k = sp->meta[i].key;

		switch (k[0]) {
		case 'e':
			if (KEY_IS("env"))
				have |= 1u << EXTRA_ENV;
			break;
		case 'v':
			if (KEY_IS("version"))
				have |= 1u << EXTRA_VERSION;
			break;
		case 'l':
			if (KEY_IS("language"))
				have |= 1u << EXTRA_LANGUAGE;
			break;
		case 'r':
			if (KEY_IS("runtime-id"))
				have |= 1u << EXTRA_RUNTIME_ID;
			break;
		case 'c':
			if (KEY_IS("component"))
				have |= 1u << EXTRA_COMPONENT;
			break;
		default:
			break;
		}
	}
#undef KEY_IS
	return have;
}

/*
 * The Datadog v0.4 span map (PROPAGATION.md 11.2) with the process-level
 * tags of 11.4 added when the span does not carry them.
 */
static void
encode_span(struct exporter_queue *q, const struct span *sp,
    const struct export_proc *proc)
{
	static const char *const extra_keys[EXTRA_N] = {
		"env", "version", "language", "runtime-id", "component",
	};
	const char *extra_v[EXTRA_N];
	const char *name;
	size_t i, n_extra = 0, nmap = 12;
	unsigned have, e;
	bool top = true, pid = true;
	msgpack_packer pks, *pk = &pks;

	have = meta_present(sp);
	extra_v[EXTRA_ENV] = proc->env;
	extra_v[EXTRA_VERSION] = proc->version;
	extra_v[EXTRA_LANGUAGE] = "c";
	extra_v[EXTRA_RUNTIME_ID] = proc->runtime_id;
	extra_v[EXTRA_COMPONENT] = "tracestitch";
	for (e = 0; e < EXTRA_N; e++) {
		if (extra_v[e] == NULL || *extra_v[e] == '\0' ||
		    (have & (1u << e)) != 0)
			extra_v[e] = NULL;
		else
			n_extra++;
	}
	for (i = 0; i < sp->n_metrics; i++) {
		const char *k = sp->metrics[i].key;

		if (k[0] == '_' && strcmp(k, "_dd.top_level") == 0)
			top = false;
		else if (k[0] == 'p' && strcmp(k, "process_id") == 0)
			pid = false;
	}
	if (sp->n_links > 0)
		nmap++;
	name = sp->name != NULL ? sp->name : "tracestitch.request";
	msgpack_packer_init(pk, q, mp_write);

	mp_map(pk, nmap);
	/* Ids as uint64 (0xcf) exactly like dd-trace's encoders. */
	MP_LIT(pk, "trace_id");
	mp_u64(pk, sp->trace_id.low);
	MP_LIT(pk, "span_id");
	mp_u64(pk, sp->span_id);
	MP_LIT(pk, "parent_id");
	mp_u64(pk, sp->parent_id);
	MP_LIT(pk, "name");
	mp_cstr(pk, name);
	MP_LIT(pk, "resource");
	mp_cstr(pk, sp->resource != NULL ? sp->resource : name);
	MP_LIT(pk, "service");
	mp_cstr(pk, sp->service != NULL ? sp->service : proc->service);
	MP_LIT(pk, "type");
	mp_cstr(pk, sp->type != NULL ? sp->type : "web");
	MP_LIT(pk, "start");
	mp_i64(pk, sp->start_ns);
	MP_LIT(pk, "duration");
	mp_i64(pk, sp->duration_ns);
	MP_LIT(pk, "error");
	mp_uint32(pk, sp->error ? 1 : 0);

	MP_LIT(pk, "meta");
	mp_map(pk, sp->n_meta + n_extra);
	/* The setters keep the lengths (span.h): no strlen here. */
	for (i = 0; i < sp->n_meta; i++) {
		mp_str(pk, sp->meta[i].key, sp->meta_klen[i]);
		mp_str(pk, sp->meta[i].value, sp->meta_vlen[i]);
	}
	for (e = 0; e < EXTRA_N; e++)
		if (extra_v[e] != NULL)
			mp_kv(pk, extra_keys[e], extra_v[e]);

	MP_LIT(pk, "metrics");
	mp_map(pk, sp->n_metrics + (top ? 1 : 0) + (pid ? 1 : 0));
	for (i = 0; i < sp->n_metrics; i++) {
		mp_cstr(pk, sp->metrics[i].key);
		mp_double(pk, sp->metrics[i].value);
	}
	if (top) {
		/* The gateway span is always its service's entry span. */
		MP_LIT(pk, "_dd.top_level");
		mp_double(pk, 1.0);
	}
	if (pid) {
		MP_LIT(pk, "process_id");
		mp_double(pk, (double)proc->pid);
	}
	if (sp->n_links > 0)
		pack_links(pk, sp);
}

static void
queue_drop(struct exporter_queue *q)
{
	util_counter_add(&q->dropped, 1);
}

/* Map a chunk of map_len bytes (populate: fault it in now); NULL. */
static struct export_chunk *
chunk_map(uint64_t map_len, bool populate)
{
	struct export_chunk *c;

	c = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE |
	    MAP_ANONYMOUS | (populate ? MAP_POPULATE : 0), -1, 0);
	if (c == MAP_FAILED)
		return NULL;
	c->next = NULL;
	c->map_len = map_len;
	c->size = map_len - offsetof(struct export_chunk, data);
	return c;
}

static void
chunk_unmap(struct export_chunk *c)
{
	(void)munmap(c, c->map_len);
}

/* Worker: a ready chunk from the exporter thread, or NULL. */
static struct export_chunk *
hand_take(struct exporter_queue *q)
{
	struct export_chunk *c;
	unsigned i, k;

	for (i = 0; i < EXPORT_HAND; i++) {
		k = (q->hnext + i) % EXPORT_HAND;
		if (__atomic_load_n(&q->hand[k], __ATOMIC_RELAXED) == NULL)
			continue;
		/* The exporter thread may take it back meanwhile. */
		c = __atomic_exchange_n(&q->hand[k], NULL, __ATOMIC_ACQUIRE);
		if (c != NULL) {
			q->hnext = k + 1;
			__atomic_store_n(&q->ntaken, q->ntaken + 1,
			    __ATOMIC_RELAXED);
			return c;
		}
	}
	return NULL;
}

/*
 * Worker: the record of need bytes does not fit in the current chunk.
 * Link the next one (a ready one, or a new mapping when none is ready or
 * the record needs a larger one) and return it; NULL when the byte bound
 * is reached or nothing can be mapped.
 */
static struct export_chunk * __attribute__((noinline))
chunk_next(struct exporter_queue *q, uint64_t need)
{
	struct export_chunk *c = q->wchunk, *n = NULL;
	uint64_t map_len = q->chunk_len;

	if (need > q->chunk_len - offsetof(struct export_chunk, data))
		map_len = (offsetof(struct export_chunk, data) + need +
		    4095) & ~(uint64_t)4095;
	if (q->linked + map_len - q->released_cache > q->cap) {
		q->released_cache = __atomic_load_n(&q->released,
		    __ATOMIC_ACQUIRE);
		if (q->linked + map_len - q->released_cache > q->cap)
			return NULL;
	}
	if (map_len == q->chunk_len)
		n = hand_take(q);
	if (n == NULL) {
		if ((n = chunk_map(map_len, false)) == NULL)
			return NULL;
		__atomic_store_n(&q->mapped_prod, q->mapped_prod + map_len,
		    __ATOMIC_RELAXED);
		__atomic_store_n(&q->nmapped_prod, q->nmapped_prod + 1,
		    __ATOMIC_RELAXED);
	}
	n->next = NULL;
	if (c->size - q->wpos >= 4) {
		uint32_t wrap = EXPORT_WRAP;

		memcpy(c->data + q->wpos, &wrap, sizeof wrap);
	}
	/* Published with the record's nprod (release). */
	c->next = n;
	__atomic_store_n(&q->linked, q->linked + map_len, __ATOMIC_RELAXED);
	q->wchunk = n;
	q->wpos = 0;
	return n;
}

/* Encode a finished span into the worker's queue; false: dropped. */
bool
exporter_submit(struct exporter_queue *q, const struct span *sp)
{
	struct export_chunk *c;
	uint64_t need, len, pos;
	uint32_t l32;

	if (q == NULL || q->disabled)
		return false;
	q->scratch_len = 0;
	encode_span(q, sp, &q->ex->proc);
	len = q->scratch_len;
	if (len > q->cap / 4)
		goto drop;
	if (q->nprod - q->ncons_cache >= q->max_recs) {
		q->ncons_cache = __atomic_load_n(&q->ncons, __ATOMIC_ACQUIRE);
		if (q->nprod - q->ncons_cache >= q->max_recs)
			goto drop;
	}
	need = (4 + len + 7) & ~(uint64_t)7;
	c = q->wchunk;
	pos = q->wpos;
	if (__builtin_expect(c->size - pos < need, 0)) {
		if ((c = chunk_next(q, need)) == NULL)
			goto drop;
		pos = 0;
	}
	l32 = (uint32_t)len;
	memcpy(c->data + pos, &l32, sizeof l32);
	memcpy(c->data + pos + 4, q->scratch, len);
	q->wpos = pos + need;
	__atomic_store_n(&q->nprod, q->nprod + 1, __ATOMIC_RELEASE);
	return true;
drop:
	queue_drop(q);
	return false;
}

/* A queue for one worker thread (owned by the exporter). */
struct exporter_queue *
exporter_queue_new(struct exporter *ex)
{
	struct exporter_queue *q;

	if (ex->type == CONFIG_EXPORTER_NONE)
		return ex->dead_queue;
	if (posix_memalign((void **)&q, EXPORT_CACHELINE, sizeof *q) != 0)
		fatalx("export: out of memory");
	memset(q, 0, sizeof *q);
	q->ex = ex;
	q->cap = ex->ring_bytes;
	/* At least four chunks fit in the byte bound. */
	q->chunk_len = q->cap / 4 < EXPORT_CHUNK ? q->cap / 4 : EXPORT_CHUNK;
	q->max_recs = ex->per_queue;
	if ((q->wchunk = chunk_map(q->chunk_len, true)) == NULL)
		fatalx("export: out of memory");
	q->rchunk = q->wchunk;
	q->linked = q->mapped_prod = q->chunk_len;
	q->scratch_cap = 4096;
	q->scratch = xmalloc(q->scratch_cap);
	pthread_mutex_lock(&ex->qlock);
	q->next = ex->queues;
	ex->queues = q;
	pthread_mutex_unlock(&ex->qlock);
	return q;
}

/* ---------------------------------------------------------------- */
/* The exporter thread.                                              */

static struct exporter_queue *
queues_head(struct exporter *ex)
{
	struct exporter_queue *q;

	pthread_mutex_lock(&ex->qlock);
	q = ex->queues;
	pthread_mutex_unlock(&ex->qlock);
	return q;
}

/* Records waiting in every queue (relaxed). */
static uint64_t
queued_total(struct exporter *ex)
{
	struct exporter_queue *q;
	uint64_t n = 0;

	for (q = queues_head(ex); q != NULL; q = q->next)
		n += __atomic_load_n(&q->nprod, __ATOMIC_RELAXED) -
		    __atomic_load_n(&q->ncons, __ATOMIC_RELAXED);
	return n;
}

static void
batch_add(struct exporter *ex, const char *p, size_t len)
{
	if (ex->blen == 0)
		ex->blen = EXPORT_BATCH_RESERVE;
	if (ex->blen + 1 + len > ex->bcap) {
		size_t ncap = ex->bcap == 0 ? 65536 : ex->bcap * 2;

		while (ncap < ex->blen + 1 + len)
			ncap *= 2;
		/* A batch closes past EXPORT_BATCH_BYTES: no doubling past
		 * it plus one record. */
		if (ncap > EXPORT_BATCH_BYTES + 65536 &&
		    ex->blen + 1 + len <= EXPORT_BATCH_BYTES + 65536)
			ncap = EXPORT_BATCH_BYTES + 65536;
		ex->bbuf = xrealloc(ex->bbuf, ncap);
		ex->bcap = ncap;
	}
	if (ex->bn == ex->bncap) {
		ex->bncap = ex->bncap == 0 ? 256 : ex->bncap * 2;
		ex->boff = xrealloc(ex->boff, ex->bncap * sizeof *ex->boff);
		ex->blens = xrealloc(ex->blens, ex->bncap * sizeof *ex->blens);
	}
	ex->blen++;		/* the spare byte before the record */
	memcpy(ex->bbuf + ex->blen, p, len);
	ex->boff[ex->bn] = ex->blen;
	ex->blens[ex->bn] = len;
	ex->blen += len;
	ex->bn++;
}

/* Consumer: keep c as a spare (at most EXPORT_HAND of them), or unmap. */
static void
chunk_spare(struct exporter_queue *q, struct export_chunk *c)
{
	if (c->map_len == q->chunk_len && q->npool < EXPORT_HAND) {
		c->next = q->pool;
		q->pool = c;
		q->npool++;
		return;
	}
	__atomic_store_n(&q->mapped_cons, q->mapped_cons - c->map_len,
	    __ATOMIC_RELEASE);
	chunk_unmap(c);
}

/* Consumer: chunk c is emptied and out of the chain. */
static void
chunk_done(struct exporter_queue *q, struct export_chunk *c)
{
	__atomic_store_n(&q->released, q->released + c->map_len,
	    __ATOMIC_RELEASE);
	chunk_spare(q, c);
}

/*
 * Consumer, every tick: top up the hand-over slots to what the worker
 * took per tick lately (the larger of this window's and the last one's
 * peak) plus one, from the spare chunks or new ones faulted in here, and
 * take back what is ready beyond that.  At the end of each window, unmap
 * the spares that were not needed during all of it (the fewest seen), so
 * a steady load maps nothing and a queue idle for two windows keeps its
 * current chunk and one ready.
 */
static void
queue_upkeep(struct exporter_queue *q)
{
	uint64_t ntaken = __atomic_load_n(&q->ntaken, __ATOMIC_RELAXED);
	uint64_t nmapped = __atomic_load_n(&q->nmapped_prod,
	    __ATOMIC_RELAXED);
	uint64_t taken, want, keep, limit, ready = 0;
	struct export_chunk *c;
	unsigned k;

	taken = (ntaken - q->ntaken_seen) + (nmapped - q->nmapped_seen);
	q->ntaken_seen = ntaken;
	q->nmapped_seen = nmapped;
	if (taken > q->peak)
		q->peak = taken > EXPORT_HAND ? EXPORT_HAND : (unsigned)taken;
	keep = q->peak > q->peak_prev ? q->peak : q->peak_prev;
	/* Never more ready than the byte bound could link. */
	limit = q->cap / q->chunk_len;
	want = keep + 1 < limit ? keep + 1 : limit;
	if (want > EXPORT_HAND)
		want = EXPORT_HAND;
	for (k = 0; k < EXPORT_HAND; k++) {
		if (__atomic_load_n(&q->hand[k], __ATOMIC_RELAXED) != NULL) {
			if (ready < want) {
				ready++;
				continue;
			}
			c = __atomic_exchange_n(&q->hand[k], NULL,
			    __ATOMIC_ACQUIRE);
			if (c != NULL)
				chunk_spare(q, c);
			continue;
		}
		if (ready >= want)
			continue;
		if ((c = q->pool) != NULL) {
			q->pool = c->next;
			q->npool--;
		} else {
			/* Faulting a chunk in takes tens of us: give way
			 * before each (drain_batch). */
			if (q->ex->yield)
				export_give_way();
			if ((c = chunk_map(q->chunk_len, true)) == NULL)
				break;
			__atomic_store_n(&q->mapped_cons, q->mapped_cons +
			    q->chunk_len, __ATOMIC_RELEASE);
		}
		c->next = NULL;
		/* Only this thread fills a slot: it is still empty. */
		__atomic_store_n(&q->hand[k], c, __ATOMIC_RELEASE);
		ready++;
	}
	if (q->npool < q->pool_low)
		q->pool_low = q->npool;
	if (++q->ticks < EXPORT_TRIM_TICKS)
		return;
	for (; q->pool_low > 0 && (c = q->pool) != NULL; q->pool_low--) {
		q->pool = c->next;
		q->npool--;
		__atomic_store_n(&q->mapped_cons, q->mapped_cons -
		    c->map_len, __ATOMIC_RELEASE);
		chunk_unmap(c);
	}
	q->pool_low = q->npool;
	q->peak_prev = q->peak;
	q->peak = 0;
	q->ticks = 0;
}

/*
 * Move records from the queues into the batch, up to its bounds or until
 * it holds limit bytes; the number of records moved.
 */
static uint64_t
drain(struct exporter *ex, size_t limit)
{
	struct exporter_queue *q;
	uint64_t moved = 0;

	acct_begin(ex);
	for (q = queues_head(ex); q != NULL; q = q->next) {
		uint64_t nprod = __atomic_load_n(&q->nprod, __ATOMIC_ACQUIRE);
		uint64_t ncons = q->ncons, pos = q->rpos;
		struct export_chunk *c = q->rchunk;

		while (ncons != nprod && ex->bn < EXPORT_BATCH_SPANS &&
		    ex->blen < EXPORT_BATCH_BYTES && ex->blen < limit) {
			uint32_t len = EXPORT_WRAP;

			if (c->size - pos >= 4)
				memcpy(&len, c->data + pos, sizeof len);
			if (len == EXPORT_WRAP) {
				/* Linked before this record was published. */
				struct export_chunk *n = c->next;

				chunk_done(q, c);
				c = n;
				pos = 0;
				continue;
			}
			batch_add(ex, c->data + pos + 4, len);
			pos += (4 + (uint64_t)len + 7) & ~(uint64_t)7;
			ncons++;
		}
		q->rchunk = c;
		q->rpos = pos;
		moved += ncons - q->ncons;
		__atomic_store_n(&q->ncons, ncons, __ATOMIC_RELEASE);
	}
	/* Out of the queues, into the batch: in flight until it settles. */
	__atomic_store_n(&ex->inflight_spans, ex->inflight_spans + moved,
	    __ATOMIC_RELAXED);
	acct_end(ex);
	return moved;
}

/*
 * Fill the batch.  When the thread gives way (exporter_sched), in pieces
 * of EXPORT_PIECE bytes with export_give_way() between them, each its
 * own accounting move (no reader waits across a pause): a worker waiting
 * for the core gets it after one piece (~80 gateway spans, tens of
 * microseconds), not after the whole batch (milliseconds).
 */
static void
drain_batch(struct exporter *ex)
{
	if (!ex->yield)
		(void)drain(ex, SIZE_MAX);
	else {
		while (drain(ex, ex->blen + EXPORT_PIECE) > 0 &&
		    ex->bn < EXPORT_BATCH_SPANS &&
		    ex->blen < EXPORT_BATCH_BYTES && queued_total(ex) > 0)
			export_give_way();
	}
	/* Closed by a bound with more queued: the next batch is due as
	 * soon as this one is sent, not at the next flush interval. */
	ex->full = queued_total(ex) > 0 && (ex->bn >= EXPORT_BATCH_SPANS ||
	    ex->blen >= EXPORT_BATCH_BYTES);
}

static void
batch_clear(struct exporter *ex)
{
	free(ex->req_body);
	ex->req_body = NULL;
	ex->blen = 0;
	ex->bn = 0;
	ex->bsent = 0;
	ex->attempt = 0;
}

/* The batch as records (pointers valid until the batch changes). */
static struct export_rec *
batch_recs(struct exporter *ex, struct export_batch *b)
{
	struct export_rec *r = xcalloc(ex->bn + 1, sizeof *r);
	size_t i;

	for (i = 0; i < ex->bn; i++) {
		r[i].data = ex->bbuf + ex->boff[i];
		r[i].len = ex->blens[i];
	}
	b->recs = r;
	b->n = ex->bn;
	return r;
}

/* Compare a parsed table with the published one. */
static bool
rates_equal(const struct sampler_rate *a, size_t na,
    const struct sampler_rate *b, size_t nb)
{
	size_t i;

	if (na != nb)
		return false;
	for (i = 0; i < na; i++)
		if (strcmp(a[i].key, b[i].key) != 0 || a[i].rate != b[i].rate)
			return false;
	return true;
}

/* Agent answer body: publish a new rates table if it changed. */
static void
rates_update(struct exporter *ex, const char *body, size_t len)
{
	struct sampler_rate *rates = NULL, *old;
	size_t n = 0, nold;
	char *cause = NULL;

	if (body == NULL || len == 0)
		return;
	if (sampler_parse_agent_rates(body, len, &rates, &n, &cause) != 0) {
		log_debug("export: agent response: %s", cause);
		free(cause);
		return;
	}
	pthread_mutex_lock(&ex->rlock);
	if (rates_equal(rates, n, ex->rates, ex->nrates)) {
		pthread_mutex_unlock(&ex->rlock);
		sampler_rates_free(rates, n);
		return;
	}
	old = ex->rates;
	nold = ex->nrates;
	ex->rates = rates;
	ex->nrates = n;
	__atomic_store_n(&ex->rates_version, ex->rates_version + 1,
	    __ATOMIC_RELEASE);
	pthread_mutex_unlock(&ex->rlock);
	sampler_rates_free(old, nold);
}

/* Log a failure on the transition to failing, then once a minute. */
static void
warn_failure(struct exporter *ex, const char *what, size_t dropped)
{
	uint64_t now = util_mono_ns();

	if (ex->failing && now - ex->last_warn_ns < EXPORT_WARN_EVERY_NS)
		return;
	ex->failing = true;
	ex->last_warn_ns = now;
	log_warnx("export: %s%s: %s (%zu spans dropped)",
	    ex->url.unix_socket ? "unix://" : "", ex->url.host_header != NULL
	    ? (ex->url.unix_socket ? ex->url.host : ex->url.host_header) :
	    "", what, dropped);
}

static void send_batch(struct exporter *);

/* This thread's CPU time, nanoseconds. */
static uint64_t
thread_cpu_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/*
 * What one batch cost the exporter thread, from the start of its drain
 * to the agent's answer: CPU (the copy out of the queues, the framing,
 * the writes, the answer) and time.  The CPU is what the thread may take
 * from a worker on the same core (issue 11: "the exporter's time per
 * batch"); debug level, once per batch.
 */
static void
batch_cost(struct exporter *ex)
{
	log_debug("export: batch of %zu spans, %zu bytes: %llu us CPU on "
	    "the exporter thread, %llu us from drain to answer", ex->bsent,
	    ex->blen, (unsigned long long)(thread_cpu_ns() -
	    ex->batch_cpu_ns) / 1000, (unsigned long long)(util_mono_ns() -
	    ex->batch_ns) / 1000);
}

/*
 * A collector that accepted only part of a batch says so in its 2xx
 * answer (OTLP "Partial Success"): warn, as the SDKs do; the request is
 * not retried and its spans count as exported (the collector has them,
 * or dropped them on purpose).
 */
static void
otlp_partial(struct exporter *ex, const struct export_http_resp *r)
{
	int64_t rejected;
	char msg[256];

	if (export_otlp_partial(r->body, r->body_len, !ex->otlp_json,
	    &rejected, msg, sizeof msg))
		log_warnx("export: the collector rejected %lld of %zu spans: %s",
		    (long long)rejected, ex->bsent, msg[0] != '\0' ? msg :
		    "(no message)");
}

/* One export request ended. */
static void
http_done(const struct export_http_resp *r, void *arg)
{
	struct exporter *ex = arg;
	enum export_result res;
	char why[160];

	ex->inflight = NULL;
	latency_add(ex, (util_mono_ns() - ex->sent_ns) / 1000);
	batch_cost(ex);
	if (r->status >= 200 && r->status < 300) {
		res = EXPORT_OK;
	} else if (r->status == 0 || r->status >= 500 || r->status == 408 ||
	    r->status == 429) {
		res = EXPORT_RETRY;
	} else
		res = EXPORT_FAIL;
	if (res == EXPORT_OK) {
		util_counter_add(&ex->requests, 1);
		acct_settle(ex, ex->bsent, &ex->exported);
		if (ex->type == CONFIG_EXPORTER_DATADOG)
			rates_update(ex, r->body, r->body_len);
		else
			otlp_partial(ex, r);
		if (ex->failing) {
			log_info("export: the backend accepts spans again");
			ex->failing = false;
		}
		batch_clear(ex);
		exporter_try_flush(ex, ex->stopping);
		return;
	}
	util_counter_add(&ex->errors, 1);
	if (r->status != 0)
		snprintf(why, sizeof why, "HTTP %d", r->status);
	else
		snprintf(why, sizeof why, "%s", r->error != NULL ? r->error :
		    "no response");
	if (res == EXPORT_RETRY && !ex->stopping &&
	    ex->attempt < ex->opts.retries) {
		uint64_t ms = ex->opts.retry_ms << ex->attempt;
		struct timeval tv;

		ex->attempt++;
		log_debug("export: %s, retry %u in %llu ms", why, ex->attempt,
		    (unsigned long long)ms);
		tv.tv_sec = (time_t)(ms / 1000);
		tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
		evtimer_add(ex->retry_ev, &tv);
		return;
	}
	acct_settle(ex, ex->bsent, &ex->dropped_agent);
	warn_failure(ex, why, ex->bsent);
	batch_clear(ex);
	exporter_try_flush(ex, ex->stopping);
}

/* Send the current batch with the configured backend. */
static void
send_batch(struct exporter *ex)
{
	struct export_batch b;
	const char *body;
	char *headers = NULL;
	size_t n_sent = 0, n_unsampled = 0, body_len;
	const char *method = "PUT";

	batch_recs(ex, &b);
	switch (ex->type) {
	case CONFIG_EXPORTER_STDOUT:
		n_sent = export_stdout_write(ex->opts.stdout_fd > 0 ?
		    ex->opts.stdout_fd - 1 : STDOUT_FILENO, &b);
		acct_settle(ex, n_sent, &ex->exported);
		if (n_sent < b.n)
			acct_settle(ex, b.n - n_sent, &ex->dropped_agent);
		free(b.recs);
		batch_clear(ex);
		return;
	case CONFIG_EXPORTER_OTLP:
		free(ex->req_body);
		ex->req_body = export_otlp_body(&b, &ex->proc, !ex->otlp_json,
		    &body_len, &n_sent, &n_unsampled);
		if (ex->attempt == 0 && n_unsampled > 0)
			acct_settle(ex, n_unsampled, &ex->dropped_unsampled);
		/* A record that does not decode (never seen: we encoded
		 * it) is neither sent nor unsampled; it must not vanish. */
		if (ex->attempt == 0 && n_sent + n_unsampled < b.n)
			acct_settle(ex, b.n - n_sent - n_unsampled,
			    &ex->dropped_agent);
		free(b.recs);
		if (n_sent == 0) {
			batch_clear(ex);
			return;
		}
		body = ex->req_body;
		/* OTLP/HTTP: the Content-Type names the encoding. */
		headers = xstrdup(ex->otlp_json ? "Content-Type: "
		    "application/json\r\n" : "Content-Type: "
		    "application/x-protobuf\r\n");
		method = "POST";
		break;
	default:
		/* In place in bbuf, sent from there: no copy. */
		body = export_datadog_frame(ex->bbuf, &b, &body_len);
		n_sent = b.n;
		free(b.recs);
		headers = export_datadog_headers(n_sent, &ex->proc);
		break;
	}
	ex->bsent = n_sent;
	ex->sent_ns = util_mono_ns();
	/* body stays untouched until http_done or a cancel. */
	ex->inflight = export_http_start(ex->client, method, headers, body,
	    body_len, ex->opts.timeout_ms, http_done, ex);
	export_http_set_yield(ex->inflight, ex->yield);
	free(headers);
}

/* Drain and send when due (or forced); nothing while a request runs. */
static void
exporter_try_flush(struct exporter *ex, bool force)
{
	uint64_t now = util_mono_ns();

	if (ex->inflight != NULL || evtimer_pending(ex->retry_ev, NULL))
		return;
	if (ex->flush_asked) {
		force = true;
		ex->flush_asked = false;
	}
	for (;;) {
		if (!force && ex->bn == 0 && !ex->full && now -
		    ex->last_flush_ns < ex->flush_ns &&
		    queued_total(ex) < EXPORT_BATCH_SPANS)
			return;
		ex->last_flush_ns = now;
		if (ex->bn == 0) {
			ex->batch_cpu_ns = thread_cpu_ns();
			ex->batch_ns = util_mono_ns();
		}
		drain_batch(ex);
		if (ex->bn == 0)
			break;
		send_batch(ex);
		if (ex->inflight != NULL)
			return;
		/* stdout (synchronous) or nothing to send: go on only
		 * while more is queued. */
		if (queued_total(ex) == 0)
			break;
		force = true;
	}
	if (ex->stopping)
		event_base_loopbreak(ex->base);
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct exporter *ex = arg;
	struct exporter_queue *q;

	(void)fd;
	(void)what;
	exporter_try_flush(ex, false);
	for (q = queues_head(ex); q != NULL; q = q->next)
		queue_upkeep(q);
	/*
	 * The batch buffer grows to the largest batch (up to 8 MiB); once
	 * nothing was queued or sent for a whole window, give it back.
	 */
	if (ex->inflight != NULL || ex->bn > 0 || queued_total(ex) > 0)
		ex->idle_ticks = 0;
	else if (++ex->idle_ticks >= EXPORT_TRIM_TICKS && ex->bbuf != NULL) {
		free(ex->bbuf);
		free(ex->boff);
		free(ex->blens);
		ex->bbuf = NULL;
		ex->boff = ex->blens = NULL;
		ex->bcap = ex->bncap = 0;
	}
}

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct exporter *ex = arg;

	(void)fd;
	(void)what;
	if (ex->bn > 0)
		send_batch(ex);
	else
		exporter_try_flush(ex, false);
}

/* Shutdown deadline: give up on whatever is still in flight. */
static void
stop_cb(evutil_socket_t fd, short what, void *arg)
{
	struct exporter *ex = arg;
	struct exporter_queue *q;
	uint64_t left;

	(void)fd;
	(void)what;
	if (ex->inflight != NULL) {
		export_http_cancel(ex->inflight);
		ex->inflight = NULL;
	}
	/*
	 * What is in flight and what is still in the queues is dropped: the
	 * queues are emptied so that no span counts both as queued and as
	 * dropped (the workers submit no more).
	 */
	acct_begin(ex);
	left = ex->inflight_spans;
	for (q = queues_head(ex); q != NULL; q = q->next) {
		uint64_t nprod = __atomic_load_n(&q->nprod, __ATOMIC_ACQUIRE);

		/* Counted only: exporter_free unmaps the chain. */
		left += nprod - q->ncons;
		__atomic_store_n(&q->ncons, nprod, __ATOMIC_RELEASE);
	}
	util_counter_add(&ex->dropped_agent, left);
	__atomic_store_n(&ex->inflight_spans, 0, __ATOMIC_RELAXED);
	acct_end(ex);
	batch_clear(ex);
	if (left > 0)
		log_warnx("export: shutdown: %llu spans not delivered",
		    (unsigned long long)left);
	event_base_loopbreak(ex->base);
}

/* Wake-up pipe: 'f' flush now, 's' stop. */
static void
wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct exporter *ex = arg;
	char c[16];
	ssize_t n;
	int i;

	(void)what;
	while ((n = read(fd, c, sizeof c)) > 0) {
		for (i = 0; i < n; i++) {
			if (c[i] == 's' && !ex->stopping) {
				struct timeval tv;

				ex->stopping = true;
				ex->opts.retries = 0;
				tv.tv_sec = (time_t)(ex->opts.timeout_ms /
				    1000);
				tv.tv_usec = (suseconds_t)(ex->opts.timeout_ms %
				    1000) * 1000;
				evtimer_add(ex->stop_ev, &tv);
			} else if (c[i] == 'f')
				ex->flush_asked = true;
		}
	}
	if (ex->stopping) {
		if (evtimer_pending(ex->retry_ev, NULL)) {
			evtimer_del(ex->retry_ev);
			if (ex->bn > 0)
				send_batch(ex);
		}
		exporter_try_flush(ex, true);
		if (ex->inflight == NULL && ex->bn == 0 &&
		    queued_total(ex) == 0)
			event_base_loopbreak(ex->base);
	} else if (ex->flush_asked)
		exporter_try_flush(ex, false);
}

/* struct sched_attr of sched_setattr(2) (the kernel's ABI, version 1). */
struct export_sched_attr {
	uint32_t	size;
	uint32_t	sched_policy;
	uint64_t	sched_flags;
	int32_t		sched_nice;
	uint32_t	sched_priority;
	uint64_t	sched_runtime;
	uint64_t	sched_deadline;
	uint64_t	sched_period;
};

/*
 * Give the exporter thread's way to the workers (issue 11, "the tail";
 * docs/architecture.md "The exporter thread and the tail").  The thread
 * drains, frames and writes batches of up to 4,096 spans (about 2 ms of
 * CPU for 3 MiB, measured); on the worker's core it kept the core for a
 * whole batch while the worker had requests waiting.  On a kernel without
 * full preemption (PREEMPT_NONE) and a 250 Hz tick, nothing takes the
 * core back from a running thread before the next tick (4 ms) unless
 * another thread wakes up, and a worker at saturation never sleeps: it
 * only waits.  So, with exporter.thread_nice > 0:
 *
 * - the thread does its work in pieces (EXPORT_PIECE bytes drained,
 *   EXPORT_HTTP_PIECE bytes written, one chunk faulted in) and sleeps
 *   some 60 us between them (export_give_way; sched_yield(2) is not
 *   enough: EEVDF lets a thread it owes CPU time keep the core through
 *   a yield, up to a tick's worth): a waiting worker gets the core
 *   after one piece;
 * - it runs at nice + exporter.thread_nice (19 at most): a smaller
 *   weight, so that a waking worker preempts it at once and it is owed
 *   less; at saturation it still gets a share near weight(nice) /
 *   (weight(nice) + 1024) (110 / 1134, ~10%, at nice 10; the weights of
 *   kernel/sched/core.c), enough for every span;
 * - its slice is 100 us (sched_setattr(2)'s sched_runtime for
 *   SCHED_OTHER, the kernel's smallest custom slice, Linux 6.12 on;
 *   older kernels ignore it), where the kernel enforces slices between
 *   ticks.
 *
 * Not SCHED_IDLE: at saturation a worker that never sleeps would starve
 * the thread completely, the queue would fill and spans would drop.
 * exporter.thread_nice 0 leaves the thread as the workers are, without
 * the pauses (the comparison in the bench: BENCH_THREAD_NICE=0).
 */
static void
exporter_sched(struct exporter *ex)
{
	struct export_sched_attr a;
	pid_t tid = gettid();
	int nice;

	if (ex->thread_nice == 0)
		return;
	/* A new thread starts at the process's nice value. */
	errno = 0;
	nice = getpriority(PRIO_PROCESS, (id_t)tid);
	if (nice == -1 && errno != 0)
		nice = 0;
	nice += (int)ex->thread_nice;
	if (nice > 19)
		nice = 19;
	memset(&a, 0, sizeof a);
	a.size = sizeof a;
	a.sched_policy = SCHED_OTHER;
	a.sched_nice = nice;
	a.sched_runtime = EXPORT_SLICE_NS;
	if (syscall(SYS_sched_setattr, tid, &a, 0u) == 0)
		return;
	/* No sched_setattr (seccomp, old kernel): the nice value alone. */
	if (setpriority(PRIO_PROCESS, (id_t)tid, nice) != 0)
		log_warn("export: exporter thread: setpriority %d", nice);
}

static void *
exporter_main(void *arg)
{
	struct exporter *ex = arg;

	exporter_sched(ex);
	/* Named for top -H, ps -L and the tests (15 bytes at most); once
	 * the name shows, the scheduling above is in place. */
	(void)pthread_setname_np(pthread_self(), "ts-exporter");
	event_base_dispatch(ex->base);
	return NULL;
}

/* ---------------------------------------------------------------- */
/* Setup and teardown.                                               */

/* A 64-hex container id from /proc/self/cgroup, or NULL [cpp-agent]. */
static char *
container_id(void)
{
	char line[1024], *id = NULL;
	FILE *fp;

	if ((fp = fopen("/proc/self/cgroup", "re")) == NULL)
		return NULL;
	while (id == NULL && fgets(line, sizeof line, fp) != NULL) {
		const char *p = line;

		for (; *p != '\0'; p++) {
			size_t n = strspn(p, "0123456789abcdef");

			if (n == 64 && (p == line || p[-1] == '/' ||
			    p[-1] == '-') && strchr("./\n", p[64]) != NULL) {
				id = xstrndup(p, 64);
				break;
			}
			if (n > 0)
				p += n - 1;
		}
	}
	fclose(fp);
	return id;
}

/* A random UUID v4 for runtime-id, shared by every worker. */
static void
make_runtime_id(char out[37])
{
	uint8_t b[16];
	char hex[33];
	int fd;

	memset(b, 0, sizeof b);
	if ((fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC)) >= 0) {
		if (read(fd, b, sizeof b) != (ssize_t)sizeof b) {
			uint64_t t = util_mono_ns() ^ (uint64_t)getpid();

			memcpy(b, &t, sizeof t);
		}
		close(fd);
	}
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
	util_hex_encode(b, sizeof b, hex);
	snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8,
	    hex + 12, hex + 16, hex + 20);
}

/* What exporter_new would refuse in cfg, without starting anything. */
int
exporter_check(const struct config *cfg, const char **key, char **cause)
{
	const struct config_exporter *ce = &cfg->exporter;
	struct export_url u;
	int rc = 0;

	*key = NULL;
	/* The same parse, with the same arguments, as exporter_new_opts. */
	if (ce->type == CONFIG_EXPORTER_DATADOG) {
		*key = "exporter.datadog_url";
		rc = export_url_parse(ce->datadog_url != NULL ?
		    ce->datadog_url : "http://localhost:8126", "/v0.4/traces",
		    &u, cause);
	} else if (ce->type == CONFIG_EXPORTER_OTLP) {
		*key = "exporter.otlp_endpoint";
		rc = export_url_parse(ce->otlp_endpoint != NULL ?
		    ce->otlp_endpoint : "http://localhost:4318/v1/traces",
		    "/v1/traces", &u, cause);
	}
	if (*key != NULL && rc == 0) {
		/* https: the CA file must load (what export_client_new does). */
		if (export_client_check(&u, ce->tls_ca_file, cause) != 0) {
			if (ce->tls_ca_file != NULL)
				*key = "exporter.tls_ca_file";
			rc = -1;
		}
		export_url_clear(&u);
	}
	return rc;
}

/*
 * The HTTP client of the datadog and otlp backends: one kept connection,
 * the configured headers, gzip for OTLP, TLS for https (issue 14).  The
 * header values are secrets (API keys): the log shows their names only.
 */
static int
exporter_client(struct exporter *ex, const struct config_exporter *ce,
    char **cause)
{
	struct export_client_opts co;
	char *names = xstrdup(""), *t;
	size_t i;

	if (ex->type != CONFIG_EXPORTER_DATADOG &&
	    ex->type != CONFIG_EXPORTER_OTLP) {
		free(names);
		return 0;
	}
	memset(&co, 0, sizeof co);
	co.headers = ce->headers;
	co.n_headers = ce->n_headers;
	co.gzip = ex->type == CONFIG_EXPORTER_OTLP &&
	    ce->compression == CONFIG_COMPRESSION_GZIP;
	co.ca_file = ce->tls_ca_file;
	if ((ex->client = export_client_new(ex->base, &ex->url, &co, cause))
	    == NULL) {
		free(names);
		return -1;
	}
	for (i = 0; i < ce->n_headers; i++) {
		xasprintf(&t, "%s%s%s: ***", names, i > 0 ? ", " : "",
		    ce->headers[i].key);
		free(names);
		names = t;
	}
	log_debug("export: %s %s%s%s%s, %s%s%s", ex->type ==
	    CONFIG_EXPORTER_OTLP ? (ex->otlp_json ? "otlp http/json" :
	    "otlp http/protobuf") : "datadog", ex->url.unix_socket ?
	    "unix://" : (ex->url.tls ? "https://" : "http://"),
	    ex->url.unix_socket ? ex->url.host : ex->url.host_header,
	    ex->url.unix_socket ? "" : ex->url.path, co.gzip ? " gzip" : "",
	    "one kept connection", names[0] != '\0' ? ", headers " : "",
	    names);
	free(names);
	return 0;
}

/* Create the exporter and start its thread. */
struct exporter *
exporter_new(const struct config *cfg, char **cause)
{
	return exporter_new_opts(cfg, NULL, cause);
}

/* Same with test options. */
struct exporter *
exporter_new_opts(const struct config *cfg, const struct exporter_opts *o,
    char **cause)
{
	const struct config_exporter *ce = &cfg->exporter;
	struct exporter *ex;
	struct timeval tv;
	uint64_t ring;

	ex = xcalloc(1, sizeof *ex);
	ex->wake[0] = ex->wake[1] = -1;
	pthread_mutex_init(&ex->qlock, NULL);
	pthread_mutex_init(&ex->rlock, NULL);
	if (o != NULL)
		ex->opts = *o;
	if (ex->opts.timeout_ms == 0)
		ex->opts.timeout_ms = ce->timeout_ms > 0 ? ce->timeout_ms :
		    2000;
	if (ex->opts.retry_ms == 0)
		ex->opts.retry_ms = 200;
	if (ex->opts.no_retry)
		ex->opts.retries = 0;
	else if (ex->opts.retries == 0)
		ex->opts.retries = 2;
	if (ex->opts.tick_ms == 0)
		ex->opts.tick_ms = 50;
	ex->type = ce->type;
	ex->s_service = xstrdup(cfg->tracing.service != NULL ?
	    cfg->tracing.service : "tracestitch");
	ex->s_env = xstrdup(cfg->tracing.env != NULL ? cfg->tracing.env : "");
	ex->s_version = xstrdup(cfg->tracing.version != NULL ?
	    cfg->tracing.version : "");
	make_runtime_id(ex->runtime_id);
	ex->proc.service = ex->s_service;
	ex->proc.env = ex->s_env;
	ex->proc.version = ex->s_version;
	ex->proc.runtime_id = ex->runtime_id;
	ex->proc.pid = (int)getpid();
	ex->dead_queue = xcalloc(1, sizeof *ex->dead_queue);
	ex->dead_queue->disabled = true;
	if (ex->type == CONFIG_EXPORTER_NONE)
		return ex;

	ex->nworkers = cfg->workers > 0 ? cfg->workers : 1;
	ex->max_queue = ce->max_queue_spans > 0 ? ce->max_queue_spans : 1;
	ex->per_queue = (ex->max_queue + ex->nworkers - 1) / ex->nworkers;
	ring = ex->per_queue * EXPORT_BYTES_PER_SPAN;
	if (ring < EXPORT_MIN_RING)
		ring = EXPORT_MIN_RING;
	if (ring > EXPORT_MAX_RING)
		ring = EXPORT_MAX_RING;
	ex->ring_bytes = next_pow2(ring);
	ex->flush_ns = (ce->flush_interval_ms > 0 ? ce->flush_interval_ms :
	    1000) * 1000000ULL;
	ex->thread_nice = ce->thread_nice > 19 ? 19 :
	    (unsigned)ce->thread_nice;
	ex->yield = ex->thread_nice > 0;

	if (ex->type == CONFIG_EXPORTER_DATADOG) {
		if (export_url_parse(ce->datadog_url != NULL ? ce->datadog_url
		    : "http://localhost:8126", "/v0.4/traces", &ex->url,
		    cause) != 0)
			goto fail;
		if (!ex->url.unix_socket) {
			/* Not over UDS [cpp-agent]. */
			ex->container_id = container_id();
			ex->proc.container_id = ex->container_id;
		}
	} else if (ex->type == CONFIG_EXPORTER_OTLP) {
		if (export_url_parse(ce->otlp_endpoint != NULL ?
		    ce->otlp_endpoint : "http://localhost:4318/v1/traces",
		    "/v1/traces", &ex->url, cause) != 0)
			goto fail;
		ex->otlp_json = ce->otlp_protocol == CONFIG_OTLP_JSON;
	}
	metrics_set_section(render_section, ex);
	ex->section = true;
	if (pipe2(ex->wake, O_NONBLOCK | O_CLOEXEC) != 0) {
		xasprintf(cause, "exporter: pipe: %s", strerror(errno));
		goto fail;
	}
	if ((ex->base = event_base_new()) == NULL) {
		xasprintf(cause, "exporter: cannot create an event base");
		goto fail;
	}
	ex->tick_ev = event_new(ex->base, -1, EV_PERSIST, tick_cb, ex);
	ex->wake_ev = event_new(ex->base, ex->wake[0], EV_READ | EV_PERSIST,
	    wake_cb, ex);
	ex->retry_ev = evtimer_new(ex->base, retry_cb, ex);
	ex->stop_ev = evtimer_new(ex->base, stop_cb, ex);
	if (exporter_client(ex, ce, cause) != 0)
		goto fail;
	if (ex->tick_ev == NULL || ex->wake_ev == NULL ||
	    ex->retry_ev == NULL || ex->stop_ev == NULL)
		fatalx("export: out of memory");
	tv.tv_sec = (time_t)(ex->opts.tick_ms / 1000);
	tv.tv_usec = (suseconds_t)(ex->opts.tick_ms % 1000) * 1000;
	event_add(ex->tick_ev, &tv);
	event_add(ex->wake_ev, NULL);
	ex->last_flush_ns = util_mono_ns();
	if ((errno = pthread_create(&ex->thread, NULL, exporter_main, ex))
	    != 0) {
		xasprintf(cause, "exporter: thread: %s", strerror(errno));
		goto fail;
	}
	ex->started = true;
	return ex;
fail:
	exporter_free(ex);
	return NULL;
}

static void
wake(struct exporter *ex, char c)
{
	ssize_t n;

	if (ex->wake[1] < 0)
		return;
	do
		n = write(ex->wake[1], &c, 1);
	while (n < 0 && errno == EINTR);
}

/* Ask the thread to flush now. */
void
exporter_flush(struct exporter *ex)
{
	if (ex != NULL && ex->started)
		wake(ex, 'f');
}

/* Flush, stop, join and free (NULL-safe). */
void
exporter_free(struct exporter *ex)
{
	struct exporter_queue *q, *next;
	unsigned i;

	if (ex == NULL)
		return;
	if (ex->section)
		metrics_set_section(NULL, ex);
	if (ex->started) {
		wake(ex, 's');
		pthread_join(ex->thread, NULL);
	}
	export_http_cancel(ex->inflight);
	export_client_free(ex->client);
	if (ex->tick_ev != NULL)
		event_free(ex->tick_ev);
	if (ex->wake_ev != NULL)
		event_free(ex->wake_ev);
	if (ex->retry_ev != NULL)
		event_free(ex->retry_ev);
	if (ex->stop_ev != NULL)
		event_free(ex->stop_ev);
	if (ex->base != NULL)
		event_base_free(ex->base);
	if (ex->wake[0] >= 0)
		close(ex->wake[0]);
	if (ex->wake[1] >= 0)
		close(ex->wake[1]);
	for (q = ex->queues; q != NULL; q = next) {
		struct export_chunk *c, *cn;

		next = q->next;
		for (c = q->rchunk; c != NULL; c = cn) {
			cn = c->next;
			chunk_unmap(c);
		}
		for (i = 0; i < EXPORT_HAND; i++)
			if (q->hand[i] != NULL)
				chunk_unmap(q->hand[i]);
		for (c = q->pool; c != NULL; c = cn) {
			cn = c->next;
			chunk_unmap(c);
		}
		free(q->scratch);
		free(q);
	}
	free(ex->dead_queue);
	free(ex->bbuf);
	free(ex->req_body);
	free(ex->boff);
	free(ex->blens);
	sampler_rates_free(ex->rates, ex->nrates);
	export_url_clear(&ex->url);
	free(ex->container_id);
	free(ex->s_service);
	free(ex->s_env);
	free(ex->s_version);
	pthread_mutex_destroy(&ex->qlock);
	pthread_mutex_destroy(&ex->rlock);
	free(ex);
}

/* Version of the published agent rates; relaxed load. */
uint64_t
exporter_rates_version(const struct exporter *ex)
{
	return __atomic_load_n(&ex->rates_version, __ATOMIC_RELAXED);
}

/* Copy the current rates table; its version, or 0 when none. */
uint64_t
exporter_rates_copy(struct exporter *ex, struct sampler_rate **rates,
    size_t *n)
{
	uint64_t v;
	size_t i;

	*rates = NULL;
	*n = 0;
	pthread_mutex_lock(&ex->rlock);
	v = ex->rates_version;
	if (ex->nrates > 0) {
		*rates = xcalloc(ex->nrates, sizeof **rates);
		for (i = 0; i < ex->nrates; i++) {
			(*rates)[i].key = xstrdup(ex->rates[i].key);
			(*rates)[i].rate = ex->rates[i].rate;
		}
		*n = ex->nrates;
	}
	pthread_mutex_unlock(&ex->rlock);
	return v;
}

/* Snapshot of the counters. */
void
exporter_get_stats(const struct exporter *ex, struct exporter_stats *st)
{
	struct exporter_queue *head, *q;
	uint64_t s1, s2, ncons;
	unsigned spins = 0;

	memset(st, 0, sizeof *st);
	if (ex->type == CONFIG_EXPORTER_NONE)
		return;
	/*
	 * Queues are only ever added at the head and freed with the
	 * exporter: the list from here on needs no lock.  The reader must
	 * not hold qlock while it waits for the sequence (drain takes it).
	 */
	head = queues_head((struct exporter *)ex);
	/* The exporter thread's side as one snapshot (acct_begin). */
	for (;;) {
		s1 = __atomic_load_n(&ex->acct_seq, __ATOMIC_ACQUIRE);
		if ((s1 & 1) != 0) {
			/*
			 * A move takes microseconds; should the exporter
			 * thread be preempted in one (it may run at a lower
			 * priority than this one), sleep instead of spinning.
			 */
			if (++spins < 64)
				sched_yield();
			else
				(void)usleep(50);
			continue;
		}
		ncons = 0;
		for (q = head; q != NULL; q = q->next)
			ncons += __atomic_load_n(&q->ncons, __ATOMIC_ACQUIRE);
		st->exported = util_counter_get(&ex->exported);
		st->dropped_agent_error = util_counter_get(&ex->dropped_agent);
		st->dropped_unsampled =
		    util_counter_get(&ex->dropped_unsampled);
		st->inflight = __atomic_load_n(&ex->inflight_spans,
		    __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		s2 = __atomic_load_n(&ex->acct_seq, __ATOMIC_RELAXED);
		if (s1 == s2)
			break;
	}
	/*
	 * The workers' side after it: every record the snapshot counted as
	 * consumed was produced before (the acquire loads of ncons), so
	 * nprod >= ncons and queued = submitted - consumed is exact.
	 */
	for (q = head; q != NULL; q = q->next) {
		st->submitted += __atomic_load_n(&q->nprod, __ATOMIC_ACQUIRE);
		st->dropped_queue_full += util_counter_get(&q->dropped);
		/* The exporter's side first: what it unmapped of the
		 * worker's chunks was mapped before (release, acquire). */
		st->queue_bytes += __atomic_load_n(&q->mapped_cons,
		    __ATOMIC_ACQUIRE);
		st->queue_bytes += __atomic_load_n(&q->mapped_prod,
		    __ATOMIC_ACQUIRE);
	}
	st->queued = st->submitted - ncons;
	st->requests = util_counter_get(&ex->requests);
	st->errors = util_counter_get(&ex->errors);
}

/* One export request's latency (exporter thread). */
static void
latency_add(struct exporter *ex, uint64_t us)
{
	unsigned b;

	for (b = 0; b < EXPORT_NBUCKETS - 1; b++)
		if (us <= lat_le_us[b])
			break;
	util_counter_add(&ex->lat_buckets[b], 1);
	util_counter_add(&ex->lat_sum_us, us);
}

/* The exporter's families in /metrics (metrics_set_section). */
static void
render_section(FILE *fp, void *arg)
{
	static const char *const reasons[3] = {
		"queue_full", "agent_error", "unsampled",
	};
	struct exporter *ex = arg;
	struct exporter_stats st;
	uint64_t drops[3], cum = 0, sum;
	unsigned i;

	exporter_get_stats(ex, &st);
	drops[0] = st.dropped_queue_full;
	drops[1] = st.dropped_agent_error;
	drops[2] = st.dropped_unsampled;
	fprintf(fp, "# HELP tracestitch_export_submitted_spans_total Spans "
	    "handed to the exporter; each is exported, dropped, queued or in "
	    "flight.\n# TYPE tracestitch_export_submitted_spans_total "
	    "counter\ntracestitch_export_submitted_spans_total %llu\n",
	    (unsigned long long)(st.submitted + st.dropped_queue_full));
	fprintf(fp, "# HELP tracestitch_export_spans_total Spans accepted "
	    "by the export backend.\n# TYPE tracestitch_export_spans_total "
	    "counter\ntracestitch_export_spans_total %llu\n",
	    (unsigned long long)st.exported);
	fprintf(fp, "# HELP tracestitch_export_dropped_spans_total Spans "
	    "dropped by the exporter, by reason.\n"
	    "# TYPE tracestitch_export_dropped_spans_total counter\n");
	for (i = 0; i < 3; i++)
		fprintf(fp, "tracestitch_export_dropped_spans_total{reason=\""
		    "%s\"} %llu\n", reasons[i], (unsigned long long)drops[i]);
	fprintf(fp, "# HELP tracestitch_export_requests_total Export "
	    "requests the backend accepted.\n"
	    "# TYPE tracestitch_export_requests_total counter\n"
	    "tracestitch_export_requests_total %llu\n",
	    (unsigned long long)st.requests);
	fprintf(fp, "# HELP tracestitch_export_errors_total Failed export "
	    "attempts (connect, timeout, HTTP error, bad response).\n"
	    "# TYPE tracestitch_export_errors_total counter\n"
	    "tracestitch_export_errors_total %llu\n",
	    (unsigned long long)st.errors);
	fprintf(fp, "# HELP tracestitch_export_queue_spans Spans waiting in "
	    "the export queues.\n# TYPE tracestitch_export_queue_spans "
	    "gauge\ntracestitch_export_queue_spans %llu\n",
	    (unsigned long long)st.queued);
	fprintf(fp, "# HELP tracestitch_export_queue_bytes Memory the "
	    "export queues hold now (chunks in use and spare).\n"
	    "# TYPE tracestitch_export_queue_bytes gauge\n"
	    "tracestitch_export_queue_bytes %llu\n",
	    (unsigned long long)st.queue_bytes);
	fprintf(fp, "# HELP tracestitch_export_inflight_spans Spans taken "
	    "from the queues into a request being sent or waiting for a "
	    "retry.\n# TYPE tracestitch_export_inflight_spans gauge\n"
	    "tracestitch_export_inflight_spans %llu\n",
	    (unsigned long long)st.inflight);
	fprintf(fp, "# HELP tracestitch_export_duration_seconds Export "
	    "request latency, from sending to the answer.\n"
	    "# TYPE tracestitch_export_duration_seconds histogram\n");
	for (i = 0; i < EXPORT_NBUCKETS; i++) {
		cum += util_counter_get(&ex->lat_buckets[i]);
		fprintf(fp, "tracestitch_export_duration_seconds_bucket{le=\""
		    "%s\"} %llu\n", lat_le[i], (unsigned long long)cum);
	}
	sum = util_counter_get(&ex->lat_sum_us);
	fprintf(fp, "tracestitch_export_duration_seconds_sum %llu.%06llu\n"
	    "tracestitch_export_duration_seconds_count %llu\n",
	    (unsigned long long)(sum / 1000000),
	    (unsigned long long)(sum % 1000000), (unsigned long long)cum);
}
