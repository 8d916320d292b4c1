/* Unit tests: envelope round trip, seq stamping, enum names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"

static void test_round_trip_keeps_chinese_text_and_fields(void **state) {
  (void)state;
  Kesu__V1__Customer cust = KESU__V1__CUSTOMER__INIT;
  cust.name = "张三";
  cust.phone = "13812341234";
  Kesu__V1__Complaint c = KESU__V1__COMPLAINT__INIT;
  c.order_no = "KS2026112300000001";
  c.title = "宽带频繁掉线";
  c.content = "家里宽带每天晚上八点后掉线，已报修两次未解决。";
  c.channel = KESU__V1__CHANNEL__HOTLINE;
  c.customer = &cust;
  c.accepted_at = 1795400000000;
  Kesu__V1__ComplaintReceived cr = KESU__V1__COMPLAINT_RECEIVED__INIT;
  cr.complaint = &c;
  Kesu__V1__Envelope env = KESU__V1__ENVELOPE__INIT;
  env.producer = "intake";
  env.order_no = c.order_no;
  env.region = "310101";
  env.payload_case = KESU__V1__ENVELOPE__PAYLOAD_COMPLAINT_RECEIVED;
  env.complaint_received = &cr;

  size_t len;
  unsigned char *buf = envelope_pack(&env, &len);
  assert_string_equal(env.type, "ComplaintReceived"); /* filled from the payload */
  Kesu__V1__Envelope *back = envelope_unpack(buf, len);
  assert_non_null(back);
  assert_string_equal(back->type, "ComplaintReceived");
  assert_int_equal(back->payload_case, KESU__V1__ENVELOPE__PAYLOAD_COMPLAINT_RECEIVED);
  assert_string_equal(back->complaint_received->complaint->title, "宽带频繁掉线");
  assert_string_equal(back->complaint_received->complaint->customer->name, "张三");
  assert_int_equal(back->complaint_received->complaint->accepted_at, 1795400000000);
  assert_int_equal(back->seq, 0);
  envelope_free(back);

  size_t len2;
  unsigned char *stamped = envelope_with_seq(buf, len, 42, &len2);
  back = envelope_unpack(stamped, len2);
  assert_int_equal(back->seq, 42);
  assert_string_equal(back->region, "310101");
  envelope_free(back);
  free(stamped);
  free(buf);
}

static void test_garbage_does_not_unpack(void **state) {
  (void)state;
  const unsigned char junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x12};
  assert_null(envelope_unpack(junk, sizeof junk));
  assert_null(envelope_with_seq(junk, sizeof junk, 1, &(size_t){0}));
}

static void test_enum_names(void **state) {
  (void)state;
  assert_string_equal(channel_name(KESU__V1__CHANNEL__REGULATOR), "regulator");
  assert_int_equal(channel_from_name("hall"), KESU__V1__CHANNEL__HALL);
  assert_int_equal(channel_from_name("nope"), 0);
  assert_int_equal(channel_from_name(NULL), 0);
  assert_int_equal(tier_from_name("provincial"), KESU__V1__TIER__PROVINCIAL);
  assert_string_equal(kind_name(KESU__V1__KIND__REPAIR), "repair");
  assert_string_equal(tier_name(99), "unspecified");
}

static void test_uuid_v4_shape(void **state) {
  (void)state;
  char a[37], b[37];
  uuid_v4(a);
  uuid_v4(b);
  assert_int_equal(strlen(a), 36);
  assert_int_equal(a[14], '4');
  assert_true(a[19] == '8' || a[19] == '9' || a[19] == 'a' || a[19] == 'b');
  assert_string_not_equal(a, b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip_keeps_chinese_text_and_fields),
      cmocka_unit_test(test_garbage_does_not_unpack),
      cmocka_unit_test(test_enum_names),
      cmocka_unit_test(test_uuid_v4_shape),
  };
  return cmocka_run_group_tests_name("envelope", tests, NULL, NULL);
}
