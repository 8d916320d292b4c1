/* auth — bearer-token cache over auth.tokens (hashed with SHA-256). */
#include "auth.h"

#include <event2/event.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "log.h"

typedef struct {
  char hash[65];
  auth_ctx ctx;
  char *name, *role, *scope;
} entry;

typedef struct {
  entry *v;
  size_t n;
} table;

enum { MAX_WAITERS = 256 };
/* Reloads asked for by unknown tokens start at most this often, so a stream of bad tokens
 * costs the database ten small queries a second, not one per request. */
#define MISS_RELOAD_GAP_US 100000

struct auth_cache {
  struct event_base *base;
  pg_conn *pg;
  struct event *tick;
  table cur, retired; /* retired kept one more reload so pointers outlive a request */
  bool loaded, loading, again; /* again: a change was announced while a load ran */
  /* callers waiting for the running load (now) or for the one after it (next) */
  struct waiter {
    auth_reload_cb cb;
    void *arg;
  } now[MAX_WAITERS], next[MAX_WAITERS];
  int n_now, n_next;
  int64_t last_start_us; /* monotonic start of the latest load */
  struct event *delay;   /* a throttled reload for waiting callers */
  bool delayed;
};

static int64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void table_free(table *t) {
  for (size_t i = 0; i < t->n; i++) {
    free(t->v[i].name);
    free(t->v[i].role);
    free(t->v[i].scope);
  }
  free(t->v);
  t->v = NULL;
  t->n = 0;
}

static int cmp_entry(const void *a, const void *b) {
  return strcmp(((const entry *)a)->hash, ((const entry *)b)->hash);
}

static void reload(auth_cache *self);
static void reload_for_waiters(auth_cache *self);

/* Wakes the callers that waited for this load, then starts the next one if a change was
 * announced while this one ran (its snapshot may predate the change). */
static void load_done(auth_cache *self) {
  self->loading = false;
  int n = self->n_now;
  struct waiter w[MAX_WAITERS];
  memcpy(w, self->now, (size_t)n * sizeof w[0]);
  memcpy(self->now, self->next, (size_t)self->n_next * sizeof w[0]);
  self->n_now = self->n_next;
  self->n_next = 0;
  if (self->again) {
    self->again = false;
    reload(self);
  } else if (self->n_now) {
    reload_for_waiters(self);
  }
  for (int i = 0; i < n; i++) w[i].cb(w[i].arg);
}

static void on_loaded(const pg_result_set *rs, void *arg) {
  auth_cache *self = arg;
  if (!rs->ok) {
    log_warn("auth: loading tokens failed: %s", rs->error ? rs->error : "?");
    load_done(self);
    return;
  }
  PGresult *r = rs->res[0];
  int n = PQntuples(r);
  table t = {calloc((size_t)n + 1, sizeof(entry)), (size_t)n};
  for (int i = 0; i < n; i++) {
    entry *e = &t.v[i];
    snprintf(e->hash, sizeof e->hash, "%s", PQgetvalue(r, i, 0));
    e->name = strdup(PQgetvalue(r, i, 1));
    e->role = strdup(PQgetvalue(r, i, 2));
    e->scope = strdup(PQgetvalue(r, i, 3));
  }
  qsort(t.v, t.n, sizeof(entry), cmp_entry);
  for (size_t i = 0; i < t.n; i++) {
    t.v[i].ctx.name = t.v[i].name;
    t.v[i].ctx.role = t.v[i].role;
    t.v[i].ctx.scope = t.v[i].scope;
  }
  table_free(&self->retired);
  self->retired = self->cur;
  self->cur = t;
  if (!self->loaded) log_info("auth: %d tokens loaded", n);
  self->loaded = true;
  load_done(self);
}

static void reload(auth_cache *self) {
  if (self->loading) {
    self->again = true;
    return;
  }
  self->loading = true;
  self->last_start_us = mono_us();
  pg_tx *tx = pg_tx_new();
  pg_tx_read_only(tx); /* no outbox drain after it (pg_on_commit) */
  pg_tx_add(tx, "SELECT token_hash, name, role, scope FROM auth.tokens WHERE revoked_at IS NULL", 0,
            NULL, NULL, NULL);
  pg_conn_submit(self->pg, tx, on_loaded, self);
}

