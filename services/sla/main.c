/* kesu-sla — the SLA watcher.
 *
 * Consumes the router's stream: WorkOrderCreated starts an ANSWER timer
 * (limit by tier), WorkOrderClosed closes it. Open timers live in a min-heap
 * by next fire time; when one comes due, one transaction per batch calls
 * sla.fire() per timer, which records the warning/breach and appends
 * SlaWarning/SlaBreached to the outbox only if not recorded before and the
 * timer is not closed. The publisher puts them on PUB 7120 / replay 7121.
 *
 * The clock may jump (KESU_CLOCK=control:) without any signal, so besides a
 * timer armed for the next fire time the heap is also checked every 200 ms.
 */
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "clock.h"
#include "config.h"
#include "consumer.h"
#include "envelope.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "outbox.h"
#include "pg.h"
#include "service.h"
#include "timers.h"

enum { FIRE_BATCH = 500, POLL_MS = 200, RETRY_MS = 1000, CATCH_UP_WAIT_MS = 30000 };

#define MS(col) "(extract(epoch from " col ") * 1000)::bigint"

typedef struct {
  sla_timer *t;
  bool warning; /* false: breach */
} fire_item;

typedef struct {
  struct event_base *base;
  pg_conn *pg;
  auth_cache *auth;
  http_server *http;
  consumer *cons;
  outbox_publisher *pub;
  const char *router_pub, *router_replay;
  timer_set timers;
  struct event *ev_fire, *ev_poll, *ev_reload;
  bool loaded, loading;
  bool firing;
  fire_item *fires;
  int nfires;
  int64_t retry_after; /* monotonic ms */
  int64_t started_mono;
  bool caught_up; /* the router stream was caught up at least once since start */
  metric *m_open, *m_warnings, *m_breaches, *m_applied;
} app;

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static Kesu__V1__Step step_from_name(const char *s) {
  for (int v = 1; v <= 7; v++)
    if (strcmp(step_name((Kesu__V1__Step)v), s) == 0) return (Kesu__V1__Step)v;
  return KESU__V1__STEP__STEP_UNSPECIFIED;
}

static void check_due(app *a);

static void arm_fire_timer(app *a) {
  int64_t next = timer_set_next_at(&a->timers);
  metric_set(a->m_open, (int64_t)a->timers.count);
  if (next == INT64_MAX) {
    evtimer_del(a->ev_fire);
    return;
  }
  int64_t d = next - clock_now_ms();
  if (d < 0) d = 0;
  if (d > POLL_MS) d = POLL_MS; /* the poll covers the rest; keeps jumps cheap */
  struct timeval tv = {(time_t)(d / 1000), (suseconds_t)((d % 1000) * 1000)};
  evtimer_add(a->ev_fire, &tv);
}

/* --- the stream: timers from router events -------------------------------- */

typedef struct {
  const char *order_no, *unit_id, *region;
  int64_t started, warn_at, due_at, limit_s;
} timer_spec;

static void spec_of_created(const Kesu__V1__Envelope *env, timer_spec *ts) {
  const Kesu__V1__WorkOrderCreated *c = env->work_order_created;
  ts->order_no = *c->order_no ? c->order_no : env->order_no;
  ts->unit_id = c->unit_id;
  ts->region = *env->region ? env->region : c->region;
  ts->started = c->accepted_at ? c->accepted_at : env->occurred_at;
  ts->limit_s = sla_answer_limit_seconds(tier_name(c->tier));
  sla_deadlines(ts->started, ts->limit_s, &ts->warn_at, &ts->due_at);
}

static const char *order_of_closed(const Kesu__V1__Envelope *env) {
  const Kesu__V1__WorkOrderClosed *c = env->work_order_closed;
  return *c->order_no ? c->order_no : env->order_no;
}

