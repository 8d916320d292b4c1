/* web — the ops dashboard's static files: the page itself from
 * services/analytics/web/ and ECharts from node_modules (fetched by npm at
 * build time, not committed). Public: the data behind it needs a token.
 *
 * Also the dashboard's trend of the complaint counts, GET /v1/dashboard/trend
 * (a KPI's trend is GET /v1/kpi/{name}/trend, kpi.c): per local day (from the daily rollup) or
 * per local hour of one day (from analytics.orders by received_at, indexed).
 * It reads through a connection of its own, opened on first use on the
 * request's event base. */
#include "web.h"

#include <event2/buffer.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/http.h>
#include <jansson.h>
#include <stdlib.h>

#include "auth.h"
#include "clock.h"
#include "config.h"
#include "log.h"
#include "pg.h"
#include "valid.h"

static const char *content_type(const char *name) {
  const char *dot = strrchr(name, '.');
  if (!dot) return "application/octet-stream";
  if (strcmp(dot, ".csv") == 0) return "text/csv; charset=utf-8";
  if (strcmp(dot, ".html") == 0) return "text/html; charset=utf-8";
  if (strcmp(dot, ".js") == 0) return "text/javascript; charset=utf-8";
  if (strcmp(dot, ".css") == 0) return "text/css; charset=utf-8";
  if (strcmp(dot, ".svg") == 0) return "image/svg+xml";
  if (strcmp(dot, ".png") == 0) return "image/png";
  return "application/octet-stream";
}

/* Only plain names: letters, digits, '-', '_', '.', not starting with '.'. */
static bool safe_name(const char *s) {
  if (!*s || *s == '.') return false;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
          *s == '-' || *s == '_' || *s == '.'))
      return false;
  return true;
}

static void send_file(struct evhttp_request *req, const char *path, const char *ctype) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    if (fd >= 0) close(fd);
    http_reply_error(req, 404, "not_found", "no such file", NULL);
    return;
  }
  struct evbuffer *out = evbuffer_new();
  evbuffer_add_file(out, fd, 0, st.st_size); /* takes fd */
  struct evkeyvalq *h = evhttp_request_get_output_headers(req);
  evhttp_add_header(h, "Content-Type", ctype);
  evhttp_add_header(h, "Cache-Control", "no-cache");
  evhttp_send_reply(req, 200, "OK", out);
  evbuffer_free(out);
}

static const char *home(void) { return cfg_str("KESU_HOME", "."); }

static void h_index(struct evhttp_request *req, const auth_ctx *auth, char **segs, int n,
                    void *arg) {
  char path[1024];
  snprintf(path, sizeof path, "%s/services/analytics/web/index.html", home());
  send_file(req, path, content_type(path));
}

static void h_asset(struct evhttp_request *req, const auth_ctx *auth, char **segs, int n,
                    void *arg) {
  if (!safe_name(segs[0])) {
    http_reply_error(req, 404, "not_found", "no such file", NULL);
    return;
  }
  char path[1024];
  snprintf(path, sizeof path, "%s/services/analytics/web/%s", home(), segs[0]);
  send_file(req, path, content_type(path));
}

static void h_echarts(struct evhttp_request *req, const auth_ctx *auth, char **segs, int n,
                      void *arg) {
  char path[1024];
  snprintf(path, sizeof path, "%s/node_modules/echarts/dist/echarts.min.js", home());
  if (access(path, R_OK) != 0) {
    log_warn("dashboard: %s missing (run `make web`)", path);
    http_reply_error(req, 404, "not_found", "echarts is not installed: run `make web`", NULL);
    return;
  }
  send_file(req, path, content_type(path));
}

/* The reference data the page names codes with (units, regions, business
 * and problem types), straight from data/: only these four files. */
static void h_names(struct evhttp_request *req, const auth_ctx *auth, char **segs, int n,
                    void *arg) {
  static const char *const files[] = {"units", "regions", "business_types", "problem_types"};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
    if (strcmp(segs[0], files[i]) == 0) {
      char path[1024];
      snprintf(path, sizeof path, "%s/data/%s.csv", home(), files[i]);
      send_file(req, path, content_type(path));
      return;
    }
  http_reply_error(req, 404, "not_found", "names are units, regions, business_types or problem_types", NULL);
}

/* --- trend ------------------------------------------------------------------ */

static pg_conn *g_pg; /* analytics' connection, from web_routes */

typedef struct {
  struct evhttp_request *req;
  json_t *o;
} trend_q;

static void on_trend(const pg_result_set *rs, void *arg) {
  trend_q *q = arg;
  if (!rs->ok) {
    if (rs->sqlstate && strncmp(rs->sqlstate, "22", 2) == 0)
      http_reply_error(q->req, 422, "invalid_value", "invalid date", "date");
    else
      http_reply_error(q->req, 503, "unavailable", "database unavailable", NULL);
    json_decref(q->o);
    free(q);
    return;
  }
  PGresult *r = rs->res[rs->n - 1];
  json_t *rows = json_array();
  for (int i = 0; i < PQntuples(r); i++)
    json_array_append_new(
        rows, json_pack("{s:s, s:I, s:I, s:I}", "t", PQgetvalue(r, i, 0), "received",
                        (json_int_t)strtoll(PQgetvalue(r, i, 1), NULL, 10), "closed",
                        (json_int_t)strtoll(PQgetvalue(r, i, 2), NULL, 10), "closed_in_limit",
                        (json_int_t)strtoll(PQgetvalue(r, i, 3), NULL, 10)));
  json_object_set_new(q->o, "rows", rows);
  http_reply_json(q->req, 200, q->o);
  free(q);
}

