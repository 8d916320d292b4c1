/* pg — non-blocking libpq connections on the libevent loop: asynchronous
 * connect with back-off, pipelined transactions (one Sync each), LISTEN. */
#include "pg.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"

typedef struct {
  char *sql;
  int nparams;
  char **values;
  int *lengths;
  int *formats;
  int result_format;
} pg_stmt;

struct pg_tx {
  pg_stmt *stmts;
  int n, cap;
  pg_tx_cb cb;
  void *arg;
  PGresult **res;
  int cur;         /* result slot being read */
  int nslots;      /* results expected: one per statement, plus one per Prepare sent */
  int *slot_stmt;  /* slot → statement index; -1-i for the Prepare of statement i */
  bool internal;   /* LISTEN set-up, not the caller's */
  bool read_only;  /* no commit hooks after it */
  struct pg_tx *next;
};

typedef struct {
  char *channel;
  pg_notify_cb cb;
  void *arg;
} pg_listen;

enum { PG_DOWN, PG_CONNECTING, PG_READY };
enum { PREPARED_SLOTS = 512, PREPARED_MAX = 256 };

struct pg_conn {
  struct event_base *base;
  char *conninfo;
  char *name;
  PGconn *conn;
  int state;
  struct event *ev_io;    /* read (persist) while ready; read or write while connecting */
  struct event *ev_write; /* while output waits to be flushed */
  struct event *ev_retry; /* reconnect back-off */
  struct event *ev_kick;  /* run the queue from the loop, never inside submit */
  int backoff_ms;
  pg_tx *head, *tail; /* queued, not sent */
  pg_tx *inflight;
  size_t queued;
  pg_listen *listens;
  int nlistens;
  pg_state_cb state_cb;
  void *state_arg;
  /* Prepared statements of this session, by SQL text: every statement a
   * service repeats is parsed and planned once per connection. */
  struct {
    char *sql;
    int id;
  } prepared[PREPARED_SLOTS];
  int nprepared;
};

static void pg_start_connect(pg_conn *self);
static void pg_run_queue(pg_conn *self);

/* --- transactions ------------------------------------------------------- */

pg_tx *pg_tx_new(void) {
  pg_tx *tx = calloc(1, sizeof *tx);
  return tx;
}

static void stmt_add(pg_tx *tx, const char *sql, int nparams, const char *const *values,
                     const int *lengths, const int *formats, int result_format) {
  if (tx->n == tx->cap) {
    tx->cap = tx->cap ? tx->cap * 2 : 4;
    tx->stmts = realloc(tx->stmts, (size_t)tx->cap * sizeof *tx->stmts);
  }
  pg_stmt *s = &tx->stmts[tx->n++];
  memset(s, 0, sizeof *s);
  s->sql = strdup(sql);
  s->nparams = nparams;
  s->result_format = result_format;
  if (nparams > 0) {
    s->values = calloc((size_t)nparams, sizeof *s->values);
    s->lengths = calloc((size_t)nparams, sizeof *s->lengths);
    s->formats = calloc((size_t)nparams, sizeof *s->formats);
    for (int i = 0; i < nparams; i++) {
      bool binary = formats && formats[i] == 1;
      s->formats[i] = binary ? 1 : 0;
      if (!values[i]) continue; /* SQL NULL */
      size_t len = binary ? (size_t)lengths[i] : strlen(values[i]);
      s->values[i] = malloc(len + 1);
      memcpy(s->values[i], values[i], len);
      s->values[i][len] = '\0';
      s->lengths[i] = (int)len;
    }
  }
}

void pg_tx_add(pg_tx *tx, const char *sql, int nparams, const char *const *values,
               const int *lengths, const int *formats) {
  stmt_add(tx, sql, nparams, values, lengths, formats, 0);
}

void pg_tx_add_binary_result(pg_tx *tx, const char *sql, int nparams, const char *const *values,
                             const int *lengths, const int *formats) {
  stmt_add(tx, sql, nparams, values, lengths, formats, 1);
}

