/* consumer — applies a producer's stream exactly once: offsets advanced in the
 * effect's transaction, replay on start and on any gap, duplicates dropped. */
#include "consumer.h"

#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "config.h"
#include "log.h"
#include "zloop.h"

/* --- ordering rules ------------------------------------------------------ */

void stream_pos_init(stream_pos *p, uint64_t committed) {
  p->committed = p->accepted = committed;
  p->known_head = committed;
}

seq_verdict stream_pos_offer(stream_pos *p, uint64_t seq) {
  if (seq > p->known_head) p->known_head = seq;
  if (seq <= p->accepted) return SEQ_DUPLICATE;
  if (seq != p->accepted + 1) return SEQ_GAP;
  p->accepted = seq;
  return SEQ_ACCEPT;
}

void stream_pos_saw_head(stream_pos *p, uint64_t head) {
  if (head > p->known_head) p->known_head = head;
}

bool stream_pos_behind(const stream_pos *p) { return p->known_head > p->accepted; }

void stream_pos_committed(stream_pos *p, uint64_t seq) {
  if (seq > p->committed) p->committed = seq;
  if (p->accepted < p->committed) p->accepted = p->committed;
}

void stream_pos_rewind(stream_pos *p) { p->accepted = p->committed; }

/* --- the consumer -------------------------------------------------------- */

enum { TICK_MS = 100, REPLAY_TIMEOUT_MS = 3000, RETRY_MS = 500 };

typedef struct qitem {
  Kesu__V1__Envelope *env;
  int64_t at_ms; /* monotonic, when it was queued */
  struct qitem *next;
} qitem;

struct consumer {
  struct event_base *base;
  pg_conn *pg;
  char *schema, *producer;
  int batch_max;
  int64_t linger_ms;        /* a short batch waits this long for more (0: never) */
  struct event *ev_linger;
  consumer_apply_fn apply;
  consumer_batch_end_fn batch_end;
  consumer_committed_fn committed;
  void *arg;

  void *sub, *dealer;
  zwatch *wsub, *wdealer;
  struct event *ev_tick;

  stream_pos pos;
  bool loaded, loading;
  bool replay_pending;
  int64_t replay_sent_ms;
  int64_t retry_after_ms;

  qitem *qhead, *qtail;
  size_t qlen;
  Kesu__V1__Envelope **batch;
  int batch_n;
  bool inflight;

  uint64_t applied, replays;
  bool was_live;
  char sql_advance[160];
  char sql_load[160];
};

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void consumer_flush(consumer *self);

static void request_replay(consumer *self) {
  if (!self->loaded || self->replay_pending) return;
  if (self->qlen >= (size_t)self->batch_max * 4) return; /* apply what we have first */
  if (mono_ms() < self->retry_after_ms) return;
  char after[24], max[24];
  snprintf(after, sizeof after, "%" PRIu64, self->pos.accepted);
  snprintf(max, sizeof max, "%d", self->batch_max * 2);
  const void *d[3] = {"REPLAY", after, max};
  size_t l[3] = {6, strlen(after), strlen(max)};
  if (zsend(self->dealer, 3, d, l) != 0) {
    log_warn("consumer %s<-%s: replay request not sent", self->schema, self->producer);
    return;
  }
  zwatch_kick(self->wdealer);
  self->replay_pending = true;
  self->replay_sent_ms = mono_ms();
  self->replays++;
}

static void enqueue(consumer *self, Kesu__V1__Envelope *env) {
  qitem *q = malloc(sizeof *q);
  q->env = env;
  q->at_ms = mono_ms();
  q->next = NULL;
  if (self->qtail)
    self->qtail->next = q;
  else
    self->qhead = q;
  self->qtail = q;
  self->qlen++;
}

static void drop_queue(consumer *self) {
  while (self->qhead) {
    qitem *q = self->qhead;
    self->qhead = q->next;
    envelope_free(q->env);
    free(q);
  }
  self->qtail = NULL;
  self->qlen = 0;
}

/* Offers one envelope; takes ownership. Returns false on a gap. */
static bool offer(consumer *self, Kesu__V1__Envelope *env) {
  switch (stream_pos_offer(&self->pos, env->seq)) {
  case SEQ_ACCEPT:
    enqueue(self, env);
    return true;
  case SEQ_DUPLICATE:
    envelope_free(env);
    return true;
  case SEQ_GAP:
  default:
    envelope_free(env);
    return false;
  }
}

static void note_live(consumer *self) {
  bool live = consumer_live(self);
  if (live && !self->was_live)
    log_info("consumer %s<-%s: caught up at seq %" PRIu64 ", live", self->schema, self->producer,
             self->pos.accepted);
  self->was_live = live;
}

