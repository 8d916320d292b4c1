/* kesu-analytics — KPI facts and the live event stream.
 *
 * Consumes intake, router and sla. Each event is one upsert into
 * analytics.orders (the events of different producers arrive in any order,
 * so every one creates the row if missing and fills only what it knows), in
 * the consumer's batch transaction. After commit, every event is fanned out
 * to the SSE clients of /v1/stream.
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "clock.h"
#include "config.h"
#include "consumer.h"
#include "envelope.h"
#include "http.h"
#include "kpi.h"
#include "reports.h"
#include "web.h"
#include "log.h"
#include "metrics.h"
#include "pg.h"
#include "service.h"
#include "sse.h"
#include "valid.h"

enum { RING_EVENTS = 20000, NPRODUCERS = 3 };

typedef struct app app;

typedef struct {
  app *a;
  const char *producer;
  consumer *cons;
  /* the SSE frames built for the stream log of the batch in flight, reused
   * after its commit (seq order; a replay starts it over) */
  struct cached_ev {
    uint64_t seq;
    char *producer, *type, *region, *data;
  } *cache;
  size_t ncache, cache_head, cache_cap;
} feed;

static void cache_clear(feed *f) {
  for (size_t i = f->cache_head; i < f->ncache; i++) {
    struct cached_ev *c = &f->cache[i];
    free(c->producer), free(c->type), free(c->region), free(c->data);
  }
  f->ncache = f->cache_head = 0;
}

struct app {
  struct event_base *base;
  pg_conn *pg;
  auth_cache *auth;
  http_server *http;
  feed feeds[NPRODUCERS];
  sse_hub *sse;
};

static void region_prefix(const char *code, char *out, size_t len) {
  snprintf(out, len, "%s", code ? code : "");
  size_t n = strlen(out);
  while (n >= 2 && out[n - 1] == '0' && out[n - 2] == '0') out[n -= 2] = '\0';
}

/* --- facts ---------------------------------------------------------------- */

static const char *nz(const char *s) { return s && *s ? s : NULL; }

enum {
  F_ORDER, F_REGION, F_CHANNEL, F_BTYPE, F_TIER, F_RECEIVED, F_UNIT, F_DISPATCHED, F_CLOSED,
  F_WARNED, F_BREACHED, F_KIND, F_STREAM, F_LEVEL, F_PROMISED, F_FIRST_UNIT, F_MOVES, F_MISROUTES,
  F_BREACH_DUE, F_STEP_AT, F_PROBLEM, F_TITLE, F_SATISFACTION, F_FAULTS, F_SERVICE, NF
};

/* One upsert per consumer batch: the batch's events merged per order in C
 * (exactly what applying them one by one would give), sent as arrays and
 * unnested. The daily rollup follows by statement-level triggers
 * (005_batch_rollup.sql): one aggregated UPSERT of deltas per batch. */
#define TS(c) "to_timestamp(u." c " / 1000.0)"
static const char *const SQL_UPSERT =
    "INSERT INTO analytics.orders AS o (order_no, region, channel, business_type, tier,"
    " received_at, unit_id, dispatched_at, closed_at, warned_at, breached_at, kind, stream,"
    " customer_level, promised_by, first_unit, moves, misroutes, breach_due, steps, last_step_at,"
    " problem_type, title, satisfaction, faults, service_substantiated)"
    " SELECT u.c1, u.c2, u.c3, u.c4, u.c5, " TS("c6") ", u.c7, " TS("c8") ", " TS("c9") ", "
    TS("c10") ", " TS("c11") ", u.c12, u.c13, u.c14, " TS("c15") ", u.c16, u.c17, u.c18, "
    TS("c19") ", u.c20, " TS("c21") ", u.c22, u.c23, u.c24, u.c25, coalesce(u.c26, false)"
    " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[],"
    " $7::text[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], $12::text[],"
    " $13::text[], $14::text[], $15::bigint[], $16::text[], $17::int[], $18::int[],"
    " $19::bigint[], $20::int[], $21::bigint[], $22::text[], $23::text[], $24::int[], $25::int[],"
    " $26::boolean[])"
    " AS u(c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15, c16, c17, c18, c19,"
    " c20, c21, c22, c23, c24, c25, c26)"
    " ON CONFLICT (order_no) DO UPDATE SET"
    " region = COALESCE(o.region, EXCLUDED.region),"
    " channel = COALESCE(o.channel, EXCLUDED.channel),"
    " business_type = COALESCE(o.business_type, EXCLUDED.business_type),"
    " tier = COALESCE(o.tier, EXCLUDED.tier),"
    " received_at = COALESCE(o.received_at, EXCLUDED.received_at),"
    " unit_id = COALESCE(EXCLUDED.unit_id, o.unit_id),"
    " dispatched_at = COALESCE(o.dispatched_at, EXCLUDED.dispatched_at),"
    " closed_at = COALESCE(o.closed_at, EXCLUDED.closed_at),"
    " warned_at = COALESCE(o.warned_at, EXCLUDED.warned_at),"
    " breached_at = COALESCE(o.breached_at, EXCLUDED.breached_at),"
    " kind = COALESCE(o.kind, EXCLUDED.kind),"
    " stream = COALESCE(o.stream, EXCLUDED.stream),"
    " customer_level = COALESCE(o.customer_level, EXCLUDED.customer_level),"
    " promised_by = COALESCE(o.promised_by, EXCLUDED.promised_by),"
    " first_unit = COALESCE(o.first_unit, EXCLUDED.first_unit),"
    " moves = o.moves + EXCLUDED.moves,"
    " misroutes = o.misroutes + EXCLUDED.misroutes,"
    " breach_due = GREATEST(o.breach_due, EXCLUDED.breach_due),"
    " steps = o.steps + EXCLUDED.steps,"
    " last_step_at = GREATEST(o.last_step_at, EXCLUDED.last_step_at),"
    " problem_type = COALESCE(o.problem_type, EXCLUDED.problem_type),"
    " title = COALESCE(o.title, EXCLUDED.title),"
    " satisfaction = COALESCE(EXCLUDED.satisfaction, o.satisfaction),"
    " faults = o.faults + EXCLUDED.faults,"
    " service_substantiated = o.service_substantiated OR EXCLUDED.service_substantiated";

