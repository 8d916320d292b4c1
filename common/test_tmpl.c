/* Unit tests: the notification template engine shared by the notifier and
 * kesuctl's loader (unknown variables refused, rendering). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tmpl.h"

static void test_check_accepts_known_variables(void **state) {
  (void)state;
  char bad[32] = "";
  assert_int_equal(tmpl_check("【客诉】工单号{order_no}，我们将在{promised_by}前答复您。", bad,
                              sizeof bad),
                   0);
  assert_int_equal(tmpl_check("", bad, sizeof bad), 0);
  assert_int_equal(tmpl_check(NULL, bad, sizeof bad), 0);
  /* brace text that is not a variable is literal */
  assert_int_equal(tmpl_check("{ } {A} {1x} {a b} { {order_no}}", bad, sizeof bad), 0);
}

static void test_check_refuses_unknown_variables(void **state) {
  (void)state;
  char bad[32] = "";
  assert_int_equal(tmpl_check("工单{order_no}，客户{customer_phon}", bad, sizeof bad), -1);
  assert_string_equal(bad, "customer_phon");
  assert_int_equal(tmpl_check("{{orderno}}", bad, sizeof bad), -1);
  assert_string_equal(bad, "orderno");
  char tiny[4];
  assert_int_equal(tmpl_check("{unknown_thing}", tiny, sizeof tiny), -1);
  assert_string_equal(tiny, "unk");
}

static void test_render(void **state) {
  (void)state;
  const char *names[] = {"order_no", "unit"};
  const char *values[] = {"KS1", "浦东分公司"};
  char *s = tmpl_render("{order_no}派至{unit}{title}{", 2, names, values);
  assert_string_equal(s, "KS1派至浦东分公司{title}{");
  free(s);
  s = tmpl_render("{{order_no}}", 2, names, values);
  assert_string_equal(s, "{KS1}");
  free(s);
  const char *nullv[] = {NULL, NULL};
  s = tmpl_render("[{unit}]", 2, names, nullv);
  assert_string_equal(s, "[]");
  free(s);
}

static void test_every_known_variable_passes_check(void **state) {
  (void)state;
  for (int i = 0; tmpl_known_vars[i]; i++) {
    char t[64], bad[32];
    snprintf(t, sizeof t, "x{%s}y", tmpl_known_vars[i]);
    assert_int_equal(tmpl_check(t, bad, sizeof bad), 0);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_check_accepts_known_variables),
      cmocka_unit_test(test_check_refuses_unknown_variables),
      cmocka_unit_test(test_render),
      cmocka_unit_test(test_every_known_variable_passes_check),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
