/* Unit tests: complaint body rules (what a user gets back for bad input). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "validate.h"

static codeset regions, business, problems;
static refdata ref = {&regions, &business, &problems};

static char **dup_list(const char *const *v, size_t n) {
  char **out = calloc(n, sizeof(char *));
  for (size_t i = 0; i < n; i++) out[i] = strdup(v[i]);
  return out;
}

static int setup(void **st) {
  const char *r[] = {"310000", "310115", "110105"};
  const char *b[] = {"broadband", "mobile"};
  const char *p[] = {"network"};
  codeset_init(&regions, dup_list(r, 3), 3);
  codeset_init(&business, dup_list(b, 2), 2);
  codeset_init(&problems, dup_list(p, 1), 1);
  return 0;
}

static int teardown(void **st) {
  codeset_free(&regions);
  codeset_free(&business);
  codeset_free(&problems);
  return 0;
}

static const char *GOOD =
    "{\"channel\":\"hotline\",\"customer\":{\"name\":\"张三\",\"phone\":\"13800138000\","
    "\"home_region\":\"310115\"},\"region\":\"310115\",\"business_type\":\"broadband\","
    "\"title\":\"宽带断网\",\"content\":\"宽带断网三天\"}";

static int check(const char *json, verr *e, complaint_in *c) {
  json_t *j = json_loads(json, 0, NULL);
  assert_non_null(j);
  int rc = complaint_validate(j, &ref, c, e);
  json_decref(j);
  return rc;
}

static void accepts_a_good_complaint_with_defaults(void **st) {
  verr e;
  complaint_in c;
  json_t *j = json_loads(GOOD, 0, NULL);
  assert_int_equal(complaint_validate(j, &ref, &c, &e), 0);
  assert_string_equal(c.kind, "complaint");
  assert_string_equal(c.stream, "ordinary");
  assert_string_equal(c.tier, "general");
  assert_string_equal(c.name, "张三");
  assert_null(c.problem_type);
  json_decref(j);
}

#define EXPECT(json, status_, code_, field_)        \
  do {                                              \
    verr e;                                         \
    complaint_in c;                                 \
    assert_int_equal(check(json, &e, &c), -1);      \
    assert_int_equal(e.status, status_);            \
    assert_string_equal(e.code, code_);             \
    assert_string_equal(e.field, field_);           \
  } while (0)

static void names_the_problem(void **st) {
  EXPECT("{\"customer\":{}}", 422, "missing_field", "channel");
  EXPECT("{\"channel\":\"pigeon\"}", 422, "invalid_value", "channel");
  EXPECT("{\"channel\":7}", 422, "wrong_type", "channel");
  EXPECT("{\"channel\":\"hotline\",\"colour\":\"red\"}", 422, "unknown_field", "colour");
  EXPECT("{\"channel\":\"hotline\"}", 422, "missing_field", "customer");
  EXPECT("{\"channel\":\"hotline\",\"customer\":\"张三\"}", 422, "wrong_type", "customer");
  EXPECT("{\"channel\":\"hotline\",\"customer\":{\"name\":\"张三\",\"phone\":\"abc\","
         "\"home_region\":\"310115\"}}",
         422, "invalid_value", "customer.phone");
  EXPECT("{\"channel\":\"hotline\",\"customer\":{\"name\":\"张三\",\"phone\":\"13800138000\","
         "\"home_region\":\"310115\",\"age\":3}}",
         422, "unknown_field", "customer.age");
  EXPECT("{\"channel\":\"hotline\",\"customer\":{\"name\":\"  \",\"phone\":\"13800138000\","
         "\"home_region\":\"310115\"}}",
         422, "missing_field", "customer.name");
  EXPECT("{\"channel\":\"hotline\",\"customer\":{\"name\":\"张三\",\"phone\":\"13800138000\","
         "\"home_region\":\"310115\"},\"region\":\"999999\"}",
         422, "unknown_region", "region");
  EXPECT("{\"channel\":\"hotline\",\"customer\":{\"name\":\"张三\",\"phone\":\"13800138000\","
         "\"home_region\":\"310115\"},\"region\":\"31011\"}",
         422, "invalid_value", "region");
  EXPECT("{\"channel\":\"hotline\",\"customer\":{\"name\":\"张三\",\"phone\":\"13800138000\","
         "\"home_region\":\"310115\"},\"region\":\"310115\",\"business_type\":\"gas\"}",
         422, "invalid_value", "business_type");
}

static void counts_length_in_characters(void **st) {
  /* 100 Chinese characters (300 bytes) is fine; 101 is too long. */
  char title[400] = "", json[2048];
  for (int i = 0; i < 100; i++) strcat(title, "诉");
  snprintf(json, sizeof json,
           "{\"channel\":\"hotline\",\"customer\":{\"name\":\"张三\",\"phone\":\"13800138000\","
           "\"home_region\":\"310115\"},\"region\":\"310115\",\"business_type\":\"broadband\","
           "\"title\":\"%s\",\"content\":\"x\"}",
           title);
  verr e;
  complaint_in c;
  assert_int_equal(check(json, &e, &c), 0);
  strcat(title, "诉");
  snprintf(json, sizeof json,
           "{\"channel\":\"hotline\",\"customer\":{\"name\":\"张三\",\"phone\":\"13800138000\","
           "\"home_region\":\"310115\"},\"region\":\"310115\",\"business_type\":\"broadband\","
           "\"title\":\"%s\",\"content\":\"x\"}",
           title);
  EXPECT(json, 422, "too_long", "title");
}

static void tier_limits_follow_r25(void **st) {
  assert_int_equal(tier_limit_seconds("general"), 24 * 3600);
  assert_int_equal(tier_limit_seconds("provincial"), 48 * 3600);
  assert_int_equal(tier_limit_seconds("national"), 72 * 3600);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(accepts_a_good_complaint_with_defaults),
      cmocka_unit_test(names_the_problem),
      cmocka_unit_test(counts_length_in_characters),
      cmocka_unit_test(tier_limits_follow_r25),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
