/* dispatcher — work orders to regional handlers over ROUTER/DEALER, with
 * acknowledgements, resends and a batched journal of what was sent and acked. */
#include "dispatcher.h"

#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <zmq.h>

#include "clock.h"
#include "handlers.h"
#include "log.h"
#include "metrics.h"
#include "strmap.h"
#include "utf8.h"
#include "zloop.h"

enum {
  ACK_TIMEOUT_MS = 2000,     /* unacknowledged dispatch: resend (internals.md) */
  HANDLER_TIMEOUT_MS = 3000, /* handler unheard of: gone */
  TICK_MS = 100,
  HEARTBEAT_MS = 1000,
  JOURNAL_BATCH_MAX = 500, /* statements per journal transaction */
  RETRY_MS = 500,
  DEFAULT_CREDIT = 1000,
};

/* ORDER_RECORDING: a new dispatch whose row is being written; sent once committed. */
enum { ORDER_WAITING, ORDER_RECORDING, ORDER_IN_FLIGHT, ORDER_ACKING };
enum { SEND_OK = 0, SEND_GONE = -1, SEND_FULL = -2, SEND_BAD = -3 };

typedef struct work_order work_order;
typedef struct order_list {
  work_order *head, *tail;
  size_t n;
} order_list;

struct work_order {
  char *order_no, *unit_id, *region;
  unsigned char *complaint; /* packed kesu.v1.Complaint */
  size_t complaint_len;
  unsigned char *extra; /* packed kesu.v1.WorkOrder: wf_state, history; NULL if none */
  size_t extra_len;
  int64_t due_at;
  int priority; /* order_priority(): a unit's queue is by priority, then due time */
  int state;
  char dispatch_id[37]; /* the current (or last) dispatch; "" before the first */
  char *handler_id;     /* handler of dispatch_id; NULL before the first */
  bool recorded;        /* dispatch_id's row is committed */
  bool reloaded;        /* held for its handler after a restart, not yet (re)sent: not in
                           the handler's inflight count */
  int64_t sent_ms;      /* monotonic, last send of dispatch_id */
  order_list *list;     /* the unit queue or in-flight list it is on; NULL while acking */
  char *redo_unit;      /* acking, and moved to this unit meanwhile: dispatch again */
  work_order *prev, *next;
};

/* One statement of the journal: a dispatch sent (its row) or an ack. */
typedef struct journal_entry {
  bool ack;
  char dispatch_id[37];
  char *order_no, *handler_id;
  char *unit_id; /* ack: the unit the order was dispatched for */
  int64_t now_ms;
  char event_id[37];
  unsigned char *envelope; /* ack: WorkOrderDispatched to emit; NULL: record the ack only */
  size_t envelope_len;
  struct journal_entry *next;
} journal_entry;

struct dispatcher {
  struct event_base *base;
  pg_conn *pg;
  void *sock;
  zwatch *watch;
  dispatcher_action_fn on_action;
  void *arg;
  dispatcher_gone_fn on_gone; /* a handler is gone: its acknowledged open orders move */
  void *gone_arg;
  handler_set *handlers;
  strmap *orders;       /* order_no -> work_order, every order held */
  strmap *queues;       /* unit_id -> order_list of waiting orders */
  order_list in_flight; /* in send order: the oldest send first */
  order_list recording; /* new dispatches whose rows are being written */
  int64_t record_retry_ms; /* a failed write of dispatch rows: pump again then */
  size_t acking;
  struct event *ev_pump, *ev_flush, *ev_tick;
  journal_entry *jhead, *jtail; /* not yet written */
  journal_entry *jbatch;        /* being written */
  bool jbusy;
  int64_t jretry_ms;
  int64_t heartbeat_ms;
};

static metric *m_sent, *m_resent, *m_acks, *m_dispatched, *m_handlers, *m_waiting, *m_in_flight;

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool is_uuid(const char *s) {
  if (!s || strlen(s) != 36)
    return false;
  for (int i = 0; i < 36; i++) {
    char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-')
        return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
      return false;
    }
  }
  return true;
}

static bool text_ok(const char *s) {
  return s && *s && utf8_valid((const unsigned char *)s, strlen(s));
}

/* --- order lists --------------------------------------------------------- */

static void list_push_back(order_list *l, work_order *o) {
  o->list = l;
  o->next = NULL;
  o->prev = l->tail;
  if (l->tail)
    l->tail->next = o;
  else
    l->head = o;
  l->tail = o;
  l->n++;
}

static void list_push_front(order_list *l, work_order *o) {
  o->list = l;
  o->prev = NULL;
  o->next = l->head;
  if (l->head)
    l->head->prev = o;
  else
    l->tail = o;
  l->head = o;
  l->n++;
}

static void list_remove(work_order *o) {
  order_list *l = o->list;
  if (!l)
    return;
  if (o->prev)
    o->prev->next = o->next;
  else
    l->head = o->next;
  if (o->next)
    o->next->prev = o->prev;
  else
    l->tail = o->prev;
  l->n--;
  o->list = NULL;
  o->prev = o->next = NULL;
}

/* Into its place in a unit's queue: after every order of higher priority, or
 * of the same priority due no later (new orders mostly go last: look from the
 * tail). */
static void queue_insert(order_list *l, work_order *o) {
  work_order *after = l->tail;
  while (after && (after->priority < o->priority ||
                   (after->priority == o->priority && after->due_at > o->due_at)))
    after = after->prev;
  if (!after) {
    list_push_front(l, o);
    return;
  }
  o->list = l;
  o->prev = after;
  o->next = after->next;
  if (after->next)
    after->next->prev = o;
  else
    l->tail = o;
  after->next = o;
  l->n++;
}

