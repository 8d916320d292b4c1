/* calendar — working days and business hours (see calendar.h, R-33). */
#include "calendar.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { DAY_MS = 86400000, MIN_MS = 60000, MAX_SCAN_DAYS = 3660 };

void calendar_init(sla_calendar *c) {
  memset(c, 0, sizeof *c);
  c->tz_offset_min = 480;
  c->open_min = 8 * 60 + 30;
  c->close_min = 17 * 60 + 30;
}

void calendar_free(sla_calendar *c) {
  free(c->days);
  c->days = NULL;
  c->ndays = c->cap = 0;
}

/* Howard Hinnant's days_from_civil. */
int32_t calendar_days_from_civil(int y, int m, int d) {
  y -= m <= 2;
  int era = (y >= 0 ? y : y - 399) / 400;
  int yoe = y - era * 400;
  int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static bool date_valid(int y, int m, int d) {
  static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (y < 1970 || y > 2200 || m < 1 || m > 12 || d < 1)
    return false;
  int max = mdays[m - 1] + (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0));
  return d <= max;
}

int calendar_parse_date(const char *s, int32_t *day) {
  int y, m, d, n = 0;
  if (!s || strlen(s) != 10 || sscanf(s, "%4d-%2d-%2d%n", &y, &m, &d, &n) != 3 || n != 10 ||
      !date_valid(y, m, d))
    return -1;
  *day = calendar_days_from_civil(y, m, d);
  return 0;
}

int calendar_set_day(sla_calendar *c, int y, int m, int d, bool working) {
  if (!date_valid(y, m, d))
    return -1;
  int32_t day = calendar_days_from_civil(y, m, d);
  int lo = 0, hi = c->ndays;
  while (lo < hi) {
    int mid = (lo + hi) / 2;
    if (c->days[mid].day < day)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo < c->ndays && c->days[lo].day == day) {
    c->days[lo].working = working;
    return 0;
  }
  if (c->ndays == c->cap) {
    int ncap = c->cap ? c->cap * 2 : 64;
    calendar_override *nd = realloc(c->days, (size_t)ncap * sizeof *nd);
    if (!nd)
      return -1;
    c->days = nd;
    c->cap = ncap;
  }
  memmove(c->days + lo + 1, c->days + lo, (size_t)(c->ndays - lo) * sizeof *c->days);
  c->days[lo] = (calendar_override){day, working};
  c->ndays++;
  return 0;
}

void calendar_add_cn_2026(sla_calendar *c) {
  static const struct {
    int m, d0, d1;
  } holidays[] = {{1, 1, 3},   {2, 15, 23}, {4, 4, 6}, {5, 1, 5},
                  {6, 19, 21}, {9, 25, 27}, {10, 1, 7}};
  static const struct {
    int m, d;
  } makeup[] = {{1, 4}, {2, 14}, {2, 28}, {5, 9}, {9, 20}, {10, 10}};
  for (size_t i = 0; i < sizeof holidays / sizeof *holidays; i++)
    for (int d = holidays[i].d0; d <= holidays[i].d1; d++)
      calendar_set_day(c, 2026, holidays[i].m, d, false);
  for (size_t i = 0; i < sizeof makeup / sizeof *makeup; i++)
    calendar_set_day(c, 2026, makeup[i].m, makeup[i].d, true);
}

static int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

int32_t calendar_local_day(const sla_calendar *c, int64_t ms) {
  return (int32_t)floor_div(ms + (int64_t)c->tz_offset_min * MIN_MS, DAY_MS);
}

bool calendar_is_working_day(const sla_calendar *c, int32_t day) {
  int lo = 0, hi = c->ndays;
  while (lo < hi) {
    int mid = (lo + hi) / 2;
    if (c->days[mid].day < day)
      lo = mid + 1;
    else if (c->days[mid].day > day)
      hi = mid;
    else
      return c->days[mid].working;
  }
  int wd = (int)(((int64_t)day % 7 + 7 + 4) % 7); /* 1970-01-01 was a Thursday; 0 = Sunday */
  return wd >= 1 && wd <= 5;
}