/* --- the batch: facts merged per order --------------------------------------- */

/* Events per consumer transaction: a catch-up replays in batches of this many,
 * each one multi-row upsert + one merge into the three rollups (500 → 2000: fewer
 * commits and trigger runs; bench/analytics_ingest.py 14,400–18,700 → 20,400–20,900
 * events/s on the shared machine). */
enum { BATCH = 2000 };
enum { HASH = 8192 }; /* > 2 × BATCH */

typedef struct {
  char *v[NF];
  long long moves, misroutes, steps, faults;
} fact;

static struct {
  fact *f;
  int n, cap;
  int slot[HASH]; /* index + 1; 0 = empty */
} g_batch;

static unsigned hash_str(const char *s) {
  unsigned h = 2166136261u;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
  return h;
}

static void on_batch_end(pg_tx *tx, void *arg);
static char *event_json(const Kesu__V1__Envelope *env, const char *fallback_producer,
                        const char **producer_out, const char **type_out,
                        const char **region_out);

/* The stream log (006_stream_log.sql): every streamed event with its SSE
 * data, in commit order, one multi-row insert per batch — what a client
 * resuming with a Last-Event-ID older than the in-memory ring (e.g. after a
 * restart) is served from. */
enum { STREAM_COLS = 5, STREAM_KEEP = 200000, PRUNE_EVERY = 200 };
static struct {
  struct evbuffer *col[STREAM_COLS];
  int n;
  unsigned batches;
} g_stream;

static void arr_add(struct evbuffer *b, const char *s, bool first) {
  evbuffer_add(b, first ? "{\"" : ",\"", 2);
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') evbuffer_add(b, "\\", 1);
    evbuffer_add(b, s, 1);
  }
  evbuffer_add(b, "\"", 1);
}

static void stream_add(const Kesu__V1__Envelope *env, feed *f) {
  const char *producer, *type, *region;
  char *data = event_json(env, f->producer, &producer, &type, &region);
  if (!data) return;
  if (f->ncache > f->cache_head && f->cache[f->ncache - 1].seq >= env->seq) cache_clear(f);
  if (f->ncache == f->cache_cap) {
    f->cache_cap = f->cache_cap ? 2 * f->cache_cap : 512;
    f->cache = realloc(f->cache, f->cache_cap * sizeof *f->cache);
  }
  f->cache[f->ncache++] = (struct cached_ev){env->seq, strdup(producer), strdup(type),
                                             strdup(region), strdup(data)};
  char seq[24];
  snprintf(seq, sizeof seq, "%" PRIu64, (uint64_t)env->seq);
  const char *v[STREAM_COLS] = {producer, seq, type, region, data};
  for (int i = 0; i < STREAM_COLS; i++) {
    if (!g_stream.col[i]) g_stream.col[i] = evbuffer_new();
    arr_add(g_stream.col[i], v[i], g_stream.n == 0);
  }
  g_stream.n++;
  free(data);
}

static void stream_flush(pg_tx *tx) {
  if (!g_stream.n) return;
  char *vals[STREAM_COLS];
  for (int i = 0; i < STREAM_COLS; i++) {
    evbuffer_add(g_stream.col[i], "}", 2); /* with the NUL */
    size_t len = evbuffer_get_length(g_stream.col[i]);
    vals[i] = malloc(len);
    evbuffer_remove(g_stream.col[i], vals[i], len);
  }
  pg_tx_add(tx,
            "INSERT INTO analytics.stream_log (producer, seq, type, region, data)"
            " SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[])"
            " ON CONFLICT (producer, seq) DO NOTHING",
            STREAM_COLS, (const char *const *)vals, NULL, NULL);
  for (int i = 0; i < STREAM_COLS; i++) free(vals[i]);
  g_stream.n = 0;
  if (++g_stream.batches % PRUNE_EVERY == 0) {
    char keep[24];
    snprintf(keep, sizeof keep, "%d", STREAM_KEEP);
    const char *pv[1] = {keep};
    pg_tx_add(tx,
              "DELETE FROM analytics.stream_log WHERE pos < (SELECT max(pos) FROM"
              " analytics.stream_log) - $1::bigint",
              1, pv, NULL, NULL);
  }
}

