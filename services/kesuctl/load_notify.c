/* kesuctl load notify — the notifier's rules, templates and staff contacts
 * (SPEC R-38..R-41) from data/notify_templates.csv, data/notify_rules.csv and
 * data/notify_contacts.csv into notify.templates / notify.rules /
 * notify.contacts.
 *
 * Every file is read and validated first ("data/<file>.csv:<line>: why", and
 * nothing is written): a template may only use the variables the notifier
 * knows — checked with the notifier's own engine (common/tmpl.c), so a typo is
 * refused here and never reaches a customer's SMS as a blank; a rule must name
 * a known event, recipient, channel and a template of that channel; a
 * contact's address must fit its channel. Then ONE transaction replaces the
 * three tables (the notifier reloads on NOTIFY notify_reference).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "kesuctl.h"
#include "tmpl.h"

static const char *const channels[] = {"sms", "email", "im", NULL};
/* templates and rules also know "letter" (R-38: a print task for the customer's answer) */
static const char *const msg_channels[] = {"sms", "email", "im", "letter", NULL};
static const char *const recipients[] = {"customer",   "handler",     "head", "supervisor",
                                         "next_level", "province_cs", "hq",   NULL};
static const char *const events[] = {"ComplaintReceived", "WorkOrderCreated", "WorkOrderDispatched",
                                     "WorkOrderClosed",   "SlaWarning",       "SlaBreached",
                                     "SlaEscalated",      "WorkOrderStepChanged", "ComplaintDigest",
                                     "SlaDeadlineMoved",  "DailyDueList",     NULL};
static const char *const cond_keys[] = {"kind",          "tier",   "level",         "region",
                                        "problem_type",  "business_type", "action",
                                        "reply_channel", "major",
                                        /* SlaDeadlineMoved: the step (arrive, answer, ...) and
                                         * the reason code (rain, snow, appointment, ...) */
                                        "step",          "reason",
                                        /* R-15 priority ("priority>=8"), repair crew arrived */
                                        "priority",      "arrived",       NULL};

static bool in(const char *s, const char *const *set) {
  for (int i = 0; set[i]; i++)
    if (strcmp(s, set[i]) == 0) return true;
  return false;
}

static bool read_csv(const char *file, const char *header, csv_doc *doc) {
  char *path = ctl_path(file);
  size_t len;
  char *text = ctl_read_file(path, &len);
  free(path);
  if (!text) {
    ctl_err("%s: cannot read: %s", file, strerror(errno));
    return false;
  }
  char err[512];
  int rc = csv_parse(text, len, doc, err, sizeof err);
  free(text);
  if (rc != 0) {
    ctl_err("%s: %s", file, err);
    return false;
  }
  if (doc->nrows == 0) {
    ctl_err("%s:1: empty file (expected a header row)", file);
    return false;
  }
  /* header: compare the joined fields */
  char got[256] = "";
  for (int i = 0; i < doc->rows[0].nfields; i++) {
    strncat(got, i ? "," : "", sizeof got - strlen(got) - 1);
    strncat(got, doc->rows[0].fields[i], sizeof got - strlen(got) - 1);
  }
  if (strcmp(got, header) != 0) {
    ctl_err("%s:%d: header must be %s", file, doc->rows[0].line, header);
    return false;
  }
  int ncols = 1;
  for (const char *p = header; *p; p++) ncols += *p == ',';
  for (int r = 1; r < doc->nrows; r++)
    if (doc->rows[r].nfields != ncols) {
      ctl_err("%s:%d: %d fields, expected %d", file, doc->rows[r].line, doc->rows[r].nfields,
              ncols);
      return false;
    }
  return true;
}

static bool is_code(const char *s) {
  if (!*s || strlen(s) > 64) return false;
  for (; *s; s++)
    if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) || *s == '_' || *s == '-'))
      return false;
  return true;
}