static void on_apply(pg_tx *tx, const Kesu__V1__Envelope *env, void *arg) {
  (void)arg;
  char b1[24], b2[24], b3[24], b4[24];
  if (env->payload_case == KESU__V1__ENVELOPE__PAYLOAD_WORK_ORDER_CREATED) {
    timer_spec ts;
    spec_of_created(env, &ts);
    if (!*ts.order_no) return;
    snprintf(b1, sizeof b1, "%" PRId64, ts.started);
    snprintf(b2, sizeof b2, "%" PRId64, ts.warn_at);
    snprintf(b3, sizeof b3, "%" PRId64, ts.due_at);
    snprintf(b4, sizeof b4, "%" PRId64, ts.limit_s);
    const char *v[8] = {ts.order_no, step_name(KESU__V1__STEP__ANSWER), ts.unit_id, ts.region,
                        b1, b2, b3, b4};
    pg_tx_add(tx,
              "INSERT INTO sla.timers (order_no, step, unit_id, region, started_at, warn_at, due_at,"
              " limit_seconds) VALUES ($1, $2, NULLIF($3, ''), NULLIF($4, ''),"
              " to_timestamp($5::bigint / 1000.0), to_timestamp($6::bigint / 1000.0),"
              " to_timestamp($7::bigint / 1000.0), $8::bigint)"
              " ON CONFLICT (order_no, step) DO NOTHING",
              8, v, NULL, NULL);
  } else if (env->payload_case == KESU__V1__ENVELOPE__PAYLOAD_WORK_ORDER_CLOSED) {
    const char *order_no = order_of_closed(env);
    if (!*order_no) return;
    int64_t at = env->work_order_closed->closed_at ? env->work_order_closed->closed_at
                                                     : env->occurred_at;
    snprintf(b1, sizeof b1, "%" PRId64, at);
    const char *v[2] = {order_no, b1};
    pg_tx_add(tx,
              "UPDATE sla.timers SET closed_at = to_timestamp($2::bigint / 1000.0)"
              " WHERE order_no = $1 AND closed_at IS NULL",
              2, v, NULL, NULL);
  }
}

static void on_committed(const Kesu__V1__Envelope *env, void *arg) {
  app *a = arg;
  metric_add(a->m_applied, 1);
  if (env->payload_case == KESU__V1__ENVELOPE__PAYLOAD_WORK_ORDER_CREATED) {
    timer_spec ts;
    spec_of_created(env, &ts);
    if (!*ts.order_no) return;
    sla_timer *t = timer_set_add(&a->timers, ts.order_no, step_name(KESU__V1__STEP__ANSWER),
                                 ts.unit_id, ts.region, ts.started, ts.warn_at, ts.due_at,
                                 ts.limit_s);
    if (t) timer_set_arm(&a->timers, t);
    arm_fire_timer(a);
  } else if (env->payload_case == KESU__V1__ENVELOPE__PAYLOAD_WORK_ORDER_CLOSED) {
    sla_timer *t = timer_set_get(&a->timers, order_of_closed(env), step_name(KESU__V1__STEP__ANSWER));
    if (!t) return;
    if (t->inflight)
      t->closed = true; /* the fire in flight finds closed_at set; freed when it returns */
    else
      timer_set_del(&a->timers, t);
    arm_fire_timer(a);
  }
}

/* --- firing ------------------------------------------------------------- */

static void add_fire(app *a, pg_tx *tx, sla_timer *t, bool warning, int64_t now) {
  char event_id[37];
  uuid_v4(event_id);
  Kesu__V1__Envelope env = KESU__V1__ENVELOPE__INIT;
  Kesu__V1__SlaWarning w = KESU__V1__SLA_WARNING__INIT;
  Kesu__V1__SlaBreached b = KESU__V1__SLA_BREACHED__INIT;
  env.producer = "sla";
  env.event_id = event_id;
  env.occurred_at = now;
  env.order_no = t->order_no;
  env.region = t->region;
  if (warning) {
    w.order_no = t->order_no;
    w.step = step_from_name(t->step);
    w.unit_id = t->unit_id;
    w.started_at = t->started_at;
    w.due_at = t->due_at;
    w.limit_seconds = t->limit_seconds;
    env.type = EV_SLA_WARNING;
    env.payload_case = KESU__V1__ENVELOPE__PAYLOAD_SLA_WARNING;
    env.sla_warning = &w;
  } else {
    b.order_no = t->order_no;
    b.step = step_from_name(t->step);
    b.unit_id = t->unit_id;
    b.started_at = t->started_at;
    b.due_at = t->due_at;
    b.limit_seconds = t->limit_seconds;
    env.type = EV_SLA_BREACHED;
    env.payload_case = KESU__V1__ENVELOPE__PAYLOAD_SLA_BREACHED;
    env.sla_breached = &b;
  }
  size_t len;
  unsigned char *buf = envelope_pack(&env, &len);
  char ms[24];
  snprintf(ms, sizeof ms, "%" PRId64, now);
  const char *v[6] = {t->order_no, t->step, warning ? "warning" : "breach", event_id, ms,
                      (const char *)buf};
  int lens[6] = {0, 0, 0, 0, 0, (int)len};
  int fmts[6] = {0, 0, 0, 0, 0, 1};
  pg_tx_add(tx, "SELECT sla.fire($1, $2, $3, $4::uuid, $5::bigint, $6::bytea)", 6, v, lens, fmts);
  free(buf);
  a->fires[a->nfires++] = (fire_item){t, warning};
}

