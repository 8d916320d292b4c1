/* actions — workflow actions on work orders (SPEC §5), from regional handlers
 * (Action over the dispatch link, applied once per action_id: a resent action
 * gets the stored result) and from centre/HQ staff over HTTP.
 *
 * Every action runs through wf_apply (workflow.c) on the order as stored:
 *   1. one read: the stored result of the action id, the order's workflow row
 *      (with the holder's parent unit and the last history seq), whether
 *      to_unit exists, the acting unit of an HTTP token;
 *   2. in C: wf_apply (a handler's close with an answer on an order still being
 *      handled is the unit answering the customer itself: sign if needed →
 *      feedback → answer → close, each a step of its own);
 *   3. one transaction: router.wf_save (raises if the order changed since
 *      step 1), a history row per step, WorkOrderStepChanged per step and
 *      WorkOrderClosed on close, the action's record with its result.
 * Actions on one order are serialized in memory (one at a time per order
 * number), and wf_save's version check makes a lost race impossible anyway.
 * A refused action changes nothing but its own record. When the holder
 * unit changes (return, transfer, escalate, feedback, reopen) the order goes
 * back to the dispatcher for a handler of the new unit, and the old handler is
 * told to drop it (Recall).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "dispatcher.h"
#include "log.h"
#include "metrics.h"
#include "router.h"
#include "utf8.h"
#include "workflow.h"

#define EV_WORK_ORDER_STEP_CHANGED "WorkOrderStepChanged"
enum { MAX_STEPS = 4, TEXT_MAX = 2000 };

static metric *m_actions, *m_closed, *m_refused;

static const char SQL_LOOKUP_ACTION[] =
    "SELECT ok, code, message FROM router.actions WHERE action_id = $1 AND ok IS NOT NULL";
static const char SQL_LOOKUP_ORDER[] =
    "SELECT w.unit_id, w.region, w.state, coalesce(router.ts_ms(w.accepted_at), 0), w.wf_state, "
    "w.wf_version, w.stream, w.kind, coalesce(w.holder_unit, w.unit_id), "
    "coalesce(w.dispatcher_unit, ''), w.open_assists, w.hq_reviewed, w.called_back, "
    "w.receipt_signed, w.handling_at_fault, w.satisfaction, coalesce(w.conclusion, ''), "
    "w.responsibility, w.regulator_opinion, coalesce(router.ts_ms(w.promised_by), 0), "
    "coalesce(router.ts_ms(w.original_promised_by), 0), coalesce(w.handler_id, ''), "
    "coalesce((SELECT u.parent FROM router.units u WHERE u.id = coalesce(w.holder_unit, "
    "w.unit_id)), ''), "
    "coalesce((SELECT max(h.seq) FROM router.order_history h WHERE h.order_no = w.order_no), 0), "
    "w.tier, w.customer_level, w.vip, w.area, w.priority, w.home_region, "
    "coalesce((SELECT string_agg(DISTINCT d.handler_id, ',') FROM router.dispatches d "
    "WHERE d.order_no = w.order_no AND d.acked_at IS NOT NULL), '') "
    "FROM router.work_orders w WHERE w.order_no = $1";
static const char SQL_RECLASSIFY[] =
    "UPDATE router.work_orders SET tier = $2, customer_level = $3, vip = $4::boolean, "
    "priority = $5::int WHERE order_no = $1";
static const char SQL_ARRIVED[] =
    "UPDATE router.work_orders SET arrived_at = coalesce(arrived_at, router.ms_ts($2::bigint)) "
    "WHERE order_no = $1";
static const char SQL_STEPS_OF_ACTION[] =
    "SELECT seq, action, from_state, to_state, coalesce(from_unit, ''), coalesce(to_unit, ''), "
    "router.ts_ms(at) FROM router.order_history WHERE action_id = $1 ORDER BY seq";
static const char SQL_UNIT_EXISTS[] = "SELECT count(*) FROM router.units WHERE id = $1";
static const char SQL_UNIT_OF_SCOPE[] =
    "SELECT id FROM router.units WHERE region = $1 ORDER BY CASE kind WHEN 'hq' THEN 0 "
    "WHEN 'province' THEN 1 WHEN 'city' THEN 2 ELSE 3 END, id LIMIT 1";
static const char SQL_RECORD[] =
    "INSERT INTO router.actions (action_id, order_no, action, actor, at, ok, code, message, "
    "handler_id, answer) VALUES ($1, $2, $3, $4, router.ms_ts($5::bigint), $6::boolean, $7, $8, "
    "$9, $10)";
static const char SQL_SAVE[] =
    "SELECT router.wf_save($1, $2::int, $3, $4, $5, $6::int, $7::boolean, $8::boolean, "
    "$9::boolean, $10::boolean, $11::int, $12, $13, $14, $15::bigint, $16::bigint, $17::boolean, "
    "$18::bigint, $19)";
static const char SQL_HISTORY[] =
    "INSERT INTO router.order_history (order_no, seq, action, actor, actor_unit, at, reason, "
    "from_unit, to_unit, answer, from_state, to_state, action_id, details) VALUES ($1, $2::int, "
    "$3, $4, $5, router.ms_ts($6::bigint), $7, $8, $9, $10, $11, $12, $13, $14::jsonb)";
static const char SQL_APPEND[] =
    "SELECT router.outbox_append($1::uuid, $2, $3::bigint, $4, $5::bytea)";

/* One step applied (a composite close has several). */
typedef struct {
  wf_action action;
  wf_state from, to;
  char from_unit[32], to_unit[32];
} step;