static void batch_merge(pg_tx *tx, const char *const *v) {
  /* a batch larger than the table can hold is written in parts */
  if (g_batch.n >= HASH / 2) on_batch_end(tx, NULL);
  unsigned h = hash_str(v[F_ORDER]) % HASH;
  while (g_batch.slot[h] && strcmp(g_batch.f[g_batch.slot[h] - 1].v[F_ORDER], v[F_ORDER]) != 0)
    h = (h + 1) % HASH;
  fact *f;
  if (!g_batch.slot[h]) {
    if (g_batch.n == g_batch.cap) {
      g_batch.cap = g_batch.cap ? 2 * g_batch.cap : 512;
      g_batch.f = realloc(g_batch.f, (size_t)g_batch.cap * sizeof *g_batch.f);
    }
    f = &g_batch.f[g_batch.n++];
    memset(f, 0, sizeof *f);
    f->v[F_ORDER] = strdup(v[F_ORDER]);
    g_batch.slot[h] = g_batch.n;
  } else {
    f = &g_batch.f[g_batch.slot[h] - 1];
  }
  for (int i = 0; i < NF; i++) {
    if (i == F_ORDER || !v[i]) continue;
    switch (i) {
    case F_MOVES: f->moves += strtoll(v[i], NULL, 10); break;
    case F_MISROUTES: f->misroutes += strtoll(v[i], NULL, 10); break;
    case F_FAULTS: f->faults += strtoll(v[i], NULL, 10); break;
    case F_SATISFACTION: /* the latest survey */
    case F_UNIT: /* the latest responsible unit */
      free(f->v[i]);
      f->v[i] = strdup(v[i]);
      break;
    case F_STEP_AT:
      f->steps++; /* and the latest time, like breach_due */
      /* fallthrough */
    case F_BREACH_DUE:
      if (!f->v[i] || strtoll(v[i], NULL, 10) > strtoll(f->v[i], NULL, 10)) {
        free(f->v[i]);
        f->v[i] = strdup(v[i]);
      }
      break;
    default: /* the first known value stays */
      if (!f->v[i]) f->v[i] = strdup(v[i]);
    }
  }
}

/* A Postgres array literal of one column of the batch (NULL = unknown). */
enum { COL_TEXT, COL_MOVES, COL_MISROUTES, COL_STEPS, COL_FAULTS };
static char *array_of(int col, int kind) {
  struct evbuffer *b = evbuffer_new();
  evbuffer_add(b, "{", 1);
  for (int r = 0; r < g_batch.n; r++) {
    const fact *f = &g_batch.f[r];
    if (r) evbuffer_add(b, ",", 1);
    if (kind != COL_TEXT) {
      evbuffer_add_printf(b, "%lld", kind == COL_MOVES       ? f->moves
                                      : kind == COL_MISROUTES ? f->misroutes
                                      : kind == COL_FAULTS    ? f->faults
                                                              : f->steps);
      continue;
    }
    const char *s = f->v[col];
    if (!s) {
      evbuffer_add(b, "NULL", 4);
      continue;
    }
    evbuffer_add(b, "\"", 1);
    for (; *s; s++) {
      if (*s == '"' || *s == '\\') evbuffer_add(b, "\\", 1);
      evbuffer_add(b, s, 1);
    }
    evbuffer_add(b, "\"", 1);
  }
  evbuffer_add(b, "}", 2); /* with the NUL */
  size_t len = evbuffer_get_length(b);
  char *out = malloc(len);
  evbuffer_remove(b, out, len);
  evbuffer_free(b);
  return out;
}

static void on_batch_end(pg_tx *tx, void *arg) {
  if (arg) stream_flush(tx); /* the whole batch (arg NULL: a part of the facts only) */
  if (!g_batch.n) return;
  /* the statement's columns: the fact fields in order, steps before last_step_at */
  char *vals[NF + 1];
  int k = 0;
  for (int i = 0; i < NF; i++) {
    if (i == F_STEP_AT) vals[k++] = array_of(0, COL_STEPS);
    vals[k++] = array_of(i, i == F_MOVES       ? COL_MOVES
                            : i == F_MISROUTES ? COL_MISROUTES
                            : i == F_FAULTS    ? COL_FAULTS
                                               : COL_TEXT);
  }
  pg_tx_add(tx, SQL_UPSERT, k, (const char *const *)vals, NULL, NULL);
  for (int i = 0; i < k; i++) free(vals[i]);
  for (int r = 0; r < g_batch.n; r++)
    for (int i = 0; i < NF; i++) free(g_batch.f[r].v[i]);
  g_batch.n = 0;
  memset(g_batch.slot, 0, sizeof g_batch.slot);
}


/* Supervision records and workflow state changes (004_reports.sql). */
static const char *const SQL_SUPERVISION =
    "INSERT INTO analytics.supervision (producer, seq, order_no, event, step, unit, to_unit,"
    " region, at, started_at, due_at) VALUES ($1, $2::bigint, $3, $4, $5, $6, $7, $8,"
    " to_timestamp($9::bigint / 1000.0), to_timestamp($10::bigint / 1000.0),"
    " to_timestamp($11::bigint / 1000.0)) ON CONFLICT DO NOTHING";
static const char *const SQL_STEP_LOG =
    "INSERT INTO analytics.step_log (producer, seq, order_no, at, action, from_state, to_state)"
    " VALUES ($1, $2::bigint, $3, to_timestamp($4::bigint / 1000.0), $5, $6, $7)"
    " ON CONFLICT DO NOTHING";

