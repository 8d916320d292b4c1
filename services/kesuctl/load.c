/* kesuctl load — reference data from data/<set>.csv (docs/internals.md "Database").
 *
 * Every requested file is read and validated first; a bad row stops the load
 * with "data/<file>.csv:<line>: why" before anything is written. Then all
 * writes run in ONE transaction as the superuser: idempotent upserts for the
 * keyed tables, replace-all for router.routing_rules (serial id), cross-checks
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
  const char *cols[5];
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

static bool check_rule(char **f, char *err, size_t errlen) {
  if (*f[0] && !all_digits(f[0], 1, 6)) {
    snprintf(err, errlen, "region_prefix '%s' is not empty (catch-all) or 1-6 digits", f[0]);
    return false;
  }
  if (!is_code(f[1])) {
    snprintf(err, errlen, "unit_id '%s' is not a unit id", f[1]);
    return false;
  }
  if (!is_int(f[2], -1000000, 1000000, NULL)) {
    snprintf(err, errlen, "priority '%s' is not an integer", f[2]);
    return false;
  }
  return true;
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
    {"rules", "data/routing_rules.csv", "router.routing_rules", "router_reference", 3,
     {"region_prefix", "unit_id", "priority"}, check_rule, NULL},
};
enum { NSETS = sizeof datasets / sizeof datasets[0] };

typedef struct {
  const dataset *ds;
  csv_doc doc;
  char *path;
} loaded;

/* Reads and validates one file. Prints "file:line: why" and returns false. */
static bool read_dataset(const dataset *ds, loaded *out) {
  out->ds = ds;
  out->path = ctl_path(ds->file);
  size_t len;
  char *text = ctl_read_file(out->path, &len);
  if (!text) {
    ctl_err("%s: cannot read: %s", ds->file, strerror(errno));
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
    ctl_err("%s:%d: %s", ds->file, line, why);
    return false;
  }
  if (out->doc.nrows == 0) {
    ctl_err("%s:1: empty file (expected a header row)", ds->file);
    return false;
  }
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
    ctl_err("%s:%d: header must be %s", ds->file, h->line, want);
    return false;
  }
  for (int r = 1; r < out->doc.nrows; r++) {
    csv_row *row = &out->doc.rows[r];
    if (row->nfields != ds->ncols) {
      ctl_err("%s:%d: %d fields, expected %d (%s,...)", ds->file, row->line, row->nfields,
              ds->ncols, ds->cols[0]);
      return false;
    }
    if (!ds->check(row->fields, err, sizeof err)) {
      ctl_err("%s:%d: %s", ds->file, row->line, err);
      return false;
    }
    /* Duplicate keys (rules: the whole row). */
    for (int q = 1; q < r; q++) {
      csv_row *o = &out->doc.rows[q];
      bool same = strcmp(o->fields[0], row->fields[0]) == 0;
      if (!ds->upsert) same = same && strcmp(o->fields[1], row->fields[1]) == 0;
      if (same) {
        ctl_err("%s:%d: duplicate %s '%s' (first on line %d)", ds->file, row->line,
                ds->upsert ? ds->cols[0] : "rule", row->fields[0], o->line);
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

static bool load_rules(PGconn *c, loaded *l) {
  if (!ctl_exec(c,
                "CREATE TEMP TABLE kesuctl_rules (region_prefix text, unit_id text, priority int) "
                "ON COMMIT DROP",
                "load: rules"))
    return false;
  for (int r = 1; r < l->doc.nrows; r++) {
    csv_row *row = &l->doc.rows[r];
    const char *v[3] = {row->fields[0], row->fields[1], row->fields[2]};
    char what[512];
    snprintf(what, sizeof what, "%s:%d", l->ds->file, row->line);
    if (!ctl_exec_params(c, "INSERT INTO kesuctl_rules VALUES ($1, $2, $3::int)", 3, v, what))
      return false;
    PGresult *res =
        PQexecParams(c, "SELECT 1 FROM router.units WHERE id = $1", 1, NULL, v + 1, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
      ctl_err("%s: checking unit: %s", what, PQresultErrorMessage(res));
      PQclear(res);
      return false;
    }
    int n = PQntuples(res);
    PQclear(res);
    if (n == 0) {
      ctl_err("%s: unit_id '%s' is not in router.units (data/units.csv)", what, v[1]);
      return false;
    }
  }
  PGresult *res = PQexec(c,
                         "SELECT count(*) FROM ("
                         " (SELECT region_prefix, unit_id, priority FROM router.routing_rules"
                         "  EXCEPT ALL SELECT region_prefix, unit_id, priority FROM kesuctl_rules)"
                         " UNION ALL"
                         " (SELECT region_prefix, unit_id, priority FROM kesuctl_rules"
                         "  EXCEPT ALL SELECT region_prefix, unit_id, priority FROM "
                         "router.routing_rules)) d");
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    ctl_err("%s: comparing with router.routing_rules: %s", l->ds->file, PQresultErrorMessage(res));
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
                "INSERT INTO router.routing_rules (region_prefix, unit_id, priority) "
                "SELECT region_prefix, unit_id, priority FROM kesuctl_rules",
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
                         "WHERE starts_with(g.code, CASE WHEN x.region_prefix = '*' THEN '' "
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
      ctl_err("data/routing_rules.csv: no rule routes region(s) %s to a unit "
              "(add a rule, e.g. an empty prefix as catch-all)",
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
  bool any = false;
  for (int i = 1; i < argc; i++) {
    bool found = false;
    for (int k = 0; k < NSETS; k++) {
      if (strcmp(argv[i], datasets[k].name) == 0 ||
          (k == NSETS - 1 && strcmp(argv[i], "routing_rules") == 0)) {
        want[k] = found = any = true;
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
    if (want[k] && !read_dataset(&datasets[k], &sets[k])) goto done;

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