typedef struct action_req {
  router *r;
  char *handler_id;               /* NULL: from HTTP */
  struct evhttp_request *http;    /* HTTP: the request to answer */
  bool http_admin;                /* HTTP: role admin */
  char scope[32];                 /* HTTP: the token's scope */
  char *action_id, *order_no, *action, *actor, *actor_unit, *answer, *reason, *to_unit,
      *conclusion, *responsibility, *regulator_opinion, *tier, *customer_level;
  bool level_set, vip_set, vip;
  char area[16], kind_name[16], stream_name[16];
  int priority;
  int priority_after; /* after a reclassify: sent to the holder's handler (OrderUpdate) */
  bool relooked;      /* looked the order up a second time (see on_looked_up) */
  int64_t at, promised_by;
  int satisfaction;
  bool at_fault, receipt_signed;
  struct action_req *next; /* waiting behind this one on the same order */
  /* filled while applying */
  wf_order before, after;
  step steps[MAX_STEPS];
  int nsteps;
  int last_seq, version;
  bool redispatch;
  char old_handler[64];
} action_req;

/* --- per-order serialization -------------------------------------------- */

static void start(action_req *q);

/* Whether id is one of the comma-separated list. */
static bool in_list(const char *list, const char *id) {
  size_t n = strlen(id);
  for (const char *p = list; p && *p;) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len == n && strncmp(p, id, n) == 0)
      return true;
    p = e ? e + 1 : NULL;
  }
  return false;
}

static void req_free(action_req *q) {
  free(q->handler_id);
  free(q->action_id);
  free(q->order_no);
  free(q->action);
  free(q->actor);
  free(q->actor_unit);
  free(q->answer);
  free(q->reason);
  free(q->to_unit);
  free(q->conclusion);
  free(q->responsibility);
  free(q->regulator_opinion);
  free(q->tier);
  free(q->customer_level);
  free(q);
}

/* q is done: the next action on its order starts. */
static void finish(action_req *q) {
  router *r = q->r;
  action_req *next = q->next;
  if (strmap_get(r->order_busy, q->order_no) == q) {
    if (next)
      strmap_put(r->order_busy, next->order_no, next);
    else
      strmap_remove(r->order_busy, q->order_no);
  }
  req_free(q);
  if (next)
    start(next);
}

static void enqueue(action_req *q) {
  router *r = q->r;
  if (!r->order_busy)
    r->order_busy = strmap_new();
  action_req *head = strmap_get(r->order_busy, q->order_no);
  if (head) {
    while (head->next)
      head = head->next;
    head->next = q;
    return;
  }
  strmap_put(r->order_busy, q->order_no, q);
  start(q);
}

/* --- answers ------------------------------------------------------------- */

static Kesu__V1__HistoryEntry *history_entries(action_req *q, int64_t at, size_t *n) {
  *n = (size_t)q->nsteps;
  Kesu__V1__HistoryEntry *h = calloc(*n ? *n : 1, sizeof *h);
  for (int i = 0; i < q->nsteps; i++) {
    kesu__v1__history_entry__init(&h[i]);
    h[i].order_no = q->order_no;
    h[i].seq = q->last_seq + 1 + i;
    h[i].action = (char *)wf_action_name(q->steps[i].action);
    h[i].actor = q->actor;
    h[i].actor_unit = q->actor_unit;
    h[i].at = at;
    h[i].reason = q->reason;
    h[i].from_unit = q->steps[i].from_unit;
    h[i].to_unit = q->steps[i].to_unit;
    h[i].answer = q->answer;
    h[i].from_state = (char *)wf_state_name(q->steps[i].from);
    h[i].to_state = (char *)wf_state_name(q->steps[i].to);
  }
  return h;
}

static int status_of(const char *code) {
  if (strcmp(code, "not_found") == 0)
    return 404;
  if (strcmp(code, "forbidden") == 0)
    return 403;
  if (strcmp(code, "conflict") == 0)
    return 409;
  if (strcmp(code, "unavailable") == 0)
    return 503;
  return 422;
}

/* state/holder: the order after the action (NULL: unknown). */
static void reply(action_req *q, bool ok, const char *code, const char *message, const char *field,
                  const char *state, const char *holder, int64_t at) {
  if (q->handler_id) {
    Kesu__V1__ActionResult res = KESU__V1__ACTION_RESULT__INIT;
    res.action_id = q->action_id;
    res.order_no = q->order_no;
    res.ok = ok;
    res.code = (char *)code;
    res.message = (char *)message;
    res.state = (char *)(state ? state : "");
    res.holder_unit = (char *)(holder ? holder : "");
    res.field = (char *)(field ? field : "");
    Kesu__V1__HistoryEntry *h = NULL;
    Kesu__V1__HistoryEntry **hp = NULL;
    size_t n = 0;
    if (ok) {
      h = history_entries(q, at, &n);
      hp = calloc(n ? n : 1, sizeof *hp);
      for (size_t i = 0; i < n; i++)
        hp[i] = &h[i];
      res.history = hp;
      res.n_history = n;
    }
    dispatcher_reply(q->r->dispatcher, q->handler_id, &res);
    free(hp);
    free(h);
    return;
  }
  if (!q->http)
    return;
  if (!ok) {
    http_reply_error(q->http, status_of(code), code, message, field);
    return;
  }
  json_t *hist = json_array();
  for (int i = 0; i < q->nsteps; i++) {
    char ts[40];
    clock_format_ms(at, ts, sizeof ts);
    json_array_append_new(
        hist, json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:s}", "seq", q->last_seq + 1 + i,
                        "action", wf_action_name(q->steps[i].action), "from_state",
                        wf_state_name(q->steps[i].from), "to_state",
                        wf_state_name(q->steps[i].to), "from_unit", q->steps[i].from_unit,
                        "to_unit", q->steps[i].to_unit, "at", ts));
  }
  http_reply_json(q->http, 200,
                  json_pack("{s:s, s:b, s:s, s:s, s:o}", "action_id", q->action_id, "ok", 1,
                            "state", state ? state : "", "holder_unit", holder ? holder : "",
                            "steps", hist));
}

/* --- the transaction ----------------------------------------------------- */

