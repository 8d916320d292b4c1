/* Unit tests: the working calendar with the 2026 national schedule —
 * exact deadlines across weekends, holidays and make-up days 调休 — and SLA
 * policy matching (R-25 … R-30). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h> /* after the headers it needs */

#include "calendar.h"
#include "policy.h"
#include "reference.h"

static sla_calendar cal;

/* Unix ms of a local Asia/Shanghai (UTC+8) time. */
static int64_t at(int y, int mo, int d, int h, int mi) {
  return ((int64_t)calendar_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 - 8 * 3600) *
         1000;
}

static int setup(void **state) {
  (void)state;
  calendar_init(&cal);
  calendar_add_cn_2026(&cal);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  calendar_free(&cal);
  return 0;
}

#define WD(n) ((int64_t)(n)*86400000)
#define HOURS(n) ((int64_t)(n)*3600000)

static void test_epoch_and_weekdays(void **state) {
  (void)state;
  assert_int_equal(calendar_days_from_civil(1970, 1, 1), 0);
  assert_int_equal(at(2026, 1, 1, 8, 0), 1767225600000LL);
  int32_t d;
  assert_int_equal(calendar_parse_date("2026-09-18", &d), 0);
  assert_int_equal(d, calendar_days_from_civil(2026, 9, 18));
  assert_int_equal(calendar_parse_date("2026-02-30", &d), -1);
  assert_int_equal(calendar_parse_date("2026-9-18", &d), -1);
  assert_true(calendar_is_working_day(&cal, calendar_days_from_civil(2026, 9, 18)));  /* Fri */
  assert_false(calendar_is_working_day(&cal, calendar_days_from_civil(2026, 9, 19))); /* Sat */
  assert_true(calendar_is_working_day(&cal, calendar_days_from_civil(2026, 9, 20))); /* 调休 Sun */
  assert_false(calendar_is_working_day(&cal, calendar_days_from_civil(2026, 10, 1))); /* Thu */
  assert_true(calendar_is_working_day(&cal, calendar_days_from_civil(2026, 10, 10))); /* 调休 Sat */
  assert_false(calendar_is_working_day(&cal, calendar_days_from_civil(2026, 10, 11)));
  /* Local day boundary: 2026-09-18 23:30 +08 is 15:30 UTC, still the 18th. */
  assert_int_equal(calendar_local_day(&cal, at(2026, 9, 18, 23, 30)),
                   calendar_days_from_civil(2026, 9, 18));
  assert_int_equal(calendar_local_day(&cal, at(2026, 9, 19, 0, 0)),
                   calendar_days_from_civil(2026, 9, 19));
}

/* The case: Fri 16:00 + 2 working days; Sat off, Sun 20th a make-up
 * working day, so the limit ends on Monday 21st at 16:00 — not Tuesday. */
static void test_friday_plus_two_working_days(void **state) {
  (void)state;
  int64_t s = at(2026, 9, 18, 16, 0);
  assert_int_equal(calendar_add(&cal, s, WD(2), SLA_UNIT_WORKING_DAYS), at(2026, 9, 21, 16, 0));
  assert_int_equal(calendar_add(&cal, s, WD(1), SLA_UNIT_WORKING_DAYS), at(2026, 9, 20, 16, 0));
  /* Without the 2026 schedule it would be Tuesday. */
  sla_calendar plain;
  calendar_init(&plain);
  assert_int_equal(calendar_add(&plain, s, WD(2), SLA_UNIT_WORKING_DAYS), at(2026, 9, 22, 16, 0));
  calendar_free(&plain);
  /* Clock hours ignore the calendar. */
  assert_int_equal(calendar_add(&cal, s, HOURS(24), SLA_UNIT_CLOCK_HOURS), at(2026, 9, 19, 16, 0));
}

