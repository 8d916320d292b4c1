/* kesuctl migrate — roles, schemas and migrations (docs/internals.md "Database").
 *
 * As the superuser (KESU_PG_ADMIN): common/sql/auth.sql, then for each service
 * in order: role kesu_<svc> (LOGIN), schema AUTHORIZATION that role, read
 * access to auth.tokens. Then, as the service role (SET LOCAL ROLE inside each
 * transaction): <schema>.migrations, common/sql/stream.sql with __SCHEMA__
 * replaced (idempotent; re-applied every run so changes to it take effect,
 * recorded once as 000_stream.sql), and services/<svc>/sql/NNN_*.sql in name
 * order, each once, each in its own transaction together with its record.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kesuctl.h"

#define MIGRATE_LOCK_KEY "727365000" /* pg_advisory_lock: one migrate at a time */

static char *replace_all(const char *s, const char *from, const char *to) {
  size_t fl = strlen(from), tl = strlen(to), n = 0;
  for (const char *p = strstr(s, from); p; p = strstr(p + fl, from)) n++;
  size_t len = strlen(s) + n * (tl > fl ? tl - fl : 0) + 1;
  char *out = malloc(len), *o = out;
  const char *p = s;
  for (const char *q = strstr(p, from); q; q = strstr(p, from)) {
    memcpy(o, p, (size_t)(q - p));
    o += q - p;
    memcpy(o, to, tl);
    o += tl;
    p = q + fl;
  }
  strcpy(o, p);
  return out;
}

static int cmp_names(const struct dirent **a, const struct dirent **b) {
  return strcmp((*a)->d_name, (*b)->d_name);
}

static int is_sql(const struct dirent *d) {
  size_t n = strlen(d->d_name);
  return d->d_name[0] != '.' && n > 4 && strcmp(d->d_name + n - 4, ".sql") == 0;
}

/* Runs sql in its own transaction as role (NULL: as superuser), then the
 * record insert (record_sql with $1 = name, may be NULL). Returns 1 if the
 * record row was inserted, 0 if not (already there), -1 on error (rolled back). */
static int apply_tx(PGconn *c, const char *role_ident, const char *sql, const char *record_sql,
                    const char *name, const char *what) {
  if (!ctl_exec(c, "BEGIN", what)) return -1;
  if (role_ident) {
    char set[256];
    snprintf(set, sizeof set, "SET LOCAL ROLE %s", role_ident);
    if (!ctl_exec(c, set, what)) goto fail;
  }
  if (!ctl_exec(c, sql, what)) goto fail;
  int inserted = 0;
  if (record_sql) {
    const char *v[1] = {name};
    PGresult *r = PQexecParams(c, record_sql, 1, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
      ctl_err("%s: recording %s: %s", what, name, PQresultErrorMessage(r));
      PQclear(r);
      goto fail;
    }
    inserted = PQntuples(r) > 0;
    PQclear(r);
  }
  if (!ctl_exec(c, "COMMIT", what)) goto fail;
  return inserted;
fail:
  PQclear(PQexec(c, "ROLLBACK"));
  return -1;
}

/* 1 found (first value copied to out), 0 not found, -1 error (printed). */
static int lookup(PGconn *c, const char *sql, const char *arg, const char *what, char *out,
                  size_t outlen) {
  const char *v[1] = {arg};
  PGresult *r = PQexecParams(c, sql, 1, NULL, v, NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    ctl_err("%s: %s", what, PQresultErrorMessage(r));
    PQclear(r);
    return -1;
  }
  int found = PQntuples(r) > 0;
  if (found && out) snprintf(out, outlen, "%s", PQgetvalue(r, 0, 0));
  PQclear(r);
  return found;
}

