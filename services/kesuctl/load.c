/* kesuctl load — reference data from data/<set>.csv (docs/internals.md "Database").
 *
 * Every requested file is read and validated first; a bad row stops the load
 * with "data/<file>.csv:<line>: why" before anything is written. Then all
 * writes run in ONE transaction as the superuser: idempotent upserts for the
 * keyed tables, replace-all for router.routing_rules (serial id; columns named
 * by the header, "#" rows are comments, SET=FILE reads another file), cross-checks
 * (unit parents and rule units exist, every region routes somewhere), and
 * NOTIFY <schema>_reference so services reload without a restart.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "csv.h"
#include "envelope.h"
#include "kesuctl.h"

typedef struct dataset dataset;
/* Checks row (fields already counted) and may normalise fields in place
 * (e.g. booleans to t/f). Writes why into err and returns false if bad. */
typedef bool (*row_check_fn)(char **f, char *err, size_t errlen);

struct dataset {
  const char *name;   /* command-line name */
  const char *file;   /* relative to KESU_HOME */
  const char *table;  /* target */
  const char *notify; /* channel */
  int ncols;
  const char *cols[9];
  row_check_fn check;
  const char *upsert; /* NULL: replace-all (routing rules) */
};

static bool all_digits(const char *s, size_t min, size_t max) {
  size_t n = strlen(s);
  if (n < min || n > max) return false;
  for (size_t i = 0; i < n; i++)
    if (!isdigit((unsigned char)s[i])) return false;
  return true;
}

/* Lower-case code: [a-z0-9][a-z0-9_-]*, at most 64 chars. */
static bool is_code(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 64 || !(islower((unsigned char)s[0]) || isdigit((unsigned char)s[0])))
    return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (!(islower(c) || isdigit(c) || c == '_' || c == '-')) return false;
  }
  return true;
}

static bool is_int(const char *s, long min, long max, long *out) {
  if (!*s) return false;
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *end || v < min || v > max) return false;
  if (out) *out = v;
  return true;
}

static bool text_ok(const char *s, const char *what, char *err, size_t errlen) {
  if (!*s) {
    snprintf(err, errlen, "%s is empty", what);
    return false;
  }
  if (strlen(s) > 200) {
    snprintf(err, errlen, "%s is longer than 200 bytes", what);
    return false;
  }
  return true;
}

static bool check_region(char **f, char *err, size_t errlen) {
  long level;
  if (!all_digits(f[0], 6, 6)) {
    snprintf(err, errlen, "region code '%s' is not 6 digits", f[0]);
    return false;
  }
  if (!text_ok(f[1], "name", err, errlen)) return false;
  if (*f[2] && !all_digits(f[2], 6, 6)) {
    snprintf(err, errlen, "parent '%s' is not empty or 6 digits", f[2]);
    return false;
  }
  if (!is_int(f[3], 1, 3, &level)) {
    snprintf(err, errlen, "level '%s' is not 1 (province), 2 (city) or 3 (county)", f[3]);
    return false;
  }
  if ((level == 1) != (*f[2] == '\0')) {
    snprintf(err, errlen, "a level-1 region has no parent, every other region has one");
    return false;
  }
  return true;
}

static bool check_business(char **f, char *err, size_t errlen) {
  if (!is_code(f[0])) {
    snprintf(err, errlen, "code '%s' is not a lower-case code ([a-z0-9_-])", f[0]);
    return false;
  }
  if (!text_ok(f[1], "name", err, errlen)) return false;
  if (!is_code(f[2])) {
    snprintf(err, errlen, "line '%s' is not a lower-case code", f[2]);
    return false;
  }
  return true;
}

static bool check_problem(char **f, char *err, size_t errlen) {
  if (!is_code(f[0])) {
    snprintf(err, errlen, "code '%s' is not a lower-case code ([a-z0-9_-])", f[0]);
    return false;
  }
  if (!text_ok(f[1], "name", err, errlen)) return false;
  static const char *yes[] = {"t", "true", "1", "yes", "y"}, *no[] = {"f", "false", "0", "no", "n"};
  for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) {
    if (strcasecmp(f[2], yes[i]) == 0) {
      strcpy(f[2], "t");
      return true;
    }
    if (strcasecmp(f[2], no[i]) == 0) {
      strcpy(f[2], "f");
      return true;
    }
  }
  snprintf(err, errlen, "service '%s' is not a boolean (t/f)", f[2]);
  return false;
}

