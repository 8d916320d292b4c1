/* rules — longest-prefix choice of the unit for a region. */
#include "rules.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  char *prefix; /* normalized */
  char *unit_id;
  int priority;
} rule;

struct routing_rules {
  rule *rules;
  size_t n, cap;
};

routing_rules *routing_rules_new(void) { return calloc(1, sizeof(routing_rules)); }

void routing_rules_destroy(routing_rules **selfp) {
  routing_rules *self = *selfp;
  if (!self)
    return;
  for (size_t i = 0; i < self->n; i++) {
    free(self->rules[i].prefix);
    free(self->rules[i].unit_id);
  }
  free(self->rules);
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

void routing_rules_add(routing_rules *self, const char *region_prefix, const char *unit_id,
                       int priority) {
  if (self->n == self->cap) {
    self->cap = self->cap ? self->cap * 2 : 16;
    self->rules = realloc(self->rules, self->cap * sizeof *self->rules);
  }
  char norm[64];
  routing_prefix_normalize(region_prefix, norm, sizeof norm);
  rule *r = &self->rules[self->n++];
  r->prefix = strdup(norm);
  r->unit_id = strdup(unit_id ? unit_id : "");
  r->priority = priority;
}

size_t routing_rules_count(const routing_rules *self) { return self->n; }

const char *routing_rules_choose(const routing_rules *self, const char *region) {
  if (!region)
    region = "";
  const rule *best = NULL;
  size_t best_len = 0;
  for (size_t i = 0; i < self->n; i++) {
    const rule *r = &self->rules[i];
    size_t len = strlen(r->prefix);
    if (strncmp(region, r->prefix, len) != 0)
      continue;
    if (!best || len > best_len || (len == best_len && r->priority > best->priority)) {
      best = r;
      best_len = len;
    }
  }
  return best ? best->unit_id : NULL;
}
