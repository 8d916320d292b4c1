/* kesuctl — the command-line tool: migrations, reference data, tokens,
 * submitting complaints, the controllable clock. See `kesuctl help`. */
#include <stdio.h>
#include <string.h>

#include "kesuctl.h"
#include "log.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: kesuctl COMMAND [ARGS]\n"
          "\n"
          "  migrate                      create roles/schemas, apply common/sql and\n"
          "                               services/*/sql migrations (KESU_PG_ADMIN)\n"
          "  load [SET...]                load data/<set>.csv; SET: regions business_types\n"
          "                               problem_types units rules calendar policies\n"
          "                               sla_units notify customers calls agents\n"
          "                               (calendar = calendar_2026 + business_hours,\n"
          "                               into sla and notify)\n"
          "                               analytics_config (default: all);\n"
          "                               rules=FILE reads FILE instead (also regions=,\n"
          "                               business_types=, problem_types=, units=)\n"
          "  token create --name NAME --role ROLE [--scope REGION]\n"
          "                               print a new bearer token (stored hashed)\n"
          "  token revoke NAME            revoke every active token with that name\n"
          "  token list                   list tokens (never the tokens themselves)\n"
          "  submit [--url BASE] [--token T] [--idempotency-key K] (--json FILE|- | FIELDS)\n"
          "                               POST a complaint to intake's /v1/complaints and\n"
          "                               print the answer; FIELDS: --channel --name --phone\n"
          "                               --region --business --title --content [--problem\n"
          "                               --kind --tier --stream --home-region --address\n"
          "                               --level]; BASE default\n"
          "                               http://127.0.0.1:<8080+KESU_PORT_OFFSET>, T default\n"
          "                               $KESU_HOME/var/admin.token\n"
          "  demo [--rate N] [--close-ratio R] [--count N]\n"
          "                               feed synthetic complaints through intake and close\n"
          "                               some via the handler (Ctrl-C stops)\n"
          "  clock show|advance DURATION|set RFC3339\n"
          "                               the controllable clock (KESU_CLOCK=control:/path)\n"
          "  help                         this text\n"
          "\n"
          "environment: KESU_HOME (repo root, default .), KESU_PG_ADMIN (superuser conninfo),\n"
          "KESU_CLOCK, KESU_PORT_OFFSET, KESU_INTAKE_HTTP.\n"
          "exit codes: 0 ok, 1 failed, 2 usage error.\n");
}

int main(int argc, char **argv) {
  log_init("kesuctl");
  if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
      strcmp(argv[1], "-h") == 0) {
    usage(stdout);
    return EXIT_OK;
  }
  const char *cmd = argv[1];
  int sub_argc = argc - 1;
  char **sub_argv = argv + 1;
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return EXIT_OK;
    }
  }
  if (strcmp(cmd, "migrate") == 0) return cmd_migrate(sub_argc, sub_argv);
  if (strcmp(cmd, "load") == 0) return cmd_load_analytics(sub_argc, sub_argv);
  if (strcmp(cmd, "demo") == 0) return cmd_demo(sub_argc, sub_argv);
  if (strcmp(cmd, "token") == 0) return cmd_token(sub_argc, sub_argv);
  if (strcmp(cmd, "submit") == 0) return cmd_submit(sub_argc, sub_argv);
  if (strcmp(cmd, "clock") == 0) return cmd_clock(sub_argc, sub_argv);
  fprintf(stderr, "kesuctl: unknown command '%s'\n\n", cmd);
  usage(stderr);
  return EXIT_USAGE;
}
