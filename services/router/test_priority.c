/* Unit tests: the R-15 priority rule the dispatcher queues by (VIP first, then
 * national > provincial > general). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dispatcher.h"

static int prio(Kesu__V1__Tier tier, const char *level) {
  Kesu__V1__Customer cu = KESU__V1__CUSTOMER__INIT;
  cu.level = (char *)level;
  Kesu__V1__Complaint c = KESU__V1__COMPLAINT__INIT;
  c.tier = tier;
  c.customer = level ? &cu : NULL;
  return order_priority(&c);
}

static void test_tier_order(void **state) {
  (void)state;
  assert_true(prio(KESU__V1__TIER__NATIONAL, "") > prio(KESU__V1__TIER__PROVINCIAL, ""));
  assert_true(prio(KESU__V1__TIER__PROVINCIAL, "") > prio(KESU__V1__TIER__GENERAL, ""));
  assert_int_equal(prio(KESU__V1__TIER__GENERAL, NULL), prio(KESU__V1__TIER__GENERAL, ""));
}

static void test_vip_first(void **state) {
  (void)state;
  assert_true(prio(KESU__V1__TIER__GENERAL, "VIP") > prio(KESU__V1__TIER__NATIONAL, ""));
  assert_int_equal(prio(KESU__V1__TIER__GENERAL, "vip"), prio(KESU__V1__TIER__GENERAL, "3G"));
  assert_true(prio(KESU__V1__TIER__NATIONAL, "diamond") > prio(KESU__V1__TIER__GENERAL, "gold"));
  assert_int_equal(prio(KESU__V1__TIER__GENERAL, "ordinary"), prio(KESU__V1__TIER__GENERAL, ""));
}

static void test_gravity_urgency_breadth(void **state) {
  (void)state;
  Kesu__V1__Complaint c = KESU__V1__COMPLAINT__INIT;
  c.tier = KESU__V1__TIER__GENERAL;
  assert_int_equal(order_priority(&c), 1);
  c.breadth = true;
  assert_int_equal(order_priority(&c), 1 + 3);
  c.urgency = true;
  assert_int_equal(order_priority(&c), 1 + 3 + 4);
  c.gravity = true;
  assert_int_equal(order_priority(&c), 1 + 3 + 4 + 5);
  c.vip = true; /* the VIP sub-level counts like a VIP level */
  assert_int_equal(order_priority(&c), 1 + 3 + 4 + 5 + 10);
  assert_true(level_is_vip("Gold") && level_is_vip("3g") && !level_is_vip("group_a") &&
              !level_is_vip(NULL));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tier_order),
      cmocka_unit_test(test_vip_first),
      cmocka_unit_test(test_gravity_urgency_breadth),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
