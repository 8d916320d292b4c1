/* kpi — SPEC §8 KPIs (R-42 … R-45) from analytics.daily.
 *
 * Every KPI is numerator ÷ denominator of rollup counters over the days of a
 * period (local acceptance day), grouped by any of the dimensions, with the
 * previous period (环比) and the same period last year (同比) in the same
 * answer. KPIs the events cannot support yet are listed with the reason and
 * answer 409 — never a made-up number.
 */
#include "kpi.h"

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

enum {
  C_ORDERS, C_CLOSED, C_IN_LIMIT, C_FIRST, C_TRANSFERRED, C_VALID, C_DELAYED, C_DELAY_MS,
  C_HANDLING_MS, C_PROMISED_OK, C_SURVEYED, C_SATISFIED, C_QUALITY_OK, C_SERVICE, NC
};
static const char *const counter_cols[NC] = {
    "orders", "closed", "closed_in_limit", "first_contact", "transferred",
    "valid_flow", "delayed", "delay_ms", "handling_ms", "promised_ok",
    "surveyed", "satisfied", "quality_ok", "service"};

enum {
  SRC_ROLLUP, SRC_NONE, SRC_CUSTOMERS, SRC_CALLS, SRC_AGENT_VOLUME, SRC_AGENT_QUALITY,
  SRC_STEP_DELAY /* avg_delay with group_by=step */
};

typedef struct {
  const char *name, *title, *formula;
  double reference; /* < 0: SPEC gives none */
  const char *unit; /* "ratio", "seconds" or "count" */
  int num, den;     /* rollup counters (SRC_ROLLUP) */
  const char *stream; /* forced stream filter, or NULL */
  const char *missing; /* SRC_NONE: why not computable */
  int src;
  const char *numerator, *denominator; /* what they count */
} kpi_def;

static const kpi_def kpis[] = {
    {"complaint_rate", "客户投诉率",
     "complaints about a business (or one attribute of it) ÷ customers using that business"
     " (loaded customer counts)",
     -1, "ratio", -1, -1, NULL, NULL, SRC_CUSTOMERS,
     "complaint orders accepted in the period (kind complaint)",
     "customers using the business (data/analytics_customers.csv)"},
    {"on_time_closure_rate", "投诉按时办结率",
     "orders closed within the stipulated time (no SLA step breached) ÷ complaint orders", -1,
     "ratio", C_IN_LIMIT, C_ORDERS, NULL, NULL, SRC_ROLLUP,
     "orders closed with no SLA step breached", "complaint orders accepted in the period"},
    {"first_contact_closure_rate", "投诉问题一次性办结率",
     "orders closed within the limit without any dispatch after the first assignment ÷ complaint"
     " orders",
     -1, "ratio", C_FIRST, C_ORDERS, NULL, NULL, SRC_ROLLUP,
     "orders closed in limit with no move after the first assignment",
     "complaint orders accepted in the period"},
    {"transfer_closure_rate", "转相关部门办结率",
     "orders closed within the limit after a dispatch, transfer, return or escalation ÷ complaint"
     " orders (complement of first_contact_closure_rate within on-time closures)",
     -1, "ratio", C_TRANSFERRED, C_ORDERS, NULL, NULL, SRC_ROLLUP,
     "orders closed in limit after at least one move", "complaint orders accepted in the period"},
    {"satisfaction_rate", "投诉客户满意度",
     "satisfied customers ÷ customers surveyed (the latest survey of each order, at the answer or"
     " the callback; satisfied = 4 or 5 of 5)",
     -1, "ratio", C_SATISFIED, C_SURVEYED, NULL, NULL, SRC_ROLLUP,
     "complaint orders whose latest survey (answer or callback) is 4 or 5",
     "complaint orders with a survey (answer or callback)"},
    {"timely_flow_rate", "工单流转及时率",
     "orders that completed their flow within limits (closed, no SLA step breached) ÷ orders", -1,
     "ratio", C_IN_LIMIT, C_ORDERS, NULL, NULL, SRC_ROLLUP,
     "orders closed with no SLA step breached", "orders accepted in the period"},
    {"valid_flow_rate", "工单流转有效率",
     "orders routed accurately within limits (no return, no transfer, no SLA step breached) ÷"
     " orders",
     -1, "ratio", C_VALID, C_ORDERS, NULL, NULL, SRC_ROLLUP,
     "orders with no return, no transfer and no SLA step breached",
     "orders accepted in the period"},
    {"avg_delay", "工单平均延误周期",
     "Σ(closed_at − missed deadline) over delayed orders only ÷ delayed orders (seconds; the"
     " deadline is the latest breached step due)",
     -1, "seconds", C_DELAY_MS, C_DELAYED, NULL, NULL, SRC_ROLLUP,
     "Σ delay in seconds over delayed orders", "delayed orders (closed after a missed deadline)"},
    {"avg_handling_time", "平均投诉处理时长",
     "Σ(结案时间 − 受理时间) ÷ complaints closed, accepted in the period (seconds)", -1, "seconds",
     C_HANDLING_MS, C_CLOSED, NULL, NULL, SRC_ROLLUP, "Σ(结案时间 − 受理时间) in seconds",
     "complaints closed"},
    {"promised_completion_rate", "投诉处理完成及时率",
     "complaints resolved and closed within the promised time ÷ complaints", 0.95, "ratio",
     C_PROMISED_OK, C_ORDERS, NULL, NULL, SRC_ROLLUP, "complaints closed by the promised time",
     "complaints accepted in the period"},
    {"escalated_resolution_rate", "客户升级投诉问题解决率",
     "escalated complaints resolved (closed) ÷ escalated complaints", 0.95, "ratio", C_CLOSED,
     C_ORDERS, "escalated", NULL, SRC_ROLLUP, "escalated complaints closed",
     "escalated complaints accepted in the period"},
    {"escalated_satisfaction_rate", "升级投诉处理结果客户满意率",
     "satisfied customers of escalated complaints ÷ escalated complaints surveyed (satisfied ="
     " 4 or 5 of 5 at the HQ callback)",
     0.95, "ratio", C_SATISFIED, C_SURVEYED, "escalated", NULL, SRC_ROLLUP,
     "escalated complaints whose latest survey (answer or callback) is 4 or 5",
     "escalated complaints with a survey (answer or callback)"},
    {"order_timeliness_rate", "投诉工单处理及时率",
     "orders closed within limits (no SLA step breached) ÷ orders closed", 0.99, "ratio",
     C_IN_LIMIT, C_CLOSED, NULL, NULL, SRC_ROLLUP, "orders closed with no SLA step breached",
     "orders closed"},
    {"order_quality_rate", "工单处理合格率",
     "orders handled up to standard (合格: closed, never returned or transferred for misrouting,"
     " no callback found the handling at fault, never reopened) ÷ orders handled (closed)",
     0.99, "ratio", C_QUALITY_OK, C_CLOSED, NULL, NULL, SRC_ROLLUP,
     "closed orders with no return/transfer, no at-fault callback and no reopen",
     "orders closed"},
    {"service_complaints", "服务性投诉",
     "count of substantiated service-caused complaints (closed or concluded with responsibility"
     " \"service\") per unit (reference ≤ 1 a month, < 4 a year: a period up to 31 days answers"
     " reference 1, a year or longer 3, in between none)",
     1, "count", C_SERVICE, C_ORDERS, NULL, NULL, SRC_ROLLUP,
     "substantiated service-caused complaints (the value)",
     "complaint orders accepted in the period (context only)"},
    {"hotline_service_level", "热线服务水平",
     "calls answered by a person within 15 s ÷ calls asking for a person (loaded call records;"
     " the 15 s is analytics.config hotline_answer_seconds)",
     0.80, "ratio", -1, -1, NULL, NULL, SRC_CALLS,
     "calls asking for a person answered by one within hotline_answer_seconds",
     "calls asking for a person (data/analytics_calls.csv)"},
    {"agent_call_volume_index", "话务量指标",
     "(calls − complaints handled) ÷ unit call target × 100 % (monthly: a period covers the"
     " months it touches)",
     -1, "ratio", -1, -1, NULL, NULL, SRC_AGENT_VOLUME,
     "Σ per agent-month (calls − complaint calls handled)",
     "Σ per agent-month call target (data/analytics_agents.csv)"},
    {"agent_service_quality_index", "服务质量指标",
     "[(monitoring score + test-call score) / 2 − complaints × complaint coefficient] × 100 %"
     " (monthly; the value is the mean over agent-months)",
     -1, "ratio", -1, -1, NULL, NULL, SRC_AGENT_QUALITY,
     "Σ per agent-month [(monitoring + test-call)/2 − complaints × complaint_coefficient]",
     "agent-months (data/analytics_agents.csv)"},
};
enum { NKPI = sizeof kpis / sizeof kpis[0] };