int pg_tx_count(const pg_tx *tx) { return tx->n; }

void pg_tx_destroy(pg_tx **txp) {
  pg_tx *tx = *txp;
  if (!tx) return;
  for (int i = 0; i < tx->n; i++) {
    pg_stmt *s = &tx->stmts[i];
    free(s->sql);
    for (int j = 0; j < s->nparams; j++) free(s->values[j]);
    free(s->values);
    free(s->lengths);
    free(s->formats);
    if (tx->res && tx->res[i]) PQclear(tx->res[i]);
  }
  free(tx->res);
  free(tx->slot_stmt);
  free(tx->stmts);
  free(tx);
  *txp = NULL;
}

enum { COMMIT_HOOKS_MAX = 4 };
typedef struct {
  void (*fn)(void *);
  void *arg;
} commit_hook;
static commit_hook commit_hooks[COMMIT_HOOKS_MAX];
static int ncommit_hooks;

void pg_on_commit(void (*fn)(void *arg), void *arg) {
  if (ncommit_hooks < COMMIT_HOOKS_MAX)
    commit_hooks[ncommit_hooks++] = (commit_hook){fn, arg};
  else
    log_error("pg: more than %d commit hooks; one ignored", COMMIT_HOOKS_MAX);
}

void pg_off_commit(void (*fn)(void *arg), void *arg) {
  for (int i = 0; i < ncommit_hooks; i++)
    if (commit_hooks[i].fn == fn && commit_hooks[i].arg == arg) {
      commit_hooks[i] = commit_hooks[--ncommit_hooks];
      return;
    }
}

void pg_tx_read_only(pg_tx *tx) { tx->read_only = true; }

/* Reports the outcome to the caller, then frees the tx. */
static void tx_finish(pg_tx *tx, bool ok, const char *error) {
  pg_result_set rs = {.ok = ok, .error = error ? error : "", .sqlstate = "", .n = tx->n,
                      .res = tx->res};
  if (!ok && tx->res) {
    for (int i = 0; i < tx->n; i++) {
      PGresult *r = tx->res[i];
      if (r && PQresultStatus(r) == PGRES_FATAL_ERROR) {
        rs.error = PQresultErrorMessage(r);
        const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        rs.sqlstate = st ? st : "";
        break;
      }
    }
  }
  bool hooks = ok && !tx->internal && !tx->read_only;
  if (!tx->internal && tx->n > 0) { /* an empty one never reached the server */
    static metric *m_tx, *m_writes, *m_stmts;
    if (!m_tx) {
      m_tx = metric_counter("pg_transactions_total", "transactions run (one Sync each)");
      m_writes = metric_counter("pg_write_transactions_total",
                                "of those, the ones that may have written (not marked read-only)");
      m_stmts = metric_counter("pg_statements_total", "statements in those transactions");
    }
    metric_add(m_tx, 1);
    metric_add(m_writes, tx->read_only ? 0 : 1);
    metric_add(m_stmts, tx->n);
  }
  if (tx->cb) tx->cb(&rs, tx->arg);
  pg_tx_destroy(&tx);
  if (hooks)
    for (int i = 0; i < ncommit_hooks; i++) commit_hooks[i].fn(commit_hooks[i].arg);
}


/* --- prepared statement cache -------------------------------------------- */

static unsigned hash_sql(const char *s) {
  unsigned h = 2166136261u;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
  return h;
}

/* id of a prepared statement for sql, or 0. */
static int prepared_find(pg_conn *self, const char *sql) {
  for (unsigned i = hash_sql(sql) % PREPARED_SLOTS, k = 0; k < PREPARED_SLOTS;
       i = (i + 1) % PREPARED_SLOTS, k++) {
    if (!self->prepared[i].sql) return 0;
    if (strcmp(self->prepared[i].sql, sql) == 0) return self->prepared[i].id;
  }
  return 0;
}

