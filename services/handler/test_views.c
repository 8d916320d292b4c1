/* Unit tests: workbench action requests, the complaint view, scope patterns. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "priority.h"
#include "views.h"

/* The last parsed body: the request's strings point into it. */
static json_t *held;

static int parse(const char *text, action_request *out, request_problem *p) {
  json_decref(held);
  held = json_loads(text, 0, NULL);
  assert_non_null(held);
  return action_request_parse(held, out, p);
}

static void test_close_with_answer_is_accepted(void **state) {
  (void)state;
  action_request r;
  request_problem p;
  assert_int_equal(parse("{\"action\":\"close\",\"answer\":\"已为您退费\"}", &r, &p), 0);
  assert_string_equal(r.action, "close");
  assert_string_equal(r.answer, "已为您退费");
}

static void test_refusals(void **state) {
  (void)state;
  action_request r;
  request_problem p;
  assert_int_equal(parse("{\"action\":\"close\",\"answer\":\"x\",\"extra\":1}", &r, &p), -1);
  assert_string_equal(p.code, "unknown_field");
  assert_string_equal(p.field, "extra");
  assert_int_equal(p.status, 422);
  assert_int_equal(parse("{\"answer\":\"x\"}", &r, &p), -1);
  assert_string_equal(p.code, "missing_field");
  assert_string_equal(p.field, "action");
  assert_int_equal(parse("{\"action\":7}", &r, &p), -1);
  assert_string_equal(p.code, "wrong_type");
  assert_int_equal(parse("{\"action\":\"teleport\"}", &r, &p), -1);
  assert_string_equal(p.code, "invalid_value");
  assert_int_equal(parse("{\"action\":\"close\"}", &r, &p), -1);
  assert_string_equal(p.code, "missing_field");
  assert_string_equal(p.field, "answer");
  assert_int_equal(parse("{\"action\":\"close\",\"answer\":\"  \"}", &r, &p), -1);
  assert_string_equal(p.code, "missing_field");
  assert_int_equal(parse("{\"action\":\"close\",\"answer\":[]}", &r, &p), -1);
  assert_string_equal(p.code, "wrong_type");
}

static void test_answer_limit_counts_characters(void **state) {
  (void)state;
  action_request r;
  request_problem p;
  /* 2000 Chinese characters (6000 bytes) are fine, 2001 are not. */
  char body[7000];
  strcpy(body, "{\"action\":\"close\",\"answer\":\"");
  for (int i = 0; i < 2000; i++)
    strcat(body, "答");
  strcat(body, "\"}");
  assert_int_equal(parse(body, &r, &p), 0);
  body[strlen(body) - 2] = '\0';
  strcat(body, "答\"}");
  assert_int_equal(parse(body, &r, &p), -1);
  assert_string_equal(p.code, "too_long");
}

static void test_complaint_view(void **state) {
  (void)state;
  Kesu__V1__Customer cu = KESU__V1__CUSTOMER__INIT;
  cu.name = "张三";
  cu.phone = "13800001234";
  Kesu__V1__Complaint c = KESU__V1__COMPLAINT__INIT;
  c.order_no = "KS1";
  c.channel = KESU__V1__CHANNEL__HOTLINE;
  c.tier = KESU__V1__TIER__PROVINCIAL;
  c.accepted_at = 1795399200000; /* 2026-11-23T10:00:00+08:00 */
  c.customer = &cu;
  c.title = "宽带断网";
  json_t *v = complaint_view(&c);
  assert_string_equal(json_string_value(json_object_get(v, "order_no")), "KS1");
  assert_string_equal(json_string_value(json_object_get(v, "channel")), "hotline");
  assert_string_equal(json_string_value(json_object_get(v, "tier")), "provincial");
  assert_string_equal(json_string_value(json_object_get(json_object_get(v, "customer"), "name")),
                      "张三");
  assert_string_equal(json_string_value(json_object_get(v, "accepted_at")),
                      "2026-11-23T10:00:00.000+08:00");
  assert_true(json_is_null(json_object_get(v, "promised_by")));
  assert_int_equal(json_integer_value(json_object_get(v, "priority")), 2);
  json_decref(v);
}

/* the router's order_priority, term by term. */
static void test_complaint_priority(void **state) {
  (void)state;
  Kesu__V1__Customer cu = KESU__V1__CUSTOMER__INIT;
  Kesu__V1__Complaint c = KESU__V1__COMPLAINT__INIT;
  c.customer = &cu;
  assert_int_equal(order_priority(&c), 1); /* general */
  c.tier = KESU__V1__TIER__NATIONAL;
  assert_int_equal(order_priority(&c), 3);
  cu.level = "Gold";
  assert_int_equal(order_priority(&c), 13);
  cu.level = "";
  c.vip = true;
  assert_int_equal(order_priority(&c), 13);
  c.vip = false;
  c.tier = KESU__V1__TIER__GENERAL;
  c.gravity = true;
  assert_int_equal(order_priority(&c), 6);
  c.urgency = true;
  assert_int_equal(order_priority(&c), 10);
  c.breadth = true;
  assert_int_equal(order_priority(&c), 13);
  c.customer = NULL;
  assert_int_equal(order_priority(&c), 13);
}

