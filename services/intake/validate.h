/* validate — turning a POST /v1/complaints body into a complaint, or the
 * first problem with it (pure: no I/O, unit-tested). */
#ifndef KESU_INTAKE_VALIDATE_H
#define KESU_INTAKE_VALIDATE_H
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* A sorted set of codes (reference data). */
typedef struct {
  char **codes;
  size_t n;
} codeset;
void codeset_init(codeset *s, char **codes, size_t n); /* takes ownership, sorts */
void codeset_free(codeset *s);
bool codeset_has(const codeset *s, const char *code);

typedef struct {
  const codeset *regions, *business_types, *problem_types;
  /* "business_type\tline" pairs (intake.business_types.line); NULL: no line check */
  const codeset *business_lines;
} refdata;

typedef struct {
  const char *kind, *stream, *channel, *tier;
  const char *name, *phone, *address, *home_region, *level;
  const char *region, *business_type, *problem_type, *title, *content;
  /* R-07 beyond the first slice (proto Complaint 15-26, Customer 6-7) */
  const char *email, *reply_channel;
  const char *cause, *business_line, *brand, *answer_on_spot, *area, *recording_ref;
  bool gravity, breadth, urgency, customer_signed, vip;
  bool has_appeal; /* stream = appeal */
  const char *appeal_source_body, *appeal_contact_person, *appeal_business, *appeal_nature;
  bool appeal_filed;
  char line_buf[64]; /* business_line filled from the business type */
} complaint_in; /* strings borrowed from the json_t (or line_buf) */

typedef struct {
  int status;
  const char *code;
  char message[200];
  char field[64];
} verr;

enum { EMAIL_MAX = 254, RECORDING_MAX = 128, TITLE_MAX = 100, CONTENT_MAX = 4000, NAME_MAX_CHARS = 50, ADDRESS_MAX = 200 };

/* 0 and *out filled, or -1 and *err set. */
int complaint_validate(json_t *body, const refdata *ref, complaint_in *out, verr *err);
/* Final-answer limit in seconds for a tier (SPEC R-25 hard limits). */
int64_t tier_limit_seconds(const char *tier);
#endif
