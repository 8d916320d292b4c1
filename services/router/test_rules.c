/* Unit tests: routing rule choice (longest prefix, priority, catch-all). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "rules.h"

static void test_longest_prefix_wins(void **state) {
  (void)state;
  routing_rules *r = routing_rules_new();
  routing_rules_add(r, "31", "sh-province", 0);
  routing_rules_add(r, "3101", "sh-city", 0);
  routing_rules_add(r, "310115", "pudong", 0);
  assert_string_equal(routing_rules_choose(r, "310115"), "pudong");
  assert_string_equal(routing_rules_choose(r, "310101"), "sh-city");
  assert_string_equal(routing_rules_choose(r, "310200"), "sh-province");
  assert_null(routing_rules_choose(r, "440300")); /* no rule, no catch-all */
  routing_rules_destroy(&r);
  assert_null(r);
}

static void test_catch_all(void **state) {
  (void)state;
  routing_rules *r = routing_rules_new();
  routing_rules_add(r, "", "hq", 0);
  routing_rules_add(r, "44", "gd", 0);
  assert_string_equal(routing_rules_choose(r, "440300"), "gd");
  assert_string_equal(routing_rules_choose(r, "110101"), "hq");
  assert_string_equal(routing_rules_choose(r, ""), "hq");
  routing_rules_destroy(&r);

  r = routing_rules_new();
  routing_rules_add(r, "*", "star", 0);
  assert_string_equal(routing_rules_choose(r, "510100"), "star");
  routing_rules_destroy(&r);

  r = routing_rules_new();
  routing_rules_add(r, "000000", "country", 0);
  routing_rules_add(r, "510000", "sc", 0);
  assert_string_equal(routing_rules_choose(r, "510104"), "sc");
  assert_string_equal(routing_rules_choose(r, "110000"), "country");
  routing_rules_destroy(&r);
}

static void test_region_codes_name_their_area(void **state) {
  (void)state;
  routing_rules *r = routing_rules_new();
  routing_rules_add(r, "310000", "sh-province", 0);
  routing_rules_add(r, "310100", "sh-city", 0);
  routing_rules_add(r, "440300", "shenzhen", 0);
  assert_string_equal(routing_rules_choose(r, "310115"), "sh-city");
  assert_string_equal(routing_rules_choose(r, "310000"), "sh-province");
  assert_string_equal(routing_rules_choose(r, "319900"), "sh-province");
  assert_string_equal(routing_rules_choose(r, "440305"), "shenzhen");
  assert_null(routing_rules_choose(r, "440100"));
  char out[16];
  routing_prefix_normalize("310100", out, sizeof out);
  assert_string_equal(out, "3101");
  routing_prefix_normalize("3100", out, sizeof out); /* not a 6-digit code: literal */
  assert_string_equal(out, "3100");
  routing_prefix_normalize("000000", out, sizeof out);
  assert_string_equal(out, "");
  routing_rules_destroy(&r);
}

static void test_priority_breaks_ties_then_load_order(void **state) {
  (void)state;
  routing_rules *r = routing_rules_new();
  routing_rules_add(r, "11", "first", 0);
  routing_rules_add(r, "11", "second", 0);
  routing_rules_add(r, "110000", "low", -1);
  assert_string_equal(routing_rules_choose(r, "110105"), "first");
  routing_rules_add(r, "11", "urgent", 5);
  assert_string_equal(routing_rules_choose(r, "110105"), "urgent");
  /* A longer prefix beats any priority. */
  routing_rules_add(r, "1101", "city", -10);
  assert_string_equal(routing_rules_choose(r, "110105"), "city");
  assert_int_equal(routing_rules_count(r), 5);
  routing_rules_destroy(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_longest_prefix_wins),
      cmocka_unit_test(test_catch_all),
      cmocka_unit_test(test_region_codes_name_their_area),
      cmocka_unit_test(test_priority_breaks_ties_then_load_order),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
