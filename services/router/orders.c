/* orders — work orders from intake's ComplaintReceived stream.
 *
 * Each complaint becomes a work order held by the unit the routing rules give
 * its region (longest prefix), with its WorkOrderCreated event, in the
 * consumer's batch transaction (router.create_order: insert and emit only if
 * new). Once committed it waits for a handler in the dispatcher. At start-up
 * every order not yet acknowledged by a handler (state 'created') is loaded
 * back into the dispatcher before the stream is consumed, so a crash loses
 * nothing. Rules are held in memory, reloaded on NOTIFY router_reference.
 */
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "config.h"
#include "dispatcher.h"
#include "log.h"
#include "metrics.h"
#include "router.h"
#include "utf8.h"

static metric *m_created;

static const char SQL_RULES[] =
    "SELECT region_prefix, unit_id, priority FROM router.routing_rules ORDER BY id";
/* with the latest dispatch if it was never acknowledged: it may have reached
 * its handler, which keeps the order for the handler timeout */
static const char SQL_OPEN_ORDERS[] =
    "SELECT w.order_no, w.unit_id, w.region, w.complaint, coalesce(d.dispatch_id::text, ''), "
    "coalesce(d.handler_id, '') FROM router.work_orders w "
    "LEFT JOIN LATERAL (SELECT x.dispatch_id, x.handler_id, x.acked_at FROM router.dispatches x "
    "  WHERE x.order_no = w.order_no ORDER BY x.seq DESC LIMIT 1) d ON d.acked_at IS NULL "
    "WHERE w.state = 'created' ORDER BY w.accepted_at, w.order_no";
static const char SQL_CREATE[] =
    "SELECT router.create_order_v2($1, $2, $3, $4, $5, $6, $7, $8, $9::bigint, $10::bigint, "
    "$11::bytea, $12::uuid, $13::bigint, $14::bytea, $15, $16::int)";

/* Due time handed to the handler: the time promised to the customer, else the
 * hard limit of the tier (R-25: 24 h general, 48 h provincial, 72 h national). */
static int64_t due_at_of(const Kesu__V1__Complaint *c) {
  if (c->promised_by > 0)
    return c->promised_by;
  int64_t hours = c->tier == KESU__V1__TIER__NATIONAL     ? 72
                  : c->tier == KESU__V1__TIER__PROVINCIAL ? 48
                                                          : 24;
  return c->accepted_at + hours * 3600 * 1000;
}

static const char *str(const char *s) { return s ? s : ""; }

static bool utf8_ok(const char *s) { return utf8_valid((const unsigned char *)s, strlen(s)); }

/* The complaint of a ComplaintReceived worth a work order, or NULL. */
static const Kesu__V1__Complaint *complaint_of(const Kesu__V1__Envelope *env) {
  if (env->payload_case != KESU__V1__ENVELOPE__PAYLOAD_COMPLAINT_RECEIVED ||
      !env->complaint_received || !env->complaint_received->complaint)
    return NULL;
  const Kesu__V1__Complaint *c = env->complaint_received->complaint;
  if (!c->order_no || !*c->order_no || !utf8_ok(c->order_no) || !utf8_ok(str(c->region)) ||
      !utf8_ok(str(c->business_type))) {
    log_error("orders: ComplaintReceived seq %" PRIu64 " has no usable order number; skipped",
              env->seq);
    return NULL;
  }
  return c;
}

static unsigned char *pack_complaint(const Kesu__V1__Complaint *c, size_t *len) {
  *len = kesu__v1__complaint__get_packed_size(c);
  unsigned char *buf = malloc(*len ? *len : 1);
  kesu__v1__complaint__pack(c, buf);
  return buf;
}

