/* kesuctl — shared bits of the command-line tool's modules.
 *
 * Exit codes: 0 success, 1 the command failed (database, HTTP, data error),
 * 2 usage error (unknown command or option, missing argument).
 */
#ifndef KESUCTL_H
#define KESUCTL_H
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

/* "kesuctl: <message>\n" on stderr. */
void ctl_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* KESU_HOME or "." */
const char *ctl_home(void);
/* Joins KESU_HOME and a relative path into a malloc'd string. */
char *ctl_path(const char *rel);
/* Whole file, NUL-terminated, malloc'd; NULL with errno set on failure. */
char *ctl_read_file(const char *path, size_t *len);

/* Connects as the cluster superuser (KESU_PG_ADMIN, required), notices
 * silenced. NULL after printing a clear error. */
PGconn *ctl_admin_connect(void);
/* Runs one command (no result rows expected). Prints the error with what and
 * returns false on failure. */
bool ctl_exec(PGconn *c, const char *sql, const char *what);
bool ctl_exec_params(PGconn *c, const char *sql, int n, const char *const *vals, const char *what);
/* Double-quoted SQL identifier / single-quoted literal (malloc'd). */
char *ctl_ident(PGconn *c, const char *s);

/* Option "--name VALUE" or "--name=VALUE" at argv[*i]: returns 1 and sets
 * *val (advancing *i past a separate value), 0 if argv[*i] is another
 * option, -1 (after printing an error) if the value is missing. */
int ctl_opt(int argc, char **argv, int *i, const char *name, const char **val);

/* The tool's services in migration order and their schemas/roles. */
typedef struct {
  const char *svc;    /* directory under services/ */
  const char *schema; /* Postgres schema */
  const char *role;   /* Postgres role */
} ctl_service;
extern const ctl_service ctl_services[];
extern const int ctl_nservices;

int cmd_migrate(int argc, char **argv);
int cmd_load(int argc, char **argv);
/* load.c's sets plus the SLA watcher's (load_sla.c). */
int cmd_load_all(int argc, char **argv);
/* load_notify.c: `load notify` (templates, rules, contacts of the notifier).
 * load_notify_take removes "notify" from argv: 0 not wanted, 1 wanted too
 * (also when no set is named), 2 only notify. */
int cmd_load_notify(void);
int load_notify_take(int *argc, char **argv);
/* load_analytics.c: takes customers/calls/agents/analytics_config out of argv,
 * runs cmd_load_all on the rest (everything when no set is named). */
int cmd_load_analytics(int argc, char **argv);
/* demo.c: `kesuctl demo` — synthetic complaints through the real services. */
int cmd_demo(int argc, char **argv);
int cmd_token(int argc, char **argv);
int cmd_submit(int argc, char **argv);
int cmd_clock(int argc, char **argv);
#endif