/* Dimensions: query name = column name; region first in every list. */
static const char *const dims[] = {"region", "channel",        "business_type", "tier",
                                   "kind",   "customer_level", "stream",        "unit"};
enum { NDIM = sizeof dims / sizeof dims[0], MAXDIM = NDIM + 1 };
/* avg_delay per step: the rollup's dimensions plus the step */
static const char *const step_dims[] = {"region", "channel",        "business_type", "tier",
                                        "kind",   "customer_level", "stream",        "unit",
                                        "step"};
static const char *const customer_dims[] = {"region", "business_type", "customer_level"};
static const char *const agent_dims[] = {"region", "unit", "agent"};

/* Loaded-data sources: one relation of (day, dimensions…, n, d); day NULL =
 * in every period (customer counts); monthly sources have day = the month. */
static const char *source_sql(int src) {
  switch (src) {
  case SRC_CUSTOMERS:
    return "SELECT d.day, d.region, d.business_type, d.customer_level, d.orders::numeric AS n,"
           " 0::numeric AS d FROM analytics.daily d WHERE d.kind = 'complaint'"
           " UNION ALL SELECT NULL::date, c.region, c.business_type, c.customer_level, 0,"
           " c.customers FROM analytics.customers c";
  case SRC_CALLS:
    return "SELECT (c.started_at AT TIME ZONE INTERVAL '+08:00')::date AS day, c.region, c.unit,"
           " c.agent, (c.wants_agent AND c.answered AND c.wait_seconds <= coalesce((SELECT"
           " value FROM analytics.config WHERE key = 'hotline_answer_seconds'), 15))::int::numeric"
           " AS n, c.wants_agent::int::numeric AS d FROM analytics.calls c";
  case SRC_AGENT_VOLUME:
    return "SELECT m.month AS day, m.region, m.unit, m.agent, (SELECT count(*) FROM"
           " analytics.calls c WHERE c.agent = m.agent AND NOT c.complaint AND (c.started_at AT"
           " TIME ZONE INTERVAL '+08:00')::date >= m.month AND (c.started_at AT TIME ZONE"
           " INTERVAL '+08:00')::date < (m.month + interval '1 month')::date)::numeric AS n,"
           " m.call_target::numeric AS d FROM analytics.agent_month m";
  case SRC_AGENT_QUALITY:
    return "SELECT m.month AS day, m.region, m.unit, m.agent, (m.monitoring_score +"
           " m.test_call_score) / 2 - m.complaints * coalesce((SELECT value FROM analytics.config"
           " WHERE key = 'complaint_coefficient'), 0) AS n, 1::numeric AS d"
           " FROM analytics.agent_month m";
  case SRC_STEP_DELAY:
    /* a breached step's delay: from its due time to when it ended — the first
     * workflow state change at or after the due time, or the closure */
    return "SELECT (o.received_at AT TIME ZONE INTERVAL '+08:00')::date AS day,"
           " coalesce(o.region, '') AS region, coalesce(o.channel, '') AS channel,"
           " coalesce(o.business_type, '') AS business_type, coalesce(o.tier, '') AS tier,"
           " coalesce(o.kind, '') AS kind, coalesce(o.customer_level, '') AS customer_level,"
           " coalesce(o.stream, '') AS stream, coalesce(o.unit_id, '') AS unit, s.step,"
           " extract(epoch FROM e.ended - s.due_at)::numeric AS n, 1::numeric AS d"
           " FROM analytics.supervision s JOIN analytics.orders o ON o.order_no = s.order_no"
           " CROSS JOIN LATERAL (SELECT least(o.closed_at, (SELECT min(l.at) FROM"
           " analytics.step_log l WHERE l.order_no = s.order_no AND l.at >= s.due_at)) AS ended) e"
           " WHERE s.event = 'breached' AND s.due_at IS NOT NULL AND e.ended IS NOT NULL"
           " AND o.received_at IS NOT NULL";
  default:
    return NULL;
  }
}

static pg_conn *g_pg;

static bool may_read(struct evhttp_request *req, const auth_ctx *auth) {
  if (strcmp(auth->role, "admin") != 0 && strcmp(auth->role, "viewer") != 0 &&
      strcmp(auth->role, "handler") != 0 && strcmp(auth->role, "centre") != 0) {
    http_reply_error(req, 403, "forbidden", "this token's role may not read KPIs", NULL);
    return false;
  }
  return true;
}

static json_t *kpi_json(const kpi_def *k) {
  json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:b, s:s, s:s}", "name", k->name, "title",
                        k->title, "formula", k->formula, "unit", k->unit, "computable",
                        k->src != SRC_NONE, "numerator", k->numerator, "denominator",
                        k->denominator);
  json_object_set_new(o, "reference", k->reference >= 0 ? json_real(k->reference) : json_null());
  if (k->missing) json_object_set_new(o, "not_yet_computable", json_string(k->missing));
  return o;
}

static void h_list(struct evhttp_request *req, const auth_ctx *auth, char **segs, int nsegs,
                   void *arg) {
  (void)segs, (void)nsegs, (void)arg;
  if (!may_read(req, auth)) return;
  json_t *a = json_array();
  for (int i = 0; i < NKPI; i++) {
    json_t *o = kpi_json(&kpis[i]);
    /* has GET /v1/kpi/{name}/trend */
    json_object_set_new(o, "trend", json_boolean(kpis[i].src == SRC_ROLLUP ||
                                                 kpis[i].src == SRC_CALLS));
    json_array_append_new(a, o);
  }
  http_reply_json(req, 200, json_pack("{s:o}", "kpis", a));
}

/* GET /v1/kpis: several KPIs of one query; every KPI's answer (or error) in
 * its slot, the reply when the last query is back. */
enum { MAXBATCH = 64 };
typedef struct {
  struct evhttp_request *req;
  int n, pending;
  bool csv;
  json_t *items[MAXBATCH]; /* the KPI's JSON, or {"name", "error"} */
  int status[MAXBATCH];    /* 200 or the error's status */
} kpi_batch;

