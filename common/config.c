/* config — environment with defaults; every value read is remembered for cfg_print. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

enum { CFG_MAX = 64 };
static struct {
  char name[64];
  char value[512];
} seen[CFG_MAX];
static int nseen;

static void remember(const char *name, const char *value) {
  for (int i = 0; i < nseen; i++)
    if (strcmp(seen[i].name, name) == 0) return;
  if (nseen == CFG_MAX) return;
  snprintf(seen[nseen].name, sizeof seen[nseen].name, "%s", name);
  snprintf(seen[nseen].value, sizeof seen[nseen].value, "%s", value ? value : "");
  nseen++;
}

const char *cfg_str(const char *name, const char *def) {
  const char *v = getenv(name);
  if (!v || !*v) v = def;
  remember(name, v);
  return v;
}

long cfg_long(const char *name, long def) {
  const char *v = getenv(name);
  long r = def;
  if (v && *v) {
    char *end;
    long x = strtol(v, &end, 10);
    if (*end == '\0')
      r = x;
    else
      log_warn("config: %s=%s is not an integer, using %ld", name, v, def);
  }
  char buf[32];
  snprintf(buf, sizeof buf, "%ld", r);
  remember(name, buf);
  return r;
}

double cfg_double(const char *name, double def) {
  const char *v = getenv(name);
  double r = def;
  if (v && *v) {
    char *end;
    double x = strtod(v, &end);
    if (*end == '\0')
      r = x;
    else
      log_warn("config: %s=%s is not a number, using %g", name, v, def);
  }
  char buf[32];
  snprintf(buf, sizeof buf, "%g", r);
  remember(name, buf);
  return r;
}

int cfg_port(int default_port) { return default_port + (int)cfg_long("KESU_PORT_OFFSET", 0); }

void cfg_http_listen(const char *svc_upper, int default_port, char *host, size_t hostlen,
                     int *port) {
  char name[64];
  snprintf(name, sizeof name, "KESU_%s_HTTP", svc_upper);
  const char *v = cfg_str(name, NULL);
  snprintf(host, hostlen, "127.0.0.1");
  *port = cfg_port(default_port);
  if (!v) return;
  const char *colon = strrchr(v, ':');
  if (colon) {
    size_t hl = (size_t)(colon - v);
    if (hl > 0 && hl < hostlen) {
      memcpy(host, v, hl);
      host[hl] = '\0';
    }
    *port = atoi(colon + 1);
  } else {
    *port = atoi(v);
  }
}

const char *cfg_endpoint(const char *name, int default_port) {
  static char store[16][128];
  static int nstore;
  char full[64];
  if (strncmp(name, "KESU_", 5) == 0)
    snprintf(full, sizeof full, "%s", name);
  else
    snprintf(full, sizeof full, "KESU_%s", name);
  const char *v = getenv(full);
  if (v && *v) {
    remember(full, v);
    return v;
  }
  if (nstore == 16) return "tcp://127.0.0.1:0";
  char *s = store[nstore++];
  snprintf(s, 128, "tcp://127.0.0.1:%d", cfg_port(default_port));
  remember(full, s);
  return s;
}

const char *cfg_pg_conninfo(const char *svc) {
  static char buf[1024];
  const char *base = cfg_str("KESU_PG", "dbname=kesu");
  snprintf(buf, sizeof buf, "%s user=kesu_%s application_name=kesu-%s", base, svc, svc);
  return buf;
}

static int secret(const char *name) {
  return strstr(name, "PASSWORD") || strstr(name, "TOKEN") || strstr(name, "SECRET");
}

void cfg_print(void) {
  for (int i = 0; i < nseen; i++)
    log_info("config %s=%s", seen[i].name, secret(seen[i].name) ? "****" : seen[i].value);
}
