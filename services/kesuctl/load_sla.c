/* kesuctl load — the SLA watcher's reference data (issue 4, R-25 … ):
 *
 *   calendar   data/calendar_2026.csv  (date,kind,name,calendar_id) → sla.calendar_days
 *              data/business_hours.csv (calendar_id,region_prefix,open,close)
 *                                                         → sla.calendar_regions
 *              and the same two into notify.calendar_days / notify.business_hours
 *              when the notifier's migration made them (docs/internals.md
 *              "Calendars and business hours": one definition for both)
 *   policies   data/sla_policies.csv   (id,kind,stream,...)  → sla.policies
 *   sla_units  data/units.csv          (the unit tree)       → sla.units
 *
 * Like load.c: every file is read and checked first ("file:line: why"), then
 * one transaction replaces each table's content (the files are the truth)
 * and sends NOTIFY sla_reference. cmd_load_all splits `kesuctl load` between
 * load.c's sets and these; with no set named it loads all of both, and naming
 * `units` also refreshes sla.units.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "kesuctl.h"

enum { SLA_CALENDAR, SLA_POLICIES, SLA_UNITS, SLA_HOURS, SLA_NSETS };

typedef struct {
  const char *name, *file;
  int ncols;
  const char *cols[11];
} sla_set;

static const sla_set sla_sets[SLA_NSETS] = {
    {"calendar", "data/calendar_2026.csv", 4, {"date", "kind", "name", "calendar_id"}},
    {"policies",
     "data/sla_policies.csv",
     11,
     {"id", "kind", "stream", "tier", "level", "area", "step", "limit", "unit", "warn_ratio",
      "name"}},
    {"sla_units", "data/units.csv", 5, {"id", "name", "region", "parent", "kind"}},
    {"business_hours", "data/business_hours.csv", 4,
     {"calendar_id", "region_prefix", "open", "close"}},
};

/* "HH:MM" → minutes after midnight; -1 if malformed. */
static int hhmm(const char *s) {
  int h, m, n = 0;
  if (strlen(s) != 5 || sscanf(s, "%2d:%2d%n", &h, &m, &n) != 2 || n != 5 || h < 0 || h > 24 ||
      m < 0 || m > 59 || (h == 24 && m != 0))
    return -1;
  return h * 60 + m;
}

/* '*' or 1..12 digits (a region code or its leading part). */
static bool is_region_prefix(const char *s) {
  if (strcmp(s, "*") == 0)
    return true;
  size_t n = strlen(s);
  if (n == 0 || n > 12)
    return false;
  for (size_t i = 0; i < n; i++)
    if (s[i] < '0' || s[i] > '9')
      return false;
  return true;
}

/* [a-z0-9_-]+ */
static bool is_word(const char *s, size_t n) {
  if (n == 0 || n > 64)
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
      return false;
  }
  return true;
}

/* '*' or word('|'word)* */
static bool is_pattern(const char *s) {
  if (strcmp(s, "*") == 0)
    return true;
  if (strlen(s) > 200)
    return false;
  for (const char *p = s;;) {
    const char *bar = strchr(p, '|');
    size_t n = bar ? (size_t)(bar - p) : strlen(p);
    if (!is_word(p, n))
      return false;
    if (!bar)
      return true;
    p = bar + 1;
  }
}

static bool is_number(const char *s, double min_excl, double max_incl, double *out) {
  if (!*s)
    return false;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || *end || !(v > min_excl) || v > max_incl)
    return false;
  if (out)
    *out = v;
  return true;
}

