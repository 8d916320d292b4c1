/* api — the workbench HTTP API: the queue of open orders in the token's scope
 * one order with its actions, and staff actions on an order. Orders
 * outside the scope are 404, as if they did not exist. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actions.h"
#include "clock.h"
#include "http.h"
#include "link.h"
#include "log.h"
#include "office.h"
#include "views.h"

enum { QUEUE_DEFAULT = 10000, QUEUE_MAX = 50000 };

static const char SQL_QUEUE[] =
    "SELECT order_no, unit_id, region, complaint->>'title', complaint->'customer'->>'name', "
    "handler.ts_ms(due_at), handler.ts_ms(received_at), handler.priority(complaint) "
    "FROM handler.orders WHERE state = 'open' AND region LIKE $1 "
    "AND coalesce(handler_id, $3) = $3 "
    "ORDER BY handler.priority(complaint) DESC, due_at NULLS LAST, order_no LIMIT $2::int";
static const char SQL_QUEUE_COUNT[] =
    "SELECT count(*) FROM handler.orders WHERE state = 'open' AND region LIKE $1 "
    "AND coalesce(handler_id, $2) = $2";
static const char SQL_ORDER[] =
    "SELECT order_no, unit_id, region, dispatch_id, handler.ts_ms(received_at), "
    "handler.ts_ms(due_at), complaint::text, state, handler.ts_ms(closed_at), answer, wf_state, "
    "handler_id, array_to_json(former_handlers)::text "
    "FROM handler.orders WHERE order_no = $1";
static const char SQL_ORDER_ACTIONS[] =
    "SELECT action_id, action, answer, actor, handler.ts_ms(created_at), handler.ts_ms(sent_at), "
    "result_ok, result_code, result_message, handler.ts_ms(done_at) "
    "FROM handler.pending_actions WHERE order_no = $1 ORDER BY seq";
static const char SQL_ORDER_STATE[] =
    "SELECT region, state, unit_id, coalesce(handler_id, ''), "
    "coalesce(handler_id, '') <> $2 AND $2 = ANY(former_handlers) "
    "FROM handler.orders WHERE order_no = $1";
static const char SQL_HISTORY_ORDER[] =
    "SELECT region, wf_state, unit_id, state FROM handler.orders WHERE order_no = $1";
static const char SQL_HISTORY[] =
    "SELECT seq, action, actor, actor_unit, handler.ts_ms(at), reason, from_unit, to_unit, "
    "answer, from_state, to_state FROM handler.order_history WHERE order_no = $1 ORDER BY seq";
static const char SQL_HISTORY_PENDING[] =
    "SELECT action_id, action, actor, handler.ts_ms(created_at), params::text FROM "
    "handler.pending_actions WHERE order_no = $1 AND done_at IS NULL ORDER BY seq";

static const char SQL_ACTIONS[] =
    "SELECT p.action_id, p.order_no, p.action, p.answer, p.actor, handler.ts_ms(p.created_at), "
    "handler.ts_ms(p.sent_at), p.result_ok, p.result_code, p.result_message, "
    "handler.ts_ms(p.done_at), o.region, p.params::text, p.seq, o.title "
    "FROM handler.pending_actions p JOIN (SELECT order_no, region, complaint->>'title' AS title "
    "FROM handler.orders WHERE region LIKE $1) o ON o.order_no = p.order_no "
    "WHERE CASE $2 WHEN 'pending' THEN p.done_at IS NULL WHEN 'refused' THEN p.result_ok = false "
    "WHEN 'done' THEN p.done_at IS NOT NULL ELSE true END "
    "ORDER BY CASE WHEN $2 = 'pending' THEN p.seq ELSE -p.seq END LIMIT $3::int";
static const char SQL_LINK_COUNTS[] =
    "SELECT count(*) FILTER (WHERE p.done_at IS NULL), "
    "count(*) FILTER (WHERE p.result_ok = false), "
    "handler.ts_ms(min(p.created_at) FILTER (WHERE p.done_at IS NULL)) "
    "FROM handler.pending_actions p JOIN handler.orders o ON o.order_no = p.order_no "
    "WHERE o.region LIKE $1";

/* What a request keeps of its token (the cache may reload meanwhile). */
typedef struct {
  office *o;
  struct evhttp_request *req;
  char scope[32];
  char *actor, *order_no, *action, *answer, *params;
} request_ctx;

