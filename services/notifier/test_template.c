/* Unit tests: receipt template rendering, phone masking, retry back-off. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "clock.h"
#include "sender.h"
#include "template.h"
#include <openssl/evp.h>

static void test_receipt_has_order_and_local_time(void **state) {
  (void)state;
  int64_t ms;
  assert_int_equal(clock_parse_ms("2026-11-24T02:00:00Z", &ms), 0); /* 10:00 in Shanghai */
  char *s = template_receipt("KS20261123000001", ms);
  assert_string_equal(s, "【客诉】您的投诉已受理，工单号KS20261123000001，我们将在2026-11-24 "
                         "10:00前答复您。");
  free(s);
}

static void test_local_minute_crosses_the_date_line(void **state) {
  (void)state;
  int64_t ms;
  assert_int_equal(clock_parse_ms("2026-12-31T16:30:59.999Z", &ms), 0);
  char out[17];
  template_local_minute(ms, out, sizeof out);
  assert_string_equal(out, "2027-01-01 00:30");
}

static void test_render_variables(void **state) {
  (void)state;
  const char *names[] = {"a", "bb"};
  const char *values[] = {"1", "二"};
  char *s = template_render("{a}-{bb}-{c}-{a}{", 2, names, values);
  assert_string_equal(s, "1-二-{c}-1{");
  free(s);
  s = template_render("", 2, names, values);
  assert_string_equal(s, "");
  free(s);
  s = template_render("{{a}}", 2, names, values);
  assert_string_equal(s, "{1}");
  free(s);
}

static void test_phone_mask(void **state) {
  (void)state;
  char out[32];
  phone_mask("13812341234", out, sizeof out);
  assert_string_equal(out, "138****1234");
  phone_mask("02161234567", out, sizeof out);
  assert_string_equal(out, "021****4567");
  phone_mask("12345678", out, sizeof out);
  assert_string_equal(out, "123*5678");
  phone_mask("1234567", out, sizeof out);
  assert_string_equal(out, "***4567");
  phone_mask("1234", out, sizeof out);
  assert_string_equal(out, "****");
  phone_mask("", out, sizeof out);
  assert_string_equal(out, "");
  phone_mask(NULL, out, sizeof out);
  assert_string_equal(out, "");
  char tiny[4];
  phone_mask("13812341234", tiny, sizeof tiny);
  assert_string_equal(tiny, "138");
}

static void test_backoff_doubles_caps_and_jitters(void **state) {
  (void)state;
  assert_int_equal(backoff_delay_ms(1, 0.5), 1000);
  assert_int_equal(backoff_delay_ms(2, 0.5), 2000);
  assert_int_equal(backoff_delay_ms(3, 0.5), 4000);
  assert_int_equal(backoff_delay_ms(6, 0.5), 32000);
  assert_int_equal(backoff_delay_ms(7, 0.5), 60000);
  assert_int_equal(backoff_delay_ms(30, 0.5), 60000);
  assert_int_equal(backoff_delay_ms(1, 0.0), 800);
  assert_int_equal(backoff_delay_ms(1, 1.0), 1200);
  assert_int_equal(backoff_delay_ms(7, 0.0), 48000);
  assert_int_equal(backoff_delay_ms(7, 0.999999), 71999);
  assert_int_equal(backoff_delay_ms(0, 0.5), 1000); /* nonsense input: treated as the first */
  for (int a = 1; a <= DELIVERY_MAX_ATTEMPTS; a++) {
    int64_t d = backoff_delay_ms(a, 0.25);
    assert_true(d >= 800 && d <= 72000);
  }
}

static int64_t at(const char *rfc) {
  int64_t ms;
  assert_int_equal(clock_parse_ms(rfc, &ms), 0);
  return ms;
}

