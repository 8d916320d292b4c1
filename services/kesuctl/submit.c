/* kesuctl submit — POST a complaint to intake's /v1/complaints with libcurl. */
#include <curl/curl.h>
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "kesuctl.h"

typedef struct {
  char *p;
  size_t n;
} membuf;

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg) {
  membuf *b = arg;
  size_t len = size * nmemb;
  b->p = realloc(b->p, b->n + len + 1);
  memcpy(b->p + b->n, data, len);
  b->n += len;
  b->p[b->n] = '\0';
  return len;
}

static void submit_usage(void) {
  fprintf(stderr,
          "usage: kesuctl submit [--url BASE] [--token TOKEN] [--idempotency-key KEY]\n"
          "                      (--json FILE|- | --channel CH --name NAME --phone PHONE\n"
          "                       --region CODE --business CODE --title TEXT --content TEXT\n"
          "                       [--problem CODE] [--kind KIND] [--tier TIER] [--stream S]\n"
          "                       [--home-region CODE (default: --region)] [--address TEXT]\n"
          "                       [--level LEVEL])\n"
          "  BASE default http://127.0.0.1:<8080+KESU_PORT_OFFSET> (or KESU_INTAKE_HTTP);\n"
          "  TOKEN default: the contents of $KESU_HOME/var/admin.token\n"
          "  (var/admin-<KESU_PORT_OFFSET>.token when the offset is not 0)\n");
}

