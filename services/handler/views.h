/* views — what the workbench shows and accepts, as JSON; pure functions.
 *
 * complaint_view: the complaint as stored in handler.orders.complaint and
 * shown to staff (times RFC 3339 +08:00).
 * action_request_parse: POST /v1/orders/{no}/actions bodies —
 * {"action":"…", "answer", "reason", "to_unit", "promised_by" (RFC 3339),
 * "satisfaction" (1–5), "at_fault", "receipt_signed", "conclusion",
 * "responsibility", "regulator_opinion", "tier", "customer_level", "vip"};
 * unknown fields and unknown actions
 * are refused (422), a close needs an answer of 1–2000 characters; whether an
 * action fits the order is the router's decision.
 * scope_like_pattern: the SQL LIKE pattern of the regions a token scope
 * covers (same rule as auth_scope_covers).
 */
#ifndef KESU_HANDLER_VIEWS_H
#define KESU_HANDLER_VIEWS_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "envelope.h"

enum { ANSWER_MAX_CHARS = 2000 };

/* New reference; never NULL (undecodable text becomes ""). Carries
 * "priority" = order_priority(c) (common/priority.h). */
json_t *complaint_view(const Kesu__V1__Complaint *c);

typedef struct {
  const char *action; /* borrowed from the body */
  const char *answer; /* NULL if absent; the strings below too */
  const char *reason, *to_unit, *conclusion, *responsibility, *regulator_opinion;
  const char *tier, *customer_level; /* reclassify */
  long long promised_by; /* Unix ms, 0 if absent */
  int satisfaction;      /* 0 if absent */
  int at_fault, receipt_signed;
  int vip;               /* reclassify: VIP sub-level */
} action_request;

/* The workflow actions (SPEC §5) staff may post. */
bool action_name_known(const char *name);

typedef struct {
  int status;       /* 422 */
  const char *code; /* missing_field, wrong_type, too_long, invalid_value, unknown_field */
  const char *field;
  const char *message;
} request_problem;

/* 0 and *out filled, or -1 and *problem filled (strings static or borrowed from body). */
int action_request_parse(json_t *body, action_request *out, request_problem *problem);

/* "310000" -> "31%", "000000"/"" -> "%"; LIKE metacharacters escaped. */
void scope_like_pattern(const char *scope, char *out, size_t outlen);
#endif