static request_ctx *ctx_new(office *o, struct evhttp_request *req, const auth_ctx *auth) {
  request_ctx *c = calloc(1, sizeof *c);
  c->o = o;
  c->req = req;
  snprintf(c->scope, sizeof c->scope, "%s", auth->scope ? auth->scope : "");
  c->actor = strdup(auth->name ? auth->name : "");
  return c;
}

static void ctx_free(request_ctx *c) {
  free(c->actor);
  free(c->order_no);
  free(c->action);
  free(c->answer);
  free(c->params);
  free(c);
}

static bool staff(const auth_ctx *auth) {
  return auth && auth->role &&
         (strcmp(auth->role, "handler") == 0 || strcmp(auth->role, "admin") == 0);
}

static bool refuse(struct evhttp_request *req, office *o, const auth_ctx *auth) {
  if (!staff(auth)) {
    http_reply_error(req, 403, "forbidden", "handler or admin role required", NULL);
    return true;
  }
  if (!pg_conn_ready(o->pg)) {
    http_reply_error(req, 503, "unavailable", "database unavailable", NULL);
    return true;
  }
  return false;
}

static json_t *text_or_null(PGresult *r, int row, int col) {
  if (PQgetisnull(r, row, col))
    return json_null();
  json_t *j = json_string(PQgetvalue(r, row, col));
  return j ? j : json_null();
}

static json_t *time_or_null(PGresult *r, int row, int col) {
  if (PQgetisnull(r, row, col))
    return json_null();
  char buf[40];
  clock_format_ms(strtoll(PQgetvalue(r, row, col), NULL, 10), buf, sizeof buf);
  return json_string(buf);
}

/* --- GET /v1/queue ------------------------------------------------------- */

static void on_queue(const pg_result_set *rs, void *arg) {
  request_ctx *c = arg;
  if (!rs->ok) {
    http_reply_error(c->req, 503, "unavailable", "database unavailable", NULL);
    ctx_free(c);
    return;
  }
  PGresult *r = rs->res[0];
  int64_t now = clock_now_ms();
  json_t *orders = json_array();
  for (int i = 0; i < PQntuples(r); i++) {
    if (!auth_scope_covers(c->scope, PQgetvalue(r, i, 2)))
      continue;
    json_t *row = json_object();
    json_object_set_new(row, "order_no", text_or_null(r, i, 0));
    json_object_set_new(row, "unit_id", text_or_null(r, i, 1));
    json_object_set_new(row, "region", text_or_null(r, i, 2));
    json_object_set_new(row, "title", text_or_null(r, i, 3));
    json_object_set_new(row, "customer_name", text_or_null(r, i, 4));
    json_object_set_new(row, "due_at", time_or_null(r, i, 5));
    if (PQgetisnull(r, i, 5)) {
      json_object_set_new(row, "time_left_seconds", json_null());
    } else {
      int64_t left_ms = strtoll(PQgetvalue(r, i, 5), NULL, 10) - now;
      /* floor: one millisecond overdue is already -1 s */
      int64_t left = left_ms >= 0 ? left_ms / 1000 : -((-left_ms + 999) / 1000);
      json_object_set_new(row, "time_left_seconds", json_integer(left));
    }
    json_object_set_new(row, "received_at", time_or_null(r, i, 6));
    json_object_set_new(row, "priority", json_integer(atoi(PQgetvalue(r, i, 7))));
    json_array_append_new(orders, row);
  }
  json_int_t count = strtoll(PQgetvalue(rs->res[1], 0, 0), NULL, 10);
  http_reply_json(c->req, 200, json_pack("{s:o, s:I}", "orders", orders, "count", count));
  ctx_free(c);
}

/* ?limit=: def when absent; false after a 422 when not an integer in 1…max. */
static bool query_limit(struct evhttp_request *req, long def, long max, long *limit) {
  const char *l = http_query(req, "limit");
  *limit = def;
  if (!l)
    return true;
  char *end;
  *limit = strtol(l, &end, 10);
  if (end == l || *end || *limit < 1 || *limit > max) {
    char msg[64];
    snprintf(msg, sizeof msg, "limit must be an integer from 1 to %ld", max);
    http_reply_error(req, 422, "invalid_value", msg, "limit");
    return false;
  }
  return true;
}

