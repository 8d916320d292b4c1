/* Unit tests: SLA limits by tier, warning/due times, and the timer set
 * (map + heap) the watcher fires from. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "timers.h"

static void test_limits_by_tier(void **state) {
  (void)state;
  assert_int_equal(sla_answer_limit_seconds("general"), 24 * 3600);
  assert_int_equal(sla_answer_limit_seconds("provincial"), 48 * 3600);
  assert_int_equal(sla_answer_limit_seconds("national"), 72 * 3600);
  assert_int_equal(sla_answer_limit_seconds("unspecified"), 24 * 3600);
  assert_int_equal(sla_answer_limit_seconds(NULL), 24 * 3600);
}

static void test_warning_at_ninety_percent(void **state) {
  (void)state;
  int64_t w, d;
  sla_deadlines(1000, 24 * 3600, &w, &d);
  assert_int_equal(w, 1000 + (21 * 3600 + 36 * 60) * 1000LL); /* 21 h 36 min */
  assert_int_equal(d, 1000 + 24 * 3600 * 1000LL);
  sla_deadlines(0, 7, &w, &d); /* 6.3 s */
  assert_int_equal(w, 6300);
  assert_int_equal(d, 7000);
}

static void test_set_fires_warning_then_due(void **state) {
  (void)state;
  timer_set s;
  timer_set_init(&s);
  sla_timer *a = timer_set_add(&s, "A", "answer", "U1", "310101", 0, 90, 100, 1);
  sla_timer *b = timer_set_add(&s, "B", "answer", "U2", "110101", 0, 50, 60, 1);
  assert_non_null(a);
  assert_non_null(b);
  assert_null(timer_set_add(&s, "A", "answer", "", "", 0, 1, 2, 1)); /* already there */
  assert_non_null(timer_set_add(&s, "A", "handle", "", "", 0, 1000, 2000, 1)); /* other step */
  assert_ptr_equal(timer_set_get(&s, "A", "answer"), a);
  assert_null(timer_set_get(&s, "C", "answer"));
  timer_set_arm(&s, a);
  timer_set_arm(&s, b);
  assert_int_equal(timer_set_next_at(&s), 50);
  assert_null(timer_set_pop_due(&s, 49));
  assert_ptr_equal(timer_set_pop_due(&s, 95), b);
  assert_ptr_equal(timer_set_pop_due(&s, 95), a);
  assert_null(timer_set_pop_due(&s, 95));
  /* Warned: re-armed for the due time. */
  a->warned = true;
  timer_set_arm(&s, a);
  assert_int_equal(timer_set_next_at(&s), 100);
  /* Breached: nothing left to fire. */
  a->breached = true;
  timer_set_arm(&s, a);
  assert_int_equal(timer_set_next_at(&s), INT64_MAX);
  /* Closed timers leave map and heap. */
  timer_set_arm(&s, b);
  timer_set_del(&s, b);
  assert_null(timer_set_get(&s, "B", "answer"));
  assert_int_equal(timer_set_next_at(&s), INT64_MAX);
  assert_int_equal(s.count, 2);
  timer_set_free(&s);
}

static void test_set_grows(void **state) {
  (void)state;
  timer_set s;
  timer_set_init(&s);
  char no[32];
  for (int i = 0; i < 5000; i++) {
    snprintf(no, sizeof no, "KS%06d", i);
    sla_timer *t = timer_set_add(&s, no, "answer", "", "", 0, 5000 - i, 10000, 1);
    assert_non_null(t);
    timer_set_arm(&s, t);
  }
  assert_int_equal(s.count, 5000);
  for (int i = 0; i < 5000; i += 7) {
    snprintf(no, sizeof no, "KS%06d", i);
    assert_non_null(timer_set_get(&s, no, "answer"));
  }
  int64_t last = INT64_MIN;
  int n = 0;
  sla_timer *t;
  while ((t = timer_set_pop_due(&s, 10000))) {
    assert_true(t->hn.at >= last);
    last = t->hn.at;
    n++;
  }
  assert_int_equal(n, 5000);
  timer_set_free(&s);
}

static void test_free_with_armed_timers(void **state) {
  (void)state;
  timer_set s;
  timer_set_init(&s);
  for (int i = 0; i < 100; i++) {
    char no[16];
    snprintf(no, sizeof no, "KS%d", i);
    timer_set_arm(&s, timer_set_add(&s, no, "answer", "", "", 0, i, 100 + i, 1));
  }
  timer_set_free(&s); /* nodes still in the heap at shutdown */
  assert_int_equal(s.count, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_limits_by_tier),
      cmocka_unit_test(test_warning_at_ninety_percent),
      cmocka_unit_test(test_set_fires_warning_then_due),
      cmocka_unit_test(test_set_grows),
      cmocka_unit_test(test_free_with_armed_timers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
