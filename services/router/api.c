/* api — the router's HTTP views: one work order with its dispatches and
 * actions (admin, or a token whose scope covers the order's region — others
 * get 404, R-50), and the live handlers (admin). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "dispatcher.h"
#include "http.h"
#include "log.h"
#include "router.h"

static const char SQL_ORDER[] =
    "SELECT order_no, unit_id, region, state, handler_id, tier, kind, stream, channel, "
    "business_type, router.ts_ms(accepted_at), router.ts_ms(promised_by), "
    "router.ts_ms(created_at), router.ts_ms(closed_at), answer, wf_state, holder_unit, "
    "dispatcher_unit, priority, repeat_of, repeat_count, "
    "(SELECT coalesce(json_agg(x.order_no ORDER BY x.created_at, x.order_no), '[]')::text "
    " FROM router.work_orders x WHERE x.repeat_of = w.order_no), "
    "vip, customer_level, home_region, problem_type, area, router.ts_ms(arrived_at) "
    "FROM router.work_orders w WHERE order_no = $1";
static const char SQL_DISPATCHES[] =
    "SELECT dispatch_id, handler_id, router.ts_ms(created_at), router.ts_ms(acked_at) "
    "FROM router.dispatches WHERE order_no = $1 ORDER BY created_at, dispatch_id";
static const char SQL_ACTIONS[] =
    "SELECT action_id, action, actor, router.ts_ms(at), ok, code, message, handler_id "
    "FROM router.actions WHERE order_no = $1 ORDER BY created_at, action_id";

typedef struct {
  struct evhttp_request *req;
  bool admin;
  char scope[32];
} order_view;

static json_t *json_text(PGresult *r, int row, int col) {
  return PQgetisnull(r, row, col) ? json_null() : json_string(PQgetvalue(r, row, col));
}

static json_t *json_time(PGresult *r, int row, int col) {
  if (PQgetisnull(r, row, col))
    return json_null();
  char buf[40];
  clock_format_ms(strtoll(PQgetvalue(r, row, col), NULL, 10), buf, sizeof buf);
  return json_string(buf);
}

static json_t *json_bool_or_null(PGresult *r, int row, int col) {
  return PQgetisnull(r, row, col) ? json_null() : json_boolean(PQgetvalue(r, row, col)[0] == 't');
}

static void on_order(const pg_result_set *rs, void *arg) {
  order_view *ov = arg;
  struct evhttp_request *req = ov->req;
  if (!rs->ok) {
    log_warn("api: order lookup failed: %s", rs->error);
    http_reply_error(req, 503, "unavailable", "database unavailable", NULL);
    free(ov);
    return;
  }
  PGresult *o = rs->res[0];
  if (PQntuples(o) != 1 ||
      (!ov->admin && !auth_scope_covers(ov->scope, PQgetvalue(o, 0, 2)) &&
       !(*PQgetvalue(o, 0, 24) && auth_scope_covers(ov->scope, PQgetvalue(o, 0, 24))))) {
    http_reply_error(req, 404, "not_found", "no such work order", NULL);
    free(ov);
    return;
  }
  json_t *body = json_object();
  const char *names[] = {"order_no", "unit_id", "region", "state",   "handler_id",
                         "tier",     "kind",    "stream", "channel", "business_type"};
  for (int i = 0; i < 10; i++)
    json_object_set_new(body, names[i], json_text(o, 0, i));
  json_object_set_new(body, "accepted_at", json_time(o, 0, 10));
  json_object_set_new(body, "promised_by", json_time(o, 0, 11));
  json_object_set_new(body, "created_at", json_time(o, 0, 12));
  json_object_set_new(body, "closed_at", json_time(o, 0, 13));
  json_object_set_new(body, "answer", json_text(o, 0, 14));
  json_object_set_new(body, "wf_state", json_text(o, 0, 15));
  json_object_set_new(body, "holder_unit", json_text(o, 0, 16));
  json_object_set_new(body, "dispatcher_unit", json_text(o, 0, 17));
  json_object_set_new(body, "priority", json_integer(atoi(PQgetvalue(o, 0, 18))));
  /* a repeat contact names the open order it was linked to; that order
   * counts and lists its repeats */
  json_object_set_new(body, "repeat_of", json_text(o, 0, 19));
  json_object_set_new(body, "repeat", json_boolean(!PQgetisnull(o, 0, 19)));
  json_object_set_new(body, "repeat_count", json_integer(atoi(PQgetvalue(o, 0, 20))));
  json_t *repeats = json_loads(PQgetvalue(o, 0, 21), 0, NULL);
  json_object_set_new(body, "repeats", repeats ? repeats : json_array());
  json_object_set_new(body, "vip", json_boolean(PQgetvalue(o, 0, 22)[0] == 't'));
  json_object_set_new(body, "customer_level", json_text(o, 0, 23));
  json_object_set_new(body, "home_region", json_text(o, 0, 24));
  json_object_set_new(body, "problem_type", json_text(o, 0, 25));
  json_object_set_new(body, "area", json_text(o, 0, 26));
  json_object_set_new(body, "arrived_at", json_time(o, 0, 27));
  PGresult *d = rs->res[1];
  json_t *dispatches = json_array();
  for (int i = 0; i < PQntuples(d); i++)
    json_array_append_new(dispatches,
                          json_pack("{s:o, s:o, s:o, s:o}", "dispatch_id", json_text(d, i, 0),
                                    "handler_id", json_text(d, i, 1), "created_at",
                                    json_time(d, i, 2), "acked_at", json_time(d, i, 3)));
  json_object_set_new(body, "dispatches", dispatches);
  PGresult *a = rs->res[2];
  json_t *actions = json_array();
  for (int i = 0; i < PQntuples(a); i++)
    json_array_append_new(actions, json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
                                             "action_id", json_text(a, i, 0), "action",
                                             json_text(a, i, 1), "actor", json_text(a, i, 2), "at",
                                             json_time(a, i, 3), "ok", json_bool_or_null(a, i, 4),
                                             "code", json_text(a, i, 5), "message",
                                             json_text(a, i, 6), "handler_id", json_text(a, i, 7)));
  json_object_set_new(body, "actions", actions);
  http_reply_json(req, 200, body);
  free(ov);
}

