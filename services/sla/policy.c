/* policy — matching SLA policies (see policy.h). */
#include "policy.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

void policy_set_init(policy_set *s) { memset(s, 0, sizeof *s); }

void policy_set_free(policy_set *s) {
  for (int i = 0; i < s->n; i++) {
    free(s->v[i].id);
    for (int f = 0; f < POLICY_NFIELDS; f++)
      free(s->v[i].field[f]);
  }
  free(s->v);
  memset(s, 0, sizeof *s);
}

int policy_set_add(policy_set *s, const char *id, const char *const fields[POLICY_NFIELDS],
                   double limit, sla_unit unit, double warn_ratio) {
  if (!(limit > 0) || !(warn_ratio > 0 && warn_ratio <= 1))
    return -1;
  if (s->n == s->cap) {
    int ncap = s->cap ? s->cap * 2 : 32;
    sla_policy *nv = realloc(s->v, (size_t)ncap * sizeof *nv);
    if (!nv)
      return -1;
    s->v = nv;
    s->cap = ncap;
  }
  sla_policy *p = &s->v[s->n++];
  p->id = strdup(id ? id : "");
  for (int f = 0; f < POLICY_NFIELDS; f++)
    p->field[f] = strdup(fields[f] && *fields[f] ? fields[f] : "*");
  p->limit = limit;
  p->unit = unit;
  p->warn_ratio = warn_ratio;
  return 0;
}

/* pattern: "*", a value, or "a|b|c". */
static bool field_matches(const char *pattern, const char *value) {
  if (strcmp(pattern, "*") == 0)
    return true;
  if (!value || !*value)
    return false;
  size_t vl = strlen(value);
  for (const char *p = pattern; *p;) {
    const char *bar = strchr(p, '|');
    size_t len = bar ? (size_t)(bar - p) : strlen(p);
    if (len == vl && strncmp(p, value, len) == 0)
      return true;
    if (!bar)
      break;
    p = bar + 1;
  }
  return false;
}

const sla_policy *policy_match(const policy_set *s, const policy_key *k) {
  const char *vals[POLICY_NFIELDS] = {k->kind, k->stream, k->tier, k->level, k->area, k->step};
  /* kind 8, stream 16, tier 1, level 2, area 4, step 32: a special stream
   * (appeal, escalated) beats a special kind (suggestion, repair), which
   * beats area, level and tier; more fields beat fewer of the same. */
  static const int weight[POLICY_NFIELDS] = {8, 16, 1, 2, 4, 32};
  const sla_policy *best = NULL;
  int best_score = -1;
  for (int i = 0; i < s->n; i++) {
    const sla_policy *p = &s->v[i];
    int score = 0;
    bool ok = true;
    for (int f = 0; ok && f < POLICY_NFIELDS; f++) {
      ok = field_matches(p->field[f], vals[f]);
      if (strcmp(p->field[f], "*") != 0)
        score += weight[f];
    }
    if (ok && score > best_score) {
      best = p;
      best_score = score;
    }
  }
  return best;
}

int64_t policy_limit_ms(const sla_policy *p) {
  double unit_ms =
      p->unit == SLA_UNIT_WORKING_DAYS || p->unit == SLA_UNIT_DAY_END ? 86400000.0 : 3600000.0;
  return (int64_t)llround(p->limit * unit_ms);
}

void policy_deadlines(const sla_policy *p, const sla_calendar *c, int64_t start_ms,
                      int64_t *warn_at, int64_t *due_at) {
  int64_t limit = policy_limit_ms(p);
  int64_t warn = (int64_t)llround((double)limit * p->warn_ratio);
  *due_at = calendar_add(c, start_ms, limit, p->unit);
  if (p->unit == SLA_UNIT_DAY_END) /* 90 % of the time actually given */
    *warn_at = start_ms + (int64_t)llround((double)(*due_at - start_ms) * p->warn_ratio);
  else
    *warn_at = calendar_add(c, start_ms, warn, p->unit);
}
