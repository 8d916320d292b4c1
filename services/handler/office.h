/* office — the shared state of the handler service: a regional office's
 * process (ARCHITECTURE §4). Staff work from its queue; it keeps its copy of
 * the orders and its not-yet-answered actions in its own Postgres schema so
 * it keeps working while the link to the centre is down.
 *
 *   link.c     the DEALER link to the router: Hello, dispatches in, acks and
 *              actions out, action results in
 *   store.c    dispatched orders into handler.orders (batched), then acked
 *   actions.c  staff actions: recorded, sent, resent until answered
 *   views.c    what the workbench shows and accepts (pure JSON)
 *   api.c      HTTP: queue, order, history, actions; the action list
 *              (pending/refused) and the link status for the workbench
 */
#ifndef KESU_HANDLER_OFFICE_H
#define KESU_HANDLER_OFFICE_H
#include <stdbool.h>
#include <stdint.h>

#include "auth.h"
#include "envelope.h"
#include "http.h"
#include "pg.h"

struct event_base;
typedef struct router_link router_link;
typedef struct order_store order_store;
typedef struct pending_actions pending_actions;

typedef struct office {
  struct event_base *base;
  pg_conn *pg;
  auth_cache *auth;
  http_server *http;
  router_link *link;
  order_store *store;
  pending_actions *actions;
  const char *handler_id;
} office;

void api_routes(office *o);
#endif
