/* tmpl — notification templates (see tmpl.h). */
#include "tmpl.h"

#include <stdlib.h>
#include <string.h>

const char *const tmpl_known_vars[] = {
    "order_no",      "promised_by",    "customer_name", "customer_phone", "title",
    "region",        "unit",           "business_type", "problem_type",   "due_at",
    "step",          "event",          "tier",          "escalated_to",
    /* issue 5, second round: unit names, the customer's answer, digests */
    "unit_name",     "escalated_to_name", "answer",     "date",           "count",
    "items",
    /* SlaDeadlineMoved: the deadline before the move, why it moved */
    "old_due_at",    "reason",
    /* issue 5, third round: a letter's address, the morning due list */
    "customer_address", "overdue_count", "overdue_items", NULL,
};

bool tmpl_is_known_var(const char *name, size_t len) {
  for (int i = 0; tmpl_known_vars[i]; i++)
    if (strlen(tmpl_known_vars[i]) == len && memcmp(tmpl_known_vars[i], name, len) == 0)
      return true;
  return false;
}

/* If p points at "{name}", returns the length of name (> 0), else 0. */
static size_t var_at(const char *p) {
  if (*p != '{') return 0;
  const char *q = p + 1;
  if (!((*q >= 'a' && *q <= 'z') || *q == '_')) return 0;
  while ((*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') || *q == '_') q++;
  return *q == '}' ? (size_t)(q - p - 1) : 0;
}

int tmpl_check(const char *tmpl, char *bad, size_t badlen) {
  for (const char *p = tmpl ? tmpl : ""; *p; p++) {
    size_t n = var_at(p);
    if (n && !tmpl_is_known_var(p + 1, n)) {
      if (badlen) {
        size_t k = n < badlen - 1 ? n : badlen - 1;
        memcpy(bad, p + 1, k);
        bad[k] = '\0';
      }
      return -1;
    }
    if (n) p += n + 1;
  }
  return 0;
}

typedef struct {
  char *s;
  size_t n, cap;
} sbuf;

static void sb_add(sbuf *b, const char *p, size_t n) {
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + n + 1) cap *= 2;
    b->s = realloc(b->s, cap);
    b->cap = cap;
  }
  memcpy(b->s + b->n, p, n);
  b->n += n;
  b->s[b->n] = '\0';
}

char *tmpl_render(const char *tmpl, int nvars, const char *const *names,
                  const char *const *values) {
  sbuf b = {0};
  sb_add(&b, "", 0);
  const char *p = tmpl ? tmpl : "";
  while (*p) {
    size_t n = var_at(p);
    int found = -1;
    for (int i = 0; n && i < nvars; i++)
      if (strlen(names[i]) == n && memcmp(names[i], p + 1, n) == 0) {
        found = i;
        break;
      }
    if (found >= 0) {
      const char *v = values[found] ? values[found] : "";
      sb_add(&b, v, strlen(v));
      p += n + 2;
    } else {
      const char *next = strchr(p + 1, '{');
      size_t k = next ? (size_t)(next - p) : strlen(p);
      sb_add(&b, p, k);
      p += k;
    }
  }
  return b.s;
}
