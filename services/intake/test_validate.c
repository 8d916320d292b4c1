/* Unit tests: complaint body rules (what a user gets back for bad input). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "validate.h"

static codeset regions, business, problems, lines;
static refdata ref = {&regions, &business, &problems, &lines};

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
  const char *l[] = {"broadband\ttelecom", "mobile\ttelecom"};
  codeset_init(&lines, dup_list(l, 2), 2);
  return 0;
}

static int teardown(void **st) {
  codeset_free(&regions);
  codeset_free(&business);
  codeset_free(&problems);
  codeset_free(&lines);
  return 0;
}

static const char *GOOD =
    "{\"channel\":\"hotline\",\"customer\":{\"name\":\"张三\",\"phone\":\"13800138000\","
    "\"home_region\":\"310115\",\"address\":\"上海市浦东新区世纪大道1号\"},"
    "\"region\":\"310115\",\"business_type\":\"broadband\","
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
           "\"home_region\":\"310115\",\"address\":\"上海\"},\"region\":\"310115\","
           "\"business_type\":\"broadband\",\"title\":\"%s\",\"content\":\"x\"}",
           title);
  verr e;
  complaint_in c;
  assert_int_equal(check(json, &e, &c), 0);
  strcat(title, "诉");
  snprintf(json, sizeof json,
           "{\"channel\":\"hotline\",\"customer\":{\"name\":\"张三\",\"phone\":\"13800138000\","
           "\"home_region\":\"310115\",\"address\":\"上海\"},\"region\":\"310115\","
           "\"business_type\":\"broadband\",\"title\":\"%s\",\"content\":\"x\"}",
           title);
  EXPECT(json, 422, "too_long", "title");
}

/* GOOD with top-level fields replaced by top and customer fields by cust (JSON objects or
 * NULL); a field set to null is removed. Returns complaint_validate's result. */
static int variant(const char *top, const char *cust, verr *e, complaint_in *c, json_t **keep) {
  json_t *j = json_loads(GOOD, 0, NULL);
  json_t *cu = json_object_get(j, "customer");
  const char *k;
  json_t *v;
  void *tmp;
  json_t *t = top ? json_loads(top, 0, NULL) : NULL, *u = cust ? json_loads(cust, 0, NULL) : NULL;
  if (top) assert_non_null(t);
  if (cust) assert_non_null(u);
  json_object_foreach_safe(t, tmp, k, v) {
    if (json_is_null(v)) json_object_del(j, k);
    else json_object_set(j, k, v);
  }
  json_object_foreach_safe(u, tmp, k, v) {
    if (json_is_null(v)) json_object_del(cu, k);
    else json_object_set(cu, k, v);
  }
  json_decref(t);
  json_decref(u);
  int rc = complaint_validate(j, &ref, c, e);
  *keep = j; /* c borrows its strings */
  return rc;
}

#define VARIANT_FAILS(top, cust, code_, field_)           \
  do {                                                    \
    verr e;                                               \
    complaint_in c;                                       \
    json_t *keep;                                         \
    assert_int_equal(variant(top, cust, &e, &c, &keep), -1); \
    assert_int_equal(e.status, 422);                      \
    assert_string_equal(e.code, code_);                   \
    assert_string_equal(e.field, field_);                 \
    json_decref(keep);                                    \
  } while (0)

static void takes_the_rest_of_r07(void **st) {
  verr e;
  complaint_in c;
  json_t *keep;
  assert_int_equal(variant("{\"cause\":\"resource_fault\",\"brand\":\"沃\",\"area\":\"rural\","
                           "\"gravity\":true,\"breadth\":false,\"urgency\":true,"
                           "\"recording_ref\":\"REC-2026-001\",\"customer_signed\":true,"
                           "\"vip\":true,\"tier\":\"provincial\"}",
                           "{\"email\":\"zhang@example.com\",\"reply_channel\":\"email\","
                           "\"level\":\"gold\"}",
                           &e, &c, &keep),
                   0);
  assert_string_equal(c.cause, "resource_fault");
  assert_string_equal(c.brand, "沃");
  assert_string_equal(c.area, "rural");
  assert_true(c.gravity && !c.breadth && c.urgency && c.customer_signed && c.vip);
  assert_string_equal(c.recording_ref, "REC-2026-001");
  assert_string_equal(c.email, "zhang@example.com");
  assert_string_equal(c.reply_channel, "email");
  assert_string_equal(c.business_line, "telecom"); /* from the business type */
  assert_null(c.answer_on_spot);
  assert_false(c.has_appeal);
  json_decref(keep);
}

