/* envelope — packing, unpacking and naming the events of the streams. */
#include "envelope.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

void uuid_v4(char out[37]) {
  unsigned char b[16];
  size_t got = 0;
  while (got < sizeof b) {
    ssize_t r = getrandom(b + got, sizeof b - got, 0);
    if (r > 0) got += (size_t)r;
  }
  b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
  b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
  snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
           b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
           b[15]);
}

const char *envelope_type_name(Kesu__V1__Envelope__PayloadCase c) {
  switch (c) {
  case KESU__V1__ENVELOPE__PAYLOAD_COMPLAINT_RECEIVED: return EV_COMPLAINT_RECEIVED;
  case KESU__V1__ENVELOPE__PAYLOAD_WORK_ORDER_CREATED: return EV_WORK_ORDER_CREATED;
  case KESU__V1__ENVELOPE__PAYLOAD_WORK_ORDER_DISPATCHED: return EV_WORK_ORDER_DISPATCHED;
  case KESU__V1__ENVELOPE__PAYLOAD_WORK_ORDER_CLOSED: return EV_WORK_ORDER_CLOSED;
  case KESU__V1__ENVELOPE__PAYLOAD_SLA_WARNING: return EV_SLA_WARNING;
  case KESU__V1__ENVELOPE__PAYLOAD_SLA_BREACHED: return EV_SLA_BREACHED;
  case KESU__V1__ENVELOPE__PAYLOAD_SLA_ESCALATED: return EV_SLA_ESCALATED;
  case KESU__V1__ENVELOPE__PAYLOAD_SLA_DEADLINE_MOVED: return EV_SLA_DEADLINE_MOVED;
  default: return "";
  }
}

unsigned char *envelope_pack(Kesu__V1__Envelope *env, size_t *len) {
  if (!env->type || !*env->type) env->type = (char *)envelope_type_name(env->payload_case);
  size_t n = kesu__v1__envelope__get_packed_size(env);
  unsigned char *buf = malloc(n ? n : 1);
  kesu__v1__envelope__pack(env, buf);
  *len = n;
  return buf;
}

Kesu__V1__Envelope *envelope_unpack(const unsigned char *data, size_t len) {
  return kesu__v1__envelope__unpack(NULL, len, data);
}

void envelope_free(Kesu__V1__Envelope *env) {
  if (env) kesu__v1__envelope__free_unpacked(env, NULL);
}

unsigned char *envelope_with_seq(const unsigned char *data, size_t len, uint64_t seq,
                                 size_t *out_len) {
  Kesu__V1__Envelope *env = envelope_unpack(data, len);
  if (!env) return NULL;
  env->seq = seq;
  unsigned char *out = envelope_pack(env, out_len);
  envelope_free(env);
  return out;
}

/* Enum names as used in the JSON APIs. Index = enum value. */
static const char *const channel_names[] = {
    "", "hotline", "gm_hotline", "hall", "face_to_face", "club", "account_manager", "letter",
    "fax", "website", "app", "sms", "email", "comment_box", "media", "upper_referral",
    "regulator", "consumer_association", "agent", "employee"};
static const char *const tier_names[] = {"", "general", "provincial", "national"};
static const char *const kind_names[] = {"",           "complaint", "enquiry", "repair",
                                         "suggestion", "praise",    "report"};
static const char *const stream_names[] = {"", "ordinary", "escalated", "appeal"};
static const char *const step_names[] = {"",       "accept",   "review", "handle", "feedback",
                                         "answer", "callback", "closed", "arrive", "fix"};

#define N_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const char *name_of(const char *const *names, int n, int v) {
  return v > 0 && v < n ? names[v] : "unspecified";
}

static int value_of(const char *const *names, int n, const char *s) {
  if (!s) return 0;
  for (int i = 1; i < n; i++)
    if (strcmp(names[i], s) == 0) return i;
  return 0;
}

const char *channel_name(Kesu__V1__Channel c) { return name_of(channel_names, N_OF(channel_names), c); }
Kesu__V1__Channel channel_from_name(const char *s) {
  return (Kesu__V1__Channel)value_of(channel_names, N_OF(channel_names), s);
}
const char *tier_name(Kesu__V1__Tier t) { return name_of(tier_names, N_OF(tier_names), t); }
Kesu__V1__Tier tier_from_name(const char *s) {
  return (Kesu__V1__Tier)value_of(tier_names, N_OF(tier_names), s);
}
const char *kind_name(Kesu__V1__Kind k) { return name_of(kind_names, N_OF(kind_names), k); }
Kesu__V1__Kind kind_from_name(const char *s) {
  return (Kesu__V1__Kind)value_of(kind_names, N_OF(kind_names), s);
}
const char *stream_name(Kesu__V1__Stream s) { return name_of(stream_names, N_OF(stream_names), s); }
Kesu__V1__Stream stream_from_name(const char *s) {
  return (Kesu__V1__Stream)value_of(stream_names, N_OF(stream_names), s);
}
const char *step_name(Kesu__V1__Step s) { return name_of(step_names, N_OF(step_names), s); }