typedef struct {
  struct evhttp_request *req;
  const kpi_def *k;
  int groups[MAXDIM], ngroups, ndim, src;
  const char *const *dimv; /* the dimension names groups index */
  bool csv, loaded, rank, rank_asc;
  json_t *filters;
  kpi_batch *batch; /* NULL: a single KPI's request */
  char today[16], like[24];
  const char *v[4 + MAXDIM]; /* $1 from $2 to $3 unit $4 region-like $5… dimension filters */
  /* batch: the slots this query answers (rollup KPIs of the same stream share one query) */
  int nslots, slots[MAXBATCH];
  const kpi_def *slot_kpi[MAXBATCH];
} kpi_q;

static void q_free(kpi_q *q) {
  json_decref(q->filters);
  free(q);
}

typedef struct {
  int status;
  const char *code, *field;
  char message[256];
} kpi_err;

static void err_set(kpi_err *e, int status, const char *code, const char *message,
                    const char *field) {
  e->status = status;
  e->code = code;
  e->field = field;
  snprintf(e->message, sizeof e->message, "%s", message);
}

static json_t *err_json(const kpi_err *e) {
  json_t *o = json_pack("{s:s, s:s}", "code", e->code, "message", e->message);
  json_object_set_new(o, "field", e->field ? json_string(e->field) : json_null());
  return o;
}

static json_t *ratio(const kpi_def *k, long long num, long long den) {
  json_t *o = json_object();
  double scale = strcmp(k->unit, "seconds") == 0 ? 1000.0 : 1.0;
  if (strcmp(k->unit, "count") == 0)
    json_object_set_new(o, "value", json_integer(num)); /* a count: the numerator itself */
  else
    json_object_set_new(o, "value",
                        den ? json_real((double)num / scale / (double)den) : json_null());
  if (scale != 1.0)
    json_object_set_new(o, "numerator", json_real((double)num / scale));
  else
    json_object_set_new(o, "numerator", json_integer(num));
  json_object_set_new(o, "denominator", json_integer(den));
  return o;
}

/* Sums of loaded data: integral values as integers, others as reals. */
static json_t *number(double v) {
  if (v == (double)(long long)v && v < 1e15 && v > -1e15) return json_integer((long long)v);
  return json_real(v);
}

static json_t *ratio_loaded(double num, double den) {
  json_t *o = json_object();
  json_object_set_new(o, "value", den != 0 ? json_real(num / den) : json_null());
  json_object_set_new(o, "numerator", number(num));
  json_object_set_new(o, "denominator", number(den));
  return o;
}

