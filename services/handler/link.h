/* link — the handler's DEALER link to the router (docs/internals.md
 * "Router ⇄ handler"). Identity = handler_id. Says Hello (units, credit) at
 * start and every second — the Hello doubles as heartbeat and lets a
 * restarted router learn the units again. Delivers Dispatch and ActionResult
 * to callbacks; sends DispatchAck and Action. Sends never block: while the
 * router is away ZeroMQ queues them, and both sides resend what matters.
 */
#ifndef KESU_HANDLER_LINK_H
#define KESU_HANDLER_LINK_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "envelope.h"

struct event_base;
typedef struct router_link router_link;

typedef struct {
  /* Messages are valid during the call only. */
  void (*on_dispatch)(const Kesu__V1__Dispatch *d, void *arg);
  void (*on_result)(const Kesu__V1__ActionResult *r, void *arg);
  void (*on_recall)(const Kesu__V1__Recall *r, void *arg); /* may be NULL */
  void (*on_update)(const Kesu__V1__OrderUpdate *u, void *arg); /* may be NULL */
  void *arg;
} router_link_events;

/* units: copied. NULL if the socket cannot be made. */
router_link *router_link_new(struct event_base *base, const char *endpoint, const char *handler_id,
                             const char *const *units, size_t nunits, uint32_t credit,
                             const router_link_events *events);
void router_link_destroy(router_link **self);
int router_link_ack(router_link *self, const char *dispatch_id, const char *order_no);
int router_link_send_action(router_link *self, const Kesu__V1__Action *action);
bool router_link_hello_sent(const router_link *self);
/* Milliseconds since the router was last heard from; -1 if never. */
int64_t router_link_silence_ms(const router_link *self);
/* The router is out of reach: silent for 3 s (it sends a heartbeat every
 * second), or never heard 3 s after the link was opened. */
bool router_link_down(const router_link *self);
/* Within 1.5 s of waking from a stall (this process said nothing for more
 * than 2.5 s: frozen or starved): the messages read now were queued meanwhile
 * and may be stale — the router may have counted this handler gone (3 s) and
 * given their orders to another (it resends a dispatch still current after 2 s). */
bool router_link_catching_up(const router_link *self);
#endif