/* Mid-Autumn Sep 25–27 and National Day Oct 1–7, make-up Sat Oct 10. */
static void test_national_day(void **state) {
  (void)state;
  /* An appeal (R-28, 7 working days) accepted Tue Sep 29 10:00: Sep 30,
   * Oct 8, 9, 10 (Sat, make-up), 12, 13, 14. */
  assert_int_equal(calendar_add(&cal, at(2026, 9, 29, 10, 0), WD(7), SLA_UNIT_WORKING_DAYS),
                   at(2026, 10, 14, 10, 0));
  /* Its 90 % warning: 6.3 working days → Oct 13 + 0.3 × 24 h = Oct 13 17:12. */
  assert_int_equal(
      calendar_add(&cal, at(2026, 9, 29, 10, 0), WD(7) / 10 * 9, SLA_UNIT_WORKING_DAYS),
      at(2026, 10, 13, 17, 12));
  /* Wed Sep 30 15:00 + 2 working days: the holiday week is skipped entirely,
   * Oct 8 and Oct 9 count. */
  assert_int_equal(calendar_add(&cal, at(2026, 9, 30, 15, 0), WD(2), SLA_UNIT_WORKING_DAYS),
                   at(2026, 10, 9, 15, 0));
  /* Fri Oct 9 09:00 + 1 working day is the make-up Saturday. */
  assert_int_equal(calendar_add(&cal, at(2026, 10, 9, 9, 0), WD(1), SLA_UNIT_WORKING_DAYS),
                   at(2026, 10, 10, 9, 0));
  /* Thu Sep 24 15:00 + 2: Fri 25 – Sun 27 are the Mid-Autumn holiday. */
  assert_int_equal(calendar_add(&cal, at(2026, 9, 24, 15, 0), WD(2), SLA_UNIT_WORKING_DAYS),
                   at(2026, 9, 29, 15, 0));
  /* Started on a holiday (Oct 3 11:00): counting starts Oct 8 00:00, so
   * 3 working days end at the end of Oct 10 (the make-up Saturday). */
  assert_int_equal(calendar_add(&cal, at(2026, 10, 3, 11, 0), WD(3), SLA_UNIT_WORKING_DAYS),
                   at(2026, 10, 11, 0, 0));
}

/* Spring Festival: make-up Sat Feb 14, holidays Feb 15–23, make-up Sat Feb 28. */
static void test_spring_festival(void **state) {
  (void)state;
  /* Escalated complaint, mobile (R-27, 3 working days), received Fri Feb 13
   * 09:00: Feb 14 (make-up), Feb 24, Feb 25. */
  assert_int_equal(calendar_add(&cal, at(2026, 2, 13, 9, 0), WD(3), SLA_UNIT_WORKING_DAYS),
                   at(2026, 2, 25, 9, 0));
  /* Fixed network (7 working days) from the same instant: 14, 24, 25, 26,
   * 27, 28 (make-up Sat), Mar 2 (Mon). */
  assert_int_equal(calendar_add(&cal, at(2026, 2, 13, 9, 0), WD(7), SLA_UNIT_WORKING_DAYS),
                   at(2026, 3, 2, 9, 0));
  /* A suggestion (R-30, 2 working days) on Fri Feb 27 12:00: Sat 28, Mon. */
  assert_int_equal(calendar_add(&cal, at(2026, 2, 27, 12, 0), WD(2), SLA_UNIT_WORKING_DAYS),
                   at(2026, 3, 2, 12, 0));
  /* New Year: Jan 1–3 off, Sun Jan 4 a make-up day. */
  assert_int_equal(calendar_add(&cal, at(2025, 12, 31, 10, 0), WD(1), SLA_UNIT_WORKING_DAYS),
                   at(2026, 1, 4, 10, 0));
}

/* Business hours: the shipped default 08:30–17:30 (the spec names none;
 * data/business_hours.csv, shared with the notifier). */