static bool check_unit(char **f, char *err, size_t errlen) {
  if (!is_code(f[0])) {
    snprintf(err, errlen, "unit id '%s' is not a lower-case code ([a-z0-9_-])", f[0]);
    return false;
  }
  if (!text_ok(f[1], "name", err, errlen)) return false;
  if (!all_digits(f[2], 6, 6)) {
    snprintf(err, errlen, "region '%s' is not 6 digits", f[2]);
    return false;
  }
  if (*f[3] && !is_code(f[3])) {
    snprintf(err, errlen, "parent '%s' is not empty or a unit id", f[3]);
    return false;
  }
  if (strcmp(f[3], f[0]) == 0) {
    snprintf(err, errlen, "unit '%s' is its own parent", f[0]);
    return false;
  }
  if (!is_code(f[4])) {
    snprintf(err, errlen, "kind '%s' is not a lower-case code", f[4]);
    return false;
  }
  return true;
}

/* Routing rules (docs/internals.md "Routing rules"): the columns are named by
 * the header, in any order; unit_id is required, every other column optional
 * (region_prefix .. customer_level empty = any, priority 0, note free text such
 * as a Chinese description). A row whose first field starts with '#' is a
 * comment. read_rules_columns rewrites every row into this canonical order. */
enum { RULE_REGION, RULE_LINE, RULE_BTYPE, RULE_PTYPE, RULE_CHANNEL, RULE_LEVEL, RULE_UNIT,
       RULE_PRIORITY, RULE_NOTE, RULE_NCOLS };

static bool check_rule(char **f, char *err, size_t errlen) {
  if (strcmp(f[RULE_REGION], "*") == 0) f[RULE_REGION][0] = '\0';
  if (*f[RULE_REGION] && !all_digits(f[RULE_REGION], 1, 6)) {
    snprintf(err, errlen, "region_prefix '%s' is not empty (any region) or 1-6 digits",
             f[RULE_REGION]);
    return false;
  }
  static const char *const dim[] = {"business_line", "business_type", "problem_type", "channel",
                                    "customer_level"};
  for (int d = RULE_LINE; d <= RULE_LEVEL; d++) {
    char *v = f[d];
    if (strcmp(v, "*") == 0) v[0] = '\0';
    for (char *p = v; *p; p++) *p = (char)tolower((unsigned char)*p);
    if (*v && !is_code(v)) {
      snprintf(err, errlen, "%s '%s' is not empty (any) or a lower-case code ([a-z0-9_-])",
               dim[d - RULE_LINE], v);
      return false;
    }
  }
  if (*f[RULE_CHANNEL] && channel_from_name(f[RULE_CHANNEL]) == 0) {
    snprintf(err, errlen,
             "channel '%s' is not a channel (hotline, gm_hotline, hall, face_to_face, club, "
             "account_manager, letter, fax, website, app, sms, email, comment_box, media, "
             "upper_referral, regulator, consumer_association, agent, employee)",
             f[RULE_CHANNEL]);
    return false;
  }
  if (!is_code(f[RULE_UNIT])) {
    snprintf(err, errlen, "unit_id '%s' is not a unit id", f[RULE_UNIT]);
    return false;
  }
  if (!*f[RULE_PRIORITY]) {
    free(f[RULE_PRIORITY]);
    f[RULE_PRIORITY] = strdup("0");
  }
  if (!is_int(f[RULE_PRIORITY], -1000000, 1000000, NULL)) {
    snprintf(err, errlen, "priority '%s' is not an integer", f[RULE_PRIORITY]);
    return false;
  }
  if (strlen(f[RULE_NOTE]) > 200) {
    snprintf(err, errlen, "note is longer than 200 bytes");
    return false;
  }
  return true;
}

/* The prefix as the router reads it (services/router/rules.c
 * routing_prefix_normalize): a 6-digit code names its area (310100 = 3101). */
