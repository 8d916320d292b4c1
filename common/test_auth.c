/* Unit tests: token hashing, token format, unit scopes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "auth.h"

static void hashes_with_sha256(void **st) {
  char h[65];
  auth_hash_token("abc", h);
  assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void new_tokens_are_random_and_well_formed(void **st) {
  char a[46], b[46];
  auth_new_token(a);
  auth_new_token(b);
  assert_int_equal(strlen(a), 45);
  assert_memory_equal(a, "kesu_", 5);
  for (int i = 5; i < 45; i++) assert_non_null(strchr("0123456789abcdef", a[i]));
  assert_string_not_equal(a, b);
}

static void scopes_cover_subtrees(void **st) {
  assert_true(auth_scope_covers("000000", "310115"));
  assert_true(auth_scope_covers("", "110105"));
  assert_true(auth_scope_covers("310000", "310115"));
  assert_true(auth_scope_covers("310100", "310101"));
  assert_false(auth_scope_covers("310000", "110105")); /* Shanghai cannot see Beijing */
  assert_false(auth_scope_covers("310100", "310200"));
  assert_true(auth_scope_covers("310115", "310115"));
  assert_false(auth_scope_covers("310115", "310101"));
  assert_false(auth_scope_covers("310000", NULL));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(hashes_with_sha256),
      cmocka_unit_test(new_tokens_are_random_and_well_formed),
      cmocka_unit_test(scopes_cover_subtrees),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