static void test_business_hours(void **state) {
  (void)state;
  assert_int_equal(cal.open_min, 8 * 60 + 30);
  assert_int_equal(cal.close_min, 17 * 60 + 30);
  /* Started after hours on Friday Nov 20, 18:30: the clock starts Monday
   * 08:30, 2 business hours → Mon Nov 23 10:30. */
  assert_int_equal(calendar_add(&cal, at(2026, 11, 20, 18, 30), HOURS(2), SLA_UNIT_BUSINESS_HOURS),
                   at(2026, 11, 23, 10, 30));
  /* Before opening: 07:00 + 2 h → 10:30 the same day. */
  assert_int_equal(calendar_add(&cal, at(2026, 11, 23, 7, 0), HOURS(2), SLA_UNIT_BUSINESS_HOURS),
                   at(2026, 11, 23, 10, 30));
  /* Spans the close: Fri 16:00 + 2 h → 1.5 h Friday, 0.5 h Monday = Mon 09:00. */
  assert_int_equal(calendar_add(&cal, at(2026, 11, 20, 16, 0), HOURS(2), SLA_UNIT_BUSINESS_HOURS),
                   at(2026, 11, 23, 9, 0));
  /* Ends exactly at closing time: stays at 17:30, not the next opening. */
  assert_int_equal(calendar_add(&cal, at(2026, 11, 23, 15, 30), HOURS(2), SLA_UNIT_BUSINESS_HOURS),
                   at(2026, 11, 23, 17, 30));
  /* At closing on the eve of National Day: Wed Sep 30 17:30 + 4 h → Oct 8 12:30. */
  assert_int_equal(calendar_add(&cal, at(2026, 9, 30, 17, 30), HOURS(4), SLA_UNIT_BUSINESS_HOURS),
                   at(2026, 10, 8, 12, 30));
  /* A make-up Sunday has business hours too: Sat Sep 19 10:00 + 1 h → Sun 09:30. */
  assert_int_equal(calendar_add(&cal, at(2026, 9, 19, 10, 0), HOURS(1), SLA_UNIT_BUSINESS_HOURS),
                   at(2026, 9, 20, 9, 30));
  /* Other hours (a region's row): 09:00–17:00, Fri 16:00 + 2 h → Mon 10:00. */
  sla_calendar nine;
  calendar_init(&nine);
  assert_int_equal(calendar_copy(&nine, &cal), 0);
  nine.open_min = 9 * 60;
  nine.close_min = 17 * 60;
  assert_int_equal(calendar_add(&nine, at(2026, 11, 20, 16, 0), HOURS(2), SLA_UNIT_BUSINESS_HOURS),
                   at(2026, 11, 23, 10, 0));
  calendar_free(&nine);
}

/* Calendars per region: a province's calendar is the national one plus
 * its own days; the longest matching region prefix wins, else the national. */