static void on_fired(const pg_result_set *rs, void *arg) {
  app *a = arg;
  a->firing = false;
  if (!rs->ok) {
    log_error("sla: firing %d events failed (%s): %s — retrying", a->nfires, rs->sqlstate,
              rs->error);
    a->retry_after = mono_ms() + RETRY_MS;
  }
  for (int i = 0; i < a->nfires; i++) {
    fire_item *f = &a->fires[i];
    sla_timer *t = f->t;
    if (rs->ok) {
      PGresult *r = rs->res[i];
      bool fired = r && PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
      if (fired) {
        metric_add(f->warning ? a->m_warnings : a->m_breaches, 1);
        log_info("sla: %s %s %s (due %" PRId64 ")", f->warning ? "warning" : "breach", t->order_no,
                 t->step, t->due_at);
      }
      /* Not fired means already recorded or closed in the database: either
       * way this step of the timer is done. */
      if (f->warning)
        t->warned = true;
      else
        t->breached = true;
    }
    /* The last item of a timer settles it. */
    if (i + 1 < a->nfires && a->fires[i + 1].t == t) continue;
    t->inflight = false;
    if (t->closed || t->breached)
      timer_set_del(&a->timers, t);
    else
      timer_set_arm(&a->timers, t);
  }
  a->nfires = 0;
  arm_fire_timer(a);
  if (rs->ok) check_due(a); /* more may be due */
}

/* Timers fire only once the router's stream has been caught up since start:
 * an order closed while we were down must be seen closed before its timer,
 * due meanwhile, would fire. If the router stays unreachable, timers fire
 * anyway after CATCH_UP_WAIT_MS (deadlines do not wait for the router). */
static bool may_fire(app *a) {
  if (a->caught_up) return true;
  if (a->cons && consumer_live(a->cons)) {
    a->caught_up = true;
    return true;
  }
  if (mono_ms() - a->started_mono > CATCH_UP_WAIT_MS) {
    log_warn("sla: router stream not caught up after %d s; firing due timers anyway",
             CATCH_UP_WAIT_MS / 1000);
    a->caught_up = true;
    return true;
  }
  return false;
}

static void check_due(app *a) {
  if (!a->loaded || a->firing || !pg_conn_ready(a->pg) || !may_fire(a)) return;
  if (a->retry_after && mono_ms() < a->retry_after) return;
  a->retry_after = 0;
  int64_t now = clock_now_ms();
  pg_tx *tx = NULL;
  sla_timer *t;
  /* Each timer adds at most two statements (warning then breach). */
  while (a->nfires + 2 <= FIRE_BATCH * 2 && (t = timer_set_pop_due(&a->timers, now))) {
    if (!tx) tx = pg_tx_new();
    t->inflight = true;
    if (!t->warned) {
      add_fire(a, tx, t, true, now);
      /* The clock jumped past both: the warning first, then the breach. */
      if (now >= t->due_at) add_fire(a, tx, t, false, now);
    } else {
      add_fire(a, tx, t, false, now);
    }
    if (a->nfires >= FIRE_BATCH) break;
  }
  if (!tx) return;
  a->firing = true;
  pg_conn_submit(a->pg, tx, on_fired, a);
}

static void on_fire_timer(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  app *a = arg;
  check_due(a);
  arm_fire_timer(a);
}

/* --- start-up: load open timers, then consume ------------------------------ */

static void load_timers(app *a);