static void on_apply(pg_tx *tx, const Kesu__V1__Envelope *env, void *arg) {
  router *r = arg;
  const Kesu__V1__Complaint *c = complaint_of(env);
  if (!c)
    return;
  const char *unit = routing_rules_choose(r->rules, str(c->region));
  if (!unit) {
    log_warn("orders: no routing rule matches region %s (order %s); it goes to handlers "
             "serving all units",
             str(c->region), c->order_no);
    unit = "";
  }
  size_t clen;
  unsigned char *cbuf = pack_complaint(c, &clen);

  Kesu__V1__WorkOrderCreated p = KESU__V1__WORK_ORDER_CREATED__INIT;
  p.order_no = c->order_no;
  p.unit_id = (char *)unit;
  p.tier = c->tier;
  p.kind = c->kind;
  p.accepted_at = c->accepted_at;
  p.promised_by = c->promised_by;
  p.region = c->region;
  p.channel = c->channel;
  p.business_type = c->business_type;
  p.stream = c->stream;
  p.customer_level = (char *)(c->customer && c->customer->level ? c->customer->level : "");
  char event_id[37];
  uuid_v4(event_id);
  int64_t now = clock_now_ms();
  Kesu__V1__Envelope out = KESU__V1__ENVELOPE__INIT;
  out.producer = "router";
  out.event_id = event_id;
  out.type = EV_WORK_ORDER_CREATED;
  out.occurred_at = now;
  out.order_no = c->order_no;
  out.region = c->region;
  out.payload_case = KESU__V1__ENVELOPE__PAYLOAD_WORK_ORDER_CREATED;
  out.work_order_created = &p;
  size_t elen;
  unsigned char *ebuf = envelope_pack(&out, &elen);

  char accepted[24], promised[24], now_s[24];
  snprintf(accepted, sizeof accepted, "%" PRId64, c->accepted_at);
  snprintf(promised, sizeof promised, "%" PRId64, c->promised_by);
  snprintf(now_s, sizeof now_s, "%" PRId64, now);
  char prio[16];
  snprintf(prio, sizeof prio, "%d", order_priority(c));
  const char *phone = c->customer && c->customer->phone && utf8_ok(c->customer->phone)
                          ? c->customer->phone
                          : "";
  const char *v[16] = {c->order_no,
                       unit,
                       str(c->region),
                       kind_name(c->kind),
                       stream_name(c->stream),
                       tier_name(c->tier),
                       channel_name(c->channel),
                       str(c->business_type),
                       accepted,
                       promised,
                       (const char *)cbuf,
                       event_id,
                       now_s,
                       (const char *)ebuf,
                       phone,
                       prio};
  int lens[16] = {0};
  int fmts[16] = {0};
  lens[10] = (int)clen;
  fmts[10] = 1;
  lens[13] = (int)elen;
  fmts[13] = 1;
  pg_tx_add(tx, SQL_CREATE, 16, v, lens, fmts);
  free(cbuf);
  free(ebuf);
  free(strmap_put(r->units_pending, c->order_no, strdup(unit)));
}

static void on_committed(const Kesu__V1__Envelope *env, void *arg) {
  router *r = arg;
  const Kesu__V1__Complaint *c = complaint_of(env);
  if (!c)
    return;
  char *unit = strmap_remove(r->units_pending, c->order_no);
  size_t clen;
  unsigned char *cbuf = pack_complaint(c, &clen);
  dispatcher_enqueue(r->dispatcher, c->order_no, unit ? unit : "", str(c->region), cbuf, clen,
                     due_at_of(c));
  free(cbuf);
  free(unit);
  metric_add(m_created, 1);
}

static void start_consumer(router *r) {
  if (r->intake)
    return;
  consumer_config cc = {
      .schema = "router",
      .producer = "intake",
      .pub_endpoint = cfg_endpoint("KESU_INTAKE_PUB", PORT_INTAKE_PUB),
      .replay_endpoint = cfg_endpoint("KESU_INTAKE_REPLAY", PORT_INTAKE_REPLAY),
      .batch_max = 500,
      .apply = on_apply,
      .committed = on_committed,
      .arg = r,
  };
  r->intake = consumer_new(r->base, r->pg, &cc);
  if (!r->intake)
    log_error("orders: cannot start consuming intake's stream");
}

/* --- start-up: orders not yet acknowledged ------------------------------- */