static char *trim(char *s) {
  while (isspace((unsigned char)*s)) s++;
  size_t n = strlen(s);
  while (n && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
  return s;
}

int cmd_submit(int argc, char **argv) {
  const char *url = NULL, *token = NULL, *json_file = NULL, *idem = NULL;
  /* flag → JSON field ("customer." = nested). */
  static const struct {
    const char *flag, *field;
  } map[] = {
      {"--channel", "channel"},        {"--kind", "kind"},
      {"--tier", "tier"},              {"--stream", "stream"},
      {"--name", "customer.name"},     {"--phone", "customer.phone"},
      {"--home-region", "customer.home_region"},
      {"--address", "customer.address"}, {"--level", "customer.level"},
      {"--region", "region"},          {"--business", "business_type"},
      {"--problem", "problem_type"},   {"--title", "title"},
      {"--content", "content"},
  };
  enum { NMAP = sizeof map / sizeof map[0] };
  const char *vals[NMAP] = {0};
  bool any_flag = false;
  for (int i = 1; i < argc; i++) {
    int m;
    if ((m = ctl_opt(argc, argv, &i, "--url", &url)) ||
        (m = ctl_opt(argc, argv, &i, "--token", &token)) ||
        (m = ctl_opt(argc, argv, &i, "--json", &json_file)) ||
        (m = ctl_opt(argc, argv, &i, "--idempotency-key", &idem))) {
      if (m < 0) return EXIT_USAGE;
      continue;
    }
    bool matched = false;
    for (int k = 0; k < NMAP && !matched; k++) {
      m = ctl_opt(argc, argv, &i, map[k].flag, &vals[k]);
      if (m < 0) return EXIT_USAGE;
      if (m > 0) matched = any_flag = true;
    }
    if (!matched) {
      ctl_err("submit: unknown argument '%s'", argv[i]);
      submit_usage();
      return EXIT_USAGE;
    }
  }
  if (json_file && any_flag) {
    ctl_err("submit: give either --json or the field flags, not both");
    return EXIT_USAGE;
  }
  if (!json_file && !any_flag) {
    submit_usage();
    return EXIT_USAGE;
  }

  char *body = NULL;
  if (json_file) {
    body = ctl_read_file(json_file, NULL);
    if (!body) {
      ctl_err("submit: cannot read %s: %s", json_file, strerror(errno));
      return EXIT_FAIL;
    }
  } else {
    json_t *o = json_object(), *cust = NULL;
    for (int k = 0; k < NMAP; k++) {
      if (!vals[k]) continue;
      json_t *s = json_string(vals[k]);
      if (!s) {
        ctl_err("submit: %s is not valid UTF-8", map[k].flag);
        json_decref(o);
        json_decref(cust);
        return EXIT_USAGE;
      }
      if (strncmp(map[k].field, "customer.", 9) == 0) {
        if (!cust) cust = json_object();
        json_object_set_new(cust, map[k].field + 9, s);
      } else {
        json_object_set_new(o, map[k].field, s);
      }
    }
    /* The customer's home region defaults to where the complaint is raised. */
    const char *region = json_string_value(json_object_get(o, "region"));
    if (region && cust && !json_object_get(cust, "home_region"))
      json_object_set_new(cust, "home_region", json_string(region));
    if (cust) json_object_set_new(o, "customer", cust);
    body = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
  }

  /* Defaults: intake's address and the admin token. */
  char base[256];
  if (url) {
    snprintf(base, sizeof base, "%s", url);
  } else {
    char host[128];
    int port;
    cfg_http_listen("INTAKE", PORT_INTAKE_HTTP, host, sizeof host, &port);
    snprintf(base, sizeof base, "http://%s:%d", host, port);
  }
  size_t bl = strlen(base);
  while (bl && base[bl - 1] == '/') base[--bl] = '\0';
  char *token_buf = NULL;
  if (!token) {
    /* run.sh writes var/admin.token (var/admin-<offset>.token at an offset). */
    const char *off = getenv("KESU_PORT_OFFSET");
    char rel[64] = "var/admin.token";
    if (off && *off && strcmp(off, "0") != 0) snprintf(rel, sizeof rel, "var/admin-%s.token", off);
    char *path = ctl_path(rel);
    token_buf = ctl_read_file(path, NULL);
    if (!token_buf) {
      ctl_err("submit: no --token and cannot read %s: %s", path, strerror(errno));
      free(path);
      free(body);
      return EXIT_USAGE;
    }
    free(path);
    token = trim(token_buf);
  }

  char endpoint[300], auth[256], idem_hdr[300];
  snprintf(endpoint, sizeof endpoint, "%s/v1/complaints", base);
  snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  CURL *h = curl_easy_init();
  struct curl_slist *hdrs = NULL;
  hdrs = curl_slist_append(hdrs, "Content-Type: application/json; charset=utf-8");
  hdrs = curl_slist_append(hdrs, "Accept: application/json");
  hdrs = curl_slist_append(hdrs, auth);
  if (idem) {
    snprintf(idem_hdr, sizeof idem_hdr, "Idempotency-Key: %s", idem);
    hdrs = curl_slist_append(hdrs, idem_hdr);
  }
  membuf resp = {0};
  curl_easy_setopt(h, CURLOPT_URL, endpoint);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
  curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 5L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  CURLcode cc = curl_easy_perform(h);
  long status = 0;
  int rc = EXIT_OK;
  if (cc != CURLE_OK) {
    ctl_err("submit: POST %s: %s (is kesu-intake running?)", endpoint, curl_easy_strerror(cc));
    rc = EXIT_FAIL;
  } else {
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    const char *text = resp.p ? resp.p : "";
    if (status >= 200 && status < 300) {
      fputs(text, stdout);
      if (!*text || text[strlen(text) - 1] != '\n') putchar('\n');
    } else {
      json_t *j = json_loads(text, 0, NULL);
      json_t *e = j ? json_object_get(j, "error") : NULL;
      const char *code = json_string_value(json_object_get(e, "code"));
      const char *msg = json_string_value(json_object_get(e, "message"));
      const char *field = json_string_value(json_object_get(e, "field"));
      if (code)
        ctl_err("submit: HTTP %ld %s: %s%s%s%s", status, code, msg ? msg : "",
                field ? " (field " : "", field ? field : "", field ? ")" : "");
      else
        ctl_err("submit: HTTP %ld: %s", status, text);
      json_decref(j);
      rc = EXIT_FAIL;
    }
  }
  curl_slist_free_all(hdrs);
  curl_easy_cleanup(h);
  curl_global_cleanup();
  free(resp.p);
  free(body);
  free(token_buf);
  return rc;
}
