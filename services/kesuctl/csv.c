/* csv — RFC 4180 reader and duration parser (see csv.h). */
#include "csv.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

typedef struct {
  char *p;
  size_t n, cap;
} sbuf;

static void sb_putc(sbuf *b, char c) {
  if (b->n + 1 >= b->cap) {
    b->cap = b->cap ? b->cap * 2 : 64;
    b->p = realloc(b->p, b->cap);
  }
  b->p[b->n++] = c;
  b->p[b->n] = '\0';
}

static void set_err(char *err, size_t errlen, int line, const char *fmt, ...) {
  if (!err || !errlen) return;
  int k = snprintf(err, errlen, "line %d: ", line);
  if (k < 0 || (size_t)k >= errlen) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
  va_end(ap);
}

static void row_add(csv_row *r, sbuf *field) {
  r->fields = realloc(r->fields, (size_t)(r->nfields + 1) * sizeof *r->fields);
  r->fields[r->nfields++] = field->p ? field->p : strdup("");
  field->p = NULL;
  field->n = field->cap = 0;
}

static void doc_add(csv_doc *doc, csv_row *r) {
  doc->rows = realloc(doc->rows, (size_t)(doc->nrows + 1) * sizeof *doc->rows);
  doc->rows[doc->nrows++] = *r;
  memset(r, 0, sizeof *r);
}

static void row_free(csv_row *r) {
  for (int i = 0; i < r->nfields; i++) free(r->fields[i]);
  free(r->fields);
  memset(r, 0, sizeof *r);
}

void csv_free(csv_doc *doc) {
  if (!doc) return;
  for (int i = 0; i < doc->nrows; i++) row_free(&doc->rows[i]);
  free(doc->rows);
  doc->rows = NULL;
  doc->nrows = 0;
}

int csv_parse(const char *data, size_t len, csv_doc *doc, char *err, size_t errlen) {
  memset(doc, 0, sizeof *doc);
  if (err && errlen) err[0] = '\0';
  size_t i = 0;
  if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0) i = 3; /* BOM */
  int line = 1;
  csv_row row = {0};
  sbuf field = {0};
  bool at_record_start = true;

  while (i < len || !at_record_start) {
    if (at_record_start) {
      /* Skip empty lines. */
      if (data[i] == '\n') {
        line++, i++;
        continue;
      }
      if (data[i] == '\r') {
        line++, i++;
        if (i < len && data[i] == '\n') i++;
        continue;
      }
      at_record_start = false;
      row.line = line;
    }
    /* One field. */
    bool quoted = i < len && data[i] == '"';
    if (quoted) {
      int qline = line;
      i++;
      for (;;) {
        if (i >= len) {
          set_err(err, errlen, qline, "unterminated quoted field");
          goto fail;
        }
        char c = data[i++];
        if (c == '"') {
          if (i < len && data[i] == '"') {
            sb_putc(&field, '"');
            i++;
            continue;
          }
          break;
        }
        if (c == '\n' || (c == '\r' && !(i < len && data[i] == '\n'))) line++;
        sb_putc(&field, c);
      }
      if (i < len && data[i] != ',' && data[i] != '\r' && data[i] != '\n') {
        set_err(err, errlen, line, "text after the closing quote of field %d", row.nfields + 1);
        goto fail;
      }
    } else {
      while (i < len && data[i] != ',' && data[i] != '\r' && data[i] != '\n') {
        if (data[i] == '"') {
          set_err(err, errlen, line, "quote inside unquoted field %d (quote the whole field)",
                  row.nfields + 1);
          goto fail;
        }
        sb_putc(&field, data[i++]);
      }
    }
    if (field.p && !utf8_valid((const unsigned char *)field.p, field.n)) {
      set_err(err, errlen, row.line, "field %d is not valid UTF-8", row.nfields + 1);
      goto fail;
    }
    row_add(&row, &field);
    if (i < len && data[i] == ',') {
      i++;
      if (i >= len) { /* trailing comma at EOF: one more empty field */
        row_add(&row, &field);
        doc_add(doc, &row);
        at_record_start = true;
      }
      continue;
    }
    /* End of record: newline or EOF. */
    if (i < len) {
      if (data[i] == '\r') {
        i++;
        if (i < len && data[i] == '\n') i++;
      } else {
        i++;
      }
      line++;
    }
    doc_add(doc, &row);
    at_record_start = true;
  }
  return 0;

fail:
  free(field.p);
  row_free(&row);
  csv_free(doc);
  return -1;
}

/* --- durations ------------------------------------------------------------ */

int parse_duration_ms(const char *s, int64_t *out) {
  if (!s) return -1;
  int sign = 1;
  if (*s == '-' || *s == '+') sign = *s++ == '-' ? -1 : 1;
  if (!*s) return -1;
  int64_t total = 0;
  const int64_t max = INT64_MAX / 2;
  while (*s) {
    if (*s < '0' || *s > '9') return -1;
    int64_t n = 0;
    while (*s >= '0' && *s <= '9') {
      if (n > (max - (*s - '0')) / 10) return -1;
      n = n * 10 + (*s++ - '0');
    }
    int64_t unit;
    if (s[0] == 'm' && s[1] == 's') {
      unit = 1, s += 2;
    } else if (*s == 's') {
      unit = 1000, s++;
    } else if (*s == 'm') {
      unit = 60 * 1000, s++;
    } else if (*s == 'h') {
      unit = 3600 * 1000, s++;
    } else if (*s == 'd') {
      unit = 86400 * 1000, s++;
    } else {
      return -1; /* a number needs a unit */
    }
    if (n > (max - total) / unit) return -1;
    total += n * unit;
  }
  *out = sign * total;
  return 0;
}

void format_duration_ms(int64_t ms, char *buf, size_t len) {
  if (!len) return;
  size_t k = 0;
  buf[0] = '\0';
  uint64_t v = ms < 0 ? (uint64_t)0 - (uint64_t)ms : (uint64_t)ms;
  if (ms < 0) k += (size_t)snprintf(buf + k, len - k, "-");
  uint64_t d = v / 86400000, h = v / 3600000 % 24, m = v / 60000 % 60, s = v / 1000 % 60,
           f = v % 1000;
#define PUT(...)                                                 \
  do {                                                           \
    if (k < len) k += (size_t)snprintf(buf + k, len - k, __VA_ARGS__); \
  } while (0)
  if (d) PUT("%llud", (unsigned long long)d);
  if (h) PUT("%lluh", (unsigned long long)h);
  if (m) PUT("%llum", (unsigned long long)m);
  if (f)
    PUT("%llu.%03llus", (unsigned long long)s, (unsigned long long)f);
  else if (s || v == 0)
    PUT("%llus", (unsigned long long)s);
#undef PUT
}