static void get_order(struct evhttp_request *req, const auth_ctx *auth, char **segs, int nsegs,
                      void *arg) {
  router *r = arg;
  if (nsegs < 1) {
    http_reply_error(req, 404, "not_found", "no such work order", NULL);
    return;
  }
  if (!pg_conn_ready(r->pg_read)) {
    http_reply_error(req, 503, "unavailable", "database unavailable", NULL);
    return;
  }
  order_view *ov = calloc(1, sizeof *ov);
  ov->req = req;
  ov->admin = auth && auth->role && strcmp(auth->role, "admin") == 0;
  snprintf(ov->scope, sizeof ov->scope, "%s", auth && auth->scope ? auth->scope : "");
  if (!ov->admin && !(auth && auth->scope)) {
    free(ov);
    http_reply_error(req, 404, "not_found", "no such work order", NULL);
    return;
  }
  const char *v[1] = {segs[0]};
  pg_tx *tx = pg_tx_new();
  pg_tx_add(tx, SQL_ORDER, 1, v, NULL, NULL);
  pg_tx_add(tx, SQL_DISPATCHES, 1, v, NULL, NULL);
  pg_tx_add(tx, SQL_ACTIONS, 1, v, NULL, NULL);
  pg_conn_submit(r->pg_read, tx, on_order, ov);
}

/* --- history and actions ------------------------------------------------- */

static const char SQL_HISTORY_ORDER[] =
    "SELECT region, wf_state, holder_unit, dispatcher_unit, order_no, home_region "
    "FROM router.work_orders "
    "WHERE order_no = $1";
static const char SQL_HISTORY[] =
    "SELECT seq, action, actor, actor_unit, router.ts_ms(at), reason, from_unit, to_unit, answer, "
    "from_state, to_state, details::text FROM router.order_history WHERE order_no = $1 ORDER BY seq";