static void test_region_calendars(void **state) {
  (void)state;
  char key[16];
  assert_int_equal(calendar_region_key("450000", key), 0);
  assert_string_equal(key, "45");
  assert_int_equal(calendar_region_key("450100", key), 0);
  assert_string_equal(key, "4501");
  assert_int_equal(calendar_region_key("450102", key), 0);
  assert_string_equal(key, "450102");
  assert_int_equal(calendar_region_key("*", key), 0);
  assert_string_equal(key, "");
  assert_int_equal(calendar_region_key("45a", key), -1);

  region_calendar v[3];
  memset(v, 0, sizeof v);
  for (int i = 0; i < 3; i++) {
    calendar_init(&v[i].cal);
    assert_int_equal(calendar_copy(&v[i].cal, &cal), 0);
  }
  snprintf(v[0].prefix, sizeof v[0].prefix, "%s", "");     /* '*': national */
  snprintf(v[1].prefix, sizeof v[1].prefix, "%s", "45");   /* Guangxi: a local holiday */
  snprintf(v[2].prefix, sizeof v[2].prefix, "%s", "4501"); /* Nanning: other hours */
  calendar_set_day(&v[1].cal, 2026, 4, 20, false);         /* Mon Apr 20 off */
  calendar_set_day(&v[2].cal, 2026, 4, 20, false);
  v[2].cal.open_min = 9 * 60;
  v[2].cal.close_min = 18 * 60;
  /* the province: Mon Apr 20 is off, so Fri Apr 17 10:00 + 1 WD → Tue 10:00 */
  const sla_calendar *gx = calendar_pick(v, 3, &cal, "450300");
  assert_ptr_equal(gx, &v[1].cal);
  assert_int_equal(calendar_add(gx, at(2026, 4, 17, 10, 0), WD(1), SLA_UNIT_WORKING_DAYS),
                   at(2026, 4, 21, 10, 0));
  /* its national holidays still hold (copied): Oct 1 is off there too */
  assert_false(calendar_is_working_day(gx, calendar_days_from_civil(2026, 10, 1)));
  /* elsewhere the national calendar: Mon Apr 20 is a working day */
  const sla_calendar *sh = calendar_pick(v, 3, &cal, "310115");
  assert_ptr_equal(sh, &v[0].cal);
  assert_int_equal(calendar_add(sh, at(2026, 4, 17, 10, 0), WD(1), SLA_UNIT_WORKING_DAYS),
                   at(2026, 4, 20, 10, 0));
  /* the city row beats the province row */
  assert_ptr_equal(calendar_pick(v, 3, &cal, "450102"), &v[2].cal);
  assert_ptr_equal(calendar_pick(v, 3, &cal, "450100"), &v[2].cal);
  /* no rows at all, or an unknown region without a '*' row: the default */
  assert_ptr_equal(calendar_pick(v, 0, &cal, "450102"), &cal);
  assert_ptr_equal(calendar_pick(v + 1, 2, &cal, "310115"), &cal);
  for (int i = 0; i < 3; i++)
    calendar_free(&v[i].cal);
}

static void test_units(void **state) {
  (void)state;
  assert_int_equal(sla_unit_parse("clock_hours"), SLA_UNIT_CLOCK_HOURS);
  assert_int_equal(sla_unit_parse("business_hours"), SLA_UNIT_BUSINESS_HOURS);
  assert_int_equal(sla_unit_parse("working_days"), SLA_UNIT_WORKING_DAYS);
  assert_int_equal(sla_unit_parse("days"), -1);
  assert_string_equal(sla_unit_name(SLA_UNIT_WORKING_DAYS), "working_days");
  assert_int_equal(sla_unit_parse("day_end"), SLA_UNIT_DAY_END);
  assert_string_equal(sla_unit_name(SLA_UNIT_DAY_END), "day_end");
}

static void add(policy_set *s, const char *id, const char *kind, const char *stream,
                const char *tier, const char *level, const char *area, const char *step,
                double limit, sla_unit unit) {
  const char *f[POLICY_NFIELDS] = {kind, stream, tier, level, area, step};
  assert_int_equal(policy_set_add(s, id, f, limit, unit, 0.9), 0);
}

/* R-29 installation "the same day": unit day_end, 1 = until 24:00 local of
 * the start's day, whatever the calendar says (a Sunday or a holiday too);
 * the warning is 90 % of the time actually given; 1.5 = noon of the next
 * day, 2 = the end of the next day (the escalation rungs). */
static void test_day_end(void **state) {
  (void)state;
  policy_set s;
  policy_set_init(&s);
  add(&s, "install", "repair", "*", "*", "*", "*", "install", 1, SLA_UNIT_DAY_END);
  policy_key k = {.kind = "repair", .step = "install"};
  int64_t w, d;
  policy_deadlines(policy_match(&s, &k), &cal, at(2026, 11, 23, 10, 0), &w, &d);
  assert_int_equal(d, at(2026, 11, 24, 0, 0));
  assert_int_equal(w, at(2026, 11, 23, 22, 36)); /* 10:00 + 0.9 × 14 h */
  policy_deadlines(policy_match(&s, &k), &cal, at(2026, 10, 1, 23, 0), &w, &d); /* a holiday */
  assert_int_equal(d, at(2026, 10, 2, 0, 0));
  assert_int_equal(w, at(2026, 10, 1, 23, 54));
  assert_int_equal(calendar_add(&cal, at(2026, 11, 23, 10, 0), WD(1) + WD(1) / 2, SLA_UNIT_DAY_END),
                   at(2026, 11, 24, 12, 0));
  assert_int_equal(calendar_add(&cal, at(2026, 11, 23, 0, 0), WD(2), SLA_UNIT_DAY_END),
                   at(2026, 11, 25, 0, 0));
  policy_set_free(&s);
}

