/* sender — delivers pending SMS rows of notify.deliveries to the HTTP gateway.
 *
 * libcurl's multi interface runs on the libevent loop (socket and timer
 * callbacks, as in curl's hiperfifo example), keeping connections alive and
 * at most 64 transfers in flight. Pending rows are picked after each consumer
 * commit (sender_kick) and every 500 ms; a picked row is owned in memory until
 * its outcome is written back, and excluded from later picks meanwhile. The
 * outcomes of a tick are written in one transaction.
 *   2xx → sent; 4xx → failed (final); network error / 5xx → retry with
 *   back-off (template.h), dead after DELIVERY_MAX_ATTEMPTS attempts.
 */
#ifndef KESU_NOTIFIER_SENDER_H
#define KESU_NOTIFIER_SENDER_H
#include <stdbool.h>
#include <stddef.h>

#include "pg.h"

struct event_base;
typedef struct sender sender;

/* url: the gateway (KESU_SMS_URL); NULL/"" → the sender never picks. */
sender *sender_new(struct event_base *base, pg_conn *pg, const char *url);
void sender_destroy(sender **self);
/* Something may have become pending: pick soon (coalesced). */
void sender_kick(sender *self);
size_t sender_inflight(const sender *self);
size_t sender_owned(const sender *self);
#endif
