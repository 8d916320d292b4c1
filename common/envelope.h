/* envelope — building and reading the Envelope every event travels in. */
#ifndef KESU_ENVELOPE_H
#define KESU_ENVELOPE_H
#include <stddef.h>
#include <stdint.h>
#include "kesu/v1/envelope.pb-c.h"
#include "kesu/v1/events.pb-c.h"
#include "kesu/v1/dispatch.pb-c.h"

/* Event type names = payload message names. */
#define EV_COMPLAINT_RECEIVED "ComplaintReceived"
#define EV_WORK_ORDER_CREATED "WorkOrderCreated"
#define EV_WORK_ORDER_DISPATCHED "WorkOrderDispatched"
#define EV_WORK_ORDER_CLOSED "WorkOrderClosed"
#define EV_SLA_WARNING "SlaWarning"
#define EV_SLA_BREACHED "SlaBreached"
#define EV_SLA_ESCALATED "SlaEscalated"
#define EV_SLA_DEADLINE_MOVED "SlaDeadlineMoved"

/* Random v4 UUID, 36 chars + NUL. */
void uuid_v4(char out[37]);

/* Packs env (seq as set, usually 0 before the outbox assigns it) into a new
 * malloc'd buffer; *len set. Caller frees. The type field is set from the
 * payload case when empty. */
unsigned char *envelope_pack(Kesu__V1__Envelope *env, size_t *len);
/* Unpacks; NULL on malformed input. Free with envelope_free. */
Kesu__V1__Envelope *envelope_unpack(const unsigned char *data, size_t len);
void envelope_free(Kesu__V1__Envelope *env);
/* Re-packs bytes with a new seq. Returns malloc'd buffer or NULL. */
unsigned char *envelope_with_seq(const unsigned char *data, size_t len, uint64_t seq, size_t *out_len);
const char *envelope_type_name(Kesu__V1__Envelope__PayloadCase c);

/* Enum <-> API name ("hotline", "general", "complaint", ...). _from_name
 * returns 0 (UNSPECIFIED) for unknown names. */
const char *channel_name(Kesu__V1__Channel c);
Kesu__V1__Channel channel_from_name(const char *s);
const char *tier_name(Kesu__V1__Tier t);
Kesu__V1__Tier tier_from_name(const char *s);
const char *kind_name(Kesu__V1__Kind k);
Kesu__V1__Kind kind_from_name(const char *s);
const char *stream_name(Kesu__V1__Stream s);
Kesu__V1__Stream stream_from_name(const char *s);
const char *step_name(Kesu__V1__Step s);
#endif
