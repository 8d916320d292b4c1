/* Unit tests: the consumer's ordering rules (offset, duplicates, gaps, replay, rewind). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "consumer.h"

static void test_fresh_consumer_accepts_in_order(void **state) {
  (void)state;
  stream_pos p;
  stream_pos_init(&p, 0);
  assert_false(stream_pos_behind(&p));
  assert_int_equal(stream_pos_offer(&p, 1), SEQ_ACCEPT);
  assert_int_equal(stream_pos_offer(&p, 2), SEQ_ACCEPT);
  assert_int_equal(p.accepted, 2);
  assert_int_equal(p.committed, 0); /* nothing is committed until the batch is */
}

static void test_duplicates_at_or_below_offset_are_dropped(void **state) {
  (void)state;
  stream_pos p;
  stream_pos_init(&p, 10);
  assert_int_equal(stream_pos_offer(&p, 10), SEQ_DUPLICATE);
  assert_int_equal(stream_pos_offer(&p, 3), SEQ_DUPLICATE);
  assert_int_equal(stream_pos_offer(&p, 11), SEQ_ACCEPT);
  assert_int_equal(stream_pos_offer(&p, 11), SEQ_DUPLICATE); /* redelivered */
  assert_int_equal(p.accepted, 11);
}

static void test_gap_is_refused_and_marks_behind(void **state) {
  (void)state;
  stream_pos p;
  stream_pos_init(&p, 5);
  assert_int_equal(stream_pos_offer(&p, 8), SEQ_GAP);
  assert_int_equal(p.accepted, 5);    /* 8 is not taken: 6 and 7 must come first */
  assert_true(stream_pos_behind(&p)); /* so a replay is due */
  assert_int_equal(stream_pos_offer(&p, 6), SEQ_ACCEPT);
  assert_int_equal(stream_pos_offer(&p, 7), SEQ_ACCEPT);
  assert_true(stream_pos_behind(&p));
  assert_int_equal(stream_pos_offer(&p, 8), SEQ_ACCEPT);
  assert_false(stream_pos_behind(&p));
}

static void test_heartbeat_reveals_lost_tail(void **state) {
  (void)state;
  stream_pos p;
  stream_pos_init(&p, 0);
  assert_int_equal(stream_pos_offer(&p, 1), SEQ_ACCEPT);
  /* The last message of a quiet stream was dropped; only the heartbeat tells. */
  stream_pos_saw_head(&p, 2);
  assert_true(stream_pos_behind(&p));
  stream_pos_saw_head(&p, 1); /* an older heartbeat never lowers the head */
  assert_int_equal(p.known_head, 2);
}

static void test_failed_batch_rewinds_to_committed(void **state) {
  (void)state;
  stream_pos p;
  stream_pos_init(&p, 100);
  for (uint64_t s = 101; s <= 110; s++) assert_int_equal(stream_pos_offer(&p, s), SEQ_ACCEPT);
  stream_pos_committed(&p, 105);
  assert_int_equal(p.committed, 105);
  stream_pos_rewind(&p); /* batch 106..110 failed */
  assert_int_equal(p.accepted, 105);
  assert_true(stream_pos_behind(&p)); /* known head is still 110: replay 106.. */
  assert_int_equal(stream_pos_offer(&p, 106), SEQ_ACCEPT);
  assert_int_equal(stream_pos_offer(&p, 105), SEQ_DUPLICATE);
}

static void test_commit_never_moves_backwards(void **state) {
  (void)state;
  stream_pos p;
  stream_pos_init(&p, 50);
  stream_pos_committed(&p, 40);
  assert_int_equal(p.committed, 50);
  stream_pos_committed(&p, 60); /* e.g. offset re-read after another instance advanced */
  assert_int_equal(p.accepted, 60);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fresh_consumer_accepts_in_order),
      cmocka_unit_test(test_duplicates_at_or_below_offset_are_dropped),
      cmocka_unit_test(test_gap_is_refused_and_marks_behind),
      cmocka_unit_test(test_heartbeat_reveals_lost_tail),
      cmocka_unit_test(test_failed_batch_rewinds_to_committed),
      cmocka_unit_test(test_commit_never_moves_backwards),
  };
  return cmocka_run_group_tests_name("consumer", tests, NULL, NULL);
}