static void get_queue(struct evhttp_request *req, const auth_ctx *auth, char **segs, int nsegs,
                      void *arg) {
  (void)segs;
  (void)nsegs;
  office *o = arg;
  if (refuse(req, o, auth))
    return;
  long limit;
  if (!query_limit(req, QUEUE_DEFAULT, QUEUE_MAX, &limit))
    return;
  request_ctx *c = ctx_new(o, req, auth);
  char pattern[80], lim[16];
  scope_like_pattern(c->scope, pattern, sizeof pattern);
  snprintf(lim, sizeof lim, "%ld", limit);
  const char *v[3] = {pattern, lim, o->handler_id};
  const char *vc[2] = {pattern, o->handler_id};
  pg_tx *tx = pg_tx_new();
  pg_tx_add(tx, SQL_QUEUE, 3, v, NULL, NULL);
  pg_tx_add(tx, SQL_QUEUE_COUNT, 2, vc, NULL, NULL);
  pg_conn_submit(o->pg, tx, on_queue, c);
}

/* --- GET /v1/orders/{order_no} ------------------------------------------ */

static void on_order(const pg_result_set *rs, void *arg) {
  request_ctx *c = arg;
  if (!rs->ok) {
    http_reply_error(c->req, 503, "unavailable", "database unavailable", NULL);
    ctx_free(c);
    return;
  }
  PGresult *r = rs->res[0];
  if (PQntuples(r) != 1 || !auth_scope_covers(c->scope, PQgetvalue(r, 0, 2))) {
    http_reply_error(c->req, 404, "not_found", "no such work order in your queue", NULL);
    ctx_free(c);
    return;
  }
  json_t *body = json_object();
  json_object_set_new(body, "order_no", text_or_null(r, 0, 0));
  json_object_set_new(body, "unit_id", text_or_null(r, 0, 1));
  json_object_set_new(body, "region", text_or_null(r, 0, 2));
  json_object_set_new(body, "dispatch_id", text_or_null(r, 0, 3));
  json_object_set_new(body, "received_at", time_or_null(r, 0, 4));
  json_object_set_new(body, "due_at", time_or_null(r, 0, 5));
  json_t *complaint = json_loads(PQgetvalue(r, 0, 6), 0, NULL);
  json_object_set_new(body, "complaint", complaint ? complaint : json_null());
  json_object_set_new(body, "state", text_or_null(r, 0, 7));
  json_object_set_new(body, "wf_state", text_or_null(r, 0, 10));
  /* which handler process holds it now, and which held it before */
  json_object_set_new(body, "handler_id", text_or_null(r, 0, 11));
  json_t *former = json_loads(PQgetvalue(r, 0, 12), 0, NULL);
  json_object_set_new(body, "former_handlers", former ? former : json_array());
  json_object_set_new(body, "closed_at", time_or_null(r, 0, 8));
  json_object_set_new(body, "answer", text_or_null(r, 0, 9));
  PGresult *a = rs->res[1];
  json_t *actions = json_array();
  for (int i = 0; i < PQntuples(a); i++) {
    json_t *row = json_object();
    json_object_set_new(row, "action_id", text_or_null(a, i, 0));
    json_object_set_new(row, "action", text_or_null(a, i, 1));
    json_object_set_new(row, "answer", text_or_null(a, i, 2));
    json_object_set_new(row, "actor", text_or_null(a, i, 3));
    json_object_set_new(row, "created_at", time_or_null(a, i, 4));
    json_object_set_new(row, "sent_at", time_or_null(a, i, 5));
    bool done = !PQgetisnull(a, i, 9);
    json_object_set_new(row, "status", json_string(done ? "done" : "pending"));
    json_object_set_new(row, "ok",
                        PQgetisnull(a, i, 6) ? json_null()
                                             : json_boolean(PQgetvalue(a, i, 6)[0] == 't'));
    json_object_set_new(row, "code", text_or_null(a, i, 7));
    json_object_set_new(row, "message", text_or_null(a, i, 8));
    json_object_set_new(row, "done_at", time_or_null(a, i, 9));
    json_array_append_new(actions, row);
  }
  json_object_set_new(body, "actions", actions);
  http_reply_json(c->req, 200, body);
  ctx_free(c);
}

static void get_order(struct evhttp_request *req, const auth_ctx *auth, char **segs, int nsegs,
                      void *arg) {
  office *o = arg;
  if (refuse(req, o, auth))
    return;
  request_ctx *c = ctx_new(o, req, auth);
  const char *v[1] = {segs[0]};
  pg_tx *tx = pg_tx_new();
  pg_tx_add(tx, SQL_ORDER, 1, v, NULL, NULL);
  pg_tx_add(tx, SQL_ORDER_ACTIONS, 1, v, NULL, NULL);
  pg_conn_submit(o->pg, tx, on_order, c);
}

