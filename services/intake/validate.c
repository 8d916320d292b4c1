/* validate — POST /v1/complaints body rules (docs/internals.md error codes). */
#include "validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "utf8.h"

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

void codeset_init(codeset *s, char **codes, size_t n) {
  s->codes = codes;
  s->n = n;
  if (n) qsort(codes, n, sizeof(char *), cmp_str);
}

void codeset_free(codeset *s) {
  for (size_t i = 0; i < s->n; i++) free(s->codes[i]);
  free(s->codes);
  s->codes = NULL;
  s->n = 0;
}

bool codeset_has(const codeset *s, const char *code) {
  if (!s || !s->n || !code) return false;
  return bsearch(&code, s->codes, s->n, sizeof(char *), cmp_str) != NULL;
}

int64_t tier_limit_seconds(const char *tier) {
  if (tier && strcmp(tier, "national") == 0) return 72 * 3600;
  if (tier && strcmp(tier, "provincial") == 0) return 48 * 3600;
  return 24 * 3600;
}

static int fail(verr *e, int status, const char *code, const char *field, const char *fmt,
                const char *arg) {
  e->status = status;
  e->code = code;
  snprintf(e->field, sizeof e->field, "%s", field ? field : "");
  snprintf(e->message, sizeof e->message, fmt, arg ? arg : "");
  return -1;
}

/* A string field: required or optional, with a maximum length in characters. */
static int str_field(json_t *obj, const char *key, const char *path, bool required,
                     size_t max_chars, const char **out, verr *e) {
  json_t *v = json_object_get(obj, key);
  if (!v || json_is_null(v)) {
    if (required) return fail(e, 422, "missing_field", path, "%s is required", path);
    *out = NULL;
    return 0;
  }
  if (!json_is_string(v)) return fail(e, 422, "wrong_type", path, "%s must be a string", path);
  const char *s = json_string_value(v);
  size_t blen = json_string_length(v);
  if (strlen(s) != blen)
    return fail(e, 422, "invalid_value", path, "%s must not contain NUL characters", path);
  /* Leading/trailing whitespace only → treated as missing. */
  const char *p = s;
  while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
  if (required && !*p) return fail(e, 422, "missing_field", path, "%s must not be empty", path);
  if (max_chars && utf8_length(s) > max_chars) {
    char msg[32];
    snprintf(msg, sizeof msg, "%zu", max_chars);
    fail(e, 422, "too_long", path, "", NULL);
    snprintf(e->message, sizeof e->message, "%s is longer than %s characters", path, msg);
    return -1;
  }
  *out = *p ? s : NULL;
  return 0;
}

static int only_known(json_t *obj, const char *const *known, const char *prefix, verr *e) {
  const char *key;
  json_t *v;
  json_object_foreach(obj, key, v) {
    bool ok = false;
    for (int i = 0; known[i]; i++)
      if (strcmp(known[i], key) == 0) ok = true;
    if (!ok) {
      char path[64];
      snprintf(path, sizeof path, "%s%s", prefix, key);
      return fail(e, 422, "unknown_field", path, "unknown field %s", path);
    }
  }
  return 0;
}

static bool phone_ok(const char *s) {
  size_t digits = 0;
  for (const char *p = s; *p; p++) {
    if (*p >= '0' && *p <= '9')
      digits++;
    else if (!(*p == '+' && p == s) && *p != '-' && *p != ' ')
      return false;
  }
  return digits >= 5 && digits <= 20;
}