static void on_open_orders(const pg_result_set *rs, void *arg) {
  router *r = arg;
  r->orders_reloading = false;
  if (!rs->ok) {
    log_warn("orders: cannot load open orders: %s", rs->error);
    return; /* the tick tries again */
  }
  PGresult *res = rs->res[0];
  int n = PQntuples(res), held = 0;
  for (int i = 0; i < n; i++) {
    /* Binary results: text columns are their bytes, bytea is raw. */
    const unsigned char *cb = (const unsigned char *)PQgetvalue(res, i, 3);
    size_t clen = (size_t)PQgetlength(res, i, 3);
    Kesu__V1__Complaint *c = kesu__v1__complaint__unpack(NULL, clen, cb);
    if (!c) {
      log_error("orders: stored complaint of %s is undecodable; not dispatched",
                PQgetvalue(res, i, 0));
      continue;
    }
    if (*PQgetvalue(res, i, 4)) {
      held++;
      dispatcher_enqueue_held(r->dispatcher, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
                              PQgetvalue(res, i, 2), cb, clen, due_at_of(c),
                              PQgetvalue(res, i, 4), PQgetvalue(res, i, 5));
    } else {
      dispatcher_enqueue(r->dispatcher, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
                         PQgetvalue(res, i, 2), cb, clen, due_at_of(c));
    }
    kesu__v1__complaint__free_unpacked(c, NULL);
  }
  r->orders_reloaded = true;
  log_info("orders: %d orders not yet acknowledged by a handler queued for dispatch (%d kept "
           "for the handler of their last dispatch)",
           n, held);
  start_consumer(r);
}

typedef struct {
  router *r;
  char *order_no;
} redispatch_ctx;

static void on_redispatch(const pg_result_set *rs, void *arg) {
  redispatch_ctx *c = arg;
  router *r = c->r;
  if (!rs->ok) {
    log_warn("orders: cannot load %s to dispatch it again (%s); the next start does", c->order_no,
             rs->error);
  } else {
    PGresult *res = rs->res[0], *h = rs->res[1];
    /* what the new handler should know: the workflow state and the history */
    int nh = PQntuples(h);
    Kesu__V1__HistoryEntry *e = calloc(nh ? (size_t)nh : 1, sizeof *e);
    Kesu__V1__HistoryEntry **ep = calloc(nh ? (size_t)nh : 1, sizeof *ep);
    for (int i = 0; i < nh; i++) {
      kesu__v1__history_entry__init(&e[i]);
      e[i].order_no = c->order_no;
      e[i].seq = atoi(PQgetvalue(h, i, 0));
      char **f[] = {&e[i].action,    &e[i].actor,   &e[i].actor_unit, &e[i].reason,
                    &e[i].from_unit, &e[i].to_unit, &e[i].answer,     &e[i].from_state,
                    &e[i].to_state};
      int cols[] = {1, 2, 3, 5, 6, 7, 8, 9, 10};
      for (int k = 0; k < 9; k++)
        *f[k] = PQgetvalue(h, i, cols[k]);
      e[i].at = strtoll(PQgetvalue(h, i, 4), NULL, 10);
      ep[i] = &e[i];
    }
    Kesu__V1__WorkOrder x = KESU__V1__WORK_ORDER__INIT;
    x.history = ep;
    x.n_history = (size_t)nh;
    for (int i = 0; i < PQntuples(res); i++) {
      const unsigned char *cb = (const unsigned char *)PQgetvalue(res, i, 3);
      size_t clen = (size_t)PQgetlength(res, i, 3);
      Kesu__V1__Complaint *cp = kesu__v1__complaint__unpack(NULL, clen, cb);
      if (!cp)
        continue;
      x.wf_state = PQgetvalue(res, i, 4);
      size_t xlen = kesu__v1__work_order__get_packed_size(&x);
      unsigned char *xb = malloc(xlen ? xlen : 1);
      kesu__v1__work_order__pack(&x, xb);
      dispatcher_enqueue_extra(r->dispatcher, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
                               PQgetvalue(res, i, 2), cb, clen, due_at_of(cp), xb, xlen);
      free(xb);
      kesu__v1__complaint__free_unpacked(cp, NULL);
    }
    free(ep);
    free(e);
  }
  free(c->order_no);
  free(c);
}