static void test_quiet_hours_hold_until_eight(void **state) {
  (void)state;
  int from, to;
  assert_int_equal(parse_window("21:00-08:00", &from, &to), 0);
  assert_int_equal(from, 1260);
  assert_int_equal(to, 480);
  /* 22:30 local → held until 08:00 the next morning */
  assert_int_equal(hold_until_ms(at("2026-11-23T22:30:00+08:00"), from, to),
                   at("2026-11-24T08:00:00+08:00"));
  /* 03:00 → 08:00 the same day */
  assert_int_equal(hold_until_ms(at("2026-11-24T03:00:00+08:00"), from, to),
                   at("2026-11-24T08:00:00+08:00"));
  /* the edges: 21:00 is quiet, 08:00 and 20:59:59.999 are not */
  assert_int_equal(hold_until_ms(at("2026-11-23T21:00:00+08:00"), from, to),
                   at("2026-11-24T08:00:00+08:00"));
  int64_t t = at("2026-11-24T08:00:00+08:00");
  assert_int_equal(hold_until_ms(t, from, to), t);
  t = at("2026-11-23T20:59:59.999+08:00");
  assert_int_equal(hold_until_ms(t, from, to), t);
  /* local midnight is 16:00 UTC: 23:59 on New Year's Eve → 08:00 on 1 January */
  assert_int_equal(hold_until_ms(at("2026-12-31T15:59:00Z"), from, to),
                   at("2027-01-01T08:00:00+08:00"));
  /* no window */
  assert_int_equal(hold_until_ms(t, 600, 600), t);
}

static void test_business_hours_window(void **state) {
  (void)state;
  int open, close;
  assert_int_equal(parse_window("08:30-17:30", &open, &close), 0);
  /* held outside [open, close): the window is [close, open) */
  int64_t noon = at("2026-11-24T12:00:00+08:00");
  assert_int_equal(hold_until_ms(noon, close, open), noon);
  assert_int_equal(hold_until_ms(at("2026-11-24T17:30:00+08:00"), close, open),
                   at("2026-11-25T08:30:00+08:00"));
  assert_int_equal(hold_until_ms(at("2026-11-24T07:00:00+08:00"), close, open),
                   at("2026-11-24T08:30:00+08:00"));
  assert_int_equal(parse_window("8-17", &open, &close), -1);
  assert_int_equal(parse_window("08:00-18:00x", &open, &close), -1);
  assert_int_equal(parse_window("25:00-18:00", &open, &close), -1);
  assert_int_equal(parse_window(NULL, &open, &close), -1);
}

static void test_conditions(void **state) {
  (void)state;
  const char *keys[] = {"kind", "tier", "level", "region"};
  const char *vals[] = {"COMPLAINT", "NATIONAL", "vip", "310115"};
  assert_true(conditions_match("", 4, keys, vals));
  assert_true(conditions_match(NULL, 4, keys, vals));
  assert_true(conditions_match("tier=national", 4, keys, vals));
  assert_true(conditions_match("tier=national;level=VIP", 4, keys, vals));
  assert_false(conditions_match("tier=general", 4, keys, vals));
  assert_false(conditions_match("tier=national;level=gold", 4, keys, vals));
  assert_true(conditions_match("region=310000", 4, keys, vals)); /* 上海 as an area */
  assert_true(conditions_match("region=3101", 4, keys, vals));
  assert_false(conditions_match("region=320000", 4, keys, vals));
  assert_false(conditions_match("colour=red", 4, keys, vals));
  assert_false(conditions_match("tier", 4, keys, vals));
}

/* R-38 "VIP or high priority": priority>=N compares numbers. */
static void test_condition_at_least(void **state) {
  (void)state;
  const char *keys[] = {"priority", "action"};
  const char *vals[] = {"9", "transfer"};
  assert_true(conditions_match("priority>=8", 2, keys, vals));
  assert_true(conditions_match("priority>=9;action=transfer", 2, keys, vals));
  assert_false(conditions_match("priority>=10", 2, keys, vals));
  assert_false(conditions_match("priority>=12", 2, keys, vals)); /* 9 vs 12, not "9" > "12" */
  assert_false(conditions_match("priority=8", 2, keys, vals));
  assert_false(conditions_match("priority>=x", 2, keys, vals));
  assert_false(conditions_match("priority>=", 2, keys, vals));
  const char *none[] = {"", "transfer"};
  assert_false(conditions_match("priority>=1", 2, keys, none)); /* unknown priority */
}