/* --- POST /v1/orders/{order_no}/actions --------------------------------- */

static void on_order_state(const pg_result_set *rs, void *arg) {
  request_ctx *c = arg;
  if (!rs->ok) {
    http_reply_error(c->req, 503, "unavailable", "database unavailable", NULL);
    ctx_free(c);
    return;
  }
  PGresult *r = rs->res[0];
  if (PQntuples(r) != 1 || !auth_scope_covers(c->scope, PQgetvalue(r, 0, 0))) {
    http_reply_error(c->req, 404, "not_found", "no such work order in your queue", NULL);
  } else if (PQgetvalue(r, 0, 4)[0] == 't') {
    /* this handler held it, was gone (no heartbeat) and the router gave it to
     * another: its staff must not act on it twice */
    char msg[256];
    snprintf(msg, sizeof msg,
             "工单已改派给处理端「%s」（本处理端曾失联），本端不能再办理 "
             "(the order was re-dispatched to %s while this handler was unreachable)",
             PQgetvalue(r, 0, 3), PQgetvalue(r, 0, 3));
    http_reply_error(c->req, 409, "conflict", msg, NULL);
  } else if (strcmp(PQgetvalue(r, 0, 1), "moved") == 0) {
    http_reply_error(c->req, 409, "conflict",
                     "工单已转至其他单位 (the order was moved to another unit)", NULL);
  } else if (strcmp(PQgetvalue(r, 0, 1), "closed") == 0 && strcmp(c->action, "close") == 0) {
    http_reply_error(c->req, 409, "conflict", "工单已结办 (the order is already closed)", NULL);
  } else {
    pending_actions_submit(c->o->actions, c->req, c->order_no, c->action, c->answer, c->actor,
                           PQgetvalue(r, 0, 2), c->params);
  }
  ctx_free(c);
}

static void post_action(struct evhttp_request *req, const auth_ctx *auth, char **segs, int nsegs,
                        void *arg) {
  office *o = arg;
  if (!staff(auth)) {
    http_reply_error(req, 403, "forbidden", "handler or admin role required", NULL);
    return;
  }
  json_t *body = http_read_json(req);
  if (!body)
    return;
  action_request ar;
  request_problem p;
  if (action_request_parse(body, &ar, &p) != 0) {
    http_reply_error(req, p.status, p.code, p.message, p.field);
    json_decref(body);
    return;
  }
  if (!pg_conn_ready(o->pg)) {
    json_decref(body);
    http_reply_error(req, 503, "unavailable", "database unavailable", NULL);
    return;
  }
  request_ctx *c = ctx_new(o, req, auth);
  c->order_no = strdup(segs[0]);
  c->action = strdup(ar.action);
  c->answer = ar.answer ? strdup(ar.answer) : NULL;
  json_t *params = json_object();
  const char *names[] = {"reason",         "to_unit",           "conclusion", "responsibility",
                         "regulator_opinion", "tier",             "customer_level"};
  const char *vals[] = {ar.reason, ar.to_unit, ar.conclusion, ar.responsibility,
                        ar.regulator_opinion, ar.tier, ar.customer_level};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++)
    if (vals[i])
      json_object_set_new(params, names[i], json_string(vals[i]));
  if (ar.promised_by)
    json_object_set_new(params, "promised_by", json_integer(ar.promised_by));
  if (ar.satisfaction)
    json_object_set_new(params, "satisfaction", json_integer(ar.satisfaction));
  if (ar.at_fault)
    json_object_set_new(params, "at_fault", json_true());
  if (ar.receipt_signed)
    json_object_set_new(params, "receipt_signed", json_true());
  if (json_is_boolean(json_object_get(body, "vip")))
    json_object_set_new(params, "vip", json_boolean(ar.vip));
  c->params = json_dumps(params, JSON_COMPACT);
  json_decref(params);
  json_decref(body);
  const char *v[2] = {c->order_no, o->handler_id};
  pg_tx *tx = pg_tx_new();
  pg_tx_add(tx, SQL_ORDER_STATE, 2, v, NULL, NULL);
  pg_conn_submit(o->pg, tx, on_order_state, c);
}

/* --- GET /v1/orders/{order_no}/history ---------------------------------- */