static void on_loaded(const pg_result_set *rs, void *arg) {
  app *a = arg;
  a->loading = false;
  if (!rs->ok) {
    log_warn("sla: loading timers failed: %s — retrying", rs->error);
    struct timeval tv = {1, 0};
    evtimer_add(a->ev_reload, &tv);
    return;
  }
  PGresult *r = rs->res[0];
  int n = PQntuples(r);
  for (int i = 0; i < n; i++) {
    sla_timer *t = timer_set_add(
        &a->timers, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
        PQgetvalue(r, i, 3), strtoll(PQgetvalue(r, i, 4), NULL, 10),
        strtoll(PQgetvalue(r, i, 5), NULL, 10), strtoll(PQgetvalue(r, i, 6), NULL, 10),
        strtoll(PQgetvalue(r, i, 7), NULL, 10));
    if (!t) continue;
    t->warned = strcmp(PQgetvalue(r, i, 8), "t") == 0;
    timer_set_arm(&a->timers, t);
  }
  a->loaded = true;
  log_info("sla: %d open timers loaded", n);
  if (!a->cons) {
    consumer_config cc = {.schema = "sla",
                          .producer = "router",
                          .pub_endpoint = a->router_pub,
                          .replay_endpoint = a->router_replay,
                          .apply = on_apply,
                          .committed = on_committed,
                          .arg = a};
    a->cons = consumer_new(a->base, a->pg, &cc);
    if (!a->cons) log_error("sla: cannot start the router consumer");
  }
  arm_fire_timer(a);
  check_due(a); /* timers that came due while we were down fire once caught up */
}

static void load_timers(app *a) {
  if (a->loading || a->loaded) return;
  a->loading = true;
  pg_tx *tx = pg_tx_new();
  pg_tx_add(tx,
            "SELECT order_no, step, coalesce(unit_id, ''), coalesce(region, ''), " MS("started_at")
            ", " MS("warn_at") ", " MS("due_at") ", limit_seconds, warned_at IS NOT NULL"
            " FROM sla.timers WHERE closed_at IS NULL AND breached_at IS NULL",
            0, NULL, NULL, NULL);
  pg_conn_submit(a->pg, tx, on_loaded, a);
}

static void on_reload(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  load_timers(arg);
}

/* --- HTTP --------------------------------------------------------------- */

typedef struct {
  app *a;
  struct evhttp_request *req;
  bool admin;
  char scope[64];
} timers_req;

static json_t *json_time(PGresult *r, int row, int col) {
  if (PQgetisnull(r, row, col)) return json_null();
  char buf[40];
  clock_format_ms(strtoll(PQgetvalue(r, row, col), NULL, 10), buf, sizeof buf);
  return json_string(buf);
}

static void on_timers_rows(const pg_result_set *rs, void *arg) {
  timers_req *q = arg;
  if (!rs->ok) {
    http_reply_error(q->req, 503, "unavailable", "database unavailable", NULL);
    free(q);
    return;
  }
  PGresult *r = rs->res[0];
  int n = PQntuples(r);
  if (n == 0) {
    http_reply_error(q->req, 404, "not_found", "no timers for this order", NULL);
    free(q);
    return;
  }
  if (!q->admin && !auth_scope_covers(q->scope, PQgetvalue(r, 0, 8))) {
    http_reply_error(q->req, 403, "forbidden", "the order is outside your scope", NULL);
    free(q);
    return;
  }
  json_t *arr = json_array();
  for (int i = 0; i < n; i++) {
    const char *state = !PQgetisnull(r, i, 6)   ? "closed"
                        : !PQgetisnull(r, i, 5) ? "breached"
                        : !PQgetisnull(r, i, 4) ? "warned"
                                                : "open";
    json_t *t = json_object();
    json_object_set_new(t, "step", json_string(PQgetvalue(r, i, 0)));
    json_object_set_new(t, "started_at", json_time(r, i, 1));
    json_object_set_new(t, "warn_at", json_time(r, i, 2));
    json_object_set_new(t, "due_at", json_time(r, i, 3));
    json_object_set_new(t, "warned_at", json_time(r, i, 4));
    json_object_set_new(t, "breached_at", json_time(r, i, 5));
    json_object_set_new(t, "closed_at", json_time(r, i, 6));
    json_object_set_new(t, "state", json_string(state));
    json_object_set_new(t, "unit_id", json_string(PQgetvalue(r, i, 7)));
    json_object_set_new(t, "limit_seconds", json_integer(strtoll(PQgetvalue(r, i, 9), NULL, 10)));
    json_array_append_new(arr, t);
  }
  json_t *body = json_object();
  json_object_set_new(body, "order_no", json_string(PQgetvalue(r, 0, 10)));
  json_object_set_new(body, "timers", arr);
  http_reply_json(q->req, 200, body);
  free(q);
}

