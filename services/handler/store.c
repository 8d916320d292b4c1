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

/* A dispatched order: new, or a re-dispatch of one stored before. Catching up
 * after a stall ($10), an order another handler holds (or closed) is not taken
 * back on a dispatch that may be stale (no ack either). */
#define ORDER_UPSERT                                                                           \
  "INSERT INTO handler.orders (order_no, unit_id, region, dispatch_id, received_at, due_at, "  \
  "complaint, state, wf_state, handler_id) VALUES ($1, $2, $3, $4::uuid, "                     \
  "handler.ms_ts($5::bigint), handler.ms_ts($6::bigint), $7::jsonb, 'open', NULLIF($8, ''), "  \
  "$9) ON CONFLICT (order_no) DO "                                                             \
  "UPDATE SET unit_id = EXCLUDED.unit_id, dispatch_id = EXCLUDED.dispatch_id, "                \
  "complaint = EXCLUDED.complaint, handler_id = EXCLUDED.handler_id, "                         \
  "former_handlers = CASE WHEN handler.orders.handler_id IS NOT NULL "                         \
  "AND handler.orders.handler_id <> EXCLUDED.handler_id "                                      \
  "AND NOT handler.orders.handler_id = ANY(handler.orders.former_handlers) "                   \
  "THEN array_append(handler.orders.former_handlers, handler.orders.handler_id) "              \
  "ELSE handler.orders.former_handlers END, "                                                  \
  "received_at = EXCLUDED.received_at, due_at = EXCLUDED.due_at, state = 'open', "             \
  "closed_at = NULL, wf_state = coalesce(EXCLUDED.wf_state, handler.orders.wf_state) "         \
  "WHERE handler.orders.dispatch_id IS DISTINCT FROM EXCLUDED.dispatch_id "                    \
  "AND NOT ($10::boolean AND handler.orders.handler_id IS DISTINCT FROM EXCLUDED.handler_id)"
/* History rows as one JSON array (history_json()): one statement however many. */
#define HISTORY_INSERT(param)                                                                  \
  "INSERT INTO handler.order_history (order_no, seq, action, actor, actor_unit, at, reason, "  \
  "from_unit, to_unit, answer, from_state, to_state) SELECT h.order_no, h.seq, h.action, "     \
  "h.actor, h.actor_unit, handler.ms_ts(h.at), NULLIF(h.reason, ''), h.from_unit, h.to_unit, " \
  "NULLIF(h.answer, ''), h.from_state, h.to_state FROM jsonb_to_recordset(" param "::jsonb) "  \
  "AS h(order_no text, seq int, action text, actor text, actor_unit text, at bigint, "         \
  "reason text, from_unit text, to_unit text, answer text, from_state text, to_state text) "   \
  "ON CONFLICT (order_no, seq) DO NOTHING"
static const char SQL_INSERT[] = ORDER_UPSERT;
/* A dispatch with its history: one statement, one round of parse-bind-execute
 * in the handler's (per-order) transaction instead of two. */
static const char SQL_INSERT_WITH_HISTORY[] =
    "WITH o AS (" ORDER_UPSERT " RETURNING 1) " HISTORY_INSERT("$11");
/* An order reclassified by the centre: its copy here takes the new tier, level, VIP
 * flag and priority (complaint->'customer' exists for every stored order). */
static const char SQL_RECLASSIFY[] =
    "UPDATE handler.orders SET complaint = jsonb_set(complaint || jsonb_build_object("
    "'tier', NULLIF($2, ''), 'vip', $4::boolean, 'priority', $5::int), '{customer,level}', "
    "to_jsonb($3::text), true) WHERE order_no = $1";
static const char SQL_WF_STATE[] =
    "UPDATE handler.orders SET wf_state = $2, "
    "state = CASE WHEN $2 IN ('closed', 'archived') AND state = 'open' THEN 'closed' ELSE state END, "
    "closed_at = CASE WHEN $2 IN ('closed', 'archived') "
    "THEN coalesce(closed_at, handler.ms_ts($3::bigint)) "
    "ELSE closed_at END WHERE order_no = $1 AND $2 <> ''";
