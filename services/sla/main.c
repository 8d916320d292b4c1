/* kesu-sla — the SLA watcher (R-25 … R-37).
 *
 * Consumes the router's stream: WorkOrderCreated starts an ANSWER timer
 * whose limit comes from the most specific policy (sla.policies) counted on
 * the working calendar (sla.calendar_days), WorkOrderClosed closes it. Past
 * the breach a timer climbs the escalation ladder (150 % → the unit above,
 * 200 % → the next, R-32) until closed. Every warning, breach and escalation
 * is a supervision record 督办记录 written by sla.fire with its event; a
 * breach also books the assessment ledger. Open timers live in a min-heap
 * by next fire time; when one comes due, one transaction per batch calls
 * sla.fire() per timer, which records the warning/breach and appends
 * SlaWarning/SlaBreached to the outbox only if not recorded before and the
 * timer is not closed. The publisher puts them on PUB 7120 / replay 7121.
 *
 * Step timers: each WorkOrderStepChanged closes the step left
 * and starts the step entered (review, handle, feedback, callback after a
 * close), restarting it for the new holder on transfer/escalation.
 * Policies match on kind, stream, tier and customer level (sla.orders keeps
 * them for later steps). At 08:00 local each day one DailyDueList event
 * (R-36, sla.daily_lists: once a day). Every other move of a deadline
 * (re-commit — also the workflow's action recommit —, appointment,
 * postponement, pause/resume, reclassify) appends SlaDeadlineMoved in its
 * transaction (sql/007_deadline_moved.sql) so the notifier tells the centre,
 * the holder and, for an agreed time, the customer.
 *
 * HTTP: GET /v1/timers/{order_no}; POST /v1/timers/{order_no}/recommit
 * (R-34, "customer_caused": no deduction); POST /v1/timers/{order_no}/pause
 * and /resume {"step"} (the clock waits for the customer; resuming moves the
 * deadlines); GET /v1/supervision?unit=&month=&order_no= (督办记录);
 * GET /v1/due?unit=&date= (R-36); GET /v1/ledger?unit=&month=&order_no= (R-37).
 *
 * The clock may jump (KESU_CLOCK=control:) without any signal, so besides a
 * timer armed for the next fire time the heap is also checked every 200 ms.
 */
#include <event2/event.h>
#include <inttypes.h>
#include <malloc.h>
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
#include "reference.h"
#include "service.h"
#include "strmap.h"
#include "timers.h"

enum { LOAD_CHUNK = 50000, FIRE_BATCH = 500, POLL_MS = 200, RETRY_MS = 1000, CATCH_UP_WAIT_MS = 30000 };

#define MS(col) "(extract(epoch from " col ") * 1000)::bigint"

typedef enum { FIRE_WARNING, FIRE_BREACH, FIRE_ESCALATION } fire_kind;

