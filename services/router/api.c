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
    "router.ts_ms(created_at), router.ts_ms(closed_at), answer "
    "FROM router.work_orders WHERE order_no = $1";
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
  if (PQntuples(o) != 1 || (!ov->admin && !auth_scope_covers(ov->scope, PQgetvalue(o, 0, 2)))) {
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
  http_route(r->http, EVHTTP_REQ_GET, "/v1/handlers", 0, get_handlers, r);
  http_set_ready(r->http, ready, r);
}