static bool region_code_shape(const char *s) {
  if (strlen(s) != 6) return false;
  for (int i = 0; i < 6; i++)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

static int region_field(const char *code, const char *path, const refdata *ref, verr *e) {
  if (!region_code_shape(code))
    return fail(e, 422, "invalid_value", path, "%s must be a 6-digit GB/T 2260 region code", path);
  if (!codeset_has(ref->regions, code)) {
    fail(e, 422, "unknown_region", path, "", NULL);
    snprintf(e->message, sizeof e->message, "%s: unknown region code %s", path, code);
    return -1;
  }
  return 0;
}

static int bool_field(json_t *obj, const char *key, const char *path, bool *out, verr *e) {
  json_t *v = json_object_get(obj, key);
  *out = false;
  if (!v || json_is_null(v)) return 0;
  if (!json_is_boolean(v)) return fail(e, 422, "wrong_type", path, "%s must be true or false", path);
  *out = json_is_true(v);
  return 0;
}

/* value must be one of the NULL-terminated list (when set). */
static int one_of(const char *value, const char *path, const char *const *list, verr *e) {
  if (!value) return 0;
  for (int i = 0; list[i]; i++)
    if (strcmp(list[i], value) == 0) return 0;
  fail(e, 422, "invalid_value", path, "", NULL);
  size_t off = (size_t)snprintf(e->message, sizeof e->message, "%s must be one of:", path);
  for (int i = 0; list[i] && off < sizeof e->message; i++)
    off += (size_t)snprintf(e->message + off, sizeof e->message - off, " %s", list[i]);
  return -1;
}

static bool email_ok(const char *s) {
  const char *at = strchr(s, '@');
  if (!at || at == s || !at[1] || strchr(at + 1, '@') || !strchr(at + 1, '.')) return false;
  for (const char *p = s; *p; p++)
    if (*p == ' ' || *p == '\t' || *p == '<' || *p == '>' || *p == ',' || *p == ';' ||
        (unsigned char)*p < 0x20)
      return false;
  return true;
}

/* The line of a business type from "type\tline" pairs, or NULL. */
static const char *line_of(const codeset *pairs, const char *type) {
  size_t n = strlen(type);
  for (size_t i = 0; pairs && i < pairs->n; i++)
    if (strncmp(pairs->codes[i], type, n) == 0 && pairs->codes[i][n] == '\t')
      return pairs->codes[i] + n + 1;
  return NULL;
}

static const char *const CAUSES[] = {"misoperation",    "misleading_promotion", "resource_fault",
                                     "product_defect",  "interconnection",      "staff_behaviour",
                                     "internal_process", "other",               NULL};
static const char *const AREAS[] = {"urban", "rural", NULL};
static const char *const REPLY_CHANNELS[] = {"sms", "email", "letter", "phone", NULL};
static const char *const APPEAL_BUSINESS[] = {"fixed_phone", "basic_data", "internet", "cards",
                                              "other", NULL};
static const char *const APPEAL_NATURE[] = {"charging", "quality", "service", "other", NULL};

/* Appeal-only fields: only with stream = appeal, and then required. */
static int appeal_fields(json_t *body, complaint_in *c, verr *e) {
  static const char *const known[] = {"source_body", "filed", "contact_person", "business",
                                      "nature", NULL};
  json_t *a = json_object_get(body, "appeal");
  bool appeal = strcmp(c->stream, "appeal") == 0;
  if (!a || json_is_null(a)) {
    if (appeal)
      return fail(e, 422, "missing_field", "appeal",
                  "申诉须填写申诉信息 (appeal is required when stream is appeal)", NULL);
    return 0;
  }
  if (!appeal)
    return fail(e, 422, "invalid_value", "appeal",
                "只有申诉可填写申诉信息 (appeal is only for stream appeal)", NULL);
  if (!json_is_object(a)) return fail(e, 422, "wrong_type", "appeal", "appeal must be an object", NULL);
  if (only_known(a, known, "appeal.", e)) return -1;
  c->has_appeal = true;
  if (str_field(a, "source_body", "appeal.source_body", true, 100, &c->appeal_source_body, e))
    return -1;
  if (bool_field(a, "filed", "appeal.filed", &c->appeal_filed, e)) return -1;
  if (str_field(a, "contact_person", "appeal.contact_person", false, NAME_MAX_CHARS,
                &c->appeal_contact_person, e))
    return -1;
  if (str_field(a, "business", "appeal.business", false, 32, &c->appeal_business, e)) return -1;
  if (one_of(c->appeal_business, "appeal.business", APPEAL_BUSINESS, e)) return -1;
  if (str_field(a, "nature", "appeal.nature", false, 32, &c->appeal_nature, e)) return -1;
  if (one_of(c->appeal_nature, "appeal.nature", APPEAL_NATURE, e)) return -1;
  return 0;
}

int complaint_validate(json_t *body, const refdata *ref, complaint_in *c, verr *e) {
  static const char *const top[] = {"channel",       "kind",           "stream",
                                    "tier",          "customer",       "region",
                                    "business_type", "problem_type",   "title",
                                    "content",       "cause",          "business_line",
                                    "brand",         "answer_on_spot", "area",
                                    "gravity",       "breadth",        "urgency",
                                    "recording_ref", "customer_signed", "appeal",
                                    "vip",           NULL};
  static const char *const cust[] = {"name",  "phone",         "home_region", "address",
                                     "level", "email",         "reply_channel", NULL};
  memset(c, 0, sizeof *c);
  if (only_known(body, top, "", e)) return -1;

  if (str_field(body, "channel", "channel", true, 32, &c->channel, e)) return -1;
  if (!channel_from_name(c->channel))
    return fail(e, 422, "invalid_value", "channel", "unknown channel %s", c->channel);
  if (str_field(body, "kind", "kind", false, 32, &c->kind, e)) return -1;
  if (!c->kind) c->kind = "complaint";
  if (!kind_from_name(c->kind)) return fail(e, 422, "invalid_value", "kind", "unknown kind %s", c->kind);
  if (str_field(body, "stream", "stream", false, 32, &c->stream, e)) return -1;
  if (!c->stream) c->stream = "ordinary";
  if (!stream_from_name(c->stream))
    return fail(e, 422, "invalid_value", "stream", "unknown stream %s", c->stream);
  if (str_field(body, "tier", "tier", false, 32, &c->tier, e)) return -1;
  if (!c->tier) c->tier = "general";
  if (!tier_from_name(c->tier)) return fail(e, 422, "invalid_value", "tier", "unknown tier %s", c->tier);

  json_t *cu = json_object_get(body, "customer");
  if (!cu || json_is_null(cu)) return fail(e, 422, "missing_field", "customer", "customer is required", NULL);
  if (!json_is_object(cu)) return fail(e, 422, "wrong_type", "customer", "customer must be an object", NULL);
  if (only_known(cu, cust, "customer.", e)) return -1;
  if (str_field(cu, "name", "customer.name", true, NAME_MAX_CHARS, &c->name, e)) return -1;
  if (str_field(cu, "phone", "customer.phone", true, 32, &c->phone, e)) return -1;
  if (!phone_ok(c->phone))
    return fail(e, 422, "invalid_value", "customer.phone", "customer.phone is not a phone number", NULL);
  if (str_field(cu, "home_region", "customer.home_region", true, 6, &c->home_region, e)) return -1;
  if (region_field(c->home_region, "customer.home_region", ref, e)) return -1;
  if (str_field(cu, "address", "customer.address", false, ADDRESS_MAX, &c->address, e)) return -1;
  if (str_field(cu, "level", "customer.level", false, 32, &c->level, e)) return -1;

  if (str_field(body, "region", "region", true, 6, &c->region, e)) return -1;
  if (region_field(c->region, "region", ref, e)) return -1;
  if (str_field(body, "business_type", "business_type", true, 64, &c->business_type, e)) return -1;
  if (!codeset_has(ref->business_types, c->business_type))
    return fail(e, 422, "invalid_value", "business_type", "unknown business_type %s", c->business_type);
  if (str_field(body, "problem_type", "problem_type", false, 64, &c->problem_type, e)) return -1;
  if (c->problem_type && !codeset_has(ref->problem_types, c->problem_type))
    return fail(e, 422, "invalid_value", "problem_type", "unknown problem_type %s", c->problem_type);
  if (str_field(body, "title", "title", true, TITLE_MAX, &c->title, e)) return -1;
  if (str_field(body, "content", "content", true, CONTENT_MAX, &c->content, e)) return -1;

  if (str_field(cu, "email", "customer.email", false, EMAIL_MAX, &c->email, e)) return -1;
  if (c->email && !email_ok(c->email))
    return fail(e, 422, "invalid_value", "customer.email", "customer.email is not an e-mail address",
                NULL);
  if (str_field(cu, "reply_channel", "customer.reply_channel", false, 16, &c->reply_channel, e))
    return -1;
  if (one_of(c->reply_channel, "customer.reply_channel", REPLY_CHANNELS, e)) return -1;
  if (c->reply_channel && strcmp(c->reply_channel, "email") == 0 && !c->email)
    return fail(e, 422, "missing_field", "customer.email",
                "答复方式为邮件时须填写邮箱 (customer.email is required for reply_channel email)",
                NULL);

  if (str_field(body, "cause", "cause", false, 32, &c->cause, e)) return -1;
  if (one_of(c->cause, "cause", CAUSES, e)) return -1;
  if (str_field(body, "business_line", "business_line", false, 32, &c->business_line, e)) return -1;
  const char *line = line_of(ref->business_lines, c->business_type);
  if (c->business_line && ref->business_lines && (!line || strcmp(line, c->business_line) != 0)) {
    fail(e, 422, "invalid_value", "business_line", "", NULL);
    snprintf(e->message, sizeof e->message, "business_line %s does not match business_type %s",
             c->business_line, c->business_type);
    return -1;
  }
  if (!c->business_line && line) {
    snprintf(c->line_buf, sizeof c->line_buf, "%s", line);
    c->business_line = c->line_buf;
  }
  if (str_field(body, "brand", "brand", false, 32, &c->brand, e)) return -1;
  if (str_field(body, "area", "area", false, 16, &c->area, e)) return -1;
  if (one_of(c->area, "area", AREAS, e)) return -1;
  if (str_field(body, "recording_ref", "recording_ref", false, RECORDING_MAX, &c->recording_ref, e))
    return -1;
  if (bool_field(body, "gravity", "gravity", &c->gravity, e) ||
      bool_field(body, "breadth", "breadth", &c->breadth, e) ||
      bool_field(body, "urgency", "urgency", &c->urgency, e) ||
      bool_field(body, "customer_signed", "customer_signed", &c->customer_signed, e) ||
      bool_field(body, "vip", "vip", &c->vip, e))
    return -1;
  if (appeal_fields(body, c, e)) return -1;

  /* an answer given on the spot closes the order at once. */
  if (str_field(body, "answer_on_spot", "answer_on_spot", false, CONTENT_MAX, &c->answer_on_spot, e))
    return -1;
  if (c->answer_on_spot && strcmp(c->stream, "ordinary") != 0)
    return fail(e, 422, "invalid_value", "answer_on_spot",
                "升级投诉/申诉不能现场答复 (no on-the-spot answer for escalated or appeal)", NULL);
  if (c->answer_on_spot && strcmp(c->kind, "repair") == 0)
    return fail(e, 422, "invalid_value", "answer_on_spot",
                "报修须上门处理，不能现场答复 (a repair cannot be answered on the spot)", NULL);
  /* what is handed off needs the customer's phone (checked above) and address. */
  if (!c->answer_on_spot && !c->address)
    return fail(e, 422, "missing_field", "customer.address",
                "转交处理须有客户电话和地址 (customer.address is required unless answered on the "
                "spot, R-02)",
                NULL);
  if (c->reply_channel && strcmp(c->reply_channel, "letter") == 0 && !c->address)
    return fail(e, 422, "missing_field", "customer.address",
                "答复方式为信函时须填写地址 (customer.address is required for a letter)", NULL);
  return 0;
}
