/* util — helpers shared by kesuctl's commands. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kesuctl.h"

const ctl_service ctl_services[] = {
    {"intake", "intake", "kesu_intake"},
    {"router", "router", "kesu_router"},
    {"handler", "handler", "kesu_handler"},
    {"sla", "sla", "kesu_sla"},
    {"notifier", "notify", "kesu_notifier"},
    {"analytics", "analytics", "kesu_analytics"},
};
const int ctl_nservices = (int)(sizeof ctl_services / sizeof ctl_services[0]);

void ctl_err(const char *fmt, ...) {
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  size_t n = strlen(msg);
  while (n && msg[n - 1] == '\n') msg[--n] = '\0'; /* libpq messages end in \n */
  fprintf(stderr, "kesuctl: %s\n", msg);
}

const char *ctl_home(void) {
  const char *h = getenv("KESU_HOME");
  return h && *h ? h : ".";
}

char *ctl_path(const char *rel) {
  const char *home = ctl_home();
  size_t n = strlen(home) + strlen(rel) + 2;
  char *p = malloc(n);
  snprintf(p, n, "%s/%s", home, rel);
  return p;
}

char *ctl_read_file(const char *path, size_t *len) {
  FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  for (;;) {
    if (n + 1 >= cap) buf = realloc(buf, cap *= 2);
    size_t r = fread(buf + n, 1, cap - n - 1, f);
    n += r;
    if (r == 0) break;
  }
  int bad = ferror(f);
  if (f != stdin) fclose(f);
  if (bad) {
    free(buf);
    errno = EIO;
    return NULL;
  }
  buf[n] = '\0';
  if (len) *len = n;
  return buf;
}

static void quiet_notice(void *arg, const char *message) {
  (void)arg;
  (void)message;
}

PGconn *ctl_admin_connect(void) {
  const char *ci = getenv("KESU_PG_ADMIN");
  if (!ci || !*ci) {
    ctl_err("KESU_PG_ADMIN is not set: it must hold the superuser's conninfo, e.g. "
            "\"host=/path/var/run port=5433 dbname=kesu user=postgres\" "
            "(source deploy/local/env.sh)");
    return NULL;
  }
  PGconn *c = PQconnectdb(ci);
  if (PQstatus(c) != CONNECTION_OK) {
    ctl_err("cannot connect to KESU_PG_ADMIN (%s): %s", ci, PQerrorMessage(c));
    PQfinish(c);
    return NULL;
  }
  PQsetNoticeProcessor(c, quiet_notice, NULL);
  PGresult *r = PQexec(c, "SET client_min_messages = warning");
  PQclear(r);
  return c;
}

bool ctl_exec_params(PGconn *c, const char *sql, int n, const char *const *vals, const char *what) {
  PGresult *r = PQexecParams(c, sql, n, NULL, vals, NULL, NULL, 0);
  ExecStatusType st = PQresultStatus(r);
  bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
  if (!ok) ctl_err("%s: %s", what, PQresultErrorMessage(r));
  PQclear(r);
  return ok;
}

bool ctl_exec(PGconn *c, const char *sql, const char *what) {
  PGresult *r = PQexec(c, sql);
  ExecStatusType st = PQresultStatus(r);
  bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY;
  if (!ok) ctl_err("%s: %s", what, PQresultErrorMessage(r));
  PQclear(r);
  return ok;
}

char *ctl_ident(PGconn *c, const char *s) {
  char *q = PQescapeIdentifier(c, s, strlen(s));
  char *out = strdup(q ? q : "\"\"");
  PQfreemem(q);
  return out;
}

int ctl_opt(int argc, char **argv, int *i, const char *name, const char **val) {
  const char *a = argv[*i];
  size_t n = strlen(name);
  if (strncmp(a, name, n) != 0) return 0;
  if (a[n] == '=') {
    *val = a + n + 1;
    return 1;
  }
  if (a[n] != '\0') return 0;
  if (*i + 1 >= argc) {
    ctl_err("%s needs a value", name);
    return -1;
  }
  *val = argv[++*i];
  return 1;
}