static void on_history(const pg_result_set *rs, void *arg) {
  request_ctx *c = arg;
  if (!rs->ok) {
    http_reply_error(c->req, 503, "unavailable", "database unavailable", NULL);
    ctx_free(c);
    return;
  }
  PGresult *o = rs->res[0], *h = rs->res[1], *p = rs->res[2];
  if (PQntuples(o) != 1 || !auth_scope_covers(c->scope, PQgetvalue(o, 0, 0))) {
    http_reply_error(c->req, 404, "not_found", "no such work order in your queue", NULL);
    ctx_free(c);
    return;
  }
  static const char *const names[] = {"seq",       "action",  "actor",  "actor_unit",
                                      "at",        "reason",  "from_unit", "to_unit",
                                      "answer",    "from_state", "to_state"};
  json_t *rows = json_array();
  for (int i = 0; i < PQntuples(h); i++) {
    json_t *row = json_object();
    json_object_set_new(row, "seq", json_integer(strtol(PQgetvalue(h, i, 0), NULL, 10)));
    for (int k = 1; k < 11; k++)
      json_object_set_new(row, names[k], k == 4 ? time_or_null(h, i, k) : text_or_null(h, i, k));
    json_array_append_new(rows, row);
  }
  json_t *pending = json_array();
  for (int i = 0; i < PQntuples(p); i++) {
    json_t *params = json_loads(PQgetvalue(p, i, 4), 0, NULL);
    json_array_append_new(pending, json_pack("{s:o, s:o, s:o, s:o, s:o}", "action_id",
                                             text_or_null(p, i, 0), "action", text_or_null(p, i, 1),
                                             "actor", text_or_null(p, i, 2), "at",
                                             time_or_null(p, i, 3), "params",
                                             params ? params : json_object()));
  }
  http_reply_json(c->req, 200,
                  json_pack("{s:s, s:o, s:o, s:o, s:o, s:o}", "order_no", c->order_no, "wf_state",
                            text_or_null(o, 0, 1), "unit_id", text_or_null(o, 0, 2), "state",
                            text_or_null(o, 0, 3), "history", rows, "pending", pending));
  ctx_free(c);
}

static void get_history(struct evhttp_request *req, const auth_ctx *auth, char **segs, int nsegs,
                        void *arg) {
  office *o = arg;
  if (refuse(req, o, auth))
    return;
  request_ctx *c = ctx_new(o, req, auth);
  c->order_no = strdup(segs[0]);
  const char *v[1] = {segs[0]};
  pg_tx *tx = pg_tx_new();
  pg_tx_add(tx, SQL_HISTORY_ORDER, 1, v, NULL, NULL);
  pg_tx_add(tx, SQL_HISTORY, 1, v, NULL, NULL);
  pg_tx_add(tx, SQL_HISTORY_PENDING, 1, v, NULL, NULL);
  pg_conn_submit(o->pg, tx, on_history, c);
}

/* --- GET /v1/actions?status=pending|refused|done|all&limit= --------------- */

static void on_actions(const pg_result_set *rs, void *arg) {
  request_ctx *c = arg;
  if (!rs->ok) {
    http_reply_error(c->req, 503, "unavailable", "database unavailable", NULL);
    ctx_free(c);
    return;
  }
  PGresult *a = rs->res[0];
  json_t *rows = json_array();
  for (int i = 0; i < PQntuples(a); i++) {
    if (!auth_scope_covers(c->scope, PQgetvalue(a, i, 11)))
      continue;
    bool done = !PQgetisnull(a, i, 10);
    json_t *row = json_object();
    json_object_set_new(row, "action_id", text_or_null(a, i, 0));
    json_object_set_new(row, "order_no", text_or_null(a, i, 1));
    json_object_set_new(row, "title", text_or_null(a, i, 14));
    json_object_set_new(row, "action", text_or_null(a, i, 2));
    json_object_set_new(row, "answer", text_or_null(a, i, 3));
    json_object_set_new(row, "actor", text_or_null(a, i, 4));
    json_object_set_new(row, "created_at", time_or_null(a, i, 5));
    json_object_set_new(row, "sent_at", time_or_null(a, i, 6));
    json_object_set_new(row, "status",
                        json_string(!done ? "pending"
                                    : PQgetvalue(a, i, 7)[0] == 't' ? "done" : "refused"));
    json_object_set_new(row, "ok",
                        PQgetisnull(a, i, 7) ? json_null()
                                             : json_boolean(PQgetvalue(a, i, 7)[0] == 't'));
    json_object_set_new(row, "code", text_or_null(a, i, 8));
    json_object_set_new(row, "message", text_or_null(a, i, 9));
    json_object_set_new(row, "done_at", time_or_null(a, i, 10));
    json_t *params = json_loads(PQgetvalue(a, i, 12), 0, NULL);
    json_object_set_new(row, "params", params ? params : json_object());
    json_object_set_new(row, "seq", json_integer(strtoll(PQgetvalue(a, i, 13), NULL, 10)));
    json_array_append_new(rows, row);
  }
  http_reply_json(c->req, 200, json_pack("{s:o, s:I}", "actions", rows,
                                         "count", (json_int_t)json_array_size(rows)));
  ctx_free(c);
}