static void test_staff_copy_masks_the_phone(void **state) {
  (void)state;
  char masked[32];
  phone_mask("13812341234", masked, sizeof masked);
  const char *names[] = {"order_no", "customer_phone"};
  const char *values[] = {"KS1", masked};
  char *s = template_render("【预警】工单{order_no}，客户{customer_phone}。", 2, names, values);
  assert_string_equal(s, "【预警】工单KS1，客户138****1234。");
  assert_null(strstr(s, "13812341234"));
  free(s);
}

/* Decodes the RFC 2047 words of the Subject header back to UTF-8. */
static void decode_subject(const char *msg, char *out, size_t len) {
  const char *p = strstr(msg, "\r\nSubject:");
  assert_non_null(p);
  const char *end = strstr(p + 2, "\r\nM"); /* the next header: Message-ID */
  size_t k = 0;
  while ((p = strstr(p, "=?UTF-8?B?")) && p < end) {
    p += 10;
    const char *q = strstr(p, "?=");
    unsigned char buf[256];
    int n = EVP_DecodeBlock(buf, (const unsigned char *)p, (int)(q - p));
    while (n > 0 && (q - p) >= 1 && q[-1] == '=' && buf[n - 1] == 0) { n--; q--; }
    memcpy(out + k, buf, (size_t)n);
    k += (size_t)n;
    p = q;
  }
  out[k < len ? k : len - 1] = '\0';
}

static void test_mail_is_utf8_mime(void **state) {
  (void)state;
  const char *subject = "【督办】工单KS202611230000001000已超时，责任单位浦东分公司，请立即督促办理";
  char *m = mail_message("kesu@example.com", "boss@example.com", subject, "正文：客户138****1234。",
                         "ev1:supervisor:email:boss@example.com", 0);
  assert_non_null(strstr(m, "MIME-Version: 1.0\r\n"));
  assert_non_null(strstr(m, "Content-Type: text/plain; charset=UTF-8\r\n"));
  assert_non_null(strstr(m, "Content-Transfer-Encoding: base64\r\n"));
  assert_non_null(strstr(m, "To: <boss@example.com>\r\n"));
  assert_non_null(strstr(m, "Date: Thu, 01 Jan 1970 08:00:00 +0800\r\n"));
  /* every line fits SMTP's limit; no raw 8-bit byte in the headers */
  const char *hdr_end = strstr(m, "\r\n\r\n");
  for (const char *p = m; *p;) {
    const char *e = strstr(p, "\r\n");
    assert_non_null(e);
    assert_true(e - p <= 78);
    for (const char *c = p; p < hdr_end && c < e; c++) assert_true((unsigned char)*c < 0x80);
    p = e + 2;
  }
  char got[512];
  decode_subject(m, got, sizeof got);
  assert_string_equal(got, subject);
  free(m);
}

