/* kesuctl load — the analytics service's loaded data (issue 6, R-42 … R-44):
 *
 *   customers         data/analytics_customers.csv → analytics.customers
 *   calls             data/analytics_calls.csv     → analytics.calls
 *   agents            data/analytics_agents.csv    → analytics.agent_month
 *   analytics_config  data/analytics_config.csv    → analytics.config
 *
 * Like the other sets: every named file is read and its header and field
 * count checked first ("file:line: why"); then ONE transaction replaces each
 * table's content (the files are the truth). A value Postgres refuses (a bad
 * number, date or flag) names the file and line and nothing is written.
 * cmd_load_analytics takes these sets out of `kesuctl load`'s arguments and
 * hands the rest to cmd_load_all; with no set named it loads everything.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "kesuctl.h"

typedef struct {
  const char *name, *file, *header, *table, *insert;
  int ncols;
} an_set;

static const an_set an_sets[] = {
    {"customers", "data/analytics_customers.csv", "region,business_type,customer_level,customers",
     "analytics.customers",
     "INSERT INTO analytics.customers (region, business_type, customer_level, customers)"
     " VALUES ($1, $2, $3, $4::bigint)",
     4},
    {"calls", "data/analytics_calls.csv",
     "call_id,started_at,region,unit,agent,wants_agent,answered,wait_seconds,complaint",
     "analytics.calls",
     "INSERT INTO analytics.calls (call_id, started_at, region, unit, agent, wants_agent,"
     " answered, wait_seconds, complaint) VALUES ($1, $2::timestamptz, $3, $4, $5,"
     " $6::int::boolean, $7::int::boolean, $8::int, $9::int::boolean)",
     9},
    {"agents", "data/analytics_agents.csv",
     "month,agent,name,unit,region,call_target,monitoring_score,test_call_score,complaints",
     "analytics.agent_month",
     "INSERT INTO analytics.agent_month (month, agent, name, unit, region, call_target,"
     " monitoring_score, test_call_score, complaints) VALUES (($1 || '-01')::date, $2, $3, $4,"
     " $5, $6::int, $7::numeric, $8::numeric, $9::int)",
     9},
    {"analytics_config", "data/analytics_config.csv", "key,value,description", "analytics.config",
     "INSERT INTO analytics.config (key, value, description) VALUES ($1, $2::numeric, $3)", 3},
};
enum { AN_NSETS = sizeof an_sets / sizeof an_sets[0] };

static bool read_set(const an_set *s, csv_doc *doc) {
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
  char got[512] = "";
  for (int i = 0; i < doc->rows[0].nfields; i++) {
    strncat(got, i ? "," : "", sizeof got - strlen(got) - 1);
    strncat(got, doc->rows[0].fields[i], sizeof got - strlen(got) - 1);
  }
  if (strcmp(got, s->header) != 0) {
    ctl_err("%s:%d: header must be %s", s->file, doc->rows[0].line, s->header);
    return false;
  }
  for (int r = 1; r < doc->nrows; r++)
    if (doc->rows[r].nfields != s->ncols) {
      ctl_err("%s:%d: %d fields, expected %d", s->file, doc->rows[r].line, doc->rows[r].nfields,
              s->ncols);
      return false;
    }
  return true;
}

static int load_sets(const bool *want) {
  csv_doc docs[AN_NSETS];
  memset(docs, 0, sizeof docs);
  int rc = EXIT_FAIL;
  PGconn *c = NULL;
  for (int k = 0; k < AN_NSETS; k++)
    if (want[k] && !read_set(&an_sets[k], &docs[k])) goto done;
  c = ctl_admin_connect();
  if (!c || !ctl_exec(c, "BEGIN", "load")) goto done;
  bool ok = true;
  int counts[AN_NSETS] = {0};
  for (int k = 0; ok && k < AN_NSETS; k++) {
    if (!want[k]) continue;
    char sql[128];
    snprintf(sql, sizeof sql, "DELETE FROM %s", an_sets[k].table);
    ok = ctl_exec(c, sql, an_sets[k].file);
    for (int r = 1; ok && r < docs[k].nrows; r++) {
      PGresult *res = PQexecParams(c, an_sets[k].insert, an_sets[k].ncols, NULL,
                                   (const char *const *)docs[k].rows[r].fields, NULL, NULL, 0);
      if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        const char *m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        ctl_err("%s:%d: %s", an_sets[k].file, docs[k].rows[r].line, m ? m : "refused");
        ok = false;
      }
      PQclear(res);
      counts[k]++;
    }
  }
  if (!ok) {
    PQclear(PQexec(c, "ROLLBACK"));
    goto done;
  }
  if (!ctl_exec(c, "COMMIT", "load: commit")) goto done;
  printf("load: analytics");
  for (int k = 0; k < AN_NSETS; k++)
    if (want[k]) printf(" %s=%d", an_sets[k].name, counts[k]);
  printf("\n");
  rc = EXIT_OK;
done:
  if (rc != EXIT_OK) ctl_err("load: analytics data: nothing written");
  if (c) PQfinish(c);
  for (int k = 0; k < AN_NSETS; k++) csv_free(&docs[k]);
  return rc;
}

int cmd_load_analytics(int argc, char **argv) {
  bool want[AN_NSETS] = {false};
  bool any = false;
  int other_argc = 1;
  char **other = calloc((size_t)argc + 1, sizeof *other);
  if (!other) return EXIT_FAIL;
  other[0] = argv[0];
  for (int i = 1; i < argc; i++) {
    int k = 0;
    while (k < AN_NSETS && strcmp(argv[i], an_sets[k].name) != 0) k++;
    if (k < AN_NSETS)
      want[k] = any = true;
    else
      other[other_argc++] = argv[i];
  }
  int rc = EXIT_OK;
  if (argc == 1 || other_argc > 1) rc = cmd_load_all(other_argc, other);
  free(other);
  if (rc != EXIT_OK) return rc;
  if (argc == 1)
    for (int k = 0; k < AN_NSETS; k++) want[k] = any = true;
  return any ? load_sets(want) : EXIT_OK;
}