/* Reserves an id for sql (0 if the cache is full). */
static int prepared_add(pg_conn *self, const char *sql) {
  if (self->nprepared >= PREPARED_MAX) return 0;
  unsigned i = hash_sql(sql) % PREPARED_SLOTS;
  while (self->prepared[i].sql) i = (i + 1) % PREPARED_SLOTS;
  self->prepared[i].sql = strdup(sql);
  self->prepared[i].id = ++self->nprepared;
  return self->prepared[i].id;
}

static void prepared_clear(pg_conn *self) {
  for (int i = 0; i < PREPARED_SLOTS; i++) {
    free(self->prepared[i].sql);
    self->prepared[i].sql = NULL;
    self->prepared[i].id = 0;
  }
  self->nprepared = 0;
}

/* A Prepare did not happen (error, or skipped in an aborted pipeline): forget
 * it, so the next transaction prepares it again. Rebuilds the table (rare). */
static void prepared_forget(pg_conn *self, const char *sql) {
  char *keep[PREPARED_SLOTS];
  int ids[PREPARED_SLOTS], n = 0;
  for (int i = 0; i < PREPARED_SLOTS; i++) {
    if (!self->prepared[i].sql) continue;
    if (strcmp(self->prepared[i].sql, sql) == 0) {
      free(self->prepared[i].sql);
    } else {
      keep[n] = self->prepared[i].sql;
      ids[n++] = self->prepared[i].id;
    }
    self->prepared[i].sql = NULL;
  }
  for (int k = 0; k < n; k++) {
    unsigned i = hash_sql(keep[k]) % PREPARED_SLOTS;
    while (self->prepared[i].sql) i = (i + 1) % PREPARED_SLOTS;
    self->prepared[i].sql = keep[k];
    self->prepared[i].id = ids[k];
  }
}

/* --- connection --------------------------------------------------------- */

static void pg_set_state(pg_conn *self, int state) {
  bool was = self->state == PG_READY;
  self->state = state;
  bool now = state == PG_READY;
  if (was != now && self->state_cb) self->state_cb(now, self->state_arg);
}

static void pg_drop(pg_conn *self, const char *why) {
  if (self->ev_io) {
    event_free(self->ev_io);
    self->ev_io = NULL;
  }
  if (self->ev_write) {
    event_free(self->ev_write);
    self->ev_write = NULL;
  }
  if (self->conn) {
    log_warn("pg %s: connection lost: %s", self->name, why);
    PQfinish(self->conn);
    self->conn = NULL;
  }
  prepared_clear(self);
  pg_set_state(self, PG_DOWN);
  if (self->inflight) {
    pg_tx *tx = self->inflight;
    self->inflight = NULL;
    if (tx->internal)
      pg_tx_destroy(&tx);
    else
      tx_finish(tx, false, "connection to the database lost");
  }
  /* Internal LISTEN transactions are re-made on the next connect. */
  pg_tx **pp = &self->head;
  while (*pp) {
    if ((*pp)->internal) {
      pg_tx *dead = *pp;
      *pp = dead->next;
      self->queued--;
      pg_tx_destroy(&dead);
    } else {
      pp = &(*pp)->next;
    }
  }
  self->tail = NULL;
  for (pg_tx *t = self->head; t; t = t->next) self->tail = t;
  struct timeval tv = {self->backoff_ms / 1000, (self->backoff_ms % 1000) * 1000};
  evtimer_add(self->ev_retry, &tv);
  self->backoff_ms = self->backoff_ms < 5000 ? self->backoff_ms * 2 : 5000;
}

static void pg_on_retry(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  pg_start_connect(arg);
}

static void pg_on_kick(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  pg_run_queue(arg);
}

