/* policy — SLA limits as data (R-25 … R-30): which limit applies to a step of
 * an order. A policy row names kind, stream, tier, customer level, area
 * (urban/rural for repairs) and step, each a value, a '|' list of values, or
 * '*' for any; the most specific row that matches wins: each named field
 * weighs (stream 16 > kind 8 > area 4 > level 2 > tier 1, step 32), the
 * highest sum wins, ties go to the row loaded first. So an appeal's own
 * limits beat any tier's, a suggestion's beat the tier default, and the
 * VIP row of a tier beats the tier's row. area: urban|rural for repairs,
 * fixed for the fixed network. Pure, no I/O: the watcher fills
 * the set from sla.policies. */
#ifndef KESU_SLA_POLICY_H
#define KESU_SLA_POLICY_H
#include <stdint.h>

#include "calendar.h"

enum { POLICY_NFIELDS = 6 }; /* kind, stream, tier, level, area, step */

typedef struct {
  char *id;
  char *field[POLICY_NFIELDS];
  double limit; /* in unit: hours or working days */
  sla_unit unit;
  double warn_ratio; /* 0.9 unless the row says otherwise */
} sla_policy;

typedef struct {
  sla_policy *v; /* owned */
  int n, cap;
} policy_set;

/* What is known about the step whose limit is wanted; NULL or "" = unknown
 * (matches only '*'). */
typedef struct {
  const char *kind, *stream, *tier, *level, *area, *step;
} policy_key;

void policy_set_init(policy_set *s);
void policy_set_free(policy_set *s);
/* Copies the strings. -1 on a bad row (limit <= 0, ratio outside (0, 1]). */
int policy_set_add(policy_set *s, const char *id, const char *const fields[POLICY_NFIELDS],
                   double limit, sla_unit unit, double warn_ratio);
/* The best match, or NULL. */
const sla_policy *policy_match(const policy_set *s, const policy_key *k);
/* The limit as countable time for calendar_add (hours or days in ms). */
int64_t policy_limit_ms(const sla_policy *p);

/* Deadlines of a step started at start_ms under p and calendar c:
 * warn_at = warn_ratio of the limit, due_at = all of it. */
void policy_deadlines(const sla_policy *p, const sla_calendar *c, int64_t start_ms,
                      int64_t *warn_at, int64_t *due_at);
#endif