static void on_saved(const pg_result_set *rs, void *arg) {
  action_req *q = arg;
  int64_t now = clock_now_ms();
  int64_t at = q->at > 0 && q->at <= now ? q->at : now;
  if (!rs->ok) {
    /* Nothing was recorded: a handler resends; an HTTP caller tries again. */
    log_warn("actions: %s %s on %s not applied: %s", q->action_id, q->action, q->order_no,
             rs->error);
    bool raced = strcmp(rs->sqlstate, "KS409") == 0;
    reply(q, false, raced ? "conflict" : "unavailable",
          raced ? "工单已被他人修改，请重试 (the order changed meanwhile; try again)"
                : "database unavailable",
          NULL, NULL, NULL, at);
    finish(q);
    return;
  }
  metric_add(m_actions, 1);
  bool closed = q->after.state == WF_CLOSED && q->before.state != WF_CLOSED;
  if (closed)
    metric_add(m_closed, 1);
  if (q->after.state == WF_CLOSED || q->after.state == WF_ARCHIVED)
    dispatcher_forget(q->r->dispatcher, q->order_no); /* nothing left to dispatch */
  log_info("actions: %s %s on %s by %s (%s): %s → %s, holder %s", q->action_id, q->action,
           q->order_no, q->actor, q->actor_unit, wf_state_name(q->before.state),
           wf_state_name(q->after.state), q->after.holder_unit);
  reply(q, true, "", "", NULL, wf_state_name(q->after.state), q->after.holder_unit, at);
  if (*q->old_handler && (!q->handler_id || strcmp(q->old_handler, q->handler_id) != 0)) {
    /* the handler holding the order learns of steps taken elsewhere */
    Kesu__V1__OrderUpdate u = KESU__V1__ORDER_UPDATE__INIT;
    u.order_no = q->order_no;
    u.wf_state = (char *)wf_state_name(q->after.state);
    u.holder_unit = q->after.holder_unit;
    size_t n = 0;
    Kesu__V1__HistoryEntry *h = history_entries(q, at, &n);
    Kesu__V1__HistoryEntry **hp = calloc(n ? n : 1, sizeof *hp);
    for (size_t i = 0; i < n; i++)
      hp[i] = &h[i];
    u.history = hp;
    u.n_history = n;
    if (q->nsteps == 1 && q->steps[0].action == WA_RECLASSIFY) {
      /* its queue is sorted by priority: the handler's copy follows the new class */
      u.reclassified = true;
      u.tier = q->after.tier;
      u.customer_level = q->after.customer_level;
      u.vip = q->after.vip;
      u.priority = q->priority_after;
    }
    dispatcher_update(q->r->dispatcher, q->old_handler, &u);
    free(hp);
    free(h);
  }
  if (q->redispatch) {
    if (*q->old_handler)
      dispatcher_recall(q->r->dispatcher, q->old_handler, q->order_no, q->after.holder_unit);
    orders_redispatch(q->r, q->order_no);
  }
  finish(q);
}

static unsigned char *pack_env(action_req *q, const char *region, int64_t now, char event_id[37],
                               Kesu__V1__Envelope *env, size_t *len) {
  uuid_v4(event_id);
  env->producer = "router";
  env->event_id = event_id;
  env->occurred_at = now;
  env->order_no = q->order_no;
  env->region = (char *)region;
  return envelope_pack(env, len);
}

static void add_event(pg_tx *tx, const char *type, const char *event_id, int64_t now,
                      const char *order_no, const unsigned char *env, size_t len) {
  char now_s[24];
  snprintf(now_s, sizeof now_s, "%" PRId64, now);
  const char *v[5] = {event_id, type, now_s, order_no, (const char *)env};
  int lens[5] = {0, 0, 0, 0, (int)len};
  int fmts[5] = {0, 0, 0, 0, 1};
  pg_tx_add(tx, SQL_APPEND, 5, v, lens, fmts);
}

static void add_record(pg_tx *tx, action_req *q, bool ok, const char *code, const char *message) {
  char at[24];
  snprintf(at, sizeof at, "%" PRId64, q->at);
  const char *v[10] = {q->action_id, q->order_no, q->action,  q->actor,
                       at,           ok ? "true" : "false",   code, message,
                       q->handler_id ? q->handler_id : "",     q->answer};
  pg_tx_add(tx, SQL_RECORD, 10, v, NULL, NULL);
}

static void on_refusal_recorded(const pg_result_set *rs, void *arg) {
  action_req *q = arg;
  if (!rs->ok)
    log_warn("actions: refusal of %s not recorded: %s", q->action_id, rs->error);
  finish(q);
}

static void refuse(action_req *q, const char *code, const char *message, const char *field,
                   const char *state, const char *holder) {
  metric_add(m_refused, 1);
  log_info("actions: %s %s on %s by %s refused: %s %s", q->action_id, q->action, q->order_no,
           q->actor, code, message);
  reply(q, false, code, message, field, state, holder, 0);
  /* A handler's refused action is recorded so that its resend gets the same answer. */
  pg_tx *tx = pg_tx_new();
  add_record(tx, q, false, code, message);
  pg_conn_submit(q->r->pg, tx, on_refusal_recorded, q);
}