void orders_redispatch(router *r, const char *order_no) {
  redispatch_ctx *c = calloc(1, sizeof *c);
  c->r = r;
  c->order_no = strdup(order_no);
  const char *v[1] = {order_no};
  pg_tx *tx = pg_tx_new();
  pg_tx_add_binary_result(tx,
                          "SELECT order_no, unit_id, region, complaint, wf_state "
                          "FROM router.work_orders WHERE order_no = $1 AND state = 'created'",
                          1, v, NULL, NULL);
  pg_tx_add(tx,
            "SELECT seq, action, actor, actor_unit, router.ts_ms(at), coalesce(reason, ''), "
            "coalesce(from_unit, ''), coalesce(to_unit, ''), coalesce(answer, ''), "
            "coalesce(from_state, ''), coalesce(to_state, '') FROM router.order_history "
            "WHERE order_no = $1 ORDER BY seq",
            1, v, NULL, NULL);
  pg_conn_submit(r->pg, tx, on_redispatch, c);
}

static void reload_open_orders(router *r) {
  if (r->orders_reloading || r->orders_reloaded)
    return;
  r->orders_reloading = true;
  pg_tx *tx = pg_tx_new();
  pg_tx_add_binary_result(tx, SQL_OPEN_ORDERS, 0, NULL, NULL, NULL);
  pg_conn_submit(r->pg, tx, on_open_orders, r);
}

/* --- routing rules ------------------------------------------------------- */

static void on_rules(const pg_result_set *rs, void *arg) {
  router *r = arg;
  r->rules_loading = false;
  if (!rs->ok) {
    log_warn("orders: cannot load routing rules: %s", rs->error);
    return;
  }
  PGresult *res = rs->res[0];
  routing_rules *rules = routing_rules_new();
  for (int i = 0; i < PQntuples(res); i++)
    routing_rules_add(rules, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
                      atoi(PQgetvalue(res, i, 2)));
  routing_rules_destroy(&r->rules);
  r->rules = rules;
  log_info("orders: %zu routing rules loaded", routing_rules_count(rules));
  if (routing_rules_count(rules) == 0)
    log_warn("orders: no routing rules (kesuctl load): every order goes to handlers serving all "
             "units");
  reload_open_orders(r);
}

static void load_rules(router *r) {
  if (r->rules_loading)
    return;
  r->rules_loading = true;
  pg_tx *tx = pg_tx_new();
  pg_tx_add(tx, SQL_RULES, 0, NULL, NULL, NULL);
  pg_conn_submit(r->pg, tx, on_rules, r);
}

static void on_reference(const char *channel, const char *payload, void *arg) {
  (void)channel;
  (void)payload;
  load_rules(arg); /* also runs after every (re)connect */
}

static void on_orders_tick(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  router *r = arg;
  if (!pg_conn_ready(r->pg))
    return;
  if (!r->rules)
    load_rules(r);
  else if (!r->orders_reloaded)
    reload_open_orders(r);
}

void orders_start(router *r) {
  m_created = metric_counter("router_orders_created_total", "work orders created from complaints");
  r->units_pending = strmap_new();
  pg_conn_listen(r->pg, "router_reference", on_reference, r);
  r->orders_tick = event_new(r->base, -1, EV_PERSIST, on_orders_tick, r);
  struct timeval tv = {1, 0};
  event_add(r->orders_tick, &tv);
}

static bool free_value(const char *key, void *value, void *arg) {
  (void)key;
  (void)arg;
  free(value);
  return true;
}

void orders_stop(router *r) {
  consumer_destroy(&r->intake);
  if (r->orders_tick)
    event_free(r->orders_tick);
  r->orders_tick = NULL;
  if (r->units_pending)
    strmap_each(r->units_pending, free_value, NULL);
  strmap_destroy(&r->units_pending);
  strmap_destroy(&r->order_busy);
  routing_rules_destroy(&r->rules);
}