static order_list *queue_for(dispatcher *self, const char *unit_id) {
  order_list *q = strmap_get(self->queues, unit_id);
  if (!q) {
    q = calloc(1, sizeof *q);
    strmap_put(self->queues, unit_id, q);
  }
  return q;
}

static void order_free(work_order *o) {
  free(o->order_no);
  free(o->unit_id);
  free(o->region);
  free(o->complaint);
  free(o->extra);
  free(o->redo_unit);
  free(o->handler_id);
  free(o);
}

/* Forgets an order (acknowledged, or impossible to dispatch). */
static void order_drop(dispatcher *self, work_order *o) {
  list_remove(o);
  if (o->state == ORDER_ACKING)
    self->acking--;
  if (o->state == ORDER_IN_FLIGHT || o->state == ORDER_RECORDING) {
    handler_link *h = o->handler_id ? handler_set_find(self->handlers, o->handler_id) : NULL;
    if (h && h->inflight > 0 && !o->reloaded)
      h->inflight--;
  }
  strmap_remove(self->orders, o->order_no);
  order_free(o);
}

static void schedule_pump(dispatcher *self) { event_active(self->ev_pump, 0, 0); }

/* Back to its unit's queue, at the front: it has waited longest. */
static void order_requeue(dispatcher *self, work_order *o) {
  list_remove(o);
  o->state = ORDER_WAITING;
  list_push_front(queue_for(self, o->unit_id), o);
}

/* --- the journal: dispatch rows and acks, many per transaction ----------- */

static void journal_flush(dispatcher *self);

static void journal_push(dispatcher *self, journal_entry *e) {
  e->next = NULL;
  if (self->jtail)
    self->jtail->next = e;
  else
    self->jhead = e;
  self->jtail = e;
  event_active(self->ev_flush, 0, 0); /* after this loop turn: what arrives meanwhile joins */
}

static void journal_entry_free(journal_entry *e) {
  free(e->unit_id);
  free(e->order_no);
  free(e->handler_id);
  free(e->envelope);
  free(e);
}

static void journal_add_statement(pg_tx *tx, const journal_entry *e) {
  char ms[24];
  snprintf(ms, sizeof ms, "%" PRId64, e->now_ms);
  if (!e->ack) {
    const char *v[4] = {e->dispatch_id, e->order_no, e->handler_id, ms};
    pg_tx_add(tx,
              "INSERT INTO router.dispatches (dispatch_id, order_no, handler_id, created_at, "
              "sent_at) VALUES ($1::uuid, $2, $3, router.ms_ts($4::bigint), "
              "router.ms_ts($4::bigint)) ON CONFLICT (dispatch_id) DO NOTHING",
              4, v, NULL, NULL);
    return;
  }
  const char *v[7] = {
      e->dispatch_id,           e->order_no, e->handler_id, ms, e->envelope ? e->event_id : NULL,
      (const char *)e->envelope, e->unit_id ? e->unit_id : ""};
  int lens[7] = {0, 0, 0, 0, 0, (int)e->envelope_len, 0};
  int fmts[7] = {0, 0, 0, 0, 0, 1, 0};
  /* the unit: an ack of a dispatch for a unit the order has since left moves nothing */
  pg_tx_add(tx,
            "SELECT router.ack_dispatch_unit($1::uuid, $2, $3, $4::bigint, $5::uuid, $6::bytea, $7)",
            7, v, lens, fmts);
}

/* A journal entry committed (r: its statement's result). */
static void journal_done(dispatcher *self, journal_entry *e, PGresult *r) {
  if (!e->ack || !e->envelope)
    return;
  if (r && PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't')
    metric_add(m_dispatched, 1);
  work_order *o = strmap_get(self->orders, e->order_no);
  if (o && o->state == ORDER_ACKING) {
    if (o->redo_unit) {
      /* moved to another unit while its ack was being written: dispatch again */
      self->acking--;
      free(o->unit_id);
      o->unit_id = o->redo_unit;
      o->redo_unit = NULL;
      free(o->handler_id);
      o->handler_id = NULL;
      o->state = ORDER_WAITING;
      queue_insert(queue_for(self, o->unit_id), o);
      schedule_pump(self);
      return;
    }
    order_drop(self, o);
  }
}

typedef struct {
  dispatcher *self;
  journal_entry *e;
} single_entry;

static void on_single(const pg_result_set *rs, void *arg) {
  single_entry *se = arg;
  dispatcher *self = se->self;
  journal_entry *e = se->e;
  free(se);
  if (rs->ok) {
    journal_done(self, e, rs->res[0]);
    journal_entry_free(e);
  } else if (!*rs->sqlstate) {
    journal_push(self, e); /* connection lost: try again */
  } else {
    log_error("dispatcher: %s %s of order %s not recorded: %s", e->ack ? "ack" : "dispatch",
              e->dispatch_id, e->order_no, rs->error);
    work_order *o = strmap_get(self->orders, e->order_no);
    /* Leave it to the next start-up's reload rather than loop on it. */
    if (o && e->ack && e->envelope && o->state == ORDER_ACKING)
      order_drop(self, o);
    journal_entry_free(e);
  }
}

