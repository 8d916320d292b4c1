/* Unit tests: strict UTF-8 validation (what the HTTP layer refuses with 400 invalid_utf8). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "utf8.h"

#define V(s) utf8_valid((const unsigned char *)(s), sizeof(s) - 1)

static void accepts_ascii_and_chinese(void **st) {
  assert_true(V(""));
  assert_true(V("hello"));
  assert_true(V("宽带断网三天，要求赔偿"));
  assert_true(V("\xF0\x9F\x98\x80"));     /* U+1F600, 4 bytes */
  assert_true(V("\xF4\x8F\xBF\xBF"));     /* U+10FFFF, the last code point */
  assert_true(V("\xEF\xBB\xBF" "abc"));   /* BOM is a valid character */
}

static void refuses_malformed(void **st) {
  assert_false(V("\xC0\xAF"));             /* overlong '/' */
  assert_false(V("\xE0\x80\xAF"));         /* overlong 3-byte */
  assert_false(V("\xF0\x80\x80\xAF"));     /* overlong 4-byte */
  assert_false(V("\xED\xA0\x80"));         /* surrogate U+D800 */
  assert_false(V("\xF4\x90\x80\x80"));     /* > U+10FFFF */
  assert_false(V("\xF5\x80\x80\x80"));
  assert_false(V("\x80"));                 /* lone continuation */
  assert_false(V("\xE5\xAE"));             /* truncated 宽 */
  assert_false(V("abc\xE5"));              /* truncated at end */
  assert_false(V("\xE5\x41\xBD"));         /* bad continuation */
  assert_false(V("\xFF"));
  /* GBK bytes of 投诉 are not UTF-8: the classic mistake of a gateway. */
  assert_false(V("\xCD\xB6\xCB\xDF"));
}

static void counts_code_points(void **st) {
  assert_int_equal(utf8_length(""), 0);
  assert_int_equal(utf8_length("abc"), 3);
  assert_int_equal(utf8_length("投诉工单"), 4);
  assert_int_equal(utf8_length("a投\xF0\x9F\x98\x80"), 3);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(accepts_ascii_and_chinese),
      cmocka_unit_test(refuses_malformed),
      cmocka_unit_test(counts_code_points),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
