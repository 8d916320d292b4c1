/* sender — delivers pending SMS rows of notify.deliveries to the HTTP gateway.
 *
 * libcurl's multi interface runs on the libevent loop (socket and timer
 * callbacks, as in curl's hiperfifo example), keeping connections alive and
 * at most 64 transfers in flight. Pending rows are picked after each consumer
 * commit (sender_kick) and every 500 ms. The pick itself marks them 'sending'
 * and counts the attempt (R-40: recorded BEFORE the request goes out); a
 * picked row is owned in memory until its outcome is written back (only a row
 * still 'sending' takes an outcome). The outcomes of a tick are written in one
 * transaction. Before its first pick (and after a pick whose answer was lost)
 * the sender puts every 'sending' row it does not own back to 'pending': those
 * were in flight when a notifier died, and are sent again with the same
 * Idempotency-Key, so the provider delivers them once.
 *   2xx → sent; 4xx → failed (final); network error / 5xx → retry with
 *   back-off (template.h), dead after DELIVERY_MAX_ATTEMPTS attempts.
 */
#ifndef KESU_NOTIFIER_SENDER_H
#define KESU_NOTIFIER_SENDER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pg.h"

struct event_base;
typedef struct sender sender;

typedef struct {
  const char *sms_url;  /* KESU_SMS_URL: JSON POST {to, text, key, order_no} */
  const char *sms_token; /* KESU_SMS_TOKEN: sent as Authorization: Bearer (optional) */
  const char *smtp_url; /* KESU_SMTP_URL, e.g. smtp://127.0.0.1:2525 */
  const char *smtp_from, *smtp_user, *smtp_password;
  int rate_per_minute;  /* per recipient; 0 = unlimited */
} sender_config;

/* Channels: sms → the gateway; im → JSON POST {"msgtype":"text",...} to the
 * recipient (a WeCom/DingTalk robot webhook URL); email → SMTP, UTF-8 MIME
 * (RFC 2047 subject, base64 body). Every HTTP request carries
 * Idempotency-Key: <delivery_key>; a mail carries it as Message-ID. A
 * recipient over rate_per_minute is put back to pending for the next minute
 * (not counted as an attempt). */
sender *sender_new(struct event_base *base, pg_conn *pg, const sender_config *cfg);
/* The complete RFC 5322 message of an e-mail delivery (malloc'd). */
char *mail_message(const char *from, const char *to, const char *subject, const char *body,
                   const char *key, int64_t now_ms);
void sender_destroy(sender **self);
/* Something may have become pending: pick soon (coalesced). */
void sender_kick(sender *self);
size_t sender_inflight(const sender *self);
size_t sender_owned(const sender *self);
#endif
