/* outbox — appending events in the writer's transaction, publishing committed
 * ones in seq order on PUB, and answering replay requests (ARCHITECTURE §3). */
#include "outbox.h"

#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "clock.h"
#include "config.h"
#include "log.h"
#include "zloop.h"

enum { DRAIN_PAGE = 1000, REPLAY_MAX = 2000 };

/* Run before the page reads: a prepared statement switches to a generic plan
 * after five runs, and one made while the outbox was small is a sequential
 * scan + sort that stays cached while the outbox grows (every drain read the
 * whole table). Planned each time, `seq > $1 ORDER BY seq LIMIT n` is a range
 * read of the primary key. (set_config(..., true): this transaction only.) */
static const char SQL_CUSTOM_PLAN[] =
    "SELECT set_config('plan_cache_mode', 'force_custom_plan', true)";

void outbox_tx_append(pg_tx *tx, const char *schema, Kesu__V1__Envelope *env) {
  char event_id[37];
  if (!env->event_id || !*env->event_id) {
    uuid_v4(event_id);
    env->event_id = event_id;
  }
  if (!env->producer || !*env->producer) env->producer = (char *)schema;
  if (!env->occurred_at) env->occurred_at = clock_now_ms();
  env->seq = 0;
  size_t len;
  unsigned char *buf = envelope_pack(env, &len);
  char sql[160], ms[24];
  snprintf(sql, sizeof sql, "SELECT %s.outbox_append($1::uuid, $2, $3::bigint, $4, $5::bytea)",
           schema);
  snprintf(ms, sizeof ms, "%" PRId64, env->occurred_at);
  const char *vals[5] = {env->event_id, env->type, ms, env->order_no ? env->order_no : "",
                         (const char *)buf};
  int lens[5] = {0, 0, 0, 0, (int)len};
  int fmts[5] = {0, 0, 0, 0, 1};
  pg_tx_add(tx, sql, 5, vals, lens, fmts);
  free(buf);
  if (env->event_id == event_id) env->event_id = NULL; /* not ours to keep pointing at */
}

struct outbox_publisher {
  struct event_base *base;
  pg_conn *pg;
  char *schema;
  char *producer;
  void *pub;
  void *replay;
  zwatch *replay_watch;
  struct event *ev_tick;
  struct event *ev_kick; /* timer: the next drain after commits, at most one per linger */
  int64_t linger_ms;     /* KESU_OUTBOX_LINGER_MS: least time between drains begun on commits */
  int64_t drain_start_ms; /* monotonic, when the last drain was sent */
  uint64_t published_seq; /* last seq put on PUB */
  uint64_t published;     /* count since start */
  bool started;           /* published_seq initialised from the head */
  bool draining;
  bool drain_again; /* a NOTIFY came while draining */
  char sql_drain[200];
  char sql_head[120];
};

static void publisher_drain(outbox_publisher *self);
static void publisher_soon(outbox_publisher *self);

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t parse_u64(const char *s) { return s ? strtoull(s, NULL, 10) : 0; }

static uint64_t be64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
  return v;
}

static void publish_head(outbox_publisher *self) {
  char seq[24];
  snprintf(seq, sizeof seq, "%" PRIu64, self->published_seq);
  const void *d[3] = {"_head", self->producer, seq};
  size_t l[3] = {5, strlen(self->producer), strlen(seq)};
  zsend(self->pub, 3, d, l);
}

static void on_drained(const pg_result_set *rs, void *arg) {
  outbox_publisher *self = arg;
  self->draining = false;
  if (!rs->ok) {
    log_warn("outbox %s: drain failed: %s", self->schema, rs->error);
    return; /* the tick retries */
  }
  PGresult *r = rs->res[rs->n - 1];
  if (!self->started) {
    /* First query: start publishing after the current head. Consumers replay
     * anything committed before we came up. */
    self->published_seq = PQntuples(r) ? parse_u64(PQgetvalue(r, 0, 0)) : 0;
    self->started = true;
    log_info("outbox %s: publishing after seq %" PRIu64, self->schema, self->published_seq);
    publisher_drain(self);
    return;
  }
  int n = PQntuples(r);
  for (int i = 0; i < n; i++) {
    /* Binary results: seq int8, type text, envelope bytea. */
    uint64_t seq = be64((const unsigned char *)PQgetvalue(r, i, 0));
    if (seq != self->published_seq + 1) {
      log_error("outbox %s: seq %" PRIu64 " after %" PRIu64 " (gap)", self->schema, seq,
                self->published_seq);
    }
    const char *type = PQgetvalue(r, i, 1);
    size_t out_len;
    unsigned char *out = envelope_with_seq((const unsigned char *)PQgetvalue(r, i, 2),
                                           (size_t)PQgetlength(r, i, 2), seq, &out_len);
    if (!out) {
      log_error("outbox %s: seq %" PRIu64 " is not a valid envelope", self->schema, seq);
    } else {
      if (zsend_str2(self->pub, type, out, out_len) != 0)
        log_warn("outbox %s: PUB send failed for seq %" PRIu64, self->schema, seq);
      free(out);
    }
    self->published_seq = seq;
    self->published++;
  }
  if (n == DRAIN_PAGE) { /* behind: catch up at once */
    self->drain_again = false;
    publisher_drain(self);
  } else if (self->drain_again) {
    self->drain_again = false;
    publisher_soon(self);
  }
}

