/* store — batched, idempotent inserts of dispatched orders; acks after commit. */
#include "store.h"

#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "utf8.h"
#include "views.h"

enum { BATCH_MAX = 500, QUEUE_MAX = 20000 };

static const char SQL_INSERT[] =
    "INSERT INTO handler.orders (order_no, unit_id, region, dispatch_id, received_at, due_at, "
    "complaint, state) VALUES ($1, $2, $3, $4::uuid, handler.ms_ts($5::bigint), "
    "handler.ms_ts($6::bigint), $7::jsonb, 'open') ON CONFLICT (order_no) DO NOTHING";

typedef struct stored_order {
  char dispatch_id[37];
  char *order_no, *unit_id, *region, *complaint_json;
  int64_t received_at, due_at;
  struct stored_order *next;
} stored_order;

struct order_store {
  pg_conn *pg;
  router_link *link;
  struct event *ev_flush;
  stored_order *head, *tail; /* waiting for the next transaction */
  stored_order *batch;       /* in the transaction in flight */
  size_t queued;
  bool busy;
};

static metric *m_received, *m_stored, *m_acks;

static void item_free(stored_order *s) {
  free(s->order_no);
  free(s->unit_id);
  free(s->region);
  free(s->complaint_json);
  free(s);
}

static void flush(order_store *self);

static void on_stored(const pg_result_set *rs, void *arg) {
  order_store *self = arg;
  stored_order *batch = self->batch;
  self->batch = NULL;
  self->busy = false;
  int n = 0;
  while (batch) {
    stored_order *s = batch;
    batch = s->next;
    if (rs->ok && router_link_ack(self->link, s->dispatch_id, s->order_no) == 0)
      metric_add(m_acks, 1);
    item_free(s);
    n++;
  }
  if (rs->ok)
    metric_add(m_stored, n);
  else
    log_warn("store: %d dispatched orders not stored (%s); the router resends them", n, rs->error);
  flush(self);
}

static void add_insert(pg_tx *tx, const stored_order *s) {
  char received[24], due[24];
  snprintf(received, sizeof received, "%" PRId64, s->received_at);
  snprintf(due, sizeof due, "%" PRId64, s->due_at);
  const char *v[7] = {s->order_no, s->unit_id, s->region,        s->dispatch_id,
                      received,    due,        s->complaint_json};
  pg_tx_add(tx, SQL_INSERT, 7, v, NULL, NULL);
}

static void flush(order_store *self) {
  if (self->busy || !self->head)
    return;
  pg_tx *tx = pg_tx_new();
  stored_order *last = self->head;
  add_insert(tx, last);
  size_t n = 1;
  for (; n < BATCH_MAX && last->next; n++) {
    last = last->next;
    add_insert(tx, last);
  }
  self->batch = self->head;
  self->queued -= n;
  self->head = last->next;
  if (!self->head)
    self->tail = NULL;
  last->next = NULL;
  self->busy = true;
  pg_conn_submit(self->pg, tx, on_stored, self);
}

static void on_flush(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  flush(arg);
}

static bool is_uuid(const char *s) {
  if (!s || strlen(s) != 36)
    return false;
  for (int i = 0; i < 36; i++) {
    char c = s[i];
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (dash ? c != '-' : !hex)
      return false;
  }
  return true;
}

static bool text_ok(const char *s) { return s && utf8_valid((const unsigned char *)s, strlen(s)); }

void order_store_dispatch(order_store *self, const Kesu__V1__Dispatch *d) {
  metric_add(m_received, 1);
  const Kesu__V1__WorkOrder *wo = d->order;
  const Kesu__V1__Complaint *c = wo ? wo->complaint : NULL;
  if (!is_uuid(d->dispatch_id) || !c || !c->order_no || !*c->order_no || !text_ok(c->order_no) ||
      !text_ok(wo->unit_id) || !text_ok(c->region)) {
    log_warn("store: malformed dispatch ignored");
    return;
  }
  if (self->queued >= QUEUE_MAX)
    return; /* database behind: the router resends */
  json_t *view = complaint_view(c);
  stored_order *s = calloc(1, sizeof *s);
  snprintf(s->dispatch_id, sizeof s->dispatch_id, "%s", d->dispatch_id);
  s->order_no = strdup(c->order_no);
  s->unit_id = strdup(wo->unit_id);
  s->region = strdup(c->region);
  s->complaint_json = json_dumps(view, JSON_COMPACT);
  json_decref(view);
  s->received_at = clock_now_ms();
  s->due_at = wo->due_at;
  if (self->tail)
    self->tail->next = s;
  else
    self->head = s;
  self->tail = s;
  self->queued++;
  event_active(self->ev_flush, 0,
               0); /* after this loop turn: dispatches arriving together share a commit */
}

order_store *order_store_new(struct event_base *base, pg_conn *pg, router_link *link) {
  m_received = metric_counter("handler_dispatches_received_total", "dispatches received");
  m_stored = metric_counter("handler_dispatches_stored_total", "dispatches committed locally");
  m_acks = metric_counter("handler_acks_sent_total", "dispatch acks sent");
  order_store *self = calloc(1, sizeof *self);
  self->pg = pg;
  self->link = link;
  self->ev_flush = event_new(base, -1, 0, on_flush, self);
  return self;
}

void order_store_set_link(order_store *self, router_link *link) { self->link = link; }

void order_store_destroy(order_store **selfp) {
  order_store *self = *selfp;
  if (!self)
    return;
  event_free(self->ev_flush);
  stored_order *lists[2] = {self->head, self->batch};
  for (int i = 0; i < 2; i++) {
    while (lists[i]) {
      stored_order *s = lists[i];
      lists[i] = s->next;
      item_free(s);
    }
  }
  free(self);
  *selfp = NULL;
}