int sla_unit_parse(const char *s) {
  if (!s)
    return -1;
  if (strcmp(s, "clock_hours") == 0)
    return SLA_UNIT_CLOCK_HOURS;
  if (strcmp(s, "business_hours") == 0)
    return SLA_UNIT_BUSINESS_HOURS;
  if (strcmp(s, "working_days") == 0)
    return SLA_UNIT_WORKING_DAYS;
  if (strcmp(s, "day_end") == 0)
    return SLA_UNIT_DAY_END;
  return -1;
}

const char *sla_unit_name(sla_unit u) {
  switch (u) {
  case SLA_UNIT_BUSINESS_HOURS: return "business_hours";
  case SLA_UNIT_WORKING_DAYS: return "working_days";
  case SLA_UNIT_DAY_END: return "day_end";
  default: return "clock_hours";
  }
}

/* Walks local days from the start, consuming the countable window of each
 * working day ([open, close) for business hours, the whole day for working
 * days) until amount_ms is used up. */
int64_t calendar_add(const sla_calendar *c, int64_t start_ms, int64_t amount_ms, sla_unit unit) {
  if (unit == SLA_UNIT_CLOCK_HOURS || amount_ms < 0)
    return start_ms + amount_ms;
  int64_t off = (int64_t)c->tz_offset_min * MIN_MS;
  if (unit == SLA_UNIT_DAY_END) /* from the local midnight that began the start's day */
    return floor_div(start_ms + off, DAY_MS) * DAY_MS + amount_ms - off;
  int64_t ws = 0, we = DAY_MS;
  if (unit == SLA_UNIT_BUSINESS_HOURS) {
    ws = (int64_t)c->open_min * MIN_MS;
    we = (int64_t)c->close_min * MIN_MS;
    if (we <= ws)
      return start_ms + amount_ms; /* no business hours configured */
  }
  int64_t local = start_ms + off;
  int64_t day = floor_div(local, DAY_MS);
  int64_t left = amount_ms;
  for (int i = 0; i < MAX_SCAN_DAYS + (int)(amount_ms / DAY_MS); i++, day++) {
    if (!calendar_is_working_day(c, (int32_t)day))
      continue;
    int64_t lo = day * DAY_MS + ws, hi = day * DAY_MS + we;
    int64_t from = local > lo ? local : lo;
    if (from > hi)
      continue;
    if (left <= hi - from) {
      /* A zero amount from a closed time still waits for the opening. */
      return from + left - off;
    }
    left -= hi - from;
  }
  return start_ms + amount_ms; /* a calendar without working days: count clock time */
}

int calendar_copy(sla_calendar *dst, const sla_calendar *src) {
  dst->tz_offset_min = src->tz_offset_min;
  dst->open_min = src->open_min;
  dst->close_min = src->close_min;
  if (src->ndays == 0)
    return 0;
  calendar_override *nd = realloc(dst->days, (size_t)src->ndays * sizeof *nd);
  if (!nd)
    return -1;
  memcpy(nd, src->days, (size_t)src->ndays * sizeof *nd);
  dst->days = nd;
  dst->ndays = dst->cap = src->ndays;
  return 0;
}

int calendar_region_key(const char *region, char out[16]) {
  out[0] = '\0';
  if (!region || !*region || strcmp(region, "*") == 0)
    return 0;
  size_t n = strlen(region);
  if (n > 12)
    return -1;
  for (size_t i = 0; i < n; i++)
    if (region[i] < '0' || region[i] > '9')
      return -1;
  memcpy(out, region, n + 1);
  if (n == 6)
    while (n >= 2 && out[n - 1] == '0' && out[n - 2] == '0')
      out[n -= 2] = '\0';
  return 0;
}

const sla_calendar *calendar_pick(const region_calendar *v, int n, const sla_calendar *dflt,
                                  const char *region) {
  char key[16];
  if (calendar_region_key(region, key) != 0)
    key[0] = '\0';
  const region_calendar *best = NULL;
  size_t best_len = 0;
  for (int i = 0; i < n; i++) {
    size_t pl = strlen(v[i].prefix);
    if (strncmp(key, v[i].prefix, pl) == 0 && (!best || pl > best_len)) {
      best = &v[i];
      best_len = pl;
    }
  }
  return best ? &best->cal : dflt;
}