static void on_sub(void *sock, zmsg *m, void *arg) {
  (void)sock;
  consumer *self = arg;
  if (!self->loaded) return; /* replay covers it once we know our offset */
  if (m->nframes == 3 && strcmp((char *)m->data[0], "_head") == 0) {
    stream_pos_saw_head(&self->pos, strtoull((char *)m->data[2], NULL, 10));
    if (stream_pos_behind(&self->pos)) request_replay(self);
    note_live(self);
    return;
  }
  if (m->nframes != 2) return;
  Kesu__V1__Envelope *env = envelope_unpack(m->data[1], m->len[1]);
  if (!env) {
    log_warn("consumer %s<-%s: undecodable message on PUB", self->schema, self->producer);
    return;
  }
  if (!offer(self, env)) request_replay(self);
  consumer_flush(self);
}

static void on_replay(void *sock, zmsg *m, void *arg) {
  (void)sock;
  consumer *self = arg;
  if (m->nframes < 2 || strcmp((char *)m->data[0], "EVENTS") != 0) return;
  self->replay_pending = false;
  if (!self->loaded) return;
  stream_pos_saw_head(&self->pos, strtoull((char *)m->data[1], NULL, 10));
  for (int i = 2; i < m->nframes; i++) {
    Kesu__V1__Envelope *env = envelope_unpack(m->data[i], m->len[i]);
    if (!env) {
      log_error("consumer %s<-%s: undecodable replayed event", self->schema, self->producer);
      break;
    }
    if (!offer(self, env)) break;
  }
  consumer_flush(self);
  if (stream_pos_behind(&self->pos)) request_replay(self);
  note_live(self);
}

static void on_batch(const pg_result_set *rs, void *arg) {
  consumer *self = arg;
  self->inflight = false;
  if (rs->ok) {
    uint64_t last = self->batch[self->batch_n - 1]->seq;
    stream_pos_committed(&self->pos, last);
    self->applied += (uint64_t)self->batch_n;
    for (int i = 0; i < self->batch_n; i++) {
      if (self->committed) self->committed(self->batch[i], self->arg);
      envelope_free(self->batch[i]);
    }
    self->batch_n = 0;
    consumer_flush(self);
    if (stream_pos_behind(&self->pos)) request_replay(self);
    note_live(self);
    return;
  }
  log_error("consumer %s<-%s: batch of %d failed (%s): %s — replaying from %" PRIu64, self->schema,
            self->producer, self->batch_n, rs->sqlstate, rs->error, self->pos.committed);
  for (int i = 0; i < self->batch_n; i++) envelope_free(self->batch[i]);
  self->batch_n = 0;
  drop_queue(self);
  stream_pos_rewind(&self->pos);
  /* The stored offset is not ours (a lost reply after commit, or another
   * instance): read it again before going on. */
  if (strcmp(rs->sqlstate, "KS409") == 0 || strcmp(rs->sqlstate, "") == 0) self->loaded = false;
  self->replay_pending = false;
  self->retry_after_ms = mono_ms() + RETRY_MS;
  note_live(self);
}

static void consumer_flush(consumer *self) {
  if (self->inflight || !self->loaded || !self->qhead || !pg_conn_ready(self->pg)) return;
  if (self->linger_ms > 0 && self->qlen < (size_t)self->batch_max) {
    /* Let a short batch fill for up to linger_ms after its first event arrived:
     * fewer, larger transactions downstream when latency matters less. */
    int64_t wait = self->qhead->at_ms + self->linger_ms - mono_ms();
    if (wait > 0) {
      if (!evtimer_pending(self->ev_linger, NULL)) {
        struct timeval tv = {(time_t)(wait / 1000), (suseconds_t)(wait % 1000) * 1000};
        evtimer_add(self->ev_linger, &tv);
      }
      return;
    }
  }
  int n = 0;
  while (self->qhead && n < self->batch_max) {
    qitem *q = self->qhead;
    self->qhead = q->next;
    self->batch[n++] = q->env;
    free(q);
    self->qlen--;
  }
  if (!self->qhead) self->qtail = NULL;
  self->batch_n = n;
  char from[24], to[24];
  snprintf(from, sizeof from, "%" PRIu64, self->pos.committed);
  snprintf(to, sizeof to, "%" PRIu64, self->batch[n - 1]->seq);
  pg_tx *tx = pg_tx_new();
  const char *vals[3] = {self->producer, from, to};
  pg_tx_add(tx, self->sql_advance, 3, vals, NULL, NULL);
  for (int i = 0; i < n; i++) self->apply(tx, self->batch[i], self->arg);
  if (self->batch_end) self->batch_end(tx, self->arg);
  self->inflight = true;
  pg_conn_submit(self->pg, tx, on_batch, self);
}

