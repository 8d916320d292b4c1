/* reports — GET /v1/reports/{distribution,hot_issues,ledger,supervision}.
 *
 * Every report is one statement whose columns are described by a column
 * table (JSON key, Chinese CSV header, type), so JSON and CSV (UTF-8 with a
 * BOM, for Excel) come from the same rows. Region is the token's scope or a
 * subtree of it, as for the KPIs; periods are local (UTC+8) days.
 */
#include "reports.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "clock.h"
#include "valid.h"

static pg_conn *g_pg;

typedef struct {
  const char *key, *header;
  char type; /* s text, i integer, r real, t Unix ms → RFC3339 */
} col;

enum { MAXCOLS = 12 };

typedef struct {
  struct evhttp_request *req;
  const char *name;
  col cols[MAXCOLS];
  int ncols;
  bool csv;
  json_t *meta; /* the answer's other fields */
} rep_q;

static bool may_read(struct evhttp_request *req, const auth_ctx *auth) {
  if (strcmp(auth->role, "admin") != 0 && strcmp(auth->role, "viewer") != 0 &&
      strcmp(auth->role, "handler") != 0 && strcmp(auth->role, "centre") != 0) {
    http_reply_error(req, 403, "forbidden", "this token's role may not read reports", NULL);
    return false;
  }
  return true;
}

/* The region prefix pattern ("31%") within the token's scope; false after
 * replying 422/403. */
static bool region_like(struct evhttp_request *req, const auth_ctx *auth, json_t *meta,
                        char *like, size_t len) {
  char region[16];
  if (!effective_region(req, auth, http_query(req, "region"), region, sizeof region))
    return false;
  json_object_set_new(meta, "region", json_string(region));
  size_t n = strlen(region);
  while (n >= 2 && region[n - 1] == '0' && region[n - 2] == '0') region[n -= 2] = '\0';
  snprintf(like, len, "%s%%", region);
  return true;
}

/* from/to (YYYY-MM-DD, inclusive), default: the current local month. */
static bool period(struct evhttp_request *req, json_t *meta, char *from, char *to, size_t len) {
  const char *f = http_query(req, "from"), *t = http_query(req, "to");
  if (!f && !t) {
    char now[40];
    clock_format_ms(clock_now_ms(), now, sizeof now);
    snprintf(from, len, "%.8s01", now);
    snprintf(to, len, "%.10s", now);
  } else if (!f || !t) {
    http_reply_error(req, 422, "invalid_value", "from and to go together", f ? "to" : "from");
    return false;
  } else if (!valid_date(f) || !valid_date(t)) {
    http_reply_error(req, 422, "invalid_value", "dates are YYYY-MM-DD", "from");
    return false;
  } else {
    snprintf(from, len, "%s", f);
    snprintf(to, len, "%s", t);
  }
  json_object_set_new(meta, "from", json_string(from));
  json_object_set_new(meta, "to", json_string(to));
  return true;
}

static void csv_cell(struct evbuffer *b, const char *s, bool last) {
  if (strpbrk(s, ",\"\r\n")) {
    evbuffer_add(b, "\"", 1);
    for (const char *p = s; *p; p++) {
      if (*p == '"') evbuffer_add(b, "\"", 1);
      evbuffer_add(b, p, 1);
    }
    evbuffer_add(b, "\"", 1);
  } else {
    evbuffer_add(b, s, strlen(s));
  }
  evbuffer_add(b, last ? "\r\n" : ",", last ? 2 : 1);
}