static void on_journal(const pg_result_set *rs, void *arg) {
  dispatcher *self = arg;
  journal_entry *batch = self->jbatch;
  self->jbatch = NULL;
  self->jbusy = false;
  if (rs->ok) {
    int i = 0;
    while (batch) {
      journal_entry *e = batch;
      batch = e->next;
      journal_done(self, e, i < rs->n ? rs->res[i] : NULL);
      journal_entry_free(e);
      i++;
    }
  } else if (*rs->sqlstate) {
    /* One bad statement aborts the batch: write each alone so the rest land. */
    log_warn("dispatcher: journal batch failed (%s): %s — retrying one by one", rs->sqlstate,
             rs->error);
    while (batch) {
      journal_entry *e = batch;
      batch = e->next;
      e->next = NULL;
      pg_tx *tx = pg_tx_new();
      journal_add_statement(tx, e);
      single_entry *se = malloc(sizeof *se);
      se->self = self;
      se->e = e;
      pg_conn_submit(self->pg, tx, on_single, se);
    }
  } else {
    /* Connection lost (committed or not: every statement is safe to repeat). */
    log_warn("dispatcher: journal batch not written: %s", rs->error);
    journal_entry *last = batch;
    while (last && last->next)
      last = last->next;
    if (last) {
      last->next = self->jhead;
      if (!self->jhead)
        self->jtail = last;
      self->jhead = batch;
    }
    self->jretry_ms = mono_ms() + RETRY_MS;
    return;
  }
  journal_flush(self);
}

static void journal_flush(dispatcher *self) {
  if (self->jbusy || !self->jhead || !pg_conn_ready(self->pg) || mono_ms() < self->jretry_ms)
    return;
  pg_tx *tx = pg_tx_new();
  journal_entry *first = self->jhead, *last = first;
  journal_add_statement(tx, last);
  for (int n = 1; n < JOURNAL_BATCH_MAX && last->next; n++) {
    last = last->next;
    journal_add_statement(tx, last);
  }
  self->jhead = last->next;
  if (!self->jhead)
    self->jtail = NULL;
  last->next = NULL;
  self->jbatch = first;
  self->jbusy = true;
  pg_conn_submit(self->pg, tx, on_journal, self);
}

static void on_flush(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  journal_flush(arg);
}

/* --- sending ------------------------------------------------------------- */

static int send_router_message(dispatcher *self, const char *handler_id,
                               const Kesu__V1__RouterMessage *m) {
  size_t len = kesu__v1__router_message__get_packed_size(m);
  unsigned char *buf = malloc(len ? len : 1);
  kesu__v1__router_message__pack(m, buf);
  const void *d[2] = {handler_id, buf};
  size_t l[2] = {strlen(handler_id), len};
  int rc = zsend(self->sock, 2, d, l);
  int err = errno;
  free(buf);
  if (rc == 0)
    return SEND_OK;
  return err == EAGAIN ? SEND_FULL : SEND_GONE;
}

static int send_dispatch(dispatcher *self, const work_order *o, handler_link *h) {
  Kesu__V1__Complaint *c = kesu__v1__complaint__unpack(NULL, o->complaint_len, o->complaint);
  if (!c) {
    log_error("dispatcher: order %s has an undecodable complaint; not dispatched", o->order_no);
    return SEND_BAD;
  }
  Kesu__V1__WorkOrder wo = KESU__V1__WORK_ORDER__INIT;
  wo.complaint = c;
  wo.unit_id = o->unit_id;
  wo.due_at = o->due_at;
  Kesu__V1__WorkOrder *x =
      o->extra ? kesu__v1__work_order__unpack(NULL, o->extra_len, o->extra) : NULL;
  if (x) {
    wo.wf_state = x->wf_state;
    wo.history = x->history;
    wo.n_history = x->n_history;
  }
  Kesu__V1__Dispatch d = KESU__V1__DISPATCH__INIT;
  d.dispatch_id = (char *)o->dispatch_id;
  d.order = &wo;
  Kesu__V1__RouterMessage m = KESU__V1__ROUTER_MESSAGE__INIT;
  m.msg_case = KESU__V1__ROUTER_MESSAGE__MSG_DISPATCH;
  m.dispatch = &d;
  int rc = send_router_message(self, h->id, &m);
  kesu__v1__complaint__free_unpacked(c, NULL);
  if (x)
    kesu__v1__work_order__free_unpacked(x, NULL);
  return rc;
}

/* --- handlers ------------------------------------------------------------ */

typedef struct {
  const char *handler_id;
  size_t n;
} fail_ctx;

static bool fail_acking(const char *key, void *value, void *arg) {
  (void)key;
  work_order *o = value;
  fail_ctx *fc = arg;
  if (o->state == ORDER_ACKING && !o->redo_unit && o->handler_id &&
      strcmp(o->handler_id, fc->handler_id) == 0) {
    o->redo_unit = strdup(o->unit_id);
    fc->n++;
  }
  return false;
}

/* A handler is gone: its orders in flight wait for another. */
static void on_handler_gone(handler_link *h, void *arg) {
  dispatcher *self = arg;
  size_t moved = 0;
  for (work_order *o = self->in_flight.head, *next; o; o = next) {
    next = o->next;
    if (o->handler_id && strcmp(o->handler_id, h->id) == 0) {
      order_requeue(self, o);
      moved++;
    }
  }
  log_info("dispatcher: handler %s gone (%s); %zu orders in flight go back to the queue", h->id,
           h->dead ? "link closed" : "no heartbeat", moved);
  /* acknowledged by it, ack being written: once written, dispatched anew */
  fail_ctx fc = {h->id, 0};
  strmap_each(self->orders, fail_acking, &fc);
  if (fc.n)
    log_info("dispatcher: %zu orders acknowledged by %s just before it went are dispatched anew",
             fc.n, h->id);
  /* the orders it acknowledged earlier (router.work_orders.handler_id) */
  if (self->on_gone)
    self->on_gone(h->id, self->gone_arg);
  schedule_pump(self);
}

/* --- the pump: waiting orders to handlers with credit -------------------- */

typedef struct {
  dispatcher *self;
  int64_t now;
  bool dead_found;
} pump_ctx;