static void h_get_timers(struct evhttp_request *req, const auth_ctx *auth, char **segs, int nsegs,
                         void *arg) {
  app *a = arg;
  timers_req *q = calloc(1, sizeof *q);
  q->a = a;
  q->req = req;
  q->admin = strcmp(auth->role, "admin") == 0;
  snprintf(q->scope, sizeof q->scope, "%s", auth->scope ? auth->scope : "");
  pg_tx *tx = pg_tx_new();
  const char *v[1] = {segs[0]};
  pg_tx_add(tx,
            "SELECT step, " MS("started_at") ", " MS("warn_at") ", " MS("due_at") ", " MS(
                "warned_at") ", " MS("breached_at") ", " MS("closed_at") ", coalesce(unit_id, ''),"
            " coalesce(region, ''), limit_seconds, order_no"
            " FROM sla.timers WHERE order_no = $1 ORDER BY started_at, step",
            1, v, NULL, NULL);
  pg_conn_submit(a->pg, tx, on_timers_rows, q);
}

static bool is_ready(void *arg) {
  app *a = arg;
  return pg_conn_ready(a->pg) && a->loaded && a->cons && consumer_live(a->cons) && a->pub;
}

static void metrics_cb(struct evbuffer *out, void *arg) {
  app *a = arg;
  evbuffer_add_printf(out,
                      "# HELP kesu_sla_consumer_offset Last router seq applied\n"
                      "# TYPE kesu_sla_consumer_offset gauge\n"
                      "kesu_sla_consumer_offset{producer=\"router\"} %" PRIu64 "\n"
                      "# HELP kesu_sla_published_total SLA events published\n"
                      "# TYPE kesu_sla_published_total counter\n"
                      "kesu_sla_published_total %" PRIu64 "\n",
                      a->cons ? consumer_offset(a->cons) : 0,
                      a->pub ? outbox_publisher_published(a->pub) : 0);
}

int main(void) {
  struct event_base *base = service_init("sla");
  app a = {.base = base};
  a.fires = calloc(FIRE_BATCH * 2 + 2, sizeof *a.fires);
  a.started_mono = mono_ms();
  timer_set_init(&a.timers);
  a.m_open = metric_gauge("sla_open_timers", "Open SLA timers held in memory");
  a.m_warnings = metric_counter("sla_warnings_total", "SlaWarning events emitted");
  a.m_breaches = metric_counter("sla_breaches_total", "SlaBreached events emitted");
  a.m_applied = metric_counter("sla_events_applied_total", "Router events applied");
  a.router_pub = cfg_endpoint("KESU_ROUTER_PUB", PORT_ROUTER_PUB);
  a.router_replay = cfg_endpoint("KESU_ROUTER_REPLAY", PORT_ROUTER_REPLAY);
  const char *pub = cfg_endpoint("KESU_SLA_PUB", PORT_SLA_PUB);
  const char *replay = cfg_endpoint("KESU_SLA_REPLAY", PORT_SLA_REPLAY);

  a.pg = pg_conn_new(base, cfg_pg_conninfo("sla"), "sla");
  a.auth = auth_cache_new(base, a.pg);
  char host[128];
  int port;
  cfg_http_listen("SLA", PORT_SLA_HTTP, host, sizeof host, &port);
  a.http = http_server_new(base, host, port, a.auth);
  if (!a.http) return 1;
  a.pub = outbox_publisher_new(base, a.pg, "sla", "sla", pub, replay);
  if (!a.pub) {
    log_error("sla: cannot bind %s / %s", pub, replay);
    return 1;
  }
  http_route(a.http, EVHTTP_REQ_GET, "/v1/timers/*", 0, h_get_timers, &a);
  http_set_ready(a.http, is_ready, &a);
  http_set_metrics(a.http, metrics_cb, &a);

  a.ev_fire = evtimer_new(base, on_fire_timer, &a);
  a.ev_reload = evtimer_new(base, on_reload, &a);
  a.ev_poll = event_new(base, -1, EV_PERSIST, on_fire_timer, &a);
  struct timeval poll = {0, POLL_MS * 1000};
  event_add(a.ev_poll, &poll);
  load_timers(&a);

  int rc = service_run(base);

  consumer_destroy(&a.cons);
  outbox_publisher_destroy(&a.pub);
  http_server_destroy(&a.http);
  event_free(a.ev_fire);
  event_free(a.ev_poll);
  event_free(a.ev_reload);
  auth_cache_destroy(&a.auth);
  pg_conn_destroy(&a.pg);
  timer_set_free(&a.timers);
  free(a.fires);
  event_base_free(base);
  return rc;
}