static void add_supervision(pg_tx *tx, const Kesu__V1__Envelope *env, const char *order,
                            const char *event, Kesu__V1__Step step, const char *unit,
                            const char *to_unit, int64_t started, int64_t due) {
  char seq[24], at[24], st[24], du[24];
  snprintf(seq, sizeof seq, "%" PRIu64, (uint64_t)env->seq);
  snprintf(at, sizeof at, "%" PRId64, (int64_t)(env->occurred_at ? env->occurred_at
                                                                  : clock_now_ms()));
  snprintf(st, sizeof st, "%" PRId64, (int64_t)started);
  snprintf(du, sizeof du, "%" PRId64, (int64_t)due);
  const char *v[11] = {nz(env->producer) ? env->producer : "sla", seq, order, event,
                       step_name(step), unit ? unit : "", to_unit ? to_unit : "",
                       env->region ? env->region : "", at, started ? st : NULL,
                       due ? du : NULL};
  pg_tx_add(tx, SQL_SUPERVISION, 11, v, NULL, NULL);
}
#undef TS

static void on_apply(pg_tx *tx, const Kesu__V1__Envelope *env, void *arg) {
  stream_add(env, arg);
  /* Times as Unix ms text; NULL = unknown. Counters as int text. */
  const char *v[NF] = {0};
  char tbuf[NF][24];
#define SETMS(col, t)                                                                              \
  do {                                                                                             \
    if (t) {                                                                                       \
      snprintf(tbuf[col], sizeof tbuf[col], "%" PRId64, (int64_t)(t));                             \
      v[col] = tbuf[col];                                                                          \
    }                                                                                              \
  } while (0)
  v[F_ORDER] = nz(env->order_no);
  v[F_REGION] = nz(env->region);
  switch (env->payload_case) {
  case KESU__V1__ENVELOPE__PAYLOAD_COMPLAINT_RECEIVED: {
    const Kesu__V1__Complaint *c = env->complaint_received->complaint;
    if (!c) return;
    if (nz(c->order_no)) v[F_ORDER] = c->order_no;
    if (!v[F_REGION]) v[F_REGION] = nz(c->region);
    v[F_CHANNEL] = c->channel ? channel_name(c->channel) : NULL;
    v[F_BTYPE] = nz(c->business_type);
    v[F_TIER] = c->tier ? tier_name(c->tier) : NULL;
    v[F_KIND] = c->kind ? kind_name(c->kind) : NULL;
    v[F_STREAM] = c->stream ? stream_name(c->stream) : NULL;
    v[F_LEVEL] = c->customer ? nz(c->customer->level) : NULL;
    v[F_PROBLEM] = nz(c->problem_type);
    v[F_TITLE] = nz(c->title);
    SETMS(F_RECEIVED, c->accepted_at ? c->accepted_at : env->occurred_at);
    SETMS(F_PROMISED, c->promised_by);
    break;
  }
  case KESU__V1__ENVELOPE__PAYLOAD_WORK_ORDER_CREATED: {
    const Kesu__V1__WorkOrderCreated *c = env->work_order_created;
    if (nz(c->order_no)) v[F_ORDER] = c->order_no;
    if (!v[F_REGION]) v[F_REGION] = nz(c->region);
    v[F_CHANNEL] = c->channel ? channel_name(c->channel) : NULL;
    v[F_BTYPE] = nz(c->business_type);
    v[F_TIER] = c->tier ? tier_name(c->tier) : NULL;
    v[F_KIND] = c->kind ? kind_name(c->kind) : NULL;
    v[F_STREAM] = c->stream ? stream_name(c->stream) : NULL;
    v[F_LEVEL] = nz(c->customer_level);
    v[F_UNIT] = nz(c->unit_id);
    v[F_FIRST_UNIT] = nz(c->unit_id);
    v[F_PROBLEM] = nz(c->problem_type);
    SETMS(F_RECEIVED, c->accepted_at);
    SETMS(F_PROMISED, c->promised_by);
    break;
  }
  case KESU__V1__ENVELOPE__PAYLOAD_WORK_ORDER_DISPATCHED: {
    const Kesu__V1__WorkOrderDispatched *d = env->work_order_dispatched;
    if (nz(d->order_no)) v[F_ORDER] = d->order_no;
    /* the handler link's unit (a feedback goes back to the centre's handler):
     * the responsible unit comes from the router's steps instead */
    SETMS(F_DISPATCHED, env->occurred_at);
    break;
  }
  case KESU__V1__ENVELOPE__PAYLOAD_WORK_ORDER_STEP_CHANGED: {
    const Kesu__V1__WorkOrderStepChanged *s = env->work_order_step_changed;
    if (nz(s->order_no)) v[F_ORDER] = s->order_no;
    const char *act = s->action ? s->action : "";
    bool misroute = !strcmp(act, "return") || !strcmp(act, "transfer");
    /* the first assignment (accepted → dispatched) is not a re-dispatch */
    bool first = s->from_state && !strcmp(s->from_state, "accepted");
    bool move = misroute || (!strcmp(act, "dispatch") && !first) || !strcmp(act, "escalate");
    /* unit = the responsible (handling) unit: the one dispatched, transferred
     * or escalated to — not the centre a feedback or a return goes back to */
    if (!strcmp(act, "dispatch") || !strcmp(act, "transfer") || !strcmp(act, "escalate"))
      v[F_UNIT] = nz(s->holder_unit);
    if (move) v[F_MOVES] = "1";
    if (misroute) v[F_MISROUTES] = "1";
    /* the survey (SPEC: customers surveyed at answer or callback — a
     * satisfaction on an answer counts as on a callback; the latest one wins), the
     * callback's verdict, a reopen (回访再处理), and a close/conclude that found a
     * service complaint substantiated */
    bool survey = !strcmp(act, "callback") || !strcmp(act, "answer") ||
                  !strcmp(act, "answer_on_spot");
    if (survey && s->satisfaction >= 1 && s->satisfaction <= 5) {
      snprintf(tbuf[F_SATISFACTION], sizeof tbuf[F_SATISFACTION], "%d", (int)s->satisfaction);
      v[F_SATISFACTION] = tbuf[F_SATISFACTION];
    }
    if ((!strcmp(act, "callback") && s->at_fault) || !strcmp(act, "reopen")) v[F_FAULTS] = "1";
    if (s->service_substantiated) v[F_SERVICE] = "t";
    SETMS(F_STEP_AT, s->at ? s->at : env->occurred_at);
    if (v[F_ORDER] && s->from_state && s->to_state && strcmp(s->from_state, s->to_state) != 0) {
      char seq[24];
      snprintf(seq, sizeof seq, "%" PRIu64, (uint64_t)env->seq);
      const char *lv[7] = {nz(env->producer) ? env->producer : "router", seq, v[F_ORDER],
                           v[F_STEP_AT], act, s->from_state, s->to_state};
      pg_tx_add(tx, SQL_STEP_LOG, 7, lv, NULL, NULL);
    }
    break;
  }
  case KESU__V1__ENVELOPE__PAYLOAD_WORK_ORDER_CLOSED: {
    const Kesu__V1__WorkOrderClosed *c = env->work_order_closed;
    if (nz(c->order_no)) v[F_ORDER] = c->order_no;
    SETMS(F_CLOSED, c->closed_at ? c->closed_at : env->occurred_at);
    break;
  }
  case KESU__V1__ENVELOPE__PAYLOAD_SLA_WARNING:
    if (nz(env->sla_warning->order_no)) v[F_ORDER] = env->sla_warning->order_no;
    SETMS(F_WARNED, env->occurred_at);
    if (v[F_ORDER]) {
      const Kesu__V1__SlaWarning *w = env->sla_warning;
      add_supervision(tx, env, v[F_ORDER], "warning", w->step, w->unit_id, NULL, w->started_at,
                      w->due_at);
    }
    break;
  case KESU__V1__ENVELOPE__PAYLOAD_SLA_BREACHED:
    if (nz(env->sla_breached->order_no)) v[F_ORDER] = env->sla_breached->order_no;
    SETMS(F_BREACHED, env->occurred_at);
    SETMS(F_BREACH_DUE, env->sla_breached->due_at);
    if (v[F_ORDER]) {
      const Kesu__V1__SlaBreached *b = env->sla_breached;
      add_supervision(tx, env, v[F_ORDER], "breached", b->step, b->unit_id, NULL, b->started_at,
                      b->due_at);
    }
    break;
  case KESU__V1__ENVELOPE__PAYLOAD_SLA_ESCALATED: {
    const Kesu__V1__SlaEscalated *e = env->sla_escalated;
    const char *order = nz(e->order_no) ? e->order_no : nz(env->order_no);
    if (order)
      add_supervision(tx, env, order, "escalated", e->step, e->from_unit, e->to_unit, 0,
                      e->due_at);
    return;
  }
  default:
    return;
  }
#undef SETMS
  if (!v[F_ORDER]) return;
  batch_merge(tx, v);
}

