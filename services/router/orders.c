/* orders — work orders from intake's ComplaintReceived stream.
 *
 * Each complaint becomes a work order held by the unit of the most specific
 * routing rule (rules.h: region prefix, business line/type, problem type,
 * channel, customer level), with its WorkOrderCreated event, in the
 * consumer's batch transaction (router.create_order: insert and emit only if
 * new). Once committed it waits for a handler in the dispatcher. At start-up
 * every order not yet acknowledged by a handler (state 'created') is loaded
 * back into the dispatcher before the stream is consumed, so a crash loses
 * nothing. Rules are held in memory, reloaded on NOTIFY router_reference.
 * Failover: the open orders a gone handler had acknowledged are dispatched
 * again (orders_failover: on the dispatcher's gone callback, and at start-up
 * for every holder not connected within FAILOVER_GRACE_MS).
 */
#include <event2/event.h>
#include <jansson.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "config.h"
#include "dispatcher.h"
#include "log.h"
#include "metrics.h"
#include "router.h"
#include "units.h"
#include "utf8.h"

static metric *m_created;

static int64_t clock_mono_ms_(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
static metric *m_rules, *m_rule_loads; /* routing rules in memory, reloads */

static const char SQL_RULES[] =
    "SELECT region_prefix, unit_id, priority, business_line, business_type, problem_type, "
    "channel, customer_level, id FROM router.routing_rules ORDER BY id";
/* with the latest dispatch if it was never acknowledged: it may have reached
 * its handler, which keeps the order for the handler timeout */
static const char SQL_OPEN_ORDERS[] =
    "SELECT w.order_no, w.unit_id, w.region, w.complaint, coalesce(d.dispatch_id::text, ''), "
    "coalesce(d.handler_id, ''), w.wf_state, "
    "(SELECT coalesce(json_agg(json_build_array(h.seq, h.action, h.actor, h.actor_unit, "
    "  router.ts_ms(h.at), coalesce(h.reason, ''), coalesce(h.from_unit, ''), "
    "  coalesce(h.to_unit, ''), coalesce(h.answer, ''), coalesce(h.from_state, ''), "
    "  coalesce(h.to_state, '')) ORDER BY h.seq), '[]')::text "
    " FROM router.order_history h WHERE h.order_no = w.order_no), "
    "coalesce(w.tier, ''), coalesce(w.customer_level, ''), CASE WHEN w.vip THEN 't' ELSE 'f' END "
    "FROM router.work_orders w "
    "LEFT JOIN LATERAL (SELECT x.dispatch_id, x.handler_id, x.acked_at FROM router.dispatches x "
    "  WHERE x.order_no = w.order_no ORDER BY x.seq DESC LIMIT 1) d ON d.acked_at IS NULL "
    "WHERE w.state = 'created' ORDER BY w.accepted_at, w.order_no";
static const char SQL_UNITS[] =
    "SELECT id, coalesce(region, ''), coalesce(parent, ''), coalesce(kind, '') FROM router.units";
static const char SQL_CREATE[] =
    "SELECT router.create_order_v3($1, $2, $3, $4, $5, $6, $7, $8, $9::bigint, $10::bigint, "
    "$11::bytea, $12::uuid, $13::bigint, $14::bytea, $15, $16::int, $17, $18, $19::boolean, $20, "
    "$21, $22, $23, $24, $25, $26, $27, $28::bigint, $29, $30::jsonb, $31::uuid, $32::bytea)";

/* the answer_on_spot step as a WorkOrderStepChanged, appended only when
 * create_order_v3 created the order in this transaction (its WorkOrderCreated,
 * with the event id $5, is in the outbox) — so a replayed complaint adds none. */
static const char SQL_SPOT_STEP[] =
    "SELECT router.outbox_append($1::uuid, 'WorkOrderStepChanged', $2::bigint, $3, $4::bytea) "
    "FROM router.outbox WHERE event_id = $5::uuid";

/* What the creation decided for an order, from apply to commit (units_pending). */
typedef struct {
  char holder[32], dispatcher[32], by[24];
  long rule_id; /* by "routing_rules": router.routing_rules.id of the rule that decided */
  bool closed, vip;
  int tier; /* Kesu__V1__Tier as decided */
  int64_t at;
} placement;

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

static bool same_province(const char *a, const char *b) {
  return a && b && strlen(a) >= 2 && strlen(b) >= 2 && strncmp(a, b, 2) == 0;
}

static void set32(char *dst, const char *src) { snprintf(dst, 32, "%s", src ? src : ""); }

/* Who holds the new order and who dispatched it; the tier and VIP sub-level.
 * eff is the complaint as the order keeps it (tier, vip decided here). */
static void place(router *r, const Kesu__V1__Complaint *c, Kesu__V1__Complaint *eff,
                  placement *pl) {
  const char *home = c->customer && c->customer->home_region && *c->customer->home_region
                         ? c->customer->home_region
                         : str(c->region);
  /* every cross-province complaint is national; never lower than intake said. */
  bool cross = *str(c->region) && !same_province(home, c->region);
  if (eff->tier == KESU__V1__TIER__TIER_UNSPECIFIED)
    eff->tier = KESU__V1__TIER__GENERAL;
  if (cross)
    eff->tier = KESU__V1__TIER__NATIONAL;
  const char *level = c->customer && c->customer->level ? c->customer->level : "";
  eff->vip = eff->tier >= KESU__V1__TIER__PROVINCIAL && (c->vip || level_is_vip(level));
  /* a cross-province complaint goes to the home region. The most specific
   * routing rule on region, business line/type, problem type, channel and level. */
  routing_query rq = {.region = cross ? home : str(c->region),
                      .business_line = str(c->business_line),
                      .business_type = str(c->business_type),
                      .problem_type = str(c->problem_type),
                      .channel = c->channel ? channel_name(c->channel) : "",
                      .customer_level = level};
  routing_match rm = {0};
  const char *unit = r->rules ? routing_rules_match(r->rules, &rq, &rm) : NULL;
  if (!unit) {
    log_warn("orders: no routing rule matches region %s (order %s); it goes to handlers "
             "serving all units",
             cross ? home : str(c->region), c->order_no);
    unit = "";
  }
  memset(pl, 0, sizeof *pl);
  set32(pl->holder, unit);
  set32(pl->dispatcher, *unit ? unit_tree_centre_of(r->units, unit) : "hq");
  snprintf(pl->by, sizeof pl->by, "routing_rules");
  pl->rule_id = rm.id;
  const char *pc = unit_tree_province_centre(r->units, home);
  if (c->stream == KESU__V1__STREAM__ESCALATED || c->stream == KESU__V1__STREAM__APPEAL) {
    /* HQ dispatches to the province centre of the home region. */
    const char *hq = unit_tree_hq(r->units);
    set32(pl->dispatcher, hq ? hq : "hq");
    set32(pl->holder, pc ? pc : pl->dispatcher);
    snprintf(pl->by, sizeof pl->by, "hq");
  } else if (cross && pc) {
    /* answered by the home-region centre */
    set32(pl->holder, pc);
    set32(pl->dispatcher, pc);
    snprintf(pl->by, sizeof pl->by, "home_centre");
  } else if (!*str(c->problem_type) && rm.dims == 0) {
    /* SPEC §5: type unknown → the business-owner department of the business line */
    const char *bo = unit_tree_business_owner(r->units, pl->dispatcher, str(c->business_line));
    if (bo) {
      set32(pl->holder, bo);
      snprintf(pl->by, sizeof pl->by, "business_owner");
    }
  }
  pl->closed = *str(c->answer_on_spot) != '\0';
  pl->tier = (int)eff->tier;
  pl->vip = eff->vip;
}

static unsigned char *pack_event(Kesu__V1__Envelope *out, const char *type, const char *order_no,
                                 const char *region, int64_t now, char event_id[37],
                                 size_t *len) {
  uuid_v4(event_id);
  out->producer = "router";
  out->event_id = event_id;
  out->type = (char *)type;
  out->occurred_at = now;
  out->order_no = (char *)order_no;
  out->region = (char *)region;
  return envelope_pack(out, len);
}

static void on_apply(pg_tx *tx, const Kesu__V1__Envelope *env, void *arg) {
  router *r = arg;
  const Kesu__V1__Complaint *c = complaint_of(env);
  if (!c)
    return;
  Kesu__V1__Complaint eff = *c;
  placement pl;
  place(r, c, &eff, &pl);
  int64_t now = clock_now_ms();
  pl.at = pl.closed ? (c->accepted_at > 0 ? c->accepted_at : now) : now;
  size_t clen;
  unsigned char *cbuf = pack_complaint(&eff, &clen);
  const char *level = c->customer && c->customer->level ? c->customer->level : "";
  const char *home = c->customer && c->customer->home_region ? c->customer->home_region : "";
  int prio = order_priority(&eff);

  Kesu__V1__WorkOrderCreated p = KESU__V1__WORK_ORDER_CREATED__INIT;
  p.order_no = c->order_no;
  p.unit_id = pl.holder;
  p.tier = eff.tier;
  p.kind = c->kind;
  p.accepted_at = c->accepted_at;
  p.promised_by = c->promised_by;
  p.region = c->region;
  p.channel = c->channel;
  p.business_type = c->business_type;
  p.stream = c->stream;
  p.customer_level = (char *)level;
  p.area = (char *)str(c->area);
  p.vip = eff.vip;
  p.priority = prio;
  p.problem_type = (char *)str(c->problem_type);
  p.dispatcher_unit = pl.dispatcher;
  p.home_region = (char *)home;
  char event_id[37], closed_id[37] = "";
  Kesu__V1__Envelope out = KESU__V1__ENVELOPE__INIT;
  out.payload_case = KESU__V1__ENVELOPE__PAYLOAD_WORK_ORDER_CREATED;
  out.work_order_created = &p;
  size_t elen, xlen = 0;
  unsigned char *ebuf =
      pack_event(&out, EV_WORK_ORDER_CREATED, c->order_no, str(c->region), now, event_id, &elen);
  unsigned char *xbuf = NULL;
  if (pl.closed) {
    /* answered on the spot — a work order all the same, closed at once */
    Kesu__V1__WorkOrderClosed w = KESU__V1__WORK_ORDER_CLOSED__INIT;
    w.order_no = c->order_no;
    w.unit_id = pl.holder;
    w.closed_at = pl.at;
    w.answer = c->answer_on_spot;
    w.actor = (char *)str(c->first_receiver);
    w.accepted_at = c->accepted_at;
    Kesu__V1__Envelope x = KESU__V1__ENVELOPE__INIT;
    x.payload_case = KESU__V1__ENVELOPE__PAYLOAD_WORK_ORDER_CLOSED;
    x.work_order_closed = &w;
    xbuf = pack_event(&x, EV_WORK_ORDER_CLOSED, c->order_no, str(c->region), now, closed_id, &xlen);
  }

  char accepted[24], promised[24], now_s[24], at_s[24], prio_s[16];
  snprintf(accepted, sizeof accepted, "%" PRId64, c->accepted_at);
  snprintf(promised, sizeof promised, "%" PRId64, c->promised_by);
  snprintf(now_s, sizeof now_s, "%" PRId64, now);
  snprintf(at_s, sizeof at_s, "%" PRId64, pl.at);
  snprintf(prio_s, sizeof prio_s, "%d", prio);
  char details[96];
  if (!pl.closed && pl.rule_id > 0 && strcmp(pl.by, "routing_rules") == 0)
    snprintf(details, sizeof details, "{\"by\":\"routing_rules\",\"rule_id\":%ld}", pl.rule_id);
  else
    snprintf(details, sizeof details, "{\"by\":\"%s\"}", pl.closed ? "first_receiver" : pl.by);
  const char *phone = c->customer && c->customer->phone && utf8_ok(c->customer->phone)
                          ? c->customer->phone
                          : "";
  bool texts_ok = utf8_ok(level) && utf8_ok(home) && utf8_ok(str(c->area)) &&
                  utf8_ok(str(c->problem_type)) && utf8_ok(str(c->answer_on_spot)) &&
                  utf8_ok(str(c->first_receiver));
  const char *v[32] = {c->order_no,
                       pl.holder,
                       str(c->region),
                       kind_name(c->kind),
                       stream_name(c->stream),
                       tier_name(eff.tier),
                       channel_name(c->channel),
                       str(c->business_type),
                       accepted,
                       promised,
                       (const char *)cbuf,
                       event_id,
                       now_s,
                       (const char *)ebuf,
                       phone,
                       prio_s,
                       pl.dispatcher,
                       pl.closed ? "closed" : "dispatched",
                       eff.vip ? "true" : "false",
                       texts_ok ? str(c->area) : "",
                       texts_ok ? level : "",
                       texts_ok ? str(c->problem_type) : "",
                       texts_ok ? home : "",
                       pl.closed ? "answer_on_spot" : "dispatch",
                       pl.closed && texts_ok ? str(c->first_receiver) : "router",
                       pl.closed ? pl.holder : pl.dispatcher,
                       pl.closed ? pl.holder : pl.dispatcher,
                       at_s,
                       pl.closed && texts_ok ? c->answer_on_spot : NULL,
                       details,
                       pl.closed ? closed_id : NULL,
                       (const char *)xbuf};
  int lens[32] = {0};
  int fmts[32] = {0};
  lens[10] = (int)clen;
  fmts[10] = 1;
  lens[13] = (int)elen;
  fmts[13] = 1;
  lens[31] = (int)xlen;
  fmts[31] = 1;
  pg_tx_add(tx, SQL_CREATE, 32, v, lens, fmts);
  if (pl.closed) {
    /* every consumer sees the on-the-spot step like any other (after the close) */
    Kesu__V1__WorkOrderStepChanged st = KESU__V1__WORK_ORDER_STEP_CHANGED__INIT;
    st.order_no = c->order_no;
    st.action = "answer_on_spot";
    st.from_state = "accepted";
    st.to_state = "closed";
    st.holder_unit = pl.holder;
    st.at = pl.at;
    st.actor = (char *)(texts_ok ? str(c->first_receiver) : "");
    st.reason = "";
    st.tier = (char *)tier_name(eff.tier);
    st.customer_level = (char *)(texts_ok ? level : "");
    st.promised_by = c->promised_by;
    st.kind = (char *)kind_name(c->kind);
    st.stream = (char *)stream_name(c->stream);
    st.vip = eff.vip;
    st.area = (char *)(texts_ok ? str(c->area) : "");
    st.answer = (char *)(texts_ok ? str(c->answer_on_spot) : "");
    st.responsibility = "";
    Kesu__V1__Envelope se = KESU__V1__ENVELOPE__INIT;
    se.payload_case = KESU__V1__ENVELOPE__PAYLOAD_WORK_ORDER_STEP_CHANGED;
    se.work_order_step_changed = &st;
    char step_id[37];
    size_t slen;
    unsigned char *sbuf = pack_event(&se, "WorkOrderStepChanged", c->order_no, str(c->region),
                                     now, step_id, &slen);
    const char *sv[5] = {step_id, now_s, c->order_no, (const char *)sbuf, event_id};
    int sl[5] = {0, 0, 0, (int)slen, 0}, sf[5] = {0, 0, 0, 1, 0};
    pg_tx_add(tx, SQL_SPOT_STEP, 5, sv, sl, sf);
    free(sbuf);
  }
  free(cbuf);
  free(ebuf);
  free(xbuf);
  placement *keep = malloc(sizeof *keep);
  *keep = pl;
  free(strmap_put(r->units_pending, c->order_no, keep));
}

static void on_committed(const Kesu__V1__Envelope *env, void *arg) {
  router *r = arg;
  const Kesu__V1__Complaint *c = complaint_of(env);
  if (!c)
    return;
  placement *pl = strmap_remove(r->units_pending, c->order_no);
  metric_add(m_created, 1);
  if (!pl || pl->closed) {
    /* answered on the spot: nothing to dispatch (no placement: not created here) */
    free(pl);
    return;
  }
  Kesu__V1__Complaint eff = *c; /* the tier and VIP sub-level as stored */
  eff.tier = (Kesu__V1__Tier)pl->tier;
  eff.vip = pl->vip;
  size_t clen;
  unsigned char *cbuf = pack_complaint(&eff, &clen);
  /* The first dispatch carries the first history step (written in the same transaction). */
  Kesu__V1__HistoryEntry h = KESU__V1__HISTORY_ENTRY__INIT;
  h.order_no = c->order_no;
  h.seq = 1;
  h.action = "dispatch";
  h.actor = "router";
  h.actor_unit = pl->dispatcher;
  h.at = pl->at;
  h.reason = "";
  h.from_unit = pl->dispatcher;
  h.to_unit = pl->holder;
  h.answer = "";
  h.from_state = "accepted";
  h.to_state = "dispatched";
  Kesu__V1__HistoryEntry *hp[1] = {&h};
  Kesu__V1__WorkOrder x = KESU__V1__WORK_ORDER__INIT;
  x.wf_state = "dispatched";
  x.history = hp;
  x.n_history = 1;
  size_t xlen = kesu__v1__work_order__get_packed_size(&x);
  unsigned char *xb = malloc(xlen ? xlen : 1);
  kesu__v1__work_order__pack(&x, xb);
  dispatcher_enqueue_extra(r->dispatcher, c->order_no, pl->holder, str(c->region), cbuf, clen,
                           due_at_of(c), xb, xlen);
  free(xb);
  free(cbuf);
  free(pl);
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

/* A packed WorkOrder with wf_state and the history rows given as a JSON array of
 * [seq, action, actor, actor_unit, at_ms, reason, from_unit, to_unit, answer, from_state,
 * to_state]; NULL if there is none. */
static unsigned char *history_extra(const char *order_no, const char *wf_state, const char *json,
                                    size_t *len) {
  json_t *a = json_loads(json, 0, NULL);
  size_t n = json_is_array(a) ? json_array_size(a) : 0;
  if (!n) {
    json_decref(a);
    return NULL;
  }
  Kesu__V1__HistoryEntry *e = calloc(n, sizeof *e);
  Kesu__V1__HistoryEntry **ep = calloc(n, sizeof *ep);
  for (size_t i = 0; i < n; i++) {
    json_t *row = json_array_get(a, i);
    kesu__v1__history_entry__init(&e[i]);
    e[i].order_no = (char *)order_no;
    e[i].seq = (int32_t)json_integer_value(json_array_get(row, 0));
    char **f[] = {&e[i].action,  &e[i].actor,  &e[i].actor_unit, NULL,
                  &e[i].reason,  &e[i].from_unit, &e[i].to_unit, &e[i].answer,
                  &e[i].from_state, &e[i].to_state};
    for (size_t k = 0; k < sizeof f / sizeof *f; k++) {
      if (!f[k])
        continue;
      const char *v = json_string_value(json_array_get(row, k + 1));
      *f[k] = (char *)(v ? v : "");
    }
    e[i].at = (int64_t)json_integer_value(json_array_get(row, 4));
    ep[i] = &e[i];
  }
  Kesu__V1__WorkOrder x = KESU__V1__WORK_ORDER__INIT;
  x.wf_state = (char *)wf_state;
  x.history = ep;
  x.n_history = n;
  *len = kesu__v1__work_order__get_packed_size(&x);
  unsigned char *buf = malloc(*len ? *len : 1);
  kesu__v1__work_order__pack(&x, buf);
  free(ep);
  free(e);
  json_decref(a);
  return buf;
}

/* A reclassify changes the order's tier, customer level and VIP flag in
 * router.work_orders, not in its stored complaint: every (re-)dispatch sends the complaint
 * as it is now, so the handler's copy and the queues' priority follow. res row i holds
 * tier, level, vip ('t'/'f') in columns col..col+2. Returns a packed copy to send instead
 * (caller frees), or NULL when nothing differs. */
static unsigned char *as_classified(PGresult *res, int i, int col, const Kesu__V1__Complaint *c,
                                    size_t *len) {
  const char *tier = PQgetvalue(res, i, col), *level = PQgetvalue(res, i, col + 1);
  bool vip = PQgetvalue(res, i, col + 2)[0] == 't';
  Kesu__V1__Tier t = strcmp(tier, "national") == 0     ? KESU__V1__TIER__NATIONAL
                     : strcmp(tier, "provincial") == 0 ? KESU__V1__TIER__PROVINCIAL
                     : strcmp(tier, "general") == 0    ? KESU__V1__TIER__GENERAL
                                                       : c->tier;
  const char *cur_level = c->customer && c->customer->level ? c->customer->level : "";
  if (t == c->tier && vip == c->vip && strcmp(level, cur_level) == 0)
    return NULL;
  Kesu__V1__Complaint x = *c;
  Kesu__V1__Customer cu = KESU__V1__CUSTOMER__INIT;
  if (c->customer)
    cu = *c->customer;
  cu.level = (char *)level;
  x.customer = &cu;
  x.tier = t;
  x.vip = vip;
  *len = kesu__v1__complaint__get_packed_size(&x);
  unsigned char *buf = malloc(*len ? *len : 1);
  kesu__v1__complaint__pack(&x, buf);
  return buf;
}

/* Row i of an order query (order_no, unit_id, region, complaint, dispatch_id, handler_id,
 * wf_state, history, class; binary: text columns are their bytes, bytea is raw) to the
 * dispatcher, with its workflow state, history and current class. An order with a
 * dispatch_id and handler_id is kept for that handler (router restart); with '' for both
 * (SQL_HELD_BY: its handler is gone) it goes to any ready one. False if undecodable. */
static bool enqueue_row(router *r, PGresult *res, int i) {
  const unsigned char *cb = (const unsigned char *)PQgetvalue(res, i, 3);
  size_t clen = (size_t)PQgetlength(res, i, 3);
  Kesu__V1__Complaint *c = kesu__v1__complaint__unpack(NULL, clen, cb);
  if (!c) {
    log_error("orders: stored complaint of %s is undecodable; not dispatched",
              PQgetvalue(res, i, 0));
    return false;
  }
  size_t xlen = 0, nlen = 0;
  unsigned char *xb = history_extra(PQgetvalue(res, i, 0), PQgetvalue(res, i, 6),
                                    PQgetvalue(res, i, 7), &xlen);
  unsigned char *nb = as_classified(res, i, 8, c, &nlen);
  bool held = *PQgetvalue(res, i, 4);
  dispatcher_enqueue_held_extra(r->dispatcher, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
                                PQgetvalue(res, i, 2), nb ? nb : cb, nb ? nlen : clen,
                                due_at_of(c), held ? PQgetvalue(res, i, 4) : NULL,
                                held ? PQgetvalue(res, i, 5) : NULL, xb, xlen);
  free(nb);
  free(xb);
  kesu__v1__complaint__free_unpacked(c, NULL);
  return true;
}

static void on_open_orders(const pg_result_set *rs, void *arg) {
  router *r = arg;
  r->orders_reloading = false;
  if (!rs->ok) {
    log_warn("orders: cannot load open orders: %s", rs->error);
    return; /* the tick tries again */
  }
  PGresult *res = rs->res[0];
  int n = PQntuples(res), held = 0;
  for (int i = 0; i < n; i++)
    if (enqueue_row(r, res, i) && *PQgetvalue(res, i, 4))
      held++;
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
      size_t nlen = 0;
      unsigned char *nb = as_classified(res, i, 5, cp, &nlen);
      dispatcher_enqueue_extra(r->dispatcher, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
                               PQgetvalue(res, i, 2), nb ? nb : cb, nb ? nlen : clen,
                               due_at_of(cp), xb, xlen);
      free(nb);
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
                          "SELECT w.order_no, w.unit_id, w.region, w.complaint, w.wf_state"
                          ", coalesce(w.tier, ''), coalesce(w.customer_level, ''), "
                          "CASE WHEN w.vip THEN 't' ELSE 'f' END "
                          "FROM router.work_orders w WHERE w.order_no = $1 "
                          "AND w.state = 'created'",
                          1, v, NULL, NULL);
  pg_tx_add(tx,
            "SELECT seq, action, actor, actor_unit, router.ts_ms(at), coalesce(reason, ''), "
            "coalesce(from_unit, ''), coalesce(to_unit, ''), coalesce(answer, ''), "
            "coalesce(from_state, ''), coalesce(to_state, '') FROM router.order_history "
            "WHERE order_no = $1 ORDER BY seq",
            1, v, NULL, NULL);
  pg_conn_submit(r->pg, tx, on_redispatch, c);
}

/* --- failover: the open orders of a handler that is gone ----------------- */

/* Acknowledged by $1 and still open: dispatched again (with the workflow
 * state and history) to a handler serving their unit. Its handler_id stays
 * until the new dispatch is acknowledged (router.ack_dispatch moves it). */
static const char SQL_HELD_BY[] =
    "SELECT w.order_no, w.unit_id, w.region, w.complaint, ''::text, ''::text, w.wf_state, "
    "(SELECT coalesce(json_agg(json_build_array(h.seq, h.action, h.actor, h.actor_unit, "
    "  router.ts_ms(h.at), coalesce(h.reason, ''), coalesce(h.from_unit, ''), "
    "  coalesce(h.to_unit, ''), coalesce(h.answer, ''), coalesce(h.from_state, ''), "
    "  coalesce(h.to_state, '')) ORDER BY h.seq), '[]')::text "
    " FROM router.order_history h WHERE h.order_no = w.order_no), "
    "coalesce(w.tier, ''), coalesce(w.customer_level, ''), CASE WHEN w.vip THEN 't' ELSE 'f' END "
    "FROM router.work_orders w WHERE w.state = 'dispatched' AND w.handler_id = $1 "
    "AND w.wf_state NOT IN ('closed', 'archived') ORDER BY w.accepted_at, w.order_no";
/* handlers holding open orders (router start: those not back in time are gone) */
static const char SQL_HOLDERS[] =
    "SELECT DISTINCT handler_id FROM router.work_orders WHERE state = 'dispatched' "
    "AND wf_state NOT IN ('closed', 'archived')";

enum { FAILOVER_GRACE_MS = 3500 }; /* the handler timeout, and a Hello period to spare */

typedef struct {
  router *r;
  char *handler_id;
} failover_ctx;

static void on_held_by(const pg_result_set *rs, void *arg) {
  failover_ctx *fc = arg;
  router *r = fc->r;
  if (!rs->ok) {
    log_warn("orders: cannot load the orders of gone handler %s (%s); tried again soon",
             fc->handler_id, rs->error);
    r->holders_checked = false; /* the tick looks again for holders that are not live */
    free(fc->handler_id);
    free(fc);
    return;
  }
  PGresult *res = rs->res[0];
  int n = PQntuples(res), moved = 0;
  for (int i = 0; i < n; i++)
    moved += enqueue_row(r, res, i);
  log_info("orders: handler %s is gone; %d open orders it held are dispatched again", fc->handler_id,
           moved);
  free(fc->handler_id);
  free(fc);
}

void orders_failover(router *r, const char *handler_id) {
  if (!handler_id || !*handler_id)
    return;
  failover_ctx *fc = calloc(1, sizeof *fc);
  fc->r = r;
  fc->handler_id = strdup(handler_id);
  const char *v[1] = {handler_id};
  pg_tx *tx = pg_tx_new();
  pg_tx_add_binary_result(tx, SQL_HELD_BY, 1, v, NULL, NULL);
  pg_conn_submit(r->pg, tx, on_held_by, fc);
}

static void on_gone(const char *handler_id, void *arg) { orders_failover(arg, handler_id); }

static void on_holders(const pg_result_set *rs, void *arg) {
  router *r = arg;
  if (!rs->ok) {
    log_warn("orders: cannot list the handlers holding orders (%s); trying again", rs->error);
    r->holders_checked = false; /* the tick tries again */
    return;
  }
  PGresult *res = rs->res[0];
  for (int i = 0; i < PQntuples(res); i++) {
    const char *h = PQgetvalue(res, i, 0);
    if (!dispatcher_handler_live(r->dispatcher, h)) {
      log_info("orders: handler %s holds open orders and did not come back within %d ms", h,
               (int)FAILOVER_GRACE_MS);
      orders_failover(r, h);
    }
  }
}

/* Router start: an order's handler not connected within the grace period is
 * gone, as if it had stopped heartbeating. */
static void check_holders(router *r) {
  r->holders_checked = true;
  pg_tx *tx = pg_tx_new();
  pg_tx_add(tx, SQL_HOLDERS, 0, NULL, NULL, NULL);
  pg_conn_submit(r->pg, tx, on_holders, r);
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

static void load_rules(router *r);
/* A NOTIFY that came while rules were being read: read them again after. */
static bool rules_again;

static void on_rules(const pg_result_set *rs, void *arg) {
  router *r = arg;
  r->rules_loading = false;
  if (rules_again) {
    rules_again = false;
    load_rules(r); /* this result may predate the change: use the next one */
    return;
  }
  if (!rs->ok) {
    log_warn("orders: cannot load routing rules: %s", rs->error);
    return;
  }
  PGresult *res = rs->res[0];
  routing_rules *rules = routing_rules_new();
  for (int i = 0; i < PQntuples(res); i++) {
    routing_rule_def d = {.region_prefix = PQgetvalue(res, i, 0),
                          .unit_id = PQgetvalue(res, i, 1),
                          .priority = atoi(PQgetvalue(res, i, 2)),
                          .business_line = PQgetvalue(res, i, 3),
                          .business_type = PQgetvalue(res, i, 4),
                          .problem_type = PQgetvalue(res, i, 5),
                          .channel = PQgetvalue(res, i, 6),
                          .customer_level = PQgetvalue(res, i, 7),
                          .id = atol(PQgetvalue(res, i, 8))};
    routing_rules_add_rule(rules, &d);
  }
  metric_set(m_rules, (int64_t)routing_rules_count(rules));
  metric_add(m_rule_loads, 1);
  unit_tree *units = unit_tree_new();
  PGresult *ur = rs->res[1];
  for (int i = 0; i < PQntuples(ur); i++)
    unit_tree_add(units, PQgetvalue(ur, i, 0), PQgetvalue(ur, i, 1), PQgetvalue(ur, i, 2),
                  PQgetvalue(ur, i, 3));
  unit_tree_destroy(&r->units);
  r->units = units;
  routing_rules_destroy(&r->rules);
  r->rules = rules;
  log_info("orders: %zu routing rules, %zu units loaded", routing_rules_count(rules),
           unit_tree_count(units));
  if (routing_rules_count(rules) == 0)
    log_warn("orders: no routing rules (kesuctl load): every order goes to handlers serving all "
             "units");
  reload_open_orders(r);
}

static void load_rules(router *r) {
  if (r->rules_loading) {
    rules_again = true;
    return;
  }
  r->rules_loading = true;
  pg_tx *tx = pg_tx_new();
  pg_tx_add(tx, SQL_RULES, 0, NULL, NULL, NULL);
  pg_tx_add(tx, SQL_UNITS, 0, NULL, NULL, NULL);
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
  else if (!r->holders_checked && clock_mono_ms_() - r->started_ms >= FAILOVER_GRACE_MS)
    check_holders(r);
}

void orders_start(router *r) {
  m_created = metric_counter("router_orders_created_total", "work orders created from complaints");
  m_rules = metric_gauge("router_routing_rules", "routing rules held in memory");
  m_rule_loads = metric_counter("router_routing_rule_loads_total",
                                "routing rule (re)loads (start, NOTIFY router_reference)");
  r->units_pending = strmap_new();
  r->started_ms = clock_mono_ms_();
  dispatcher_set_gone(r->dispatcher, on_gone, r);
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
  unit_tree_destroy(&r->units);
}