static void csv_cell(struct evbuffer *b, const char *s, bool last) {
  bool quote = strpbrk(s, ",\"\r\n") != NULL;
  if (quote) {
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

static void csv_json(struct evbuffer *b, json_t *v, bool last) {
  char buf[64] = "";
  if (json_is_integer(v))
    snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
  else if (json_is_real(v))
    snprintf(buf, sizeof buf, "%.10g", json_real_value(v));
  else if (json_is_string(v))
    snprintf(buf, sizeof buf, "%s", json_string_value(v));
  csv_cell(b, buf, last);
}

/* kpi: the batch's first column (NULL: none) */
static void csv_header(struct evbuffer *b, json_t *group_by, bool rank, bool kpi) {
  static const char *const per[] = {"", "previous_", "last_year_"};
  evbuffer_add(b, "\xef\xbb\xbf", 3); /* UTF-8 BOM: Excel reads the Chinese right */
  size_t g;
  json_t *d;
  if (kpi) evbuffer_add_printf(b, "kpi,");
  if (rank) evbuffer_add_printf(b, "rank,");
  json_array_foreach(group_by, g, d) csv_cell(b, json_string_value(d), false);
  for (int p = 0; p < 3; p++)
    evbuffer_add_printf(b, "%svalue,%snumerator,%sdenominator,", per[p], per[p], per[p]);
  evbuffer_add_printf(b, "reference\r\n");
}

/* o: one KPI's answer */
static void csv_rows(struct evbuffer *b, json_t *o, bool rank, const char *kpi) {
  static const char *const pkeys[] = {NULL, "previous", "last_year"};
  json_t *group_by = json_object_get(o, "group_by");
  size_t i, g;
  json_t *r, *d;
  json_array_foreach(json_object_get(o, "rows"), i, r) {
    if (kpi) csv_cell(b, kpi, false);
    if (rank) csv_json(b, json_object_get(r, "rank"), false);
    json_array_foreach(group_by, g, d)
      csv_cell(b, json_string_value(json_object_get(r, json_string_value(d))), false);
    for (int p = 0; p < 3; p++) {
      json_t *src = p ? json_object_get(r, pkeys[p]) : r;
      csv_json(b, json_object_get(src, "value"), false);
      csv_json(b, json_object_get(src, "numerator"), false);
      csv_json(b, json_object_get(src, "denominator"), false);
    }
    csv_json(b, json_object_get(r, "reference"), true);
  }
}

static void send_csv(struct evhttp_request *req, struct evbuffer *b, const char *name) {
  struct evkeyvalq *h = evhttp_request_get_output_headers(req);
  evhttp_add_header(h, "Content-Type", "text/csv; charset=utf-8");
  char disp[128];
  snprintf(disp, sizeof disp, "attachment; filename=\"%s.csv\"", name);
  evhttp_add_header(h, "Content-Disposition", disp);
  evhttp_send_reply(req, 200, "OK", b);
  evbuffer_free(b);
}

static void reply_csv(struct evhttp_request *req, const kpi_q *q, json_t *o) {
  struct evbuffer *b = evbuffer_new();
  csv_header(b, json_object_get(o, "group_by"), q->rank, false);
  csv_rows(b, o, q->rank, NULL);
  send_csv(req, b, q->k->name);
}

/* Rankings: best first (highest value, or lowest for delays, handling time
 * and complaint rate), no value last; ties share a rank (1, 2, 2, 4). */
static bool g_rank_asc;
static int rank_cmp(const void *a, const void *b) {
  json_t *x = json_object_get(*(json_t *const *)a, "value");
  json_t *y = json_object_get(*(json_t *const *)b, "value");
  if (json_is_null(x) || json_is_null(y)) return json_is_null(x) - json_is_null(y);
  double u = json_number_value(x), v = json_number_value(y);
  if (u == v) return 0;
  return (u < v) == g_rank_asc ? -1 : 1;
}

static void rank_rows(json_t *rows, bool asc) {
  size_t n = json_array_size(rows);
  if (!n) return;
  json_t **a = malloc(n * sizeof *a);
  for (size_t i = 0; i < n; i++) a[i] = json_incref(json_array_get(rows, i));
  g_rank_asc = asc;
  qsort(a, n, sizeof *a, rank_cmp);
  json_array_clear(rows);
  for (size_t i = 0; i < n; i++) {
    size_t r = i + 1;
    if (i && rank_cmp(&a[i], &a[i - 1]) == 0)
      r = (size_t)json_integer_value(json_object_get(a[i - 1], "rank"));
    json_object_set_new(a[i], "rank", json_integer((json_int_t)r));
    json_array_append_new(rows, a[i]);
  }
  free(a);
}

/* Days since 1970-01-01 of a YYYY-MM-DD (proleptic Gregorian). */
static long days_of(const char *d) {
  long y = strtol(d, NULL, 10), m = strtol(d + 5, NULL, 10), dd = strtol(d + 8, NULL, 10);
  y -= m <= 2;
  long era = (y >= 0 ? y : y - 399) / 400, yoe = y - era * 400;
  long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + dd - 1;
  return era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
}

/* The reference for a period of n days: SPEC gives service_complaints "at most 1 a
 * month, fewer than 4 a year" — 1 up to a month, 3 for a year (or longer), none in
 * between; the other KPIs' references do not depend on the period. */
static double reference_for(const kpi_def *k, long n) {
  if (k->num != C_SERVICE) return k->reference;
  return n <= 31 ? 1 : n >= 365 ? 3 : -1;
}

/* KPI k's answer from its query's results, or NULL with *e set. */
static json_t *kpi_answer(const kpi_q *q, const kpi_def *k, const pg_result_set *rs, kpi_err *e) {
  if (!rs->ok) {
    if (rs->sqlstate && strncmp(rs->sqlstate, "22", 2) == 0)
      err_set(e, 422, "invalid_value", "invalid date or period", "from");
    else
      err_set(e, 503, "unavailable", "database unavailable", NULL);
    return NULL;
  }
  PGresult *pr = rs->res[rs->n - 2], *r = rs->res[rs->n - 1]; /* periods, rows */
  if (PQntuples(pr) != 1) {
    err_set(e, 422, "invalid_value", "from is after to", "from");
    return NULL;
  }
  json_t *o = kpi_json(k);
  const double ref =
      reference_for(k, days_of(PQgetvalue(pr, 0, 1)) - days_of(PQgetvalue(pr, 0, 0)) + 1);
  json_object_set_new(o, "reference", ref >= 0 ? json_real(ref) : json_null());
  static const char *const pnames[] = {"period", "previous", "last_year"};
  for (int p = 0; p < 3; p++)
    json_object_set_new(o, pnames[p],
                        json_pack("{s:s, s:s}", "from", PQgetvalue(pr, 0, 2 * p), "to",
                                  PQgetvalue(pr, 0, 2 * p + 1)));
  json_t *gb = json_array();
  for (int g = 0; g < q->ngroups; g++)
    json_array_append_new(gb, json_string(q->dimv[q->groups[g]]));
  json_object_set_new(o, "group_by", gb);
  json_object_set(o, "filters", q->filters);
  json_t *rows = json_array();
  for (int i = 0; i < PQntuples(r); i++) {
    json_t *row = json_object();
    for (int g = 0; g < q->ngroups; g++)
      json_object_set_new(row, q->dimv[q->groups[g]], json_string(PQgetvalue(r, i, g)));
    json_t *per[3];
    for (int p = 0; p < 3; p++) {
      if (q->loaded) {
        int base = q->ngroups + p * 2;
        per[p] = ratio_loaded(strtod(PQgetvalue(r, i, base), NULL),
                              strtod(PQgetvalue(r, i, base + 1), NULL));
        continue;
      }
      int base = q->ngroups + p * NC;
      long long num = strtoll(PQgetvalue(r, i, base + k->num), NULL, 10);
      long long den = strtoll(PQgetvalue(r, i, base + k->den), NULL, 10);
      per[p] = ratio(k, num, den);
    }
    json_object_update(row, per[0]);
    json_decref(per[0]);
    json_object_set_new(row, "reference", ref >= 0 ? json_real(ref) : json_null());
    json_object_set_new(row, "previous", per[1]);
    json_object_set_new(row, "last_year", per[2]);
    json_array_append_new(rows, row);
  }
  if (q->rank) rank_rows(rows, q->rank_asc);
  json_object_set_new(o, "rows", rows);
  return o;
}

static void batch_reply(kpi_batch *b) {
  int ok = -1;
  for (int i = 0; i < b->n && ok < 0; i++)
    if (b->status[i] == 200) ok = i;
  if (ok < 0) { /* nothing answered: the first error, as the KPI alone would have it */
    json_t *e = json_object_get(b->items[0], "error");
    http_reply_error(b->req, b->status[0], json_string_value(json_object_get(e, "code")),
                     json_string_value(json_object_get(e, "message")),
                     json_string_value(json_object_get(e, "field")));
  } else if (b->csv) {
    struct evbuffer *out = evbuffer_new();
    csv_header(out, json_object_get(b->items[ok], "group_by"), false, true);
    for (int i = 0; i < b->n; i++)
      if (b->status[i] == 200)
        csv_rows(out, b->items[i], false, json_string_value(json_object_get(b->items[i], "name")));
    send_csv(b->req, out, "kpis");
  } else {
    json_t *a = json_array();
    for (int i = 0; i < b->n; i++) json_array_append(a, b->items[i]);
    http_reply_json(b->req, 200, json_pack("{s:o}", "kpis", a));
  }
  for (int i = 0; i < b->n; i++) json_decref(b->items[i]);
  free(b);
}

static void batch_set(kpi_batch *b, int slot, const kpi_def *k, json_t *o, const kpi_err *e) {
  b->items[slot] = o ? o : json_pack("{s:s, s:o}", "name", k->name, "error", err_json(e));
  b->status[slot] = o ? 200 : e->status;
}

static void on_kpi(const pg_result_set *rs, void *arg) {
  kpi_q *q = arg;
  kpi_err e;
  if (q->batch) {
    kpi_batch *b = q->batch;
    for (int i = 0; i < q->nslots; i++)
      batch_set(b, q->slots[i], q->slot_kpi[i], kpi_answer(q, q->slot_kpi[i], rs, &e), &e);
    q_free(q);
    if (--b->pending == 0) batch_reply(b);
    return;
  }
  json_t *o = kpi_answer(q, q->k, rs, &e);
  if (!o) {
    http_reply_error(q->req, e.status, e.code, e.message, e.field);
  } else if (q->csv) {
    reply_csv(q->req, q, o);
    json_decref(o);
  } else {
    http_reply_json(q->req, 200, o);
  }
  q_free(q);
}

/* SELECT groups…, n and d per period (current, previous, last year) over
 * the source's relation; $5… filter the non-region dimensions. */
static void loaded_sql(const kpi_q *q, const char *periods, char *sql, size_t size) {
  const int src = q->src;
  const bool monthly = src == SRC_AGENT_VOLUME || src == SRC_AGENT_QUALITY;
  static const char *const pr[3][2] = {{"f", "t"}, {"pf", "pt"}, {"yf", "yt"}};
  char in[3][160];
  for (int p = 0; p < 3; p++)
    snprintf(in[p], sizeof in[p],
             monthly ? "b.day BETWEEN date_trunc('month', p.%s)::date AND p.%s"
                     : "(b.day IS NULL OR b.day BETWEEN p.%s AND p.%s)",
             pr[p][0], pr[p][1]);
  int len = snprintf(sql, size, "%s SELECT ", periods);
  for (int g = 0; g < q->ngroups; g++)
    len += snprintf(sql + len, size - (size_t)len, "b.%s, ", q->dimv[q->groups[g]]);
  for (int p = 0; p < 3; p++)
    len += snprintf(sql + len, size - (size_t)len,
                    "%scoalesce(sum(b.n) FILTER (WHERE %s), 0), coalesce(sum(b.d) FILTER (WHERE"
                    " %s), 0)",
                    p ? ", " : "", in[p], in[p]);
  len += snprintf(sql + len, size - (size_t)len,
                  " FROM p JOIN (%s) b ON (%s OR %s OR %s) WHERE b.region LIKE $4",
                  source_sql(src), in[0], in[1], in[2]);
  for (int i = 1; i < q->ndim; i++)
    len += snprintf(sql + len, size - (size_t)len, " AND ($%d::text IS NULL OR b.%s = $%d)",
                    4 + i, q->dimv[i], 4 + i);
  if (q->ngroups) {
    len += snprintf(sql + len, size - (size_t)len, " GROUP BY ");
    for (int g = 0; g < q->ngroups; g++)
      len += snprintf(sql + len, size - (size_t)len, "%sb.%s", g ? ", " : "",
                      q->dimv[q->groups[g]]);
    len += snprintf(sql + len, size - (size_t)len, " ORDER BY ");
    for (int g = 0; g < q->ngroups; g++)
      len += snprintf(sql + len, size - (size_t)len, "%sb.%s", g ? ", " : "",
                      q->dimv[q->groups[g]]);
  }
}

/* GET /v1/kpi/{name} (gb = group_by), GET /v1/rankings (gb = by, rank) and each KPI of
 * GET /v1/kpis: the query for KPI k, or NULL with *e set. The request's
 * parameters must outlive q (they do: q lives until the reply). */
static kpi_q *kpi_prepare(struct evhttp_request *req, const auth_ctx *auth, const kpi_def *k,
                          const char *gb, bool rank, kpi_err *e) {
  if (k->src == SRC_NONE) {
    char msg[256];
    snprintf(msg, sizeof msg, "%s is not yet computable: %s", k->name, k->missing);
    err_set(e, 409, "not_computable", msg, NULL);
    return NULL;
  }
  const char *fmt = http_query(req, "format");
  if (fmt && strcmp(fmt, "csv") != 0 && strcmp(fmt, "json") != 0) {
    err_set(e, 422, "invalid_value", "format is json or csv", "format");
    return NULL;
  }
  /* period: from/to (custom, inclusive days) or period=day|week|month|quarter|year around
   * date (default today). */
  const char *from = http_query(req, "from"), *to = http_query(req, "to");
  const char *period = http_query(req, "period"), *date = http_query(req, "date");
  char today[40];
  clock_format_ms(clock_now_ms(), today, sizeof today);
  today[10] = '\0';
  const char *unit = NULL;
  if (period && strcmp(period, "custom") != 0) {
    static const char *const units[] = {"day", "week", "month", "quarter", "year"};
    for (int i = 0; i < 5; i++)
      if (strcmp(period, units[i]) == 0) unit = units[i];
    if (!unit) {
      err_set(e, 422, "invalid_value", "period is day, week, month, quarter, year or custom",
              "period");
      return NULL;
    }
    from = to = date ? date : today;
  } else if (!from && !to) {
    unit = "month";
    from = to = today;
  } else if (!from || !to) {
    err_set(e, 422, "invalid_value", "from and to go together", from ? "to" : "from");
    return NULL;
  }
  if (!valid_date(from) || !valid_date(to)) {
    err_set(e, 422, "invalid_value", "dates are YYYY-MM-DD", "from");
    return NULL;
  }
  kpi_q *q = calloc(1, sizeof *q);
  q->req = req;
  q->k = k;
  memcpy(q->today, today, 11);
  if (from == today) from = q->today;
  if (to == today) to = q->today;
  q->csv = fmt && strcmp(fmt, "csv") == 0;
  q->filters = json_object();
  q->rank = rank;
  q->rank_asc = k->num == C_DELAY_MS || k->num == C_HANDLING_MS || k->num == C_SERVICE ||
                k->src == SRC_CUSTOMERS;
  q->src = k->src;
  if (k->num == C_DELAY_MS && gb && strstr(gb, "step")) q->src = SRC_STEP_DELAY;
  q->loaded = q->src != SRC_ROLLUP;
  int ndim = NDIM;
  q->dimv = dims;
  if (q->src == SRC_STEP_DELAY) {
    q->dimv = step_dims;
    ndim = NDIM + 1;
  } else if (q->src == SRC_CUSTOMERS) {
    q->dimv = customer_dims;
    ndim = 3;
  } else if (q->loaded) {
    q->dimv = agent_dims;
    ndim = 3;
  }
  q->ndim = ndim;
  const bool order_dims = q->dimv == dims || q->dimv == step_dims;
  /* group_by, kept in canonical order so the statement cache stays small */
  bool want[MAXDIM] = {0};
  if (gb && *gb) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", gb);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
      int d = -1;
      for (int i = 0; i < ndim; i++)
        if (strcmp(q->dimv[i], t) == 0) d = i;
      if (d < 0) {
        err_set(e, 422, "invalid_value",
                strcmp(t, "step") == 0 ? "group_by step is only for avg_delay"
                                       : "unknown group_by dimension",
                "group_by");
        q_free(q);
        return NULL;
      }
      want[d] = true;
    }
  }
  for (int i = 0; i < ndim; i++)
    if (want[i]) q->groups[q->ngroups++] = i;
  /* region: within the token's scope, as a prefix of the subtree */
  char region[16];
  const char *why = "";
  int st = scoped_region(auth, http_query(req, "region"), region, sizeof region, &why);
  if (st) {
    err_set(e, st, st == 403 ? "forbidden" : "invalid_value", why, "region");
    q_free(q);
    return NULL;
  }
  json_object_set_new(q->filters, "region", json_string(region));
  size_t n = strlen(region);
  while (n >= 2 && region[n - 1] == '0' && region[n - 2] == '0') region[n -= 2] = '\0';
  snprintf(q->like, sizeof q->like, "%s%%", region);

  /* params: $1 from $2 to $3 unit $4 region-like $5.. dimension filters (NULL = any) */
  if (rank && q->ngroups != 1) {
    err_set(e, 422, "invalid_value", "by is one dimension of the KPI", "by");
    q_free(q);
    return NULL;
  }
  const char **v = q->v;
  v[0] = from, v[1] = to, v[2] = unit, v[3] = q->like;
  for (int i = 1; i < ndim; i++) {
    const char *f = http_query(req, q->dimv[i]);
    if (order_dims && i == 4 && !f) f = "complaint"; /* kind: complaint orders unless asked */
    if (order_dims && i == 6 && k->stream) f = k->stream;
    if (f && strcmp(f, "all") == 0) f = NULL;
    if (f) json_object_set_new(q->filters, q->dimv[i], json_string(f));
    v[4 + i - 1] = f;
  }
  return q;
}