static void save(action_req *q, const char *region, int64_t accepted_at) {
  int64_t now = clock_now_ms();
  int64_t at = q->at > 0 && q->at <= now ? q->at : now;
  wf_order *n = &q->after;
  pg_tx *tx = pg_tx_new();
  char version[16], assists[16], sat[16], promised[24], orig[24], at_s[24];
  snprintf(assists, sizeof assists, "%d", n->open_assists);
  snprintf(sat, sizeof sat, "%d", n->satisfaction);
  snprintf(promised, sizeof promised, "%" PRId64, n->promised_by);
  snprintf(orig, sizeof orig, "%" PRId64, n->original_promised_by);
  snprintf(at_s, sizeof at_s, "%" PRId64, at);
  static const char *const conclusions[] = {NULL, "company_liable", "handled_properly",
                                            "withdrawn", "user_fault"};
  snprintf(version, sizeof version, "%d", q->version);
  bool concluded = n->conclusion != WC_NONE && q->before.conclusion == WC_NONE;
  const char *v[19] = {
      q->order_no,
      version,
      wf_state_name(n->state),
      n->holder_unit,
      n->dispatcher_unit,
      assists,
      n->hq_reviewed ? "true" : "false",
      n->called_back ? "true" : "false",
      n->receipt_signed ? "true" : "false",
      n->handling_at_fault ? "true" : "false",
      sat,
      conclusions[n->conclusion],
      concluded ? q->responsibility : NULL,
      concluded ? q->regulator_opinion : NULL,
      promised,
      orig,
      q->redispatch ? "true" : "false",
      at_s,
      (n->state == WF_CLOSED || n->state == WF_ANSWERED) && *q->answer ? q->answer : NULL};
  pg_tx_add(tx, SQL_SAVE, 19, v, NULL, NULL);
  int prio_after = q->priority; /* R-15 priority after the step (WorkOrderStepChanged.priority) */
  if (q->nsteps == 1 && q->steps[0].action == WA_RECLASSIFY) {
    /* R-15 priority follows the new tier / VIP: the importance and tier parts change */
    int tier_pts_old = strcmp(q->before.tier, "national") == 0     ? 3
                       : strcmp(q->before.tier, "provincial") == 0 ? 2
                                                                   : 1;
    int tier_pts_new = strcmp(n->tier, "national") == 0     ? 3
                       : strcmp(n->tier, "provincial") == 0 ? 2
                                                            : 1;
    bool imp_old = q->before.vip || level_is_vip(q->before.customer_level);
    bool imp_new = n->vip || level_is_vip(n->customer_level);
    int prio = q->priority - tier_pts_old + tier_pts_new - (imp_old ? 10 : 0) + (imp_new ? 10 : 0);
    prio_after = prio;
    q->priority_after = prio;
    char prio_s[16];
    snprintf(prio_s, sizeof prio_s, "%d", prio);
    const char *rv[5] = {q->order_no, n->tier, n->customer_level, n->vip ? "true" : "false",
                         prio_s};
    pg_tx_add(tx, SQL_RECLASSIFY, 5, rv, NULL, NULL);
  }
  if (q->nsteps == 1 && q->steps[0].action == WA_ARRIVE) {
    const char *av[2] = {q->order_no, at_s};
    pg_tx_add(tx, SQL_ARRIVED, 2, av, NULL, NULL);
  }
  for (int i = 0; i < q->nsteps; i++) {
    step *s = &q->steps[i];
    char seq[16];
    snprintf(seq, sizeof seq, "%d", q->last_seq + 1 + i);
    json_t *d = json_object();
    if (s->action == WA_RECOMMIT) {
      char ts[40];
      clock_format_ms(q->promised_by, ts, sizeof ts);
      json_object_set_new(d, "promised_by", json_string(ts));
    }
    if (s->action == WA_CALLBACK) {
      json_object_set_new(d, "satisfaction", json_integer(q->satisfaction));
      json_object_set_new(d, "at_fault", json_boolean(q->at_fault));
    }
    if (s->action == WA_CLOSE && q->receipt_signed)
      json_object_set_new(d, "receipt_signed", json_true());
    if (s->action == WA_CLOSE && *q->responsibility)
      json_object_set_new(d, "responsibility", json_string(q->responsibility));
    if (s->action == WA_ARRIVE) {
      char ts[40];
      clock_format_ms(at, ts, sizeof ts);
      json_object_set_new(d, "arrived_at", json_string(ts));
    }
    if (s->action == WA_RECLASSIFY)
      json_object_set_new(d, "reclassified",
                          json_pack("{s:s, s:s, s:s, s:s, s:b, s:b}", "tier_from", q->before.tier,
                                    "tier", n->tier, "customer_level_from",
                                    q->before.customer_level, "customer_level",
                                    n->customer_level, "vip_from", q->before.vip, "vip", n->vip));
    if (s->action == WA_CONCLUDE) {
      json_object_set_new(d, "conclusion", json_string(q->conclusion));
      json_object_set_new(d, "responsibility", json_string(q->responsibility));
      json_object_set_new(d, "regulator_opinion", json_string(q->regulator_opinion));
    }
    if (q->nsteps > 1)
      json_object_set_new(d, "composite_of", json_string(q->action));
    char *details = json_dumps(d, JSON_COMPACT);
    json_decref(d);
    const char *hv[14] = {q->order_no,
                          seq,
                          wf_action_name(s->action),
                          q->actor,
                          q->actor_unit,
                          at_s,
                          *q->reason ? q->reason : NULL,
                          s->from_unit,
                          s->to_unit,
                          *q->answer ? q->answer : NULL,
                          wf_state_name(s->from),
                          wf_state_name(s->to),
                          q->action_id,
                          details};
    pg_tx_add(tx, SQL_HISTORY, 14, hv, NULL, NULL);
    free(details);

    Kesu__V1__WorkOrderStepChanged p = KESU__V1__WORK_ORDER_STEP_CHANGED__INIT;
    p.order_no = q->order_no;
    p.action = (char *)wf_action_name(s->action);
    p.from_state = (char *)wf_state_name(s->from);
    p.to_state = (char *)wf_state_name(s->to);
    p.holder_unit = s->to_unit;
    p.at = at;
    p.actor = q->actor;
    /* what the SLA-watcher recomputes deadlines from (the order as it is after the step) */
    p.reason = q->reason;
    p.tier = n->tier;
    p.customer_level = n->customer_level;
    p.promised_by = n->promised_by;
    p.kind = q->kind_name;
    p.stream = q->stream_name;
    p.vip = n->vip;
    p.area = q->area;
    p.answer = (s->action == WA_INTERIM_REPLY || s->action == WA_ANSWER) ? q->answer : "";
    /* the notifier: who receives a transfer / an assist request, and how urgent it is */
    p.to_unit = (s->action == WA_TRANSFER || s->action == WA_ASSIST) ? s->to_unit : "";
    p.priority = prio_after;
    /* analytics: the survey (callback, or answer), and the staff's verdict at the close
     * (or an appeal's conclusion): responsibility "service" = 服务性投诉属实 */
    if (s->action == WA_CALLBACK) {
      p.satisfaction = q->satisfaction;
      p.at_fault = q->at_fault;
    }
    if (s->action == WA_ANSWER && q->satisfaction >= 1 && q->satisfaction <= 5)
      p.satisfaction = q->satisfaction; /* surveyed when answered */
    if (s->action == WA_CLOSE || s->action == WA_CONCLUDE) {
      p.responsibility = q->responsibility;
      p.service_substantiated = strcmp(q->responsibility, "service") == 0;
    }
    Kesu__V1__Envelope env = KESU__V1__ENVELOPE__INIT;
    env.type = EV_WORK_ORDER_STEP_CHANGED;
    env.payload_case = KESU__V1__ENVELOPE__PAYLOAD_WORK_ORDER_STEP_CHANGED;
    env.work_order_step_changed = &p;
    char event_id[37];
    size_t len;
    unsigned char *buf = pack_env(q, region, now, event_id, &env, &len);
    add_event(tx, EV_WORK_ORDER_STEP_CHANGED, event_id, now, q->order_no, buf, len);
    free(buf);
  }
  if (n->state == WF_CLOSED && q->before.state != WF_CLOSED) {
    Kesu__V1__WorkOrderClosed p = KESU__V1__WORK_ORDER_CLOSED__INIT;
    p.order_no = q->order_no;
    p.unit_id = q->before.holder_unit;
    p.closed_at = at;
    p.answer = q->answer;
    p.actor = q->actor;
    p.accepted_at = accepted_at;
    Kesu__V1__Envelope env = KESU__V1__ENVELOPE__INIT;
    env.type = EV_WORK_ORDER_CLOSED;
    env.payload_case = KESU__V1__ENVELOPE__PAYLOAD_WORK_ORDER_CLOSED;
    env.work_order_closed = &p;
    char event_id[37];
    size_t len;
    unsigned char *buf = pack_env(q, region, now, event_id, &env, &len);
    add_event(tx, EV_WORK_ORDER_CLOSED, event_id, now, q->order_no, buf, len);
    free(buf);
  }
  add_record(tx, q, true, "", "");
  pg_conn_submit(q->r->pg, tx, on_saved, q);
}