static void pg_deliver_notifies(pg_conn *self) {
  PGnotify *n;
  while (self->conn && (n = PQnotifies(self->conn))) {
    for (int i = 0; i < self->nlistens; i++)
      if (strcmp(self->listens[i].channel, n->relname) == 0)
        self->listens[i].cb(n->relname, n->extra, self->listens[i].arg);
    PQfreemem(n);
  }
}

/* Reads every result that has arrived for the in-flight transaction. */
static void pg_read_results(pg_conn *self) {
  while (self->conn && self->inflight && !PQisBusy(self->conn)) {
    pg_tx *tx = self->inflight;
    PGresult *r = PQgetResult(self->conn);
    if (!r) {
      /* End of one statement's (or Prepare's) results. */
      if (tx->cur < tx->nslots) tx->cur++;
      continue;
    }
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_PIPELINE_SYNC) {
      PQclear(r);
      bool ok = true;
      for (int i = 0; i < tx->n; i++) {
        ExecStatusType s = tx->res[i] ? PQresultStatus(tx->res[i]) : PGRES_FATAL_ERROR;
        if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) ok = false;
      }
      self->inflight = NULL;
      if (!ok && tx->internal) log_error("pg %s: LISTEN failed", self->name);
      tx_finish(tx, ok, ok ? NULL : "transaction failed");
      continue;
    }
    if (tx->cur < tx->nslots && tx->slot_stmt[tx->cur] < 0) {
      /* The result of a Prepare: keep an error to report, forget a Prepare
       * that did not happen. */
      int i = -1 - tx->slot_stmt[tx->cur];
      if (st != PGRES_COMMAND_OK) {
        prepared_forget(self, tx->stmts[i].sql);
        if (st == PGRES_FATAL_ERROR && !tx->res[i]) {
          tx->res[i] = r;
          r = NULL;
        }
      }
      PQclear(r);
    } else if (tx->cur < tx->nslots) {
      int i = tx->slot_stmt[tx->cur];
      if (tx->res[i] && PQresultStatus(tx->res[i]) == PGRES_FATAL_ERROR) {
        PQclear(r); /* keep the Prepare's error */
      } else {
        if (tx->res[i]) PQclear(tx->res[i]);
        tx->res[i] = r;
      }
    } else {
      PQclear(r);
    }
  }
  if (self->conn && !self->inflight) event_active(self->ev_kick, 0, 0);
}

static void pg_on_write(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  pg_conn *self = arg;
  if (!self->conn) return;
  int r = PQflush(self->conn);
  if (r < 0) {
    pg_drop(self, PQerrorMessage(self->conn));
    return;
  }
  if (r == 0 && self->ev_write) event_del(self->ev_write);
}

static void pg_on_read(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  pg_conn *self = arg;
  if (!self->conn) return;
  if (!PQconsumeInput(self->conn) || PQstatus(self->conn) == CONNECTION_BAD) {
    pg_drop(self, PQerrorMessage(self->conn));
    return;
  }
  pg_read_results(self);
  pg_deliver_notifies(self);
}

