/* kesu-handler — a regional office's handler (ARCHITECTURE §4): receives
 * work orders from the router, keeps the local queue, serves the workbench
 * and sends staff actions back. Wiring only; see office.h for the modules. */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "actions.h"
#include "config.h"
#include "link.h"
#include "log.h"
#include "office.h"
#include "service.h"
#include "store.h"
#include "web.h"
#include "zloop.h"

enum { MAX_UNITS = 256 };

static void on_dispatch(const Kesu__V1__Dispatch *d, void *arg) {
  office *o = arg;
  order_store_dispatch(o->store, d);
}

static void on_recall(const Kesu__V1__Recall *r, void *arg) {
  office *o = arg;
  order_store_recall(o->store, r);
}

static void on_update(const Kesu__V1__OrderUpdate *u, void *arg) {
  office *o = arg;
  order_store_update(o->store, u);
}

static void on_result(const Kesu__V1__ActionResult *r, void *arg) {
  office *o = arg;
  pending_actions_on_result(o->actions, r);
}

/* "u1, u2,u3" -> trimmed, non-empty items; returns the count. */
static size_t split_units(char *list, char **out, size_t max) {
  size_t n = 0;
  char *save = NULL;
  for (char *t = strtok_r(list, ",", &save); t && n < max; t = strtok_r(NULL, ",", &save)) {
    while (*t == ' ' || *t == '\t')
      t++;
    char *end = t + strlen(t);
    while (end > t && (end[-1] == ' ' || end[-1] == '\t'))
      *--end = '\0';
    if (*t)
      out[n++] = t;
  }
  return n;
}

int main(void) {
  office o = {0};
  o.base = service_init("handler");
  o.handler_id = cfg_str("KESU_HANDLER_ID", "handler-1");
  char *units_list = strdup(cfg_str("KESU_HANDLER_UNITS", "*"));
  char *units[MAX_UNITS];
  size_t nunits = split_units(units_list, units, MAX_UNITS);
  if (nunits == 0)
    units[nunits++] = "*";
  long credit = cfg_long("KESU_HANDLER_CREDIT", 1000);
  if (credit < 1)
    credit = 1;

  o.pg = pg_conn_new(o.base, cfg_pg_conninfo("handler"), "handler");
  o.auth = auth_cache_new(o.base, o.pg);
  char host[256];
  int port;
  cfg_http_listen("HANDLER", PORT_HANDLER_HTTP, host, sizeof host, &port);
  o.http = http_server_new(o.base, host, port, o.auth);
  if (!o.http) {
    log_error("handler: cannot listen for HTTP; exiting");
    return 1;
  }
  o.store = order_store_new(o.base, o.pg, NULL, o.handler_id);
  o.actions = pending_actions_new(o.base, o.pg, o.handler_id);
  router_link_events ev = {
      .on_dispatch = on_dispatch, .on_result = on_result, .on_recall = on_recall, .on_update = on_update,
      .arg = &o};
  o.link = router_link_new(o.base, cfg_endpoint("KESU_ROUTER_DISPATCH", PORT_ROUTER_DISPATCH),
                           o.handler_id, (const char *const *)units, nunits, (uint32_t)credit, &ev);
  free(units_list);
  if (!o.link) {
    log_error("handler: cannot open the link to the router; exiting");
    return 1;
  }
  order_store_set_link(o.store, o.link);
  pending_actions_set_link(o.actions, o.link);
  api_routes(&o);
  web_routes(o.http);

  int rc = service_run(o.base);

  pending_actions_destroy(&o.actions); /* answers waiting requests before HTTP goes */
  http_server_destroy(&o.http);
  order_store_destroy(&o.store);
  router_link_destroy(&o.link);
  auth_cache_destroy(&o.auth);
  pg_conn_destroy(&o.pg);
  zloop_term();
  event_base_free(o.base);
  return rc;
}
