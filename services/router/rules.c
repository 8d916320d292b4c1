/* rules — the most specific routing rule for an order (see rules.h). */
#include "rules.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "priority.h"
#include "strmap.h"

#define MAX_PREFIX 63
#define NMASKS (1 << RD_N)
#define KEYMAX 512

typedef struct {
  char *prefix; /* normalized */
  char *val[RD_N]; /* lower-cased; "" = any */
  char *unit_id;
  int plen, ndims, mask, priority;
  long id;
  size_t seq;
} rule;

struct routing_rules {
  rule *rules;
  size_t n, cap;
  strmap *index;               /* key(mask, prefix, values) -> best rule index + 1 */
  uint64_t lens[NMASKS];       /* per mask: bit L set when a rule has a prefix of length L */
  int order[NMASKS];           /* masks by popcount, most dimensions first */
  int popcount[NMASKS];
};

static int popcount(int m) {
  int n = 0;
  for (; m; m &= m - 1)
    n++;
  return n;
}

routing_rules *routing_rules_new(void) {
  routing_rules *self = calloc(1, sizeof(routing_rules));
  self->index = strmap_new();
  int k = 0;
  for (int p = RD_N; p >= 0; p--)
    for (int m = 0; m < NMASKS; m++)
      if (popcount(m) == p)
        self->order[k++] = m;
  for (int m = 0; m < NMASKS; m++)
    self->popcount[m] = popcount(m);
  return self;
}

void routing_rules_destroy(routing_rules **selfp) {
  routing_rules *self = *selfp;
  if (!self)
    return;
  for (size_t i = 0; i < self->n; i++) {
    free(self->rules[i].prefix);
    for (int d = 0; d < RD_N; d++)
      free(self->rules[i].val[d]);
    free(self->rules[i].unit_id);
  }
  free(self->rules);
  strmap_destroy(&self->index);
  free(self);
  *selfp = NULL;
}

static bool all_digits(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] < '0' || s[i] > '9')
      return false;
  return true;
}

void routing_prefix_normalize(const char *p, char *out, size_t outlen) {
  if (!p || strcmp(p, "*") == 0)
    p = "";
  size_t n = strlen(p);
  if (n == 6 && all_digits(p, n)) {
    /* A region code names an area: drop trailing "00" pairs (310100 -> 3101). */
    while (n >= 2 && p[n - 1] == '0' && p[n - 2] == '0')
      n -= 2;
  }
  if (n >= outlen)
    n = outlen - 1;
  memcpy(out, p, n);
  out[n] = '\0';
}

static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c; }

static char *dim_copy(const char *s) {
  if (!s || strcmp(s, "*") == 0)
    s = "";
  char *d = strdup(s);
  for (char *p = d; *p; p++)
    *p = lower(*p);
  return d;
}

/* Appends s (lower-cased) and a separator; false if it does not fit. */
static bool key_put(char *key, size_t *n, const char *s, size_t len) {
  if (*n + len + 1 >= KEYMAX)
    return false;
  for (size_t i = 0; i < len; i++)
    key[(*n)++] = lower(s[i]);
  key[(*n)++] = '\x1f';
  key[*n] = '\0';
  return true;
}

/* The index key of (mask, prefix[0..plen), vals); false if too long. */
static bool make_key(char *key, int mask, const char *prefix, size_t plen,
                     const char *const vals[RD_N]) {
  size_t n = 0;
  key[n++] = (char)('A' + mask);
  key[n] = '\0';
  if (!key_put(key, &n, prefix, plen))
    return false;
  for (int d = 0; d < RD_N; d++)
    if ((mask & (1 << d)) && !key_put(key, &n, vals[d], strlen(vals[d])))
      return false;
  return true;
}

/* a better than b for the same number of dimensions */
static bool better(const rule *a, const rule *b) {
  if (a->plen != b->plen)
    return a->plen > b->plen;
  if (a->priority != b->priority)
    return a->priority > b->priority;
  return a->seq < b->seq;
}