static void test_staff_hours_follow_the_calendar(void **state) {
  (void)state;
  /* R-33 2026: Oct 1-7 National Day holidays, Oct 10 (Saturday) a make-up working day */
  cal_day cal[8];
  const char *hol[] = {"2026-10-01", "2026-10-02", "2026-10-03", "2026-10-04",
                       "2026-10-05", "2026-10-06", "2026-10-07"};
  for (int i = 0; i < 7; i++) cal[i] = (cal_day){cal_day_of(hol[i]), false};
  cal[7] = (cal_day){cal_day_of("2026-10-10"), true};
  assert_int_equal(cal_day_of("1970-01-01"), 0);
  assert_int_equal(cal_day_of("2026-10-03"), cal_local_day(at("2026-10-03T00:00:00+08:00")));
  assert_int_equal(cal_day_of("2026-10-03"), cal_local_day(at("2026-10-03T23:59:59.999+08:00")));
  assert_int_equal(cal_day_of("2026-02-30x"), -1);
  assert_int_equal(cal_day_of("2026-02-30"), -1);  /* no such day */
  assert_int_equal(cal_day_of("2028-02-29"), cal_day_of("2028-02-28") + 1);  /* leap year */
  assert_false(cal_is_working_day(cal, 8, cal_day_of("2026-10-03")));  /* Saturday, holiday */
  assert_false(cal_is_working_day(cal, 8, cal_day_of("2026-10-05")));  /* Monday, holiday */
  assert_true(cal_is_working_day(cal, 8, cal_day_of("2026-10-08")));   /* Thursday */
  assert_true(cal_is_working_day(cal, 8, cal_day_of("2026-10-10")));   /* Saturday, 调休 */
  assert_false(cal_is_working_day(cal, 8, cal_day_of("2026-10-11")));  /* Sunday */
  /* Saturday 3 October, National Day: held until Thursday 8 October's opening */
  assert_int_equal(staff_open_at_ms(at("2026-10-03T10:00:00+08:00"), 540, 1020, cal, 8),
                   at("2026-10-08T09:00:00+08:00"));
  /* in hours on a working day: at once; the edges */
  int64_t t = at("2026-10-08T09:00:00+08:00");
  assert_int_equal(staff_open_at_ms(t, 540, 1020, cal, 8), t);
  t = at("2026-10-08T16:59:59.999+08:00");
  assert_int_equal(staff_open_at_ms(t, 540, 1020, cal, 8), t);
  assert_int_equal(staff_open_at_ms(at("2026-10-08T17:00:00+08:00"), 540, 1020, cal, 8),
                   at("2026-10-09T09:00:00+08:00"));
  /* before opening: the same morning */
  assert_int_equal(staff_open_at_ms(at("2026-10-09T07:10:00+08:00"), 540, 1020, cal, 8),
                   at("2026-10-09T09:00:00+08:00"));
  /* Friday evening → the make-up Saturday */
  assert_int_equal(staff_open_at_ms(at("2026-10-09T18:00:00+08:00"), 540, 1020, cal, 8),
                   at("2026-10-10T09:00:00+08:00"));
  /* an ordinary weekend without a calendar → Monday */
  assert_int_equal(staff_open_at_ms(at("2026-11-28T12:00:00+08:00"), 480, 1080, NULL, 0),
                   at("2026-11-30T08:00:00+08:00"));
}

static void test_move_reasons(void **state) {
  (void)state;
  assert_string_equal(template_move_reason("postpone", "rain"), "雨天");
  assert_string_equal(template_move_reason("postpone", "snow"), "雪天");
  assert_string_equal(template_move_reason("appointment", "appointment"), "与客户预约");
  assert_string_equal(template_move_reason("pause", "customer"), "等待客户");
  assert_string_equal(template_move_reason("pause", "等客户在家"), "等客户在家");
  assert_string_equal(template_move_reason("recommit", "需厂家更换板卡"), "需厂家更换板卡");
  assert_string_equal(template_move_reason("reclassify", "reclassify"), "工单重新定级");
  assert_string_equal(template_move_reason("reclassify", "large_fault"), "大故障");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_receipt_has_order_and_local_time),
      cmocka_unit_test(test_local_minute_crosses_the_date_line),
      cmocka_unit_test(test_render_variables),
      cmocka_unit_test(test_condition_at_least),
      cmocka_unit_test(test_phone_mask),
      cmocka_unit_test(test_backoff_doubles_caps_and_jitters),
      cmocka_unit_test(test_quiet_hours_hold_until_eight),
      cmocka_unit_test(test_business_hours_window),
      cmocka_unit_test(test_conditions),
      cmocka_unit_test(test_staff_copy_masks_the_phone),
      cmocka_unit_test(test_mail_is_utf8_mime),
      cmocka_unit_test(test_staff_hours_follow_the_calendar),
      cmocka_unit_test(test_move_reasons),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