static void test_policy_most_specific_wins(void **state) {
  (void)state;
  policy_set s;
  policy_set_init(&s);
  add(&s, "answer-general", "*", "*", "general", "*", "*", "answer", 24, SLA_UNIT_CLOCK_HOURS);
  add(&s, "answer-any", "*", "*", "*", "*", "*", "answer", 24, SLA_UNIT_CLOCK_HOURS);
  add(&s, "answer-provincial", "*", "*", "provincial", "*", "*", "answer", 48,
      SLA_UNIT_CLOCK_HOURS);
  add(&s, "handle-provincial", "*", "*", "provincial", "*", "*", "handle", 41,
      SLA_UNIT_CLOCK_HOURS);
  add(&s, "handle-provincial-vip", "*", "*", "provincial", "vip|diamond|gold|silver|3g", "*",
      "handle", 24, SLA_UNIT_CLOCK_HOURS);
  add(&s, "appeal", "*", "appeal", "*", "*", "*", "answer", 7, SLA_UNIT_WORKING_DAYS);
  add(&s, "repair-urban", "repair", "*", "*", "*", "urban", "arrive", 0.5, SLA_UNIT_CLOCK_HOURS);
  add(&s, "repair-rural", "repair", "*", "*", "*", "rural", "arrive", 2, SLA_UNIT_CLOCK_HOURS);
  const char *bad[POLICY_NFIELDS] = {"*", "*", "*", "*", "*", "answer"};
  assert_int_equal(policy_set_add(&s, "bad", bad, 0, SLA_UNIT_CLOCK_HOURS, 0.9), -1);
  assert_int_equal(policy_set_add(&s, "bad", bad, 1, SLA_UNIT_CLOCK_HOURS, 1.5), -1);

  policy_key k = {.kind = "complaint", .tier = "provincial", .step = "answer"};
  assert_string_equal(policy_match(&s, &k)->id, "answer-provincial");
  k.tier = "";
  assert_string_equal(policy_match(&s, &k)->id, "answer-any");
  k.tier = "general";
  assert_string_equal(policy_match(&s, &k)->id, "answer-general");
  /* VIP and 3G use the lower bound. */
  k = (policy_key){.kind = "complaint", .tier = "provincial", .level = "gold", .step = "handle"};
  assert_string_equal(policy_match(&s, &k)->id, "handle-provincial-vip");
  k.level = "3g";
  assert_string_equal(policy_match(&s, &k)->id, "handle-provincial-vip");
  k.level = "ordinary";
  assert_string_equal(policy_match(&s, &k)->id, "handle-provincial");
  k.level = NULL;
  assert_string_equal(policy_match(&s, &k)->id, "handle-provincial");
  /* Appeals: the stream beats the tier-less default. */
  k = (policy_key){.kind = "complaint", .stream = "appeal", .step = "answer"};
  assert_string_equal(policy_match(&s, &k)->id, "appeal");
  /* A suggestion (kind) beats the tier default; an appeal (stream) beats
   * a tier's VIP row. */
  add(&s, "suggestion", "suggestion", "*", "*", "*", "*", "answer", 2, SLA_UNIT_WORKING_DAYS);
  k = (policy_key){.kind = "suggestion", .tier = "general", .step = "answer"};
  assert_string_equal(policy_match(&s, &k)->id, "suggestion");
  add(&s, "appeal-handle", "*", "appeal", "*", "*", "*", "handle", 96, SLA_UNIT_CLOCK_HOURS);
  k = (policy_key){.stream = "appeal", .tier = "provincial", .level = "gold", .step = "handle"};
  assert_string_equal(policy_match(&s, &k)->id, "appeal-handle");
  k = (policy_key){.kind = "repair", .area = "urban", .step = "arrive"};
  const sla_policy *p = policy_match(&s, &k);
  assert_string_equal(p->id, "repair-urban");
  assert_int_equal(policy_limit_ms(p), 30 * 60000);
  k.area = "rural";
  assert_int_equal(policy_limit_ms(policy_match(&s, &k)), 2 * 3600000);
  k.area = NULL;
  assert_null(policy_match(&s, &k));
  policy_set_free(&s);
}