static bool pump_unit(const char *unit_id, void *value, void *arg) {
  pump_ctx *pc = arg;
  dispatcher *self = pc->self;
  order_list *q = value;
  while (q->head) {
    handler_link *h = handler_set_pick(self->handlers, unit_id);
    if (!h)
      break;
    work_order *o = q->head;
    list_remove(o);
    bool fresh = !o->handler_id || strcmp(o->handler_id, h->id) != 0;
    if (fresh) {
      /* A new dispatch; the same handler again keeps the dispatch_id. */
      uuid_v4(o->dispatch_id);
      free(o->handler_id);
      o->handler_id = strdup(h->id);
      o->recorded = false;
    }
    o->reloaded = false;
    if (!o->recorded) {
      /* Its row first (this pass's rows in one transaction), then the send:
       * a restart finds every dispatch that may have reached a handler. */
      o->state = ORDER_RECORDING;
      o->sent_ms = 0; /* not yet in a record batch */
      list_push_back(&self->recording, o);
      h->inflight++; /* its credit is taken */
      continue;
    }
    int rc = send_dispatch(self, o, h);
    if (rc == SEND_OK) {
      o->state = ORDER_IN_FLIGHT;
      o->sent_ms = pc->now;
      list_push_back(&self->in_flight, o);
      h->inflight++;
      h->dispatched++;
      metric_add(m_resent, 1);
      continue;
    }
    if (rc == SEND_BAD) {
      order_drop(self, o);
      continue;
    }
    list_push_front(q, o);
    if (rc == SEND_FULL)
      break;        /* its pipe is full: later */
    h->dead = true; /* disconnected: try the next handler */
    pc->dead_found = true;
  }
  return false;
}

/* --- dispatch rows before the send --------------------------------------- */

typedef struct {
  dispatcher *self;
  size_t n;
  char (*ids)[37];
  char **order_nos;
} record_batch;

static void record_batch_free(record_batch *b) {
  for (size_t i = 0; i < b->n; i++)
    free(b->order_nos[i]);
  free(b->order_nos);
  free(b->ids);
  free(b);
}

/* The rows of a record batch are in (ok) or not: send, or back to the queue. */
static void on_recorded(const pg_result_set *rs, void *arg) {
  record_batch *b = arg;
  dispatcher *self = b->self;
  int64_t now = mono_ms();
  bool requeued = false;
  if (!rs->ok) {
    log_warn("dispatcher: %zu dispatch rows not written (%s); the orders wait", b->n, rs->error);
    self->record_retry_ms = now + RETRY_MS;
  }
  for (size_t i = 0; i < b->n; i++) {
    work_order *o = strmap_get(self->orders, b->order_nos[i]);
    if (!o || o->state != ORDER_RECORDING || strcmp(o->dispatch_id, b->ids[i]) != 0)
      continue; /* moved, closed or dispatched anew meanwhile */
    handler_link *h = handler_set_find(self->handlers, o->handler_id);
    if (!rs->ok) {
      if (h && h->inflight > 0)
        h->inflight--;
      order_requeue(self, o); /* same handler next time: same id, row written again */
      continue;
    }
    o->recorded = true;
    int rc = h && !h->dead && handler_link_serves(h, o->unit_id) ? send_dispatch(self, o, h)
                                                                   : SEND_GONE;
    if (rc == SEND_OK || rc == SEND_FULL) {
      /* full: the resend timer sends it again */
      list_remove(o);
      o->state = ORDER_IN_FLIGHT;
      o->sent_ms = now;
      list_push_back(&self->in_flight, o);
      h->dispatched++;
      metric_add(m_sent, 1);
      continue;
    }
    if (rc == SEND_BAD) {
      order_drop(self, o);
      continue;
    }
    if (h) {
      h->dead = true;
      if (h->inflight > 0)
        h->inflight--;
    }
    order_requeue(self, o);
    requeued = true;
  }
  record_batch_free(b);
  zwatch_kick(self->watch);
  if (requeued)
    self->record_retry_ms = now + RETRY_MS;
}

static void record_pass(dispatcher *self) {
  if (!self->recording.head)
    return;
  record_batch *b = calloc(1, sizeof *b);
  b->self = self;
  size_t cap = self->recording.n;
  /* orders stay on the recording list until their batch answers; only new
   * ones (not yet in a batch: sent_ms == 0) go into this one */
  b->ids = calloc(cap ? cap : 1, sizeof *b->ids);
  b->order_nos = calloc(cap ? cap : 1, sizeof *b->order_nos);
  pg_tx *tx = pg_tx_new();
  char ms[24];
  snprintf(ms, sizeof ms, "%" PRId64, clock_now_ms());
  for (work_order *o = self->recording.head; o; o = o->next) {
    if (o->sent_ms == 0 && b->n < cap) {
      const char *v[4] = {o->dispatch_id, o->order_no, o->handler_id, ms};
      pg_tx_add(tx,
                "INSERT INTO router.dispatches (dispatch_id, order_no, handler_id, created_at, "
                "sent_at) VALUES ($1::uuid, $2, $3, router.ms_ts($4::bigint), "
                "router.ms_ts($4::bigint)) ON CONFLICT (dispatch_id) DO NOTHING",
                4, v, NULL, NULL);
      memcpy(b->ids[b->n], o->dispatch_id, 37);
      b->order_nos[b->n] = strdup(o->order_no);
      b->n++;
      o->sent_ms = -1; /* in a batch */
    }
  }
  if (b->n == 0) {
    pg_tx_destroy(&tx);
    record_batch_free(b);
    return;
  }
  pg_conn_submit(self->pg, tx, on_recorded, b);
}

static void pump(dispatcher *self) {
  if (handler_set_count(self->handlers) == 0)
    return;
  pump_ctx pc = {self, mono_ms(), false};
  strmap_each(self->queues, pump_unit, &pc);
  record_pass(self);
  zwatch_kick(self->watch);
  if (pc.dead_found) {
    handler_set_expire(self->handlers, pc.now, HANDLER_TIMEOUT_MS, on_handler_gone, self);
    schedule_pump(self);
  }
}