/* --- live stream ------------------------------------------------------------ */

static void set_time(json_t *o, const char *key, int64_t ms) {
  if (!ms) return;
  char buf[40];
  clock_format_ms(ms, buf, sizeof buf);
  json_object_set_new(o, key, json_string(buf));
}

static void set_str(json_t *o, const char *key, const char *s) {
  if (s && *s) json_object_set_new(o, key, json_string(s));
}

static void sla_fields(json_t *o, Kesu__V1__Step step, const char *unit_id, int64_t started,
                       int64_t due, int64_t limit_s) {
  set_str(o, "step", step_name(step));
  set_str(o, "unit_id", unit_id);
  set_time(o, "started_at", started);
  set_time(o, "due_at", due);
  json_object_set_new(o, "limit_seconds", json_integer(limit_s));
}

/* The SSE data of an event (malloc'd JSON; NULL = not streamed) and its
 * producer, type and region. */
static char *event_json(const Kesu__V1__Envelope *env, const char *fallback_producer,
                        const char **producer_out, const char **type_out,
                        const char **region_out) {
  const char *producer = nz(env->producer) ? env->producer : fallback_producer;
  const char *type = nz(env->type) ? env->type : envelope_type_name(env->payload_case);
  if (!*type) return NULL;
  const char *region = env->region;
  json_t *o = json_object();
  json_object_set_new(o, "producer", json_string(producer));
  json_object_set_new(o, "seq", json_integer((json_int_t)env->seq));
  json_object_set_new(o, "type", json_string(type));
  json_object_set_new(o, "order_no", json_string(env->order_no));
  set_time(o, "occurred_at", env->occurred_at);
  switch (env->payload_case) {
  case KESU__V1__ENVELOPE__PAYLOAD_COMPLAINT_RECEIVED: {
    const Kesu__V1__Complaint *c = env->complaint_received->complaint;
    if (!c) break;
    if (!*region) region = c->region;
    if (!*env->order_no) json_object_set_new(o, "order_no", json_string(c->order_no));
    set_str(o, "kind", c->kind ? kind_name(c->kind) : NULL);
    set_str(o, "channel", c->channel ? channel_name(c->channel) : NULL);
    set_str(o, "tier", c->tier ? tier_name(c->tier) : NULL);
    set_str(o, "business_type", c->business_type);
    set_str(o, "problem_type", c->problem_type);
    set_str(o, "title", c->title);
    set_time(o, "accepted_at", c->accepted_at);
    set_time(o, "promised_by", c->promised_by);
    break;
  }
  case KESU__V1__ENVELOPE__PAYLOAD_WORK_ORDER_CREATED: {
    const Kesu__V1__WorkOrderCreated *c = env->work_order_created;
    if (!*region) region = c->region;
    set_str(o, "unit_id", c->unit_id);
    set_str(o, "tier", c->tier ? tier_name(c->tier) : NULL);
    set_str(o, "kind", c->kind ? kind_name(c->kind) : NULL);
    set_time(o, "accepted_at", c->accepted_at);
    set_time(o, "promised_by", c->promised_by);
    break;
  }
  case KESU__V1__ENVELOPE__PAYLOAD_WORK_ORDER_DISPATCHED: {
    const Kesu__V1__WorkOrderDispatched *d = env->work_order_dispatched;
    set_str(o, "unit_id", d->unit_id);
    set_str(o, "handler_id", d->handler_id);
    set_str(o, "dispatch_id", d->dispatch_id);
    break;
  }
  case KESU__V1__ENVELOPE__PAYLOAD_WORK_ORDER_CLOSED: {
    const Kesu__V1__WorkOrderClosed *c = env->work_order_closed;
    set_str(o, "unit_id", c->unit_id);
    set_str(o, "actor", c->actor);
    set_time(o, "closed_at", c->closed_at);
    set_time(o, "accepted_at", c->accepted_at);
    break;
  }
  case KESU__V1__ENVELOPE__PAYLOAD_SLA_WARNING: {
    const Kesu__V1__SlaWarning *w = env->sla_warning;
    sla_fields(o, w->step, w->unit_id, w->started_at, w->due_at, w->limit_seconds);
    break;
  }
  case KESU__V1__ENVELOPE__PAYLOAD_SLA_BREACHED: {
    const Kesu__V1__SlaBreached *b = env->sla_breached;
    sla_fields(o, b->step, b->unit_id, b->started_at, b->due_at, b->limit_seconds);
    break;
  }
  case KESU__V1__ENVELOPE__PAYLOAD_SLA_ESCALATED: {
    const Kesu__V1__SlaEscalated *e = env->sla_escalated;
    set_str(o, "step", step_name(e->step));
    set_str(o, "from_unit", e->from_unit);
    set_str(o, "to_unit", e->to_unit);
    set_time(o, "due_at", e->due_at);
    break;
  }
  case KESU__V1__ENVELOPE__PAYLOAD_WORK_ORDER_STEP_CHANGED: {
    const Kesu__V1__WorkOrderStepChanged *s = env->work_order_step_changed;
    set_str(o, "action", s->action);
    set_str(o, "from_state", s->from_state);
    set_str(o, "to_state", s->to_state);
    set_str(o, "unit_id", s->holder_unit);
    set_time(o, "at", s->at);
    if (s->satisfaction) json_object_set_new(o, "satisfaction", json_integer(s->satisfaction));
    if (s->service_substantiated) json_object_set_new(o, "service_substantiated", json_true());
    break;
  }
  default:
    break;
  }
  json_object_set_new(o, "region", json_string(region ? region : ""));
  char *data = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  *producer_out = producer;
  *type_out = type;
  *region_out = region ? region : "";
  return data;
}

