/* outbox — the producer side of a durable stream (ARCHITECTURE §3).
 *
 * A service writes its table changes and its events in one transaction:
 * outbox_tx_append adds the "append event" statement to a pg_tx. The schema's
 * outbox_append() SQL function (see common/sql/stream.sql) takes a transaction
 * advisory lock for the schema's outbox, so seq is dense and in commit order.
 *
 * The publisher drains committed rows in seq order onto a PUB socket as [type][Envelope] (seq filled in), many per
 * wake-up: after any transaction of its own process commits (pg_on_commit),
 * on a NOTIFY <schema>_outbox (for writers elsewhere; none send one per
 * commit: a NOTIFY wakes every listening backend of the database, which with
 * 60 handler processes cost more than the orders themselves), and on a
 * one-second tick. Every second it also publishes ["_head"][producer][seq] so a
 * consumer that missed the last message of a quiet stream notices.
 * The replay endpoint (ROUTER) answers ["REPLAY", after_seq, max] with
 * ["EVENTS", head_seq, env...] read from the outbox.
 */
#ifndef KESU_OUTBOX_H
#define KESU_OUTBOX_H
#include <stddef.h>
#include <stdint.h>
#include "envelope.h"
#include "pg.h"

struct event_base;
typedef struct outbox_publisher outbox_publisher;

/* Adds to tx: append env (packed here) to <schema>.outbox. env->producer,
 * event_id, occurred_at (clock) and type are filled in when empty. */
void outbox_tx_append(pg_tx *tx, const char *schema, Kesu__V1__Envelope *env);

/* pg: a connection of the owning service (publisher queues its own small
 * transactions on it; a separate connection is fine too). */
outbox_publisher *outbox_publisher_new(struct event_base *base, pg_conn *pg, const char *schema,
                                       const char *producer, const char *pub_endpoint,
                                       const char *replay_endpoint);
void outbox_publisher_destroy(outbox_publisher **self);
uint64_t outbox_publisher_head(const outbox_publisher *self); /* last seq published */
uint64_t outbox_publisher_published(const outbox_publisher *self); /* count, for /metrics */
#endif
