/* Unit tests: the SLA timer heap (order, removal, re-keying, random use). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "heap.h"

static void test_empty_heap(void **state) {
  (void)state;
  heap h;
  heap_init(&h);
  assert_null(heap_top(&h));
  assert_null(heap_pop(&h));
  assert_int_equal(heap_size(&h), 0);
  heap_free(&h);
}

static void test_pops_in_time_order(void **state) {
  (void)state;
  heap h;
  heap_init(&h);
  int64_t at[] = {50, 10, 40, 30, 20, 60, 0, 10};
  heap_node n[8];
  for (int i = 0; i < 8; i++) {
    heap_node_init(&n[i]);
    assert_int_equal(heap_push(&h, &n[i], at[i]), 0);
    assert_true(heap_node_queued(&n[i]));
    assert_true(heap_valid(&h));
  }
  int64_t last = INT64_MIN;
  for (int i = 0; i < 8; i++) {
    heap_node *x = heap_pop(&h);
    assert_non_null(x);
    assert_true(x->at >= last);
    assert_false(heap_node_queued(x));
    last = x->at;
    assert_true(heap_valid(&h));
  }
  assert_null(heap_pop(&h));
  heap_free(&h);
}

static void test_remove_from_middle_and_ends(void **state) {
  (void)state;
  heap h;
  heap_init(&h);
  heap_node n[10];
  for (int i = 0; i < 10; i++) {
    heap_node_init(&n[i]);
    heap_push(&h, &n[i], (i * 7) % 10);
  }
  heap_remove(&h, &n[3]); /* middle */
  assert_false(heap_node_queued(&n[3]));
  assert_true(heap_valid(&h));
  heap_remove(&h, heap_top(&h)); /* top */
  assert_true(heap_valid(&h));
  heap_remove(&h, h.v[h.n - 1]); /* last */
  assert_true(heap_valid(&h));
  heap_remove(&h, &n[3]); /* not queued: no-op */
  assert_int_equal(heap_size(&h), 7);
  assert_true(heap_valid(&h));
  heap_free(&h);
}

static void test_update_moves_node(void **state) {
  (void)state;
  heap h;
  heap_init(&h);
  heap_node a, b, c;
  heap_node_init(&a);
  heap_node_init(&b);
  heap_node_init(&c);
  heap_push(&h, &a, 100);
  heap_push(&h, &b, 200);
  heap_push(&h, &c, 300);
  assert_ptr_equal(heap_top(&h), &a);
  /* A warning fired: the timer is re-armed for its due time. */
  heap_update(&h, &a, 1000);
  assert_ptr_equal(heap_top(&h), &b);
  heap_update(&h, &c, 50);
  assert_ptr_equal(heap_top(&h), &c);
  assert_true(heap_valid(&h));
  /* Updating a node that is not queued pushes it. */
  heap_remove(&h, &b);
  heap_update(&h, &b, 1);
  assert_ptr_equal(heap_top(&h), &b);
  assert_int_equal(heap_size(&h), 3);
  heap_free(&h);
  assert_false(heap_node_queued(&a));
}

static void test_random_operations_keep_order(void **state) {
  (void)state;
  enum { N = 2000 };
  heap h;
  heap_init(&h);
  heap_node *n = calloc(N, sizeof *n);
  srand(42);
  for (int i = 0; i < N; i++) {
    heap_node_init(&n[i]);
    heap_push(&h, &n[i], rand() % 1000);
  }
  for (int i = 0; i < N; i += 3) heap_remove(&h, &n[i]);
  for (int i = 1; i < N; i += 5) heap_update(&h, &n[i], rand() % 1000);
  assert_true(heap_valid(&h));
  size_t expect = heap_size(&h);
  int64_t last = INT64_MIN;
  size_t got = 0;
  heap_node *x;
  while ((x = heap_pop(&h))) {
    assert_true(x->at >= last);
    last = x->at;
    got++;
  }
  assert_int_equal(got, expect);
  heap_free(&h);
  free(n);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_empty_heap),
      cmocka_unit_test(test_pops_in_time_order),
      cmocka_unit_test(test_remove_from_middle_and_ends),
      cmocka_unit_test(test_update_moves_node),
      cmocka_unit_test(test_random_operations_keep_order),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