static void on_committed(const Kesu__V1__Envelope *env, void *arg) {
  feed *f = arg;
  while (f->cache_head < f->ncache && f->cache[f->cache_head].seq < env->seq) {
    struct cached_ev *c = &f->cache[f->cache_head++];
    free(c->producer), free(c->type), free(c->region), free(c->data);
  }
  if (f->cache_head < f->ncache && f->cache[f->cache_head].seq == env->seq) {
    struct cached_ev *c = &f->cache[f->cache_head++];
    sse_publish(f->a->sse, c->producer, c->seq, c->type, c->region, c->data);
    free(c->producer), free(c->type), free(c->region), free(c->data);
    if (f->cache_head == f->ncache) f->ncache = f->cache_head = 0;
    return;
  }
  const char *producer, *type, *region;
  char *data = event_json(env, f->producer, &producer, &type, &region);
  if (data) sse_publish(f->a->sse, producer, env->seq, type, region, data);
  free(data);
}

/* --- HTTP ----------------------------------------------------------------- */

typedef struct {
  struct evhttp_request *req;
  char region[16];
} summary_q;

static void on_summary(const pg_result_set *rs, void *arg) {
  summary_q *q = arg;
  if (!rs->ok || PQntuples(rs->res[0]) != 1) {
    http_reply_error(q->req, 503, "unavailable", "database unavailable", NULL);
    free(q);
    return;
  }
  PGresult *r = rs->res[0];
  json_t *o = json_object();
  json_object_set_new(o, "region", json_string(q->region));
  static const char *const keys[] = {"received", "dispatched", "closed", "warned", "breached"};
  for (int i = 0; i < 5; i++)
    json_object_set_new(o, keys[i], json_integer(strtoll(PQgetvalue(r, 0, i), NULL, 10)));
  http_reply_json(q->req, 200, o);
  free(q);
}

