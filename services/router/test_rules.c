/* Unit tests: routing rule choice (longest prefix, priority, catch-all, every
 * dimension, the specificity order). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <string.h>

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


static void add(routing_rules *r, const char *region, const char *line, const char *btype,
                const char *ptype, const char *channel, const char *level, const char *unit,
                int priority) {
  routing_rule_def d = {region, line, btype, ptype, channel, level, unit, priority, 0};
  routing_rules_add_rule(r, &d);
}

static const char *pick(const routing_rules *r, const char *region, const char *line,
                        const char *btype, const char *ptype, const char *channel,
                        const char *level) {
  routing_query q = {region, line, btype, ptype, channel, level};
  return routing_rules_match(r, &q, NULL);
}

/* Each dimension on its own beats a region-only rule, however long its prefix,
 * and does not match an order with another value or none. */
static void test_each_dimension(void **state) {
  (void)state;
  routing_rules *r = routing_rules_new();
  add(r, "", NULL, NULL, NULL, NULL, NULL, "hq", 0);
  add(r, "310115", NULL, NULL, NULL, NULL, NULL, "sh-pd", 0);
  add(r, "", "power", NULL, NULL, NULL, NULL, "line-power", 0);
  add(r, "", NULL, "iptv", NULL, NULL, NULL, "type-iptv", 0);
  add(r, "", NULL, NULL, "roaming", NULL, NULL, "owner-roaming", 0);
  add(r, "", NULL, NULL, NULL, "regulator", NULL, "ch-regulator", 0);
  add(r, "", NULL, NULL, NULL, NULL, "diamond", "vip-desk", 0);
  assert_string_equal(pick(r, "310115", "telecom", "broadband", "network", "hotline", "ordinary"),
                      "sh-pd");
  assert_string_equal(pick(r, "310115", "power", "billing", "network", "hotline", ""),
                      "line-power");
  assert_string_equal(pick(r, "310115", "telecom", "iptv", "network", "hotline", ""), "type-iptv");
  assert_string_equal(pick(r, "310115", "telecom", "mobile", "roaming", "hotline", ""),
                      "owner-roaming");
  assert_string_equal(pick(r, "310115", "telecom", "mobile", "network", "regulator", ""),
                      "ch-regulator");
  assert_string_equal(pick(r, "310115", "telecom", "mobile", "network", "hotline", "diamond"),
                      "vip-desk");
  /* case-insensitive values; "*" is any */
  assert_string_equal(pick(r, "310115", NULL, NULL, NULL, NULL, "DIAMOND"), "vip-desk");
  add(r, "44", "*", "*", "*", "*", "*", "gd", 0);
  assert_string_equal(pick(r, "440305", "", "", "", "", ""), "gd");
  /* an empty order value never matches a rule that asks for one */
  assert_string_equal(pick(r, "110101", NULL, NULL, NULL, NULL, NULL), "hq");
  routing_rules_destroy(&r);
}

/* 1. more dimensions, 2. longer prefix, 3. priority, 4. added first. */
static void test_specificity_order(void **state) {
  (void)state;
  routing_rules *r = routing_rules_new();
  add(r, "310115", NULL, NULL, NULL, NULL, NULL, "county", 100);
  add(r, "", NULL, NULL, NULL, "hotline", NULL, "hotline-any", 0);
  add(r, "31", NULL, NULL, NULL, "hotline", NULL, "hotline-sh", 0);
  add(r, "", NULL, NULL, "network", "hotline", NULL, "net-hotline", -5);
  routing_match m;
  /* two dimensions beat one, whatever the prefix or priority */
  assert_string_equal(routing_rules_match(r, &(routing_query){"310115", NULL, NULL, "network",
                                                              "hotline", NULL},
                                          &m),
                      "net-hotline");
  assert_int_equal(m.dims, 2);
  assert_int_equal(m.prefix_len, 0);
  assert_int_equal(m.priority, -5);
  /* same dimension count: the longer prefix */
  assert_string_equal(pick(r, "310115", NULL, NULL, "billing", "hotline", NULL), "hotline-sh");
  assert_string_equal(pick(r, "440305", NULL, NULL, "billing", "hotline", NULL), "hotline-any");
  /* different dimensions with the same count and prefix: priority, then the first added */
  add(r, "31", NULL, NULL, NULL, NULL, "gold", "gold-sh", 0);
  assert_string_equal(pick(r, "310115", NULL, NULL, NULL, "hotline", "gold"), "hotline-sh");
  add(r, "31", NULL, NULL, NULL, NULL, "gold", "gold-sh-urgent", 1);
  assert_string_equal(pick(r, "310115", NULL, NULL, NULL, "hotline", "gold"), "gold-sh-urgent");
  add(r, "310000", NULL, NULL, NULL, "HOTLINE", NULL, "hotline-sh-urgent", 1);
  assert_string_equal(pick(r, "310115", NULL, NULL, NULL, "hotline", "gold"), "gold-sh-urgent");
  add(r, "31", NULL, NULL, NULL, NULL, "gold", "gold-sh-later", 1);
  assert_string_equal(pick(r, "310115", NULL, NULL, NULL, "hotline", "gold"), "gold-sh-urgent");
  /* the same rule key: priority, then the first added */
  add(r, "3101", "telecom", NULL, NULL, NULL, NULL, "a", 0);
  add(r, "310100", "telecom", NULL, NULL, NULL, NULL, "b", 0);
  assert_string_equal(pick(r, "310115", "telecom", NULL, NULL, NULL, NULL), "a");
  add(r, "3101", "telecom", NULL, NULL, NULL, NULL, "c", 2);
  assert_string_equal(pick(r, "310115", "telecom", NULL, NULL, NULL, NULL), "c");
  assert_null(pick(r, "320115", "telecom", NULL, NULL, NULL, NULL)); /* no catch-all here */
  assert_int_equal(routing_rules_count(r), 11);
  routing_rules_destroy(&r);
}