static int migrate_service(PGconn *c, const ctl_service *s, const char *stream_sql, int *applied,
                           int *current) {
  char what[512];
  char *role = ctl_ident(c, s->role), *schema = ctl_ident(c, s->schema);
  int rc = -1;
  char *sql = NULL, *dir = NULL, *stream = NULL, *record = NULL, *create = NULL;
  struct dirent **ents = NULL;
  int nents = 0;
  size_t sz;

  /* Role and schema (superuser). */
  snprintf(what, sizeof what, "%s: role %s", s->svc, s->role);
  int found = lookup(c, "SELECT 1 FROM pg_roles WHERE rolname = $1", s->role, what, NULL, 0);
  if (found < 0) goto out;
  if (!found) {
    sz = strlen(role) + 32;
    sql = malloc(sz);
    snprintf(sql, sz, "CREATE ROLE %s LOGIN", role);
    if (!ctl_exec(c, sql, what)) goto out;
    printf("%-9s role %s created\n", s->svc, s->role);
    free(sql), sql = NULL;
  }
  char owner[256];
  snprintf(what, sizeof what, "%s: schema %s", s->svc, s->schema);
  found = lookup(c, "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = $1",
                 s->schema, what, owner, sizeof owner);
  if (found < 0) goto out;
  if (found) {
    if (strcmp(owner, s->role) != 0) {
      ctl_err("%s: schema %s exists but is owned by %s, not %s; fix by hand "
              "(ALTER SCHEMA %s OWNER TO %s, and its objects) or drop it",
              s->svc, s->schema, owner, s->role, s->schema, s->role);
      goto out;
    }
  } else {
    sz = strlen(role) + strlen(schema) + 64;
    sql = malloc(sz);
    snprintf(sql, sz, "CREATE SCHEMA %s AUTHORIZATION %s", schema, role);
    if (!ctl_exec(c, sql, what)) goto out;
    printf("%-9s schema %s created (owner %s)\n", s->svc, s->schema, s->role);
    free(sql), sql = NULL;
  }
  snprintf(what, sizeof what, "%s: grants on auth", s->svc);
  sz = 2 * strlen(role) + 128;
  sql = malloc(sz);
  snprintf(sql, sz, "GRANT USAGE ON SCHEMA auth TO %s; GRANT SELECT ON auth.tokens TO %s", role,
           role);
  if (!ctl_exec(c, sql, what)) goto out;
  free(sql), sql = NULL;

  /* migrations table + stream tables, as the service role. */
  sz = strlen(schema) + 160;
  create = malloc(sz);
  snprintf(create, sz,
           "CREATE TABLE IF NOT EXISTS %s.migrations (name text PRIMARY KEY, "
           "applied_at timestamptz NOT NULL DEFAULT now())",
           schema);
  sz = strlen(schema) + 128;
  record = malloc(sz);
  snprintf(record, sz,
           "INSERT INTO %s.migrations (name) VALUES ($1) ON CONFLICT DO NOTHING RETURNING name",
           schema);
  stream = replace_all(stream_sql, "__SCHEMA__", s->schema);
  size_t full_len = strlen(create) + strlen(stream) + 4;
  sql = malloc(full_len);
  snprintf(sql, full_len, "%s;\n%s", create, stream);
  snprintf(what, sizeof what, "%s: common/sql/stream.sql", s->svc);
  int r = apply_tx(c, role, sql, record, "000_stream.sql", what);
  if (r < 0) goto out;
  if (r > 0) {
    printf("%-9s applied common/sql/stream.sql as 000_stream.sql\n", s->svc);
    (*applied)++;
  } else {
    (*current)++;
  }
  free(sql), sql = NULL;

  /* The service's own migrations. */
  sz = strlen(s->svc) + 32;
  char *rel = malloc(sz);
  snprintf(rel, sz, "services/%s/sql", s->svc);
  dir = ctl_path(rel);
  free(rel);
  nents = scandir(dir, &ents, is_sql, cmp_names);
  if (nents < 0) {
    if (errno != ENOENT) {
      ctl_err("%s: cannot list %s: %s", s->svc, dir, strerror(errno));
      goto out;
    }
    nents = 0;
    printf("%-9s no migrations (%s does not exist)\n", s->svc, dir);
  }
  for (int i = 0; i < nents; i++) {
    const char *name = ents[i]->d_name;
    snprintf(what, sizeof what, "%s: %s", s->svc, name);
    char check[256];
    snprintf(check, sizeof check, "SELECT 1 FROM %s.migrations WHERE name = $1", schema);
    found = lookup(c, check, name, what, NULL, 0);
    if (found < 0) goto out;
    if (found) {
      (*current)++;
      continue;
    }
    size_t plen = strlen(dir) + strlen(name) + 2;
    char *path = malloc(plen);
    snprintf(path, plen, "%s/%s", dir, name);
    char *text = ctl_read_file(path, NULL);
    if (!text) {
      ctl_err("%s: cannot read %s: %s", s->svc, path, strerror(errno));
      free(path);
      goto out;
    }
    snprintf(what, sizeof what, "migrate: services/%s/sql/%s failed", s->svc, name);
    r = apply_tx(c, role, text, record, name, what);
    free(text);
    free(path);
    if (r < 0) goto out;
    printf("%-9s applied services/%s/sql/%s\n", s->svc, s->svc, name);
    (*applied)++;
  }
  rc = 0;
out:
  for (int i = 0; i < nents; i++) free(ents[i]);
  free(ents);
  free(sql);
  free(dir);
  free(stream);
  free(record);
  free(create);
  free(role);
  free(schema);
  return rc;
}

int cmd_migrate(int argc, char **argv) {
  (void)argv;
  if (argc > 1) {
    ctl_err("migrate takes no arguments");
    return EXIT_USAGE;
  }
  char *auth_path = ctl_path("common/sql/auth.sql");
  char *stream_path = ctl_path("common/sql/stream.sql");
  char *auth_sql = ctl_read_file(auth_path, NULL);
  char *stream_sql = auth_sql ? ctl_read_file(stream_path, NULL) : NULL;
  if (!auth_sql || !stream_sql) {
    ctl_err("cannot read %s: %s (is KESU_HOME the repository root? it is \"%s\")",
            auth_sql ? stream_path : auth_path, strerror(errno), ctl_home());
    free(auth_sql);
    free(auth_path);
    free(stream_path);
    return EXIT_FAIL;
  }
  free(auth_path);
  free(stream_path);
  int rc = EXIT_FAIL;
  PGconn *c = ctl_admin_connect();
  if (!c) goto done;
  if (!ctl_exec(c, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", "migrate: lock")) goto done;
  if (apply_tx(c, NULL, auth_sql, NULL, NULL, "migrate: common/sql/auth.sql failed") < 0) goto done;
  if (!ctl_exec(c, "REVOKE CREATE ON SCHEMA public FROM PUBLIC", "migrate: public schema"))
    goto done;
  int applied = 0, current = 0;
  for (int i = 0; i < ctl_nservices; i++)
    if (migrate_service(c, &ctl_services[i], stream_sql, &applied, &current) < 0) goto done;
  printf("migrate: %d applied, %d already current\n", applied, current);
  rc = EXIT_OK;
done:
  if (c) PQfinish(c);
  free(auth_sql);
  free(stream_sql);
  return rc;
}