static void test_policy_deadlines(void **state) {
  (void)state;
  policy_set s;
  policy_set_init(&s);
  add(&s, "general", "*", "*", "general", "*", "*", "answer", 24, SLA_UNIT_CLOCK_HOURS);
  add(&s, "appeal", "*", "appeal", "*", "*", "*", "answer", 7, SLA_UNIT_WORKING_DAYS);
  policy_key k = {.tier = "general", .step = "answer"};
  int64_t w, d, s0 = at(2026, 11, 23, 10, 0);
  policy_deadlines(policy_match(&s, &k), &cal, s0, &w, &d);
  assert_int_equal(w - s0, HOURS(21) + 36 * 60000); /* 21 h 36 min */
  assert_int_equal(d - s0, HOURS(24));
  k = (policy_key){.stream = "appeal", .step = "answer"};
  policy_deadlines(policy_match(&s, &k), &cal, at(2026, 9, 29, 10, 0), &w, &d);
  assert_int_equal(w, at(2026, 10, 13, 17, 12));
  assert_int_equal(d, at(2026, 10, 14, 10, 0));
  policy_set_free(&s);
}

/* The escalation ladder follows the policy's unit: 150 % and 200 %
 * of 2 working days from Fri Sep 18 16:00 are 3 and 4 working days. With no
 * policy the R-25 built-in limit by tier applies. */
static void test_reference_deadlines_and_ladder(void **state) {
  (void)state;
  sla_reference r;
  sla_reference_init(&r);
  calendar_add_cn_2026(&r.calendar);
  add(&r.policies, "suggestion", "suggestion", "*", "*", "*", "*", "answer", 2,
      SLA_UNIT_WORKING_DAYS);
  policy_key k = {.kind = "suggestion", .tier = "general", .step = "answer"};
  sla_deadline d;
  sla_reference_deadlines(&r, &k, at(2026, 9, 18, 16, 0), &d);
  assert_string_equal(d.policy_id, "suggestion");
  assert_int_equal(d.due_at, at(2026, 9, 21, 16, 0));
  assert_int_equal(d.escalate_at[0], at(2026, 9, 22, 16, 0));
  assert_int_equal(d.escalate_at[1], at(2026, 9, 23, 16, 0));
  k = (policy_key){.kind = "complaint", .tier = "provincial", .step = "answer"};
  sla_reference_deadlines(&r, &k, at(2026, 11, 23, 10, 0), &d);
  assert_null(d.policy_id);
  assert_int_equal(d.due_at - at(2026, 11, 23, 10, 0), HOURS(48));
  assert_int_equal(d.escalate_at[0] - at(2026, 11, 23, 10, 0), HOURS(72));
  assert_int_equal(d.escalate_at[1] - at(2026, 11, 23, 10, 0), HOURS(96));
  assert_null(sla_reference_parent(&r, "sh-pd"));
  sla_reference_free(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_epoch_and_weekdays),
      cmocka_unit_test(test_friday_plus_two_working_days),
      cmocka_unit_test(test_national_day),
      cmocka_unit_test(test_spring_festival),
      cmocka_unit_test(test_business_hours),
      cmocka_unit_test(test_region_calendars),
      cmocka_unit_test(test_units),
      cmocka_unit_test(test_day_end),
      cmocka_unit_test(test_policy_most_specific_wins),
      cmocka_unit_test(test_policy_deadlines),
      cmocka_unit_test(test_reference_deadlines_and_ladder),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
