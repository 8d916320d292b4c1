/* Unit tests: RFC 3339 in Asia/Shanghai and the shared controllable clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "clock.h"

static void formats_in_shanghai_time(void **st) {
  char buf[40];
  clock_format_ms(0, buf, sizeof buf);
  assert_string_equal(buf, "1970-01-01T08:00:00.000+08:00");
  /* 2026-09-30T16:00:00Z is midnight of National Day in Beijing. */
  clock_format_ms(1790784000000LL, buf, sizeof buf);
  assert_string_equal(buf, "2026-10-01T00:00:00.000+08:00");
  clock_format_ms(1790784000123LL - 1, buf, sizeof buf);
  assert_string_equal(buf, "2026-10-01T00:00:00.122+08:00");
}

static void parses_offsets_and_round_trips(void **st) {
  int64_t ms;
  assert_int_equal(clock_parse_ms("2026-10-01T00:00:00+08:00", &ms), 0);
  assert_int_equal(ms, 1790784000000LL);
  assert_int_equal(clock_parse_ms("2026-09-30T16:00:00Z", &ms), 0);
  assert_int_equal(ms, 1790784000000LL);
  assert_int_equal(clock_parse_ms("2026-09-30T16:00:00.5Z", &ms), 0);
  assert_int_equal(ms, 1790784000500LL);
  assert_int_equal(clock_parse_ms("2028-02-29T12:00:00-05:30", &ms), 0);
  char buf[40];
  clock_format_ms(ms, buf, sizeof buf);
  int64_t back;
  assert_int_equal(clock_parse_ms(buf, &back), 0);
  assert_int_equal(back, ms);
}

static void refuses_bad_times(void **st) {
  int64_t ms;
  assert_int_equal(clock_parse_ms("2026-02-29T00:00:00Z", &ms), -1); /* not a leap year */
  assert_int_equal(clock_parse_ms("2026-13-01T00:00:00Z", &ms), -1);
  assert_int_equal(clock_parse_ms("2026-10-01 00:00:00", &ms), -1);  /* no offset */
  assert_int_equal(clock_parse_ms("2026-10-01T24:00:00Z", &ms), -1);
  assert_int_equal(clock_parse_ms("yesterday", &ms), -1);
  assert_int_equal(clock_parse_ms("2026-10-01T00:00:00Zjunk", &ms), -1);
}

static void controllable_clock_is_shared(void **st) {
  char path[] = "/tmp/kesu-clock-test-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  char spec[64];
  snprintf(spec, sizeof spec, "control:%s", path);
  assert_int_equal(clock_init(spec), 0);
  assert_true(clock_is_controllable());
  int64_t before = clock_now_ms();
  assert_int_equal(clock_advance_ms(24LL * 3600 * 1000), 0);
  int64_t after = clock_now_ms();
  assert_true(after - before >= 24LL * 3600 * 1000);
  assert_true(after - before < 24LL * 3600 * 1000 + 5000);
  /* A second "process" mapping the same file sees the same offset. */
  assert_int_equal(clock_init(spec), 0);
  assert_true(clock_now_ms() - before >= 24LL * 3600 * 1000);
  assert_int_equal(clock_set_ms(1790784000000LL), 0);
  assert_true(llabs(clock_now_ms() - 1790784000000LL) < 5000);
  unlink(path);
  assert_int_equal(clock_init("real"), 0);
  assert_false(clock_is_controllable());
  assert_int_equal(clock_advance_ms(1), -1);
  assert_int_equal(clock_init("bogus"), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(formats_in_shanghai_time),
      cmocka_unit_test(parses_offsets_and_round_trips),
      cmocka_unit_test(refuses_bad_times),
      cmocka_unit_test(controllable_clock_is_shared),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