/* The index agrees with a scan of every rule in the specificity order, on
 * random rules and orders over small value sets (many ties and overlaps). */
typedef struct {
  char region[8];
  const char *v[RD_N];
  char unit[16];
  int priority, plen, dims;
} flat_rule;

static const char *scan(const flat_rule *rs, int n, const char *region, const char *const *qv) {
  const flat_rule *best = NULL;
  for (int i = 0; i < n; i++) {
    const flat_rule *g = &rs[i];
    bool ok = strncmp(region, g->region, (size_t)g->plen) == 0;
    for (int d = 0; ok && d < RD_N; d++)
      ok = !*g->v[d] || strcmp(g->v[d], qv[d]) == 0;
    if (ok && (!best || g->dims > best->dims ||
               (g->dims == best->dims &&
                (g->plen > best->plen ||
                 (g->plen == best->plen && g->priority > best->priority)))))
      best = g;
  }
  return best ? best->unit : NULL;
}

static void test_index_agrees_with_a_scan(void **state) {
  (void)state;
  static const char *const regions[] = {"", "3", "31", "3101", "310115", "32", "3201", "320102"};
  static const char *const vals[] = {"", "", "a", "b"};
  enum { NR = 400, NQ = 3000 };
  static flat_rule rs[NR];
  unsigned seed = 12345;
#define RND(n) ((int)((seed = seed * 1103515245u + 12345u) >> 16) % (n))
  routing_rules *r = routing_rules_new();
  for (int i = 0; i < NR; i++) {
    flat_rule *g = &rs[i];
    snprintf(g->region, sizeof g->region, "%s", regions[RND(8)]);
    g->plen = (int)strlen(g->region);
    g->dims = 0;
    for (int d = 0; d < RD_N; d++) {
      g->v[d] = vals[RND(4)];
      g->dims += *g->v[d] != '\0';
    }
    g->priority = RND(3);
    snprintf(g->unit, sizeof g->unit, "u%d", i);
    routing_rule_def def = {g->region, g->v[0], g->v[1], g->v[2], g->v[3], g->v[4],
                            g->unit,   g->priority, i};
    routing_rules_add_rule(r, &def);
  }
  static const char *const qregions[] = {"310115", "310101", "320102", "330100", "", "3"};
  for (int i = 0; i < NQ; i++) {
    const char *qv[RD_N];
    for (int d = 0; d < RD_N; d++)
      qv[d] = vals[RND(4)];
    const char *region = qregions[RND(6)];
    routing_query q = {region, qv[0], qv[1], qv[2], qv[3], qv[4]};
    const char *want = scan(rs, NR, region, qv), *got = routing_rules_match(r, &q, NULL);
    if (!want)
      assert_null(got);
    else
      assert_string_equal(got, want);
  }
#undef RND
  routing_rules_destroy(&r);
}

/* "vip" in a rule is the class of R-15's VIP levels; the exact level beats it. */
static void test_vip_class(void **state) {
  (void)state;
  routing_rules *r = routing_rules_new();
  routing_rule_def any = {.region_prefix = "31", .unit_id = "sh-centre"};
  routing_rule_def vip = {.region_prefix = "31", .customer_level = "vip", .unit_id = "sh-vip"};
  routing_rule_def gold = {.region_prefix = "31", .customer_level = "Gold", .unit_id = "sh-gold"};
  routing_rules_add_rule(r, &any);
  routing_rules_add_rule(r, &vip);
  routing_query q = {.region = "310115", .customer_level = "diamond"};
  assert_string_equal(routing_rules_match(r, &q, NULL), "sh-vip");
  q.customer_level = "3G";
  assert_string_equal(routing_rules_match(r, &q, NULL), "sh-vip");
  q.customer_level = "vip";
  assert_string_equal(routing_rules_match(r, &q, NULL), "sh-vip");
  q.customer_level = "ordinary";
  assert_string_equal(routing_rules_match(r, &q, NULL), "sh-centre");
  q.customer_level = "";
  assert_string_equal(routing_rules_match(r, &q, NULL), "sh-centre");
  routing_rules_add_rule(r, &gold);
  q.customer_level = "gold";
  assert_string_equal(routing_rules_match(r, &q, NULL), "sh-gold");
  q.customer_level = "silver";
  assert_string_equal(routing_rules_match(r, &q, NULL), "sh-vip");
  /* a longer prefix still beats the class at equal dimensions */
  routing_rule_def pd = {.region_prefix = "310115", .customer_level = "vip", .unit_id = "pd-vip"};
  routing_rules_add_rule(r, &pd);
  assert_string_equal(routing_rules_match(r, &q, NULL), "pd-vip");
  routing_rules_destroy(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_longest_prefix_wins),
      cmocka_unit_test(test_catch_all),
      cmocka_unit_test(test_region_codes_name_their_area),
      cmocka_unit_test(test_priority_breaks_ties_then_load_order),
      cmocka_unit_test(test_each_dimension),
      cmocka_unit_test(test_specificity_order),
      cmocka_unit_test(test_index_agrees_with_a_scan),
      cmocka_unit_test(test_vip_class),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