static void test_scope_patterns(void **state) {
  (void)state;
  char out[32];
  scope_like_pattern("310000", out, sizeof out);
  assert_string_equal(out, "31%");
  scope_like_pattern("310100", out, sizeof out);
  assert_string_equal(out, "3101%");
  scope_like_pattern("310115", out, sizeof out);
  assert_string_equal(out, "310115%");
  scope_like_pattern("000000", out, sizeof out);
  assert_string_equal(out, "%");
  scope_like_pattern("", out, sizeof out);
  assert_string_equal(out, "%");
  scope_like_pattern("3_%", out, sizeof out);
  assert_string_equal(out, "3\\_\\%%");
}

static void test_workflow_fields(void **state) {
  (void)state;
  action_request r;
  request_problem p;
  assert_int_equal(parse("{\"action\":\"recommit\",\"reason\":\"等待配件\","
                         "\"promised_by\":\"2026-11-24T10:00:00+08:00\"}",
                         &r, &p),
                   0);
  assert_string_equal(r.action, "recommit");
  assert_string_equal(r.reason, "等待配件");
  assert_true(r.promised_by == 1795485600000LL);
  assert_int_equal(parse("{\"action\":\"callback\",\"satisfaction\":2,\"at_fault\":true}",
                         &r, &p),
                   0);
  assert_int_equal(r.satisfaction, 2);
  assert_true(r.at_fault);
  assert_int_equal(parse("{\"action\":\"transfer\",\"to_unit\":\"sh-xh\",\"reason\":\"x\"}",
                         &r, &p),
                   0);
  assert_string_equal(r.to_unit, "sh-xh");
  assert_int_equal(parse("{\"action\":\"sign\"}", &r, &p), 0);
  assert_int_equal(parse("{\"action\":\"callback\",\"satisfaction\":9}", &r, &p), -1);
  assert_string_equal(p.field, "satisfaction");
  assert_int_equal(parse("{\"action\":\"close\",\"answer\":\"x\",\"receipt_signed\":1}",
                         &r, &p),
                   -1);
  assert_string_equal(p.code, "wrong_type");
  assert_int_equal(parse("{\"action\":\"recommit\",\"promised_by\":\"tomorrow\"}", &r, &p),
                   -1);
  assert_string_equal(p.field, "promised_by");
}

static void test_arrive_and_reclassify(void **state) {
  (void)state;
  action_request r;
  request_problem p;
  assert_int_equal(parse("{\"action\":\"arrive\",\"reason\":\"工程师已上门\"}", &r, &p), 0);
  assert_string_equal(r.action, "arrive");
  assert_true(action_name_known("reclassify") && action_name_known("arrive"));
  assert_int_equal(parse("{\"action\":\"reclassify\",\"tier\":\"national\","
                         "\"customer_level\":\"gold\",\"vip\":true,\"reason\":\"集团客户\"}",
                         &r, &p),
                   0);
  assert_string_equal(r.tier, "national");
  assert_string_equal(r.customer_level, "gold");
  assert_true(r.vip);
  assert_int_equal(parse("{\"action\":\"reclassify\",\"vip\":false}", &r, &p), 0);
  assert_false(r.vip);
  assert_int_equal(parse("{\"action\":\"reclassify\",\"tier\":\"city\"}", &r, &p), -1);
  assert_string_equal(p.code, "invalid_value");
  assert_string_equal(p.field, "tier");
  assert_int_equal(parse("{\"action\":\"reclassify\",\"reason\":\"x\"}", &r, &p), -1);
  assert_string_equal(p.code, "missing_field");
  assert_int_equal(parse("{\"action\":\"reclassify\",\"vip\":\"yes\"}", &r, &p), -1);
  assert_string_equal(p.code, "wrong_type");
  assert_string_equal(p.field, "vip");
  assert_int_equal(parse("{\"action\":\"sign\",\"tier\":5}", &r, &p), -1);
  assert_string_equal(p.code, "wrong_type");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_close_with_answer_is_accepted),
      cmocka_unit_test(test_refusals),
      cmocka_unit_test(test_workflow_fields),
      cmocka_unit_test(test_arrive_and_reclassify),
      cmocka_unit_test(test_answer_limit_counts_characters),
      cmocka_unit_test(test_complaint_view),
      cmocka_unit_test(test_complaint_priority),
      cmocka_unit_test(test_scope_patterns),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  json_decref(held);
  return rc;
}
