/* consumer — the consuming side of a durable stream (ARCHITECTURE §3).
 *
 * Keeps <schema>.offsets(producer, last_seq). Events are applied in batches:
 * for each batch the consumer builds ONE pg_tx that first advances the offset
 * (kesu_offset_advance raises if the stored offset is not where this process
 * thinks it is — another instance or a lost reply — which aborts the whole
 * batch) and then lets the service add its effect statements for every event.
 * So an event's effect and the offset move commit together: exactly-once.
 *
 * Start: load the offset, replay from the producer's replay endpoint until a
 * short batch says we are caught up, then go live on SUB. Live: seq <= offset
 * is a duplicate and dropped; seq > expected is a gap and triggers a replay.
 * A failed batch (DB down) resets to the committed offset and replays.
 * After a batch commits, on_committed runs for each event (for in-memory
 * follow-ups such as SSE fan-out or timers) in seq order.
 */
#ifndef KESU_CONSUMER_H
#define KESU_CONSUMER_H
#include <stdbool.h>
#include <stdint.h>
#include "envelope.h"
#include "pg.h"

struct event_base;
typedef struct consumer consumer;

/* Add the effect of one event to tx (nothing, if the event is not of
 * interest). Called while building a batch. */
typedef void (*consumer_apply_fn)(pg_tx *tx, const Kesu__V1__Envelope *env, void *arg);
/* After commit; env is valid only during the call. May be NULL. */
typedef void (*consumer_committed_fn)(const Kesu__V1__Envelope *env, void *arg);
/* After the last apply of a batch, before it is sent: add statements that
 * cover the whole batch (e.g. one multi-row upsert). May be NULL. */
typedef void (*consumer_batch_end_fn)(pg_tx *tx, void *arg);

typedef struct {
  const char *schema;          /* consumer's own schema, holds offsets */
  const char *producer;        /* e.g. "intake" */
  const char *pub_endpoint;    /* producer's PUB */
  const char *replay_endpoint; /* producer's replay ROUTER */
  int batch_max;               /* events per transaction (default 500) */
  consumer_apply_fn apply;
  consumer_committed_fn committed;
  void *arg;
  consumer_batch_end_fn batch_end; /* optional */
  /* A batch shorter than batch_max waits up to this long after its first event
   * for more (0: goes at once, the default). KESU_<SCHEMA>_LINGER_MS overrides. */
  int linger_ms;
} consumer_config;

consumer *consumer_new(struct event_base *base, pg_conn *pg, const consumer_config *cfg);
void consumer_destroy(consumer **self);
uint64_t consumer_offset(const consumer *self);  /* last committed seq */
bool consumer_live(const consumer *self);        /* caught up and on SUB */
uint64_t consumer_applied(const consumer *self); /* events committed since start */
uint64_t consumer_replays(const consumer *self);

/* The ordering rules, apart from any I/O so they can be unit-tested.
 * committed ≤ accepted: committed is in the database; accepted has been
 * taken into memory (queued or in a batch in flight). */
typedef struct {
  uint64_t committed;
  uint64_t accepted;
  uint64_t known_head; /* highest seq the producer is known to have */
} stream_pos;

typedef enum { SEQ_ACCEPT, SEQ_DUPLICATE, SEQ_GAP } seq_verdict;

void stream_pos_init(stream_pos *p, uint64_t committed);
/* A message with this seq arrived: ACCEPT (accepted advances), DUPLICATE
 * (already have it: drop), or GAP (something before it is missing: replay). */
seq_verdict stream_pos_offer(stream_pos *p, uint64_t seq);
/* The producer says it has published up to head. */
void stream_pos_saw_head(stream_pos *p, uint64_t head);
/* True while the producer has events we have not accepted. */
bool stream_pos_behind(const stream_pos *p);
/* A batch ending at seq committed. */
void stream_pos_committed(stream_pos *p, uint64_t seq);
/* A batch failed: forget what was accepted but not committed. */
void stream_pos_rewind(stream_pos *p);
#endif