static void publisher_drain(outbox_publisher *self) {
  if (self->draining) {
    self->drain_again = true;
    return;
  }
  self->draining = true;
  self->drain_start_ms = mono_ms();
  pg_tx *tx = pg_tx_new();
  pg_tx_read_only(tx);
  if (!self->started) {
    pg_tx_add(tx, self->sql_head, 0, NULL, NULL, NULL);
  } else {
    char after[24];
    snprintf(after, sizeof after, "%" PRIu64, self->published_seq);
    const char *vals[1] = {after};
    pg_tx_add(tx, SQL_CUSTOM_PLAN, 0, NULL, NULL, NULL);
    pg_tx_add_binary_result(tx, self->sql_drain, 1, vals, NULL, NULL);
  }
  pg_conn_submit(self->pg, tx, on_drained, self);
}

static void on_kick(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  publisher_drain(arg);
}

/* Drain now, or at the end of the linger if the last drain began less than
 * that ago: under load the commits of a few milliseconds go out as one batch
 * (one query here, and one transaction in each consumer downstream instead of
 * one per event), at the cost of at most linger_ms of latency. */
static void publisher_soon(outbox_publisher *self) {
  if (self->draining) {
    self->drain_again = true;
    return;
  }
  if (evtimer_pending(self->ev_kick, NULL)) return;
  int64_t wait = self->drain_start_ms + self->linger_ms - mono_ms();
  if (wait <= 0) {
    publisher_drain(self);
    return;
  }
  struct timeval tv = {(time_t)(wait / 1000), (suseconds_t)(wait % 1000) * 1000};
  evtimer_add(self->ev_kick, &tv);
}

/* A transaction of this process committed: it may have appended events. */
static void on_commit(void *arg) { publisher_soon(arg); }

static void on_notify(const char *channel, const char *payload, void *arg) {
  (void)channel;
  (void)payload;
  publisher_drain(arg);
}

static void on_tick(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  outbox_publisher *self = arg;
  if (self->started) publish_head(self);
  /* Belt and braces: a NOTIFY lost with a dropped connection is caught here. */
  if (pg_conn_ready(self->pg)) publisher_drain(self);
}

/* --- replay ---------------------------------------------------------------- */

typedef struct {
  outbox_publisher *self;
  unsigned char *identity;
  size_t identity_len;
} replay_req;

static void on_replay_rows(const pg_result_set *rs, void *arg) {
  replay_req *rq = arg;
  outbox_publisher *self = rq->self;
  if (!rs->ok) {
    log_warn("outbox %s: replay query failed: %s", self->schema, rs->error);
    free(rq->identity);
    free(rq);
    return; /* the consumer times out and asks again */
  }
  PGresult *rows = rs->res[1];
  PGresult *head = rs->res[2];
  int n = PQntuples(rows);
  char headseq[24];
  snprintf(headseq, sizeof headseq, "%s", PQntuples(head) ? PQgetvalue(head, 0, 0) : "0");
  int nf = 3 + n;
  const void **d = calloc((size_t)nf, sizeof *d);
  size_t *l = calloc((size_t)nf, sizeof *l);
  unsigned char **bufs = calloc((size_t)(n ? n : 1), sizeof *bufs);
  d[0] = rq->identity;
  l[0] = rq->identity_len;
  d[1] = "EVENTS";
  l[1] = 6;
  d[2] = headseq;
  l[2] = strlen(headseq);
  int k = 3;
  for (int i = 0; i < n; i++) {
    uint64_t seq = strtoull(PQgetvalue(rows, i, 0), NULL, 10);
    size_t elen = 0;
    size_t raw_len;
    unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(rows, i, 1), &raw_len);
    bufs[i] = raw ? envelope_with_seq(raw, raw_len, seq, &elen) : NULL;
    if (raw) PQfreemem(raw);
    if (!bufs[i]) {
      log_error("outbox %s: seq %" PRIu64 " is not a valid envelope; replay stops before it",
                self->schema, seq);
      break;
    }
    d[k] = bufs[i];
    l[k] = elen;
    k++;
  }
  if (zsend(self->replay, k, d, l) != 0)
    log_warn("outbox %s: replay reply not sent (client gone?)", self->schema);
  zwatch_kick(self->replay_watch);
  for (int i = 0; i < n; i++) free(bufs[i]);
  free(bufs);
  free(d);
  free(l);
  free(rq->identity);
  free(rq);
}

