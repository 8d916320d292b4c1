/* config — settings from the environment with defaults (ARCHITECTURE §7).
 *
 * Ports: every default port is shifted by KESU_PORT_OFFSET (default 0), so
 * tests run a whole second system beside a running `make run`.
 * Every value read through cfg_* is remembered and printed by cfg_print,
 * secrets (names containing PASSWORD/TOKEN/SECRET) masked.
 */
#ifndef KESU_CONFIG_H
#define KESU_CONFIG_H
#include <stddef.h>

const char *cfg_str(const char *name, const char *def);
long cfg_long(const char *name, long def);
double cfg_double(const char *name, double def);
int cfg_port(int default_port); /* default_port + KESU_PORT_OFFSET */

/* "127.0.0.1:8080"-style HTTP listen address for a service:
 * KESU_<SVC>_HTTP, else 127.0.0.1:<default_port+offset>. Writes host/port. */
void cfg_http_listen(const char *svc_upper, int default_port, char *host, size_t hostlen, int *port);
/* ZeroMQ endpoint: KESU_<NAME> else tcp://127.0.0.1:<default_port+offset>. Returned
 * string is owned by config (static lifetime). */
const char *cfg_endpoint(const char *name, int default_port);
/* libpq conninfo for a service role: KESU_PG (default "dbname=kesu") plus
 * " user=kesu_<svc>". Static lifetime. */
const char *cfg_pg_conninfo(const char *svc);
void cfg_print(void);

/* Default ports (ISSUE 2). */
enum {
  PORT_INTAKE_HTTP = 8080, PORT_HANDLER_HTTP = 8081, PORT_ANALYTICS_HTTP = 8082,
  PORT_NOTIFIER_HTTP = 8083, PORT_SLA_HTTP = 8084, PORT_ROUTER_HTTP = 8085,
  PORT_INTAKE_PUB = 7100, PORT_INTAKE_REPLAY = 7101,
  PORT_ROUTER_PUB = 7110, PORT_ROUTER_REPLAY = 7111, PORT_ROUTER_DISPATCH = 7112,
  PORT_SLA_PUB = 7120, PORT_SLA_REPLAY = 7121,
};
#endif