static void on_report(const pg_result_set *rs, void *arg) {
  rep_q *q = arg;
  if (!rs->ok) {
    if (rs->sqlstate && strncmp(rs->sqlstate, "22", 2) == 0)
      http_reply_error(q->req, 422, "invalid_value", "invalid date", "from");
    else
      http_reply_error(q->req, 503, "unavailable", "database unavailable", NULL);
    goto out;
  }
  PGresult *r = rs->res[rs->n - 1];
  if (q->csv) {
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, "\xef\xbb\xbf", 3);
    for (int c = 0; c < q->ncols; c++) csv_cell(b, q->cols[c].header, c == q->ncols - 1);
    for (int i = 0; i < PQntuples(r); i++)
      for (int c = 0; c < q->ncols; c++) {
        char buf[48];
        const char *v = PQgetvalue(r, i, c);
        if (q->cols[c].type == 't' && !PQgetisnull(r, i, c)) {
          clock_format_ms(strtoll(v, NULL, 10), buf, sizeof buf);
          v = buf;
        }
        csv_cell(b, v, c == q->ncols - 1);
      }
    struct evkeyvalq *h = evhttp_request_get_output_headers(q->req);
    evhttp_add_header(h, "Content-Type", "text/csv; charset=utf-8");
    char disp[128];
    snprintf(disp, sizeof disp, "attachment; filename=\"%s.csv\"", q->name);
    evhttp_add_header(h, "Content-Disposition", disp);
    evhttp_send_reply(q->req, 200, "OK", b);
    evbuffer_free(b);
    goto out;
  }
  json_t *rows = json_array();
  for (int i = 0; i < PQntuples(r); i++) {
    json_t *row = json_object();
    for (int c = 0; c < q->ncols; c++) {
      const char *v = PQgetvalue(r, i, c);
      json_t *j;
      if (PQgetisnull(r, i, c))
        j = json_null();
      else if (q->cols[c].type == 'i')
        j = json_integer(strtoll(v, NULL, 10));
      else if (q->cols[c].type == 'r')
        j = json_real(strtod(v, NULL));
      else if (q->cols[c].type == 't') {
        char buf[48];
        clock_format_ms(strtoll(v, NULL, 10), buf, sizeof buf);
        j = json_string(buf);
      } else
        j = json_string(v);
      json_object_set_new(row, q->cols[c].key, j);
    }
    json_array_append_new(rows, row);
  }
  json_t *o = json_deep_copy(q->meta);
  json_object_set_new(o, "report", json_string(q->name));
  json_t *hdr = json_object();
  for (int c = 0; c < q->ncols; c++)
    json_object_set_new(hdr, q->cols[c].key, json_string(q->cols[c].header));
  json_object_set_new(o, "columns", hdr);
  json_object_set_new(o, "rows", rows);
  http_reply_json(q->req, 200, o);
out:
  json_decref(q->meta);
  free(q);
}

static rep_q *start(struct evhttp_request *req, const auth_ctx *auth, const char *name) {
  if (!may_read(req, auth)) return NULL;
  const char *fmt = http_query(req, "format");
  if (fmt && strcmp(fmt, "csv") != 0 && strcmp(fmt, "json") != 0) {
    http_reply_error(req, 422, "invalid_value", "format is json or csv", "format");
    return NULL;
  }
  rep_q *q = calloc(1, sizeof *q);
  q->req = req;
  q->name = name;
  q->csv = fmt && strcmp(fmt, "csv") == 0;
  q->meta = json_object();
  return q;
}

static void fail(rep_q *q) {
  json_decref(q->meta);
  free(q);
}

static void add_col(rep_q *q, const char *key, const char *header, char type) {
  q->cols[q->ncols++] = (col){key, header, type};
}

/* --- distribution ------------------------------------------------------- */

static const struct {
  const char *dim, *header;
} dist_dims[] = {
    {"channel", "渠道"},     {"business_type", "业务类型"}, {"customer_level", "客户级别/品牌"},
    {"tier", "投诉级别"},    {"region", "地区"},            {"unit", "责任单位"},
    {"stream", "投诉类别"},  {"kind", "工单类型"},
};
enum { NDIST = sizeof dist_dims / sizeof dist_dims[0] };
/* dimension filters shared with the KPIs (region is the scope) */
static const char *const filter_dims[] = {"channel", "business_type", "tier", "kind",
                                          "customer_level", "stream", "unit"};
enum { NFILTER = sizeof filter_dims / sizeof filter_dims[0] };

