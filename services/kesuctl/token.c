/* kesuctl token — bearer tokens in auth.tokens (SPEC R-50, common/auth.h).
 * Only the SHA-256 hex of a token is stored; the raw token is printed once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "kesuctl.h"
#include "utf8.h"

static const char *const roles[] = {"admin", "agent", "handler", "centre", "viewer"};

static void token_usage(void) {
  fprintf(stderr,
          "usage: kesuctl token create --name NAME --role admin|agent|handler|centre|viewer "
          "[--scope REGION]\n"
          "       kesuctl token revoke NAME\n"
          "       kesuctl token list\n");
}

static int token_create(int argc, char **argv) {
  const char *name = NULL, *role = NULL, *scope = "000000";
  for (int i = 1; i < argc; i++) {
    int m;
    if ((m = ctl_opt(argc, argv, &i, "--name", &name)) ||
        (m = ctl_opt(argc, argv, &i, "--role", &role)) ||
        (m = ctl_opt(argc, argv, &i, "--scope", &scope))) {
      if (m < 0) return EXIT_USAGE;
      continue;
    }
    ctl_err("token create: unknown argument '%s'", argv[i]);
    token_usage();
    return EXIT_USAGE;
  }
  if (!name || !role) {
    ctl_err("token create: --name and --role are required");
    token_usage();
    return EXIT_USAGE;
  }
  size_t nlen = strlen(name);
  bool name_ok = nlen > 0 && nlen <= 128 && utf8_valid((const unsigned char *)name, nlen);
  for (size_t i = 0; name_ok && i < nlen; i++)
    if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f) name_ok = false;
  if (!name_ok) {
    ctl_err("token create: --name must be 1-128 bytes of printable UTF-8");
    return EXIT_USAGE;
  }
  bool role_ok = false;
  for (size_t i = 0; i < sizeof roles / sizeof *roles; i++) role_ok |= strcmp(role, roles[i]) == 0;
  if (!role_ok) {
    ctl_err("token create: --role must be admin, agent, handler, centre or viewer (got '%s')", role);
    return EXIT_USAGE;
  }
  bool scope_ok = strlen(scope) == 6 && strspn(scope, "0123456789") == 6;
  if (!scope_ok) {
    ctl_err("token create: --scope must be a 6-digit region code such as 310000 (got '%s')", scope);
    return EXIT_USAGE;
  }
  PGconn *c = ctl_admin_connect();
  if (!c) return EXIT_FAIL;
  char token[46], hash[65];
  auth_new_token(token);
  auth_hash_token(token, hash);
  const char *v[4] = {hash, name, role, scope};
  bool ok = ctl_exec_params(
      c, "INSERT INTO auth.tokens (token_hash, name, role, scope) VALUES ($1, $2, $3, $4)", 4, v,
      "token create (has `kesuctl migrate` run?)");
  PQfinish(c);
  if (!ok) return EXIT_FAIL;
  printf("%s\n", token);
  return EXIT_OK;
}

static int token_revoke(int argc, char **argv) {
  if (argc != 2) {
    token_usage();
    return EXIT_USAGE;
  }
  PGconn *c = ctl_admin_connect();
  if (!c) return EXIT_FAIL;
  const char *v[1] = {argv[1]};
  PGresult *r = PQexecParams(c,
                             "UPDATE auth.tokens SET revoked_at = now() "
                             "WHERE name = $1 AND revoked_at IS NULL",
                             1, NULL, v, NULL, NULL, 0);
  int rc = EXIT_OK;
  if (PQresultStatus(r) != PGRES_COMMAND_OK) {
    ctl_err("token revoke: %s", PQresultErrorMessage(r));
    rc = EXIT_FAIL;
  } else if (atoi(PQcmdTuples(r)) == 0) {
    ctl_err("token revoke: no active token named '%s'", argv[1]);
    rc = EXIT_FAIL;
  } else {
    printf("revoked %s token(s) named '%s'\n", PQcmdTuples(r), argv[1]);
  }
  PQclear(r);
  PQfinish(c);
  return rc;
}

/* Prints s padded to width terminal columns (CJK characters take two). */
static void print_padded(const char *s, int width) {
  int cols = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p;) {
    unsigned cp = *p;
    int n = cp < 0x80 ? 1 : cp < 0xE0 ? 2 : cp < 0xF0 ? 3 : 4;
    if (n == 3 && p[1] && p[2]) cp = (cp & 0x0F) << 12 | (p[1] & 0x3F) << 6 | (p[2] & 0x3F);
    cols += (n == 3 && cp >= 0x2E80 && cp <= 0xFFDC) || n == 4 ? 2 : 1;
    for (int i = 0; i < n && *p; i++) p++;
  }
  fputs(s, stdout);
  for (; cols < width; cols++) putchar(' ');
  putchar(' ');
}

static int token_list(int argc, char **argv) {
  (void)argv;
  if (argc != 1) {
    token_usage();
    return EXIT_USAGE;
  }
  PGconn *c = ctl_admin_connect();
  if (!c) return EXIT_FAIL;
  PGresult *r = PQexec(c,
                       "SELECT name, role, scope, "
                       "to_char(created_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD HH24:MI:SS'), "
                       "coalesce(to_char(revoked_at AT TIME ZONE 'Asia/Shanghai', "
                       "'YYYY-MM-DD HH24:MI:SS'), '-'), left(token_hash, 12) "
                       "FROM auth.tokens ORDER BY created_at, name");
  int rc = EXIT_OK;
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    ctl_err("token list: %s", PQresultErrorMessage(r));
    rc = EXIT_FAIL;
  } else {
    printf("%-20s %-8s %-7s %-20s %-20s %s\n", "NAME", "ROLE", "SCOPE", "CREATED (+08:00)",
           "REVOKED", "SHA256");
    for (int i = 0; i < PQntuples(r); i++) {
      print_padded(PQgetvalue(r, i, 0), 20);
      printf("%-8s %-7s %-20s %-20s %s…\n", PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
             PQgetvalue(r, i, 3), PQgetvalue(r, i, 4), PQgetvalue(r, i, 5));
    }
  }
  PQclear(r);
  PQfinish(c);
  return rc;
}

int cmd_token(int argc, char **argv) {
  if (argc < 2) {
    token_usage();
    return EXIT_USAGE;
  }
  if (strcmp(argv[1], "create") == 0) return token_create(argc - 1, argv + 1);
  if (strcmp(argv[1], "revoke") == 0) return token_revoke(argc - 1, argv + 1);
  if (strcmp(argv[1], "list") == 0) return token_list(argc - 1, argv + 1);
  ctl_err("token: unknown subcommand '%s'", argv[1]);
  token_usage();
  return EXIT_USAGE;
}
