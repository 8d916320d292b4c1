/* Unit tests: receipt template rendering, phone masking, retry back-off. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "clock.h"
#include "template.h"

static void test_receipt_has_order_and_local_time(void **state) {
  (void)state;
  int64_t ms;
  assert_int_equal(clock_parse_ms("2026-11-24T02:00:00Z", &ms), 0); /* 10:00 in Shanghai */
  char *s = template_receipt("KS20261123000001", ms);
  assert_string_equal(s, "【客诉】您的投诉已受理，工单号KS20261123000001，我们将在2026-11-24 "
                         "10:00前答复您。");
  free(s);
}

static void test_local_minute_crosses_the_date_line(void **state) {
  (void)state;
  int64_t ms;
  assert_int_equal(clock_parse_ms("2026-12-31T16:30:59.999Z", &ms), 0);
  char out[17];
  template_local_minute(ms, out, sizeof out);
  assert_string_equal(out, "2027-01-01 00:30");
}

static void test_render_variables(void **state) {
  (void)state;
  const char *names[] = {"a", "bb"};
  const char *values[] = {"1", "二"};
  char *s = template_render("{a}-{bb}-{c}-{a}{", 2, names, values);
  assert_string_equal(s, "1-二-{c}-1{");
  free(s);
  s = template_render("", 2, names, values);
  assert_string_equal(s, "");
  free(s);
  s = template_render("{{a}}", 2, names, values);
  assert_string_equal(s, "{1}");
  free(s);
}

static void test_phone_mask(void **state) {
  (void)state;
  char out[32];
  phone_mask("13812341234", out, sizeof out);
  assert_string_equal(out, "138****1234");
  phone_mask("02161234567", out, sizeof out);
  assert_string_equal(out, "021****4567");
  phone_mask("12345678", out, sizeof out);
  assert_string_equal(out, "123*5678");
  phone_mask("1234567", out, sizeof out);
  assert_string_equal(out, "***4567");
  phone_mask("1234", out, sizeof out);
  assert_string_equal(out, "****");
  phone_mask("", out, sizeof out);
  assert_string_equal(out, "");
  phone_mask(NULL, out, sizeof out);
  assert_string_equal(out, "");
  char tiny[4];
  phone_mask("13812341234", tiny, sizeof tiny);
  assert_string_equal(tiny, "138");
}

static void test_backoff_doubles_caps_and_jitters(void **state) {
  (void)state;
  assert_int_equal(backoff_delay_ms(1, 0.5), 1000);
  assert_int_equal(backoff_delay_ms(2, 0.5), 2000);
  assert_int_equal(backoff_delay_ms(3, 0.5), 4000);
  assert_int_equal(backoff_delay_ms(6, 0.5), 32000);
  assert_int_equal(backoff_delay_ms(7, 0.5), 60000);
  assert_int_equal(backoff_delay_ms(30, 0.5), 60000);
  assert_int_equal(backoff_delay_ms(1, 0.0), 800);
  assert_int_equal(backoff_delay_ms(1, 1.0), 1200);
  assert_int_equal(backoff_delay_ms(7, 0.0), 48000);
  assert_int_equal(backoff_delay_ms(7, 0.999999), 71999);
  assert_int_equal(backoff_delay_ms(0, 0.5), 1000); /* nonsense input: treated as the first */
  for (int a = 1; a <= DELIVERY_MAX_ATTEMPTS; a++) {
    int64_t d = backoff_delay_ms(a, 0.25);
    assert_true(d >= 800 && d <= 72000);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_receipt_has_order_and_local_time),
      cmocka_unit_test(test_local_minute_crosses_the_date_line),
      cmocka_unit_test(test_render_variables),
      cmocka_unit_test(test_phone_mask),
      cmocka_unit_test(test_backoff_doubles_caps_and_jitters),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