static bool check_row(int set, char **f, char *err, size_t errlen) {
  if (set == SLA_CALENDAR) {
    int y, m, d, n = 0;
    if (strlen(f[0]) != 10 || sscanf(f[0], "%4d-%2d-%2d%n", &y, &m, &d, &n) != 3 || n != 10) {
      snprintf(err, errlen, "date '%s' is not YYYY-MM-DD", f[0]);
      return false;
    }
    if (strcmp(f[1], "holiday") != 0 && strcmp(f[1], "workday") != 0) {
      snprintf(err, errlen, "kind '%s' is not holiday or workday (调休)", f[1]);
      return false;
    }
    if (*f[3] && !is_word(f[3], strlen(f[3]))) {
      snprintf(err, errlen, "calendar_id '%s' is not a lower-case code (empty: cn)", f[3]);
      return false;
    }
    return true;
  }
  if (set == SLA_HOURS) {
    if (!is_word(f[0], strlen(f[0]))) {
      snprintf(err, errlen, "calendar_id '%s' is not a lower-case code", f[0]);
      return false;
    }
    if (!is_region_prefix(f[1])) {
      snprintf(err, errlen, "region_prefix '%s' is not '*' or a region code prefix", f[1]);
      return false;
    }
    int o = hhmm(f[2]), c = hhmm(f[3]);
    if (o < 0 || c < 0) {
      snprintf(err, errlen, "open '%s' / close '%s' is not HH:MM", f[2], f[3]);
      return false;
    }
    if (c <= o) {
      snprintf(err, errlen, "close %s is not after open %s", f[3], f[2]);
      return false;
    }
    return true;
  }
  if (set == SLA_POLICIES) {
    if (!is_word(f[0], strlen(f[0]))) {
      snprintf(err, errlen, "id '%s' is not a lower-case code ([a-z0-9_-])", f[0]);
      return false;
    }
    for (int i = 1; i <= 5; i++)
      if (!is_pattern(f[i])) {
        snprintf(err, errlen, "%s '%s' is not '*' or codes separated by '|'", sla_sets[set].cols[i],
                 f[i]);
        return false;
      }
    if (!is_word(f[6], strlen(f[6]))) {
      snprintf(err, errlen, "step '%s' is not a step code", f[6]);
      return false;
    }
    if (!is_number(f[7], 0, 1e6, NULL)) {
      snprintf(err, errlen, "limit '%s' is not a positive number", f[7]);
      return false;
    }
    if (strcmp(f[8], "clock_hours") != 0 && strcmp(f[8], "business_hours") != 0 &&
        strcmp(f[8], "working_days") != 0 && strcmp(f[8], "day_end") != 0) {
      snprintf(err, errlen, "unit '%s' is not clock_hours, business_hours, working_days or day_end",
               f[8]);
      return false;
    }
    if (*f[9] && !is_number(f[9], 0, 1, NULL)) {
      snprintf(err, errlen, "warn_ratio '%s' is not in (0, 1] (empty: 0.9)", f[9]);
      return false;
    }
    return true;
  }
  if (!is_word(f[0], strlen(f[0]))) { /* units: load.c checks the rest for router */
    snprintf(err, errlen, "unit id '%s' is not a lower-case code", f[0]);
    return false;
  }
  return true;
}

static bool read_set(int set, csv_doc *doc) {
  const sla_set *s = &sla_sets[set];
  char *path = ctl_path(s->file);
  size_t len;
  char *text = ctl_read_file(path, &len);
  free(path);
  if (!text) {
    ctl_err("%s: cannot read: %s", s->file, strerror(errno));
    return false;
  }
  char err[512];
  int rc = csv_parse(text, len, doc, err, sizeof err);
  free(text);
  if (rc != 0) {
    ctl_err("%s: %s", s->file, err);
    return false;
  }
  if (doc->nrows == 0) {
    ctl_err("%s:1: empty file (expected a header row)", s->file);
    return false;
  }
  csv_row *h = &doc->rows[0];
  bool ok = h->nfields == s->ncols;
  for (int i = 0; ok && i < s->ncols; i++)
    ok = strcmp(h->fields[i], s->cols[i]) == 0;
  if (!ok) {
    ctl_err("%s:%d: header must be the %d columns %s,%s,...", s->file, h->line, s->ncols,
            s->cols[0], s->cols[1]);
    return false;
  }
  for (int r = 1; r < doc->nrows; r++) {
    csv_row *row = &doc->rows[r];
    if (row->nfields != s->ncols) {
      ctl_err("%s:%d: %d fields, expected %d", s->file, row->line, row->nfields, s->ncols);
      return false;
    }
    if (!check_row(set, row->fields, err, sizeof err)) {
      ctl_err("%s:%d: %s", s->file, row->line, err);
      return false;
    }
    /* the key: the first column; a calendar day is (calendar_id, date), business
     * hours are per region_prefix */
    int kc = set == SLA_HOURS ? 1 : 0;
    for (int q = 1; q < r; q++)
      if (strcmp(doc->rows[q].fields[kc], row->fields[kc]) == 0 &&
          (set != SLA_CALENDAR || strcmp(doc->rows[q].fields[3], row->fields[3]) == 0)) {
        ctl_err("%s:%d: duplicate %s '%s' (first on line %d)", s->file, row->line, s->cols[kc],
                row->fields[kc], doc->rows[q].line);
        return false;
      }
  }
  return true;
}