static void pg_send(pg_conn *self, pg_tx *tx) {
  tx->res = calloc((size_t)(tx->n > 0 ? tx->n : 1), sizeof *tx->res);
  tx->slot_stmt = calloc((size_t)(2 * tx->n + 1), sizeof *tx->slot_stmt);
  tx->cur = 0;
  tx->nslots = 0;
  for (int i = 0; i < tx->n; i++) {
    pg_stmt *s = &tx->stmts[i];
    int ok;
    int id = tx->internal ? 0 : prepared_find(self, s->sql);
    if (!id && !tx->internal && (id = prepared_add(self, s->sql)) != 0) {
      char name[24];
      snprintf(name, sizeof name, "k%d", id);
      if (!PQsendPrepare(self->conn, name, s->sql, s->nparams, NULL)) {
        self->inflight = tx;
        pg_drop(self, PQerrorMessage(self->conn));
        return;
      }
      tx->slot_stmt[tx->nslots++] = -1 - i;
    }
    if (id) {
      char name[24];
      snprintf(name, sizeof name, "k%d", id);
      ok = PQsendQueryPrepared(self->conn, name, s->nparams, (const char *const *)s->values,
                               s->lengths, s->formats, s->result_format);
    } else {
      ok = PQsendQueryParams(self->conn, s->sql, s->nparams, NULL, (const char *const *)s->values,
                             s->lengths, s->formats, s->result_format);
    }
    if (!ok) {
      self->inflight = tx;
      pg_drop(self, PQerrorMessage(self->conn));
      return;
    }
    tx->slot_stmt[tx->nslots++] = i;
  }
  if (!PQpipelineSync(self->conn)) {
    self->inflight = tx;
    pg_drop(self, PQerrorMessage(self->conn));
    return;
  }
  self->inflight = tx;
  int r = PQflush(self->conn);
  if (r < 0) {
    pg_drop(self, PQerrorMessage(self->conn));
    return;
  }
  if (r == 1) event_add(self->ev_write, NULL);
}

static void pg_run_queue(pg_conn *self) {
  if (self->state != PG_READY || self->inflight || !self->head) return;
  pg_tx *tx = self->head;
  self->head = tx->next;
  if (!self->head) self->tail = NULL;
  tx->next = NULL;
  self->queued--;
  if (tx->n == 0) {
    tx->res = calloc(1, sizeof *tx->res);
    tx_finish(tx, true, NULL);
    event_active(self->ev_kick, 0, 0);
    return;
  }
  pg_send(self, tx);
}

static void pg_enqueue_front(pg_conn *self, pg_tx *tx) {
  tx->next = self->head;
  self->head = tx;
  if (!self->tail) self->tail = tx;
  self->queued++;
}

static void pg_on_connected(pg_conn *self) {
  PQsetnonblocking(self->conn, 1);
  if (!PQenterPipelineMode(self->conn)) {
    pg_drop(self, "cannot enter pipeline mode");
    return;
  }
  if (self->ev_io) event_free(self->ev_io);
  int fd = PQsocket(self->conn);
  self->ev_io = event_new(self->base, fd, EV_READ | EV_PERSIST, pg_on_read, self);
  event_add(self->ev_io, NULL);
  self->ev_write = event_new(self->base, fd, EV_WRITE | EV_PERSIST, pg_on_write, self);
  self->backoff_ms = 100;
  if (self->nlistens > 0) {
    pg_tx *tx = pg_tx_new();
    tx->internal = true;
    for (int i = 0; i < self->nlistens; i++) {
      char sql[128];
      snprintf(sql, sizeof sql, "LISTEN %s", self->listens[i].channel);
      pg_tx_add(tx, sql, 0, NULL, NULL, NULL);
    }
    pg_enqueue_front(self, tx);
  }
  log_info("pg %s: connected", self->name);
  pg_set_state(self, PG_READY);
  /* Listeners catch up on whatever they may have missed while down. */
  for (int i = 0; i < self->nlistens; i++)
    self->listens[i].cb(self->listens[i].channel, "", self->listens[i].arg);
  event_active(self->ev_kick, 0, 0);
}

static void pg_on_connect_io(evutil_socket_t fd, short what, void *arg);

static void pg_poll_connect(pg_conn *self) {
  PostgresPollingStatusType st = PQconnectPoll(self->conn);
  if (self->ev_io) {
    event_free(self->ev_io);
    self->ev_io = NULL;
  }
  switch (st) {
  case PGRES_POLLING_OK:
    pg_on_connected(self);
    return;
  case PGRES_POLLING_FAILED:
    pg_drop(self, PQerrorMessage(self->conn));
    return;
  default: {
    short ev = st == PGRES_POLLING_READING ? EV_READ : EV_WRITE;
    /* The socket may change between polls: make a fresh event each time. */
    self->ev_io = event_new(self->base, PQsocket(self->conn), ev, pg_on_connect_io, self);
    struct timeval tv = {10, 0};
    event_add(self->ev_io, &tv);
  }
  }
}