typedef struct {
  sla_timer *t;
  fire_kind kind;
  int level;  /* escalation rung 1 or 2 */
  int64_t at; /* the fire's time */
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
  strmap *orders; /* order_no → order_attr */
  sla_reference ref;
  bool ref_loaded, ref_loading, ref_again;
  struct event *ev_fire, *ev_poll, *ev_reload;
  bool loaded, loading;
  char load_after[2][80]; /* key of the last timer loaded: (order_no, step) */
  long nloaded;
  bool firing;
  fire_item *fires;
  int nfires;
  int64_t retry_after; /* monotonic ms */
  int64_t started_mono;
  bool caught_up; /* the router stream was caught up at least once since start */
  int32_t daily_done; /* local day whose DailyDueList is out (or known to be) */
  bool daily_busy;
  metric *m_open, *m_warnings, *m_breaches, *m_escalations, *m_applied;
} app;

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static Kesu__V1__Step step_from_name(const char *s) {
  for (int v = 1; v <= 9; v++)
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

/* The columns of TIMER_COLS, as loaded at start and on resume. */
#define TIMER_COLS                                                                            \
  "SELECT order_no, step, coalesce(unit_id, ''), coalesce(region, ''), " MS("started_at")    \
  ", " MS("warn_at") ", " MS("due_at") ", limit_seconds, warned_at IS NOT NULL,"             \
  " breached_at IS NOT NULL, " MS("escalate1_at") ", " MS("escalate2_at") ", escalated"    \
  " FROM sla.timers"

/* --- the stream: timers from router events -------------------------------- */

/* What the policies need of an order, from its WorkOrderCreated; kept for
 * the timers of its later steps (sla.orders, reloaded at start). Written
 * while a batch is built: replaying a batch puts the same values again. */
typedef struct {
  char kind[16], stream[16], tier[16], level[40];
  char area[16]; /* urban | rural (repairs, R-29); "" on WorkOrderCreated = urban */
  bool large_fault; /* repair: the fix step uses the large-fault limit */
  char work[24];    /* repair: "" (a fault), "install" or "install_no_network" */
} order_attr;

static void attr_put(app *a, const char *order_no, const order_attr *v) {
  order_attr *o = malloc(sizeof *o);
  *o = *v;
  free(strmap_put(a->orders, order_no, o));
}

static void attr_drop(app *a, const char *order_no) { free(strmap_remove(a->orders, order_no)); }

static void attr_of_created(const Kesu__V1__WorkOrderCreated *c, order_attr *o) {
  memset(o, 0, sizeof *o);
  if (c->kind) snprintf(o->kind, sizeof o->kind, "%s", kind_name(c->kind));
  if (c->stream) snprintf(o->stream, sizeof o->stream, "%s", stream_name(c->stream));
  if (c->tier) snprintf(o->tier, sizeof o->tier, "%s", tier_name(c->tier));
  snprintf(o->level, sizeof o->level, "%s", c->customer_level ? c->customer_level : "");
  if (!*o->level && c->vip) snprintf(o->level, sizeof o->level, "vip");
  snprintf(o->area, sizeof o->area, "%s", c->area && *c->area ? c->area : "urban");
  /* R-29 installation: problem type installation (the network is in place:
   * the same day) or installation_no_network (2 working days). */
  if (c->kind == KESU__V1__KIND__REPAIR && c->problem_type) {
    if (strcmp(c->problem_type, "installation") == 0)
      snprintf(o->work, sizeof o->work, "install");
    else if (strcmp(c->problem_type, "installation_no_network") == 0)
      snprintf(o->work, sizeof o->work, "install_no_network");
  }
}

/* The policy step of a timer's step: a repair's fix is small or large. */
static const char *policy_step(const order_attr *o, const char *step) {
  if (strcmp(step, "fix") == 0) {
    if (o && *o->work) return o->work; /* installation: its own limit, not a fault's */
    return o && o->large_fault ? "fix_large" : "fix_small";
  }
  return step;
}

enum { DAY_MS_ = 86400000 };

/* R-29 "urban reports before 21:00 (24:00 in special-time mode) are handled
 * the same day": the policy step `cutoff` (clock_hours = the local hour of
 * day, 21; a row with 24 is special-time mode) for the order's attributes.
 * A repair accepted at or after the cutoff (until midnight) starts its arrive
 * and fix timers at the next day's business opening on its region's
 * calendar; without a matching row (rural) they start at acceptance. */
static int64_t repair_start(app *a, const order_attr *o, const char *region, int64_t at) {
  policy_key k = {.kind = o->kind, .stream = o->stream, .tier = o->tier, .level = o->level,
                  .area = o->area, .step = "cutoff"};
  const sla_policy *p = policy_match(&a->ref.policies, &k);
  if (!p || p->unit != SLA_UNIT_CLOCK_HOURS) return at;
  const sla_calendar *cal = sla_reference_calendar(&a->ref, region ? region : "");
  int64_t off = (int64_t)cal->tz_offset_min * 60000;
  int64_t local = at + off;
  int64_t day = local / DAY_MS_ - (local % DAY_MS_ < 0);
  if (local - day * DAY_MS_ < (int64_t)(p->limit * 3600000.0 + 0.5)) return at;
  return (day + 1) * DAY_MS_ + (int64_t)cal->open_min * 60000 - off;
}

typedef struct {
  const char *order_no, *step, *unit_id, *region;
  int64_t started, limit_s;
  sla_deadline d;
} timer_spec;

/* The limit of `step` for an order with attributes o (NULL: unknown, only
 * '*' policies match) started at `start` (R-25 … R-30). */
static void spec_for(app *a, const order_attr *o, const char *step, const char *region,
                     int64_t start, timer_spec *ts) {
  ts->step = step;
  ts->started = start;
  policy_key k = {.step = policy_step(o, step)};
  if (o) {
    k.kind = o->kind;
    k.stream = o->stream;
    k.tier = o->tier;
    k.level = o->level;
    k.area = o->area;
  }
  /* the calendar of the order's region */
  sla_reference_deadlines_in(&a->ref, region ? region : "", &k, start, &ts->d);
  ts->limit_s = (ts->d.due_at - ts->started) / 1000;
}

/* The ANSWER step's limit, from the kind, stream, tier and customer level
 * on WorkOrderCreated (so the appeal, escalated and VIP rows apply). */
static void spec_of_created(app *a, const Kesu__V1__Envelope *env, timer_spec *ts) {
  const Kesu__V1__WorkOrderCreated *c = env->work_order_created;
  order_attr o;
  attr_of_created(c, &o);
  const char *region = *env->region ? env->region : c->region;
  spec_for(a, &o, step_name(KESU__V1__STEP__ANSWER), region,
           c->accepted_at ? c->accepted_at : env->occurred_at, ts);
  ts->order_no = *c->order_no ? c->order_no : env->order_no;
  ts->unit_id = c->unit_id;
  ts->region = region;
}

/* The other timers a new order starts besides the answer (at most 2): a
 * repair's arrival and fix from acceptance (R-29: 30 min / 1 h urban, 2 h /
 * 12 h rural). Other orders' handling starts with the holder's sign. */
static int specs_of_created(app *a, const Kesu__V1__Envelope *env, timer_spec out[2]) {
  const Kesu__V1__WorkOrderCreated *c = env->work_order_created;
  timer_spec ans;
  spec_of_created(a, env, &ans);
  order_attr o;
  attr_of_created(c, &o);
  int n = 0;
  if (c->kind == KESU__V1__KIND__REPAIR) {
    int64_t start = repair_start(a, &o, ans.region, ans.started);
    if (!*o.work) /* an installation has no arrival limit */
      spec_for(a, &o, "arrive", ans.region, start, &out[n++]);
    spec_for(a, &o, "fix", ans.region, start, &out[n++]);
  }
  for (int i = 0; i < n; i++) {
    out[i].order_no = ans.order_no;
    out[i].unit_id = ans.unit_id;
    out[i].region = ans.region;
  }
  return n;
}

static const char *order_of_closed(const Kesu__V1__Envelope *env) {
  const Kesu__V1__WorkOrderClosed *c = env->work_order_closed;
  return *c->order_no ? c->order_no : env->order_no;
}

/* The step timer a workflow state runs: the centre reviews and
 * dispatches, the holder handles, the centre replies after feedback, the
 * callback follows the close. NULL: none. Department handling counts from
 * the holder's sign 签收 (dispatched → handling), for the first holder and
 * for every later one (transfer, escalation, re-dispatch): a dispatched
 * order not signed yet runs no handling timer — its answer timer (R-25,
 * from acceptance) runs all along. */
static const char *step_of_state(const char *state) {
  if (strcmp(state, "review") == 0) return "review";
  if (strcmp(state, "handling") == 0) return "handle";
  if (strcmp(state, "feedback") == 0) return "feedback";
  if (strcmp(state, "closed") == 0) return "callback";
  return NULL;
}

static bool same(const char *x, const char *y) {
  return x == y || (x && y && strcmp(x, y) == 0);
}

/* What one WorkOrderStepChanged does to the step timers: the step left is
 * closed (R-35: it never warns again), the step entered starts a timer for
 * the new holder — also when only the holder changed (transfer, escalate:
 * the new holder's limit, from now). The answer step ends when the
 * order is answered. */
typedef struct {
  const char *order_no, *close_step, *open_step, *holder, *region;
  bool restart; /* open_step starts over even if it runs (new holder) */
  bool close_answer, done;
  bool arrived;    /* repair: on site, the arrival step ends */
  bool reclassify; /* tier / customer level / fault size changed */
  const char *tier, *level, *reason, *actor;
  bool vip;
  int64_t at;
  int64_t recommit_to; /* action recommit — the answer step's new deadline */
} step_change;

static bool step_change_of(const Kesu__V1__Envelope *env, step_change *sc) {
  const Kesu__V1__WorkOrderStepChanged *s = env->work_order_step_changed;
  memset(sc, 0, sizeof *sc);
  sc->order_no = *s->order_no ? s->order_no : env->order_no;
  if (!*sc->order_no) return false;
  sc->at = s->at ? s->at : env->occurred_at;
  sc->holder = s->holder_unit;
  sc->region = env->region;
  const char *from = step_of_state(s->from_state), *to = step_of_state(s->to_state);
  const char *act = s->action;
  bool callback_done = strcmp(act, "callback") == 0 || strcmp(act, "archive") == 0;
  /* Only a close opens the callback step (not an enquiry answered on the spot). */
  if (same(to, "callback") && (callback_done || strcmp(act, "close") != 0) && !same(from, "callback"))
    to = NULL;
  if (callback_done) to = NULL;
  bool restart = !same(from, to) || strcmp(act, "transfer") == 0 ||
                 strcmp(act, "escalate") == 0 || strcmp(act, "reopen") == 0 ||
                 strcmp(act, "return") == 0 || strcmp(act, "dispatch") == 0;
  sc->restart = restart;
  if (restart) sc->close_step = from;
  sc->open_step = to; /* without restart: only if it does not run yet (sign) */
  sc->close_answer = strcmp(s->to_state, "answered") == 0 || strcmp(s->to_state, "closed") == 0 ||
                     strcmp(s->to_state, "archived") == 0;
  sc->done = callback_done;
  sc->arrived = strcmp(act, "arrive") == 0;
  sc->tier = s->tier;
  sc->level = s->customer_level;
  sc->vip = s->vip;
  sc->reason = s->reason;
  sc->actor = s->actor;
  if (strcmp(act, "recommit") == 0 && s->promised_by > 0) sc->recommit_to = s->promised_by;
  /* A re-tier / customer-level change (action reclassify), or a repair found
   * to be a large fault (reason "large_fault" on arrive or reclassify). */
  sc->reclassify = strcmp(act, "reclassify") == 0 ||
                   (sc->arrived && s->reason && strcmp(s->reason, "large_fault") == 0);
  if (strcmp(act, "reclassify") == 0) { /* the state stays: no step opens or closes */
    sc->close_step = sc->open_step = NULL;
    sc->restart = false;
  }
  return true;
}

/* the order's attributes after a reclassify (tier, customer level,
 * VIP, large fault); false if nothing the policies see changed. */
static bool attr_reclassified(const order_attr *cur, const step_change *sc, order_attr *next) {
  *next = *cur;
  /* The router sends the order as it is after the step: on a reclassify
   * tier, customer level and VIP are the new values (a level may go down). */
  if (sc->reclassify && !sc->arrived) {
    if (sc->tier && *sc->tier) snprintf(next->tier, sizeof next->tier, "%s", sc->tier);
    snprintf(next->level, sizeof next->level, "%s",
             sc->level && *sc->level ? sc->level : sc->vip ? "vip" : "");
  }
  if (sc->reason && strcmp(sc->reason, "large_fault") == 0) next->large_fault = true;
  return memcmp(cur, next, sizeof *cur) != 0;
}

/* The steps whose running timers a reclassify recomputes. */
static const char *const recompute_steps[] = {"answer", "review", "handle", "feedback",
                                              "arrive", "fix"};
enum { N_RECOMPUTE = sizeof recompute_steps / sizeof *recompute_steps };

/* An arrival whose deadline is the time agreed with the customer (R-29
 * appointment) keeps it through a reclassify (the fix step's move is a
 * shift in paused_ms, recomputed like a pause). */
#define APPOINTED                                                                         \
  "($2 = 'arrive' AND EXISTS (SELECT 1 FROM sla.recommits r WHERE r.order_no = $1"        \
  " AND r.step = $2 AND r.kind = 'appointment'))"

/* a running timer's deadlines from its original start under the
 * order's new attributes; the old due goes to sla.recommits (kind
 * 'reclassify') and original_due_at keeps the first one. Timers already
 * overdue, paused, closed or set by an appointment keep theirs; a rain/snow
 * postponement counts like a pause (paused_ms). */
static void sql_recompute(app *a, pg_tx *tx, const step_change *sc, const order_attr *o) {
  for (int i = 0; i < N_RECOMPUTE; i++) {
    sla_timer *t = timer_set_get(&a->timers, sc->order_no, recompute_steps[i]);
    if (!t || t->closed || t->breached) continue;
    timer_spec ts;
    spec_for(a, o, recompute_steps[i], t->region, t->started_at, &ts);
    char b[7][24];
    snprintf(b[0], 24, "%" PRId64, ts.d.warn_at);
    snprintf(b[1], 24, "%" PRId64, ts.d.due_at);
    snprintf(b[2], 24, "%" PRId64, ts.d.escalate_at[0]);
    snprintf(b[3], 24, "%" PRId64, ts.d.escalate_at[1]);
    snprintf(b[4], 24, "%" PRId64, ts.limit_s);
    snprintf(b[5], 24, "%" PRId64, sc->at);
    snprintf(b[6], 24, "%" PRId64, t->started_at);
    const char *v1[7] = {sc->order_no, recompute_steps[i], b[1], sc->reason ? sc->reason : "",
                         sc->actor ? sc->actor : "", b[5], b[6]};
    pg_tx_add(tx,
              "INSERT INTO sla.recommits (order_no, step, old_due_at, new_due_at, reason, actor, at,"
              " kind) SELECT order_no, step, due_at, to_timestamp($3::bigint / 1000.0),"
              " CASE WHEN $4 = '' THEN 'reclassify' ELSE $4 END, $5,"
              " to_timestamp($6::bigint / 1000.0), 'reclassify' FROM sla.timers"
              " WHERE order_no = $1 AND step = $2 AND closed_at IS NULL AND breached_at IS NULL"
              " AND paused_at IS NULL AND started_at = to_timestamp($7::bigint / 1000.0)"
              " AND NOT " APPOINTED
              " AND due_at <> to_timestamp($3::bigint / 1000.0) + paused_ms * interval '1 ms'",
              7, v1, NULL, NULL);
    const char *v2[11] = {sc->order_no, recompute_steps[i], b[0], b[1], b[2], b[3], b[4],
                          ts.d.policy_id ? ts.d.policy_id : "", sla_unit_name(ts.d.unit), b[6],
                          b[5]};
    /* a warning given for the old limit is given again at 90 % of the new
     * one if that is still ahead */
    pg_tx_add(tx,
              "UPDATE sla.timers SET original_due_at = coalesce(original_due_at, due_at),"
              " warned_at = CASE WHEN to_timestamp($3::bigint / 1000.0) + paused_ms"
              " * interval '1 ms' > to_timestamp($11::bigint / 1000.0) THEN NULL ELSE warned_at END,"
              " warn_at = to_timestamp($3::bigint / 1000.0) + paused_ms * interval '1 ms',"
              " due_at = to_timestamp($4::bigint / 1000.0) + paused_ms * interval '1 ms',"
              " escalate1_at = to_timestamp($5::bigint / 1000.0) + paused_ms * interval '1 ms',"
              " escalate2_at = to_timestamp($6::bigint / 1000.0) + paused_ms * interval '1 ms',"
              " limit_seconds = $7::bigint, policy_id = NULLIF($8, ''), limit_unit = $9"
              " WHERE order_no = $1 AND step = $2 AND closed_at IS NULL AND breached_at IS NULL"
              " AND paused_at IS NULL AND started_at = to_timestamp($10::bigint / 1000.0)"
              " AND NOT " APPOINTED,
              11, v2, NULL, NULL);
  }
}

static void sql_close_step(pg_tx *tx, const char *order_no, const char *step, int64_t at) {
  char b[24];
  snprintf(b, sizeof b, "%" PRId64, at);
  const char *v[3] = {order_no, step, b};
  pg_tx_add(tx,
            "UPDATE sla.timers SET closed_at = to_timestamp($3::bigint / 1000.0)"
            " WHERE order_no = $1 AND step = $2 AND closed_at IS NULL",
            3, v, NULL, NULL);
}

/* restart: a timer of the same step before (closed or not) starts over. */
static void sql_open_timer(pg_tx *tx, const timer_spec *ts, bool restart) {
  char b1[24], b2[24], b3[24], b4[24], b5[24], b6[24];
  snprintf(b1, sizeof b1, "%" PRId64, ts->started);
  snprintf(b2, sizeof b2, "%" PRId64, ts->d.warn_at);
  snprintf(b3, sizeof b3, "%" PRId64, ts->d.due_at);
  snprintf(b4, sizeof b4, "%" PRId64, ts->limit_s);
  snprintf(b5, sizeof b5, "%" PRId64, ts->d.escalate_at[0]);
  snprintf(b6, sizeof b6, "%" PRId64, ts->d.escalate_at[1]);
  const char *v[12] = {ts->order_no, ts->step, ts->unit_id, ts->region,
                       b1, b2, b3, b4, b5, b6, ts->d.policy_id ? ts->d.policy_id : "",
                       sla_unit_name(ts->d.unit)};
  char sql[1600];
  snprintf(sql, sizeof sql,
           "INSERT INTO sla.timers (order_no, step, unit_id, region, started_at, warn_at, due_at,"
           " limit_seconds, escalate1_at, escalate2_at, policy_id, limit_unit, original_due_at)"
           " VALUES ($1, $2, NULLIF($3, ''), NULLIF($4, ''),"
           " to_timestamp($5::bigint / 1000.0), to_timestamp($6::bigint / 1000.0),"
           " to_timestamp($7::bigint / 1000.0), $8::bigint, to_timestamp($9::bigint / 1000.0),"
           " to_timestamp($10::bigint / 1000.0), NULLIF($11, ''), $12,"
           " to_timestamp($7::bigint / 1000.0))"
           " ON CONFLICT (order_no, step) DO %s",
           restart ? "UPDATE SET unit_id = EXCLUDED.unit_id, region = EXCLUDED.region,"
                     " started_at = EXCLUDED.started_at, warn_at = EXCLUDED.warn_at,"
                     " due_at = EXCLUDED.due_at, limit_seconds = EXCLUDED.limit_seconds,"
                     " escalate1_at = EXCLUDED.escalate1_at, escalate2_at = EXCLUDED.escalate2_at,"
                     " policy_id = EXCLUDED.policy_id, limit_unit = EXCLUDED.limit_unit,"
                     " original_due_at = EXCLUDED.original_due_at, warned_at = NULL,"
                     " breached_at = NULL, closed_at = NULL, escalated = 0, paused_at = NULL,"
                     " paused_ms = 0, customer_caused = false"
                   : "NOTHING");
  pg_tx_add(tx, sql, 12, v, NULL, NULL);
}

/* Repairs run arrival and fix instead of a handling step. */
static bool step_not_for(app *a, const char *order_no, const char *step) {
  const order_attr *o = strmap_get(a->orders, order_no);
  return step && strcmp(step, "handle") == 0 && o && strcmp(o->kind, "repair") == 0;
}

static void on_apply(pg_tx *tx, const Kesu__V1__Envelope *env, void *arg) {
  app *a = arg;
  if (env->payload_case == KESU__V1__ENVELOPE__PAYLOAD_WORK_ORDER_CREATED) {
    timer_spec ts;
    spec_of_created(a, env, &ts);
    if (!*ts.order_no) return;
    order_attr o;
    attr_of_created(env->work_order_created, &o);
    attr_put(a, ts.order_no, &o);
    const char *ov[8] = {ts.order_no, o.kind, o.stream, o.tier,
                         o.level, ts.region ? ts.region : "", o.area, o.work};
    pg_tx_add(tx,
              "INSERT INTO sla.orders (order_no, kind, stream, tier, level, region, area, work)"
              " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (order_no) DO NOTHING",
              8, ov, NULL, NULL);
    sql_open_timer(tx, &ts, false);
    timer_spec more[2];
    int n = specs_of_created(a, env, more);
    for (int i = 0; i < n; i++) sql_open_timer(tx, &more[i], false);
  } else if (env->payload_case == KESU__V1__ENVELOPE__PAYLOAD_WORK_ORDER_STEP_CHANGED) {
    step_change sc;
    if (!step_change_of(env, &sc)) return;
    if (sc.close_step) sql_close_step(tx, sc.order_no, sc.close_step, sc.at);
    if (sc.close_answer) {
      sql_close_step(tx, sc.order_no, step_name(KESU__V1__STEP__ANSWER), sc.at);
      sql_close_step(tx, sc.order_no, "arrive", sc.at);
      sql_close_step(tx, sc.order_no, "fix", sc.at);
    }
    if (sc.arrived) sql_close_step(tx, sc.order_no, "arrive", sc.at);
    if (sc.recommit_to) {
      /* R-34 re-commit recorded through the workflow (the handler's
       * 重新承诺): the final answer's deadline moves to the new promise, as
       * POST /v1/timers/{no}/recommit does (a time not ahead, or a step
       * closed/overdue, changes nothing); sla.recommits keeps the old one
       * and SlaDeadlineMoved is appended at commit (007). */
      char due[24], at[24];
      snprintf(due, sizeof due, "%" PRId64, sc.recommit_to);
      snprintf(at, sizeof at, "%" PRId64, sc.at);
      const char *rv[6] = {sc.order_no, step_name(KESU__V1__STEP__ANSWER), due,
                           sc.reason && *sc.reason ? sc.reason : "recommit",
                           sc.actor ? sc.actor : "", at};
      pg_tx_add(tx, "SELECT status FROM sla.recommit($1, $2, $3::bigint, $4, $5, $6::bigint)", 6,
                rv, NULL, NULL);
    }
    if (sc.reclassify) {
      order_attr *cur = strmap_get(a->orders, sc.order_no), next;
      /* Like WorkOrderCreated, memory is written while the batch is built;
       * a batch applied again writes the same rows again (not only on a
       * change: the first try may have been rolled back). */
      if (cur) {
        attr_reclassified(cur, &sc, &next);
        *cur = next;
        const char *ov[4] = {sc.order_no, next.tier, next.level, next.large_fault ? "t" : "f"};
        pg_tx_add(tx,
                  "UPDATE sla.orders SET tier = $2, level = $3, large_fault = $4::boolean"
                  " WHERE order_no = $1",
                  4, ov, NULL, NULL);
        sql_recompute(a, tx, &sc, &next);
      }
    }
    if (sc.open_step && !step_not_for(a, sc.order_no, sc.open_step)) {
      timer_spec ts;
      spec_for(a, strmap_get(a->orders, sc.order_no), sc.open_step, sc.region, sc.at, &ts);
      ts.order_no = sc.order_no;
      ts.unit_id = sc.holder;
      ts.region = sc.region;
      sql_open_timer(tx, &ts, sc.restart);
    }
    if (sc.done) {
      const char *v[1] = {sc.order_no};
      pg_tx_add(tx, "UPDATE sla.orders SET done = true WHERE order_no = $1", 1, v, NULL, NULL);
    }
  } else if (env->payload_case == KESU__V1__ENVELOPE__PAYLOAD_WORK_ORDER_CLOSED) {
    const char *order_no = order_of_closed(env);
    if (!*order_no) return;
    int64_t at = env->work_order_closed->closed_at ? env->work_order_closed->closed_at
                                                     : env->occurred_at;
    char b1[24];
    snprintf(b1, sizeof b1, "%" PRId64, at);
    const char *v[2] = {order_no, b1};
    pg_tx_add(tx,
              "UPDATE sla.timers SET closed_at = to_timestamp($2::bigint / 1000.0)"
              " WHERE order_no = $1 AND closed_at IS NULL AND step <> 'callback'",
              2, v, NULL, NULL);
  }
}

/* Memory follows the database: drop the timer (or, with a fire in flight,
 * mark it closed: freed when the fire returns). */
static void mem_close(app *a, const char *order_no, const char *step) {
  sla_timer *t = timer_set_get(&a->timers, order_no, step);
  if (!t) return;
  if (t->inflight)
    t->closed = true;
  else
    timer_set_del(&a->timers, t);
}

static void mem_open(app *a, const timer_spec *ts) {
  sla_timer *old = timer_set_get(&a->timers, ts->order_no, ts->step);
  if (old) {
    if (old->inflight) {
      /* the fire finds the row restarted (warn_at/due_at in the future) and
       * does nothing; the new deadlines are loaded at the next start */
      old->closed = true;
      log_warn("sla: %s %s restarted while firing; its new timer waits for a restart",
               ts->order_no, ts->step);
      return;
    }
    timer_set_del(&a->timers, old);
  }
  sla_timer *t = timer_set_add(&a->timers, ts->order_no, ts->step, ts->unit_id, ts->region,
                               ts->started, ts->d.warn_at, ts->d.due_at, ts->limit_s);
  if (t) {
    t->escalate_at[0] = ts->d.escalate_at[0];
    t->escalate_at[1] = ts->d.escalate_at[1];
    timer_set_arm(&a->timers, t);
  }
}

static void add_timer_rows_missing(const pg_result_set *rs, void *arg);

/* After a reclassify: the order's running timers (those not being fired)
 * come back from their rows with the recomputed deadlines. */
static void reload_order_timers(app *a, const char *order_no) {
  char steps[128] = "{";
  for (int i = 0; i < N_RECOMPUTE; i++) {
    sla_timer *t = timer_set_get(&a->timers, order_no, recompute_steps[i]);
    if (!t || t->inflight) continue;
    timer_set_del(&a->timers, t);
    if (steps[1]) strcat(steps, ",");
    strcat(steps, recompute_steps[i]);
  }
  strcat(steps, "}");
  if (!steps[2]) return;
  const char *v[2] = {order_no, steps};
  pg_tx *tx = pg_tx_new();
  pg_tx_add(tx,
            TIMER_COLS " WHERE order_no = $1 AND step = ANY($2::text[]) AND closed_at IS NULL"
            " AND escalated < 2 AND paused_at IS NULL"
            " AND (breached_at IS NULL OR escalate1_at IS NOT NULL)",
            2, v, NULL, NULL);
  pg_conn_submit(a->pg, tx, add_timer_rows_missing, a);
}

static void on_committed(const Kesu__V1__Envelope *env, void *arg) {
  app *a = arg;
  metric_add(a->m_applied, 1);
  if (env->payload_case == KESU__V1__ENVELOPE__PAYLOAD_WORK_ORDER_CREATED) {
    timer_spec ts;
    spec_of_created(a, env, &ts);
    if (!*ts.order_no) return;
    if (!timer_set_get(&a->timers, ts.order_no, ts.step)) mem_open(a, &ts);
    timer_spec more[2];
    int n = specs_of_created(a, env, more);
    for (int i = 0; i < n; i++)
      if (!timer_set_get(&a->timers, more[i].order_no, more[i].step)) mem_open(a, &more[i]);
  } else if (env->payload_case == KESU__V1__ENVELOPE__PAYLOAD_WORK_ORDER_STEP_CHANGED) {
    step_change sc;
    if (!step_change_of(env, &sc)) return;
    if (sc.close_step) mem_close(a, sc.order_no, sc.close_step);
    if (sc.close_answer) {
      mem_close(a, sc.order_no, step_name(KESU__V1__STEP__ANSWER));
      mem_close(a, sc.order_no, "arrive");
      mem_close(a, sc.order_no, "fix");
    }
    if (sc.arrived) mem_close(a, sc.order_no, "arrive");
    if (sc.reclassify || sc.recommit_to) reload_order_timers(a, sc.order_no);
    if (sc.open_step && !step_not_for(a, sc.order_no, sc.open_step)) {
      timer_spec ts;
      spec_for(a, strmap_get(a->orders, sc.order_no), sc.open_step, sc.region, sc.at, &ts);
      ts.order_no = sc.order_no;
      ts.unit_id = sc.holder;
      ts.region = sc.region;
      if (sc.restart || !timer_set_get(&a->timers, ts.order_no, ts.step)) mem_open(a, &ts);
    }
    if (sc.done) attr_drop(a, sc.order_no);
  } else if (env->payload_case == KESU__V1__ENVELOPE__PAYLOAD_WORK_ORDER_CLOSED) {
    static const char *const steps[] = {"answer", "accept", "review", "handle",
                                        "feedback", "arrive", "fix"};
    for (size_t i = 0; i < sizeof steps / sizeof *steps; i++)
      mem_close(a, order_of_closed(env), steps[i]);
  } else {
    return;
  }
  arm_fire_timer(a);
}

/* --- firing ------------------------------------------------------------- */

/* Escalation rung `level` goes from the holder's `level - 1`-th ancestor to
 * its `level`-th (rung 1: 市 → 省, rung 2: 省 → 总部). "" when there is none. */
static const char *rung_unit(app *a, const sla_timer *t, int level) {
  const char *u = t->unit_id;
  for (int i = 0; i < level && u; i++) u = sla_reference_parent(&a->ref, u);
  return u ? u : "";
}

static void add_fire(app *a, pg_tx *tx, sla_timer *t, fire_kind kind, int level, int64_t now) {
  char event_id[37];
  uuid_v4(event_id);
  Kesu__V1__Envelope env = KESU__V1__ENVELOPE__INIT;
  Kesu__V1__SlaWarning w = KESU__V1__SLA_WARNING__INIT;
  Kesu__V1__SlaBreached b = KESU__V1__SLA_BREACHED__INIT;
  Kesu__V1__SlaEscalated e = KESU__V1__SLA_ESCALATED__INIT;
  env.producer = "sla";
  env.event_id = event_id;
  env.occurred_at = now;
  env.order_no = t->order_no;
  env.region = t->region;
  const char *to_unit = "";
  if (kind == FIRE_WARNING) {
    w.order_no = t->order_no;
    w.step = step_from_name(t->step);
    w.unit_id = t->unit_id;
    w.started_at = t->started_at;
    w.due_at = t->due_at;
    w.limit_seconds = t->limit_seconds;
    env.type = EV_SLA_WARNING;
    env.payload_case = KESU__V1__ENVELOPE__PAYLOAD_SLA_WARNING;
    env.sla_warning = &w;
  } else if (kind == FIRE_BREACH) {
    b.order_no = t->order_no;
    b.step = step_from_name(t->step);
    b.unit_id = t->unit_id;
    b.started_at = t->started_at;
    b.due_at = t->due_at;
    b.limit_seconds = t->limit_seconds;
    env.type = EV_SLA_BREACHED;
    env.payload_case = KESU__V1__ENVELOPE__PAYLOAD_SLA_BREACHED;
    env.sla_breached = &b;
  } else {
    to_unit = rung_unit(a, t, level);
    e.order_no = t->order_no;
    e.step = step_from_name(t->step);
    e.from_unit = (char *)(level == 1 ? t->unit_id : rung_unit(a, t, 1));
    e.to_unit = (char *)to_unit;
    e.due_at = t->due_at;
    env.type = EV_SLA_ESCALATED;
    env.payload_case = KESU__V1__ENVELOPE__PAYLOAD_SLA_ESCALATED;
    env.sla_escalated = &e;
  }
  size_t len;
  unsigned char *buf = envelope_pack(&env, &len);
  char ms[24], lvl[16];
  snprintf(ms, sizeof ms, "%" PRId64, now);
  snprintf(lvl, sizeof lvl, "%d", level);
  static const char *const kinds[] = {"warning", "breach", "escalation"};
  const char *v[8] = {t->order_no, t->step, kinds[kind], event_id, ms, (const char *)buf,
                      to_unit, lvl};
  int lens[8] = {0, 0, 0, 0, 0, (int)len, 0, 0};
  int fmts[8] = {0, 0, 0, 0, 0, 1, 0, 0};
  pg_tx_add(tx, "SELECT sla.fire($1, $2, $3, $4::uuid, $5::bigint, $6::bytea, $7, $8::int)", 8, v,
            lens, fmts);
  free(buf);
  a->fires[a->nfires++] = (fire_item){t, kind, level, now};
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
      static const char *const names[] = {"warning", "breach", "escalation"};
      if (fired) {
        metric_add(f->kind == FIRE_WARNING  ? a->m_warnings
                   : f->kind == FIRE_BREACH ? a->m_breaches
                                            : a->m_escalations,
                   1);
        log_info("sla: %s %s %s (due %" PRId64 ")", names[f->kind], t->order_no, t->step,
                 t->due_at);
      }
      /* Not fired means already recorded or closed in the database: either
       * way this step of the timer is done — unless a re-commit moved the
       * deadline past the fire meanwhile (the timer now holds the new one). */
      if (f->kind == FIRE_WARNING && (fired || t->warn_at <= f->at))
        t->warned = true;
      else if (f->kind == FIRE_BREACH && (fired || t->due_at <= f->at))
        t->breached = true;
      else if (f->level > t->escalated)
        t->escalated = f->level;
    }
    /* The last item of a timer settles it. */
    if (i + 1 < a->nfires && a->fires[i + 1].t == t) continue;
    t->inflight = false;
    if (sla_timer_next_at(t) == INT64_MAX)
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
  /* Each timer adds at most four statements: the warning, the breach and
   * two rungs, in that order, whatever of them is due (the clock may have
   * jumped past several). */
  while (a->nfires + 4 <= FIRE_BATCH * 4 && (t = timer_set_pop_due(&a->timers, now))) {
    if (!tx) tx = pg_tx_new();
    t->inflight = true;
    if (!t->warned) add_fire(a, tx, t, FIRE_WARNING, 0, now);
    if (!t->breached && now >= t->due_at) add_fire(a, tx, t, FIRE_BREACH, 0, now);
    for (int lvl = t->escalated + 1; lvl <= 2; lvl++)
      if (now >= t->due_at && t->escalate_at[lvl - 1] > 0 && now >= t->escalate_at[lvl - 1])
        add_fire(a, tx, t, FIRE_ESCALATION, lvl, now);
    if (a->nfires >= FIRE_BATCH) break;
  }
  if (!tx) return;
  a->firing = true;
  pg_conn_submit(a->pg, tx, on_fired, a);
}

