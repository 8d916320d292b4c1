/* template — rendering, masking and back-off (see template.h). */
#include "template.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"

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

char *template_render(const char *tmpl, int nvars, const char *const *names,
                      const char *const *values) {
  sbuf b = {0};
  sb_add(&b, "", 0);
  const char *p = tmpl;
  while (*p) {
    const char *open = strchr(p, '{');
    if (!open) {
      sb_add(&b, p, strlen(p));
      break;
    }
    sb_add(&b, p, (size_t)(open - p));
    const char *close = strchr(open + 1, '}');
    if (!close) {
      sb_add(&b, open, strlen(open));
      break;
    }
    size_t nlen = (size_t)(close - open - 1);
    int found = -1;
    for (int i = 0; i < nvars; i++)
      if (strlen(names[i]) == nlen && memcmp(names[i], open + 1, nlen) == 0) {
        found = i;
        break;
      }
    if (found >= 0) {
      const char *v = values[found] ? values[found] : "";
      sb_add(&b, v, strlen(v));
      p = close + 1;
    } else {
      sb_add(&b, open, 1); /* keep the brace, look for variables after it */
      p = open + 1;
    }
  }
  return b.s;
}

void template_local_minute(int64_t ms, char *out, size_t len) {
  char rfc[40];
  clock_format_ms(ms, rfc, sizeof rfc); /* 2026-11-24T10:00:00.000+08:00 */
  rfc[10] = ' ';
  rfc[16] = '\0';
  if (len > 0) {
    size_t n = strlen(rfc);
    if (n >= len) n = len - 1;
    memcpy(out, rfc, n);
    out[n] = '\0';
  }
}

char *template_receipt(const char *order_no, int64_t promised_by_ms) {
  char when[20];
  template_local_minute(promised_by_ms, when, sizeof when);
  const char *names[] = {"order_no", "promised_by"};
  const char *values[] = {order_no, when};
  return template_render(TEMPLATE_RECEIPT, 2, names, values);
}

void phone_mask(const char *phone, char *out, size_t len) {
  if (!len) return;
  size_t n = phone ? strlen(phone) : 0;
  size_t keep_head = n >= 8 ? 3 : 0;
  size_t keep_tail = n >= 8 ? 4 : (n > 4 ? 4 : 0);
  size_t k = 0;
  for (size_t i = 0; i < n && k + 1 < len; i++) {
    int keep = i < keep_head || i >= n - keep_tail;
    out[k++] = keep ? phone[i] : '*';
  }
  out[k] = '\0';
}

int64_t backoff_delay_ms(int attempts, double u) {
  if (attempts < 1) attempts = 1;
  int64_t base = 60000;
  if (attempts - 1 < 6) base = (int64_t)1000 << (attempts - 1); /* 1,2,4,...,32 s; then 60 s */
  if (u < 0) u = 0;
  if (u > 1) u = 1;
  double f = 0.8 + 0.4 * u;
  return (int64_t)((double)base * f);
}