/* GET /v1/dashboard/trend?granularity=day|hour&date=YYYY-MM-DD&days=N&region=
 * day: the N (1…92, default 14) local days ending at date (default today);
 * hour: the 24 hours of date. Orders count in the bucket of their acceptance
 * (as the KPIs): received, closed since, closed with no step breached. */
static void h_trend(struct evhttp_request *req, const auth_ctx *auth, char **segs, int n,
                    void *arg) {
  (void)segs, (void)n, (void)arg;
  if (strcmp(auth->role, "admin") != 0 && strcmp(auth->role, "viewer") != 0 &&
      strcmp(auth->role, "handler") != 0 && strcmp(auth->role, "centre") != 0) {
    http_reply_error(req, 403, "forbidden", "this token's role may not read KPIs", NULL);
    return;
  }
  const char *gran = http_query(req, "granularity");
  if (!gran) gran = "day";
  bool hourly = strcmp(gran, "hour") == 0;
  if (!hourly && strcmp(gran, "day") != 0) {
    http_reply_error(req, 422, "invalid_value", "granularity is day or hour", "granularity");
    return;
  }
  char today[40];
  clock_format_ms(clock_now_ms(), today, sizeof today);
  today[10] = '\0';
  const char *date = http_query(req, "date");
  if (!date) date = today;
  if (!valid_date(date)) {
    http_reply_error(req, 422, "invalid_value", "date is YYYY-MM-DD", "date");
    return;
  }
  long days;
  if (!query_days(req, &days)) return;
  char region[16];
  if (!effective_region(req, auth, http_query(req, "region"), region, sizeof region)) return;
  trend_q *q = calloc(1, sizeof *q);
  q->req = req;
  q->o = json_pack("{s:s, s:s, s:s}", "granularity", hourly ? "hour" : "day", "date", date,
                   "region", region);
  char like[24], ndays[16];
  size_t len = strlen(region);
  while (len >= 2 && region[len - 1] == '0' && region[len - 2] == '0') region[len -= 2] = '\0';
  snprintf(like, sizeof like, "%s%%", region);
  snprintf(ndays, sizeof ndays, "%ld", days);
  const char *v[3] = {date, like, ndays};
  static const char *const sql_day =
      "SELECT to_char(g.day, 'YYYY-MM-DD'), coalesce(x.received, 0), coalesce(x.closed, 0),"
      " coalesce(x.in_limit, 0) FROM (SELECT ($1::date - i) AS day FROM"
      " generate_series(0, $3::int - 1) i) g LEFT JOIN (SELECT d.day, sum(d.orders) AS received,"
      " sum(d.closed) AS closed, sum(d.closed_in_limit) AS in_limit FROM analytics.daily d"
      " WHERE d.day BETWEEN $1::date - ($3::int - 1) AND $1::date AND d.region LIKE $2"
      " GROUP BY d.day) x ON x.day = g.day ORDER BY g.day";
  static const char *const sql_hour =
      "SELECT lpad(g.h::text, 2, '0') || ':00', coalesce(x.received, 0), coalesce(x.closed, 0),"
      " coalesce(x.in_limit, 0) FROM generate_series(0, 23) g(h) LEFT JOIN (SELECT"
      " extract(hour FROM o.received_at AT TIME ZONE INTERVAL '+08:00')::int AS h,"
      " count(*) AS received, count(o.closed_at) AS closed,"
      " count(*) FILTER (WHERE o.closed_at IS NOT NULL AND o.breached_at IS NULL) AS in_limit"
      " FROM analytics.orders o"
      " WHERE o.received_at >= ($1::date::timestamp AT TIME ZONE INTERVAL '+08:00')"
      " AND o.received_at < (($1::date + 1)::timestamp AT TIME ZONE INTERVAL '+08:00')"
      " AND o.region LIKE $2 AND $3::int > 0 GROUP BY 1) x ON x.h = g.h ORDER BY g.h";
  if (!hourly) json_object_set_new(q->o, "days", json_integer(days));
  pg_tx *tx = pg_tx_new();
  pg_tx_add(tx, hourly ? sql_hour : sql_day, 3, v, NULL, NULL);
  pg_conn_submit(g_pg, tx, on_trend, q);
}

void web_routes(http_server *http, pg_conn *pg) {
  g_pg = pg;
  http_route(http, EVHTTP_REQ_GET, "/", HTTP_PUBLIC, h_index, NULL);
  http_route(http, EVHTTP_REQ_GET, "/dashboard", HTTP_PUBLIC, h_index, NULL);
  http_route(http, EVHTTP_REQ_GET, "/web/*", HTTP_PUBLIC, h_asset, NULL);
  http_route(http, EVHTTP_REQ_GET, "/vendor/echarts.min.js", HTTP_PUBLIC, h_echarts, NULL);
  http_route(http, EVHTTP_REQ_GET, "/v1/dashboard/trend", 0, h_trend, NULL);
  http_route(http, EVHTTP_REQ_GET, "/v1/dashboard/names/*", 0, h_names, NULL);
}