/* --- the morning list (R-36) -------------------------------------------------
 * At 08:00 local (the controllable clock) of each day, one DailyDueList
 * event: per unit, the open steps due that day and those already overdue.
 * sla.daily_lists makes it once a day across restarts. */

enum { DAILY_HOUR = 8, DAILY_MAX_ORDERS = 50 };

typedef struct {
  app *a;
  int32_t day;
  int64_t start, now;
} daily_req;

static void on_daily_emitted(const pg_result_set *rs, void *arg) {
  daily_req *q = arg;
  q->a->daily_busy = false;
  if (rs->ok) {
    q->a->daily_done = q->day;
    log_info("sla: daily due list for day %d %s", (int)q->day,
             strcmp(PQgetvalue(rs->res[0], 0, 0), "t") == 0 ? "emitted" : "already out");
  } else {
    log_warn("sla: daily due list failed: %s", rs->error);
  }
  free(q);
}

static void on_daily_rows(const pg_result_set *rs, void *arg) {
  daily_req *q = arg;
  app *a = q->a;
  if (!rs->ok) {
    a->daily_busy = false;
    log_warn("sla: daily due list query failed: %s", rs->error);
    free(q);
    return;
  }
  if (PQntuples(rs->res[0]) > 0) { /* already out */
    a->daily_busy = false;
    a->daily_done = q->day;
    free(q);
    return;
  }
  PGresult *r = rs->res[1];
  int n = PQntuples(r);
  Kesu__V1__DailyDueUnit *units = calloc((size_t)n + 1, sizeof *units);
  Kesu__V1__DailyDueUnit **uptr = calloc((size_t)n + 1, sizeof *uptr);
  char **keys = calloc((size_t)n + 1, sizeof *keys);
  char **due_v = calloc((size_t)n + 1, sizeof *due_v), **over_v = calloc((size_t)n + 1, sizeof *over_v);
  int nu = 0;
  for (int i = 0; i < n; i++) {
    const char *unit = PQgetvalue(r, i, 0);
    if (nu == 0 || strcmp(units[nu - 1].unit_id, unit) != 0) {
      kesu__v1__daily_due_unit__init(&units[nu]);
      units[nu].unit_id = PQgetvalue(r, i, 0);
      /* the order lists share one array per list, sliced per unit */
      units[nu].due_today_orders = due_v + i;
      units[nu].overdue_orders = over_v + i;
      uptr[nu] = &units[nu];
      nu++;
    }
    Kesu__V1__DailyDueUnit *u = &units[nu - 1];
    keys[i] = malloc(strlen(PQgetvalue(r, i, 1)) + strlen(PQgetvalue(r, i, 2)) + 2);
    sprintf(keys[i], "%s/%s", PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
    bool overdue = strtoll(PQgetvalue(r, i, 3), NULL, 10) < q->start;
    if (overdue) {
      if (u->n_overdue_orders < DAILY_MAX_ORDERS) u->overdue_orders[u->n_overdue_orders++] = keys[i];
      u->overdue++;
    } else {
      if (u->n_due_today_orders < DAILY_MAX_ORDERS)
        u->due_today_orders[u->n_due_today_orders++] = keys[i];
      u->due_today++;
    }
  }
  char date[16], event_id[37], ms[24], day[16];
  clock_format_ms(q->start, date, 11);
  snprintf(day, sizeof day, "%s", date);
  Kesu__V1__DailyDueList list = KESU__V1__DAILY_DUE_LIST__INIT;
  list.date = day;
  list.generated_at = q->now;
  list.n_units = (size_t)nu;
  list.units = uptr;
  uuid_v4(event_id);
  Kesu__V1__Envelope env = KESU__V1__ENVELOPE__INIT;
  env.producer = "sla";
  env.event_id = event_id;
  env.occurred_at = q->now;
  env.type = "DailyDueList";
  env.payload_case = KESU__V1__ENVELOPE__PAYLOAD_DAILY_DUE_LIST;
  env.daily_due_list = &list;
  size_t len;
  unsigned char *buf = envelope_pack(&env, &len);
  snprintf(ms, sizeof ms, "%" PRId64, q->now);
  const char *v[4] = {day, event_id, ms, (const char *)buf};
  int lens[4] = {0, 0, 0, (int)len}, fmts[4] = {0, 0, 0, 1};
  pg_tx *tx = pg_tx_new();
  pg_tx_add(tx, "SELECT sla.emit_daily($1::date, $2::uuid, $3::bigint, $4::bytea)", 4, v, lens,
            fmts);
  free(buf);
  for (int i = 0; i < n; i++) free(keys[i]);
  free(keys);
  free(due_v);
  free(over_v);
  free(uptr);
  free(units);
  pg_conn_submit(a->pg, tx, on_daily_emitted, q);
}

static void check_daily(app *a) {
  if (!a->loaded || !a->ref_loaded || a->daily_busy || !pg_conn_ready(a->pg) || !a->caught_up)
    return;
  int64_t now = clock_now_ms();
  int32_t day = calendar_local_day(&a->ref.calendar, now);
  if (day == a->daily_done) return;
  int64_t start = (int64_t)day * 86400000 - (int64_t)a->ref.calendar.tz_offset_min * 60000;
  if (now < start + DAILY_HOUR * 3600000LL) return;
  daily_req *q = calloc(1, sizeof *q);
  q->a = a;
  q->day = day;
  q->start = start;
  q->now = now;
  a->daily_busy = true;
  char date[16], end[24];
  clock_format_ms(start, date, 11);
  snprintf(end, sizeof end, "%" PRId64, start + 86400000);
  const char *v1[1] = {date}, *v2[1] = {end};
  pg_tx *tx = pg_tx_new();
  pg_tx_add(tx, "SELECT 1 FROM sla.daily_lists WHERE day = $1::date", 1, v1, NULL, NULL);
  pg_tx_add(tx,
            "SELECT coalesce(unit_id, ''), order_no, step, " MS("due_at")
            " FROM sla.timers WHERE closed_at IS NULL AND paused_at IS NULL"
            " AND due_at < to_timestamp($1::bigint / 1000.0)"
            " ORDER BY coalesce(unit_id, ''), due_at LIMIT 200000",
            1, v2, NULL, NULL);
  pg_conn_submit(a->pg, tx, on_daily_rows, q);
}

static void on_fire_timer(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  app *a = arg;
  check_due(a);
  check_daily(a);
  arm_fire_timer(a);
}

/* --- reference data: calendar, policies, unit tree -------------------------- */

static void load_timers(app *a);
static void load_reference(app *a);

static void on_reference(const pg_result_set *rs, void *arg) {
  app *a = arg;
  a->ref_loading = false;
  if (rs->ok) {
    sla_reference next;
    sla_reference_init(&next);
    if (sla_reference_build(&next, rs->res) == 0) {
      sla_reference_free(&a->ref);
      a->ref = next;
      a->ref_loaded = true;
      log_info("sla: reference loaded: %d policies, %d calendar days", a->ref.policies.n,
               a->ref.calendar.ndays);
    } else {
      sla_reference_free(&next);
      log_error("sla: malformed reference data in the sla schema — keeping the previous");
    }
  } else {
    log_warn("sla: loading reference data failed: %s — retrying", rs->error);
  }
  if (!a->ref_loaded) {
    struct timeval tv = {1, 0};
    evtimer_add(a->ev_reload, &tv);
    return;
  }
  if (a->ref_again) {
    a->ref_again = false;
    load_reference(a);
  }
  load_timers(a);
}

/* New limits apply to steps started after the reload; running timers keep
 * the deadlines they were given (R-34: deadlines move only by re-commit). */
static void load_reference(app *a) {
  if (a->ref_loading) {
    a->ref_again = true;
    return;
  }
  a->ref_loading = true;
  pg_tx *tx = pg_tx_new();
  for (int i = 0; i < 5; i++) pg_tx_add(tx, sla_reference_sql[i], 0, NULL, NULL, NULL);
  pg_conn_submit(a->pg, tx, on_reference, a);
}

static void on_reference_notify(const char *channel, const char *payload, void *arg) {
  (void)channel;
  (void)payload;
  load_reference(arg);
}

/* --- start-up: load open timers, then consume ------------------------------ */

/* Timers load in key order, LOAD_CHUNK rows per query: a million rows in
 * one result would double the resident memory at start. */
static void load_timers_from(app *a);


static bool add_timer_row(app *a, PGresult *r, int i) {
  sla_timer *t = timer_set_add(
      &a->timers, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
      PQgetvalue(r, i, 3), strtoll(PQgetvalue(r, i, 4), NULL, 10),
      strtoll(PQgetvalue(r, i, 5), NULL, 10), strtoll(PQgetvalue(r, i, 6), NULL, 10),
      strtoll(PQgetvalue(r, i, 7), NULL, 10));
  if (!t) return false;
  t->warned = strcmp(PQgetvalue(r, i, 8), "t") == 0;
  t->breached = strcmp(PQgetvalue(r, i, 9), "t") == 0;
  t->escalate_at[0] = PQgetisnull(r, i, 10) ? 0 : strtoll(PQgetvalue(r, i, 10), NULL, 10);
  t->escalate_at[1] = PQgetisnull(r, i, 11) ? 0 : strtoll(PQgetvalue(r, i, 11), NULL, 10);
  t->escalated = atoi(PQgetvalue(r, i, 12));
  timer_set_arm(&a->timers, t);
  return true;
}

static void add_timer_rows_missing(const pg_result_set *rs, void *arg) {
  app *a = arg;
  if (rs->ok) {
    for (int i = 0; i < PQntuples(rs->res[0]); i++)
      if (!timer_set_get(&a->timers, PQgetvalue(rs->res[0], i, 0), PQgetvalue(rs->res[0], i, 1)))
        add_timer_row(a, rs->res[0], i);
  } else {
    log_warn("sla: reloading reclassified timers failed: %s (they load at the next start)",
               rs->error);
  }
  arm_fire_timer(a);
}

static void on_loaded(const pg_result_set *rs, void *arg) {
  app *a = arg;
  if (!rs->ok) {
    a->loading = false;
    log_warn("sla: loading timers failed: %s — retrying", rs->error);
    struct timeval tv = {1, 0};
    evtimer_add(a->ev_reload, &tv);
    return;
  }
  PGresult *r = rs->res[0];
  int n = PQntuples(r);
  for (int i = 0; i < n; i++)
    if (add_timer_row(a, r, i)) a->nloaded++;
  metric_set(a->m_open, (int64_t)a->timers.count);
  if (n == LOAD_CHUNK) {
    snprintf(a->load_after[0], sizeof a->load_after[0], "%s", PQgetvalue(r, n - 1, 0));
    snprintf(a->load_after[1], sizeof a->load_after[1], "%s", PQgetvalue(r, n - 1, 1));
    load_timers_from(a);
    return;
  }
  a->loading = false;
  a->loaded = true;
  malloc_trim(0); /* give the result sets' memory back */
  log_info("sla: %ld open timers loaded", a->nloaded);
  if (!a->cons) {
    consumer_config cc = {.schema = "sla",
                          .producer = "router",
                          .pub_endpoint = a->router_pub,
                          .replay_endpoint = a->router_replay,
                          .apply = on_apply,
                          .committed = on_committed,
                          .arg = a,
                          /* timers run on the events' own times: 20 ms later costs
                           * nothing and batches the router's events under load */
                          .linger_ms = 20};
    a->cons = consumer_new(a->base, a->pg, &cc);
    if (!a->cons) log_error("sla: cannot start the router consumer");
  }
  arm_fire_timer(a);
  check_due(a); /* timers that came due while we were down fire once caught up */
}

/* First the attributes of the orders whose steps may still open timers. */
static void on_orders_loaded(const pg_result_set *rs, void *arg) {
  app *a = arg;
  if (!rs->ok) {
    a->loading = false;
    log_warn("sla: loading orders failed: %s — retrying", rs->error);
    struct timeval tv = {1, 0};
    evtimer_add(a->ev_reload, &tv);
    return;
  }
  PGresult *r = rs->res[0];
  for (int i = 0; i < PQntuples(r); i++) {
    order_attr o;
    memset(&o, 0, sizeof o);
    snprintf(o.kind, sizeof o.kind, "%s", PQgetvalue(r, i, 1));
    snprintf(o.stream, sizeof o.stream, "%s", PQgetvalue(r, i, 2));
    snprintf(o.tier, sizeof o.tier, "%s", PQgetvalue(r, i, 3));
    snprintf(o.level, sizeof o.level, "%s", PQgetvalue(r, i, 4));
    snprintf(o.area, sizeof o.area, "%s", PQgetvalue(r, i, 5));
    o.large_fault = strcmp(PQgetvalue(r, i, 6), "t") == 0;
    snprintf(o.work, sizeof o.work, "%s", PQgetvalue(r, i, 7));
    attr_put(a, PQgetvalue(r, i, 0), &o);
  }
  load_timers_from(a);
}

static void load_timers(app *a) {
  if (a->loading || a->loaded || !a->ref_loaded) return;
  a->loading = true;
  a->nloaded = 0;
  a->load_after[0][0] = a->load_after[1][0] = '\0';
  pg_tx *tx = pg_tx_new();
  pg_tx_add(tx, "SELECT order_no, kind, stream, tier, level, area, large_fault, work FROM sla.orders"
            " WHERE NOT done", 0,
            NULL, NULL, NULL);
  pg_conn_submit(a->pg, tx, on_orders_loaded, a);
}

static void load_timers_from(app *a) {
  char chunk[16];
  snprintf(chunk, sizeof chunk, "%d", LOAD_CHUNK);
  const char *v[3] = {a->load_after[0], a->load_after[1], chunk};
  pg_tx *tx = pg_tx_new();
  pg_tx_add(tx,
            TIMER_COLS " WHERE closed_at IS NULL AND escalated < 2 AND paused_at IS NULL"
            " AND (breached_at IS NULL OR escalate1_at IS NOT NULL)"
            " AND (order_no, step) > ($1, $2) ORDER BY order_no, step LIMIT $3::int",
            3, v, NULL, NULL);
  pg_conn_submit(a->pg, tx, on_loaded, a);
}

static void on_reload(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  app *a = arg;
  if (!a->ref_loaded)
    load_reference(a);
  else
    load_timers(a);
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

/* The common first checks of a per-order request: the read worked, the
 * order has a row, and it lies in the token's scope. An order outside the
 * scope gets the same 404 as an unknown one, so its number is not confirmed
 * to exist. Replies and returns false when a check fails. */
static bool order_row_visible(struct evhttp_request *req, const pg_result_set *rs, bool admin,
                              const char *scope, int region_col, const char *missing) {
  if (!rs->ok) {
    http_reply_error(req, 503, "unavailable", "database unavailable", NULL);
    return false;
  }
  PGresult *r = rs->res[0];
  if (PQntuples(r) == 0 ||
      (!admin && !auth_scope_covers(scope, PQgetvalue(r, 0, region_col)))) {
    http_reply_error(req, 404, "not_found", missing, NULL);
    return false;
  }
  return true;
}

static void on_timers_rows(const pg_result_set *rs, void *arg) {
  timers_req *q = arg;
  if (!order_row_visible(q->req, rs, q->admin, q->scope, 8, "no timers for this order")) {
    free(q);
    return;
  }
  PGresult *r = rs->res[0];
  int n = PQntuples(r);
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
    json_object_set_new(t, "original_due_at", json_time(r, i, 11));
    json_object_set_new(t, "policy", json_string(PQgetvalue(r, i, 12)));
    json_object_set_new(t, "limit_unit", json_string(PQgetvalue(r, i, 13)));
    json_array_append_new(arr, t);
  }
  json_t *body = json_object();
  json_object_set_new(body, "order_no", json_string(PQgetvalue(r, 0, 10)));
  json_object_set_new(body, "timers", arr);
  /* Every move of a deadline, oldest first: re-commit, reclassify,
   * appointment, postpone (rain/snow) — the reason stays visible. */
  json_t *moves = json_array();
  PGresult *m = rs->n > 1 ? rs->res[1] : NULL;
  for (int i = 0; m && i < PQntuples(m); i++) {
    json_t *t = json_object();
    json_object_set_new(t, "step", json_string(PQgetvalue(m, i, 0)));
    json_object_set_new(t, "kind", json_string(PQgetvalue(m, i, 1)));
    json_object_set_new(t, "reason", json_string(PQgetvalue(m, i, 2)));
    json_object_set_new(t, "old_due_at", json_time(m, i, 3));
    json_object_set_new(t, "new_due_at", json_time(m, i, 4));
    json_object_set_new(t, "at", json_time(m, i, 5));
    json_object_set_new(t, "actor", json_string(PQgetvalue(m, i, 6)));
    json_object_set_new(t, "customer_caused", json_boolean(*PQgetvalue(m, i, 7) == 't'));
    json_array_append_new(moves, t);
  }
  json_object_set_new(body, "moves", moves);
  http_reply_json(q->req, 200, body);
  free(q);
}

static void h_get_timers(struct evhttp_request *req, const auth_ctx *auth, char **segs, int nsegs,
                         void *arg) {
  app *a = arg;
  if (strcmp(auth->role, "admin") != 0 && strcmp(auth->role, "handler") != 0 &&
      strcmp(auth->role, "centre") != 0 && strcmp(auth->role, "agent") != 0) {
    http_reply_error(req, 403, "forbidden", "this token's role may not read order timers", NULL);
    return;
  }
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
            " coalesce(region, ''), limit_seconds, order_no, " MS("original_due_at") ","
            " coalesce(policy_id, ''), limit_unit"
            " FROM sla.timers WHERE order_no = $1 ORDER BY started_at, step",
            1, v, NULL, NULL);
  pg_tx_add(tx,
            "SELECT step, kind, reason, " MS("old_due_at") ", " MS("new_due_at") ", " MS("at")
            ", actor, customer_caused FROM sla.recommits WHERE order_no = $1 ORDER BY id",
            1, v, NULL, NULL);
  pg_conn_submit(a->pg, tx, on_timers_rows, q);
}