static void rule_prefix_norm(const char *p, char *out, size_t outlen) {
  size_t n = strlen(p);
  if (n == 6 && all_digits(p, 6, 6))
    while (n >= 2 && p[n - 1] == '0' && p[n - 2] == '0') n -= 2;
  if (n >= outlen) n = outlen - 1;
  memcpy(out, p, n);
  out[n] = '\0';
}

/* Same conditions and priority as an earlier row: it could never be chosen. */
static bool same_rule(char **a, char **b) {
  char pa[8], pb[8];
  rule_prefix_norm(a[RULE_REGION], pa, sizeof pa);
  rule_prefix_norm(b[RULE_REGION], pb, sizeof pb);
  if (strcmp(pa, pb) != 0) return false;
  for (int d = RULE_LINE; d <= RULE_LEVEL; d++)
    if (strcmp(a[d], b[d]) != 0) return false;
  return atol(a[RULE_PRIORITY]) == atol(b[RULE_PRIORITY]);
}

/* (xmax = 0): the row was inserted, not updated. Unchanged rows return nothing. */
static const dataset datasets[] = {
    {"regions", "data/regions.csv", "intake.regions", "intake_reference", 4,
     {"code", "name", "parent", "level"}, check_region,
     "INSERT INTO intake.regions AS t (code, name, parent, level) "
     "VALUES ($1, $2, NULLIF($3, ''), $4::int) "
     "ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, parent = EXCLUDED.parent, "
     "level = EXCLUDED.level "
     "WHERE (t.name, t.parent, t.level) IS DISTINCT FROM "
     "(EXCLUDED.name, EXCLUDED.parent, EXCLUDED.level) RETURNING (xmax = 0)"},
    {"business_types", "data/business_types.csv", "intake.business_types", "intake_reference", 3,
     {"code", "name", "line"}, check_business,
     "INSERT INTO intake.business_types AS t (code, name, line) VALUES ($1, $2, $3) "
     "ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, line = EXCLUDED.line "
     "WHERE (t.name, t.line) IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.line) "
     "RETURNING (xmax = 0)"},
    {"problem_types", "data/problem_types.csv", "intake.problem_types", "intake_reference", 3,
     {"code", "name", "service"}, check_problem,
     "INSERT INTO intake.problem_types AS t (code, name, service) VALUES ($1, $2, $3::bool) "
     "ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, service = EXCLUDED.service "
     "WHERE (t.name, t.service) IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.service) "
     "RETURNING (xmax = 0)"},
    {"units", "data/units.csv", "router.units", "router_reference", 5,
     {"id", "name", "region", "parent", "kind"}, check_unit,
     "INSERT INTO router.units AS t (id, name, region, parent, kind) "
     "VALUES ($1, $2, $3, NULLIF($4, ''), $5) "
     "ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, region = EXCLUDED.region, "
     "parent = EXCLUDED.parent, kind = EXCLUDED.kind "
     "WHERE (t.name, t.region, t.parent, t.kind) IS DISTINCT FROM "
     "(EXCLUDED.name, EXCLUDED.region, EXCLUDED.parent, EXCLUDED.kind) RETURNING (xmax = 0)"},
    {"rules", "data/routing_rules.csv", "router.routing_rules", "router_reference", RULE_NCOLS,
     {"region_prefix", "business_line", "business_type", "problem_type", "channel",
      "customer_level", "unit_id", "priority", "note"},
     check_rule, NULL},
};
enum { NSETS = sizeof datasets / sizeof datasets[0] };

static bool is_comment(const csv_row *row) {
  return row->nfields > 0 && row->fields[0][0] == '#';
}

/* Drops comment rows (also before the header), maps the header's columns to
 * the canonical order. */
