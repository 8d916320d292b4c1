/* calendar — working-day and business-hour arithmetic for SLA limits.
 *
 * A calendar is a time zone (fixed offset; Asia/Shanghai = UTC+8, no DST),
 * business hours (minutes after local midnight; the spec is silent, default
 * 09:00–17:00) and overrides of the Mon–Fri week: public holidays (a weekday
 * that is off) and make-up working days 调休 (a Saturday or Sunday that is a
 * working day). Pure functions over Unix ms, no I/O; the watcher fills the
 * overrides from sla.calendar_days and the hours from sla.calendar_regions
 * (data/business_hours.csv; default 08:30–17:30, docs/internals.md
 * "Calendars and business hours"). Calendars are per region: the row of the
 * longest matching region prefix wins (calendar_pick).
 *
 * Units of a limit:
 *   clock hours     start + N h, every hour counts;
 *   business hours  only time inside business hours of working days counts
 *                   (a limit started after hours begins at the next opening);
 *   working days    only time on working days counts, 24 h each: from a
 *                   working day at 16:00, + N working days is 16:00 of the
 *                   N-th following working day; from a holiday, the count
 *                   starts at 00:00 of the next working day.
 */
#ifndef KESU_SLA_CALENDAR_H
#define KESU_SLA_CALENDAR_H
#include <stdbool.h>
#include <stdint.h>

typedef enum {
  SLA_UNIT_CLOCK_HOURS = 0,
  SLA_UNIT_BUSINESS_HOURS = 1,
  SLA_UNIT_WORKING_DAYS = 2,
  SLA_UNIT_DAY_END = 3, /* "day_end": until the end of the N-th local day, the start's day
                           being the first (1 = "the same day", R-29 installation);
                           1.5 = noon of the next day */
} sla_unit;

typedef struct {
  int32_t day; /* local days since 1970-01-01 */
  bool working;
} calendar_override;

typedef struct {
  int tz_offset_min;       /* local = UTC + offset; default 480 */
  int open_min, close_min; /* business hours; default 510 .. 1050 (08:30–17:30) */
  calendar_override *days; /* sorted by day, owned */
  int ndays, cap;
} sla_calendar;

/* Defaults: UTC+8, 08:30–17:30, Mon–Fri, no overrides. */
void calendar_init(sla_calendar *c);
void calendar_free(sla_calendar *c);
/* Marks a local date as a holiday (working=false) or a make-up working day
 * (working=true); replaces an earlier mark of that date. -1 on a bad date. */
int calendar_set_day(sla_calendar *c, int year, int month, int mday, bool working);
/* Parses "YYYY-MM-DD" into local days since the epoch; -1 if malformed. */
int calendar_parse_date(const char *s, int32_t *day);
/* Local days since the epoch of a civil date (proleptic Gregorian). */
int32_t calendar_days_from_civil(int year, int month, int mday);
/* The shipped 2026 national schedule (R-33, State Council notice 2025-11-04). */
void calendar_add_cn_2026(sla_calendar *c);

/* The local day of an instant, and whether a local day is a working day. */
int32_t calendar_local_day(const sla_calendar *c, int64_t ms);
bool calendar_is_working_day(const sla_calendar *c, int32_t day);

/* "clock_hours" / "business_hours" / "working_days" / "day_end" → unit; -1 if unknown. */
int sla_unit_parse(const char *s);
const char *sla_unit_name(sla_unit u);

/* The instant when `amount_ms` of countable time (see unit) has passed after
 * start_ms. For working days pass N * 86 400 000, for hours N * 3 600 000;
 * fractions work the same way (the 90 % warning of 2 working days is
 * 1.8 working days of time). */
int64_t calendar_add(const sla_calendar *c, int64_t start_ms, int64_t amount_ms, sla_unit unit);

/* Copies src's zone, hours and overrides into an initialised dst (dst's own
 * overrides set later win over the copied ones). -1 on no memory. */
int calendar_copy(sla_calendar *dst, const sla_calendar *src);

/* A region calendar: applies to regions under `prefix` (a region code with
 * its trailing "00" pairs dropped: "45" = Guangxi, "4501" = Nanning; "" =
 * everywhere). */
typedef struct {
  char prefix[16];
  char id[48];
  sla_calendar cal;
} region_calendar;

/* The area key of a region code or prefix: "310000" → "31", "310100" →
 * "3101", "310115" → "310115"; "*", "" and "000000" → "". -1 if malformed
 * (not digits, longer than 12). */
int calendar_region_key(const char *region, char out[16]);
/* The calendar of the longest prefix that covers `region`, else dflt. */
const sla_calendar *calendar_pick(const region_calendar *v, int n, const sla_calendar *dflt,
                                  const char *region);
#endif
