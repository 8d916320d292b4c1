/* template — rendering, masking and back-off (see template.h). */
#include "template.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "tmpl.h"

char *template_render(const char *tmpl, int nvars, const char *const *names,
                      const char *const *values) {
  return tmpl_render(tmpl, nvars, names, values); /* the engine is common/tmpl.c */
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

enum { DAY_MS = 86400000, LOCAL_OFFSET_MS = 8 * 3600000 };

int64_t hold_until_ms(int64_t now_ms, int from_min, int to_min) {
  if (from_min == to_min) return now_ms; /* no window */
  int64_t local = now_ms + LOCAL_OFFSET_MS;
  int64_t day = local - ((local % DAY_MS) + DAY_MS) % DAY_MS; /* local midnight */
  int64_t m = (local - day) / 60000;                           /* minute of the day */
  bool inside = from_min < to_min ? (m >= from_min && m < to_min)
                                  : (m >= from_min || m < to_min);
  if (!inside) return now_ms;
  int64_t release = day + (int64_t)to_min * 60000;
  if (release <= local) release += DAY_MS; /* the window ends tomorrow */
  return release - LOCAL_OFFSET_MS;
}

int parse_window(const char *s, int *from_min, int *to_min) {
  int h1, m1, h2, m2;
  char tail;
  if (!s || sscanf(s, "%d:%d-%d:%d%c", &h1, &m1, &h2, &m2, &tail) != 4) return -1;
  if (h1 < 0 || h1 > 24 || h2 < 0 || h2 > 24 || m1 < 0 || m1 > 59 || m2 < 0 || m2 > 59) return -1;
  *from_min = h1 * 60 + m1;
  *to_min = h2 * 60 + m2;
  if (*from_min > 1440 || *to_min > 1440) return -1;
  return 0;
}

bool conditions_match(const char *conds, int n, const char *const *keys,
                      const char *const *values) {
  const char *p = conds ? conds : "";
  while (*p) {
    const char *end = strchr(p, ';');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    const char *eq = memchr(p, '=', len);
    if (!eq) return false;
    size_t klen = (size_t)(eq - p), vlen = len - klen - 1;
    const char *want = eq + 1;
    bool at_least = klen > 1 && eq[-1] == '>'; /* "priority>=8": a number at least */
    if (at_least) klen--;
    int i = 0;
    while (i < n && !(strlen(keys[i]) == klen && memcmp(keys[i], p, klen) == 0)) i++;
    if (i == n) return false; /* unknown key: never matches */
    const char *have = values[i] ? values[i] : "";
    bool ok;
    if (at_least) {
      char num[24], *e1, *e2;
      size_t k = vlen < sizeof num - 1 ? vlen : sizeof num - 1;
      memcpy(num, want, k);
      num[k] = '\0';
      long long w = strtoll(num, &e1, 10), h = strtoll(have, &e2, 10);
      ok = k > 0 && *e1 == '\0' && *have && *e2 == '\0' && h >= w;
    } else if (klen == 6 && memcmp(p, "region", 6) == 0) { /* a region prefix, 6-digit codes as areas */
      char pre[16];
      size_t k = vlen < sizeof pre - 1 ? vlen : sizeof pre - 1;
      memcpy(pre, want, k);
      pre[k] = '\0';
      while (k >= 2 && pre[k - 1] == '0' && pre[k - 2] == '0') pre[k -= 2] = '\0';
      ok = strncmp(have, pre, k) == 0;
    } else {
      ok = strlen(have) == vlen && strncasecmp(have, want, vlen) == 0;
    }
    if (!ok) return false;
    p += len;
    if (*p == ';') p++;
  }
  return true;
}

uint64_t address_hash(const char *s) {
  uint64_t h = 1469598103934665603ULL; /* FNV-1a */
  for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
    h ^= *p;
    h *= 1099511628211ULL;
  }
  return h;
}

int32_t cal_local_day(int64_t ms) {
  int64_t local = ms + LOCAL_OFFSET_MS;
  return (int32_t)((local - (((local % DAY_MS) + DAY_MS) % DAY_MS)) / DAY_MS);
}

int32_t cal_day_of(const char *ymd) {
  int y, m, d;
  char tail;
  if (!ymd || sscanf(ymd, "%d-%d-%d%c", &y, &m, &d, &tail) != 3) return -1;
  static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m < 1 || m > 12 || d < 1) return -1;
  if (d > mdays[m - 1] + (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))) return -1;
  /* days from civil (H. Hinnant) */
  y -= m <= 2;
  int era = (y >= 0 ? y : y - 399) / 400;
  int yoe = y - era * 400;
  int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return (int32_t)(era * 146097 + doe - 719468);
}

bool cal_is_working_day(const cal_day *days, int n, int32_t day) {
  for (int i = 0; i < n; i++)
    if (days[i].day == day) return days[i].workday;
  int wd = (int)(((day + 4) % 7 + 7) % 7); /* 1970-01-01 was a Thursday; 0 = Sunday */
  return wd != 0 && wd != 6;
}

int64_t staff_open_at_ms(int64_t now_ms, int open_min, int close_min, const cal_day *days, int n) {
  if (open_min >= close_min) {
    open_min = 0;
    close_min = 1440;
  }
  int32_t today = cal_local_day(now_ms);
  int64_t minute = (now_ms + LOCAL_OFFSET_MS - (int64_t)today * DAY_MS) / 60000;
  if (cal_is_working_day(days, n, today)) {
    if (minute >= open_min && minute < close_min) return now_ms;
    if (minute < open_min) return (int64_t)today * DAY_MS + open_min * 60000LL - LOCAL_OFFSET_MS;
  }
  for (int32_t d = today + 1; d < today + 400; d++)
    if (cal_is_working_day(days, n, d))
      return (int64_t)d * DAY_MS + open_min * 60000LL - LOCAL_OFFSET_MS;
  return now_ms;
}

/* See template.h. */
const char *template_move_reason(const char *kind, const char *reason) {
  if (strcmp(kind, "postpone") == 0)
    return strcmp(reason, "snow") == 0 ? "雪天" : strcmp(reason, "rain") == 0 ? "雨天" : reason;
  if (strcmp(kind, "appointment") == 0) return "与客户预约";
  if (strcmp(kind, "pause") == 0 || strcmp(kind, "resume") == 0)
    return strcmp(reason, "customer") == 0 ? "等待客户" : reason;
  if (strcmp(kind, "reclassify") == 0 && strcmp(reason, "reclassify") == 0) return "工单重新定级";
  if (strcmp(kind, "reclassify") == 0 && strcmp(reason, "large_fault") == 0) return "大故障";
  return reason;
}