static bool read_rules_columns(const dataset *ds, const char *file, csv_doc *doc) {
  int out = 0;
  for (int r = 0; r < doc->nrows; r++) {
    csv_row *row = &doc->rows[r];
    if (is_comment(row)) {
      for (int i = 0; i < row->nfields; i++) free(row->fields[i]);
      free(row->fields);
      memset(row, 0, sizeof *row);
      continue;
    }
    if (out != r) {
      doc->rows[out] = *row;
      memset(row, 0, sizeof *row);
    }
    out++;
  }
  doc->nrows = out;
  if (out == 0) {
    ctl_err("%s:1: no header row", file);
    return false;
  }
  csv_row *h = &doc->rows[0];
  int map[RULE_NCOLS];
  for (int k = 0; k < RULE_NCOLS; k++) map[k] = -1;
  for (int i = 0; i < h->nfields; i++) {
    int k = 0;
    while (k < RULE_NCOLS && strcmp(h->fields[i], ds->cols[k]) != 0) k++;
    if (k == RULE_NCOLS) {
      ctl_err("%s:%d: unknown column '%s' (columns: region_prefix, business_line, "
              "business_type, problem_type, channel, customer_level, unit_id, priority, note)",
              file, h->line, h->fields[i]);
      return false;
    }
    if (map[k] >= 0) {
      ctl_err("%s:%d: column '%s' twice", file, h->line, h->fields[i]);
      return false;
    }
    map[k] = i;
  }
  if (map[RULE_UNIT] < 0) {
    ctl_err("%s:%d: header has no unit_id column", file, h->line);
    return false;
  }
  for (int r = 1; r < doc->nrows; r++) {
    csv_row *row = &doc->rows[r];
    if (row->nfields != h->nfields) {
      ctl_err("%s:%d: %d fields, expected %d like the header", file, row->line, row->nfields,
              h->nfields);
      return false;
    }
    char **f = calloc(RULE_NCOLS, sizeof *f);
    for (int k = 0; k < RULE_NCOLS; k++) f[k] = strdup(map[k] >= 0 ? row->fields[map[k]] : "");
    for (int i = 0; i < row->nfields; i++) free(row->fields[i]);
    free(row->fields);
    row->fields = f;
    row->nfields = RULE_NCOLS;
  }
  for (int i = 0; i < h->nfields; i++) free(h->fields[i]);
  free(h->fields);
  h->fields = calloc(RULE_NCOLS, sizeof *h->fields);
  for (int k = 0; k < RULE_NCOLS; k++) h->fields[k] = strdup(ds->cols[k]);
  h->nfields = RULE_NCOLS;
  return true;
}

typedef struct {
  const dataset *ds;
  csv_doc doc;
  char *path;
  const char *file; /* as named in messages: ds->file, or the path given as SET=FILE */
} loaded;

/* Reads and validates one file (from, if not NULL, instead of ds->file).
 * Prints "file:line: why" and returns false. */
static bool read_dataset(const dataset *ds, loaded *out, const char *from) {
  out->ds = ds;
  out->path = from ? strdup(from) : ctl_path(ds->file);
  out->file = from ? from : ds->file;
  const char *file = out->file;
  size_t len;
  char *text = ctl_read_file(out->path, &len);
  if (!text) {
    ctl_err("%s: cannot read: %s", file, strerror(errno));
    return false;
  }
  char err[512];
  int rc = csv_parse(text, len, &out->doc, err, sizeof err);
  free(text);
  if (rc != 0) {
    /* err is "line N: why" */
    int line = 0;
    const char *why = err;
    if (sscanf(err, "line %d:", &line) == 1 && (why = strchr(err, ':'))) why += 2;
    ctl_err("%s:%d: %s", file, line, why);
    return false;
  }
  if (out->doc.nrows == 0) {
    ctl_err("%s:1: empty file (expected a header row)", file);
    return false;
  }
  if (!ds->upsert && !read_rules_columns(ds, file, &out->doc)) return false;
  csv_row *h = &out->doc.rows[0];
  bool header_ok = h->nfields == ds->ncols;
  for (int i = 0; header_ok && i < ds->ncols; i++)
    header_ok = strcmp(h->fields[i], ds->cols[i]) == 0;
  if (!header_ok) {
    char want[128] = "";
    for (int i = 0; i < ds->ncols; i++) {
      strcat(want, i ? "," : "");
      strcat(want, ds->cols[i]);
    }
    ctl_err("%s:%d: header must be %s", file, h->line, want);
    return false;
  }
  for (int r = 1; r < out->doc.nrows; r++) {
    csv_row *row = &out->doc.rows[r];
    if (row->nfields != ds->ncols) {
      ctl_err("%s:%d: %d fields, expected %d (%s,...)", file, row->line, row->nfields,
              ds->ncols, ds->cols[0]);
      return false;
    }
    if (!ds->check(row->fields, err, sizeof err)) {
      ctl_err("%s:%d: %s", file, row->line, err);
      return false;
    }
    /* Duplicate keys (rules: the same conditions and priority). */
    for (int q = 1; q < r; q++) {
      csv_row *o = &out->doc.rows[q];
      if (!ds->upsert) {
        if (same_rule(o->fields, row->fields)) {
          ctl_err("%s:%d: rule has the same conditions and priority as line %d, so it could "
                  "never be chosen",
                  file, row->line, o->line);
          return false;
        }
      } else if (strcmp(o->fields[0], row->fields[0]) == 0) {
        ctl_err("%s:%d: duplicate %s '%s' (first on line %d)", file, row->line, ds->cols[0],
                row->fields[0], o->line);
        return false;
      }
    }
  }
  return true;
}

