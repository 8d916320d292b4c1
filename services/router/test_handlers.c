/* Unit tests: choosing a handler for an order (units, credit, spreading, expiry). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "handlers.h"

static void test_pick_respects_units(void **state) {
  (void)state;
  handler_set *s = handler_set_new();
  const char *sh[] = {"unit-sh", "unit-sh-pd"};
  const char *all[] = {"*"};
  handler_set_hello(s, "h-sh", sh, 2, 10, 0);
  assert_string_equal(handler_set_pick(s, "unit-sh-pd")->id, "h-sh");
  assert_null(handler_set_pick(s, "unit-bj"));
  handler_set_hello(s, "h-all", all, 1, 10, 0);
  assert_string_equal(handler_set_pick(s, "unit-bj")->id, "h-all");
  handler_set_destroy(&s);
}

static void test_pick_spreads_by_free_credit(void **state) {
  (void)state;
  handler_set *s = handler_set_new();
  const char *u[] = {"u1"};
  handler_link *a = handler_set_hello(s, "a", u, 1, 2, 0);
  handler_link *b = handler_set_hello(s, "b", u, 1, 2, 0);
  int na = 0, nb = 0;
  for (int i = 0; i < 4; i++) {
    handler_link *h = handler_set_pick(s, "u1");
    assert_non_null(h);
    h->inflight++;
    if (h == a)
      na++;
    if (h == b)
      nb++;
  }
  assert_int_equal(na, 2);
  assert_int_equal(nb, 2);
  assert_null(handler_set_pick(s, "u1")); /* no credit left anywhere */
  a->inflight--;                          /* a acknowledged one */
  assert_ptr_equal(handler_set_pick(s, "u1"), a);
  /* The one with more free credit is preferred. */
  handler_set_hello(s, "c", u, 1, 100, 0);
  assert_string_equal(handler_set_pick(s, "u1")->id, "c");
  handler_set_destroy(&s);
}

static int gone_count;
static void on_gone(handler_link *h, void *arg) {
  (void)h;
  (void)arg;
  gone_count++;
}

static void test_expiry_and_dead(void **state) {
  (void)state;
  handler_set *s = handler_set_new();
  const char *u[] = {"u1"};
  handler_set_hello(s, "old", u, 1, 5, 0);
  handler_set_hello(s, "fresh", u, 1, 5, 2500);
  gone_count = 0;
  assert_int_equal(handler_set_expire(s, 3500, 3000, on_gone, NULL), 1);
  assert_int_equal(gone_count, 1);
  assert_null(handler_set_find(s, "old"));
  handler_link *f = handler_set_find(s, "fresh");
  assert_non_null(f);
  f->dead = true;
  assert_null(handler_set_pick(s, "u1"));
  assert_int_equal(handler_set_expire(s, 3600, 3000, on_gone, NULL), 1);
  assert_int_equal(handler_set_count(s), 0);
  assert_null(handler_set_pick(s, "u1"));
  /* A Hello brings a handler back with new units. */
  const char *u2[] = {"u2"};
  handler_set_hello(s, "fresh", u2, 1, 5, 4000);
  assert_null(handler_set_pick(s, "u1"));
  assert_non_null(handler_set_pick(s, "u2"));
  handler_set_destroy(&s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pick_respects_units),
      cmocka_unit_test(test_pick_spreads_by_free_credit),
      cmocka_unit_test(test_expiry_and_dead),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