/* Starts a load for callers waiting on one now, or at the earliest MISS_RELOAD_GAP_US after
 * the previous load started. */
static void reload_for_waiters(auth_cache *self) {
  if (self->loading || self->delayed) return;
  int64_t wait = self->last_start_us + MISS_RELOAD_GAP_US - mono_us();
  if (wait <= 0) {
    reload(self);
    return;
  }
  struct timeval tv = {(time_t)(wait / 1000000), (suseconds_t)(wait % 1000000)};
  self->delayed = true;
  event_add(self->delay, &tv);
}

static void on_delay(evutil_socket_t fd, short what, void *arg) {
  auth_cache *self = arg;
  self->delayed = false;
  if (self->n_now && !self->loading) reload(self); /* a load running now wakes them itself */
}

static void on_notify(const char *channel, const char *payload, void *arg) { reload(arg); }
static void on_tick(evutil_socket_t fd, short what, void *arg) { reload(arg); }

auth_cache *auth_cache_new(struct event_base *base, pg_conn *pg) {
  auth_cache *self = calloc(1, sizeof *self);
  self->base = base;
  self->pg = pg;
  pg_conn_listen(pg, "auth_tokens", on_notify, self); /* also fires on (re)connect */
  self->tick = event_new(base, -1, EV_PERSIST, on_tick, self);
  self->delay = evtimer_new(base, on_delay, self);
  struct timeval tv = {5, 0};
  event_add(self->tick, &tv);
  return self;
}

int auth_cache_refresh_then(auth_cache *self, auth_reload_cb cb, void *arg) {
  if (!self) return -1;
  if (!self->loading) {
    if (self->n_now >= MAX_WAITERS) return -1;
    self->now[self->n_now++] = (struct waiter){cb, arg};
    reload_for_waiters(self);
  } else {
    if (self->n_next >= MAX_WAITERS) return -1;
    self->next[self->n_next++] = (struct waiter){cb, arg}; /* load_done throttles them */
  }
  return 0;
}

void auth_cache_destroy(auth_cache **selfp) {
  auth_cache *self = *selfp;
  if (!self) return;
  event_free(self->tick);
  event_free(self->delay);
  table_free(&self->cur);
  table_free(&self->retired);
  free(self);
  *selfp = NULL;
}

bool auth_cache_loaded(const auth_cache *self) { return self && self->loaded; }

const auth_ctx *auth_cache_check(auth_cache *self, const char *token) {
  if (!self || !token || !*token) return NULL;
  entry key;
  auth_hash_token(token, key.hash);
  entry *e = bsearch(&key, self->cur.v, self->cur.n, sizeof(entry), cmp_entry);
  return e ? &e->ctx : NULL;
}

void auth_hash_token(const char *token, char out[65]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  EVP_Digest(token, strlen(token), md, &mdlen, EVP_sha256(), NULL);
  static const char hex[] = "0123456789abcdef";
  for (unsigned int i = 0; i < 32; i++) {
    out[2 * i] = hex[md[i] >> 4];
    out[2 * i + 1] = hex[md[i] & 15];
  }
  out[64] = '\0';
}

void auth_new_token(char out[46]) {
  unsigned char rnd[20];
  size_t got = 0;
  while (got < sizeof rnd) {
    ssize_t r = getrandom(rnd + got, sizeof rnd - got, 0);
    if (r > 0) got += (size_t)r;
  }
  static const char hex[] = "0123456789abcdef";
  memcpy(out, "kesu_", 5);
  for (int i = 0; i < 20; i++) {
    out[5 + 2 * i] = hex[rnd[i] >> 4];
    out[5 + 2 * i + 1] = hex[rnd[i] & 15];
  }
  out[45] = '\0';
}

/* "000000"/"" covers everything; otherwise trailing "00" pairs are wildcards:
 * 310000 → prefix "31", 310100 → "3101", 310115 → exact. */
bool auth_scope_covers(const char *scope, const char *region) {
  if (!scope || !*scope || strcmp(scope, "000000") == 0) return true;
  if (!region) return false;
  size_t n = strlen(scope);
  while (n >= 2 && scope[n - 1] == '0' && scope[n - 2] == '0') n -= 2;
  if (n == 0) return true;
  return strncmp(scope, region, n) == 0;
}