static void h_distribution(struct evhttp_request *req, const auth_ctx *auth, char **segs,
                           int nsegs, void *arg) {
  rep_q *q = start(req, auth, "distribution");
  if (!q) return;
  const char *dim = http_query(req, "dim");
  if (!dim) dim = "channel";
  char like[24], from[16], to[16];
  if (!region_like(req, auth, q->meta, like, sizeof like) ||
      !period(req, q->meta, from, to, sizeof from)) {
    fail(q);
    return;
  }
  const char *v[3 + NFILTER] = {from, to, like};
  json_t *filters = json_object();
  for (int i = 0; i < NFILTER; i++) {
    const char *f = http_query(req, filter_dims[i]);
    if (!f && strcmp(filter_dims[i], "kind") == 0) f = "complaint";
    if (f && strcmp(f, "all") == 0) f = NULL;
    if (f) json_object_set_new(filters, filter_dims[i], json_string(f));
    v[3 + i] = f;
  }
  json_object_set_new(q->meta, "filters", filters);
  json_object_set_new(q->meta, "dim", json_string(dim));
  char where[1024];
  int len = snprintf(where, sizeof where,
                     " FROM analytics.daily d WHERE d.day BETWEEN $1::date AND $2::date"
                     " AND d.region LIKE $3");
  for (int i = 0; i < NFILTER; i++)
    len += snprintf(where + len, sizeof where - (size_t)len,
                    " AND ($%d::text IS NULL OR d.%s = $%d)", 4 + i, filter_dims[i], 4 + i);
  char sql[2048];
  if (strcmp(dim, "result") == 0) {
    /* R-46 result status: 一次性办结 vs 转办结 (closed within limits), the rest */
    add_col(q, "result", "办结方式", 's');
    add_col(q, "label", "说明", 's');
    add_col(q, "orders", "工单数", 'i');
    add_col(q, "share", "占比", 'r');
    snprintf(sql, sizeof sql,
             "WITH t AS (SELECT coalesce(sum(d.first_contact), 0) AS a,"
             " coalesce(sum(d.transferred), 0) AS b, coalesce(sum(d.orders), 0) AS n%s)"
             " SELECT k, l, c, CASE WHEN n > 0 THEN c::numeric / n END FROM t,"
             " LATERAL (VALUES ('first_contact', '一次性办结', a), ('transferred', '转办结', b),"
             " ('other', '未按时办结或未办结', n - a - b)) x(k, l, c)",
             where);
  } else if (strcmp(dim, "satisfaction") == 0) {
    /* R-46 satisfaction: the latest callback's score, satisfied = 4–5 (as satisfaction_rate) */
    add_col(q, "satisfaction", "满意度", 's');
    add_col(q, "label", "说明", 's');
    add_col(q, "orders", "工单数", 'i');
    add_col(q, "share", "占比", 'r');
    snprintf(sql, sizeof sql,
             "WITH t AS (SELECT coalesce(sum(d.satisfied), 0) AS a,"
             " coalesce(sum(d.surveyed), 0) AS s, coalesce(sum(d.orders), 0) AS n%s)"
             " SELECT k, l, c, CASE WHEN n > 0 THEN c::numeric / n END FROM t,"
             " LATERAL (VALUES ('satisfied', '满意（4–5分）', a), ('dissatisfied',"
             " '不满意（1–3分）', s - a), ('not_surveyed', '未回访', n - s)) x(k, l, c)",
             where);
  } else if (strcmp(dim, "channel,business_type") == 0) {
    add_col(q, "channel", "渠道", 's');
    add_col(q, "business_type", "业务类型", 's');
    add_col(q, "orders", "工单数", 'i');
    add_col(q, "share", "渠道内占比", 'r');
    snprintf(sql, sizeof sql,
             "SELECT d.channel, d.business_type, sum(d.orders), sum(d.orders)::numeric /"
             " sum(sum(d.orders)) OVER (PARTITION BY d.channel)%s"
             " GROUP BY d.channel, d.business_type HAVING sum(d.orders) > 0"
             " ORDER BY d.channel, sum(d.orders) DESC, d.business_type",
             where);
  } else {
    int k = -1;
    for (int i = 0; i < NDIST; i++)
      if (strcmp(dist_dims[i].dim, dim) == 0) k = i;
    if (k < 0) {
      http_reply_error(req, 422, "invalid_value",
                       "dim is one of channel, business_type, customer_level, tier, region, unit,"
                       " stream, kind, result, satisfaction, channel,business_type",
                       "dim");
      fail(q);
      return;
    }
    add_col(q, dist_dims[k].dim, dist_dims[k].header, 's');
    add_col(q, "orders", "工单数", 'i');
    add_col(q, "share", "占比", 'r');
    snprintf(sql, sizeof sql,
             "SELECT d.%s, sum(d.orders), sum(d.orders)::numeric / sum(sum(d.orders)) OVER ()%s"
             " GROUP BY d.%s HAVING sum(d.orders) > 0 ORDER BY sum(d.orders) DESC, d.%s",
             dist_dims[k].dim, where, dist_dims[k].dim, dist_dims[k].dim);
  }
  pg_tx *tx = pg_tx_new();
  pg_tx_add(tx, sql, 3 + NFILTER, v, NULL, NULL);
  pg_conn_submit(g_pg, tx, on_report, q);
}

/* --- hot issues ----------------------------------------------------------- */