/* --- reading the order and applying ------------------------------------- */

static wf_stream stream_of(const char *s) {
  return strcmp(s, "escalated") == 0 ? WS_ESCALATED : strcmp(s, "appeal") == 0 ? WS_APPEAL
                                                                                : WS_ORDINARY;
}

static wf_kind_class kind_of(const char *s) {
  return strcmp(s, "repair") == 0 ? WK_REPAIR : strcmp(s, "enquiry") == 0 ? WK_ENQUIRY : WK_OTHER;
}

static bool is_true(PGresult *res, int col) { return PQgetvalue(res, 0, col)[0] == 't'; }

static void on_looked_up(const pg_result_set *rs, void *arg) {
  action_req *q = arg;
  if (!rs->ok) {
    log_warn("actions: cannot look up %s: %s", q->action_id, rs->error);
    if (q->http)
      http_reply_error(q->http, 503, "unavailable", "database unavailable", NULL);
    finish(q); /* a handler resends */
    return;
  }
  PGresult *stored = rs->res[0], *o = rs->res[1], *unit = rs->res[2], *scope_unit = rs->res[3];
  bool found = PQntuples(o) == 1;
  if (q->handler_id && PQntuples(stored) == 1) {
    /* a resend: the stored result, with the steps it made (the first answer may be lost) */
    PGresult *st = rs->res[4];
    int64_t at = 0;
    for (int i = 0; i < PQntuples(st) && q->nsteps < MAX_STEPS; i++) {
      int a = wf_action_from_name(PQgetvalue(st, i, 1));
      int from = wf_state_from_name(PQgetvalue(st, i, 2)), to = wf_state_from_name(PQgetvalue(st, i, 3));
      if (a < 0 || from < 0 || to < 0)
        continue;
      if (q->nsteps == 0)
        q->last_seq = atoi(PQgetvalue(st, i, 0)) - 1;
      step *s = &q->steps[q->nsteps++];
      s->action = (wf_action)a;
      s->from = (wf_state)from;
      s->to = (wf_state)to;
      snprintf(s->from_unit, sizeof s->from_unit, "%s", PQgetvalue(st, i, 4));
      snprintf(s->to_unit, sizeof s->to_unit, "%s", PQgetvalue(st, i, 5));
      at = strtoll(PQgetvalue(st, i, 6), NULL, 10);
    }
    reply(q, PQgetvalue(stored, 0, 0)[0] == 't', PQgetvalue(stored, 0, 1),
          PQgetvalue(stored, 0, 2), NULL, found ? PQgetvalue(o, 0, 4) : NULL,
          found ? PQgetvalue(o, 0, 8) : NULL, at);
    finish(q);
    return;
  }
  /* the raised-in region's scope, or the home region's (R-05: its centre answers) */
  if (q->http && (!found || (!q->http_admin && !auth_scope_covers(q->scope, PQgetvalue(o, 0, 1)) &&
                             !(*PQgetvalue(o, 0, 29) &&
                               auth_scope_covers(q->scope, PQgetvalue(o, 0, 29)))))) {
    http_reply_error(q->http, 404, "not_found", "no such work order", NULL);
    finish(q);
    return;
  }
  if (!found) {
    refuse(q, "not_found", "工单不存在 (no such order)", NULL, NULL, NULL);
    return;
  }
  const char *state_s = PQgetvalue(o, 0, 4), *holder_s = PQgetvalue(o, 0, 8);
  if (q->http) {
    free(q->actor_unit);
    q->actor_unit = strdup(PQntuples(scope_unit) == 1 ? PQgetvalue(scope_unit, 0, 0) : "");
    if (!*q->actor_unit) {
      http_reply_error(q->http, 403, "forbidden", "no unit has your token's scope", NULL);
      finish(q);
      return;
    }
  } else if (!*q->actor_unit) {
    free(q->actor_unit);
    q->actor_unit = strdup(holder_s);
  } else if (strcmp(q->actor_unit, holder_s) != 0 && strcmp(state_s, "closed") != 0 &&
             strcmp(state_s, "archived") != 0) {
    /* An open order is acted on by its holder only (a closed one: the state
     * machine says what still fits, e.g. a callback). */
    char msg[160];
    snprintf(msg, sizeof msg, "工单已由「%s」办理，本单位不能操作 (the order is held by %s)",
             holder_s, holder_s);
    refuse(q, "forbidden", msg, NULL, state_s, holder_s);
    return;
  }
  const char *in_flight_to = dispatcher_handler_of(q->r->dispatcher, q->order_no);
  const char *held_by = PQgetvalue(o, 0, 21);
  bool created = strcmp(PQgetvalue(o, 0, 2), "created") == 0;
  bool allowed = true;
  if (q->handler_id) {
    bool to_it = in_flight_to && strcmp(in_flight_to, q->handler_id) == 0;
    if (created)
      allowed = to_it || strcmp(held_by, q->handler_id) == 0;
    else if (in_flight_to)
      /* dispatched again after its handler was gone: the new dispatch counts */
      allowed = to_it;
    else
      allowed = strcmp(held_by, q->handler_id) == 0;
  }
  if (!allowed && created && !in_flight_to && !q->relooked) {
    /* Read before the ack of the dispatch to this handler committed (another
     * connection), looked at after the dispatcher let go of the order: read it
     * again rather than refuse a handler that holds it. */
    q->relooked = true;
    start(q);
    return;
  }
  if (q->handler_id && !created && dispatcher_pending(q->r->dispatcher, q->order_no)) {
    /* its handler was gone and the order waits to be dispatched again: no
     * answer now — the handler resends, and once the new dispatch is
     * acknowledged the holder is known (its copy then has this state) */
    log_info("actions: %s on %s from %s deferred: the order is being dispatched again", q->action,
             q->order_no, q->handler_id);
    finish(q);
    return;
  }
  const char *now_with = in_flight_to && !created ? in_flight_to : held_by;
  if (!allowed && *now_with && strcmp(now_with, q->handler_id) != 0 &&
      in_list(PQgetvalue(o, 0, 30), q->handler_id)) {
    /* it held the order (acknowledged a dispatch) and the order moved on */
    char msg[256];
    snprintf(msg, sizeof msg,
             "工单已改派给处理端「%s」，本处理端不能再操作 (the order was moved to handler %s)",
             now_with, now_with);
    log_warn("actions: %s on %s from former holder %s refused: now with %s", q->action,
             q->order_no, q->handler_id, now_with);
    refuse(q, "conflict", msg, NULL, state_s, holder_s);
    return;
  }
  if (!allowed) {
    /* From a handler: only the one the order was (last) dispatched to and
     * acknowledged by may act on it — another office serving the same unit
     * has no copy that counts. */
    log_warn("actions: %s on %s from %s refused: the order is with handler %s", q->action,
             q->order_no, q->handler_id, *PQgetvalue(o, 0, 21) ? PQgetvalue(o, 0, 21) : "(none)");
    refuse(q, "forbidden", "工单不在本处理端 (the order is not held by this handler)", NULL,
           state_s, holder_s);
    return;
  }
  int a = wf_action_from_name(q->action);
  if (a < 0) {
    refuse(q, "invalid_value", "不支持的操作 (unknown action)", "action", state_s, holder_s);
    return;
  }
  if (a == WA_RECLASSIFY && q->handler_id) {
    refuse(q, "forbidden", "改级由投诉中心办理 (reclassify is for the complaint centre, R-13)", NULL,
           state_s, holder_s);
    return;
  }
  if (*q->to_unit && strtol(PQgetvalue(unit, 0, 0), NULL, 10) == 0) {
    refuse(q, "invalid_value", "没有这个单位 (unknown unit)", "to_unit", state_s, holder_s);
    return;
  }
  wf_order *b = &q->before;
  memset(b, 0, sizeof *b);
  int st = wf_state_from_name(state_s);
  b->state = st < 0 ? WF_DISPATCHED : (wf_state)st;
  q->version = atoi(PQgetvalue(o, 0, 5));
  b->stream = stream_of(PQgetvalue(o, 0, 6));
  b->kind = kind_of(PQgetvalue(o, 0, 7));
  snprintf(b->holder_unit, sizeof b->holder_unit, "%s", holder_s);
  snprintf(b->dispatcher_unit, sizeof b->dispatcher_unit, "%s", PQgetvalue(o, 0, 9));
  b->open_assists = atoi(PQgetvalue(o, 0, 10));
  b->hq_reviewed = is_true(o, 11);
  b->called_back = is_true(o, 12);
  b->receipt_signed = is_true(o, 13);
  b->handling_at_fault = is_true(o, 14);
  b->satisfaction = atoi(PQgetvalue(o, 0, 15));
  b->conclusion = wf_conclusion_from_name(PQgetvalue(o, 0, 16));
  b->responsibility_set = !PQgetisnull(o, 0, 17);
  b->regulator_opinion_set = !PQgetisnull(o, 0, 18);
  b->promised_by = strtoll(PQgetvalue(o, 0, 19), NULL, 10);
  b->original_promised_by = strtoll(PQgetvalue(o, 0, 20), NULL, 10);
  snprintf(q->old_handler, sizeof q->old_handler, "%s", PQgetvalue(o, 0, 21));
  const char *parent = PQgetvalue(o, 0, 22);
  q->last_seq = atoi(PQgetvalue(o, 0, 23));
  snprintf(b->tier, sizeof b->tier, "%s", PQgetvalue(o, 0, 24));
  snprintf(b->customer_level, sizeof b->customer_level, "%s", PQgetvalue(o, 0, 25));
  b->vip = is_true(o, 26);
  snprintf(q->area, sizeof q->area, "%s", PQgetvalue(o, 0, 27));
  q->priority = atoi(PQgetvalue(o, 0, 28));
  snprintf(q->kind_name, sizeof q->kind_name, "%s", PQgetvalue(o, 0, 7));
  snprintf(q->stream_name, sizeof q->stream_name, "%s", PQgetvalue(o, 0, 6));

  /* A close with an answer on an order still being handled: the unit answers
   * the customer itself — each step recorded (sign, feedback, answer, close). */
  wf_action plan[MAX_STEPS];
  int nplan = 0;
  bool blank_answer = true;
  for (const char *p = q->answer; *p; p++)
    if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
      blank_answer = false;
  if (a == WA_CLOSE && !blank_answer &&
      (b->state == WF_DISPATCHED || b->state == WF_HANDLING || b->state == WF_FEEDBACK ||
       b->state == WF_REVIEW)) {
    if (b->state == WF_DISPATCHED)
      plan[nplan++] = WA_SIGN;
    if (b->state == WF_DISPATCHED || b->state == WF_HANDLING)
      plan[nplan++] = WA_FEEDBACK;
    plan[nplan++] = WA_ANSWER;
  }
  plan[nplan++] = (wf_action)a;

  wf_order cur = *b;
  for (int i = 0; i < nplan; i++) {
    char parent_now[32];
    /* the parent of the holder as it is now (only escalate reads it; a
     * composite never changes the holder before an escalate) */
    snprintf(parent_now, sizeof parent_now, "%s", parent);
    wf_request req = {
        .action = plan[i],
        .actor_unit = q->actor_unit,
        .to_unit = *q->to_unit ? q->to_unit : NULL,
        .parent_of_holder = *parent_now ? parent_now : NULL,
        .reason = q->reason,
        .answer = q->answer,
        .new_promised_by = q->promised_by,
        .satisfaction = q->satisfaction,
        .at_fault = q->at_fault,
        .receipt_signed = q->receipt_signed,
        .conclusion = wf_conclusion_from_name(q->conclusion),
        .responsibility = q->responsibility,
        .regulator_opinion = q->regulator_opinion,
        .tier = *q->tier ? q->tier : NULL,
        .customer_level = q->level_set ? q->customer_level : NULL,
        .vip_set = q->vip_set,
        .vip = q->vip,
    };
    wf_order before_step = cur;
    wf_verdict v = wf_apply(&cur, &req);
    if (v.status != 0) {
      refuse(q, v.code, v.message, v.field, state_s, holder_s);
      return;
    }
    step *s = &q->steps[q->nsteps++];
    s->action = plan[i];
    s->from = before_step.state;
    s->to = cur.state;
    snprintf(s->from_unit, sizeof s->from_unit, "%s", before_step.holder_unit);
    snprintf(s->to_unit, sizeof s->to_unit, "%s",
             plan[i] == WA_ASSIST ? q->to_unit : cur.holder_unit);
  }
  q->after = cur;
  q->redispatch = cur.state != WF_CLOSED && cur.state != WF_ARCHIVED &&
                  (strcmp(cur.holder_unit, b->holder_unit) != 0 || b->state == WF_CLOSED);
  save(q, PQgetvalue(o, 0, 1), strtoll(PQgetvalue(o, 0, 3), NULL, 10));
}