/* --- re-commit 重新承诺 (R-34) ------------------------------------------------ */

typedef struct {
  app *a;
  struct evhttp_request *req;
  char order_no[72], step[32], actor[96], reason[1600];
  bool admin, customer;
  char scope[64];
  int64_t new_due;
} recommit_req;

static void on_recommitted(const pg_result_set *rs, void *arg) {
  recommit_req *q = arg;
  if (!rs->ok || PQntuples(rs->res[0]) != 1) {
    http_reply_error(q->req, 503, "unavailable", "database unavailable", NULL);
    free(q);
    return;
  }
  PGresult *r = rs->res[0];
  const char *status = PQgetvalue(r, 0, 0);
  if (strcmp(status, "ok") != 0) {
    if (strcmp(status, "not_found") == 0)
      http_reply_error(q->req, 404, "not_found", "no timer for this order and step", "step");
    else if (strcmp(status, "conflict") == 0)
      http_reply_error(q->req, 409, "conflict", "the step is closed or already overdue", NULL);
    else
      http_reply_error(q->req, 422, "invalid_value", "promised_by must be in the future",
                       "promised_by");
    free(q);
    return;
  }
  sla_timer *t = timer_set_get(&q->a->timers, q->order_no, q->step);
  if (t) { /* a fire in flight settles against these (see on_fired) */
    t->warn_at = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    t->due_at = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
    t->escalate_at[0] = strtoll(PQgetvalue(r, 0, 3), NULL, 10);
    t->escalate_at[1] = strtoll(PQgetvalue(r, 0, 4), NULL, 10);
    t->limit_seconds = strtoll(PQgetvalue(r, 0, 5), NULL, 10);
    if (!t->inflight) timer_set_arm(&q->a->timers, t);
    arm_fire_timer(q->a);
  }
  log_info("sla: re-commit %s %s to %s", q->order_no, q->step, PQgetvalue(r, 0, 2));
  json_t *body = json_object();
  json_object_set_new(body, "order_no", json_string(q->order_no));
  json_object_set_new(body, "step", json_string(q->step));
  json_object_set_new(body, "warn_at", json_time(r, 0, 1));
  json_object_set_new(body, "due_at", json_time(r, 0, 2));
  http_reply_json(q->req, 200, body);
  free(q);
}

