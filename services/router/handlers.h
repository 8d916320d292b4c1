/* handlers — the regional handlers connected to the router (ARCHITECTURE §4):
 * which units each serves, how much credit it gave (the most dispatches it
 * takes unacknowledged), and when it was last heard from. Pure bookkeeping:
 * the dispatcher owns the socket and the orders.
 *
 * Times are monotonic milliseconds (liveness must not jump with a
 * controllable business clock).
 */
#ifndef KESU_ROUTER_HANDLERS_H
#define KESU_ROUTER_HANDLERS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct handler_link {
  char *id;     /* handler_id = the DEALER's routing id */
  char **units; /* unit ids it serves */
  size_t nunits;
  bool all_units;  /* "*" */
  uint32_t credit; /* dispatches it accepts in flight */
  uint32_t inflight;
  int64_t connected_ms, last_seen_ms;
  bool dead; /* a send failed: dropped at the next expiry */
  uint64_t dispatched, acked;
} handler_link;

typedef struct handler_set handler_set;

handler_set *handler_set_new(void);
void handler_set_destroy(handler_set **self);
/* A Hello: adds the handler or updates its units and credit. Returns it. */
handler_link *handler_set_hello(handler_set *self, const char *id, const char *const *units,
                                size_t nunits, uint32_t credit, int64_t now_ms);
handler_link *handler_set_find(handler_set *self, const char *id);
bool handler_link_serves(const handler_link *h, const char *unit_id);
/* The live handler serving unit_id with the most free credit; ties are taken
 * in turn. NULL if none can take an order now. */
handler_link *handler_set_pick(handler_set *self, const char *unit_id);
/* Drops handlers marked dead or not seen since now_ms - timeout_ms; gone()
 * runs for each just before it is freed. Returns how many were dropped. */
int handler_set_expire(handler_set *self, int64_t now_ms, int64_t timeout_ms,
                       void (*gone)(handler_link *h, void *arg), void *arg);
size_t handler_set_count(const handler_set *self);
handler_link *handler_set_at(handler_set *self, size_t i);
#endif