/* Sends q's statements; on_kpi answers. */
static void kpi_submit(kpi_q *q) {
  const int ndim = q->ndim;
  const char *const *v = q->v;
  static const char *const periods =
      "WITH a AS (SELECT $1::date AS f0, $2::date AS t0, $3::text AS u),"
      " a2 AS (SELECT f0, t0, u, CASE u WHEN 'quarter' THEN interval '3 months'"
      " ELSE ('1 ' || u)::interval END AS iv FROM a),"
      " b AS (SELECT CASE WHEN u IS NULL THEN f0 ELSE date_trunc(u, f0)::date END AS f,"
      " CASE WHEN u IS NULL THEN t0 ELSE (date_trunc(u, f0) + iv"
      " - interval '1 day')::date END AS t, u, iv FROM a2),"
      " p AS (SELECT f, t, CASE WHEN u IS NULL THEN f - (t - f + 1)"
      " ELSE (f - iv)::date END AS pf, f - 1 AS pt,"
      " (f - interval '1 year')::date AS yf, (t - interval '1 year')::date AS yt FROM b"
      " WHERE f <= t AND $4::text IS NOT NULL)";
  char sql[24576];
  int len = snprintf(sql, sizeof sql, "%s SELECT f, t, pf, pt, yf, yt FROM p", periods);
  pg_tx *tx = pg_tx_new();
  pg_tx_read_only(tx);
  if (!q->loaded)
    /* The rollup statement (fifteen index range scans) is planned once per connection
     * (a custom plan took ≈ 17 ms, longer than running it), and its groups are hashed:
     * the generic plan cannot know how many rows the period's ranges hold and would
     * sort them. For this transaction only. */
    pg_tx_add(tx,
              "SELECT set_config('plan_cache_mode', 'force_generic_plan', true),"
              " set_config('enable_sort', 'off', true)",
              0, NULL, NULL, NULL);
  pg_tx_add(tx, sql, 4, v, NULL, NULL);
  if (q->loaded) {
    loaded_sql(q, periods, sql, sizeof sql);
    pg_tx_add(tx, sql, 4 + ndim - 1, v, NULL, NULL);
    pg_conn_submit(g_pg, tx, on_kpi, q);
    return;
  }
  /* Each period [F, T] = its whole years [fy, ty) from analytics.yearly, the whole months
   * [fm, tm) outside them from analytics.monthly, the days before fm and from tm on from
   * analytics.daily (fy >= ty: no whole year; fm > tm: F and T in one month, all days).
   * Fifteen index range scans, summed per period and group, then one row per group with
   * the three periods side by side. */
  len = snprintf(sql, sizeof sql, "%s, q AS (SELECT p.*", periods);
  static const char *const pf[3][2] = {{"f", "t"}, {"pf", "pt"}, {"yf", "yt"}};
  for (int p = 0; p < 3; p++)
    len += snprintf(sql + len, sizeof sql - (size_t)len,
                    ", CASE WHEN extract(day FROM %1$s) = 1 THEN %1$s ELSE (date_trunc('month', %1$s)"
                    " + interval '1 month')::date END AS %1$sm, date_trunc('month', %2$s + 1)::date"
                    " AS %2$sm, CASE WHEN %1$s = date_trunc('year', %1$s)::date THEN %1$s ELSE"
                    " (date_trunc('year', %1$s) + interval '1 year')::date END AS %1$sy,"
                    " date_trunc('year', %2$s + 1)::date AS %2$sy",
                    pf[p][0], pf[p][1]);
  len += snprintf(sql + len, sizeof sql - (size_t)len, " FROM p)");
  /* only the counters the KPIs asked for are summed (and orders, for HAVING); the others
   * answer 0 in their columns */
  bool need[NC] = {[C_ORDERS] = true};
  if (q->batch)
    for (int i = 0; i < q->nslots; i++) need[q->slot_kpi[i]->num] = need[q->slot_kpi[i]->den] = true;
  else
    need[q->k->num] = need[q->k->den] = true;
  len += snprintf(sql + len, sizeof sql - (size_t)len, " SELECT ");
  for (int g = 0; g < q->ngroups; g++)
    len += snprintf(sql + len, sizeof sql - (size_t)len, "g.%s, ", dims[q->groups[g]]);
  for (int p = 0; p < 3; p++)
    for (int c = 0; c < NC; c++)
      len += need[c] ? snprintf(sql + len, sizeof sql - (size_t)len,
                                "%scoalesce(sum(g.%s) FILTER (WHERE g.per = %d), 0)",
                                p || c ? ", " : "", counter_cols[c], p)
                     : snprintf(sql + len, sizeof sql - (size_t)len, "%s0", p || c ? ", " : "");
  len += snprintf(sql + len, sizeof sql - (size_t)len, " FROM (SELECT u.per");
  for (int g = 0; g < q->ngroups; g++)
    len += snprintf(sql + len, sizeof sql - (size_t)len, ", u.%s", dims[q->groups[g]]);
  for (int c = 0; c < NC; c++)
    if (need[c])
      len += snprintf(sql + len, sizeof sql - (size_t)len, ", sum(u.%s) AS %s", counter_cols[c],
                      counter_cols[c]);
  len += snprintf(sql + len, sizeof sql - (size_t)len, " FROM (");
  /* q.<F>m = fm, q.<T>m = tm, q.<F>y = fy, q.<T>y = ty */
  static const char *const rollup[3] = {"yearly", "monthly", "daily"};
  for (int p = 0; p < 3; p++)
    for (int part = 0; part < 5; part++) {
      const char *F = pf[p][0], *T = pf[p][1];
      const int table = part == 0 ? 0 : part <= 2 ? 1 : 2;
      char range[256];
      if (part == 0) /* whole years */
        snprintf(range, sizeof range, "x.year >= q.%sy AND x.year < q.%sy", F, T);
      else if (part == 1) /* whole months before the years (all of them if none) */
        snprintf(range, sizeof range, "x.month >= q.%sm AND x.month < least(q.%sy, q.%sm)", F,
                 F, T);
      else if (part == 2) /* whole months after the years */
        snprintf(range, sizeof range,
                 "x.month >= greatest(q.%sy, q.%sy, q.%sm) AND x.month < q.%sm", T, F, F, T);
      else if (part == 3) /* days before the first whole month (all of them if none) */
        snprintf(range, sizeof range, "x.day >= q.%s AND x.day <= least(q.%s, q.%sm - 1)", F, T,
                 F);
      else /* days after the last whole month */
        snprintf(range, sizeof range, "x.day >= greatest(q.%sm, q.%sm) AND x.day <= q.%s", T, F,
                 T);
      len += snprintf(sql + len, sizeof sql - (size_t)len, "%sSELECT %d AS per",
                      p || part ? " UNION ALL " : "", p);
      for (int g = 0; g < q->ngroups; g++)
        len += snprintf(sql + len, sizeof sql - (size_t)len, ", x.%s", dims[q->groups[g]]);
      for (int c = 0; c < NC; c++)
        if (need[c]) len += snprintf(sql + len, sizeof sql - (size_t)len, ", x.%s", counter_cols[c]);
      len += snprintf(sql + len, sizeof sql - (size_t)len,
                      " FROM q JOIN analytics.%s x ON %s WHERE x.region LIKE $4", rollup[table],
                      range);
      for (int i = 1; i < NDIM; i++)
        len += snprintf(sql + len, sizeof sql - (size_t)len,
                        " AND ($%d::text IS NULL OR x.%s = $%d)", 4 + i, dims[i], 4 + i);
    }
  len += snprintf(sql + len, sizeof sql - (size_t)len, ") u GROUP BY u.per");
  for (int g = 0; g < q->ngroups; g++)
    len += snprintf(sql + len, sizeof sql - (size_t)len, ", u.%s", dims[q->groups[g]]);
  len += snprintf(sql + len, sizeof sql - (size_t)len, ") g");
  if (q->ngroups) {
    /* transfers leave all-zero rollup rows behind for the old unit */
    len += snprintf(sql + len, sizeof sql - (size_t)len, " GROUP BY ");
    for (int g = 0; g < q->ngroups; g++)
      len += snprintf(sql + len, sizeof sql - (size_t)len, "%sg.%s", g ? ", " : "",
                      dims[q->groups[g]]);
    len += snprintf(sql + len, sizeof sql - (size_t)len, " HAVING sum(g.orders) > 0 ORDER BY ");
    for (int g = 0; g < q->ngroups; g++)
      len += snprintf(sql + len, sizeof sql - (size_t)len, "%sg.%s", g ? ", " : "",
                      dims[q->groups[g]]);
  }
  pg_tx_add(tx, sql, 4 + NDIM - 1, v, NULL, NULL);
  pg_conn_submit(g_pg, tx, on_kpi, q);
}