static void h_summary(struct evhttp_request *req, const auth_ctx *auth, char **segs, int nsegs,
                      void *arg) {
  app *a = arg;
  /* KPIs are for dashboards (viewer), staff (handler, centre) and admins —
   * not for intake agents. */
  if (strcmp(auth->role, "admin") != 0 && strcmp(auth->role, "viewer") != 0 &&
      strcmp(auth->role, "handler") != 0 && strcmp(auth->role, "centre") != 0) {
    http_reply_error(req, 403, "forbidden", "this token's role may not read KPIs", NULL);
    return;
  }
  summary_q *q = calloc(1, sizeof *q);
  q->req = req;
  if (!effective_region(req, auth, http_query(req, "region"), q->region, sizeof q->region)) {
    free(q);
    return;
  }
  char prefix[16];
  region_prefix(q->region, prefix, sizeof prefix);
  pg_tx *tx = pg_tx_new();
  static const char *cols =
      "SELECT count(received_at), count(dispatched_at), count(closed_at), count(warned_at),"
      " count(breached_at) FROM analytics.orders";
  if (*prefix) {
    char sql[512], like[24];
    snprintf(sql, sizeof sql, "%s WHERE region LIKE $1", cols);
    snprintf(like, sizeof like, "%s%%", prefix);
    const char *v[1] = {like};
    pg_tx_add(tx, sql, 1, v, NULL, NULL);
  } else {
    pg_tx_add(tx, cols, 0, NULL, NULL, NULL);
  }
  pg_conn_submit(a->pg, tx, on_summary, q);
}

typedef struct {
  app *a;
  struct evhttp_request *req;
  char scope[16];
  char *region, *types, *last;
} resume_q;

static void on_resume(const pg_result_set *rs, void *arg) {
  resume_q *q = arg;
  if (!rs->ok && rs->sqlstate && strncmp(rs->sqlstate, "22", 2) == 0) {
    /* not a number after the dash: an id of nothing we sent */
    sse_attach(q->a->sse, q->req, q->scope, q->region, q->types, q->last);
  } else if (!rs->ok) {
    http_reply_error(q->req, 503, "unavailable", "database unavailable", NULL);
  } else if (PQntuples(rs->res[0]) == 0) {
    /* unknown or pruned: what the ring has, as before */
    sse_attach(q->a->sse, q->req, q->scope, q->region, q->types, q->last);
  } else {
    PGresult *r = rs->res[1];
    size_t n = (size_t)PQntuples(r);
    sse_item *items = calloc(n ? n : 1, sizeof *items);
    for (size_t i = 0; i < n; i++)
      items[i] = (sse_item){PQgetvalue(r, (int)i, 0), strtoull(PQgetvalue(r, (int)i, 1), NULL, 10),
                            PQgetvalue(r, (int)i, 2), PQgetvalue(r, (int)i, 3),
                            PQgetvalue(r, (int)i, 4)};
    sse_attach_backlog(q->a->sse, q->req, q->scope, q->region, q->types, items, n);
    free(items);
  }
  free(q->region);
  free(q->types);
  free(q->last);
  free(q);
}

static void h_stream(struct evhttp_request *req, const auth_ctx *auth, char **segs, int nsegs,
                     void *arg) {
  app *a = arg;
  if (strcmp(auth->role, "admin") != 0 && strcmp(auth->role, "viewer") != 0) {
    http_reply_error(req, 403, "forbidden", "the stream is for admin and viewer tokens", NULL);
    return;
  }
  const char *region = http_query(req, "region");
  if (region && !valid_region(region)) {
    http_reply_error(req, 422, "invalid_value", "region must be a 6-digit region code", "region");
    return;
  }
  const char *last = http_header(req, "Last-Event-ID");
  if (!last) last = http_query(req, "last_event_id");
  const char *dash = last ? strrchr(last, '-') : NULL;
  if (!last || !*last || !dash || dash == last || sse_ring_has(a->sse, last) ||
      strlen(last) > 64) {
    sse_attach(a->sse, req, auth->scope, region, http_query(req, "types"), last);
    return;
  }
  /* older than the ring (e.g. from before a restart): the backlog from the stream log */
  resume_q *q = calloc(1, sizeof *q);
  q->a = a;
  q->req = req;
  snprintf(q->scope, sizeof q->scope, "%s", auth->scope ? auth->scope : "");
  q->region = region ? strdup(region) : NULL;
  q->types = http_query(req, "types") ? strdup(http_query(req, "types")) : NULL;
  q->last = strdup(last);
  char producer[64], seq[24];
  snprintf(producer, sizeof producer, "%.*s", (int)(dash - last), last);
  snprintf(seq, sizeof seq, "%s", dash + 1);
  const char *v[2] = {producer, seq};
  pg_tx *tx = pg_tx_new();
  pg_tx_add(tx, "SELECT pos FROM analytics.stream_log WHERE producer = $1 AND seq = $2::bigint",
            2, v, NULL, NULL);
  pg_tx_add(tx,
            "SELECT producer, seq, type, region, data FROM analytics.stream_log WHERE pos >"
            " (SELECT pos FROM analytics.stream_log WHERE producer = $1 AND seq = $2::bigint)"
            " ORDER BY pos LIMIT 50000",
            2, v, NULL, NULL);
  pg_conn_submit(a->pg, tx, on_resume, q);
}