static void h_hot_issues(struct evhttp_request *req, const auth_ctx *auth, char **segs,
                         int nsegs, void *arg) {
  rep_q *q = start(req, auth, "hot_issues");
  if (!q) return;
  char like[24], from[16], to[16], lim[16];
  if (!region_like(req, auth, q->meta, like, sizeof like) ||
      !period(req, q->meta, from, to, sizeof from)) {
    fail(q);
    return;
  }
  const char *l = http_query(req, "limit");
  long n = l ? strtol(l, NULL, 10) : 10;
  if (n < 1 || n > 100) {
    http_reply_error(req, 422, "invalid_value", "limit is 1 … 100", "limit");
    fail(q);
    return;
  }
  snprintf(lim, sizeof lim, "%ld", n);
  const char *bt = http_query(req, "business_type");
  if (bt) json_object_set_new(q->meta, "business_type", json_string(bt));
  /* the most frequent problem types, then the most frequent two-character
   * Chinese words of the titles (each counted once per order) */
  add_col(q, "type", "类别", 's');
  add_col(q, "issue", "热点问题", 's');
  add_col(q, "orders", "工单数", 'i');
  const char *v[5] = {from, to, like, lim, bt};
  static const char *const sql =
      "WITH o AS (SELECT o.order_no, coalesce(o.problem_type, '') AS problem_type,"
      " coalesce(o.title, '') AS title FROM analytics.orders o"
      " WHERE o.received_at >= ($1::date::timestamp AT TIME ZONE INTERVAL '+08:00')"
      " AND o.received_at < (($2::date + 1)::timestamp AT TIME ZONE INTERVAL '+08:00')"
      " AND o.region LIKE $3 AND coalesce(o.kind, 'complaint') = 'complaint'"
      " AND ($5::text IS NULL OR o.business_type = $5)),"
      " p AS (SELECT 'problem_type' AS type, problem_type AS issue, count(*) AS n FROM o"
      " WHERE problem_type <> '' GROUP BY problem_type ORDER BY n DESC, issue LIMIT $4::int),"
      " w AS (SELECT 'keyword' AS type, kw AS issue, count(DISTINCT order_no) AS n FROM o,"
      " LATERAL (SELECT substr(o.title, i, 2) AS kw FROM generate_series(1,"
      " greatest(char_length(o.title) - 1, 0)) i) k WHERE kw ~ '^[一-鿿]{2}$'"
      " GROUP BY kw ORDER BY n DESC, issue LIMIT $4::int)"
      " SELECT * FROM p UNION ALL SELECT * FROM w";
  /* ORDER BY inside the CTEs holds: a UNION ALL of two CTE scans keeps their order */
  pg_tx *tx = pg_tx_new();
  pg_tx_add(tx, sql, 5, v, NULL, NULL);
  pg_conn_submit(g_pg, tx, on_report, q);
}

/* --- ledger and supervision records -------------------------------------- */

static bool month_arg(struct evhttp_request *req, rep_q *q, char *first, size_t len) {
  const char *m = http_query(req, "month");
  char now[40];
  if (!m) {
    clock_format_ms(clock_now_ms(), now, sizeof now);
    now[7] = '\0';
    m = now;
  }
  if (!valid_date_n(m, 7)) {
    http_reply_error(req, 422, "invalid_value", "month is YYYY-MM", "month");
    return false;
  }
  json_object_set_new(q->meta, "month", json_string(m));
  snprintf(first, len, "%.7s-01", m);
  return true;
}

static void h_ledger(struct evhttp_request *req, const auth_ctx *auth, char **segs, int nsegs,
                     void *arg) {
  rep_q *q = start(req, auth, "ledger");
  if (!q) return;
  char like[24], first[16];
  if (!region_like(req, auth, q->meta, like, sizeof like) ||
      !month_arg(req, q, first, sizeof first)) {
    fail(q);
    return;
  }
  add_col(q, "unit", "责任单位", 's');
  add_col(q, "orders", "投诉工单", 'i');
  add_col(q, "closed", "已办结", 'i');
  add_col(q, "closed_in_limit", "按时办结", 'i');
  add_col(q, "on_time_closure_rate", "按时办结率", 'r');
  add_col(q, "warnings", "预警", 'i');
  add_col(q, "breaches", "超时", 'i');
  add_col(q, "escalations", "升级督办", 'i');
  const char *bt = http_query(req, "business_type");
  if (bt) json_object_set_new(q->meta, "business_type", json_string(bt));
  const char *v[3] = {first, like, bt};
  static const char *const sql =
      "WITH m AS (SELECT $1::date AS f, ($1::date + interval '1 month')::date AS t),"
      " a AS (SELECT d.unit, sum(d.orders) AS orders, sum(d.closed) AS closed,"
      " sum(d.closed_in_limit) AS in_limit FROM analytics.daily d, m"
      " WHERE d.day >= m.f AND d.day < m.t AND d.region LIKE $2 AND d.kind = 'complaint'"
      " AND ($3::text IS NULL OR d.business_type = $3)"
      " GROUP BY d.unit HAVING sum(d.orders) > 0),"
      " s AS (SELECT s.unit, count(*) FILTER (WHERE s.event = 'warning') AS w,"
      " count(*) FILTER (WHERE s.event = 'breached') AS b,"
      " count(*) FILTER (WHERE s.event = 'escalated') AS e"
      " FROM analytics.supervision s LEFT JOIN analytics.orders o ON o.order_no = s.order_no, m"
      " WHERE (s.at AT TIME ZONE INTERVAL '+08:00')::date >= m.f"
      " AND (s.at AT TIME ZONE INTERVAL '+08:00')::date < m.t"
      " AND coalesce(nullif(s.region, ''), o.region, '') LIKE $2"
      " AND ($3::text IS NULL OR o.business_type = $3) GROUP BY s.unit)"
      " SELECT coalesce(a.unit, s.unit), coalesce(a.orders, 0), coalesce(a.closed, 0),"
      " coalesce(a.in_limit, 0), CASE WHEN a.orders > 0 THEN a.in_limit::numeric / a.orders END,"
      " coalesce(s.w, 0), coalesce(s.b, 0), coalesce(s.e, 0)"
      " FROM a FULL JOIN s ON s.unit = a.unit ORDER BY 1";
  pg_tx *tx = pg_tx_new();
  pg_tx_add(tx, sql, 3, v, NULL, NULL);
  pg_conn_submit(g_pg, tx, on_report, q);
}