static void on_loaded(const pg_result_set *rs, void *arg) {
  consumer *self = arg;
  self->loading = false;
  if (!rs->ok) {
    log_warn("consumer %s<-%s: cannot read offset: %s", self->schema, self->producer, rs->error);
    return; /* the tick tries again */
  }
  PGresult *r = rs->res[0];
  uint64_t off = PQntuples(r) ? strtoull(PQgetvalue(r, 0, 0), NULL, 10) : 0;
  drop_queue(self);
  stream_pos_init(&self->pos, off);
  self->loaded = true;
  self->replay_pending = false;
  log_info("consumer %s<-%s: offset %" PRIu64 ", replaying", self->schema, self->producer, off);
  request_replay(self);
}

static void load_offset(consumer *self) {
  if (self->loading || self->inflight) return;
  self->loading = true;
  pg_tx *tx = pg_tx_new();
  const char *vals[1] = {self->producer};
  pg_tx_add(tx, self->sql_load, 1, vals, NULL, NULL);
  pg_conn_submit(self->pg, tx, on_loaded, self);
}

static void on_tick(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  consumer *self = arg;
  if (!self->loaded) {
    if (pg_conn_ready(self->pg)) load_offset(self);
    return;
  }
  if (self->replay_pending && mono_ms() - self->replay_sent_ms > REPLAY_TIMEOUT_MS)
    self->replay_pending = false; /* producer down or reply lost: ask again */
  if (!self->replay_pending && stream_pos_behind(&self->pos)) request_replay(self);
  /* A replay is also the only way to learn the head before the first heartbeat. */
  if (!self->replay_pending && self->replays == 0) request_replay(self);
  consumer_flush(self);
}

static void on_linger(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  consumer *self = arg;
  consumer_flush(self);
}

consumer *consumer_new(struct event_base *base, pg_conn *pg, const consumer_config *cfg) {
  consumer *self = calloc(1, sizeof *self);
  self->base = base;
  self->pg = pg;
  self->schema = strdup(cfg->schema);
  self->producer = strdup(cfg->producer);
  self->batch_max = cfg->batch_max > 0 ? cfg->batch_max : 500;
  {
    char name[96], *p;
    snprintf(name, sizeof name, "KESU_%s_LINGER_MS", cfg->schema);
    for (p = name; *p; p++)
      if (*p >= 'a' && *p <= 'z') *p = (char)(*p - 'a' + 'A');
    self->linger_ms = cfg_long(name, cfg->linger_ms > 0 ? cfg->linger_ms : 0);
  }
  self->ev_linger = evtimer_new(base, on_linger, self);
  self->apply = cfg->apply;
  self->batch_end = cfg->batch_end;
  self->committed = cfg->committed;
  self->arg = cfg->arg;
  self->batch = calloc((size_t)self->batch_max, sizeof *self->batch);
  snprintf(self->sql_advance, sizeof self->sql_advance,
           "SELECT %s.offset_advance($1, $2::bigint, $3::bigint)", cfg->schema);
  snprintf(self->sql_load, sizeof self->sql_load,
           "SELECT last_seq FROM %s.offsets WHERE producer = $1", cfg->schema);
  self->sub = zsock_connect(ZMQ_SUB, cfg->pub_endpoint);
  self->dealer = zsock_connect(ZMQ_DEALER, cfg->replay_endpoint);
  if (!self->sub || !self->dealer) {
    consumer_destroy(&self);
    return NULL;
  }
  zmq_setsockopt(self->sub, ZMQ_SUBSCRIBE, "", 0);
  self->wsub = zwatch_new(base, self->sub, on_sub, self);
  self->wdealer = zwatch_new(base, self->dealer, on_replay, self);
  self->ev_tick = event_new(base, -1, EV_PERSIST, on_tick, self);
  struct timeval tv = {0, TICK_MS * 1000};
  event_add(self->ev_tick, &tv);
  log_info("consumer %s<-%s: SUB %s, replay %s", cfg->schema, cfg->producer, cfg->pub_endpoint,
           cfg->replay_endpoint);
  return self;
}

void consumer_destroy(consumer **selfp) {
  consumer *self = *selfp;
  if (!self) return;
  if (self->ev_tick) event_free(self->ev_tick);
  if (self->ev_linger) event_free(self->ev_linger);
  zwatch_destroy(&self->wsub);
  zwatch_destroy(&self->wdealer);
  zsock_close(&self->sub);
  zsock_close(&self->dealer);
  drop_queue(self);
  for (int i = 0; i < self->batch_n; i++) envelope_free(self->batch[i]);
  free(self->batch);
  free(self->schema);
  free(self->producer);
  free(self);
  *selfp = NULL;
}

uint64_t consumer_offset(const consumer *self) { return self->pos.committed; }
bool consumer_live(const consumer *self) {
  return self->loaded && self->replays > 0 && !self->replay_pending &&
         !stream_pos_behind(&self->pos);
}
uint64_t consumer_applied(const consumer *self) { return self->applied; }
uint64_t consumer_replays(const consumer *self) { return self->replays; }