static void on_history(const pg_result_set *rs, void *arg) {
  order_view *ov = arg;
  struct evhttp_request *req = ov->req;
  if (!rs->ok) {
    http_reply_error(req, 503, "unavailable", "database unavailable", NULL);
    free(ov);
    return;
  }
  PGresult *o = rs->res[0], *h = rs->res[1];
  /* the raised-in region's scope, or the home region's (R-05: its centre answers) */
  if (PQntuples(o) != 1 ||
      (!ov->admin && !auth_scope_covers(ov->scope, PQgetvalue(o, 0, 0)) &&
       !(*PQgetvalue(o, 0, 5) && auth_scope_covers(ov->scope, PQgetvalue(o, 0, 5))))) {
    http_reply_error(req, 404, "not_found", "no such work order", NULL);
    free(ov);
    return;
  }
  json_t *rows = json_array();
  const char *names[] = {"seq",    "action",    "actor",   "actor_unit", "at",         "reason",
                         "from_unit", "to_unit", "answer", "from_state", "to_state"};
  for (int i = 0; i < PQntuples(h); i++) {
    json_t *row = json_object();
    json_object_set_new(row, "seq", json_integer(strtol(PQgetvalue(h, i, 0), NULL, 10)));
    for (int k = 1; k < 11; k++)
      json_object_set_new(row, names[k], k == 4 ? json_time(h, i, k) : json_text(h, i, k));
    json_t *d = json_loads(PQgetvalue(h, i, 11), 0, NULL);
    json_object_set_new(row, "details", d ? d : json_object());
    json_array_append_new(rows, row);
  }
  http_reply_json(req, 200,
                  json_pack("{s:o, s:o, s:o, s:o, s:o}", "order_no", json_text(o, 0, 4),
                            "state", json_text(o, 0, 1), "holder_unit", json_text(o, 0, 2),
                            "dispatcher_unit", json_text(o, 0, 3), "history", rows));
  free(ov);
}

static void get_history(struct evhttp_request *req, const auth_ctx *auth, char **segs, int nsegs,
                        void *arg) {
  router *r = arg;
  if (nsegs < 1 || !pg_conn_ready(r->pg_read)) {
    http_reply_error(req, 503, "unavailable", "database unavailable", NULL);
    return;
  }
  order_view *ov = calloc(1, sizeof *ov);
  ov->req = req;
  ov->admin = auth && auth->role && strcmp(auth->role, "admin") == 0;
  snprintf(ov->scope, sizeof ov->scope, "%s", auth && auth->scope ? auth->scope : "");
  if (!ov->admin && !(auth && auth->scope)) {
    free(ov);
    http_reply_error(req, 404, "not_found", "no such work order", NULL);
    return;
  }
  const char *v[1] = {segs[0]};
  pg_tx *tx = pg_tx_new();
  pg_tx_add(tx, SQL_HISTORY_ORDER, 1, v, NULL, NULL);
  pg_tx_add(tx, SQL_HISTORY, 1, v, NULL, NULL);
  pg_conn_submit(r->pg_read, tx, on_history, ov);
}

static void post_action(struct evhttp_request *req, const auth_ctx *auth, char **segs, int nsegs,
                        void *arg) {
  router *r = arg;
  if (!auth || !auth->role ||
      (strcmp(auth->role, "admin") != 0 && strcmp(auth->role, "centre") != 0)) {
    http_reply_error(req, 403, "forbidden", "admin or centre role required", NULL);
    return;
  }
  if (nsegs < 1)
    return;
  json_t *body = http_read_json(req);
  if (!body)
    return;
  actions_http(r, req, auth, segs[0], body);
  json_decref(body);
}

static void get_handlers(struct evhttp_request *req, const auth_ctx *auth, char **segs, int nsegs,
                         void *arg) {
  (void)segs;
  (void)nsegs;
  router *r = arg;
  if (!auth || !auth->role || strcmp(auth->role, "admin") != 0) {
    http_reply_error(req, 403, "forbidden", "admin role required", NULL);
    return;
  }
  json_t *handlers = dispatcher_handlers_json(r->dispatcher);
  json_t *body =
      json_pack("{s:I, s:o, s:I, s:I}", "count", (json_int_t)json_array_size(handlers), "handlers",
                handlers, "orders_waiting", (json_int_t)dispatcher_waiting(r->dispatcher),
                "orders_in_flight", (json_int_t)dispatcher_in_flight(r->dispatcher));
  http_reply_json(req, 200, body);
}

static bool ready(void *arg) {
  router *r = arg;
  return pg_conn_ready(r->pg) && r->intake && consumer_live(r->intake);
}

void api_routes(router *r) {
  http_route(r->http, EVHTTP_REQ_GET, "/v1/orders/*", 0, get_order, r);
  http_route(r->http, EVHTTP_REQ_GET, "/v1/orders/*/history", 0, get_history, r);
  http_route(r->http, EVHTTP_REQ_POST, "/v1/orders/*/actions", 0, post_action, r);
  http_route(r->http, EVHTTP_REQ_GET, "/v1/handlers", 0, get_handlers, r);
  http_set_ready(r->http, ready, r);
}