static const char SQL_HISTORY[] = HISTORY_INSERT("$1");
static const char SQL_RECALL[] =
    "UPDATE handler.orders SET state = 'moved' WHERE order_no = $1 AND state = 'open' "
    "AND unit_id IS DISTINCT FROM $2";

typedef struct stored_order {
  char dispatch_id[37];
  char *order_no, *unit_id, *region, *complaint_json, *wf_state;
  int64_t received_at, due_at;
  unsigned char *history; /* packed kesu.v1.WorkOrder holding only the history; NULL if none */
  size_t history_len;
  bool suspect; /* read while catching up after a stall: stored only if no other holder */
  struct stored_order *next;
} stored_order;

struct order_store {
  pg_conn *pg;
  char *handler_id; /* handler.orders.handler_id of what it stores */
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
  free(s->wf_state);
  free(s->history);
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
    /* a suspect dispatch is not acknowledged: if it is still the router's
     * current one it comes again in 2 s and is taken then */
    if (rs->ok && !s->suspect && router_link_ack(self->link, s->dispatch_id, s->order_no) == 0)
      metric_add(m_acks, 1);
    else if (rs->ok && s->suspect)
      log_info("store: dispatch %s of %s read after a stall: not acknowledged (another "
               "handler may hold the order now)", s->dispatch_id, s->order_no);
    item_free(s);
    n++;
  }
  if (rs->ok)
    metric_add(m_stored, n);
  else
    log_warn("store: %d dispatched orders not stored (%s); the router resends them", n, rs->error);
  flush(self);
}

static char *history_json(Kesu__V1__HistoryEntry *const *hs, size_t n);

static void add_insert(const order_store *self, pg_tx *tx, const stored_order *s) {
  char received[24], due[24];
  snprintf(received, sizeof received, "%" PRId64, s->received_at);
  snprintf(due, sizeof due, "%" PRId64, s->due_at);
  Kesu__V1__WorkOrder *x =
      s->history ? kesu__v1__work_order__unpack(NULL, s->history_len, s->history) : NULL;
  char *rows = x ? history_json(x->history, x->n_history) : NULL;
  if (x)
    kesu__v1__work_order__free_unpacked(x, NULL);
  const char *v[11] = {s->order_no, s->unit_id, s->region,         s->dispatch_id,
                       received,    due,        s->complaint_json, s->wf_state,
                       self->handler_id, s->suspect ? "true" : "false", rows};
  if (rows)
    pg_tx_add(tx, SQL_INSERT_WITH_HISTORY, 11, v, NULL, NULL);
  else
    pg_tx_add(tx, SQL_INSERT, 10, v, NULL, NULL);
  free(rows);
}

