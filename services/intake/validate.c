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

int complaint_validate(json_t *body, const refdata *ref, complaint_in *c, verr *e) {
  static const char *const top[] = {"channel", "kind",  "stream",  "tier",
                                    "customer", "region", "business_type", "problem_type",
                                    "title",   "content", NULL};
  static const char *const cust[] = {"name", "phone", "home_region", "address", "level", NULL};
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
  return 0;
}