static void start(action_req *q) {
  const char *v1[1] = {q->action_id};
  const char *v2[1] = {q->order_no};
  const char *v3[1] = {q->to_unit};
  const char *v4[1] = {q->scope};
  pg_tx *tx = pg_tx_new();
  pg_tx_add(tx, SQL_LOOKUP_ACTION, 1, v1, NULL, NULL);
  pg_tx_add(tx, SQL_LOOKUP_ORDER, 1, v2, NULL, NULL);
  pg_tx_add(tx, SQL_UNIT_EXISTS, 1, v3, NULL, NULL);
  pg_tx_add(tx, SQL_UNIT_OF_SCOPE, 1, v4, NULL, NULL);
  pg_tx_add(tx, SQL_STEPS_OF_ACTION, 1, v1, NULL, NULL);
  pg_conn_submit(q->r->pg, tx, on_looked_up, q);
}

static void init_metrics(void) {
  if (m_actions)
    return;
  m_actions = metric_counter("router_actions_total", "workflow actions applied");
  m_refused = metric_counter("router_actions_refused_total", "workflow actions refused");
  m_closed = metric_counter("router_orders_closed_total", "orders closed (WorkOrderClosed)");
}

static char *dup_or_empty(const char *s) { return strdup(s ? s : ""); }