static const kpi_def *kpi_find(const char *name) {
  for (int i = 0; i < NKPI; i++)
    if (strcmp(kpis[i].name, name) == 0) return &kpis[i];
  return NULL;
}

static void kpi_request(struct evhttp_request *req, const auth_ctx *auth, const char *name,
                        const char *gb, bool rank) {
  if (!may_read(req, auth)) return;
  const kpi_def *k = kpi_find(name);
  if (!k) {
    http_reply_error(req, 404, "not_found", "no such KPI", NULL);
    return;
  }
  kpi_err e;
  kpi_q *q = kpi_prepare(req, auth, k, gb, rank, &e);
  if (!q) {
    http_reply_error(req, e.status, e.code, e.message, e.field);
    return;
  }
  kpi_submit(q);
}

/* GET /v1/kpis?names=a,b,…&<the parameters of /v1/kpi/{name}>: {"kpis": [each KPI's answer as
 * alone, in the order asked; a KPI that fails alone is {"name", "error"}]}; all of them failing:
 * the first one's error. names absent: all 18. Rollup KPIs of the same stream share one query. */
static void h_kpis(struct evhttp_request *req, const auth_ctx *auth, char **segs, int nsegs,
                   void *arg) {
  (void)segs, (void)nsegs, (void)arg;
  if (!may_read(req, auth)) return;
  const kpi_def *want[MAXBATCH];
  int n = 0;
  const char *names = http_query(req, "names");
  if (!names || !*names) {
    for (int i = 0; i < NKPI; i++) want[n++] = &kpis[i];
  } else {
    char buf[2048];
    if (strlen(names) >= sizeof buf) {
      http_reply_error(req, 422, "invalid_value", "names is too long", "names");
      return;
    }
    snprintf(buf, sizeof buf, "%s", names);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
      const kpi_def *k = kpi_find(t);
      char msg[160];
      if (!k || n == MAXBATCH) {
        if (k)
          snprintf(msg, sizeof msg, "at most %d names", MAXBATCH);
        else
          snprintf(msg, sizeof msg, "no such KPI: %.100s", t);
        http_reply_error(req, 422, "invalid_value", msg, "names");
        return;
      }
      want[n++] = k;
    }
    if (!n) {
      http_reply_error(req, 422, "invalid_value", "names lists no KPI", "names");
      return;
    }
  }
  kpi_batch *b = calloc(1, sizeof *b);
  b->req = req;
  b->n = n;
  const char *fmt = http_query(req, "format");
  b->csv = fmt && strcmp(fmt, "csv") == 0;
  kpi_q *qs[MAXBATCH];
  int nq = 0;
  const char *gb = http_query(req, "group_by");
  for (int i = 0; i < n; i++) {
    const kpi_def *k = want[i];
    kpi_q *q = NULL;
    for (int j = 0; j < nq && !q; j++)
      if (k->src == SRC_ROLLUP && qs[j]->src == SRC_ROLLUP &&
          (k->stream == qs[j]->k->stream ||
           (k->stream && qs[j]->k->stream && strcmp(k->stream, qs[j]->k->stream) == 0)))
        q = qs[j];
    if (!q) {
      kpi_err e;
      q = kpi_prepare(req, auth, k, gb, false, &e);
      if (!q) {
        batch_set(b, i, k, NULL, &e);
        continue;
      }
      q->batch = b;
      qs[nq++] = q;
    }
    q->slots[q->nslots] = i;
    q->slot_kpi[q->nslots++] = k;
  }
  b->pending = nq;
  if (!nq) {
    batch_reply(b);
    return;
  }
  for (int j = 0; j < nq; j++) kpi_submit(qs[j]);
}

