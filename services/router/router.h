/* router — the shared state of the router service: the parts main.c wires
 * together and the modules reach through it.
 *
 *   orders.c      work orders from intake's ComplaintReceived stream (routing
 *                 rules, WorkOrderCreated, start-up reload of undispatched orders)
 *   dispatcher.c  the ROUTER socket to regional handlers: dispatch, ack, resend
 *   actions.c     staff actions sent by handlers (close), applied once per id
 *   api.c         HTTP: order and handler views
 */
#ifndef KESU_ROUTER_ROUTER_H
#define KESU_ROUTER_ROUTER_H
#include <stdbool.h>
#include <stdint.h>

#include "auth.h"
#include "consumer.h"
#include "envelope.h"
#include "http.h"
#include "outbox.h"
#include "pg.h"
#include "rules.h"
#include "strmap.h"
#include "units.h"

struct event_base;
typedef struct dispatcher dispatcher;

typedef struct router {
  struct event_base *base;
  pg_conn *pg;      /* writes: intake batches, dispatch journal, actions */
  pg_conn *pg_read; /* outbox publisher, HTTP reads, token cache */
  pg_conn *pg_dispatch; /* dispatcher: dispatch journal and acks */
  auth_cache *auth;
  http_server *http;
  outbox_publisher *publisher;
  dispatcher *dispatcher;
  consumer *intake;     /* created once rules and open orders are loaded */
  routing_rules *rules; /* NULL until first loaded */
  unit_tree *units;     /* router.units, loaded with the rules */
  bool rules_loading, orders_reloading, orders_reloaded;
  bool holders_checked; /* start: handlers holding orders and not back in time are gone */
  int64_t started_ms;   /* monotonic */
  strmap *units_pending;     /* order_no -> unit chosen in apply (malloc'd), until committed */
  struct event *orders_tick; /* retries loading rules / open orders until both are in */
  strmap *order_busy;        /* order_no -> the action being applied (actions.c), others queued */
} router;

/* orders.c */
void orders_start(router *r);
void orders_stop(router *r);

/* orders.c: an order whose holder unit changed (state back to 'created') goes
 * to the dispatcher again. */
void orders_redispatch(router *r, const char *order_no);
/* orders.c: handler_id is gone: the open orders it acknowledged are dispatched
 * again to a handler serving their unit (the ack of that dispatch moves them). */
void orders_failover(router *r, const char *handler_id);

/* actions.c: an Action from handler_id (the link's routing id). */
void actions_handle(router *r, const char *handler_id, const Kesu__V1__Action *action);
/* actions.c: POST /v1/orders/{order_no}/actions by centre/HQ staff; answers req. */
void actions_http(router *r, struct evhttp_request *req, const auth_ctx *auth,
                  const char *order_no, json_t *body);

/* api.c */
void api_routes(router *r);
#endif