static void h_supervision(struct evhttp_request *req, const auth_ctx *auth, char **segs,
                          int nsegs, void *arg) {
  rep_q *q = start(req, auth, "supervision");
  if (!q) return;
  char like[24], first[16];
  if (!region_like(req, auth, q->meta, like, sizeof like) ||
      !month_arg(req, q, first, sizeof first)) {
    fail(q);
    return;
  }
  const char *unit = http_query(req, "unit"), *event = http_query(req, "event");
  if (event && strcmp(event, "warning") && strcmp(event, "breached") &&
      strcmp(event, "escalated")) {
    http_reply_error(req, 422, "invalid_value", "event is warning, breached or escalated",
                     "event");
    fail(q);
    return;
  }
  if (unit) json_object_set_new(q->meta, "unit", json_string(unit));
  add_col(q, "order_no", "工单号", 's');
  add_col(q, "event", "督办类型", 's');
  add_col(q, "step", "环节", 's');
  add_col(q, "unit", "责任单位", 's');
  add_col(q, "to_unit", "升级至", 's');
  add_col(q, "region", "地区", 's');
  add_col(q, "at", "发生时间", 't');
  add_col(q, "due_at", "时限", 't');
  const char *bt = http_query(req, "business_type");
  if (bt) json_object_set_new(q->meta, "business_type", json_string(bt));
  const char *v[5] = {first, like, unit, event, bt};
  static const char *const sql =
      "SELECT s.order_no, s.event, s.step, s.unit, s.to_unit,"
      " coalesce(nullif(s.region, ''), o.region, ''),"
      " (extract(epoch FROM s.at) * 1000)::bigint, (extract(epoch FROM s.due_at) * 1000)::bigint"
      " FROM analytics.supervision s LEFT JOIN analytics.orders o ON o.order_no = s.order_no"
      " WHERE s.at >= ($1::date::timestamp AT TIME ZONE INTERVAL '+08:00')"
      " AND s.at < (($1::date + interval '1 month')::timestamp AT TIME ZONE INTERVAL '+08:00')"
      " AND coalesce(nullif(s.region, ''), o.region, '') LIKE $2"
      " AND ($3::text IS NULL OR s.unit = $3) AND ($4::text IS NULL OR s.event = $4)"
      " AND ($5::text IS NULL OR o.business_type = $5)"
      " ORDER BY s.at, s.order_no, s.seq LIMIT 10000";
  pg_tx *tx = pg_tx_new();
  pg_tx_add(tx, sql, 5, v, NULL, NULL);
  pg_conn_submit(g_pg, tx, on_report, q);
}

void reports_routes(http_server *http, pg_conn *pg) {
  g_pg = pg;
  http_route(http, EVHTTP_REQ_GET, "/v1/reports/distribution", 0, h_distribution, NULL);
  http_route(http, EVHTTP_REQ_GET, "/v1/reports/hot_issues", 0, h_hot_issues, NULL);
  http_route(http, EVHTTP_REQ_GET, "/v1/reports/ledger", 0, h_ledger, NULL);
  http_route(http, EVHTTP_REQ_GET, "/v1/reports/supervision", 0, h_supervision, NULL);
}