static bool load_upsert(PGconn *c, loaded *l) {
  int added = 0, changed = 0, same = 0;
  for (int r = 1; r < l->doc.nrows; r++) {
    csv_row *row = &l->doc.rows[r];
    PGresult *res = PQexecParams(c, l->ds->upsert, l->ds->ncols, NULL,
                                 (const char *const *)row->fields, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
      ctl_err("%s:%d: writing %s: %s", l->ds->file, row->line, l->ds->table,
              PQresultErrorMessage(res));
      PQclear(res);
      return false;
    }
    if (PQntuples(res) == 0)
      same++;
    else if (PQgetvalue(res, 0, 0)[0] == 't')
      added++;
    else
      changed++;
    PQclear(res);
  }
  printf("load: %-15s %4d rows (%d new, %d changed, %d unchanged)\n", l->ds->name,
         l->doc.nrows - 1, added, changed, same);
  return true;
}

#define RULE_COLS "region_prefix, business_line, business_type, problem_type, channel, " \
                  "customer_level, unit_id, priority, note"

/* One reference check over the new rules: sql returns (line, value) of the
 * first offending row; why is printed after "file:line: ". */
static bool rules_check(PGconn *c, loaded *l, const char *sql, const char *why) {
  PGresult *res = PQexec(c, sql);
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    ctl_err("%s: checking rules: %s", l->file, PQresultErrorMessage(res));
    PQclear(res);
    return false;
  }
  bool ok = PQntuples(res) == 0;
  if (!ok) /* the column is named in sql as "SELECT line, <column> ..." */
    ctl_err("%s:%s: %s '%s' %s", l->file, PQgetvalue(res, 0, 0), PQfname(res, 1),
            PQgetvalue(res, 0, 1), why);
  PQclear(res);
  return ok;
}