void routing_rules_add_rule(routing_rules *self, const routing_rule_def *def) {
  if (self->n == self->cap) {
    self->cap = self->cap ? self->cap * 2 : 16;
    self->rules = realloc(self->rules, self->cap * sizeof *self->rules);
  }
  char norm[MAX_PREFIX + 1];
  routing_prefix_normalize(def->region_prefix, norm, sizeof norm);
  rule *r = &self->rules[self->n];
  memset(r, 0, sizeof *r);
  r->prefix = strdup(norm);
  r->plen = (int)strlen(norm);
  const char *v[RD_N] = {def->business_line, def->business_type, def->problem_type, def->channel,
                         def->customer_level};
  for (int d = 0; d < RD_N; d++) {
    r->val[d] = dim_copy(v[d]);
    if (*r->val[d])
      r->mask |= 1 << d;
  }
  r->ndims = popcount(r->mask);
  r->unit_id = strdup(def->unit_id ? def->unit_id : "");
  r->priority = def->priority;
  r->id = def->id;
  r->seq = self->n;
  size_t idx = self->n++;
  char key[KEYMAX];
  if (!make_key(key, r->mask, r->prefix, (size_t)r->plen, (const char *const *)r->val))
    return; /* values too long to ever match an order: kept, never chosen */
  uintptr_t old = (uintptr_t)strmap_get(self->index, key);
  if (!old || better(r, &self->rules[old - 1]))
    strmap_put(self->index, key, (void *)(uintptr_t)(idx + 1));
  self->lens[r->mask] |= (uint64_t)1 << r->plen;
}

void routing_rules_add(routing_rules *self, const char *region_prefix, const char *unit_id,
                       int priority) {
  routing_rule_def d = {.region_prefix = region_prefix, .unit_id = unit_id, .priority = priority};
  routing_rules_add_rule(self, &d);
}

size_t routing_rules_count(const routing_rules *self) { return self->n; }

const char *routing_rules_match(const routing_rules *self, const routing_query *q,
                                routing_match *out) {
  const char *region = q->region ? q->region : "";
  const char *vals[RD_N] = {q->business_line, q->business_type, q->problem_type, q->channel,
                            q->customer_level};
  int have = 0; /* dimensions the order has a value for */
  for (int d = 0; d < RD_N; d++) {
    if (!vals[d])
      vals[d] = "";
    if (*vals[d])
      have |= 1 << d;
  }
  bool vip_class = (have & (1 << RD_LEVEL)) && strcasecmp(vals[RD_LEVEL], "vip") != 0 &&
                   level_is_vip(vals[RD_LEVEL]);
  size_t rlen = strlen(region);
  if (rlen > MAX_PREFIX)
    rlen = MAX_PREFIX;
  const rule *best = NULL;
  char key[KEYMAX];
  for (int k = 0; k < NMASKS; k++) {
    int m = self->order[k];
    if (best && self->popcount[m] < best->ndims)
      break; /* every mask left is less specific than what matched */
    uint64_t lens = self->lens[m];
    if (!lens || (m & ~have))
      continue; /* no such rules, or a dimension the order leaves empty */
    for (int L = (int)rlen; L >= 0; L--) {
      if (!(lens & ((uint64_t)1 << L)))
        continue;
      if (!make_key(key, m, region, (size_t)L, vals))
        break;
      uintptr_t hit = (uintptr_t)strmap_get(self->index, key);
      if (!hit && vip_class && (m & (1 << RD_LEVEL))) {
        /* a VIP level (gold, diamond, …) also matches a rule for the class "vip";
         * a rule naming the exact level, tried first, wins */
        const char *cv[RD_N];
        memcpy(cv, vals, sizeof cv);
        cv[RD_LEVEL] = "vip";
        if (make_key(key, m, region, (size_t)L, cv))
          hit = (uintptr_t)strmap_get(self->index, key);
      }
      if (hit) {
        const rule *r = &self->rules[hit - 1];
        if (!best || better(r, best))
          best = r;
        break; /* shorter prefixes of this mask are worse */
      }
    }
  }
  if (!best)
    return NULL;
  if (out) {
    out->unit_id = best->unit_id;
    out->dims = best->ndims;
    out->prefix_len = best->plen;
    out->priority = best->priority;
    out->id = best->id;
  }
  return best->unit_id;
}

const char *routing_rules_choose(const routing_rules *self, const char *region) {
  routing_query q = {.region = region};
  return routing_rules_match(self, &q, NULL);
}
