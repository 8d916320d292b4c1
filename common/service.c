/* service — common start-up and shutdown for every service's main. */
#include "service.h"

#include <event2/event.h>
#include <signal.h>
#include <stdlib.h>

#include "clock.h"
#include "config.h"
#include "log.h"

static struct event *sigint_ev, *sigterm_ev;

static void on_signal(evutil_socket_t sig, short what, void *arg) {
  struct event_base *base = arg;
  log_info("signal %d: stopping", (int)sig);
  event_base_loopexit(base, NULL);
}

struct event_base *service_init(const char *name) {
  log_init(name);
  signal(SIGPIPE, SIG_IGN);
  if (clock_init(cfg_str("KESU_CLOCK", "real")) != 0) exit(2);
  struct event_base *base = event_base_new();
  if (!base) {
    log_error("event_base_new failed");
    exit(1);
  }
  sigint_ev = evsignal_new(base, SIGINT, on_signal, base);
  sigterm_ev = evsignal_new(base, SIGTERM, on_signal, base);
  event_add(sigint_ev, NULL);
  event_add(sigterm_ev, NULL);
  return base;
}

int service_run(struct event_base *base) {
  cfg_print();
  log_info("started");
  int rc = event_base_dispatch(base);
  event_free(sigint_ev);
  event_free(sigterm_ev);
  sigint_ev = sigterm_ev = NULL;
  log_info("stopped");
  return rc < 0 ? 1 : 0;
}