static void on_recommit_scope(const pg_result_set *rs, void *arg) {
  recommit_req *q = arg;
  if (!order_row_visible(q->req, rs, q->admin, q->scope, 0, "no timer for this order and step")) {
    free(q);
    return;
  }
  char due[24], now[24];
  snprintf(due, sizeof due, "%" PRId64, q->new_due);
  snprintf(now, sizeof now, "%" PRId64, clock_now_ms());
  const char *v[6] = {q->order_no, q->step, due, q->reason, q->actor, now};
  pg_tx *tx = pg_tx_new();
  pg_tx_add(tx, "SELECT * FROM sla.recommit($1, $2, $3::bigint, $4, $5, $6::bigint)", 6, v, NULL,
            NULL);
  if (q->customer) { /* the delay is the customer's — no deduction */
    pg_tx_add(tx,
              "UPDATE sla.timers SET customer_caused = true WHERE order_no = $1 AND step = $2"
              " AND closed_at IS NULL AND breached_at IS NULL",
              2, v, NULL, NULL);
    pg_tx_add(tx,
              "UPDATE sla.recommits SET customer_caused = true WHERE id = (SELECT max(id)"
              " FROM sla.recommits WHERE order_no = $1 AND step = $2)",
              2, v, NULL, NULL);
  }
  pg_conn_submit(q->a->pg, tx, on_recommitted, q);
}