static void get_actions(struct evhttp_request *req, const auth_ctx *auth, char **segs, int nsegs,
                        void *arg) {
  (void)segs;
  (void)nsegs;
  office *o = arg;
  if (refuse(req, o, auth))
    return;
  const char *status = http_query(req, "status");
  if (!status)
    status = "all";
  if (strcmp(status, "pending") != 0 && strcmp(status, "refused") != 0 &&
      strcmp(status, "done") != 0 && strcmp(status, "all") != 0) {
    http_reply_error(req, 422, "invalid_value", "status: pending, refused, done or all",
                     "status");
    return;
  }
  long limit;
  if (!query_limit(req, 100, 1000, &limit))
    return;
  request_ctx *c = ctx_new(o, req, auth);
  char pattern[80], lim[16];
  scope_like_pattern(c->scope, pattern, sizeof pattern);
  snprintf(lim, sizeof lim, "%ld", limit);
  const char *v[3] = {pattern, status, lim};
  pg_tx *tx = pg_tx_new();
  pg_tx_add(tx, SQL_ACTIONS, 3, v, NULL, NULL);
  pg_conn_submit(o->pg, tx, on_actions, c);
}

/* --- GET /v1/link: is the centre reachable, what waits for it ------------ */

static void on_link(const pg_result_set *rs, void *arg) {
  request_ctx *c = arg;
  if (!rs->ok) {
    http_reply_error(c->req, 503, "unavailable", "database unavailable", NULL);
    ctx_free(c);
    return;
  }
  PGresult *r = rs->res[0];
  router_link *link = c->o->link;
  int64_t silence = link ? router_link_silence_ms(link) : -1;
  bool down = !link || router_link_down(link);
  json_t *body = json_object();
  json_object_set_new(body, "handler_id", json_string(c->o->handler_id));
  json_object_set_new(body, "router_reachable", json_boolean(!down));
  json_object_set_new(body, "router_silence_ms", silence >= 0 ? json_integer(silence) : json_null());
  json_object_set_new(body, "pending", json_integer(strtoll(PQgetvalue(r, 0, 0), NULL, 10)));
  json_object_set_new(body, "refused", json_integer(strtoll(PQgetvalue(r, 0, 1), NULL, 10)));
  json_object_set_new(body, "oldest_pending_at", time_or_null(r, 0, 2));
  http_reply_json(c->req, 200, body);
  ctx_free(c);
}

static void get_link(struct evhttp_request *req, const auth_ctx *auth, char **segs, int nsegs,
                     void *arg) {
  (void)segs;
  (void)nsegs;
  office *o = arg;
  if (refuse(req, o, auth))
    return;
  request_ctx *c = ctx_new(o, req, auth);
  char pattern[80];
  scope_like_pattern(c->scope, pattern, sizeof pattern);
  const char *v[1] = {pattern};
  pg_tx *tx = pg_tx_new();
  pg_tx_add(tx, SQL_LINK_COUNTS, 1, v, NULL, NULL);
  pg_conn_submit(o->pg, tx, on_link, c);
}

static bool ready(void *arg) {
  office *o = arg;
  return pg_conn_ready(o->pg) && o->link && router_link_hello_sent(o->link);
}

void api_routes(office *o) {
  http_route(o->http, EVHTTP_REQ_GET, "/v1/queue", 0, get_queue, o);
  http_route(o->http, EVHTTP_REQ_GET, "/v1/orders/*", 0, get_order, o);
  http_route(o->http, EVHTTP_REQ_GET, "/v1/orders/*/history", 0, get_history, o);
  http_route(o->http, EVHTTP_REQ_POST, "/v1/orders/*/actions", 0, post_action, o);
  http_route(o->http, EVHTTP_REQ_GET, "/v1/actions", 0, get_actions, o);
  http_route(o->http, EVHTTP_REQ_GET, "/v1/link", 0, get_link, o);
  http_set_ready(o->http, ready, o);
}