static void pg_on_connect_io(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  pg_conn *self = arg;
  if (what & EV_TIMEOUT) {
    pg_drop(self, "connect timed out");
    return;
  }
  pg_poll_connect(self);
}

static void pg_start_connect(pg_conn *self) {
  if (self->conn) return;
  self->conn = PQconnectStart(self->conninfo);
  if (!self->conn || PQstatus(self->conn) == CONNECTION_BAD) {
    if (!self->conn) log_error("pg %s: out of memory", self->name);
    pg_drop(self, self->conn ? PQerrorMessage(self->conn) : "out of memory");
    return;
  }
  pg_set_state(self, PG_CONNECTING);
  pg_poll_connect(self);
}

pg_conn *pg_conn_new(struct event_base *base, const char *conninfo, const char *name) {
  pg_conn *self = calloc(1, sizeof *self);
  self->base = base;
  self->conninfo = strdup(conninfo);
  self->name = strdup(name ? name : "db");
  self->backoff_ms = 100;
  self->ev_retry = evtimer_new(base, pg_on_retry, self);
  self->ev_kick = event_new(base, -1, 0, pg_on_kick, self);
  pg_start_connect(self);
  return self;
}

void pg_conn_destroy(pg_conn **selfp) {
  pg_conn *self = *selfp;
  if (!self) return;
  if (self->ev_io) event_free(self->ev_io);
  if (self->ev_write) event_free(self->ev_write);
  event_free(self->ev_retry);
  event_free(self->ev_kick);
  if (self->conn) PQfinish(self->conn);
  prepared_clear(self);
  self->conn = NULL;
  if (self->inflight) pg_tx_destroy(&self->inflight);
  while (self->head) {
    pg_tx *t = self->head;
    self->head = t->next;
    pg_tx_destroy(&t);
  }
  for (int i = 0; i < self->nlistens; i++) free(self->listens[i].channel);
  free(self->listens);
  free(self->conninfo);
  free(self->name);
  free(self);
  *selfp = NULL;
}

bool pg_conn_ready(const pg_conn *self) { return self->state == PG_READY; }

void pg_conn_on_state(pg_conn *self, pg_state_cb cb, void *arg) {
  self->state_cb = cb;
  self->state_arg = arg;
}

void pg_conn_listen(pg_conn *self, const char *channel, pg_notify_cb cb, void *arg) {
  self->listens = realloc(self->listens, (size_t)(self->nlistens + 1) * sizeof *self->listens);
  self->listens[self->nlistens++] = (pg_listen){strdup(channel), cb, arg};
  if (self->state == PG_READY) {
    pg_tx *tx = pg_tx_new();
    tx->internal = true;
    char sql[128];
    snprintf(sql, sizeof sql, "LISTEN %s", channel);
    pg_tx_add(tx, sql, 0, NULL, NULL, NULL);
    pg_enqueue_front(self, tx);
    event_active(self->ev_kick, 0, 0);
  }
}

size_t pg_conn_queued(const pg_conn *self) { return self->queued + (self->inflight ? 1 : 0); }

void pg_conn_submit(pg_conn *self, pg_tx *tx, pg_tx_cb cb, void *arg) {
  tx->cb = cb;
  tx->arg = arg;
  tx->next = NULL;
  if (self->tail)
    self->tail->next = tx;
  else
    self->head = tx;
  self->tail = tx;
  self->queued++;
  event_active(self->ev_kick, 0, 0);
}

PGconn *pg_connect_blocking(const char *conninfo) {
  PGconn *c = PQconnectdb(conninfo);
  if (PQstatus(c) != CONNECTION_OK) {
    log_error("cannot connect to the database: %s", PQerrorMessage(c));
    PQfinish(c);
    return NULL;
  }
  return c;
}