static void on_replay_request(void *sock, zmsg *m, void *arg) {
  (void)sock;
  outbox_publisher *self = arg;
  /* [identity]["REPLAY"][after][max] */
  if (m->nframes < 4 || strcmp((char *)m->data[1], "REPLAY") != 0) {
    log_warn("outbox %s: malformed replay request (%d frames)", self->schema, m->nframes);
    return;
  }
  uint64_t after = parse_u64((char *)m->data[2]);
  long max = strtol((char *)m->data[3], NULL, 10);
  if (max <= 0 || max > REPLAY_MAX) max = REPLAY_MAX;
  replay_req *rq = calloc(1, sizeof *rq);
  rq->self = self;
  rq->identity = malloc(m->len[0]);
  memcpy(rq->identity, m->data[0], m->len[0]);
  rq->identity_len = m->len[0];
  char a[24], mx[24], sql[200], head[120];
  snprintf(a, sizeof a, "%" PRIu64, after);
  snprintf(mx, sizeof mx, "%ld", max);
  snprintf(sql, sizeof sql,
           "SELECT seq, envelope FROM %s.outbox WHERE seq > $1::bigint ORDER BY seq LIMIT $2::int",
           self->schema);
  snprintf(head, sizeof head, "SELECT coalesce(max(seq), 0) FROM %s.outbox", self->schema);
  pg_tx *tx = pg_tx_new();
  pg_tx_read_only(tx);
  const char *vals[2] = {a, mx};
  pg_tx_add(tx, SQL_CUSTOM_PLAN, 0, NULL, NULL, NULL);
  pg_tx_add(tx, sql, 2, vals, NULL, NULL);
  pg_tx_add(tx, head, 0, NULL, NULL, NULL);
  pg_conn_submit(self->pg, tx, on_replay_rows, rq);
}

outbox_publisher *outbox_publisher_new(struct event_base *base, pg_conn *pg, const char *schema,
                                       const char *producer, const char *pub_endpoint,
                                       const char *replay_endpoint) {
  outbox_publisher *self = calloc(1, sizeof *self);
  self->base = base;
  self->pg = pg;
  self->schema = strdup(schema);
  self->producer = strdup(producer);
  self->pub = zsock_bind(ZMQ_PUB, pub_endpoint);
  self->replay = zsock_bind(ZMQ_ROUTER, replay_endpoint);
  if (!self->pub || !self->replay) {
    outbox_publisher_destroy(&self);
    return NULL;
  }
  snprintf(self->sql_drain, sizeof self->sql_drain,
           "SELECT seq, type, envelope FROM %s.outbox WHERE seq > $1::bigint ORDER BY seq LIMIT %d",
           schema, DRAIN_PAGE);
  snprintf(self->sql_head, sizeof self->sql_head, "SELECT coalesce(max(seq), 0) FROM %s.outbox",
           schema);
  self->replay_watch = zwatch_new(base, self->replay, on_replay_request, self);
  char channel[96];
  snprintf(channel, sizeof channel, "%s_outbox", schema);
  /* Writers in other processes may NOTIFY the channel; ours are seen by the commit hook. */
  pg_conn_listen(pg, channel, on_notify, self); /* also fires on every (re)connect */
  self->ev_kick = evtimer_new(base, on_kick, self);
  self->linger_ms = cfg_long("KESU_OUTBOX_LINGER_MS", 10);
  pg_on_commit(on_commit, self);
  self->ev_tick = event_new(base, -1, EV_PERSIST, on_tick, self);
  struct timeval tv = {1, 0};
  event_add(self->ev_tick, &tv);
  log_info("outbox %s: PUB %s, replay %s", schema, pub_endpoint, replay_endpoint);
  return self;
}

void outbox_publisher_destroy(outbox_publisher **selfp) {
  outbox_publisher *self = *selfp;
  if (!self) return;
  if (self->ev_tick) event_free(self->ev_tick);
  if (self->ev_kick) event_free(self->ev_kick);
  pg_off_commit(on_commit, self);
  zwatch_destroy(&self->replay_watch);
  zsock_close(&self->pub);
  zsock_close(&self->replay);
  free(self->schema);
  free(self->producer);
  free(self);
  *selfp = NULL;
}

uint64_t outbox_publisher_head(const outbox_publisher *self) { return self->published_seq; }
uint64_t outbox_publisher_published(const outbox_publisher *self) { return self->published; }