/* POST /v1/timers/{order_no}/recommit {"promised_by": RFC 3339, "reason": text,
 * "step": "answer"}: admin, or a handler within its scope. */
static void h_recommit(struct evhttp_request *req, const auth_ctx *auth, char **segs, int nsegs,
                       void *arg) {
  app *a = arg;
  if (strcmp(auth->role, "admin") != 0 && strcmp(auth->role, "handler") != 0) {
    http_reply_error(req, 403, "forbidden", "re-commit needs the handler or admin role", NULL);
    return;
  }
  json_t *body = http_read_json(req);
  if (!body) return;
  const char *key;
  json_t *val;
  json_object_foreach(body, key, val) {
    if (strcmp(key, "promised_by") != 0 && strcmp(key, "reason") != 0 && strcmp(key, "step") != 0 &&
        strcmp(key, "customer_caused") != 0) {
      http_reply_error(req, 422, "unknown_field", "unknown field", key);
      json_decref(body);
      return;
    }
  }
  json_t *pb = json_object_get(body, "promised_by"), *rs = json_object_get(body, "reason"),
         *st = json_object_get(body, "step");
  const char *missing = !pb ? "promised_by" : !rs ? "reason" : NULL;
  if (missing) {
    http_reply_error(req, 422, "missing_field", "required", missing);
    json_decref(body);
    return;
  }
  json_t *cc = json_object_get(body, "customer_caused");
  const char *wrong = !json_is_string(pb)         ? "promised_by"
                      : !json_is_string(rs)       ? "reason"
                      : st && !json_is_string(st) ? "step"
                      : cc && !json_is_boolean(cc) ? "customer_caused"
                                                  : NULL;
  if (wrong) {
    http_reply_error(req, 422, "wrong_type", "must be a string", wrong);
    json_decref(body);
    return;
  }
  recommit_req *q = calloc(1, sizeof *q);
  q->a = a;
  q->req = req;
  q->admin = strcmp(auth->role, "admin") == 0;
  q->customer = cc && json_is_true(cc);
  snprintf(q->scope, sizeof q->scope, "%s", auth->scope ? auth->scope : "");
  const char *reason = json_string_value(rs), *step = st ? json_string_value(st) : "answer";
  const char *bad = NULL, *why = NULL;
  if (clock_parse_ms(json_string_value(pb), &q->new_due) != 0)
    bad = "promised_by", why = "not an RFC 3339 time";
  else if (!*reason)
    bad = "reason", why = "the reason must be given";
  else if (strlen(reason) >= sizeof q->reason)
    bad = "reason", why = "longer than 1500 bytes";
  else if (strlen(step) >= sizeof q->step || strlen(segs[0]) >= sizeof q->order_no)
    bad = "step", why = "too long";
  if (bad) {
    http_reply_error(req, 422, strstr(why, "long") ? "too_long" : "invalid_value", why, bad);
    json_decref(body);
    free(q);
    return;
  }
  snprintf(q->order_no, sizeof q->order_no, "%s", segs[0]);
  snprintf(q->step, sizeof q->step, "%s", step);
  snprintf(q->reason, sizeof q->reason, "%s", reason);
  snprintf(q->actor, sizeof q->actor, "%s", auth->name ? auth->name : "");
  json_decref(body);
  const char *v[2] = {q->order_no, q->step};
  pg_tx *tx = pg_tx_new();
  pg_tx_add(tx, "SELECT coalesce(region, '') FROM sla.timers WHERE order_no = $1 AND step = $2", 2,
            v, NULL, NULL);
  pg_conn_submit(a->pg, tx, on_recommit_scope, q);
}

/* --- pause / resume (R-34: waiting for the customer) ------------------------ */

typedef struct {
  app *a;
  struct evhttp_request *req;
  bool admin, pause, customer;
  char scope[64], order_no[72], step[32], actor[96], reason[512];
} pause_req;

static void on_resumed_row(const pg_result_set *rs, void *arg) {
  app *a = arg;
  if (rs->ok)
    for (int i = 0; i < PQntuples(rs->res[0]); i++) add_timer_row(a, rs->res[0], i);
  arm_fire_timer(a);
}

static void on_paused(const pg_result_set *rs, void *arg) {
  pause_req *q = arg;
  if (!rs->ok || PQntuples(rs->res[1]) != 1) {
    http_reply_error(q->req, 503, "unavailable", "database unavailable", NULL);
    free(q);
    return;
  }
  PGresult *r = rs->res[1];
  const char *status = PQgetvalue(r, 0, 0);
  if (strcmp(status, "not_found") == 0) {
    http_reply_error(q->req, 404, "not_found", "no timer for this order and step", "step");
    free(q);
    return;
  }
  if (strcmp(status, "ok") != 0) {
    http_reply_error(q->req, 409, "conflict",
                     q->pause ? "the step is closed, overdue or already paused"
                              : "the step is not paused",
                     NULL);
    free(q);
    return;
  }
  /* Memory: a paused timer leaves the heap; a resumed one comes back with
   * its moved deadlines from the row. */
  mem_close(q->a, q->order_no, q->step);
  if (!q->pause) {
    const char *v[2] = {q->order_no, q->step};
    pg_tx *tx = pg_tx_new();
    pg_tx_add(tx, TIMER_COLS " WHERE order_no = $1 AND step = $2 AND closed_at IS NULL", 2, v,
              NULL, NULL);
    pg_conn_submit(q->a->pg, tx, on_resumed_row, q->a);
  }
  arm_fire_timer(q->a);
  log_info("sla: %s %s %s", q->pause ? "paused" : "resumed", q->order_no, q->step);
  json_t *body = json_object();
  json_object_set_new(body, "order_no", json_string(q->order_no));
  json_object_set_new(body, "step", json_string(q->step));
  json_object_set_new(body, "paused", json_boolean(q->pause));
  json_object_set_new(body, "warn_at", json_time(r, 0, 1));
  json_object_set_new(body, "due_at", json_time(r, 0, 2));
  http_reply_json(q->req, 200, body);
  free(q);
}

static void on_pause_scope(const pg_result_set *rs, void *arg) {
  pause_req *q = arg;
  if (!order_row_visible(q->req, rs, q->admin, q->scope, 0, "no timer for this order and step")) {
    free(q);
    return;
  }
  char now[24];
  snprintf(now, sizeof now, "%" PRId64, clock_now_ms());
  const char *v[5] = {q->order_no, q->step, q->pause ? "t" : "f", now, q->customer ? "t" : "f"};
  pg_tx *tx = pg_tx_new();
  /* who and why, for the SlaDeadlineMoved the pause/resume appends (007) */
  const char *who[2] = {q->actor, q->reason};
  pg_tx_add(tx, "SELECT set_config('sla.actor', $1, true), set_config('sla.reason', $2, true)", 2,
            who, NULL, NULL);
  pg_tx_add(tx, "SELECT * FROM sla.pause($1, $2, $3::boolean, $4::bigint, $5::boolean)", 5, v,
            NULL, NULL);
  pg_conn_submit(q->a->pg, tx, on_paused, q);
}

/* POST /v1/timers/{order_no}/pause|resume {"step": "handle", "reason": text,
 * "customer_caused": true}: the step's clock stands still while waiting for
 * an appointment with the customer; resuming moves its deadlines by the
 * pause. A paused step is the customer's delay: no deduction. */
