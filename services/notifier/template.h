/* template — the notifier's pure helpers: message templates with named
 * variables, phone masking for staff views, retry back-off. No I/O, so
 * they are unit-tested in test_template.c. */
#ifndef KESU_NOTIFIER_TEMPLATE_H
#define KESU_NOTIFIER_TEMPLATE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The customer's receipt SMS (R-38: work-order number and promised time). */
#define TEMPLATE_RECEIPT \
  "【客诉】您的投诉已受理，工单号{order_no}，我们将在{promised_by}前答复您。"

/* Replaces every "{name}" in tmpl with the value of the variable of that name;
 * unknown names and unmatched braces are kept as written. Returns a malloc'd
 * string. */
char *template_render(const char *tmpl, int nvars, const char *const *names,
                      const char *const *values);
/* The receipt for an order promised by promised_by_ms (Unix ms). Malloc'd. */
char *template_receipt(const char *order_no, int64_t promised_by_ms);
/* "2026-11-24 10:00" in Asia/Shanghai; out needs 17 bytes. */
void template_local_minute(int64_t ms, char *out, size_t len);
/* 13812341234 → 138****1234: the first 3 and last 4 characters stay, the rest
 * become '*'. Shorter numbers keep at most their last 4 characters. */
void phone_mask(const char *phone, char *out, size_t len);
/* Delay before the next attempt after `attempts` failed attempts (≥ 1):
 * min(60 s, 1 s · 2^(attempts-1)) ± 20 %, u uniform in [0, 1). */
int64_t backoff_delay_ms(int attempts, double u);
enum { DELIVERY_MAX_ATTEMPTS = 8 };
/* Quiet hours / outside business hours: the window [from, to) in local
 * (Asia/Shanghai) minutes of the day, wrapping midnight when from > to (e.g.
 * 21:00-08:00 = 1260..480). Returns now_ms if now is outside the window, else
 * the end of the window (the next local `to`), when a held message goes out.
 * from == to: no window. */
int64_t hold_until_ms(int64_t now_ms, int from_min, int to_min);
/* {reason} of a SlaDeadlineMoved from its kind and reason code: 雨天 /
 * 雪天 for a rain/snow postponement, 与客户预约 for an appointment, 等待客户
 * for a pause for the customer; otherwise the handler's own text. */
const char *template_move_reason(const char *kind, const char *reason);
/* A rule's conditions "key=value;key=value" against an order's facts
 * (keys[i] = values[i]): all must hold; values compare case-insensitively,
 * except region, a prefix ("310000" stands for "31"). "" matches everything;
 * a key the order does not have never matches. "key>=N" (priority>=8): the
 * value is a number at least N. */
bool conditions_match(const char *conds, int n, const char *const *keys,
                      const char *const *values);
/* FNV-1a 64 of a staff address: delivery keys name the address by this hash
 * (a webhook URL may carry its secret). */
uint64_t address_hash(const char *s);
/* A working-day calendar: local days (days since 1970-01-01 in
 * Asia/Shanghai) marked holiday (no work, even on a weekday) or workday (a
 * make-up working day 调休, even on a Saturday or Sunday); every other day
 * works Monday to Friday. */
typedef struct {
  int32_t day;
  bool workday;
} cal_day;
/* "2026-10-03" → its local day number; -1 if not a date. */
int32_t cal_day_of(const char *ymd);
int32_t cal_local_day(int64_t ms);
bool cal_is_working_day(const cal_day *days, int n, int32_t day);
/* R-39 staff reminders: now_ms if now is in business hours (a working day,
 * local minute in [open, close)); else the next opening (open_min on the next
 * working day). open >= close: the whole working day. */
int64_t staff_open_at_ms(int64_t now_ms, int open_min, int close_min, const cal_day *days, int n);
/* "21:00-08:00" → 1260, 480. Returns 0 or -1. */
int parse_window(const char *s, int *from_min, int *to_min);
#endif
