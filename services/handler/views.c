/* views — JSON shapes of the workbench. */
#include "views.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "priority.h"
#include "utf8.h"

static json_t *text(const char *s) {
  json_t *j = s ? json_string(s) : NULL; /* NULL for invalid UTF-8 */
  return j ? j : json_string("");
}

static json_t *time_or_null(int64_t ms) {
  if (ms <= 0)
    return json_null();
  char buf[40];
  clock_format_ms(ms, buf, sizeof buf);
  return json_string(buf);
}

json_t *complaint_view(const Kesu__V1__Complaint *c) {
  const Kesu__V1__Customer *cu = c->customer;
  json_t *customer = json_object();
  json_object_set_new(customer, "name", text(cu ? cu->name : ""));
  json_object_set_new(customer, "phone", text(cu ? cu->phone : ""));
  json_object_set_new(customer, "address", text(cu ? cu->address : ""));
  json_object_set_new(customer, "home_region", text(cu ? cu->home_region : ""));
  json_object_set_new(customer, "level", text(cu ? cu->level : ""));
  json_t *o = json_object();
  json_object_set_new(o, "order_no", text(c->order_no));
  json_object_set_new(o, "kind", text(kind_name(c->kind)));
  json_object_set_new(o, "stream", text(stream_name(c->stream)));
  json_object_set_new(o, "channel", text(channel_name(c->channel)));
  json_object_set_new(o, "tier", text(tier_name(c->tier)));
  json_object_set_new(o, "accepted_at", time_or_null(c->accepted_at));
  json_object_set_new(o, "promised_by", time_or_null(c->promised_by));
  json_object_set_new(o, "first_receiver", text(c->first_receiver));
  json_object_set_new(o, "customer", customer);
  json_object_set_new(o, "region", text(c->region));
  json_object_set_new(o, "business_type", text(c->business_type));
  json_object_set_new(o, "problem_type", text(c->problem_type));
  json_object_set_new(o, "title", text(c->title));
  json_object_set_new(o, "content", text(c->content));
  json_object_set_new(o, "vip", json_boolean(c->vip));
  json_object_set_new(o, "gravity", json_boolean(c->gravity));
  json_object_set_new(o, "urgency", json_boolean(c->urgency));
  json_object_set_new(o, "breadth", json_boolean(c->breadth));
  json_object_set_new(o, "priority", json_integer(order_priority(c)));
  return o;
}

static int problem(request_problem *p, const char *code, const char *field, const char *message) {
  p->status = 422;
  p->code = code;
  p->field = field;
  p->message = message;
  return -1;
}

static bool blank(const char *s) {
  for (; *s; s++)
    if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
      return false;
  return true;
}

static const char *const ACTIONS[] = {
    "answer_on_spot", "review",   "dispatch",      "sign",     "return",   "transfer",
    "assist",         "assist_feedback", "escalate", "recommit", "interim_reply", "feedback",
    "answer",         "hq_review", "conclude",     "close",    "callback", "reopen",
    "archive",        "arrive",    "reclassify"};

bool action_name_known(const char *name) {
  for (size_t i = 0; i < sizeof ACTIONS / sizeof *ACTIONS; i++)
    if (strcmp(ACTIONS[i], name) == 0)
      return true;
  return false;
}