/* "key=value;key=value", keys from cond_keys, values non-empty. */
static bool notify_conditions_ok(const char *s, char *err, size_t errlen) {
  if (!*s) return true;
  char *copy = strdup(s), *save = NULL;
  bool ok = true;
  for (char *part = strtok_r(copy, ";", &save); ok && part; part = strtok_r(NULL, ";", &save)) {
    char *eq = strchr(part, '=');
    if (!eq || eq == part || !eq[1]) {
      snprintf(err, errlen, "condition '%s' is not key=value", part);
      ok = false;
      break;
    }
    bool at_least = eq > part + 1 && eq[-1] == '>';
    if (at_least) eq[-1] = '\0';
    *eq = '\0';
    if (at_least && strcmp(part, "priority") != 0) {
      snprintf(err, errlen, "only priority compares with >= ('%s>=')", part);
      ok = false;
      break;
    }
    if (at_least || strcmp(part, "priority") == 0) {
      char *e;
      long n = strtol(eq + 1, &e, 10);
      if (*e || n < 0) {
        snprintf(err, errlen, "priority needs a whole number, not '%s'", eq + 1);
        ok = false;
        break;
      }
    }
    if (!in(part, cond_keys)) {
      snprintf(err, errlen,
               "unknown condition '%s' (kind, tier, level, region, problem_type, business_type,"
               " action, reply_channel, major, step, reason, priority, arrived)",
               part);
      ok = false;
    }
  }
  free(copy);
  return ok;
}

static bool check_templates(csv_doc *d) {
  const char *f = "data/notify_templates.csv";
  for (int r = 1; r < d->nrows; r++) {
    char **v = d->rows[r].fields;
    int line = d->rows[r].line;
    char bad[64];
    if (!is_code(v[0])) {
      ctl_err("%s:%d: code '%s' must be lower-case letters, digits, '_' or '-'", f, line, v[0]);
      return false;
    }
    if (!in(v[1], msg_channels)) {
      ctl_err("%s:%d: channel '%s' must be sms, email, im or letter", f, line, v[1]);
      return false;
    }
    if (!*v[3]) {
      ctl_err("%s:%d: template '%s' has an empty body", f, line, v[0]);
      return false;
    }
    if (strcmp(v[1], "email") == 0 && !*v[2]) {
      ctl_err("%s:%d: e-mail template '%s' needs a subject", f, line, v[0]);
      return false;
    }
    for (int k = 2; k <= 3; k++)
      if (tmpl_check(v[k], bad, sizeof bad) != 0) {
        ctl_err("%s:%d: template '%s' uses unknown variable {%s} in its %s", f, line, v[0], bad,
                k == 2 ? "subject" : "body");
        return false;
      }
    for (int q = 1; q < r; q++)
      if (strcmp(d->rows[q].fields[0], v[0]) == 0) {
        ctl_err("%s:%d: duplicate template '%s' (first on line %d)", f, line, v[0],
                d->rows[q].line);
        return false;
      }
  }
  return true;
}

static bool check_rules(csv_doc *d, csv_doc *t) {
  const char *f = "data/notify_rules.csv";
  for (int r = 1; r < d->nrows; r++) {
    char **v = d->rows[r].fields;
    int line = d->rows[r].line;
    char err[256];
    if (!in(v[0], events)) {
      ctl_err("%s:%d: unknown event type '%s'", f, line, v[0]);
      return false;
    }
    if (!notify_conditions_ok(v[1], err, sizeof err)) {
      ctl_err("%s:%d: %s", f, line, err);
      return false;
    }
    if (!in(v[2], recipients)) {
      ctl_err("%s:%d: unknown recipient '%s' (customer, handler, head, supervisor, next_level, "
              "province_cs, hq)",
              f, line, v[2]);
      return false;
    }
    if (!in(v[3], msg_channels)) {
      ctl_err("%s:%d: channel '%s' must be sms, email, im or letter", f, line, v[3]);
      return false;
    }
    if (strcmp(v[3], "letter") == 0 && strcmp(v[2], "customer") != 0) {
      ctl_err("%s:%d: a letter goes to the customer only", f, line);
      return false;
    }
    int k = 1;
    while (k < t->nrows && strcmp(t->rows[k].fields[0], v[4]) != 0) k++;
    if (k == t->nrows) {
      ctl_err("%s:%d: template '%s' is not in data/notify_templates.csv", f, line, v[4]);
      return false;
    }
    if (strcmp(t->rows[k].fields[1], v[3]) != 0) {
      ctl_err("%s:%d: template '%s' is for %s, the rule sends %s", f, line, v[4],
              t->rows[k].fields[1], v[3]);
      return false;
    }
    if (strcmp(v[5], "true") && strcmp(v[5], "false")) {
      ctl_err("%s:%d: urgent must be true or false", f, line);
      return false;
    }
  }
  return true;
}

