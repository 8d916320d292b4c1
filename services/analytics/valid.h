/* valid — the shapes of analytics' query parameters, for kpi.c, reports.c, web.c and
 * main.c (each had its own copy). */
#ifndef KESU_ANALYTICS_VALID_H
#define KESU_ANALYTICS_VALID_H
#include <stdbool.h>
#include <string.h>

/* A 6-digit GB/T 2260 region code. */
static inline bool valid_region(const char *r) {
  return strlen(r) == 6 && strspn(r, "0123456789") == 6;
}

/* YYYY-MM-DD (n = 10) or YYYY-MM (n = 7), digits where digits go. */
static inline bool valid_date_n(const char *s, size_t n) {
  if (strlen(s) != n || s[4] != '-' || (n == 10 && s[7] != '-')) return false;
  for (size_t i = 0; i < n; i++)
    if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9')) return false;
  return true;
}

static inline bool valid_date(const char *s) { return valid_date_n(s, 10); }
#endif