static void on_pump(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  pump(arg);
}

/* --- incoming ------------------------------------------------------------ */

static unsigned char *pack_dispatched(const work_order *o, const char *handler_id,
                                      const char *dispatch_id, char event_id[37], size_t *len) {
  Kesu__V1__WorkOrderDispatched p = KESU__V1__WORK_ORDER_DISPATCHED__INIT;
  p.order_no = o->order_no;
  p.unit_id = o->unit_id;
  p.handler_id = (char *)handler_id;
  p.dispatch_id = (char *)dispatch_id;
  uuid_v4(event_id);
  Kesu__V1__Envelope env = KESU__V1__ENVELOPE__INIT;
  env.producer = "router";
  env.event_id = event_id;
  env.type = EV_WORK_ORDER_DISPATCHED;
  env.occurred_at = clock_now_ms();
  env.order_no = o->order_no;
  env.region = o->region;
  env.payload_case = KESU__V1__ENVELOPE__PAYLOAD_WORK_ORDER_DISPATCHED;
  env.work_order_dispatched = &p;
  return envelope_pack(&env, len);
}

static void on_ack(dispatcher *self, handler_link *from, const char *handler_id,
                   const Kesu__V1__DispatchAck *a) {
  if (!is_uuid(a->dispatch_id) || !text_ok(a->order_no)) {
    log_warn("dispatcher: malformed ack from %s", handler_id);
    return;
  }
  metric_add(m_acks, 1);
  if (from)
    from->acked++;
  journal_entry *e = calloc(1, sizeof *e);
  e->ack = true;
  snprintf(e->dispatch_id, sizeof e->dispatch_id, "%s", a->dispatch_id);
  e->order_no = strdup(a->order_no);
  e->handler_id = strdup(handler_id);
  e->now_ms = clock_now_ms();
  work_order *o = strmap_get(self->orders, a->order_no);
  /* an ack of an earlier dispatch of an order dispatched again is only recorded */
  if (o && o->state != ORDER_ACKING && *o->dispatch_id &&
      strcmp(o->dispatch_id, a->dispatch_id) != 0)
    o = NULL;
  if (o && o->state != ORDER_ACKING) {
    if (o->state == ORDER_RECORDING)
    {
      journal_push(self, e); /* cannot be: its dispatch is not sent yet */
      return;
    }
    if (o->state == ORDER_IN_FLIGHT && !o->reloaded) {
      handler_link *h = handler_set_find(self->handlers, o->handler_id);
      if (h && h->inflight > 0)
        h->inflight--;
    }
    o->reloaded = false;
    list_remove(o);
    o->state = ORDER_ACKING;
    self->acking++;
    e->envelope = pack_dispatched(o, handler_id, e->dispatch_id, e->event_id, &e->envelope_len);
    e->unit_id = strdup(o->unit_id);
    schedule_pump(self); /* credit came back */
  }
  /* Otherwise: a duplicate, a late ack of an earlier dispatch, or an order
   * this process does not hold (a restart reloads it if still undispatched):
   * only the ack is recorded. */
  journal_push(self, e);
}

static void on_hello(dispatcher *self, const char *handler_id, const Kesu__V1__Hello *hello,
                     int64_t now) {
  bool known = handler_set_find(self->handlers, handler_id) != NULL;
  if (hello->handler_id && *hello->handler_id && strcmp(hello->handler_id, handler_id) != 0 &&
      !known)
    log_warn("dispatcher: Hello names %s but the link's identity is %s; using the identity",
             hello->handler_id, handler_id);
  size_t n = 0;
  const char **units = calloc(hello->n_units ? hello->n_units : 1, sizeof *units);
  for (size_t i = 0; i < hello->n_units; i++)
    if (text_ok(hello->units[i]))
      units[n++] = hello->units[i];
  handler_link *h = handler_set_hello(self->handlers, handler_id, units, n,
                                      hello->credit ? hello->credit : DEFAULT_CREDIT, now);
  free(units);
  if (!known) {
    log_info("dispatcher: handler %s connected (%zu units%s, credit %u)", handler_id, h->nunits,
             h->all_units ? ", all" : "", h->credit);
    /* orders it held before a restart of ours: the same dispatch again now */
    size_t again = 0;
    work_order *last = self->in_flight.tail;
    for (work_order *o = self->in_flight.head, *next; o; o = next) {
      next = o == last ? NULL : o->next;
      if (!o->reloaded || strcmp(o->handler_id, h->id) != 0 ||
          !handler_link_serves(h, o->unit_id))
        continue;
      if (send_dispatch(self, o, h) != SEND_OK)
        break;
      o->reloaded = false;
      h->inflight++;
      o->sent_ms = now;
      list_remove(o);
      list_push_back(&self->in_flight, o);
      again++;
    }
    if (again)
      log_info("dispatcher: %zu orders sent again to %s under their earlier dispatch ids", again,
               handler_id);
  }
  schedule_pump(self);
}

