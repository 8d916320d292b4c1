/* Unit tests: the in-memory unit tree the creation path decides with. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "units.h"

static unit_tree *tree(void) {
  unit_tree *t = unit_tree_new();
  unit_tree_add(t, "hq", "000000", "", "hq");
  unit_tree_add(t, "sh", "310000", "hq", "province");
  unit_tree_add(t, "bj", "110000", "hq", "province");
  unit_tree_add(t, "sh-city", "310100", "sh", "city");
  unit_tree_add(t, "sh-pd", "310115", "sh-city", "county");
  unit_tree_add(t, "sh-biz-telecom", "310000", "sh", "business_owner-telecom");
  unit_tree_add(t, "hq-biz-power", "000000", "hq", "business_owner-power");
  unit_tree_add(t, "sh", "999999", "", "city"); /* a duplicate id is ignored */
  return t;
}

static void centres_and_parents(void **st) {
  unit_tree *t = tree();
  assert_int_equal(unit_tree_count(t), 7);
  assert_string_equal(unit_tree_centre_of(t, "sh-pd"), "sh");
  assert_string_equal(unit_tree_centre_of(t, "sh"), "sh");
  assert_string_equal(unit_tree_centre_of(t, "hq"), "hq");
  assert_string_equal(unit_tree_centre_of(t, "nowhere"), "hq");
  assert_string_equal(unit_tree_parent(t, "sh-pd"), "sh-city");
  assert_null(unit_tree_parent(t, "hq"));
  assert_string_equal(unit_tree_hq(t), "hq");
  unit_tree_destroy(&t);
  assert_null(t);
}

static void home_province_centre(void **st) {
  unit_tree *t = tree();
  assert_string_equal(unit_tree_province_centre(t, "310115"), "sh");
  assert_string_equal(unit_tree_province_centre(t, "110105"), "bj");
  assert_null(unit_tree_province_centre(t, "440305"));
  assert_null(unit_tree_province_centre(t, ""));
  unit_tree_destroy(&t);
}

static void business_owner_of_a_line(void **st) {
  unit_tree *t = tree();
  assert_string_equal(unit_tree_business_owner(t, "sh", "telecom"), "sh-biz-telecom");
  assert_null(unit_tree_business_owner(t, "bj", "telecom")); /* none under bj nor HQ */
  assert_string_equal(unit_tree_business_owner(t, "sh", "power"), "hq-biz-power"); /* HQ's */
  assert_null(unit_tree_business_owner(t, "sh", ""));
  unit_tree_destroy(&t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(centres_and_parents),
      cmocka_unit_test(home_province_centre),
      cmocka_unit_test(business_owner_of_a_line),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