static bool load_rules(PGconn *c, loaded *l) {
  if (!ctl_exec(c,
                "CREATE TEMP TABLE kesuctl_rules (line int, region_prefix text, "
                "business_line text, business_type text, problem_type text, channel text, "
                "customer_level text, unit_id text, priority int, note text) ON COMMIT DROP",
                "load: rules"))
    return false;
  for (int r = 1; r < l->doc.nrows; r++) {
    csv_row *row = &l->doc.rows[r];
    char line[16];
    snprintf(line, sizeof line, "%d", row->line);
    const char *v[10] = {line};
    for (int k = 0; k < RULE_NCOLS; k++) v[k + 1] = row->fields[k];
    char what[512];
    snprintf(what, sizeof what, "%s:%d", l->file, row->line);
    if (!ctl_exec_params(c,
                         "INSERT INTO kesuctl_rules VALUES ($1::int, $2, $3, $4, $5, $6, $7, $8, "
                         "$9::int, $10)",
                         10, v, what))
      return false;
  }
  /* Every name a rule uses must exist (units, regions, business lines and
   * types, problem types); the channel was checked against the list. */
  if (!rules_check(c, l,
                   "SELECT line, unit_id FROM kesuctl_rules x WHERE NOT EXISTS "
                   "(SELECT 1 FROM router.units u WHERE u.id = x.unit_id) ORDER BY line LIMIT 1",
                   "is not a unit in router.units (data/units.csv)") ||
      !rules_check(c, l,
                   "SELECT line, region_prefix FROM kesuctl_rules x WHERE region_prefix <> '' "
                   "AND NOT EXISTS (SELECT 1 FROM intake.regions g WHERE starts_with(g.code, "
                   "CASE WHEN x.region_prefix ~ '^[0-9]{6}$' "
                   "THEN regexp_replace(x.region_prefix, '(00)+$', '') ELSE x.region_prefix END)) "
                   "ORDER BY line LIMIT 1",
                   "is not the prefix of any region in intake.regions (data/regions.csv)") ||
      !rules_check(c, l,
                   "SELECT line, business_line FROM kesuctl_rules x WHERE business_line <> '' "
                   "AND NOT EXISTS (SELECT 1 FROM intake.business_types b "
                   "WHERE b.line = x.business_line) ORDER BY line LIMIT 1",
                   "is not a business line in intake.business_types (data/business_types.csv)") ||
      !rules_check(c, l,
                   "SELECT line, business_type FROM kesuctl_rules x WHERE business_type <> '' "
                   "AND NOT EXISTS (SELECT 1 FROM intake.business_types b "
                   "WHERE b.code = x.business_type) ORDER BY line LIMIT 1",
                   "is not a business type in intake.business_types (data/business_types.csv)") ||
      !rules_check(c, l,
                   "SELECT line, problem_type FROM kesuctl_rules x WHERE problem_type <> '' "
                   "AND NOT EXISTS (SELECT 1 FROM intake.problem_types p "
                   "WHERE p.code = x.problem_type) ORDER BY line LIMIT 1",
                   "is not a problem type in intake.problem_types (data/problem_types.csv)"))
    return false;
  PGresult *res = PQexec(c,
                         "SELECT count(*) FROM ("
                         " (SELECT " RULE_COLS " FROM router.routing_rules"
                         "  EXCEPT ALL SELECT " RULE_COLS " FROM kesuctl_rules)"
                         " UNION ALL"
                         " (SELECT " RULE_COLS " FROM kesuctl_rules"
                         "  EXCEPT ALL SELECT " RULE_COLS " FROM router.routing_rules)) d");
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    ctl_err("%s: comparing with router.routing_rules: %s", l->file, PQresultErrorMessage(res));
    PQclear(res);
    return false;
  }
  long diff = atol(PQgetvalue(res, 0, 0));
  PQclear(res);
  int n = l->doc.nrows - 1;
  if (diff == 0) {
    printf("load: %-15s %4d rows (unchanged)\n", l->ds->name, n);
    return true;
  }
  if (!ctl_exec(c,
                "DELETE FROM router.routing_rules; "
                "INSERT INTO router.routing_rules (" RULE_COLS ") "
                "SELECT " RULE_COLS " FROM kesuctl_rules ORDER BY line",
                "load: replacing router.routing_rules"))
    return false;
  printf("load: %-15s %4d rows (rules replaced)\n", l->ds->name, n);
  return true;
}

/* Consistency of what is now in the tables (inside the load's transaction). */
static bool check_consistency(PGconn *c, bool units, bool routing) {
  if (units) {
    PGresult *r = PQexec(c,
                         "SELECT u.id, u.parent FROM router.units u WHERE u.parent IS NOT NULL "
                         "AND NOT EXISTS (SELECT 1 FROM router.units p WHERE p.id = u.parent) "
                         "ORDER BY 1 LIMIT 1");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
      ctl_err("load: checking unit parents: %s", PQresultErrorMessage(r));
      PQclear(r);
      return false;
    }
    if (PQntuples(r) > 0) {
      ctl_err("data/units.csv: unit '%s' has parent '%s', which is not a unit", PQgetvalue(r, 0, 0),
              PQgetvalue(r, 0, 1));
      PQclear(r);
      return false;
    }
    PQclear(r);
  }
  if (routing) {
    PGresult *r = PQexec(c,
                         "SELECT g.code FROM intake.regions g WHERE NOT EXISTS ("
                         "SELECT 1 FROM router.routing_rules x JOIN router.units u ON u.id = x.unit_id "
                         "WHERE (x.business_line, x.business_type, x.problem_type, x.channel, "
                         "x.customer_level) = ('', '', '', '', '') AND starts_with(g.code, CASE WHEN x.region_prefix = '*' THEN '' "
                         "WHEN x.region_prefix ~ '^[0-9]{6}$' "
                         "THEN regexp_replace(x.region_prefix, '(00)+$', '') "
                         "ELSE x.region_prefix END)) ORDER BY 1 LIMIT 5");
    /* The prefix is read as the router reads it (services/router/rules.c
     * routing_prefix_normalize): '*' matches all, a 6-digit code its area. */
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
      ctl_err("load: checking that every region routes to a unit: %s", PQresultErrorMessage(r));
      PQclear(r);
      return false;
    }
    if (PQntuples(r) > 0) {
      char list[128] = "";
      for (int i = 0; i < PQntuples(r); i++) {
        strcat(list, i ? ", " : "");
        strcat(list, PQgetvalue(r, i, 0));
      }
      ctl_err("routing rules: no region-only rule routes region(s) %s to a unit "
              "(add one, e.g. an empty region_prefix as catch-all)",
              list);
      PQclear(r);
      return false;
    }
    PQclear(r);
  }
  return true;
}