static void on_message(void *sock, zmsg *m, void *arg) {
  (void)sock;
  dispatcher *self = arg;
  if (m->nframes != 2) {
    log_warn("dispatcher: message with %d frames ignored", m->nframes);
    return;
  }
  const char *handler_id = (const char *)m->data[0];
  if (m->len[0] == 0 || strlen(handler_id) != m->len[0] || !text_ok(handler_id)) {
    log_warn("dispatcher: message from a link without a readable handler id ignored");
    return;
  }
  Kesu__V1__HandlerMessage *msg = kesu__v1__handler_message__unpack(NULL, m->len[1], m->data[1]);
  if (!msg) {
    log_warn("dispatcher: undecodable message from %s", handler_id);
    return;
  }
  int64_t now = mono_ms();
  handler_link *h = handler_set_find(self->handlers, handler_id);
  if (h)
    h->last_seen_ms = now;
  switch (msg->msg_case) {
  case KESU__V1__HANDLER_MESSAGE__MSG_HELLO: on_hello(self, handler_id, msg->hello, now); break;
  case KESU__V1__HANDLER_MESSAGE__MSG_HEARTBEAT:
    break; /* a handler we do not know says Hello within a second */
  case KESU__V1__HANDLER_MESSAGE__MSG_ACK: on_ack(self, h, handler_id, msg->ack); break;
  case KESU__V1__HANDLER_MESSAGE__MSG_ACTION:
    if (self->on_action)
      self->on_action(handler_id, msg->action, self->arg);
    break;
  default: log_warn("dispatcher: unknown message from %s", handler_id);
  }
  kesu__v1__handler_message__free_unpacked(msg, NULL);
}

/* --- timers: resends, expiry, heartbeats --------------------------------- */

static void send_heartbeats(dispatcher *self) {
  Kesu__V1__Heartbeat hb = KESU__V1__HEARTBEAT__INIT;
  hb.handler_id = "router";
  Kesu__V1__RouterMessage m = KESU__V1__ROUTER_MESSAGE__INIT;
  m.msg_case = KESU__V1__ROUTER_MESSAGE__MSG_HEARTBEAT;
  m.heartbeat = &hb;
  for (size_t i = 0; i < handler_set_count(self->handlers); i++) {
    handler_link *h = handler_set_at(self->handlers, i);
    if (send_router_message(self, h->id, &m) == SEND_GONE)
      h->dead = true;
  }
}

typedef struct {
  size_t waiting;
} count_ctx;

static bool count_waiting(const char *key, void *value, void *arg) {
  (void)key;
  ((count_ctx *)arg)->waiting += ((order_list *)value)->n;
  return false;
}

static void on_tick(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  dispatcher *self = arg;
  int64_t now = mono_ms();
  bool requeued = false;
  /* Unacknowledged for 2 s: the same dispatch again if its handler is still
   * there; otherwise the order waits for another handler. */
  work_order *o;
  while ((o = self->in_flight.head) && now - o->sent_ms >= ACK_TIMEOUT_MS) {
    list_remove(o);
    handler_link *h = handler_set_find(self->handlers, o->handler_id);
    if (h && !h->dead && handler_link_serves(h, o->unit_id)) {
      int rc = send_dispatch(self, o, h);
      if (rc == SEND_OK || rc == SEND_FULL) {
        if (rc == SEND_OK)
          metric_add(m_resent, 1);
        if (o->reloaded) {
          o->reloaded = false;
          h->inflight++;
        }
        o->sent_ms = now;
        list_push_back(&self->in_flight, o);
        continue;
      }
      if (rc == SEND_BAD) {
        order_drop(self, o);
        continue;
      }
      h->dead = true;
    }
    if (h && h->inflight > 0 && !o->reloaded)
      h->inflight--;
    if (o->reloaded)
      log_info("dispatcher: order %s: its handler %s did not come back; dispatched anew",
               o->order_no, o->handler_id);
    o->reloaded = false;
    order_requeue(self, o);
    requeued = true;
  }
  if (now - self->heartbeat_ms >= HEARTBEAT_MS) {
    self->heartbeat_ms = now;
    send_heartbeats(self);
  }
  zwatch_kick(self->watch);
  if (handler_set_expire(self->handlers, now, HANDLER_TIMEOUT_MS, on_handler_gone, self) > 0)
    requeued = true;
  if (requeued)
    schedule_pump(self);
  journal_flush(self); /* a retry after a lost connection */
  if (self->record_retry_ms && now >= self->record_retry_ms) {
    self->record_retry_ms = 0;
    schedule_pump(self);
  }
  count_ctx cc = {0};
  strmap_each(self->queues, count_waiting, &cc);
  metric_set(m_waiting, (int64_t)cc.waiting);
  metric_set(m_in_flight, (int64_t)self->in_flight.n);
  metric_set(m_handlers, (int64_t)handler_set_count(self->handlers));
}

/* --- API ----------------------------------------------------------------- */