static bool is_ready(void *arg) {
  app *a = arg;
  if (!pg_conn_ready(a->pg)) return false;
  for (int i = 0; i < NPRODUCERS; i++)
    if (!a->feeds[i].cons || !consumer_live(a->feeds[i].cons)) return false;
  return true;
}

static void metrics_cb(struct evbuffer *out, void *arg) {
  app *a = arg;
  evbuffer_add_printf(out, "# HELP kesu_analytics_events_applied_total Events applied\n"
                           "# TYPE kesu_analytics_events_applied_total counter\n");
  for (int i = 0; i < NPRODUCERS; i++)
    evbuffer_add_printf(out, "kesu_analytics_events_applied_total{producer=\"%s\"} %" PRIu64 "\n",
                        a->feeds[i].producer,
                        a->feeds[i].cons ? consumer_applied(a->feeds[i].cons) : 0);
  evbuffer_add_printf(out, "# HELP kesu_analytics_consumer_offset Last seq applied\n"
                           "# TYPE kesu_analytics_consumer_offset gauge\n");
  for (int i = 0; i < NPRODUCERS; i++)
    evbuffer_add_printf(out, "kesu_analytics_consumer_offset{producer=\"%s\"} %" PRIu64 "\n",
                        a->feeds[i].producer,
                        a->feeds[i].cons ? consumer_offset(a->feeds[i].cons) : 0);
  evbuffer_add_printf(out,
                      "# HELP kesu_analytics_sse_clients Connected SSE clients\n"
                      "# TYPE kesu_analytics_sse_clients gauge\n"
                      "kesu_analytics_sse_clients %zu\n"
                      "# HELP kesu_analytics_sse_ring Events kept for Last-Event-ID resume\n"
                      "# TYPE kesu_analytics_sse_ring gauge\n"
                      "kesu_analytics_sse_ring %zu\n"
                      "# HELP kesu_analytics_sse_dropped_total SSE clients dropped as too slow\n"
                      "# TYPE kesu_analytics_sse_dropped_total counter\n"
                      "kesu_analytics_sse_dropped_total %" PRIu64 "\n",
                      sse_client_count(a->sse), sse_ring_size(a->sse),
                      sse_dropped_clients(a->sse));
}

int main(void) {
  struct event_base *base = service_init("analytics");
  app a = {.base = base};
  a.pg = pg_conn_new(base, cfg_pg_conninfo("analytics"), "analytics");
  a.auth = auth_cache_new(base, a.pg);
  char host[128];
  int port;
  cfg_http_listen("ANALYTICS", PORT_ANALYTICS_HTTP, host, sizeof host, &port);
  a.http = http_server_new(base, host, port, a.auth);
  if (!a.http) return 1;
  a.sse = sse_hub_new(base, (size_t)cfg_long("KESU_ANALYTICS_SSE_RING", RING_EVENTS));
  http_route(a.http, EVHTTP_REQ_GET, "/v1/kpi/summary", 0, h_summary, &a);
  http_route(a.http, EVHTTP_REQ_GET, "/v1/stream", 0, h_stream, &a);
  kpi_routes(a.http, a.pg);
  reports_routes(a.http, a.pg);
  web_routes(a.http, a.pg);
  http_set_ready(a.http, is_ready, &a);
  http_set_metrics(a.http, metrics_cb, &a);

  static const struct {
    const char *producer, *pub_env, *replay_env;
    int pub_port, replay_port;
  } src[NPRODUCERS] = {
      {"intake", "KESU_INTAKE_PUB", "KESU_INTAKE_REPLAY", PORT_INTAKE_PUB, PORT_INTAKE_REPLAY},
      {"router", "KESU_ROUTER_PUB", "KESU_ROUTER_REPLAY", PORT_ROUTER_PUB, PORT_ROUTER_REPLAY},
      {"sla", "KESU_SLA_PUB", "KESU_SLA_REPLAY", PORT_SLA_PUB, PORT_SLA_REPLAY},
  };
  for (int i = 0; i < NPRODUCERS; i++) {
    feed *f = &a.feeds[i];
    f->a = &a;
    f->producer = src[i].producer;
    /* One connection for all three: their upserts on the same rows never
     * run concurrently, so they cannot deadlock. */
    consumer_config cc = {.schema = "analytics",
                          .producer = src[i].producer,
                          .pub_endpoint = cfg_endpoint(src[i].pub_env, src[i].pub_port),
                          .replay_endpoint = cfg_endpoint(src[i].replay_env, src[i].replay_port),
                          .apply = on_apply,
                          .committed = on_committed,
                          .arg = f,
                          .batch_end = on_batch_end,
                          .batch_max = BATCH,
                          /* dashboards refresh in 300 ms steps: 100 ms more makes the
                           * live batches larger (KESU_ANALYTICS_LINGER_MS) */
                          .linger_ms = 100};
    f->cons = consumer_new(base, a.pg, &cc);
    if (!f->cons) return 1;
  }

  int rc = service_run(base);

  for (int i = 0; i < NPRODUCERS; i++) {
    consumer_destroy(&a.feeds[i].cons);
    cache_clear(&a.feeds[i]);
    free(a.feeds[i].cache);
  }
  sse_hub_destroy(&a.sse);
  http_server_destroy(&a.http);
  auth_cache_destroy(&a.auth);
  pg_conn_destroy(&a.pg);
  event_base_free(base);
  return rc;
}