static bool text_ok(const char *s) {
  return s && utf8_valid((const unsigned char *)s, strlen(s)) && utf8_length(s) <= TEXT_MAX;
}

void actions_handle(router *r, const char *handler_id, const Kesu__V1__Action *a) {
  init_metrics();
  action_req *q = calloc(1, sizeof *q);
  q->r = r;
  q->handler_id = strdup(handler_id);
  q->action_id = dup_or_empty(a->action_id);
  q->order_no = dup_or_empty(a->order_no);
  q->action = dup_or_empty(a->action);
  q->actor = dup_or_empty(a->actor);
  q->actor_unit = dup_or_empty(a->actor_unit);
  q->answer = dup_or_empty(a->answer);
  q->reason = dup_or_empty(a->reason);
  q->to_unit = dup_or_empty(a->to_unit);
  q->conclusion = dup_or_empty(a->conclusion);
  q->responsibility = dup_or_empty(a->responsibility);
  q->regulator_opinion = dup_or_empty(a->regulator_opinion);
  q->tier = dup_or_empty(a->tier);
  q->customer_level = dup_or_empty(a->customer_level);
  q->level_set = *q->customer_level != '\0';
  q->vip_set = a->vip;
  q->vip = a->vip;
  q->at = a->at;
  q->promised_by = a->promised_by;
  q->satisfaction = a->satisfaction;
  q->at_fault = a->at_fault;
  q->receipt_signed = a->receipt_signed;
  const char *texts[] = {q->action_id, q->order_no, q->action, q->actor, q->actor_unit,
                         q->answer, q->reason, q->to_unit, q->conclusion, q->responsibility,
                         q->regulator_opinion, q->tier, q->customer_level};
  bool ok = *q->action_id && strlen(q->action_id) <= 64 && *q->order_no &&
            strlen(q->to_unit) < 32 && strlen(q->actor_unit) < 32;
  for (size_t i = 0; ok && i < sizeof texts / sizeof *texts; i++)
    ok = text_ok(texts[i]);
  if (!ok) {
    log_warn("actions: malformed action from %s", handler_id);
    reply(q, false, "invalid_value", "malformed action", NULL, NULL, NULL, 0);
    req_free(q);
    return;
  }
  enqueue(q);
}

