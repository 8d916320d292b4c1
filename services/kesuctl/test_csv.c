/* Unit tests: the CSV reader and the duration parser of kesuctl (csv.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "csv.h"

static csv_doc parse_ok(const char *text) {
  csv_doc d;
  char err[256];
  int rc = csv_parse(text, strlen(text), &d, err, sizeof err);
  if (rc != 0) fail_msg("unexpected parse error: %s", err);
  return d;
}

static void parse_err(const char *text, size_t len, const char *want) {
  csv_doc d;
  char err[256];
  assert_int_equal(csv_parse(text, len, &d, err, sizeof err), -1);
  assert_int_equal(d.nrows, 0);
  if (!strstr(err, want)) fail_msg("error '%s' does not contain '%s'", err, want);
  csv_free(&d);
}

static void test_simple(void **state) {
  (void)state;
  csv_doc d = parse_ok("code,name,parent,level\n310000,上海市,,1\n310100,上海市,310000,2\n");
  assert_int_equal(d.nrows, 3);
  assert_int_equal(d.rows[0].nfields, 4);
  assert_string_equal(d.rows[1].fields[1], "上海市");
  assert_string_equal(d.rows[1].fields[2], "");
  assert_string_equal(d.rows[2].fields[2], "310000");
  assert_int_equal(d.rows[2].line, 3);
  csv_free(&d);
}

static void test_quotes_and_commas(void **state) {
  (void)state;
  csv_doc d = parse_ok("id,name\n"
                       "a,\"浦东分公司, 张江营业厅\"\n"
                       "b,\"他说\"\"网络差\"\"\"\n"
                       "c,\"\"\n");
  assert_int_equal(d.nrows, 4);
  assert_string_equal(d.rows[1].fields[1], "浦东分公司, 张江营业厅");
  assert_string_equal(d.rows[2].fields[1], "他说\"网络差\"");
  assert_string_equal(d.rows[3].fields[1], "");
  assert_int_equal(d.rows[3].nfields, 2);
  csv_free(&d);
}

static void test_crlf_and_multiline(void **state) {
  (void)state;
  csv_doc d = parse_ok("\xEF\xBB\xBF"
                       "a,b\r\n"
                       "1,\"第一行\r\n第二行\"\r\n"
                       "\r\n"
                       "2,x\r\n"
                       "3,y"); /* no final newline */
  assert_int_equal(d.nrows, 4);
  assert_string_equal(d.rows[0].fields[0], "a"); /* BOM skipped */
  assert_string_equal(d.rows[1].fields[1], "第一行\r\n第二行");
  assert_int_equal(d.rows[1].line, 2);
  assert_int_equal(d.rows[2].line, 5); /* line 4 was empty */
  assert_string_equal(d.rows[2].fields[1], "x");
  assert_int_equal(d.rows[3].line, 6);
  assert_string_equal(d.rows[3].fields[1], "y");
  csv_free(&d);
}

static void test_trailing_empty_fields(void **state) {
  (void)state;
  csv_doc d = parse_ok("a,b,c\n1,,\n2,,");
  assert_int_equal(d.nrows, 3);
  assert_int_equal(d.rows[1].nfields, 3);
  assert_int_equal(d.rows[2].nfields, 3);
  assert_string_equal(d.rows[2].fields[2], "");
  csv_free(&d);
}

static void test_errors(void **state) {
  (void)state;
  const char *t1 = "a,b\n1,\"open\n2,3\n";
  parse_err(t1, strlen(t1), "line 2: unterminated");
  const char *t2 = "a,b\n1,2\n3,\"x\"y\n";
  parse_err(t2, strlen(t2), "line 3: text after the closing quote");
  const char *t3 = "a,b\n1,ab\"c\n";
  parse_err(t3, strlen(t3), "line 2: quote inside unquoted field 2");
  const char t4[] = "a,b\n1,\xff\xfe\n";
  parse_err(t4, sizeof t4 - 1, "line 2: field 2 is not valid UTF-8");
  const char t5[] = "a,b\n1,\xe4\xb8\n"; /* truncated 3-byte sequence */
  parse_err(t5, sizeof t5 - 1, "not valid UTF-8");
}

static void test_empty(void **state) {
  (void)state;
  csv_doc d = parse_ok("");
  assert_int_equal(d.nrows, 0);
  csv_free(&d);
  d = parse_ok("\n\r\n");
  assert_int_equal(d.nrows, 0);
  csv_free(&d);
}

static void dur(const char *s, int64_t want) {
  int64_t ms = -12345;
  if (parse_duration_ms(s, &ms) != 0) fail_msg("'%s' did not parse", s);
  if (ms != want) fail_msg("'%s' = %lld, want %lld", s, (long long)ms, (long long)want);
}

static void test_durations(void **state) {
  (void)state;
  dur("21h36m", (21 * 60 + 36) * 60000LL);
  dur("90m", 90 * 60000LL);
  dur("2d", 2 * 86400000LL);
  dur("3600s", 3600000LL);
  dur("1500ms", 1500);
  dur("1d2h3m4s5ms", 86400000LL + 2 * 3600000LL + 3 * 60000LL + 4000 + 5);
  dur("-1h", -3600000LL);
  dur("+10m", 600000LL);
  dur("0s", 0);
  int64_t ms;
  const char *bad[] = {"", "10", "h", "1x", "1h 2m", "--1h", "1.5h", "-", "99999999999999999999d"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    if (parse_duration_ms(bad[i], &ms) == 0) fail_msg("'%s' should not parse", bad[i]);
  assert_int_equal(parse_duration_ms(NULL, &ms), -1);
}

static void test_format_duration(void **state) {
  (void)state;
  char b[64];
  format_duration_ms((21 * 60 + 36) * 60000LL, b, sizeof b);
  assert_string_equal(b, "21h36m");
  format_duration_ms(2 * 86400000LL + 4500, b, sizeof b);
  assert_string_equal(b, "2d4.500s");
  format_duration_ms(-90 * 60000LL, b, sizeof b);
  assert_string_equal(b, "-1h30m");
  format_duration_ms(0, b, sizeof b);
  assert_string_equal(b, "0s");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_simple),           cmocka_unit_test(test_quotes_and_commas),
      cmocka_unit_test(test_crlf_and_multiline), cmocka_unit_test(test_trailing_empty_fields),
      cmocka_unit_test(test_errors),           cmocka_unit_test(test_empty),
      cmocka_unit_test(test_durations),        cmocka_unit_test(test_format_duration),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