static bool check_contacts(csv_doc *d) {
  const char *f = "data/notify_contacts.csv";
  for (int r = 1; r < d->nrows; r++) {
    char **v = d->rows[r].fields;
    int line = d->rows[r].line;
    if (!*v[0]) {
      ctl_err("%s:%d: unit_id is empty ('*' = any unit)", f, line);
      return false;
    }
    if (!in(v[1], recipients) || strcmp(v[1], "customer") == 0) {
      ctl_err("%s:%d: unknown staff role '%s'", f, line, v[1]);
      return false;
    }
    if (!in(v[2], channels)) {
      ctl_err("%s:%d: channel '%s' must be sms, email or im", f, line, v[2]);
      return false;
    }
    const char *a = v[3];
    bool ok = *a != '\0';
    if (strcmp(v[2], "sms") == 0)
      for (const char *p = a; *p; p++) ok = ok && (isdigit((unsigned char)*p) || *p == '+');
    else if (strcmp(v[2], "email") == 0)
      ok = ok && strchr(a, '@') && !strpbrk(a, " <>\r\n");
    else
      ok = ok && (strncmp(a, "http://", 7) == 0 || strncmp(a, "https://", 8) == 0);
    if (!ok) {
      ctl_err("%s:%d: address '%s' is not a valid %s address", f, line, a, v[2]);
      return false;
    }
  }
  return true;
}

static bool write_rows(PGconn *c, csv_doc *d, const char *sql, int n, const char *file) {
  for (int r = 1; r < d->nrows; r++) {
    char what[256];
    snprintf(what, sizeof what, "%s:%d", file, d->rows[r].line);
    if (!ctl_exec_params(c, sql, n, (const char *const *)d->rows[r].fields, what)) return false;
  }
  return true;
}

int cmd_load_notify(void) {
  csv_doc t = {0}, r = {0}, k = {0}, u = {0};
  int rc = EXIT_FAIL;
  PGconn *c = NULL;
  if (!read_csv("data/notify_templates.csv", "code,channel,subject,body", &t) ||
      !check_templates(&t))
    goto done;
  if (!read_csv("data/notify_rules.csv", "event_type,conditions,recipient,channel,template,urgent",
                &r) ||
      !check_rules(&r, &t))
    goto done;
  if (!read_csv("data/notify_contacts.csv", "unit_id,role,channel,address", &k) ||
      !check_contacts(&k))
    goto done;
  /* unit names for {unit_name} and regions for R-24 (checked by `load units`) */
  if (!read_csv("data/units.csv", "id,name,region,parent,kind", &u)) goto done;
  c = ctl_admin_connect();
  if (!c) goto done;
  bool ok = ctl_exec(c, "BEGIN", "load notify") &&
            ctl_exec(c, "DELETE FROM notify.rules; DELETE FROM notify.contacts;"
                     " DELETE FROM notify.templates",
                     "load notify: clearing rules, templates and contacts") &&
            write_rows(c, &t,
                       "INSERT INTO notify.templates (code, channel, subject, body)"
                       " VALUES ($1, $2, $3, $4)",
                       4, "data/notify_templates.csv") &&
            write_rows(c, &r,
                       "INSERT INTO notify.rules (event_type, conditions, recipient, channel,"
                       " template, urgent) VALUES ($1, $2, $3, $4, $5, $6::bool)",
                       6, "data/notify_rules.csv") &&
            write_rows(c, &k,
                       "INSERT INTO notify.contacts (unit_id, role, channel, address)"
                       " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                       4, "data/notify_contacts.csv") &&
            ctl_exec(c, "DELETE FROM notify.units", "load notify: clearing units") &&
            write_rows(c, &u,
                       "INSERT INTO notify.units (id, name, region) VALUES ($1, $2, $3)"
                       " ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name,"
                       " region = EXCLUDED.region",
                       3, "data/units.csv") &&
            ctl_exec(c, "NOTIFY notify_reference", "load notify: notify") &&
            ctl_exec(c, "COMMIT", "load notify: commit");
  if (!ok) {
    PQclear(PQexec(c, "ROLLBACK"));
    goto done;
  }
  printf("load: %-15s %4d templates, %d rules, %d contacts, %d unit names (replaced); notified "
         "notify_reference\n",
         "notify", t.nrows - 1, r.nrows - 1, k.nrows - 1, u.nrows - 1);
  rc = EXIT_OK;
done:
  if (rc != EXIT_OK) ctl_err("load notify: nothing written");
  if (c) PQfinish(c);
  csv_free(&t);
  csv_free(&r);
  csv_free(&k);
  csv_free(&u);
  return rc;
}

int load_notify_take(int *argc, char **argv) {
  bool named = false;
  int n = 1;
  for (int i = 1; i < *argc; i++) {
    if (strcmp(argv[i], "notify") == 0)
      named = true;
    else
      argv[n++] = argv[i];
  }
  bool all = *argc == 1;
  *argc = n;
  if (all) return 1;
  if (!named) return 0;
  return n == 1 ? 2 : 1;
}
