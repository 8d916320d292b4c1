/* csv — a small RFC 4180 reader for the reference data in data/<set>.csv, and the
 * duration parser of `kesuctl clock advance`. Pure functions, no I/O, so the
 * unit test (test_csv.c) links them alone.
 *
 * CSV: fields separated by commas, records by LF, CRLF or CR. A field that
 * starts with '"' is quoted: it may hold commas, line breaks and '""' (one
 * quote). A quote inside an unquoted field, text after a closing quote, or
 * an unterminated quote is an error. A leading UTF-8 BOM is skipped, empty
 * lines are skipped, every field must be valid UTF-8.
 */
#ifndef KESUCTL_CSV_H
#define KESUCTL_CSV_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
  int line;      /* 1-based line where the record starts */
  int nfields;
  char **fields; /* NUL-terminated, owned by the doc */
} csv_row;

typedef struct {
  int nrows;
  csv_row *rows; /* rows[0] is the header when the file has one */
} csv_doc;

/* Parses data[0..len). Returns 0, or -1 with "line N: why" in err (and *doc
 * empty). Free with csv_free either way. */
int csv_parse(const char *data, size_t len, csv_doc *doc, char *err, size_t errlen);
void csv_free(csv_doc *doc);

/* "21h36m", "90m", "2d", "3600s", "1500ms", "1d2h3m4s", optional leading '-'
 * or '+'. Units: d, h, m, s, ms. Returns 0 and sets *ms, or -1. */
int parse_duration_ms(const char *s, int64_t *ms);
/* Formats a duration as e.g. "1d2h3m4.500s" / "-90m" into buf. */
void format_duration_ms(int64_t ms, char *buf, size_t len);
#endif