static const char *const replace_sql[SLA_NSETS] = {
    "DELETE FROM sla.calendar_days",
    "DELETE FROM sla.policies",
    "DELETE FROM sla.units",
    "DELETE FROM sla.calendar_regions",
};
static const char *const insert_sql[SLA_NSETS] = {
    "INSERT INTO sla.calendar_days (calendar, day, kind, name)"
    " VALUES (coalesce(NULLIF($4, ''), 'cn'), $1::date, $2, $3)",
    "INSERT INTO sla.policies (id, kind, stream, tier, level, area, step, limit_value, unit,"
    " warn_ratio, name, ord) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::numeric, $9,"
    " coalesce(NULLIF($10, '')::numeric, 0.9), $11, $12::int)",
    "INSERT INTO sla.units (id, name, region, parent, kind) VALUES ($1, $2, $3, NULLIF($4, ''), "
    "$5)",
    "INSERT INTO sla.calendar_regions (calendar_id, region_prefix, open_time, close_time)"
    " VALUES ($1, $2, $3::time, $4::time)",
};

/* The notifier's copy of the calendar sets (same rows; its migration makes
 * the tables — skipped with a note while it has not). */
static const char *const notify_table[SLA_NSETS] = {"notify.calendar_days", NULL, NULL,
                                                    "notify.business_hours"};
static const char *const notify_insert_sql[SLA_NSETS] = {
    "INSERT INTO notify.calendar_days (day, kind, name, calendar_id)"
    " VALUES ($1::date, $2, $3, coalesce(NULLIF($4, ''), 'cn'))",
    NULL, NULL,
    "INSERT INTO notify.business_hours (calendar_id, region_prefix, open, close)"
    " VALUES ($1, $2, $3::time, $4::time)",
};

static bool table_exists(PGconn *c, const char *name) {
  const char *v[1] = {name};
  PGresult *r = PQexecParams(c, "SELECT to_regclass($1) IS NOT NULL", 1, NULL, v, NULL, NULL, 0);
  bool yes = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
             strcmp(PQgetvalue(r, 0, 0), "t") == 0;
  PQclear(r);
  return yes;
}

static bool write_notify_copy(PGconn *c, int set, csv_doc *doc, bool *wrote) {
  const sla_set *s = &sla_sets[set];
  if (!notify_table[set])
    return true;
  if (!table_exists(c, notify_table[set])) {
    printf("load: %-15s no %s yet (the notifier's migration makes it): skipped\n", s->name,
           notify_table[set]);
    return true;
  }
  char del[96];
  snprintf(del, sizeof del, "DELETE FROM %s", notify_table[set]);
  if (!ctl_exec(c, del, s->name))
    return false;
  for (int r = 1; r < doc->nrows; r++) {
    char what[256];
    snprintf(what, sizeof what, "%s:%d (%s)", s->file, doc->rows[r].line, notify_table[set]);
    if (!ctl_exec_params(c, notify_insert_sql[set], s->ncols,
                         (const char *const *)doc->rows[r].fields, what))
      return false;
  }
  printf("load: %-15s %4d rows → %s\n", s->name, doc->nrows - 1, notify_table[set]);
  *wrote = true;
  return true;
}

