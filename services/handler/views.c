/* views — JSON shapes of the workbench. */
#include "views.h"

#include <stdio.h>
#include <string.h>

#include "clock.h"
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

int action_request_parse(json_t *body, action_request *out, request_problem *p) {
  const char *key;
  json_t *value;
  json_object_foreach(body, key, value) {
    if (strcmp(key, "action") != 0 && strcmp(key, "answer") != 0)
      return problem(p, "unknown_field", key, "unknown field");
  }
  json_t *action = json_object_get(body, "action");
  if (!action || json_is_null(action))
    return problem(p, "missing_field", "action", "action is required");
  if (!json_is_string(action))
    return problem(p, "wrong_type", "action", "action must be a string");
  out->action = json_string_value(action);
  out->answer = NULL;
  if (strcmp(out->action, "close") != 0)
    return problem(p, "invalid_value", "action", "unknown action (supported: close)");
  json_t *answer = json_object_get(body, "answer");
  if (!answer || json_is_null(answer))
    return problem(p, "missing_field", "answer", "closing needs the answer given to the customer");
  if (!json_is_string(answer))
    return problem(p, "wrong_type", "answer", "answer must be a string");
  out->answer = json_string_value(answer);
  if (blank(out->answer))
    return problem(p, "missing_field", "answer", "closing needs the answer given to the customer");
  if (utf8_length(out->answer) > ANSWER_MAX_CHARS)
    return problem(p, "too_long", "answer", "answer is longer than 2000 characters");
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
