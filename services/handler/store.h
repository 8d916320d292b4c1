/* store — dispatched work orders into handler.orders, then acknowledged.
 *
 * Idempotent by order_no (INSERT … ON CONFLICT DO NOTHING): a resent or
 * repeated dispatch changes nothing and is acknowledged again. Inserts are
 * group-committed: what arrives while one transaction is in flight goes into
 * the next; the acks for a batch go out only after it commits, so an
 * acknowledged order is always in the local queue.
 */
#ifndef KESU_HANDLER_STORE_H
#define KESU_HANDLER_STORE_H
#include "envelope.h"
#include "link.h"
#include "pg.h"

struct event_base;
typedef struct order_store order_store;

/* handler_id: this process's id, recorded as the holder of what it stores
 * (handler.orders.handler_id; the previous holder goes to former_handlers). */
order_store *order_store_new(struct event_base *base, pg_conn *pg, router_link *link,
                             const char *handler_id);
void order_store_destroy(order_store **self);
/* link may be set after creation (the link's callbacks need the store first). */
void order_store_set_link(order_store *self, router_link *link);
void order_store_dispatch(order_store *self, const Kesu__V1__Dispatch *d);
/* The router moved the order to another unit: it leaves the local queue
 * (state 'moved') until a new dispatch brings it back. */
void order_store_recall(order_store *self, const Kesu__V1__Recall *r);
/* Steps taken on an order elsewhere (the router's OrderUpdate). */
void order_store_update(order_store *self, const Kesu__V1__OrderUpdate *u);
/* Adds the statements that copy history entries into handler.order_history
 * (idempotent; entries with invalid UTF-8 are skipped). */
void store_add_history(pg_tx *tx, Kesu__V1__HistoryEntry *const *h, size_t n);
/* Adds the statement that sets an order's workflow state (closed there: closed here). */
void store_add_wf_state(pg_tx *tx, const char *order_no, const char *wf_state);
#endif