static void flush(order_store *self) {
  if (self->busy || !self->head)
    return;
  pg_tx *tx = pg_tx_new();
  stored_order *last = self->head;
  add_insert(self, tx, last);
  size_t n = 1;
  for (; n < BATCH_MAX && last->next; n++) {
    last = last->next;
    add_insert(self, tx, last);
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
  s->suspect = router_link_catching_up(self->link);
  s->due_at = wo->due_at;
  s->wf_state = strdup(text_ok(wo->wf_state) ? wo->wf_state : "");
  if (wo->n_history) {
    Kesu__V1__WorkOrder x = KESU__V1__WORK_ORDER__INIT;
    x.history = wo->history;
    x.n_history = wo->n_history;
    s->history_len = kesu__v1__work_order__get_packed_size(&x);
    s->history = malloc(s->history_len ? s->history_len : 1);
    kesu__v1__work_order__pack(&x, s->history);
  }
  if (self->tail)
    self->tail->next = s;
  else
    self->head = s;
  self->tail = s;
  self->queued++;
  event_active(self->ev_flush, 0,
               0); /* after this loop turn: dispatches arriving together share a commit */
}

/* The entries fit to keep (an order number, a seq, valid UTF-8) as the JSON
 * array HISTORY_INSERT reads; NULL if none is. */
static char *history_json(Kesu__V1__HistoryEntry *const *hs, size_t n) {
  json_t *rows = json_array();
  for (size_t i = 0; i < n; i++) {
    const Kesu__V1__HistoryEntry *h = hs[i];
    const char *f[] = {h->order_no, h->action, h->actor, h->actor_unit, h->reason,
                       h->from_unit, h->to_unit, h->answer, h->from_state, h->to_state};
    bool good = h->order_no && *h->order_no && h->seq > 0;
    for (size_t k = 0; good && k < sizeof f / sizeof *f; k++)
      good = text_ok(f[k]);
    if (!good)
      continue;
    json_array_append_new(
        rows, json_pack("{s:s, s:i, s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:s, s:s}",
                        "order_no", h->order_no, "seq", (int)h->seq, "action", h->action,
                        "actor", h->actor, "actor_unit", h->actor_unit, "at", (json_int_t)h->at,
                        "reason", h->reason, "from_unit", h->from_unit, "to_unit", h->to_unit,
                        "answer", h->answer, "from_state", h->from_state, "to_state",
                        h->to_state));
  }
  char *out = json_array_size(rows) ? json_dumps(rows, JSON_COMPACT) : NULL;
  json_decref(rows);
  return out;
}

void store_add_history(pg_tx *tx, Kesu__V1__HistoryEntry *const *hs, size_t n) {
  char *rows = history_json(hs, n);
  if (!rows)
    return;
  const char *v[1] = {rows};
  pg_tx_add(tx, SQL_HISTORY, 1, v, NULL, NULL);
  free(rows);
}

void store_add_wf_state(pg_tx *tx, const char *order_no, const char *wf_state) {
  if (!text_ok(order_no) || !text_ok(wf_state) || !*wf_state)
    return;
  char now[24];
  snprintf(now, sizeof now, "%" PRId64, clock_now_ms());
  const char *v[3] = {order_no, wf_state, now};
  pg_tx_add(tx, SQL_WF_STATE, 3, v, NULL, NULL);
}

static void on_updated(const pg_result_set *rs, void *arg) {
  char *order_no = arg;
  if (!rs->ok)
    log_warn("store: update of %s not recorded: %s", order_no, rs->error);
  free(order_no);
}

void order_store_update(order_store *self, const Kesu__V1__OrderUpdate *u) {
  if (!text_ok(u->order_no) || !*u->order_no)
    return;
  pg_tx *tx = pg_tx_new();
  store_add_wf_state(tx, u->order_no, u->wf_state);
  store_add_history(tx, u->history, u->n_history);
  if (u->reclassified && text_ok(u->tier) && text_ok(u->customer_level)) {
    /* the queue sorts on complaint->'priority' (handler.priority()) */
    char prio[16];
    snprintf(prio, sizeof prio, "%d", u->priority);
    const char *v[5] = {u->order_no, u->tier, u->customer_level, u->vip ? "true" : "false", prio};
    pg_tx_add(tx, SQL_RECLASSIFY, 5, v, NULL, NULL);
  }
  pg_conn_submit(self->pg, tx, on_updated, strdup(u->order_no));
}

static void on_recalled(const pg_result_set *rs, void *arg) {
  char *order_no = arg;
  if (!rs->ok)
    log_warn("store: recall of %s not recorded: %s", order_no, rs->error);
  else
    log_info("store: order %s moved to another unit", order_no);
  free(order_no);
}

void order_store_recall(order_store *self, const Kesu__V1__Recall *r) {
  if (!text_ok(r->order_no) || !*r->order_no)
    return;
  const char *v[2] = {r->order_no, text_ok(r->holder_unit) ? r->holder_unit : ""};
  pg_tx *tx = pg_tx_new();
  pg_tx_add(tx, SQL_RECALL, 2, v, NULL, NULL);
  pg_conn_submit(self->pg, tx, on_recalled, strdup(r->order_no));
}

order_store *order_store_new(struct event_base *base, pg_conn *pg, router_link *link,
                             const char *handler_id) {
  m_received = metric_counter("handler_dispatches_received_total", "dispatches received");
  m_stored = metric_counter("handler_dispatches_stored_total", "dispatches committed locally");
  m_acks = metric_counter("handler_acks_sent_total", "dispatch acks sent");
  order_store *self = calloc(1, sizeof *self);
  self->pg = pg;
  self->handler_id = strdup(handler_id ? handler_id : "");
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
  free(self->handler_id);
  free(self);
  *selfp = NULL;
}
