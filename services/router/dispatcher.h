/* dispatcher — hands work orders to regional handlers (ARCHITECTURE §4,
 * docs/internals.md "Router ⇄ handler").
 *
 * Owns the ROUTER socket handlers connect to (DEALER, identity = handler_id),
 * the registry of live handlers, and every order waiting for or in flight to
 * a handler. An order is dispatched to one live handler serving its unit that
 * has free credit; unacknowledged after 2 s it is resent with the same
 * dispatch_id (to another handler, with a new id, if its handler is gone —
 * unseen for 3 s). There is never a second dispatch for an order while one is
 * in flight to a live handler. Acks are written in batches: one transaction
 * per batch records the dispatches sent and applies router.ack_dispatch, which
 * emits WorkOrderDispatched once per order. An order leaves memory when its
 * ack is committed; until then a restart reloads it from the database.
 * When a handler is gone, the gone callback (dispatcher_set_gone) lets the
 * router dispatch again the orders it had acknowledged (orders_failover).
 */
#ifndef KESU_ROUTER_DISPATCHER_H
#define KESU_ROUTER_DISPATCHER_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "envelope.h"
#include "pg.h"
#include "priority.h"

struct event_base;
typedef struct dispatcher dispatcher;

/* An Action arrived from handler_id; the message is valid during the call. */
typedef void (*dispatcher_action_fn)(const char *handler_id, const Kesu__V1__Action *action,
                                     void *arg);


/* NULL if the endpoint cannot be bound. */
dispatcher *dispatcher_new(struct event_base *base, pg_conn *pg, const char *endpoint,
                           dispatcher_action_fn on_action, void *arg);
void dispatcher_destroy(dispatcher **self);
/* A work order in state 'created' to dispatch. Arguments are copied; complaint
 * is a packed kesu.v1.Complaint. Ignored if the order is already held. */
void dispatcher_enqueue(dispatcher *self, const char *order_no, const char *unit_id,
                        const char *region, const unsigned char *complaint, size_t complaint_len,
                        int64_t due_at);
/* dispatcher_enqueue of an order reloaded at start-up whose latest dispatch
 * (dispatch_id to handler_id) was never acknowledged: it stays with that
 * handler, same dispatch_id, for the handler timeout (sent again as soon as
 * the handler says Hello) before it goes to another. */
void dispatcher_enqueue_held(dispatcher *self, const char *order_no, const char *unit_id,
                             const char *region, const unsigned char *complaint,
                             size_t complaint_len, int64_t due_at, const char *dispatch_id,
                             const char *handler_id);
/* dispatcher_enqueue_held with extra as in dispatcher_enqueue_extra; dispatch_id and
 * handler_id may be NULL/invalid (then it is dispatcher_enqueue_extra). */
void dispatcher_enqueue_held_extra(dispatcher *self, const char *order_no, const char *unit_id,
                                   const char *region, const unsigned char *complaint,
                                   size_t complaint_len, int64_t due_at, const char *dispatch_id,
                                   const char *handler_id, const unsigned char *extra,
                                   size_t extra_len);
/* A handler was declared gone (no heartbeat for 3 s, or its link closed). */
typedef void (*dispatcher_gone_fn)(const char *handler_id, void *arg);
void dispatcher_set_gone(dispatcher *self, dispatcher_gone_fn fn, void *arg);
/* Whether handler_id is connected (said Hello, not yet gone). */
bool dispatcher_handler_live(dispatcher *self, const char *handler_id);
/* The order is held and not yet sent under its current dispatch (waiting for a
 * handler, its dispatch row being written, or reloaded for a handler not back). */
bool dispatcher_pending(dispatcher *self, const char *order_no);
/* The order was closed: it leaves the dispatcher. */
void dispatcher_forget(dispatcher *self, const char *order_no);
/* The handler the order's current dispatch went to if it is in flight or
 * being acknowledged, else NULL. */
const char *dispatcher_handler_of(dispatcher *self, const char *order_no);
/* Sends an ActionResult to handler_id; 0 or -1 (link gone: the handler resends). */
int dispatcher_reply(dispatcher *self, const char *handler_id, const Kesu__V1__ActionResult *res);
/* Tells handler_id the order is no longer its (now held by holder_unit). Best effort. */
void dispatcher_recall(dispatcher *self, const char *handler_id, const char *order_no,
                       const char *holder_unit);
/* Steps taken on an order held by handler_id elsewhere. Best effort. */
void dispatcher_update(dispatcher *self, const char *handler_id, const Kesu__V1__OrderUpdate *u);
/* dispatcher_enqueue with extra: a packed kesu.v1.WorkOrder whose wf_state and
 * history go with the dispatch (an order moved to another unit). */
void dispatcher_enqueue_extra(dispatcher *self, const char *order_no, const char *unit_id,
                              const char *region, const unsigned char *complaint,
                              size_t complaint_len, int64_t due_at, const unsigned char *extra,
                              size_t extra_len);
/* [{handler_id, units, credit, in_flight, ...}] — new reference. */
json_t *dispatcher_handlers_json(dispatcher *self);
size_t dispatcher_waiting(const dispatcher *self);
size_t dispatcher_in_flight(const dispatcher *self);
#endif