static bool write_set(PGconn *c, int set, csv_doc *doc) {
  const sla_set *s = &sla_sets[set];
  if (!ctl_exec(c, replace_sql[set], s->name))
    return false;
  for (int r = 1; r < doc->nrows; r++) {
    csv_row *row = &doc->rows[r];
    const char *v[12];
    int n = s->ncols;
    for (int i = 0; i < n; i++)
      v[i] = row->fields[i];
    char ord[16];
    if (set == SLA_POLICIES) {
      snprintf(ord, sizeof ord, "%d", r);
      v[n++] = ord;
    }
    char what[256];
    snprintf(what, sizeof what, "%s:%d", s->file, row->line);
    if (!ctl_exec_params(c, insert_sql[set], n, v, what))
      return false;
  }
  printf("load: %-15s %4d rows (replaced)\n", s->name, doc->nrows - 1);
  return true;
}

static int load_sla_sets(const bool want[SLA_NSETS]) {
  csv_doc docs[SLA_NSETS];
  memset(docs, 0, sizeof docs);
  int rc = EXIT_FAIL;
  PGconn *c = NULL;
  for (int k = 0; k < SLA_NSETS; k++)
    if (want[k] && !read_set(k, &docs[k]))
      goto done;
  c = ctl_admin_connect();
  if (!c || !ctl_exec(c, "BEGIN", "load"))
    goto done;
  bool ok = true, notify = false;
  for (int k = 0; ok && k < SLA_NSETS; k++)
    if (want[k])
      ok = write_set(c, k, &docs[k]) && write_notify_copy(c, k, &docs[k], &notify);
  if (ok)
    ok = ctl_exec(c, "NOTIFY sla_reference", "load: notify");
  if (ok && notify)
    ok = ctl_exec(c, "NOTIFY notify_reference", "load: notify");
  if (!ok) {
    PQclear(PQexec(c, "ROLLBACK"));
    goto done;
  }
  if (!ctl_exec(c, "COMMIT", "load: commit"))
    goto done;
  printf("load: committed; notified sla_reference\n");
  rc = EXIT_OK;
done:
  if (rc != EXIT_OK)
    ctl_err("load: nothing written to sla");
  if (c)
    PQfinish(c);
  for (int k = 0; k < SLA_NSETS; k++)
    csv_free(&docs[k]);
  return rc;
}

int cmd_load_all(int argc, char **argv) {
  bool want[SLA_NSETS] = {false};
  bool any_sla = false;
  int other_argc = 1;
  char **other = calloc((size_t)argc + 1, sizeof *other);
  if (!other)
    return EXIT_FAIL;
  other[0] = argv[0];
  for (int i = 1; i < argc; i++) {
    int k = 0;
    while (k < SLA_NSETS && strcmp(argv[i], sla_sets[k].name) != 0)
      k++;
    if (k < SLA_NSETS) {
      want[k] = any_sla = true;
    } else {
      other[other_argc++] = argv[i];
      if (strcmp(argv[i], "units") == 0)
        want[SLA_UNITS] = any_sla = true;
    }
  }
  int rc = EXIT_OK;
  if (argc == 1 || other_argc > 1)
    rc = cmd_load(other_argc, other);
  free(other);
  if (rc != EXIT_OK)
    return rc;
  if (argc == 1)
    for (int k = 0; k < SLA_NSETS; k++)
      want[k] = any_sla = true;
  if (want[SLA_CALENDAR] || want[SLA_HOURS]) /* one definition: always both */
    want[SLA_CALENDAR] = want[SLA_HOURS] = true;
  return any_sla ? load_sla_sets(want) : EXIT_OK;
}
