/* reference — calendar, policies and unit tree from the sla schema (see reference.h). */
#include "reference.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "timers.h"

const char *const sla_reference_sql[5] = {
    "SELECT tz_offset_min, extract(epoch from open_time)::int / 60,"
    " extract(epoch from close_time)::int / 60 FROM sla.calendars WHERE id = 'cn'",
    "SELECT to_char(day, 'YYYY-MM-DD'), kind, calendar FROM sla.calendar_days"
    " ORDER BY calendar <> 'cn', calendar, day",
    "SELECT id, kind, stream, tier, level, area, step, limit_value::float8, unit,"
    " warn_ratio::float8 FROM sla.policies ORDER BY ord, id",
    "SELECT id, coalesce(parent, '') FROM sla.units",
    "SELECT region_prefix, calendar_id, extract(epoch from open_time)::int / 60,"
    " extract(epoch from close_time)::int / 60 FROM sla.calendar_regions ORDER BY region_prefix",
};

void sla_reference_init(sla_reference *r) {
  calendar_init(&r->calendar);
  r->regions = NULL;
  r->nregions = 0;
  policy_set_init(&r->policies);
  r->parent = strmap_new();
}

static bool free_value(const char *key, void *value, void *arg) {
  (void)key;
  (void)arg;
  free(value);
  return true;
}

void sla_reference_free(sla_reference *r) {
  calendar_free(&r->calendar);
  for (int i = 0; i < r->nregions; i++)
    calendar_free(&r->regions[i].cal);
  free(r->regions);
  r->regions = NULL;
  r->nregions = 0;
  policy_set_free(&r->policies);
  if (r->parent) {
    strmap_each(r->parent, free_value, NULL);
    strmap_destroy(&r->parent);
  }
}

int sla_reference_build(sla_reference *r, PGresult *const res[5]) {
  if (PQntuples(res[0]) == 1) {
    r->calendar.tz_offset_min = atoi(PQgetvalue(res[0], 0, 0));
    r->calendar.open_min = atoi(PQgetvalue(res[0], 0, 1));
    r->calendar.close_min = atoi(PQgetvalue(res[0], 0, 2));
  }
  /* The national days first ('cn' sorts first), then each region row: the
   * national calendar, its own hours, and its calendar's own days on top. */
  for (int i = 0; i < PQntuples(res[1]); i++) {
    int y, m, d;
    if (strcmp(PQgetvalue(res[1], i, 2), "cn") != 0)
      continue;
    if (sscanf(PQgetvalue(res[1], i, 0), "%d-%d-%d", &y, &m, &d) != 3 ||
        calendar_set_day(&r->calendar, y, m, d, strcmp(PQgetvalue(res[1], i, 1), "workday") == 0))
      return -1;
  }
  int nreg = PQntuples(res[4]);
  if (nreg > 0) {
    r->regions = calloc((size_t)nreg, sizeof *r->regions);
    if (!r->regions)
      return -1;
  }
  for (int i = 0; i < nreg; i++) {
    region_calendar *rc = &r->regions[r->nregions];
    calendar_init(&rc->cal);
    r->nregions++;
    if (calendar_region_key(PQgetvalue(res[4], i, 0), rc->prefix) != 0)
      return -1;
    snprintf(rc->id, sizeof rc->id, "%s", PQgetvalue(res[4], i, 1));
    if (calendar_copy(&rc->cal, &r->calendar) != 0)
      return -1;
    rc->cal.open_min = atoi(PQgetvalue(res[4], i, 2));
    rc->cal.close_min = atoi(PQgetvalue(res[4], i, 3));
    if (rc->prefix[0] == '\0') { /* the national default's hours */
      r->calendar.open_min = rc->cal.open_min;
      r->calendar.close_min = rc->cal.close_min;
    }
    if (strcmp(rc->id, "cn") == 0)
      continue;
    for (int j = 0; j < PQntuples(res[1]); j++) {
      int y, m, d;
      if (strcmp(PQgetvalue(res[1], j, 2), rc->id) != 0)
        continue;
      if (sscanf(PQgetvalue(res[1], j, 0), "%d-%d-%d", &y, &m, &d) != 3 ||
          calendar_set_day(&rc->cal, y, m, d, strcmp(PQgetvalue(res[1], j, 1), "workday") == 0))
        return -1;
    }
  }
  for (int i = 0; i < PQntuples(res[2]); i++) {
    const char *f[POLICY_NFIELDS];
    for (int k = 0; k < POLICY_NFIELDS; k++)
      f[k] = PQgetvalue(res[2], i, 1 + k);
    int unit = sla_unit_parse(PQgetvalue(res[2], i, 8));
    if (unit < 0 || policy_set_add(&r->policies, PQgetvalue(res[2], i, 0), f,
                                   strtod(PQgetvalue(res[2], i, 7), NULL), (sla_unit)unit,
                                   strtod(PQgetvalue(res[2], i, 9), NULL)) != 0)
      return -1;
  }
  for (int i = 0; i < PQntuples(res[3]); i++) {
    const char *parent = PQgetvalue(res[3], i, 1);
    if (*parent)
      free(strmap_put(r->parent, PQgetvalue(res[3], i, 0), strdup(parent)));
  }
  return 0;
}

const char *sla_reference_parent(const sla_reference *r, const char *unit_id) {
  return unit_id && *unit_id ? strmap_get(r->parent, unit_id) : NULL;
}

const sla_calendar *sla_reference_calendar(const sla_reference *r, const char *region) {
  return calendar_pick(r->regions, r->nregions, &r->calendar, region);
}

void sla_reference_deadlines(const sla_reference *r, const policy_key *k, int64_t start_ms,
                             sla_deadline *out) {
  sla_reference_deadlines_in(r, NULL, k, start_ms, out);
}

void sla_reference_deadlines_in(const sla_reference *r, const char *region, const policy_key *k,
                                int64_t start_ms, sla_deadline *out) {
  const sla_calendar *cal = region ? sla_reference_calendar(r, region) : &r->calendar;
  const sla_policy *p = policy_match(&r->policies, k);
  int64_t limit;
  if (p) {
    out->policy_id = p->id;
    out->unit = p->unit;
    limit = policy_limit_ms(p);
    policy_deadlines(p, cal, start_ms, &out->warn_at, &out->due_at);
  } else {
    out->policy_id = NULL;
    out->unit = SLA_UNIT_CLOCK_HOURS;
    limit = sla_answer_limit_seconds(k->tier) * 1000;
    sla_deadlines(start_ms, limit / 1000, &out->warn_at, &out->due_at);
  }
  out->escalate_at[0] = calendar_add(cal, start_ms, limit + limit / 2, out->unit);
  out->escalate_at[1] = calendar_add(cal, start_ms, 2 * limit, out->unit);
}