static void names_the_problem_in_r07_fields(void **st) {
  VARIANT_FAILS("{\"cause\":\"weather\"}", NULL, "invalid_value", "cause");
  VARIANT_FAILS("{\"area\":\"suburb\"}", NULL, "invalid_value", "area");
  VARIANT_FAILS("{\"gravity\":\"yes\"}", NULL, "wrong_type", "gravity");
  VARIANT_FAILS("{\"vip\":1}", NULL, "wrong_type", "vip");
  VARIANT_FAILS("{\"business_line\":\"power\"}", NULL, "invalid_value", "business_line");
  VARIANT_FAILS(NULL, "{\"email\":\"not-an-address\"}", "invalid_value", "customer.email");
  VARIANT_FAILS(NULL, "{\"reply_channel\":\"pigeon\"}", "invalid_value",
                "customer.reply_channel");
  VARIANT_FAILS(NULL, "{\"reply_channel\":\"email\"}", "missing_field", "customer.email");
  VARIANT_FAILS("{\"recording_ref\":7}", NULL, "wrong_type", "recording_ref");
}

static void appeal_fields_only_with_the_appeal_stream(void **st) {
  verr e;
  complaint_in c;
  json_t *keep;
  assert_int_equal(variant("{\"stream\":\"appeal\",\"channel\":\"regulator\",\"appeal\":"
                           "{\"source_body\":\"工信部\",\"filed\":true,\"contact_person\":\"李科长\","
                           "\"business\":\"internet\",\"nature\":\"quality\"}}",
                           NULL, &e, &c, &keep),
                   0);
  assert_true(c.has_appeal && c.appeal_filed);
  assert_string_equal(c.appeal_source_body, "工信部");
  assert_string_equal(c.appeal_contact_person, "李科长");
  assert_string_equal(c.appeal_business, "internet");
  assert_string_equal(c.appeal_nature, "quality");
  json_decref(keep);
  VARIANT_FAILS("{\"appeal\":{\"source_body\":\"工信部\"}}", NULL, "invalid_value", "appeal");
  VARIANT_FAILS("{\"stream\":\"appeal\"}", NULL, "missing_field", "appeal");
  VARIANT_FAILS("{\"stream\":\"appeal\",\"appeal\":{}}", NULL, "missing_field",
                "appeal.source_body");
  VARIANT_FAILS("{\"stream\":\"appeal\",\"appeal\":{\"source_body\":\"消协\",\"nature\":\"x\"}}",
                NULL, "invalid_value", "appeal.nature");
  VARIANT_FAILS("{\"stream\":\"appeal\",\"appeal\":{\"source_body\":\"消协\",\"ref\":1}}", NULL,
                "unknown_field", "appeal.ref");
  VARIANT_FAILS("{\"stream\":\"appeal\",\"appeal\":\"工信部\"}", NULL, "wrong_type", "appeal");
}

static void hand_off_needs_phone_and_address_r02(void **st) {
  verr e;
  complaint_in c;
  json_t *keep;
  /* handed off without an address: refused */
  VARIANT_FAILS(NULL, "{\"address\":null}", "missing_field", "customer.address");
  VARIANT_FAILS(NULL, "{\"address\":\"   \"}", "missing_field", "customer.address");
  VARIANT_FAILS(NULL, "{\"phone\":null}", "missing_field", "customer.phone");
  /* answered on the spot: no address needed */
  assert_int_equal(variant("{\"answer_on_spot\":\"已告知客户资费标准，客户表示理解。\"}",
                           "{\"address\":null}", &e, &c, &keep),
                   0);
  assert_string_equal(c.answer_on_spot, "已告知客户资费标准，客户表示理解。");
  assert_null(c.address);
  json_decref(keep);
  /* but not for an escalated complaint or a repair (an appeal fails earlier: it needs its appeal fields) */
  VARIANT_FAILS("{\"answer_on_spot\":\"已答复\",\"stream\":\"escalated\"}", NULL, "invalid_value",
                "answer_on_spot");
  VARIANT_FAILS("{\"answer_on_spot\":\"已答复\",\"kind\":\"repair\"}", NULL, "invalid_value",
                "answer_on_spot");
  VARIANT_FAILS("{\"answer_on_spot\":7}", NULL, "wrong_type", "answer_on_spot");
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
      cmocka_unit_test(takes_the_rest_of_r07),
      cmocka_unit_test(names_the_problem_in_r07_fields),
      cmocka_unit_test(appeal_fields_only_with_the_appeal_stream),
      cmocka_unit_test(hand_off_needs_phone_and_address_r02),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