dispatcher *dispatcher_new(struct event_base *base, pg_conn *pg, const char *endpoint,
                           dispatcher_action_fn on_action, void *arg) {
  m_sent = metric_counter("router_dispatches_sent_total", "dispatches sent (new dispatch ids)");
  m_resent = metric_counter("router_dispatches_resent_total", "dispatches sent again");
  m_acks = metric_counter("router_dispatch_acks_total", "acks received from handlers");
  m_dispatched =
      metric_counter("router_orders_dispatched_total", "orders acknowledged (WorkOrderDispatched)");
  m_handlers = metric_gauge("router_handlers", "live handlers");
  m_waiting = metric_gauge("router_orders_waiting", "orders waiting for a handler");
  m_in_flight = metric_gauge("router_orders_in_flight", "orders dispatched, not yet acked");

  void *sock = zsock_new(ZMQ_ROUTER);
  if (!sock)
    return NULL;
  int one = 1;
  /* Unknown or vanished handler: fail the send (EHOSTUNREACH) instead of
   * dropping it silently; a reconnecting handler takes over its identity. */
  zmq_setsockopt(sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
  zmq_setsockopt(sock, ZMQ_ROUTER_HANDOVER, &one, sizeof one);
  if (zmq_bind(sock, endpoint) != 0) {
    log_error("dispatcher: cannot bind %s: %s", endpoint, zmq_strerror(errno));
    zmq_close(sock);
    return NULL;
  }
  dispatcher *self = calloc(1, sizeof *self);
  self->base = base;
  self->pg = pg;
  self->sock = sock;
  self->on_action = on_action;
  self->arg = arg;
  self->handlers = handler_set_new();
  self->orders = strmap_new();
  self->queues = strmap_new();
  self->ev_pump = event_new(base, -1, 0, on_pump, self);
  self->ev_flush = event_new(base, -1, 0, on_flush, self);
  self->ev_tick = event_new(base, -1, EV_PERSIST, on_tick, self);
  struct timeval tv = {0, TICK_MS * 1000};
  event_add(self->ev_tick, &tv);
  self->watch = zwatch_new(base, sock, on_message, self);
  log_info("dispatcher: ROUTER %s", endpoint);
  return self;
}

static bool free_order(const char *key, void *value, void *arg) {
  (void)key;
  (void)arg;
  order_free(value);
  return true;
}

static bool free_queue(const char *key, void *value, void *arg) {
  (void)key;
  (void)arg;
  free(value);
  return true;
}

void dispatcher_destroy(dispatcher **selfp) {
  dispatcher *self = *selfp;
  if (!self)
    return;
  zwatch_destroy(&self->watch);
  event_free(self->ev_pump);
  event_free(self->ev_flush);
  event_free(self->ev_tick);
  zsock_close(&self->sock);
  strmap_each(self->orders, free_order, NULL);
  strmap_destroy(&self->orders);
  strmap_each(self->queues, free_queue, NULL);
  strmap_destroy(&self->queues);
  handler_set_destroy(&self->handlers);
  /* pg_conn_destroy never runs callbacks: a batch in flight is still ours. */
  journal_entry *lists[2] = {self->jhead, self->jbatch};
  for (int i = 0; i < 2; i++) {
    while (lists[i]) {
      journal_entry *e = lists[i];
      lists[i] = e->next;
      journal_entry_free(e);
    }
  }
  free(self);
  *selfp = NULL;
}

void dispatcher_enqueue(dispatcher *self, const char *order_no, const char *unit_id,
                        const char *region, const unsigned char *complaint, size_t complaint_len,
                        int64_t due_at) {
  dispatcher_enqueue_extra(self, order_no, unit_id, region, complaint, complaint_len, due_at, NULL,
                           0);
}

void dispatcher_enqueue_extra(dispatcher *self, const char *order_no, const char *unit_id,
                              const char *region, const unsigned char *complaint,
                              size_t complaint_len, int64_t due_at, const unsigned char *extra,
                              size_t extra_len) {
  work_order *held = strmap_get(self->orders, order_no);
  if (held) {
    const char *unit = unit_id ? unit_id : "";
    if (strcmp(held->unit_id, unit) == 0 && !held->redo_unit)
      return;
    /* the order moved to another unit while still held here */
    free(held->extra);
    held->extra = NULL;
    held->extra_len = 0;
    if (extra) {
      held->extra = malloc(extra_len ? extra_len : 1);
      memcpy(held->extra, extra, extra_len);
      held->extra_len = extra_len;
    }
    if (held->state == ORDER_ACKING) {
      free(held->redo_unit);
      held->redo_unit = strdup(unit);
      return;
    }
    if ((held->state == ORDER_IN_FLIGHT || held->state == ORDER_RECORDING) && !held->reloaded) {
      handler_link *h = handler_set_find(self->handlers, held->handler_id);
      if (h && h->inflight > 0)
        h->inflight--;
    }
    held->reloaded = false;
    list_remove(held);
    free(held->unit_id);
    held->unit_id = strdup(unit);
    free(held->handler_id);
    held->handler_id = NULL; /* a new dispatch id */
    held->state = ORDER_WAITING;
    queue_insert(queue_for(self, held->unit_id), held);
    schedule_pump(self);
    return;
  }
  work_order *o = calloc(1, sizeof *o);
  o->order_no = strdup(order_no);
  o->unit_id = strdup(unit_id ? unit_id : "");
  o->region = strdup(region ? region : "");
  o->complaint = malloc(complaint_len ? complaint_len : 1);
  memcpy(o->complaint, complaint, complaint_len);
  o->complaint_len = complaint_len;
  if (extra) {
    o->extra = malloc(extra_len ? extra_len : 1);
    memcpy(o->extra, extra, extra_len);
    o->extra_len = extra_len;
  }
  o->due_at = due_at;
  Kesu__V1__Complaint *c = kesu__v1__complaint__unpack(NULL, complaint_len, complaint);
  if (c) {
    o->priority = order_priority(c);
    kesu__v1__complaint__free_unpacked(c, NULL);
  }
  o->state = ORDER_WAITING;
  strmap_put(self->orders, o->order_no, o);
  queue_insert(queue_for(self, o->unit_id), o);
  schedule_pump(self);
}

void dispatcher_enqueue_held(dispatcher *self, const char *order_no, const char *unit_id,
                             const char *region, const unsigned char *complaint,
                             size_t complaint_len, int64_t due_at, const char *dispatch_id,
                             const char *handler_id) {
  dispatcher_enqueue_held_extra(self, order_no, unit_id, region, complaint, complaint_len, due_at,
                                dispatch_id, handler_id, NULL, 0);
}

void dispatcher_enqueue_held_extra(dispatcher *self, const char *order_no, const char *unit_id,
                                   const char *region, const unsigned char *complaint,
                                   size_t complaint_len, int64_t due_at, const char *dispatch_id,
                                   const char *handler_id, const unsigned char *extra,
                                   size_t extra_len) {
  if (!dispatch_id || !is_uuid(dispatch_id) || !handler_id || !text_ok(handler_id) ||
      strmap_get(self->orders, order_no)) {
    dispatcher_enqueue_extra(self, order_no, unit_id, region, complaint, complaint_len, due_at,
                             extra, extra_len);
    return;
  }
  dispatcher_enqueue_extra(self, order_no, unit_id, region, complaint, complaint_len, due_at, extra,
                           extra_len);
  work_order *o = strmap_get(self->orders, order_no);
  if (!o || o->state != ORDER_WAITING)
    return;
  list_remove(o);
  snprintf(o->dispatch_id, sizeof o->dispatch_id, "%s", dispatch_id);
  free(o->handler_id);
  o->handler_id = strdup(handler_id);
  o->recorded = true;
  o->state = ORDER_IN_FLIGHT;
  handler_link *h = handler_set_find(self->handlers, handler_id);
  if (h && !h->dead && handler_link_serves(h, o->unit_id) &&
      send_dispatch(self, o, h) == SEND_OK) {
    /* its handler is here already: the same dispatch again at once */
    h->inflight++;
    o->sent_ms = mono_ms();
    list_push_back(&self->in_flight, o);
    return;
  }
  o->reloaded = true;
  /* first looked at by the resend timer after the handler timeout (or sent
   * as soon as the handler says Hello) */
  o->sent_ms = mono_ms() + HANDLER_TIMEOUT_MS - ACK_TIMEOUT_MS;
  list_push_back(&self->in_flight, o);
}

void dispatcher_forget(dispatcher *self, const char *order_no) {
  work_order *o = strmap_get(self->orders, order_no);
  if (!o)
    return;
  if (o->state == ORDER_ACKING) {
    free(o->redo_unit); /* dropped once its ack is written */
    o->redo_unit = NULL;
    return;
  }
  order_drop(self, o);
}

void dispatcher_set_gone(dispatcher *self, dispatcher_gone_fn fn, void *arg) {
  self->on_gone = fn;
  self->gone_arg = arg;
}

bool dispatcher_handler_live(dispatcher *self, const char *handler_id) {
  handler_link *h = handler_id ? handler_set_find(self->handlers, handler_id) : NULL;
  return h && !h->dead;
}

bool dispatcher_pending(dispatcher *self, const char *order_no) {
  work_order *o = strmap_get(self->orders, order_no);
  return o && (o->state == ORDER_WAITING || o->state == ORDER_RECORDING || o->reloaded);
}

const char *dispatcher_handler_of(dispatcher *self, const char *order_no) {
  work_order *o = strmap_get(self->orders, order_no);
  if (!o || (o->state != ORDER_IN_FLIGHT && o->state != ORDER_ACKING) || o->reloaded)
    return NULL;
  return o->handler_id;
}

int dispatcher_reply(dispatcher *self, const char *handler_id, const Kesu__V1__ActionResult *res) {
  Kesu__V1__RouterMessage m = KESU__V1__ROUTER_MESSAGE__INIT;
  m.msg_case = KESU__V1__ROUTER_MESSAGE__MSG_ACTION_RESULT;
  m.action_result = (Kesu__V1__ActionResult *)res;
  int rc = send_router_message(self, handler_id, &m);
  zwatch_kick(self->watch);
  if (rc != SEND_OK) {
    log_warn("dispatcher: result of action %s not delivered to %s (it will resend)", res->action_id,
             handler_id);
    return -1;
  }
  return 0;
}

void dispatcher_recall(dispatcher *self, const char *handler_id, const char *order_no,
                       const char *holder_unit) {
  Kesu__V1__Recall rc = KESU__V1__RECALL__INIT;
  rc.order_no = (char *)order_no;
  rc.holder_unit = (char *)holder_unit;
  Kesu__V1__RouterMessage m = KESU__V1__ROUTER_MESSAGE__INIT;
  m.msg_case = KESU__V1__ROUTER_MESSAGE__MSG_RECALL;
  m.recall = &rc;
  if (send_router_message(self, handler_id, &m) != SEND_OK)
    log_warn("dispatcher: recall of %s not delivered to %s", order_no, handler_id);
  zwatch_kick(self->watch);
}

void dispatcher_update(dispatcher *self, const char *handler_id, const Kesu__V1__OrderUpdate *u) {
  Kesu__V1__RouterMessage m = KESU__V1__ROUTER_MESSAGE__INIT;
  m.msg_case = KESU__V1__ROUTER_MESSAGE__MSG_UPDATE;
  m.update = (Kesu__V1__OrderUpdate *)u;
  if (send_router_message(self, handler_id, &m) != SEND_OK)
    log_warn("dispatcher: update of %s not delivered to %s", u->order_no, handler_id);
  zwatch_kick(self->watch);
}

json_t *dispatcher_handlers_json(dispatcher *self) {
  json_t *arr = json_array();
  int64_t now = mono_ms();
  for (size_t i = 0; i < handler_set_count(self->handlers); i++) {
    handler_link *h = handler_set_at(self->handlers, i);
    json_t *units = json_array();
    for (size_t k = 0; k < h->nunits; k++)
      json_array_append_new(units, json_string(h->units[k]));
    json_array_append_new(
        arr, json_pack("{s:s, s:o, s:b, s:I, s:I, s:I, s:I, s:I, s:I}", "handler_id", h->id,
                       "units", units, "all_units", h->all_units, "credit", (json_int_t)h->credit,
                       "in_flight", (json_int_t)h->inflight, "dispatched",
                       (json_int_t)h->dispatched, "acked", (json_int_t)h->acked,
                       "connected_seconds", (json_int_t)((now - h->connected_ms) / 1000),
                       "last_seen_ms_ago", (json_int_t)(now - h->last_seen_ms)));
  }
  return arr;
}

size_t dispatcher_waiting(const dispatcher *self) {
  return strmap_size(self->orders) - self->in_flight.n - self->acking;
}

size_t dispatcher_in_flight(const dispatcher *self) { return self->in_flight.n; }
