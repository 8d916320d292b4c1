/* valid — the shapes of analytics' query parameters and the region a token may see, for
 * kpi.c, reports.c, web.c and main.c (each had its own copy). */
#ifndef KESU_ANALYTICS_VALID_H
#define KESU_ANALYTICS_VALID_H
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "http.h"

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

/* The region a request may look at: the asked one (default 000000, all) within the
 * token's scope, or the scope itself when asking for more than it covers. Returns 0
 * with the region in out, or 422 (malformed code) / 403 (no overlap) with *why. */
static inline int scoped_region(const auth_ctx *auth, const char *asked, char *out, size_t len,
                                const char **why) {
  if (asked && !valid_region(asked)) {
    *why = "region must be a 6-digit region code";
    return 422;
  }
  const char *scope = auth->scope && *auth->scope ? auth->scope : "000000";
  if (!asked) asked = "000000";
  if (auth_scope_covers(scope, asked)) {
    snprintf(out, len, "%s", asked);
  } else if (auth_scope_covers(asked, scope)) {
    snprintf(out, len, "%s", scope);
  } else {
    *why = "region is outside your scope";
    return 403;
  }
  return 0;
}

/* scoped_region for ?region=, replying 422/403 itself when it fails. */
static inline bool effective_region(struct evhttp_request *req, const auth_ctx *auth,
                                    const char *asked, char *out, size_t len) {
  const char *why = "";
  int status = scoped_region(auth, asked, out, len, &why);
  if (status)
    http_reply_error(req, status, status == 403 ? "forbidden" : "invalid_value", why, "region");
  return status == 0;
}

/* ?days= of a trend: 1 … 92, 14 when absent; false (and a 422 sent) when malformed. */
static inline bool query_days(struct evhttp_request *req, long *days) {
  const char *d = http_query(req, "days");
  char *end = NULL;
  *days = d ? strtol(d, &end, 10) : 14;
  if (d && (*end || *days < 1 || *days > 92)) {
    http_reply_error(req, 422, "invalid_value", "days is 1 … 92", "days");
    return false;
  }
  return true;
}
#endif