/* --- HTTP: POST /v1/orders/{order_no}/actions ---------------------------- */

static const char *const STRING_FIELDS[] = {
    "action",         "answer",         "reason",         "to_unit",     "conclusion",
    "responsibility", "regulator_opinion", "tier",        "customer_level"};
enum { NSTRING_FIELDS = sizeof STRING_FIELDS / sizeof *STRING_FIELDS };

void actions_http(router *r, struct evhttp_request *req, const auth_ctx *auth,
                  const char *order_no, json_t *body) {
  init_metrics();
  const char *key;
  json_t *value;
  const char *strs[NSTRING_FIELDS] = {0};
  int64_t promised = 0;
  int satisfaction = 0;
  bool at_fault = false, receipt = false, vip_set = false, vip = false;
  json_object_foreach(body, key, value) {
    size_t i;
    for (i = 0; i < NSTRING_FIELDS; i++)
      if (strcmp(key, STRING_FIELDS[i]) == 0)
        break;
    if (i < NSTRING_FIELDS) {
      if (json_is_null(value))
        continue;
      if (!json_is_string(value)) {
        http_reply_error(req, 422, "wrong_type", "must be a string", key);
        return;
      }
      if (utf8_length(json_string_value(value)) > TEXT_MAX) {
        http_reply_error(req, 422, "too_long", "longer than 2000 characters", key);
        return;
      }
      strs[i] = json_string_value(value);
    } else if (strcmp(key, "promised_by") == 0) {
      if (!json_is_string(value) || clock_parse_ms(json_string_value(value), &promised) != 0) {
        http_reply_error(req, 422, "invalid_value", "promised_by: an RFC 3339 time", key);
        return;
      }
    } else if (strcmp(key, "satisfaction") == 0) {
      if (!json_is_integer(value)) {
        http_reply_error(req, 422, "wrong_type", "satisfaction: an integer 1-5", key);
        return;
      }
      satisfaction = (int)json_integer_value(value);
    } else if (strcmp(key, "vip") == 0) {
      if (!json_is_boolean(value)) {
        http_reply_error(req, 422, "wrong_type", "must be true or false", key);
        return;
      }
      vip_set = true;
      vip = json_is_true(value);
    } else if (strcmp(key, "at_fault") == 0 || strcmp(key, "receipt_signed") == 0) {
      if (!json_is_boolean(value)) {
        http_reply_error(req, 422, "wrong_type", "must be true or false", key);
        return;
      }
      *(strcmp(key, "at_fault") == 0 ? &at_fault : &receipt) = json_is_true(value);
    } else {
      http_reply_error(req, 422, "unknown_field", "unknown field", key);
      return;
    }
  }
  if (!strs[0]) {
    http_reply_error(req, 422, "missing_field", "action is required", "action");
    return;
  }
  if (wf_action_from_name(strs[0]) < 0) {
    http_reply_error(req, 422, "invalid_value", "unknown action", "action");
    return;
  }
  if (strs[3] && strlen(strs[3]) >= 32) {
    http_reply_error(req, 422, "invalid_value", "unknown unit", "to_unit");
    return;
  }
  if (!pg_conn_ready(r->pg)) {
    http_reply_error(req, 503, "unavailable", "database unavailable", NULL);
    return;
  }
  action_req *q = calloc(1, sizeof *q);
  q->r = r;
  q->http = req;
  q->http_admin = auth->role && strcmp(auth->role, "admin") == 0;
  snprintf(q->scope, sizeof q->scope, "%s", auth->scope ? auth->scope : "");
  char id[37];
  uuid_v4(id);
  q->action_id = strdup(id);
  q->order_no = strdup(order_no);
  q->action = dup_or_empty(strs[0]);
  q->answer = dup_or_empty(strs[1]);
  q->reason = dup_or_empty(strs[2]);
  q->to_unit = dup_or_empty(strs[3]);
  q->conclusion = dup_or_empty(strs[4]);
  q->responsibility = dup_or_empty(strs[5]);
  q->regulator_opinion = dup_or_empty(strs[6]);
  q->tier = dup_or_empty(strs[7]);
  q->customer_level = dup_or_empty(strs[8]);
  q->level_set = strs[8] != NULL;
  q->vip_set = vip_set;
  q->vip = vip;
  q->actor = dup_or_empty(auth->name);
  q->actor_unit = strdup("");
  q->at = clock_now_ms();
  q->promised_by = promised;
  q->satisfaction = satisfaction;
  q->at_fault = at_fault;
  q->receipt_signed = receipt;
  enqueue(q);
}