static void h_kpi(struct evhttp_request *req, const auth_ctx *auth, char **segs, int nsegs,
                  void *arg) {
  (void)nsegs, (void)arg;
  kpi_request(req, auth, segs[0], http_query(req, "group_by"), false);
}

static void h_rankings(struct evhttp_request *req, const auth_ctx *auth, char **segs, int nsegs,
                       void *arg) {
  (void)segs, (void)nsegs, (void)arg;
  const char *name = http_query(req, "kpi"), *by = http_query(req, "by");
  if (!name || !by) {
    http_reply_error(req, 422, "invalid_value", "kpi and by are required", name ? "by" : "kpi");
    return;
  }
  kpi_request(req, auth, name, by, true);
}


/* --- trend: one KPI per local day or hour ------------------------------------ */

/* Each rollup counter of one analytics.orders row o — the expressions of
 * analytics.daily_merge (007_satisfaction_quality.sql), for the hourly trend,
 * which the daily rollup cannot give. */
static const char *const counter_expr[NC] = {
    "1",
    "(o.closed_at IS NOT NULL)::int",
    "(o.closed_at IS NOT NULL AND o.breached_at IS NULL)::int",
    "(o.closed_at IS NOT NULL AND o.breached_at IS NULL AND o.moves = 0)::int",
    "(o.closed_at IS NOT NULL AND o.breached_at IS NULL AND o.moves > 0)::int",
    "(o.misroutes = 0 AND o.breached_at IS NULL)::int",
    "coalesce(o.closed_at > o.breach_due, false)::int",
    "CASE WHEN o.closed_at > o.breach_due THEN (extract(epoch FROM o.closed_at - o.breach_due)"
    " * 1000)::bigint ELSE 0 END",
    "CASE WHEN o.closed_at IS NOT NULL THEN (extract(epoch FROM o.closed_at - o.received_at)"
    " * 1000)::bigint ELSE 0 END",
    "(o.closed_at IS NOT NULL AND o.promised_by IS NOT NULL AND o.closed_at <= o.promised_by)::int",
    "(o.satisfaction IS NOT NULL)::int",
    "coalesce(o.satisfaction >= 4, false)::int",
    "(o.closed_at IS NOT NULL AND o.misroutes = 0 AND o.faults = 0)::int",
    "o.service_substantiated::int"};

typedef struct {
  kpi_q *q;
  json_t *o;
} trend_q;

static void on_trend(const pg_result_set *rs, void *arg) {
  trend_q *t = arg;
  kpi_q *q = t->q;
  if (!rs->ok) {
    if (rs->sqlstate && strncmp(rs->sqlstate, "22", 2) == 0)
      http_reply_error(q->req, 422, "invalid_value", "invalid date", "date");
    else
      http_reply_error(q->req, 503, "unavailable", "database unavailable", NULL);
    json_decref(t->o);
  } else {
    PGresult *r = rs->res[rs->n - 1];
    json_t *rows = json_array();
    for (int i = 0; i < PQntuples(r); i++) {
      json_t *row = q->loaded ? ratio_loaded(strtod(PQgetvalue(r, i, 1), NULL),
                                             strtod(PQgetvalue(r, i, 2), NULL))
                              : ratio(q->k, strtoll(PQgetvalue(r, i, 1), NULL, 10),
                                      strtoll(PQgetvalue(r, i, 2), NULL, 10));
      json_object_set_new(row, "t", json_string(PQgetvalue(r, i, 0)));
      json_array_append_new(rows, row);
    }
    if (q->csv) {
      struct evbuffer *b = evbuffer_new();
      evbuffer_add(b, "\xef\xbb\xbf", 3);
      evbuffer_add_printf(b, "t,value,numerator,denominator\r\n");
      size_t i;
      json_t *x;
      json_array_foreach(rows, i, x) {
        csv_json(b, json_object_get(x, "t"), false);
        csv_json(b, json_object_get(x, "value"), false);
        csv_json(b, json_object_get(x, "numerator"), false);
        csv_json(b, json_object_get(x, "denominator"), true);
      }
      json_decref(rows);
      json_decref(t->o);
      send_csv(q->req, b, q->k->name);
    } else {
      json_object_set_new(t->o, "rows", rows);
      http_reply_json(q->req, 200, t->o);
    }
  }
  q_free(q);
  free(t);
}