static void h_pause_resume(struct evhttp_request *req, const auth_ctx *auth, char **segs,
                           bool pause, app *a) {
  if (strcmp(auth->role, "admin") != 0 && strcmp(auth->role, "handler") != 0) {
    http_reply_error(req, 403, "forbidden", "pausing needs the handler or admin role", NULL);
    return;
  }
  json_t *body = http_read_json(req);
  if (!body) return;
  const char *key;
  json_t *val;
  json_object_foreach(body, key, val) {
    if (strcmp(key, "step") != 0 && strcmp(key, "reason") != 0 &&
        strcmp(key, "customer_caused") != 0) {
      http_reply_error(req, 422, "unknown_field", "unknown field", key);
      json_decref(body);
      return;
    }
  }
  json_t *st = json_object_get(body, "step"), *rs = json_object_get(body, "reason"),
         *cc = json_object_get(body, "customer_caused");
  const char *wrong = st && !json_is_string(st)    ? "step"
                      : rs && !json_is_string(rs)  ? "reason"
                      : cc && !json_is_boolean(cc) ? "customer_caused"
                                                   : NULL;
  if (wrong) {
    http_reply_error(req, 422, "wrong_type", "wrong type", wrong);
    json_decref(body);
    return;
  }
  const char *step = st ? json_string_value(st) : "handle";
  if (rs && strlen(json_string_value(rs)) >= sizeof((pause_req *)0)->reason) {
    http_reply_error(req, 422, "too_long", "longer than 511 bytes", "reason");
    json_decref(body);
    return;
  }
  if (strlen(step) >= 32 || strlen(segs[0]) >= 72) {
    http_reply_error(req, 422, "too_long", "too long", strlen(step) >= 32 ? "step" : "order_no");
    json_decref(body);
    return;
  }
  pause_req *q = calloc(1, sizeof *q);
  q->a = a;
  q->req = req;
  q->pause = pause;
  q->customer = !cc || json_is_true(cc); /* waiting for the customer, unless told otherwise */
  q->admin = strcmp(auth->role, "admin") == 0;
  snprintf(q->scope, sizeof q->scope, "%s", auth->scope ? auth->scope : "");
  snprintf(q->order_no, sizeof q->order_no, "%s", segs[0]);
  snprintf(q->step, sizeof q->step, "%s", step);
  snprintf(q->actor, sizeof q->actor, "%s", auth->name ? auth->name : "");
  snprintf(q->reason, sizeof q->reason, "%s", rs ? json_string_value(rs) : "");
  json_decref(body);
  const char *v[2] = {q->order_no, q->step};
  pg_tx *tx = pg_tx_new();
  pg_tx_add(tx, "SELECT coalesce(region, '') FROM sla.timers WHERE order_no = $1 AND step = $2", 2,
            v, NULL, NULL);
  pg_conn_submit(a->pg, tx, on_pause_scope, q);
}

static void h_pause(struct evhttp_request *req, const auth_ctx *auth, char **segs, int nsegs,
                    void *arg) {
  h_pause_resume(req, auth, segs, true, arg);
}
static void h_resume(struct evhttp_request *req, const auth_ctx *auth, char **segs, int nsegs,
                     void *arg) {
  h_pause_resume(req, auth, segs, false, arg);
}

/* --- appointment with the customer, rain/snow postponement ---------- */

typedef struct {
  app *a;
  struct evhttp_request *req;
  bool admin, appointment;
  char scope[64], order_no[72], reason[16], actor[96];
  int64_t appt;
} move_req;

static void on_moved(const pg_result_set *rs, void *arg) {
  move_req *q = arg;
  if (!rs->ok || PQntuples(rs->res[0]) < 1) {
    http_reply_error(q->req, 503, "unavailable", "database unavailable", NULL);
    free(q);
    return;
  }
  PGresult *r = rs->res[0];
  const char *status = PQgetvalue(r, 0, q->appointment ? 1 : 0);
  if (strcmp(status, "ok") != 0) {
    if (strcmp(status, "not_found") == 0)
      http_reply_error(q->req, 404, "not_found",
                       q->appointment ? "no arrival timer for this order" : "no such order", NULL);
    else if (strcmp(status, "conflict") == 0)
      http_reply_error(q->req, 409, "conflict",
                       q->appointment ? "the arrival step is closed or already overdue"
                                      : "no open step of this repair is left to move",
                       NULL);
    else if (q->appointment)
      http_reply_error(q->req, 422, "invalid_value", "the appointment must be in the future", "at");
    else
      http_reply_error(q->req, 422, "invalid_value", "only a repair is postponed for weather",
                       NULL);
    free(q);
    return;
  }
  /* memory: the order's running timers come back from their rows */
  reload_order_timers(q->a, q->order_no);
  log_info("sla: %s %s", q->appointment ? "appointment" : "postponed", q->order_no);
  json_t *body = json_object();
  json_object_set_new(body, "order_no", json_string(q->order_no));
  if (q->appointment) {
    char buf[40];
    clock_format_ms(q->appt, buf, sizeof buf);
    json_object_set_new(body, "appointment", json_string(buf));
    json_t *arr = json_array();
    for (int i = 0; i < PQntuples(r); i++) {
      if (strcmp(PQgetvalue(r, i, 1), "ok") != 0) continue;
      json_t *t = json_object();
      json_object_set_new(t, "step", json_string(PQgetvalue(r, i, 0)));
      json_object_set_new(t, "warn_at", json_time(r, i, 2));
      json_object_set_new(t, "due_at", json_time(r, i, 3));
      json_array_append_new(arr, t);
    }
    json_object_set_new(body, "moved", arr);
  } else {
    json_object_set_new(body, "reason", json_string(q->reason));
    json_object_set_new(body, "moved", json_integer(strtoll(PQgetvalue(r, 0, 1), NULL, 10)));
  }
  http_reply_json(q->req, 200, body);
  free(q);
}

static void on_move_scope(const pg_result_set *rs, void *arg) {
  move_req *q = arg;
  if (!order_row_visible(q->req, rs, q->admin, q->scope, 0, "no such order")) {
    free(q);
    return;
  }
  char now[24], appt[24];
  snprintf(now, sizeof now, "%" PRId64, clock_now_ms());
  snprintf(appt, sizeof appt, "%" PRId64, q->appt);
  pg_tx *tx = pg_tx_new();
  if (q->appointment) {
    const char *v[4] = {q->order_no, appt, q->actor, now};
    pg_tx_add(tx, "SELECT * FROM sla.appointment($1, $2::bigint, $3, $4::bigint)", 4, v, NULL,
              NULL);
  } else {
    const char *v[4] = {q->order_no, q->reason, q->actor, now};
    pg_tx_add(tx, "SELECT * FROM sla.postpone($1, $2, $3, $4::bigint)", 4, v, NULL, NULL);
  }
  pg_conn_submit(q->a->pg, tx, on_moved, q);
}

/* POST /v1/timers/{order_no}/appointment {"at": RFC 3339}: the arrival time
 * agreed with the customer replaces the arrival limit (R-29; no deduction
 * for the customer's choice: the original limit is not breached). POST
 * /v1/timers/{order_no}/postpone {"reason": "rain"|"snow"}: the repair moves
 * to the next day. Admin, or a handler within its scope. */
static void h_move(struct evhttp_request *req, const auth_ctx *auth, char **segs, bool appointment,
                   app *a) {
  if (strcmp(auth->role, "admin") != 0 && strcmp(auth->role, "handler") != 0) {
    http_reply_error(req, 403, "forbidden", "this needs the handler or admin role", NULL);
    return;
  }
  json_t *body = http_read_json(req);
  if (!body) return;
  const char *field = appointment ? "at" : "reason";
  const char *key;
  json_t *val;
  json_object_foreach(body, key, val) {
    if (strcmp(key, field) != 0) {
      http_reply_error(req, 422, "unknown_field", "unknown field", key);
      json_decref(body);
      return;
    }
  }
  json_t *f = json_object_get(body, field);
  if (!f) {
    http_reply_error(req, 422, "missing_field", "required", field);
    json_decref(body);
    return;
  }
  if (!json_is_string(f)) {
    http_reply_error(req, 422, "wrong_type", "must be a string", field);
    json_decref(body);
    return;
  }
  if (strlen(segs[0]) >= 72) {
    http_reply_error(req, 404, "not_found", "no such order", NULL);
    json_decref(body);
    return;
  }
  move_req *q = calloc(1, sizeof *q);
  q->a = a;
  q->req = req;
  q->appointment = appointment;
  q->admin = strcmp(auth->role, "admin") == 0;
  const char *v = json_string_value(f);
  const char *why = NULL;
  if (appointment && clock_parse_ms(v, &q->appt) != 0)
    why = "not an RFC 3339 time";
  else if (!appointment && strcmp(v, "rain") != 0 && strcmp(v, "snow") != 0)
    why = "the reason is rain or snow";
  if (why) {
    http_reply_error(req, 422, "invalid_value", why, field);
    json_decref(body);
    free(q);
    return;
  }
  if (!appointment) snprintf(q->reason, sizeof q->reason, "%s", v);
  json_decref(body);
  snprintf(q->scope, sizeof q->scope, "%s", auth->scope ? auth->scope : "");
  snprintf(q->order_no, sizeof q->order_no, "%s", segs[0]);
  snprintf(q->actor, sizeof q->actor, "%s", auth->name ? auth->name : "");
  const char *p[1] = {q->order_no};
  pg_tx *tx = pg_tx_new();
  pg_tx_add(tx, "SELECT coalesce(region, '') FROM sla.orders WHERE order_no = $1", 1, p, NULL,
            NULL);
  pg_conn_submit(a->pg, tx, on_move_scope, q);
}

static void h_appointment(struct evhttp_request *req, const auth_ctx *auth, char **segs,
                          int nsegs, void *arg) {
  (void)nsegs;
  h_move(req, auth, segs, true, arg);
}
static void h_postpone(struct evhttp_request *req, const auth_ctx *auth, char **segs, int nsegs,
                       void *arg) {
  (void)nsegs;
  h_move(req, auth, segs, false, arg);
}

/* --- lists: supervision records, due/overdue steps, the ledger ------------- */

typedef enum { LIST_SUPERVISION, LIST_DUE, LIST_LEDGER } list_kind;

typedef struct {
  struct evhttp_request *req;
  list_kind kind;
  bool admin;
  char scope[64];
  char unit[72], period[16], order_no[72];
  int64_t day_start;
} list_req;

/* Region is the last column of every list query; rows outside a non-admin
 * token's scope are left out. */
static bool row_visible(const list_req *q, PGresult *r, int row) {
  return q->admin || auth_scope_covers(q->scope, PQgetvalue(r, row, PQnfields(r) - 1));
}

static json_t *supervision_row(PGresult *r, int i) {
  json_t *o = json_object();
  json_object_set_new(o, "order_no", json_string(PQgetvalue(r, i, 0)));
  json_object_set_new(o, "step", json_string(PQgetvalue(r, i, 1)));
  json_object_set_new(o, "unit_id", json_string(PQgetvalue(r, i, 2)));
  json_object_set_new(o, "kind", json_string(PQgetvalue(r, i, 3)));
  json_object_set_new(o, "to_unit", PQgetisnull(r, i, 4) ? json_null()
                                                         : json_string(PQgetvalue(r, i, 4)));
  json_object_set_new(o, "due_at", json_time(r, i, 5));
  json_object_set_new(o, "at", json_time(r, i, 6));
  json_object_set_new(o, "minutes_late", json_integer(atoi(PQgetvalue(r, i, 7))));
  return o;
}