int action_request_parse(json_t *body, action_request *out, request_problem *p) {
  static const char *const strings[] = {"action",         "answer",         "reason",
                                        "to_unit",        "conclusion",     "responsibility",
                                        "regulator_opinion", "tier",        "customer_level"};
  enum { NSTRINGS = sizeof strings / sizeof *strings };
  memset(out, 0, sizeof *out);
  const char **slots[] = {&out->action,     &out->answer,         &out->reason,
                          &out->to_unit,    &out->conclusion,     &out->responsibility,
                          &out->regulator_opinion, &out->tier,    &out->customer_level};
  const char *key;
  json_t *value;
  json_object_foreach(body, key, value) {
    size_t i;
    for (i = 0; i < NSTRINGS; i++)
      if (strcmp(key, strings[i]) == 0)
        break;
    if (i < NSTRINGS) {
      if (json_is_null(value))
        continue;
      if (!json_is_string(value))
        return problem(p, "wrong_type", key, "must be a string");
      if (utf8_length(json_string_value(value)) > ANSWER_MAX_CHARS)
        return problem(p, "too_long", key, "longer than 2000 characters");
      *slots[i] = json_string_value(value);
    } else if (strcmp(key, "promised_by") == 0) {
      int64_t ms;
      if (!json_is_string(value) || clock_parse_ms(json_string_value(value), &ms) != 0)
        return problem(p, "invalid_value", key, "promised_by: an RFC 3339 time");
      out->promised_by = ms;
    } else if (strcmp(key, "satisfaction") == 0) {
      if (!json_is_integer(value))
        return problem(p, "wrong_type", key, "satisfaction: an integer 1-5");
      if (json_integer_value(value) < 1 || json_integer_value(value) > 5)
        return problem(p, "invalid_value", key, "satisfaction must be 1-5");
      out->satisfaction = (int)json_integer_value(value);
    } else if (strcmp(key, "at_fault") == 0 || strcmp(key, "receipt_signed") == 0 ||
               strcmp(key, "vip") == 0) {
      if (!json_is_boolean(value))
        return problem(p, "wrong_type", key, "must be true or false");
      *(strcmp(key, "at_fault") == 0         ? &out->at_fault
        : strcmp(key, "receipt_signed") == 0 ? &out->receipt_signed
                                             : &out->vip) = json_is_true(value);
    } else {
      return problem(p, "unknown_field", key, "unknown field");
    }
  }
  json_t *action = json_object_get(body, "action");
  if (!action || json_is_null(action))
    return problem(p, "missing_field", "action", "action is required");
  if (!json_is_string(action))
    return problem(p, "wrong_type", "action", "action must be a string");
  if (!action_name_known(out->action))
    return problem(p, "invalid_value", "action", "unknown action");
  if (strcmp(out->action, "reclassify") == 0) {
    static const char *const tiers[] = {"general", "provincial", "national"};
    bool tier_ok = !out->tier;
    for (size_t i = 0; out->tier && i < 3; i++)
      tier_ok = tier_ok || strcmp(out->tier, tiers[i]) == 0;
    if (!tier_ok)
      return problem(p, "invalid_value", "tier", "tier: general, provincial or national");
    if (out->customer_level && utf8_length(out->customer_level) > 32)
      return problem(p, "too_long", "customer_level", "longer than 32 characters");
    if (!out->tier && !out->customer_level && !json_object_get(body, "vip"))
      return problem(p, "missing_field", "tier",
                     "reclassify needs a tier, a customer_level or vip");
  }
  if (strcmp(out->action, "close") == 0) {
    json_t *answer = json_object_get(body, "answer");
    if (!answer || json_is_null(answer))
      return problem(p, "missing_field", "answer", "closing needs the answer given to the customer");
    if (!json_is_string(answer))
      return problem(p, "wrong_type", "answer", "answer must be a string");
    if (blank(out->answer))
      return problem(p, "missing_field", "answer", "closing needs the answer given to the customer");
  }
  return 0;
}

void scope_like_pattern(const char *scope, char *out, size_t outlen) {
  size_t n = scope ? strlen(scope) : 0;
  if (scope && strcmp(scope, "000000") == 0)
    n = 0;
  while (n >= 2 && scope[n - 1] == '0' && scope[n - 2] == '0')
    n -= 2;
  size_t k = 0;
  for (size_t i = 0; i < n && k + 3 < outlen; i++) {
    char ch = scope[i];
    if (ch == '%' || ch == '_' || ch == '\\')
      out[k++] = '\\';
    out[k++] = ch;
  }
  out[k++] = '%';
  out[k] = '\0';
}
