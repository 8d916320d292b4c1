/* reference — the SLA watcher's reference data, rebuilt from the sla schema
 * at start and on NOTIFY sla_reference: the calendar, the policies
 * (R-25 … R-30) and the unit tree for the escalation ladder.
 * sla_reference_deadlines is what a new step's timer gets. */
#ifndef KESU_SLA_REFERENCE_H
#define KESU_SLA_REFERENCE_H
#include <libpq-fe.h>
#include <stdint.h>

#include "calendar.h"
#include "policy.h"
#include "strmap.h"

typedef struct {
  sla_calendar calendar;     /* the national calendar 'cn' (the '*' row's hours) */
  region_calendar *regions;  /* per region prefix (sla.calendar_regions), owned */
  int nregions;
  policy_set policies;
  strmap *parent; /* unit id → malloc'd parent id (units without a parent absent) */
} sla_reference;

/* The SELECTs whose results sla_reference_build takes, in this order. */
extern const char *const sla_reference_sql[5];

void sla_reference_init(sla_reference *r);
void sla_reference_free(sla_reference *r);
/* Fills an initialised r from the results of sla_reference_sql; -1 (r
 * partly filled, free it) on a malformed row. */
int sla_reference_build(sla_reference *r, PGresult *const res[5]);
/* The calendar of an order's region (most specific region row, else the
 * national one). */
const sla_calendar *sla_reference_calendar(const sla_reference *r, const char *region);
/* The unit above, or NULL. */
const char *sla_reference_parent(const sla_reference *r, const char *unit_id);

typedef struct {
  const char *policy_id; /* NULL: no policy matched, the built-in R-25 default */
  sla_unit unit;
  int64_t warn_at, due_at;
  int64_t escalate_at[2]; /* 150 % and 200 % of the limit */
} sla_deadline;

/* Deadlines of a step started at start_ms for key k, on the national
 * calendar / on the calendar of `region`. */
void sla_reference_deadlines(const sla_reference *r, const policy_key *k, int64_t start_ms,
                             sla_deadline *out);
void sla_reference_deadlines_in(const sla_reference *r, const char *region, const policy_key *k,
                                int64_t start_ms, sla_deadline *out);
#endif