static json_t *due_row(PGresult *r, int i) {
  json_t *o = json_object();
  json_object_set_new(o, "order_no", json_string(PQgetvalue(r, i, 0)));
  json_object_set_new(o, "step", json_string(PQgetvalue(r, i, 1)));
  json_object_set_new(o, "unit_id", json_string(PQgetvalue(r, i, 2)));
  json_object_set_new(o, "started_at", json_time(r, i, 3));
  json_object_set_new(o, "due_at", json_time(r, i, 4));
  json_object_set_new(o, "original_due_at", json_time(r, i, 5));
  json_object_set_new(o, "state", json_string(PQgetvalue(r, i, 6)));
  return o;
}

static json_t *ledger_row(PGresult *r, int i) {
  json_t *o = json_object();
  json_object_set_new(o, "order_no", json_string(PQgetvalue(r, i, 0)));
  json_object_set_new(o, "step", json_string(PQgetvalue(r, i, 1)));
  json_object_set_new(o, "unit_id", json_string(PQgetvalue(r, i, 2)));
  json_object_set_new(o, "month", json_string(PQgetvalue(r, i, 3)));
  json_object_set_new(o, "amount", json_real(strtod(PQgetvalue(r, i, 4), NULL)));
  json_object_set_new(o, "reason", json_string(PQgetvalue(r, i, 5)));
  json_object_set_new(o, "at", json_time(r, i, 6));
  return o;
}

static void on_list_rows(const pg_result_set *rs, void *arg) {
  list_req *q = arg;
  if (!rs->ok) {
    log_warn("sla: list query failed: %s", rs->error);
    http_reply_error(q->req, 503, "unavailable", "database unavailable", NULL);
    free(q);
    return;
  }
  json_t *body = json_object();
  json_object_set_new(body, "unit", *q->unit ? json_string(q->unit) : json_null());
  if (q->kind == LIST_DUE) {
    json_object_set_new(body, "date", json_string(q->period));
    json_t *today = json_array(), *overdue = json_array();
    PGresult *r = rs->res[0];
    for (int i = 0; i < PQntuples(r); i++) {
      if (!row_visible(q, r, i)) continue;
      int64_t due = strtoll(PQgetvalue(r, i, 4), NULL, 10);
      json_array_append_new(due < q->day_start ? overdue : today, due_row(r, i));
    }
    json_object_set_new(body, "due_today", today);
    json_object_set_new(body, "overdue", overdue);
  } else {
    json_object_set_new(body, "month", *q->period ? json_string(q->period) : json_null());
    json_t *arr = json_array();
    double total = 0;
    PGresult *r = rs->res[0];
    for (int i = 0; i < PQntuples(r); i++) {
      if (!row_visible(q, r, i)) continue;
      if (q->kind == LIST_LEDGER) {
        total += strtod(PQgetvalue(r, i, 4), NULL);
        json_array_append_new(arr, ledger_row(r, i));
      } else {
        json_array_append_new(arr, supervision_row(r, i));
      }
    }
    if (q->kind == LIST_LEDGER) {
      json_object_set_new(body, "entries", arr);
      json_object_set_new(body, "total", json_real(total));
    } else {
      json_object_set_new(body, "records", arr);
    }
  }
  http_reply_json(q->req, 200, body);
  free(q);
}

static bool valid_month(const char *s) {
  int y, m, n = 0;
  return strlen(s) == 7 && sscanf(s, "%4d-%2d%n", &y, &m, &n) == 2 && n == 7 && y >= 1970 &&
         m >= 1 && m <= 12;
}

static void h_list(struct evhttp_request *req, const auth_ctx *auth, list_kind kind, app *a) {
  const char *unit = http_query(req, "unit");
  const char *period = http_query(req, kind == LIST_DUE ? "date" : "month");
  const char *order_no = http_query(req, "order_no");
  unit = unit ? unit : "";
  period = period ? period : "";
  order_no = order_no ? order_no : "";
  if (strlen(unit) > 64 || strlen(order_no) > 64) {
    http_reply_error(req, 422, "too_long", "longer than 64 bytes", strlen(unit) > 64 ? "unit" : "order_no");
    return;
  }
  list_req *q = calloc(1, sizeof *q);
  q->req = req;
  q->kind = kind;
  q->admin = strcmp(auth->role, "admin") == 0;
  snprintf(q->scope, sizeof q->scope, "%s", auth->scope ? auth->scope : "");
  snprintf(q->unit, sizeof q->unit, "%s", unit);
  pg_tx *tx = pg_tx_new();
  if (kind == LIST_DUE) {
    /* per unit, the open steps due on that local day and those
     * already overdue before it. Default: today. */
    int32_t day;
    if (!*period) {
      day = calendar_local_day(&a->ref.calendar, clock_now_ms());
    } else if (calendar_parse_date(period, &day) != 0) {
      http_reply_error(req, 422, "invalid_value", "date must be YYYY-MM-DD", "date");
      pg_tx_destroy(&tx);
      free(q);
      return;
    }
    int64_t start = (int64_t)day * 86400000 - (int64_t)a->ref.calendar.tz_offset_min * 60000;
    q->day_start = start;
    clock_format_ms(start, q->period, 11); /* "YYYY-MM-DD" of the local day */
    char end[24];
    snprintf(end, sizeof end, "%" PRId64, start + 86400000);
    const char *v[2] = {unit, end};
    pg_tx_add(tx,
              "SELECT t.order_no, t.step, coalesce(t.unit_id, ''), " MS("t.started_at") ", " MS(
                  "t.due_at") ", " MS("coalesce(t.original_due_at, t.due_at)") ","
              " CASE WHEN t.breached_at IS NOT NULL THEN 'breached'"
              " WHEN t.warned_at IS NOT NULL THEN 'warned' ELSE 'open' END,"
              " coalesce(u.region, t.region, '')"
              " FROM sla.timers t LEFT JOIN sla.units u ON u.id = t.unit_id"
              " WHERE t.closed_at IS NULL AND ($1 = '' OR t.unit_id = $1)"
              " AND t.due_at < to_timestamp($2::bigint / 1000.0)"
              " ORDER BY t.due_at LIMIT 5000",
              2, v, NULL, NULL);
  } else {
    if (*period && !valid_month(period)) {
      http_reply_error(req, 422, "invalid_value", "month must be YYYY-MM", "month");
      pg_tx_destroy(&tx);
      free(q);
      return;
    }
    snprintf(q->period, sizeof q->period, "%s", period);
    const char *v[3] = {unit, period, order_no};
    if (kind == LIST_SUPERVISION)
      pg_tx_add(tx,
                "SELECT s.order_no, s.step, coalesce(s.unit_id, ''), s.kind, s.to_unit, " MS(
                    "s.due_at") ", " MS("s.at") ", s.minutes_late, coalesce(u.region, '')"
                " FROM sla.supervision s LEFT JOIN sla.units u ON u.id = s.unit_id"
                " WHERE ($1 = '' OR s.unit_id = $1 OR s.to_unit = $1) AND ($2 = '' OR"
                " date_trunc('month', s.at AT TIME ZONE 'Asia/Shanghai') = to_date($2, 'YYYY-MM'))"
                " AND ($3 = '' OR s.order_no = $3)"
                " ORDER BY s.id LIMIT 5000",
                3, v, NULL, NULL);
    else
      pg_tx_add(tx,
                "SELECT l.order_no, l.step, coalesce(l.unit_id, ''), to_char(l.month, 'YYYY-MM'),"
                " l.amount::text, l.reason, " MS("l.at") ", coalesce(u.region, '')"
                " FROM sla.ledger l LEFT JOIN sla.units u ON u.id = l.unit_id"
                " WHERE ($1 = '' OR l.unit_id = $1) AND ($2 = '' OR l.month = to_date($2, 'YYYY-MM'))"
                " AND ($3 = '' OR l.order_no = $3)"
                " ORDER BY l.at, l.order_no LIMIT 5000",
                3, v, NULL, NULL);
  }
  pg_conn_submit(a->pg, tx, on_list_rows, q);
}

static void h_supervision(struct evhttp_request *req, const auth_ctx *auth, char **segs, int nsegs,
                          void *arg) {
  h_list(req, auth, LIST_SUPERVISION, arg);
}
static void h_due(struct evhttp_request *req, const auth_ctx *auth, char **segs, int nsegs,
                  void *arg) {
  h_list(req, auth, LIST_DUE, arg);
}
static void h_ledger(struct evhttp_request *req, const auth_ctx *auth, char **segs, int nsegs,
                     void *arg) {
  h_list(req, auth, LIST_LEDGER, arg);
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

static bool free_attr(const char *key, void *value, void *arg) {
  (void)key;
  (void)arg;
  free(value);
  return true;
}

int main(void) {
  struct event_base *base = service_init("sla");
  app a = {.base = base};
  a.fires = calloc(FIRE_BATCH * 4 + 4, sizeof *a.fires);
  a.started_mono = mono_ms();
  a.daily_done = INT32_MIN;
  timer_set_init(&a.timers);
  a.orders = strmap_new();
  sla_reference_init(&a.ref);
  a.m_open = metric_gauge("sla_open_timers", "Open SLA timers held in memory");
  a.m_warnings = metric_counter("sla_warnings_total", "SlaWarning events emitted");
  a.m_breaches = metric_counter("sla_breaches_total", "SlaBreached events emitted");
  a.m_escalations = metric_counter("sla_escalations_total", "SlaEscalated events emitted");
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
  http_route(a.http, EVHTTP_REQ_POST, "/v1/timers/*/recommit", 0, h_recommit, &a);
  http_route(a.http, EVHTTP_REQ_POST, "/v1/timers/*/pause", 0, h_pause, &a);
  http_route(a.http, EVHTTP_REQ_POST, "/v1/timers/*/resume", 0, h_resume, &a);
  http_route(a.http, EVHTTP_REQ_POST, "/v1/timers/*/appointment", 0, h_appointment, &a);
  http_route(a.http, EVHTTP_REQ_POST, "/v1/timers/*/postpone", 0, h_postpone, &a);
  http_route(a.http, EVHTTP_REQ_GET, "/v1/supervision", 0, h_supervision, &a);
  http_route(a.http, EVHTTP_REQ_GET, "/v1/due", 0, h_due, &a);
  http_route(a.http, EVHTTP_REQ_GET, "/v1/ledger", 0, h_ledger, &a);
  http_set_ready(a.http, is_ready, &a);
  http_set_metrics(a.http, metrics_cb, &a);

  a.ev_fire = evtimer_new(base, on_fire_timer, &a);
  a.ev_reload = evtimer_new(base, on_reload, &a);
  a.ev_poll = event_new(base, -1, EV_PERSIST, on_fire_timer, &a);
  struct timeval poll = {0, POLL_MS * 1000};
  event_add(a.ev_poll, &poll);
  pg_conn_listen(a.pg, "sla_reference", on_reference_notify, &a);
  load_reference(&a); /* then the timers, then the router's stream */

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
  strmap_each(a.orders, free_attr, NULL);
  strmap_destroy(&a.orders);
  sla_reference_free(&a.ref);
  free(a.fires);
  event_base_free(base);
  return rc;
}
