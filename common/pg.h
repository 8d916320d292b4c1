/* pg — non-blocking libpq on the libevent loop.
 *
 * A pg_conn is one connection that reconnects with back-off. Work is sent as
 * transactions: a pg_tx holds one or more statements that go out together in
 * libpq pipeline mode and end with one Sync, so they run as ONE implicit
 * transaction: all commit or none does. Transactions queue and run one at a
 * time in submission order. If the connection is lost, the in-flight
 * transaction's callback gets ok=0 (it may or may not have committed — the
 * callers' SQL is written to be safely retried) and queued ones wait for the
 * reconnect.
 *
 * LISTEN: pg_conn_listen registers a channel; the notify callback runs for
 * each NOTIFY, and once after every (re)connect so callers can catch up.
 *
 * Commit hooks: pg_on_commit registers a function run after every caller
 * transaction of this process that succeeded, on any connection, unless the
 * transaction was marked pg_tx_read_only. The outbox publisher uses it to
 * drain what the process's own writers just committed, instead of a NOTIFY
 * per commit (a NOTIFY signals every listening backend of the database).
 */
#ifndef KESU_PG_H
#define KESU_PG_H
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

struct event_base;
typedef struct pg_conn pg_conn;
typedef struct pg_tx pg_tx;

typedef struct {
  bool ok;              /* every statement succeeded and the Sync committed */
  const char *error;    /* first error message when !ok (owned by the result) */
  const char *sqlstate; /* its SQLSTATE, or "" */
  int n;                /* statements */
  PGresult **res;       /* one per statement; NULL for ones not run */
} pg_result_set;

typedef void (*pg_tx_cb)(const pg_result_set *rs, void *arg);
typedef void (*pg_notify_cb)(const char *channel, const char *payload, void *arg);
typedef void (*pg_state_cb)(bool connected, void *arg);

pg_conn *pg_conn_new(struct event_base *base, const char *conninfo, const char *name);
void pg_conn_destroy(pg_conn **self);
bool pg_conn_ready(const pg_conn *self);
void pg_conn_on_state(pg_conn *self, pg_state_cb cb, void *arg);
/* Channel must be a plain identifier. */
void pg_conn_listen(pg_conn *self, const char *channel, pg_notify_cb cb, void *arg);
size_t pg_conn_queued(const pg_conn *self);

pg_tx *pg_tx_new(void);
/* Adds a statement; parameters are text (or binary where lengths/formats
 * say so) and copied. lengths/formats may be NULL (all text). */
void pg_tx_add(pg_tx *tx, const char *sql, int nparams, const char *const *values,
               const int *lengths, const int *formats);
/* Same, binary result format for all columns. */
void pg_tx_add_binary_result(pg_tx *tx, const char *sql, int nparams, const char *const *values,
                             const int *lengths, const int *formats);
int pg_tx_count(const pg_tx *tx);
/* The transaction writes nothing: no commit hook runs after it. */
void pg_tx_read_only(pg_tx *tx);
/* At most a few per process; fn runs on the loop after the tx's own callback. */
void pg_on_commit(void (*fn)(void *arg), void *arg);
void pg_off_commit(void (*fn)(void *arg), void *arg);
void pg_tx_destroy(pg_tx **tx);
/* Takes ownership of tx. cb may be NULL. cb runs on the loop, never inside submit. */
void pg_conn_submit(pg_conn *self, pg_tx *tx, pg_tx_cb cb, void *arg);

/* Blocking helpers for tools (kesuctl) and start-up. */
PGconn *pg_connect_blocking(const char *conninfo);
#endif