int cmd_load(int argc, char **argv) {
  int notify = load_notify_take(&argc, argv); /* the notifier's set: load_notify.c */
  if (notify == 2) return cmd_load_notify();
  bool want[NSETS] = {false};
  const char *from[NSETS] = {NULL}; /* SET=FILE: read FILE instead of data/<set>.csv */
  bool any = false;
  for (int i = 1; i < argc; i++) {
    bool found = false;
    const char *eq = strchr(argv[i], '=');
    size_t nlen = eq ? (size_t)(eq - argv[i]) : strlen(argv[i]);
    for (int k = 0; k < NSETS; k++) {
      const char *name = datasets[k].name;
      if ((strlen(name) == nlen && strncmp(argv[i], name, nlen) == 0) ||
          (k == NSETS - 1 && nlen == 13 && strncmp(argv[i], "routing_rules", nlen) == 0)) {
        want[k] = found = any = true;
        if (eq) from[k] = eq + 1;
      }
    }
    if (!found) {
      ctl_err("load: unknown data set '%s' (regions, business_types, problem_types, units, rules)",
              argv[i]);
      return EXIT_USAGE;
    }
  }
  if (!any)
    for (int k = 0; k < NSETS; k++) want[k] = true;

  loaded sets[NSETS];
  memset(sets, 0, sizeof sets);
  int rc = EXIT_FAIL;
  PGconn *c = NULL;
  for (int k = 0; k < NSETS; k++)
    if (want[k] && !read_dataset(&datasets[k], &sets[k], from[k])) goto done;

  c = ctl_admin_connect();
  if (!c) goto done;
  if (!ctl_exec(c, "BEGIN", "load")) goto done;
  bool ok = true, notify_intake = false, notify_router = false;
  for (int k = 0; ok && k < NSETS; k++) {
    if (!want[k]) continue;
    ok = datasets[k].upsert ? load_upsert(c, &sets[k]) : load_rules(c, &sets[k]);
    if (strcmp(datasets[k].notify, "intake_reference") == 0)
      notify_intake = true;
    else
      notify_router = true;
  }
  /* Every region must route somewhere whenever regions, units or rules changed. */
  ok = ok && check_consistency(c, want[3], want[0] || want[3] || want[4]);
  if (ok && notify_intake) ok = ctl_exec(c, "NOTIFY intake_reference", "load: notify");
  if (ok && notify_router) ok = ctl_exec(c, "NOTIFY router_reference", "load: notify");
  if (!ok) {
    PQclear(PQexec(c, "ROLLBACK"));
    goto done;
  }
  if (!ctl_exec(c, "COMMIT", "load: commit")) goto done;
  printf("load: committed%s%s\n", notify_intake ? "; notified intake_reference" : "",
         notify_router ? (notify_intake ? ", router_reference" : "; notified router_reference")
                       : "");
  rc = EXIT_OK;
done:
  if (rc != EXIT_OK) ctl_err("load: nothing written");
  if (c) PQfinish(c);
  for (int k = 0; k < NSETS; k++) {
    csv_free(&sets[k].doc);
    free(sets[k].path);
  }
  if (rc == EXIT_OK && notify) rc = cmd_load_notify();
  return rc;
}