/* GET /v1/kpi/{name}/trend?granularity=day|hour&date=YYYY-MM-DD&days=N&region=&<dimension
 * filters>&format=: the KPI per local day (the N days ending at date, from the
 * rollup) or per local hour of date (from the facts), each bucket with value,
 * numerator and denominator as the KPI alone has them. Rollup KPIs and
 * hotline_service_level; others 422 (complaint_rate's customers have no day,
 * the agent KPIs are monthly). */
static void h_kpi_trend(struct evhttp_request *req, const auth_ctx *auth, char **segs,
                        int nsegs, void *arg) {
  (void)nsegs, (void)arg;
  if (!may_read(req, auth)) return;
  const kpi_def *k = kpi_find(segs[0]);
  if (!k) {
    http_reply_error(req, 404, "not_found", "no such KPI", NULL);
    return;
  }
  if (k->src != SRC_ROLLUP && k->src != SRC_CALLS) {
    http_reply_error(req, 422, "invalid_value",
                     "this KPI has no trend (customers per period / monthly agent data)", "kpi");
    return;
  }
  const char *gran = http_query(req, "granularity");
  if (!gran) gran = "day";
  bool hourly = strcmp(gran, "hour") == 0;
  if (!hourly && strcmp(gran, "day") != 0) {
    http_reply_error(req, 422, "invalid_value", "granularity is day or hour", "granularity");
    return;
  }
  long days;
  if (!query_days(req, &days)) return;
  const char *date = http_query(req, "date");
  if (date && !valid_date(date)) {
    http_reply_error(req, 422, "invalid_value", "date is YYYY-MM-DD", "date");
    return;
  }
  kpi_err e;
  kpi_q *q = kpi_prepare(req, auth, k, NULL, false, &e);
  if (!q) {
    http_reply_error(req, e.status, e.code, e.message, e.field);
    return;
  }
  if (!date) date = q->today;
  trend_q *t = calloc(1, sizeof *t);
  t->q = q;
  t->o = json_pack("{s:s, s:s, s:s, s:s, s:O}", "name", k->name, "title", k->title, "unit",
                   k->unit, "granularity", hourly ? "hour" : "day", "filters", q->filters);
  json_object_set_new(t->o, "date", json_string(date));
  /* service_complaints' reference is per month or year (reference_for): none per bucket */
  json_object_set_new(t->o, "reference", k->reference >= 0 && k->num != C_SERVICE
                                             ? json_real(k->reference)
                                             : json_null());
  if (!hourly) json_object_set_new(t->o, "days", json_integer(days));
  char ndays[16];
  snprintf(ndays, sizeof ndays, "%ld", days);
  /* $1 date $2 region-like $3 days $4… the other dimension filters */
  const char *v[3 + MAXDIM] = {date, q->like, ndays};
  for (int i = 1; i < q->ndim; i++) v[3 + i - 1] = q->v[4 + i - 1];
  char sql[8192];
  int len;
  static const char *const buckets_day =
      "SELECT to_char(g.day, 'YYYY-MM-DD'), coalesce(x.n, 0), coalesce(x.d, 0) FROM (SELECT"
      " ($1::date - i) AS day FROM generate_series(0, $3::int - 1) i) g LEFT JOIN (";
  static const char *const buckets_hour =
      "SELECT lpad(g.h::text, 2, '0') || ':00', coalesce(x.n, 0), coalesce(x.d, 0) FROM"
      " generate_series(0, 23) g(h) LEFT JOIN (";
  static const char *const in_day =
      " >= ($1::date::timestamp AT TIME ZONE INTERVAL '+08:00') AND %s < (($1::date + 1)"
      "::timestamp AT TIME ZONE INTERVAL '+08:00') AND $3::int > 0";
  len = snprintf(sql, sizeof sql, "%s", hourly ? buckets_hour : buckets_day);
  if (q->src == SRC_CALLS) {
    const char *at = "c.started_at";
    len += snprintf(sql + len, sizeof sql - (size_t)len,
                    "SELECT %s AS b, sum((c.wants_agent AND c.answered AND c.wait_seconds <="
                    " coalesce((SELECT value FROM analytics.config WHERE key ="
                    " 'hotline_answer_seconds'), 15))::int) AS n, sum(c.wants_agent::int) AS d"
                    " FROM analytics.calls c WHERE c.region LIKE $2 AND %s",
                    hourly ? "extract(hour FROM c.started_at AT TIME ZONE INTERVAL '+08:00')::int"
                           : "(c.started_at AT TIME ZONE INTERVAL '+08:00')::date",
                    at);
    if (hourly)
      len += snprintf(sql + len, sizeof sql - (size_t)len, in_day, at);
    else
      len += snprintf(sql + len, sizeof sql - (size_t)len,
                      " >= (($1::date - ($3::int - 1))::timestamp AT TIME ZONE INTERVAL '+08:00')"
                      " AND %s < (($1::date + 1)::timestamp AT TIME ZONE INTERVAL '+08:00')",
                      at);
    for (int i = 1; i < q->ndim; i++)
      len += snprintf(sql + len, sizeof sql - (size_t)len,
                      " AND ($%d::text IS NULL OR c.%s = $%d)", 3 + i, q->dimv[i], 3 + i);
  } else if (hourly) {
    len += snprintf(sql + len, sizeof sql - (size_t)len,
                    "SELECT extract(hour FROM o.received_at AT TIME ZONE INTERVAL '+08:00')::int"
                    " AS b, sum(%s) AS n, sum(%s) AS d FROM analytics.orders o WHERE"
                    " o.region LIKE $2 AND o.received_at",
                    counter_expr[k->num], counter_expr[k->den]);
    len += snprintf(sql + len, sizeof sql - (size_t)len, in_day, "o.received_at");
    for (int i = 1; i < NDIM; i++)
      len += snprintf(sql + len, sizeof sql - (size_t)len,
                      " AND ($%d::text IS NULL OR coalesce(o.%s, '') = $%d)", 3 + i,
                      strcmp(dims[i], "unit") == 0 ? "unit_id" : dims[i], 3 + i);
  } else {
    len += snprintf(sql + len, sizeof sql - (size_t)len,
                    "SELECT d.day AS b, sum(d.%s) AS n, sum(d.%s) AS d FROM analytics.daily d"
                    " WHERE d.day BETWEEN $1::date - ($3::int - 1) AND $1::date"
                    " AND d.region LIKE $2",
                    counter_cols[k->num], counter_cols[k->den]);
    for (int i = 1; i < NDIM; i++)
      len += snprintf(sql + len, sizeof sql - (size_t)len,
                      " AND ($%d::text IS NULL OR d.%s = $%d)", 3 + i, dims[i], 3 + i);
  }
  snprintf(sql + len, sizeof sql - (size_t)len, " GROUP BY 1) x ON x.b = g.%s ORDER BY 1",
           hourly ? "h" : "day");
  pg_tx *tx = pg_tx_new();
  pg_tx_add(tx, sql, 3 + q->ndim - 1, v, NULL, NULL);
  pg_conn_submit(g_pg, tx, on_trend, t);
}

void kpi_routes(http_server *http, pg_conn *pg) {
  g_pg = pg;
  http_route(http, EVHTTP_REQ_GET, "/v1/kpi", 0, h_list, NULL);
  http_route(http, EVHTTP_REQ_GET, "/v1/kpi/*", 0, h_kpi, NULL);
  http_route(http, EVHTTP_REQ_GET, "/v1/kpi/*/trend", 0, h_kpi_trend, NULL);
  http_route(http, EVHTTP_REQ_GET, "/v1/kpis", 0, h_kpis, NULL);
  http_route(http, EVHTTP_REQ_GET, "/v1/rankings", 0, h_rankings, NULL);
}
