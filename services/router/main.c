/* kesu-router — work orders from complaints, dispatched to regional handlers
 * (ARCHITECTURE §1, §4). Wiring only; see router.h for the modules. */
#include <event2/event.h>
#include <stdlib.h>

#include "config.h"
#include "dispatcher.h"
#include "log.h"
#include "router.h"
#include "service.h"
#include "zloop.h"

static void on_action(const char *handler_id, const Kesu__V1__Action *action, void *arg) {
  actions_handle(arg, handler_id, action);
}

int main(void) {
  router r = {0};
  r.base = service_init("router");
  r.pg = pg_conn_new(r.base, cfg_pg_conninfo("router"), "router");
  r.pg_read = pg_conn_new(r.base, cfg_pg_conninfo("router"), "router-read");
  /* The dispatch journal and acks on a connection of their own, so a
   * dispatch never waits behind a 500-event consumer batch. */
  r.pg_dispatch = pg_conn_new(r.base, cfg_pg_conninfo("router"), "router-dispatch");
  r.auth = auth_cache_new(r.base, r.pg_read);

  char host[256];
  int port;
  cfg_http_listen("ROUTER", PORT_ROUTER_HTTP, host, sizeof host, &port);
  r.http = http_server_new(r.base, host, port, r.auth);
  r.publisher = outbox_publisher_new(r.base, r.pg_read, "router", "router",
                                     cfg_endpoint("KESU_ROUTER_PUB", PORT_ROUTER_PUB),
                                     cfg_endpoint("KESU_ROUTER_REPLAY", PORT_ROUTER_REPLAY));
  r.dispatcher = dispatcher_new(
      r.base, r.pg_dispatch, cfg_endpoint("KESU_ROUTER_DISPATCH", PORT_ROUTER_DISPATCH), on_action, &r);
  if (!r.http || !r.publisher || !r.dispatcher) {
    log_error("router: cannot bind its endpoints; exiting");
    return 1;
  }
  api_routes(&r);
  orders_start(&r);

  int rc = service_run(r.base);

  orders_stop(&r);
  http_server_destroy(&r.http);
  outbox_publisher_destroy(&r.publisher);
  auth_cache_destroy(&r.auth);
  pg_conn_destroy(&r.pg);
  pg_conn_destroy(&r.pg_read);
  pg_conn_destroy(&r.pg_dispatch);
  dispatcher_destroy(&r.dispatcher);
  zloop_term();
  event_base_free(r.base);
  return rc;
}
