/* kesu-notifier — customer notifications (R-38..R-41).
 *
 * Consumes intake's stream: for each ComplaintReceived it records, in the
 * consumer's transaction, one SMS receipt in notify.deliveries keyed
 * "<event_id>:customer:sms:<template>" (so a redelivered event is sent once). The
 * sender (sender.c) delivers pending rows to the HTTP gateway KESU_SMS_URL.
 * HTTP: list deliveries, retry a failed or dead one.
 */
#include <curl/curl.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "clock.h"
#include "config.h"
#include "consumer.h"
#include "envelope.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "pg.h"
#include "priority.h"
#include "sender.h"
#include "service.h"
#include "strmap.h"
#include "template.h"
#include "tmpl.h"

#define MS(col) "(extract(epoch from " col ") * 1000)::bigint"
#define CALLBACK_DUE_MS ((int64_t)7 * 86400 * 1000)
/* A closed order's title stays known this long for the morning due list's
 * callback steps (R-26: callback within 7 days of the close). */
#define CLOSED_KEEP_MS ((int64_t)30 * 86400 * 1000)

typedef struct {
  char *title;
  int64_t closed_at;
} closed_title;

static void closed_put(strmap *m, const char *order_no, const char *title, int64_t closed_at) {
  if (!title || !*title) return;
  closed_title *c = calloc(1, sizeof *c);
  c->title = strdup(title);
  c->closed_at = closed_at;
  closed_title *old = strmap_put(m, order_no, c);
  if (old) free(old->title);
  free(old);
}

/* strmap_each: drops entries closed before *(int64_t *)arg (all if NULL). */
static bool closed_drop(const char *key, void *value, void *arg) {
  (void)key;
  closed_title *c = value;
  if (arg && c->closed_at >= *(const int64_t *)arg) return false;
  free(c->title);
  free(c);
  return true;
}


/* "310000" → "31", "000000"/"" → "" (everything): the region prefix a scope
 * or region filter stands for (as auth_scope_covers reads it). */
static void region_prefix(const char *code, char *out, size_t len) {
  snprintf(out, len, "%s", code ? code : "");
  size_t n = strlen(out);
  while (n >= 2 && out[n - 1] == '0' && out[n - 2] == '0') out[n -= 2] = '\0';
}

/* --- reference data: rules, templates, contacts (kesuctl load notify) ------ */

typedef struct {
  char *event_type, *conditions, *recipient, *channel, *tmpl;
  bool urgent;
} nrule;
typedef struct {
  char *code, *channel, *subject, *body;
} ntmpl;
typedef struct {
  char *unit_id, *role, *channel, *address;
} ncontact;
typedef struct {
  char *id, *name, *region;
} nunit;
typedef struct {
  char *calendar_id, *prefix; /* prefix as region_prefix() reads it */
  int open_min, close_min;
} nhours;
typedef struct {
  char *id;
  cal_day *days;
  int ndays;
} ncalendar;
typedef struct {
  nrule *rules;
  int nrules;
  ntmpl *tmpls;
  int ntmpls;
  ncontact *contacts;
  int ncontacts;
  nunit *units;
  int nunits;
  nhours *hours;
  int nhours;
  ncalendar *cals;
  int ncals;
} refdata;

typedef struct {
  struct event_base *base;
  pg_conn *pg, *pg_send;
  auth_cache *auth;
  http_server *http;
  consumer *cons, *cons_router, *cons_sla;
  sender *snd;
  bool gateway, smtp;
  refdata ref;
  strmap *orders; /* order_no → order_ctx */
  strmap *closed; /* order_no → closed_title: orders closed in the last CLOSED_KEEP_MS (due list) */
  bool loading, reload, orders_loaded;
  struct event *ev_reload;
  int quiet_from, quiet_to;   /* customer SMS held in [from, to) local */
  int biz_open, biz_close;    /* staff business hours when notify.business_hours has none */
  struct event *ev_digest;
  bool digest_busy;
  int recorded_in_batch;
  metric *m_recorded, *m_applied, *m_no_phone;
} app;

static char *col_dup(PGresult *r, int row, int col) { return strdup(PQgetvalue(r, row, col)); }

static void refdata_free(refdata *d) {
  for (int i = 0; i < d->nrules; i++) {
    free(d->rules[i].event_type);
    free(d->rules[i].conditions);
    free(d->rules[i].recipient);
    free(d->rules[i].channel);
    free(d->rules[i].tmpl);
  }
  for (int i = 0; i < d->ntmpls; i++) {
    free(d->tmpls[i].code);
    free(d->tmpls[i].channel);
    free(d->tmpls[i].subject);
    free(d->tmpls[i].body);
  }
  for (int i = 0; i < d->ncontacts; i++) {
    free(d->contacts[i].unit_id);
    free(d->contacts[i].role);
    free(d->contacts[i].channel);
    free(d->contacts[i].address);
  }
  for (int i = 0; i < d->nunits; i++) {
    free(d->units[i].id);
    free(d->units[i].name);
    free(d->units[i].region);
  }
  for (int i = 0; i < d->nhours; i++) {
    free(d->hours[i].calendar_id);
    free(d->hours[i].prefix);
  }
  for (int i = 0; i < d->ncals; i++) {
    free(d->cals[i].id);
    free(d->cals[i].days);
  }
  free(d->units);
  free(d->hours);
  free(d->cals);
  free(d->rules);
  free(d->tmpls);
  free(d->contacts);
  memset(d, 0, sizeof *d);
}

static const ntmpl *find_tmpl(const refdata *d, const char *code) {
  for (int i = 0; i < d->ntmpls; i++)
    if (strcmp(d->tmpls[i].code, code) == 0) return &d->tmpls[i];
  return NULL;
}

static const nunit *find_unit(const refdata *d, const char *id) {
  for (int i = 0; id && i < d->nunits; i++)
    if (strcmp(d->units[i].id, id) == 0) return &d->units[i];
  return NULL;
}

/* {unit_name}: the unit's Chinese name, else its id. */
static const char *unit_name(const refdata *d, const char *id) {
  const nunit *u = find_unit(d, id);
  return u ? u->name : (id ? id : "");
}

static const ncalendar *find_calendar(const refdata *d, const char *id) {
  for (int i = 0; i < d->ncals; i++)
    if (!id || strcmp(d->cals[i].id, id) == 0) return &d->cals[i];
  return NULL;
}

/* when a staff reminder about an order of `region` may go out — now
 * in the business hours of the region (longest business_hours prefix) on a
 * working day of its calendar, else the next opening. */
static int64_t staff_release_ms(const app *a, const char *region, int64_t now) {
  const nhours *best = NULL;
  char reg[64];
  region_prefix(region, reg, sizeof reg); /* "310115" stays; "310000" → "31" */
  region = reg;
  for (int i = 0; i < a->ref.nhours; i++) {
    const nhours *h = &a->ref.hours[i];
    if (strncmp(region ? region : "", h->prefix, strlen(h->prefix)) != 0) continue;
    if (!best || strlen(h->prefix) > strlen(best->prefix)) best = h;
  }
  const ncalendar *cal = best ? find_calendar(&a->ref, best->calendar_id) : NULL;
  if (!cal) cal = find_calendar(&a->ref, "cn");
  return staff_open_at_ms(now, best ? best->open_min : a->biz_open,
                          best ? best->close_min : a->biz_close, cal ? cal->days : NULL,
                          cal ? cal->ndays : 0);
}

/* What the notifier knows of an open order (notify.orders). */
typedef struct {
  char *phone, *customer_name, *level, *title, *region, *kind, *tier, *business_type,
      *problem_type, *unit_id, *email, *reply_channel, *address;
  char *transferred_to; /* a transfer told this unit; its WorkOrderDispatched is not told again */
  bool major, urgent;
  bool arrived; /* repair: the crew arrived (WorkOrderStepChanged action arrive) */
  int priority; /* R-15 order_priority: WorkOrderCreated, then every step */
  int64_t promised_by;
} order_ctx;

static void ctx_free(order_ctx *o) {
  if (!o) return;
  free(o->phone);
  free(o->customer_name);
  free(o->level);
  free(o->title);
  free(o->region);
  free(o->kind);
  free(o->tier);
  free(o->business_type);
  free(o->problem_type);
  free(o->unit_id);
  free(o->email);
  free(o->reply_channel);
  free(o->address);
  free(o->transferred_to);
  free(o);
}

static void set_str(char **dst, const char *v) {
  if (!v || !*v) return; /* keep what we know */
  free(*dst);
  *dst = strdup(v);
}

static const char *nz(const char *s) { return s ? s : ""; }

/* --- the streams ---------------------------------------------------------- */

static int64_t tier_limit_ms(Kesu__V1__Tier t) {
  return t == KESU__V1__TIER__NATIONAL     ? 72 * 3600 * 1000LL
         : t == KESU__V1__TIER__PROVINCIAL ? 48 * 3600 * 1000LL
                                           : 24 * 3600 * 1000LL;
}

static const char *enum_name(const ProtobufCEnumDescriptor *d, int v) {
  const ProtobufCEnumValue *e = protobuf_c_enum_descriptor_get_value(d, v);
  return e && v ? e->name : "";
}

static const char *step_zh(Kesu__V1__Step s) {
  switch (s) {
    case KESU__V1__STEP__ACCEPT: return "受理";
    case KESU__V1__STEP__REVIEW: return "复核";
    case KESU__V1__STEP__HANDLE: return "处理";
    case KESU__V1__STEP__FEEDBACK: return "反馈";
    case KESU__V1__STEP__ANSWER: return "答复";
    case KESU__V1__STEP__CALLBACK: return "回访";
    case KESU__V1__STEP__CLOSED: return "结办";
    case KESU__V1__STEP__ARRIVE: return "到达";
    case KESU__V1__STEP__FIX: return "修复";
    default: return "处理";
  }
}

static order_ctx *ctx_for(app *a, const char *order_no) {
  order_ctx *o = strmap_get(a->orders, order_no);
  if (!o) {
    o = calloc(1, sizeof *o);
    strmap_put(a->orders, order_no, o);
  }
  return o;
}

static void save_ctx(pg_tx *tx, const char *order_no, const order_ctx *o) {
  char promised[24], prio[16];
  snprintf(promised, sizeof promised, "%" PRId64, o->promised_by);
  snprintf(prio, sizeof prio, "%d", o->priority);
  const char *v[20] = {order_no,      nz(o->phone),         nz(o->customer_name),
                       nz(o->level),  nz(o->title),         nz(o->region),
                       nz(o->kind),   nz(o->tier),          nz(o->business_type),
                       nz(o->problem_type), nz(o->unit_id), promised,
                       nz(o->email),  nz(o->reply_channel), o->major ? "true" : "false",
                       o->urgent ? "true" : "false", prio, o->arrived ? "true" : "false",
                       nz(o->address), nz(o->transferred_to)};
  pg_tx_add(tx,
            "INSERT INTO notify.orders (order_no, phone, customer_name, level, title, region, kind,"
            " tier, business_type, problem_type, unit_id, promised_by, email, reply_channel, major,"
            " urgent, priority, arrived, address, transferred_to) VALUES ($1, $2, $3, $4, $5, $6, $7,"
            " $8, $9, $10, $11, $12::bigint, $13, $14, $15::boolean, $16::boolean, $17::int,"
            " $18::boolean, $19, $20)"
            " ON CONFLICT (order_no) DO UPDATE SET phone = EXCLUDED.phone,"
            " customer_name = EXCLUDED.customer_name, level = EXCLUDED.level,"
            " title = EXCLUDED.title, region = EXCLUDED.region, kind = EXCLUDED.kind,"
            " tier = EXCLUDED.tier, business_type = EXCLUDED.business_type,"
            " problem_type = EXCLUDED.problem_type, unit_id = EXCLUDED.unit_id,"
            " promised_by = EXCLUDED.promised_by, email = EXCLUDED.email,"
            " reply_channel = EXCLUDED.reply_channel, major = EXCLUDED.major,"
            " urgent = EXCLUDED.urgent, priority = EXCLUDED.priority, arrived = EXCLUDED.arrived,"
            " address = EXCLUDED.address, transferred_to = EXCLUDED.transferred_to",
            20, v, NULL, NULL);
}

typedef struct {
  const Kesu__V1__Envelope *env;
  const char *order_no, *unit, *due_at, *step, *escalated_to, *action, *answer;
  const char *old_due_at, *reason, *step_code, *reason_code; /* SlaDeadlineMoved */
  const order_ctx *o;
} ev_facts;

static bool channel_open(const app *a, const char *channel) {
  if (strcmp(channel, "sms") == 0) return a->gateway;
  if (strcmp(channel, "email") == 0) return a->smtp;
  return true; /* im: the contact's address is the webhook */
}

/* One delivery, once: v = key, order_no ('' for none), region, event_type, address,
 * channel, body, status, created and next attempt (ms), subject, recipient kind. */
static void record_delivery(app *a, pg_tx *tx, const char *const v[12]) {
  pg_tx_add(tx,
            "INSERT INTO notify.deliveries (delivery_key, order_no, region, event_type, recipient,"
            " channel, body, status, created_at, next_attempt_at, subject, recipient_kind)"
            " VALUES ($1, NULLIF($2, ''), NULLIF($3, ''), $4, $5, $6, $7, $8,"
            " to_timestamp($9::bigint / 1000.0), to_timestamp($10::bigint / 1000.0), $11, $12)"
            " ON CONFLICT (delivery_key) DO NOTHING",
            12, v, NULL, NULL);
  a->recorded_in_batch++;
}

/* The region whose business hours a staff member keeps: the recipient
 * unit's (the contact's unit, else the unit the event concerns), else the
 * order's. */
static const char *staff_region(const app *a, const ev_facts *f, const char *unit_id) {
  const nunit *u = unit_id && strcmp(unit_id, "*") ? find_unit(&a->ref, unit_id) : NULL;
  if (!u) u = find_unit(&a->ref, f->unit);
  if (u && *u->region) return u->region;
  return f->o && f->o->region && *f->o->region ? f->o->region : f->env->region;
}

static void add_delivery(app *a, pg_tx *tx, const ev_facts *f, const nrule *r, const ntmpl *t,
                         const char *address, const char *unit_id) {
  const order_ctx *o = f->o;
  bool customer = strcmp(r->recipient, "customer") == 0;
  char promised[20] = "", phone[64] = "";
  if (o && o->promised_by) template_local_minute(o->promised_by, promised, sizeof promised);
  /* a staff copy never shows the customer's number in full. */
  if (customer)
    snprintf(phone, sizeof phone, "%s", o ? nz(o->phone) : "");
  else
    phone_mask(o ? o->phone : "", phone, sizeof phone);
  const char *names[] = {"order_no",     "promised_by",  "customer_name", "customer_phone",
                         "title",        "region",       "unit",          "business_type",
                         "problem_type", "due_at",       "step",          "event",
                         "tier",         "escalated_to", "unit_name",     "escalated_to_name",
                         "answer",       "old_due_at",   "reason",       "customer_address"};
  const char *values[] = {f->order_no,
                          promised,
                          o ? nz(o->customer_name) : "",
                          phone,
                          o ? nz(o->title) : "",
                          o && o->region && *o->region ? o->region : f->env->region,
                          f->unit,
                          o ? nz(o->business_type) : "",
                          o ? nz(o->problem_type) : "",
                          f->due_at,
                          f->step,
                          f->env->type,
                          o ? nz(o->tier) : "",
                          f->escalated_to,
                          unit_name(&a->ref, f->unit),
                          unit_name(&a->ref, f->escalated_to),
                          nz(f->answer),
                          nz(f->old_due_at),
                          nz(f->reason),
                          o ? nz(o->address) : ""};
  int nv = (int)(sizeof names / sizeof *names);
  char *body = tmpl_render(t->body, nv, names, values);
  char *subject = tmpl_render(t->subject, nv, names, values);
  char key[512], now[24], due[24];
  if (customer)
    /* the template too: one event may bring the customer two different
     * messages on one channel (a closed repair: the answer and the survey) */
    snprintf(key, sizeof key, "%s:customer:%s:%s", f->env->event_id, r->channel, r->tmpl);
  else
    snprintf(key, sizeof key, "%s:%s:%s:%016" PRIx64, f->env->event_id, r->recipient, r->channel,
             address_hash(address));
  int64_t t_now = clock_now_ms(), t_due = t_now;
  /* customer SMS wait out the quiet hours; staff messages the business
   * hours, unless the rule is urgent. */
  if (customer && strcmp(r->channel, "sms") == 0)
    t_due = hold_until_ms(t_now, a->quiet_from, a->quiet_to);
  else if (!customer && !r->urgent && !(o && o->urgent))
    t_due = staff_release_ms(a, staff_region(a, f, unit_id), t_now);
  snprintf(now, sizeof now, "%" PRId64, t_now);
  snprintf(due, sizeof due, "%" PRId64, t_due);
  const char *region = *f->env->region ? f->env->region : (o ? nz(o->region) : "");
  /* a letter is a print task for staff (GET /v1/letters), never sent */
  const char *status = strcmp(r->channel, "letter") == 0 ? "print"
                       : channel_open(a, r->channel)     ? "pending"
                                                         : "no_gateway";
  const char *v[12] = {key,  f->order_no, region, f->env->type, address, r->channel,
                       body, status,      now,    due,          subject, r->recipient};
  record_delivery(a, tx, v);
  free(body);
  free(subject);
}

static void apply_rules(app *a, pg_tx *tx, const ev_facts *f) {
  const order_ctx *o = f->o;
  const char *keys[] = {"kind",          "tier",   "level",         "region", "problem_type",
                        "business_type", "action", "reply_channel", "major",  "step",
                        "reason",        "priority", "arrived"};
  char prio[16] = "";
  if (o && o->priority > 0) snprintf(prio, sizeof prio, "%d", o->priority);
  const char *region = o && o->region && *o->region ? o->region : f->env->region;
  const char *vals[] = {o ? nz(o->kind) : "",
                        o ? nz(o->tier) : "",
                        o ? nz(o->level) : "",
                        region,
                        o ? nz(o->problem_type) : "",
                        o ? nz(o->business_type) : "",
                        nz(f->action),
                        o && o->reply_channel && *o->reply_channel ? o->reply_channel : "sms",
                        o && o->major ? "true" : "false",
                        nz(f->step_code),
                        nz(f->reason_code),
                        prio,
                        o && o->arrived ? "true" : "false"};
  for (int i = 0; i < a->ref.nrules; i++) {
    const nrule *r = &a->ref.rules[i];
    if (strcmp(r->event_type, f->env->type) != 0) continue;
    if (!conditions_match(r->conditions, 13, keys, vals)) continue;
    const ntmpl *t = find_tmpl(&a->ref, r->tmpl);
    if (!t) continue;
    if (strcmp(r->recipient, "customer") == 0) {
      /* a phone for SMS, the e-mail given at intake for e-mail */
      const char *to = !o                                  ? NULL
                       : strcmp(r->channel, "sms") == 0    ? o->phone
                       : strcmp(r->channel, "email") == 0  ? o->email
                       : strcmp(r->channel, "letter") == 0 ? o->address
                                                           : NULL;
      if (o && strcmp(r->channel, "letter") == 0 && (!to || !*to)) {
        /* an order from before the notifier kept addresses (intake requires one for a
         * letter): the print task still goes to staff, who look the address up */
        log_warn("notifier: letter for %s printed without an address on record", f->order_no);
        to = "（地址未登记，请按工单号查询客户地址）";
      }
      if (!to || !*to) {
        if (strcmp(r->channel, "sms") == 0) metric_add(a->m_no_phone, 1);
        continue;
      }
      add_delivery(a, tx, f, r, t, to, NULL);
      continue;
    }
    /* The province customer-service dept and the HQ complaint centre are
     * found by region (R-24: the order may have no unit yet): a contact of
     * that role whose unit's region covers the order's. */
    bool by_region = strcmp(r->recipient, "province_cs") == 0 || strcmp(r->recipient, "hq") == 0;
    for (int k = 0; k < a->ref.ncontacts; k++) {
      const ncontact *c = &a->ref.contacts[k];
      if (strcmp(c->role, r->recipient) || strcmp(c->channel, r->channel)) continue;
      bool match = strcmp(c->unit_id, "*") == 0 || strcmp(c->unit_id, f->unit) == 0;
      if (!match && by_region) {
        const nunit *u = find_unit(&a->ref, c->unit_id);
        char pre[16];
        region_prefix(u ? u->region : "-", pre, sizeof pre);
        match = u && strncmp(nz(region), pre, strlen(pre)) == 0;
      }
      if (match) add_delivery(a, tx, f, r, t, c->address, c->unit_id);
    }
  }
}

/* --- R-36 + R-38: the SLA-watcher's morning due list to the unit heads -----
 * sla appends one DailyDueList at 08:00 local (per unit: steps due today and
 * overdue, "order_no/step"). Each unit in it gets one message per
 * DailyDueList rule and matching contact, key
 * "due:<unit>:<date>:<role>:<channel>:<hash>" (once per unit and day even if
 * the list is delivered twice), held to the opening of the unit's business
 * day like the heads' digest (rules not urgent). A list for a day the unit
 * does not work (holiday, weekend) is not sent: it would only arrive on the
 * next working day, whose own list says what is due then. */

static const char *step_zh_of(const char *name) {
  for (int v = KESU__V1__STEP__ACCEPT; v <= KESU__V1__STEP__FIX; v++)
    if (strcmp(step_name((Kesu__V1__Step)v), name) == 0) return step_zh((Kesu__V1__Step)v);
  return name;
}

/* "\n1. <order_no> <step>环节 <title>" per "order_no/step"; malloc'd. */
static char *due_items(app *a, char **keys, size_t n) {
  size_t cap = 64, len = 0;
  char *out = malloc(cap);
  out[0] = '\0';
  for (size_t i = 0; i < n; i++) {
    char ono[128], line[1024];
    const char *slash = strrchr(keys[i], '/');
    size_t ol = slash ? (size_t)(slash - keys[i]) : strlen(keys[i]);
    if (ol >= sizeof ono) ol = sizeof ono - 1;
    memcpy(ono, keys[i], ol);
    ono[ol] = '\0';
    const order_ctx *o = strmap_get(a->orders, ono);
    const closed_title *c = o ? NULL : strmap_get(a->closed, ono); /* e.g. its callback step */
    const char *title = o && o->title ? o->title : c ? c->title : "";
    int k = snprintf(line, sizeof line, "\n%zu. %s %s环节%s%s", i + 1, ono,
                     step_zh_of(slash ? slash + 1 : ""), *title ? " " : "", title);
    if (k < 0 || (size_t)k >= sizeof line) k = (int)strlen(line);
    while (len + (size_t)k + 1 > cap) {
      char *grown = realloc(out, cap *= 2);
      if (!grown) {
        free(out);
        return strdup("");
      }
      out = grown;
    }
    memcpy(out + len, line, (size_t)k + 1);
    len += (size_t)k;
  }
  if (len == 0) snprintf(out, cap, "无");
  return out;
}

/* The messages of a unit's list (the morning digest, the due list) to its contacts:
 * for each rule of event_type (not to customers) and each contact of that role and
 * channel for the unit, one delivery keyed <kind>:<unit>:<day>:<role>:<channel>:<address
 * hash> — once, however often the list is made. */
static void add_unit_list(app *a, pg_tx *tx, const char *event_type, const char *kind,
                          const char *unit, const char *day, const char *region,
                          const char *now_s, int nv, const char *const *names,
                          const char *const *values) {
  for (int k = 0; k < a->ref.nrules; k++) {
    const nrule *rl = &a->ref.rules[k];
    if (strcmp(rl->event_type, event_type) || strcmp(rl->recipient, "customer") == 0) continue;
    const ntmpl *t = find_tmpl(&a->ref, rl->tmpl);
    if (!t) continue;
    for (int c = 0; c < a->ref.ncontacts; c++) {
      const ncontact *ct = &a->ref.contacts[c];
      if (strcmp(ct->role, rl->recipient) || strcmp(ct->channel, rl->channel)) continue;
      if (strcmp(ct->unit_id, "*") && strcmp(ct->unit_id, unit)) continue;
      char *body = tmpl_render(t->body, nv, names, values);
      char *subject = tmpl_render(t->subject, nv, names, values);
      char key[512];
      snprintf(key, sizeof key, "%s:%s:%s:%s:%s:%016" PRIx64, kind, unit, day, rl->recipient,
               rl->channel, address_hash(ct->address));
      const char *v[12] = {key,   "",    region,  event_type, ct->address, rl->channel, body,
                           channel_open(a, rl->channel) ? "pending" : "no_gateway",
                           now_s, now_s, subject, rl->recipient};
      record_delivery(a, tx, v);
      free(body);
      free(subject);
    }
  }
}

static void daily_due_list(app *a, pg_tx *tx, const Kesu__V1__Envelope *env) {
  const Kesu__V1__DailyDueList *l = env->daily_due_list;
  if (!l) return;
  int32_t day = cal_day_of(l->date);
  int64_t now = clock_now_ms();
  char now_s[24];
  for (size_t ui = 0; ui < l->n_units; ui++) {
    const Kesu__V1__DailyDueUnit *u = l->units[ui];
    if (!*u->unit_id || (u->due_today == 0 && u->overdue == 0)) continue;
    const nunit *nu = find_unit(&a->ref, u->unit_id);
    const char *region = nu && *nu->region ? nu->region : env->region;
    int64_t release = staff_release_ms(a, region, now);
    if (cal_local_day(release) != day) {
      log_info("notifier: due list of %s for %s not sent: the unit does not work that day"
               " (or the day's business hours are over)",
               u->unit_id, l->date);
      continue;
    }
    snprintf(now_s, sizeof now_s, "%" PRId64, release);
    char cnt[16], ocnt[16];
    snprintf(cnt, sizeof cnt, "%d", u->due_today);
    snprintf(ocnt, sizeof ocnt, "%d", u->overdue);
    char *items = due_items(a, u->due_today_orders, u->n_due_today_orders);
    char *oitems = due_items(a, u->overdue_orders, u->n_overdue_orders);
    const char *names[] = {"unit",  "unit_name",     "date",          "count",
                           "items", "overdue_count", "overdue_items", "region",
                           "event"};
    const char *values[] = {u->unit_id, unit_name(&a->ref, u->unit_id), l->date, cnt, items,
                            ocnt,       oitems,                          region,  "DailyDueList"};
    add_unit_list(a, tx, "DailyDueList", "due", u->unit_id, l->date, region, now_s,
                  (int)(sizeof names / sizeof *names), names, values);
    free(items);
    free(oitems);
  }
  int64_t keep_from = now - CLOSED_KEEP_MS;
  strmap_each(a->closed, closed_drop, &keep_from);
}

static void on_apply(pg_tx *tx, const Kesu__V1__Envelope *env, void *arg) {
  app *a = arg;
  ev_facts f = {.env = env, .order_no = env->order_no, .unit = "", .due_at = "", .step = "",
                .escalated_to = "", .action = "", .answer = ""};
  char due[20] = "", old_due[20] = "";
  order_ctx *o = NULL;
  switch (env->payload_case) {
    case KESU__V1__ENVELOPE__PAYLOAD_COMPLAINT_RECEIVED: {
      const Kesu__V1__Complaint *c = env->complaint_received->complaint;
      if (!c) return;
      if (*c->order_no) f.order_no = c->order_no;
      o = ctx_for(a, f.order_no);
      const Kesu__V1__Customer *cu = c->customer;
      set_str(&o->phone, cu ? cu->phone : NULL);
      set_str(&o->customer_name, cu ? cu->name : NULL);
      set_str(&o->level, cu ? cu->level : NULL);
      set_str(&o->title, c->title);
      set_str(&o->region, *c->region ? c->region : env->region);
      set_str(&o->kind, enum_name(&kesu__v1__kind__descriptor, c->kind));
      set_str(&o->tier, enum_name(&kesu__v1__tier__descriptor, c->tier));
      set_str(&o->business_type, c->business_type);
      set_str(&o->problem_type, c->problem_type);
      set_str(&o->email, cu ? cu->email : NULL);
      set_str(&o->reply_channel, cu ? cu->reply_channel : NULL);
      set_str(&o->address, cu ? cu->address : NULL); /* a letter's address */
      /* R-15 until the router's WorkOrderCreated says (it may raise the tier) */
      if (!o->priority) o->priority = order_priority(c);
      /* R-24 重大问题: media, court (重大性) or mass impact (广泛性) */
      o->major = o->major || c->gravity || c->breadth;
      o->urgent = o->urgent || c->urgency || o->major;
      o->promised_by = c->promised_by ? c->promised_by
                                      : (c->accepted_at ? c->accepted_at : env->occurred_at) +
                                            tier_limit_ms(c->tier);
      save_ctx(tx, f.order_no, o);
      break;
    }
    case KESU__V1__ENVELOPE__PAYLOAD_WORK_ORDER_CREATED: {
      const Kesu__V1__WorkOrderCreated *w = env->work_order_created;
      if (*w->order_no) f.order_no = w->order_no;
      o = ctx_for(a, f.order_no);
      set_str(&o->unit_id, w->unit_id);
      set_str(&o->region, w->region);
      set_str(&o->business_type, w->business_type);
      set_str(&o->tier, enum_name(&kesu__v1__tier__descriptor, w->tier));
      set_str(&o->kind, enum_name(&kesu__v1__kind__descriptor, w->kind));
      if (w->promised_by) o->promised_by = w->promised_by;
      if (w->priority > 0) o->priority = w->priority;
      f.unit = w->unit_id;
      save_ctx(tx, f.order_no, o);
      if (!o->major) { /* the unit head's digest (a major problem goes at once) */
        char at[24];
        snprintf(at, sizeof at, "%" PRId64, env->occurred_at ? env->occurred_at : clock_now_ms());
        const char *dv[5] = {f.order_no, w->unit_id, nz(o->region), nz(o->title), at};
        pg_tx_add(tx,
                  "INSERT INTO notify.digest_items (order_no, unit_id, region, title, recorded_at)"
                  " VALUES ($1, $2, $3, $4, to_timestamp($5::bigint / 1000.0))"
                  " ON CONFLICT (order_no) DO NOTHING",
                  5, dv, NULL, NULL);
      }
      break;
    }
    case KESU__V1__ENVELOPE__PAYLOAD_WORK_ORDER_DISPATCHED: {
      const Kesu__V1__WorkOrderDispatched *w = env->work_order_dispatched;
      if (*w->order_no) f.order_no = w->order_no;
      o = ctx_for(a, f.order_no);
      set_str(&o->unit_id, w->unit_id);
      f.unit = w->unit_id;
      /* the receiving unit of a transfer was told by the transfer's
       * message (with its reason); the router's dispatch to it that follows
       * is not told a second time */
      bool told = o->transferred_to && strcmp(o->transferred_to, w->unit_id) == 0;
      if (told) {
        /* the mark goes in this transaction, and from memory only once it commits
         * (on_committed): a failed batch is replayed with the mark still there */
        char *keep = o->transferred_to;
        o->transferred_to = NULL;
        save_ctx(tx, f.order_no, o);
        o->transferred_to = keep;
        return;
      }
      free(o->transferred_to);
      o->transferred_to = NULL;
      save_ctx(tx, f.order_no, o);
      break;
    }
    case KESU__V1__ENVELOPE__PAYLOAD_WORK_ORDER_STEP_CHANGED: {
      const Kesu__V1__WorkOrderStepChanged *w = env->work_order_step_changed;
      if (*w->order_no) f.order_no = w->order_no;
      o = strmap_get(a->orders, f.order_no);
      /* R-38 "transferred / assist requested → the receiving unit": its
       * handler, not the old holder's */
      f.unit = *w->to_unit ? w->to_unit : w->holder_unit;
      f.action = w->action;
      f.answer = w->answer;
      f.reason = w->reason;
      if (o) {
        bool changed = false;
        if (w->promised_by && w->promised_by != o->promised_by) { /* a recommit */
          o->promised_by = w->promised_by;
          changed = true;
        }
        if (w->priority > 0 && w->priority != o->priority) { /* e.g. a reclassify */
          o->priority = w->priority;
          changed = true;
        }
        if (strcmp(w->action, "arrive") == 0 && !o->arrived) {
          o->arrived = true;
          changed = true;
        }
        if (strcmp(w->action, "transfer") == 0 && *w->to_unit) {
          free(o->transferred_to);
          o->transferred_to = strdup(w->to_unit);
          changed = true;
        }
        if (changed) save_ctx(tx, f.order_no, o);
      }
      break;
    }
    case KESU__V1__ENVELOPE__PAYLOAD_WORK_ORDER_CLOSED: {
      const Kesu__V1__WorkOrderClosed *w = env->work_order_closed;
      if (*w->order_no) f.order_no = w->order_no;
      o = strmap_get(a->orders, f.order_no);
      f.unit = w->unit_id;
      f.answer = w->answer;
      /* R-38 callback due: a task for the callback team, due 7 days after the
       * close. */
      int64_t closed = w->closed_at ? w->closed_at : env->occurred_at;
      char c_at[24], d_at[24];
      snprintf(c_at, sizeof c_at, "%" PRId64, closed);
      snprintf(d_at, sizeof d_at, "%" PRId64, closed + CALLBACK_DUE_MS);
      const char *cv[8] = {f.order_no,
                           *w->unit_id ? w->unit_id : (o ? nz(o->unit_id) : ""),
                           *env->region ? env->region : (o ? nz(o->region) : ""),
                           o ? nz(o->title) : "",
                           o ? nz(o->customer_name) : "",
                           o ? nz(o->phone) : "",
                           c_at,
                           d_at};
      pg_tx_add(tx,
                "INSERT INTO notify.callbacks (order_no, unit_id, region, title, customer_name,"
                " phone, closed_at, due_at) VALUES ($1, $2, $3, $4, $5, $6,"
                " to_timestamp($7::bigint / 1000.0), to_timestamp($8::bigint / 1000.0))"
                " ON CONFLICT (order_no) DO UPDATE SET unit_id = EXCLUDED.unit_id,"
                " closed_at = EXCLUDED.closed_at, due_at = EXCLUDED.due_at",
                8, cv, NULL, NULL);
      break;
    }
    case KESU__V1__ENVELOPE__PAYLOAD_SLA_WARNING:
    case KESU__V1__ENVELOPE__PAYLOAD_SLA_BREACHED: {
      bool warn = env->payload_case == KESU__V1__ENVELOPE__PAYLOAD_SLA_WARNING;
      const char *ono = warn ? env->sla_warning->order_no : env->sla_breached->order_no;
      if (*ono) f.order_no = ono;
      o = strmap_get(a->orders, f.order_no);
      f.unit = warn ? env->sla_warning->unit_id : env->sla_breached->unit_id;
      if (!*f.unit && o && o->unit_id) f.unit = o->unit_id;
      template_local_minute(warn ? env->sla_warning->due_at : env->sla_breached->due_at, due,
                            sizeof due);
      f.due_at = due;
      f.step = step_zh(warn ? env->sla_warning->step : env->sla_breached->step);
      break;
    }
    case KESU__V1__ENVELOPE__PAYLOAD_SLA_DEADLINE_MOVED: {
      /* a re-commit, appointment, postponement, pause/resume or re-tier
       * moved a step's deadline; the rules (action = the kind, step, reason)
       * tell the centre, the holder and, for an agreed time, the customer. */
      const Kesu__V1__SlaDeadlineMoved *m = env->sla_deadline_moved;
      if (*m->order_no) f.order_no = m->order_no;
      o = strmap_get(a->orders, f.order_no);
      f.unit = m->unit_id;
      if (m->new_due_at) template_local_minute(m->new_due_at, due, sizeof due);
      if (m->old_due_at) template_local_minute(m->old_due_at, old_due, sizeof old_due);
      f.due_at = due;
      f.old_due_at = old_due;
      f.step = step_zh(m->step);
      f.step_code = step_name(m->step);
      f.action = m->kind;
      f.reason_code = m->reason;
      f.reason = template_move_reason(m->kind, m->reason);
      if (o && m->step == KESU__V1__STEP__ANSWER && m->new_due_at &&
          strcmp(m->kind, "recommit") == 0 && m->new_due_at != o->promised_by) {
        o->promised_by = m->new_due_at; /* the customer's promise is the answer's deadline */
        save_ctx(tx, f.order_no, o);
      }
      break;
    }
    case KESU__V1__ENVELOPE__PAYLOAD_SLA_ESCALATED: {
      const Kesu__V1__SlaEscalated *e = env->sla_escalated;
      if (*e->order_no) f.order_no = e->order_no;
      o = strmap_get(a->orders, f.order_no);
      f.unit = e->from_unit;
      f.escalated_to = e->to_unit;
      template_local_minute(e->due_at, due, sizeof due);
      f.due_at = due;
      f.step = step_zh(e->step);
      break;
    }
    case KESU__V1__ENVELOPE__PAYLOAD_DAILY_DUE_LIST:
      daily_due_list(a, tx, env);
      return;
    default:
      return;
  }
  if (!f.unit || (!*f.unit && o && o->unit_id)) f.unit = o->unit_id;
  if (!f.unit) f.unit = "";
  f.o = o;
  apply_rules(a, tx, &f);
  if (env->payload_case == KESU__V1__ENVELOPE__PAYLOAD_WORK_ORDER_CLOSED) {
    const char *v[1] = {f.order_no};
    pg_tx_add(tx, "DELETE FROM notify.orders WHERE order_no = $1", 1, v, NULL, NULL);
  }
}

static void on_committed(const Kesu__V1__Envelope *env, void *arg) {
  app *a = arg;
  metric_add(a->m_applied, 1);
  if (env->payload_case == KESU__V1__ENVELOPE__PAYLOAD_WORK_ORDER_DISPATCHED) {
    const Kesu__V1__WorkOrderDispatched *w = env->work_order_dispatched;
    order_ctx *o = strmap_get(a->orders, *w->order_no ? w->order_no : env->order_no);
    if (o && o->transferred_to && strcmp(o->transferred_to, w->unit_id) == 0) {
      free(o->transferred_to); /* told by the transfer, not again (see on_apply) */
      o->transferred_to = NULL;
    }
  }
  if (env->payload_case == KESU__V1__ENVELOPE__PAYLOAD_WORK_ORDER_CLOSED) {
    const char *ono =
        *env->work_order_closed->order_no ? env->work_order_closed->order_no : env->order_no;
    order_ctx *o = strmap_remove(a->orders, ono);
    if (o)
      closed_put(a->closed, ono, o->title,
                 env->work_order_closed->closed_at ? env->work_order_closed->closed_at
                                                   : env->occurred_at);
    ctx_free(o);
  }
  if (a->recorded_in_batch) {
    metric_add(a->m_recorded, a->recorded_in_batch);
    a->recorded_in_batch = 0;
    sender_kick(a->snd); /* coalesced: one pick after the batch */
  }
}

/* --- the unit heads' digest (R-38 "complaint recorded → unit head, e-mail
 * digest") -------------------------------------------------------------------
 * At the opening of each business day of a unit (its calendar and hours), one
 * message per ComplaintDigest rule and head contact lists the unit's orders
 * recorded before that opening and not yet in a digest. notify.digests
 * (unit, day) makes it once per day: the items are marked only by the pass
 * that recorded the day's digest; the delivery key
 * "digest:<unit>:<day>:<role>:<channel>:<hash>" makes the send exactly once. */

typedef struct {
  app *a;
  int64_t now;
} digest_q;

static void on_digest_written(const pg_result_set *rs, void *arg) {
  app *a = arg;
  a->digest_busy = false;
  if (!rs->ok) {
    log_warn("notifier: digest: %s", rs->error);
    return;
  }
  if (a->recorded_in_batch) {
    metric_add(a->m_recorded, a->recorded_in_batch);
    a->recorded_in_batch = 0;
    sender_kick(a->snd);
  }
}

static void digest_unit(app *a, pg_tx *tx, PGresult *r, int from, int to, int64_t now) {
  const char *unit = PQgetvalue(r, from, 0);
  const nunit *u = find_unit(&a->ref, unit);
  const char *region = u && *u->region ? u->region : PQgetvalue(r, from, 3);
  if (staff_release_ms(a, region, now) != now) return; /* not open now */
  /* only what was recorded before today's opening */
  int32_t today = cal_local_day(now);
  int64_t midnight = (int64_t)today * 86400000 - (int64_t)8 * 3600000;
  int64_t opening = staff_release_ms(a, region, midnight);
  if (cal_local_day(opening) != today) return;
  char day[16], date[16];
  {
    char buf[20];
    template_local_minute(now, buf, sizeof buf);
    snprintf(date, sizeof date, "%.10s", buf);
    snprintf(day, sizeof day, "%s", date);
  }
  size_t cap = 256, len = 0;
  char *items = malloc(cap), *list = malloc(cap), *arr = NULL;
  items[0] = list[0] = '\0';
  int count = 0;
  for (int i = from; i < to; i++) {
    if (strtoll(PQgetvalue(r, i, 4), NULL, 10) >= opening) continue;
    char line[1024];
    int n = snprintf(line, sizeof line, "\n%d. %s %s（%s）", count + 1,
                     PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), PQgetvalue(r, i, 3));
    if (n < 0 || (size_t)n >= sizeof line) n = (int)strlen(line);
    while (len + (size_t)n + 1 > cap) items = realloc(items, cap *= 2);
    memcpy(items + len, line, (size_t)n + 1);
    len += (size_t)n;
    size_t ll = strlen(list), nl = strlen(PQgetvalue(r, i, 1));
    list = realloc(list, ll + nl + 2);
    snprintf(list + ll, nl + 2, "%s%s", ll ? "," : "", PQgetvalue(r, i, 1));
    count++;
  }
  if (count == 0) {
    free(items);
    free(list);
    return;
  }
  size_t al = strlen(list) + 3;
  arr = malloc(al);
  snprintf(arr, al, "{%s}", list);
  char cnt[16], now_s[24];
  snprintf(cnt, sizeof cnt, "%d", count);
  snprintf(now_s, sizeof now_s, "%" PRId64, now);
  const char *gv[3] = {unit, day, arr};
  pg_tx_add(tx,
            "WITH g AS (INSERT INTO notify.digests (unit_id, day) VALUES ($1, $2::date)"
            " ON CONFLICT DO NOTHING RETURNING unit_id)"
            " UPDATE notify.digest_items SET digest_day = $2::date"
            " WHERE order_no = ANY($3::text[]) AND EXISTS (SELECT 1 FROM g)",
            3, gv, NULL, NULL);
  const char *names[] = {"unit", "unit_name", "date", "count", "items", "region", "event"};
  const char *values[] = {unit, unit_name(&a->ref, unit), date, cnt, items, region,
                          "ComplaintDigest"};
  add_unit_list(a, tx, "ComplaintDigest", "digest", unit, day, region, now_s,
                (int)(sizeof names / sizeof *names), names, values);
  free(items);
  free(list);
  free(arr);
}

static void on_digest_items(const pg_result_set *rs, void *arg) {
  digest_q *q = arg;
  app *a = q->a;
  if (!rs->ok) {
    a->digest_busy = false;
    free(q);
    return;
  }
  PGresult *r = rs->res[0];
  pg_tx *tx = pg_tx_new();
  int n = PQntuples(r);
  for (int i = 0; i < n;) {
    int j = i;
    while (j < n && strcmp(PQgetvalue(r, j, 0), PQgetvalue(r, i, 0)) == 0) j++;
    digest_unit(a, tx, r, i, j, q->now);
    i = j;
  }
  free(q);
  if (pg_tx_count(tx) == 0) {
    pg_tx_destroy(&tx);
    a->digest_busy = false;
    return;
  }
  pg_conn_submit(a->pg, tx, on_digest_written, a);
}

static void on_digest_tick(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  app *a = arg;
  if (a->digest_busy || !a->cons || !pg_conn_ready(a->pg)) return;
  bool any = false;
  for (int i = 0; i < a->ref.nrules && !any; i++)
    any = strcmp(a->ref.rules[i].event_type, "ComplaintDigest") == 0;
  if (!any) return;
  digest_q *q = calloc(1, sizeof *q);
  q->a = a;
  q->now = clock_now_ms();
  a->digest_busy = true;
  pg_tx *tx = pg_tx_new();
  pg_tx_add(tx,
            "SELECT unit_id, order_no, title, region, " MS("recorded_at")
            " FROM notify.digest_items WHERE digest_day IS NULL"
            " ORDER BY unit_id, recorded_at, order_no LIMIT 20000",
            0, NULL, NULL, NULL);
  pg_conn_submit(a->pg, tx, on_digest_items, q);
}

/* --- start-up: reference data and open orders, then the consumers ---------- */

static void start_consumers(app *a);

static void on_reference(const pg_result_set *rs, void *arg) {
  app *a = arg;
  a->loading = false;
  if (!rs->ok) {
    log_warn("notifier: loading rules/templates/contacts failed: %s — retrying", rs->error);
    a->reload = true;
    return;
  }
  refdata d = {0};
  PGresult *r = rs->res[0];
  d.nrules = PQntuples(r);
  d.rules = calloc((size_t)d.nrules + 1, sizeof *d.rules);
  for (int i = 0; i < d.nrules; i++) {
    d.rules[i].event_type = col_dup(r, i, 0);
    d.rules[i].conditions = col_dup(r, i, 1);
    d.rules[i].recipient = col_dup(r, i, 2);
    d.rules[i].channel = col_dup(r, i, 3);
    d.rules[i].tmpl = col_dup(r, i, 4);
    d.rules[i].urgent = PQgetvalue(r, i, 5)[0] == 't';
  }
  r = rs->res[1];
  d.ntmpls = PQntuples(r);
  d.tmpls = calloc((size_t)d.ntmpls + 1, sizeof *d.tmpls);
  for (int i = 0; i < d.ntmpls; i++) {
    d.tmpls[i].code = col_dup(r, i, 0);
    d.tmpls[i].channel = col_dup(r, i, 1);
    d.tmpls[i].subject = col_dup(r, i, 2);
    d.tmpls[i].body = col_dup(r, i, 3);
  }
  r = rs->res[2];
  d.ncontacts = PQntuples(r);
  d.contacts = calloc((size_t)d.ncontacts + 1, sizeof *d.contacts);
  for (int i = 0; i < d.ncontacts; i++) {
    d.contacts[i].unit_id = col_dup(r, i, 0);
    d.contacts[i].role = col_dup(r, i, 1);
    d.contacts[i].channel = col_dup(r, i, 2);
    d.contacts[i].address = col_dup(r, i, 3);
  }
  r = rs->res[3];
  d.nunits = PQntuples(r);
  d.units = calloc((size_t)d.nunits + 1, sizeof *d.units);
  for (int i = 0; i < d.nunits; i++) {
    d.units[i].id = col_dup(r, i, 0);
    d.units[i].name = col_dup(r, i, 1);
    d.units[i].region = col_dup(r, i, 2);
  }
  r = rs->res[4];
  d.nhours = PQntuples(r);
  d.hours = calloc((size_t)d.nhours + 1, sizeof *d.hours);
  for (int i = 0; i < d.nhours; i++) {
    char pre[64];
    const char *p = PQgetvalue(r, i, 1);
    region_prefix(strcmp(p, "*") == 0 ? "" : p, pre, sizeof pre);
    d.hours[i].calendar_id = col_dup(r, i, 0);
    d.hours[i].prefix = strdup(pre);
    d.hours[i].open_min = atoi(PQgetvalue(r, i, 2));
    d.hours[i].close_min = atoi(PQgetvalue(r, i, 3));
  }
  r = rs->res[5]; /* ordered by calendar_id */
  d.cals = calloc((size_t)PQntuples(r) + 1, sizeof *d.cals);
  for (int i = 0; i < PQntuples(r); i++) {
    const char *id = PQgetvalue(r, i, 0);
    if (d.ncals == 0 || strcmp(d.cals[d.ncals - 1].id, id) != 0) {
      d.cals[d.ncals].id = strdup(id);
      d.cals[d.ncals].days = calloc((size_t)PQntuples(r), sizeof(cal_day));
      d.ncals++;
    }
    ncalendar *c = &d.cals[d.ncals - 1];
    c->days[c->ndays].day = cal_day_of(PQgetvalue(r, i, 1));
    c->days[c->ndays].workday = strcmp(PQgetvalue(r, i, 2), "workday") == 0;
    c->ndays++;
  }
  /* A calendar other than 'cn' is the national one plus its own rows (its
   * own first: the first row of a day decides). */
  const ncalendar *cn = find_calendar(&d, "cn");
  for (int i = 0; cn && i < d.ncals; i++) {
    ncalendar *c = &d.cals[i];
    if (c == cn) continue;
    c->days = realloc(c->days, ((size_t)c->ndays + (size_t)cn->ndays) * sizeof(cal_day));
    memcpy(c->days + c->ndays, cn->days, (size_t)cn->ndays * sizeof(cal_day));
    c->ndays += cn->ndays;
  }
  refdata_free(&a->ref);
  a->ref = d;
  if (rs->n > 6) {
    r = rs->res[6];
    for (int i = 0; i < PQntuples(r); i++) {
      order_ctx *o = calloc(1, sizeof *o);
      o->phone = col_dup(r, i, 1);
      o->customer_name = col_dup(r, i, 2);
      o->level = col_dup(r, i, 3);
      o->title = col_dup(r, i, 4);
      o->region = col_dup(r, i, 5);
      o->kind = col_dup(r, i, 6);
      o->tier = col_dup(r, i, 7);
      o->business_type = col_dup(r, i, 8);
      o->problem_type = col_dup(r, i, 9);
      o->unit_id = col_dup(r, i, 10);
      o->promised_by = strtoll(PQgetvalue(r, i, 11), NULL, 10);
      o->email = col_dup(r, i, 12);
      o->reply_channel = col_dup(r, i, 13);
      o->major = PQgetvalue(r, i, 14)[0] == 't';
      o->urgent = PQgetvalue(r, i, 15)[0] == 't';
      o->priority = atoi(PQgetvalue(r, i, 16));
      o->arrived = PQgetvalue(r, i, 17)[0] == 't';
      o->address = col_dup(r, i, 18);
      o->transferred_to = col_dup(r, i, 19);
      ctx_free(strmap_put(a->orders, PQgetvalue(r, i, 0), o));
    }
    a->orders_loaded = true;
  }
  if (rs->n > 7) {
    r = rs->res[7];
    for (int i = 0; i < PQntuples(r); i++)
      closed_put(a->closed, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
                 strtoll(PQgetvalue(r, i, 2), NULL, 10));
  }
  log_info("notifier: %d rules, %d templates, %d contacts, %d units, %d business-hours rows,"
           " %d calendars; %zu open orders",
           a->ref.nrules, a->ref.ntmpls, a->ref.ncontacts, a->ref.nunits, a->ref.nhours,
           a->ref.ncals, strmap_size(a->orders));
  if (a->ref.nrules == 0)
    log_warn("notifier: no notification rules: run `kesuctl load notify`");
  start_consumers(a);
  if (a->reload) {
    a->reload = false;
    event_active(a->ev_reload, 0, 0);
  }
}

static void load_reference(app *a) {
  if (a->loading) {
    a->reload = true;
    return;
  }
  pg_tx *tx = pg_tx_new();
  pg_tx_add(tx,
            "SELECT event_type, conditions, recipient, channel, template, urgent"
            " FROM notify.rules ORDER BY id",
            0, NULL, NULL, NULL);
  pg_tx_add(tx, "SELECT code, channel, subject, body FROM notify.templates", 0, NULL, NULL, NULL);
  pg_tx_add(tx, "SELECT unit_id, role, channel, address FROM notify.contacts", 0, NULL, NULL,
            NULL);
  pg_tx_add(tx, "SELECT id, name, region FROM notify.units", 0, NULL, NULL, NULL);
  pg_tx_add(tx,
            "SELECT calendar_id, region_prefix,"
            " (extract(hour from open) * 60 + extract(minute from open))::int,"
            " (extract(hour from close) * 60 + extract(minute from close))::int"
            " FROM notify.business_hours",
            0, NULL, NULL, NULL);
  pg_tx_add(tx,
            "SELECT calendar_id, day::text, kind FROM notify.calendar_days ORDER BY calendar_id, day",
            0, NULL, NULL, NULL);
  if (!a->orders_loaded)
    pg_tx_add(tx,
              "SELECT order_no, phone, customer_name, level, title, region, kind, tier,"
              " business_type, problem_type, unit_id, promised_by, email, reply_channel, major, urgent,"
              " priority, arrived, address, transferred_to FROM notify.orders",
              0, NULL, NULL, NULL);
  if (!a->orders_loaded) {
    char since[24];
    snprintf(since, sizeof since, "%" PRId64, clock_now_ms() - CLOSED_KEEP_MS);
    const char *v[1] = {since};
    pg_tx_add(tx,
              "SELECT order_no, title, " MS("closed_at") " FROM notify.callbacks"
              " WHERE closed_at > to_timestamp($1::bigint / 1000.0) AND title <> ''",
              1, v, NULL, NULL);
  }
  a->loading = true;
  pg_conn_submit(a->pg, tx, on_reference, a);
}

static void on_reload_ev(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  load_reference(arg);
}

static void on_reference_notify(const char *channel, const char *payload, void *arg) {
  (void)channel;
  (void)payload;
  load_reference(arg);
}

/* --- HTTP ----------------------------------------------------------------- */

typedef struct {
  app *a;
  struct evhttp_request *req;
  bool admin, full; /* full: customer numbers unmasked (admin, centre) */
  char id[24];
} http_q;

static http_q *new_q(app *a, struct evhttp_request *req, const auth_ctx *auth) {
  http_q *q = calloc(1, sizeof *q);
  q->a = a;
  q->req = req;
  q->admin = auth && strcmp(auth->role, "admin") == 0;
  q->full = auth && (q->admin || strcmp(auth->role, "centre") == 0);
  return q;
}

/* Deliveries and callback tasks show customers' numbers: admin and centre
 * staff in full, handlers masked, within their scope; others 403. */
static bool staff_may_read(struct evhttp_request *req, const auth_ctx *auth) {
  if (strcmp(auth->role, "admin") == 0 || strcmp(auth->role, "centre") == 0 ||
      strcmp(auth->role, "handler") == 0)
    return true;
  http_reply_error(req, 403, "forbidden", "deliveries need an admin, centre or handler token",
                   NULL);
  return false;
}

/* The region prefix a token may read ("" = everything: admin). */
static void scope_prefix(const auth_ctx *auth, char *prefix, size_t len) {
  region_prefix(strcmp(auth->role, "admin") == 0 ? "" : auth->scope, prefix, len);
}

static json_t *json_time(PGresult *r, int row, int col) {
  if (PQgetisnull(r, row, col)) return json_null();
  char buf[40];
  clock_format_ms(strtoll(PQgetvalue(r, row, col), NULL, 10), buf, sizeof buf);
  return json_string(buf);
}

static json_t *json_text(PGresult *r, int row, int col) {
  return PQgetisnull(r, row, col) ? json_null() : json_string(PQgetvalue(r, row, col));
}

static void on_list_rows(const pg_result_set *rs, void *arg) {
  http_q *q = arg;
  if (!rs->ok) {
    http_reply_error(q->req, 503, "unavailable", "database unavailable", NULL);
    free(q);
    return;
  }
  PGresult *r = rs->res[0];
  json_t *arr = json_array();
  for (int i = 0; i < PQntuples(r); i++) {
    char masked[512];
    const char *recipient = PQgetvalue(r, i, 4);
    bool to_customer = strcmp(PQgetvalue(r, i, 14), "customer") == 0;
    bool letter = strcmp(PQgetvalue(r, i, 3), "letter") == 0; /* a postal address */
    if (!q->full && to_customer && !letter) { /* handlers see the number masked */
      phone_mask(recipient, masked, sizeof masked);
      recipient = masked;
    } else if (!q->admin && strcmp(PQgetvalue(r, i, 3), "im") == 0) {
      /* a webhook's query string carries its secret: admins only */
      snprintf(masked, sizeof masked, "%.*s", (int)strcspn(recipient, "?"), recipient);
      recipient = masked;
    }
    json_t *d = json_object();
    json_object_set_new(d, "id", json_integer(strtoll(PQgetvalue(r, i, 0), NULL, 10)));
    json_object_set_new(d, "delivery_key", json_string(PQgetvalue(r, i, 1)));
    json_object_set_new(d, "order_no", json_text(r, i, 2));
    json_object_set_new(d, "channel", json_string(PQgetvalue(r, i, 3)));
    json_object_set_new(d, "recipient", json_string(recipient));
    json_object_set_new(d, "status", json_string(PQgetvalue(r, i, 5)));
    json_object_set_new(d, "attempts", json_integer(atoi(PQgetvalue(r, i, 6))));
    json_object_set_new(d, "body", json_string(PQgetvalue(r, i, 7)));
    json_object_set_new(d, "sent_at", json_time(r, i, 8));
    json_object_set_new(d, "last_error", json_text(r, i, 9));
    json_object_set_new(d, "event_type", json_string(PQgetvalue(r, i, 10)));
    json_object_set_new(d, "created_at", json_time(r, i, 11));
    json_object_set_new(d, "next_attempt_at", json_time(r, i, 12));
    json_object_set_new(d, "subject", json_string(PQgetvalue(r, i, 13)));
    json_object_set_new(d, "recipient_kind", json_string(PQgetvalue(r, i, 14)));
    json_array_append_new(arr, d);
  }
  http_reply_json(q->req, 200, json_pack("{s:o}", "deliveries", arr));
  free(q);
}

static const char *const statuses[] = {"pending", "sending",    "sent",  "failed",
                                       "dead",    "no_gateway", "print", "printed"};

static void h_list(struct evhttp_request *req, const auth_ctx *auth, char **segs, int nsegs,
                   void *arg) {
  app *a = arg;
  if (!staff_may_read(req, auth)) return;
  const char *order_no = http_query(req, "order_no");
  const char *status = http_query(req, "status");
  if (status) {
    bool ok = false;
    for (size_t i = 0; i < sizeof statuses / sizeof *statuses; i++)
      if (strcmp(status, statuses[i]) == 0) ok = true;
    if (!ok) {
      http_reply_error(req, 422, "invalid_value",
                       "status must be pending, sending, sent, failed, dead, no_gateway, print or printed",
                       "status");
      return;
    }
  }
  char prefix[64];
  scope_prefix(auth, prefix, sizeof prefix);
  http_q *q = new_q(a, req, auth);
  const char *v[3] = {order_no ? order_no : "", status ? status : "", prefix};
  pg_tx *tx = pg_tx_new();
  pg_tx_add(tx,
            "SELECT id, delivery_key, order_no, channel, recipient, status, attempts, body, "
            MS("sent_at") ", last_error, event_type, " MS("created_at") ", "
            MS("next_attempt_at") ", subject, recipient_kind"
            " FROM notify.deliveries"
            " WHERE ($1 = '' OR order_no = $1) AND ($2 = '' OR status = $2)"
            "   AND ($3 = '' OR region LIKE $3 || '%')"
            " ORDER BY id DESC LIMIT 500",
            3, v, NULL, NULL);
  pg_conn_submit(a->pg, tx, on_list_rows, q);
}

static void on_retried(const pg_result_set *rs, void *arg) {
  http_q *q = arg;
  if (!rs->ok) {
    http_reply_error(q->req, 503, "unavailable", "database unavailable", NULL);
    free(q);
    return;
  }
  PGresult *upd = rs->res[0], *cur = rs->res[1];
  if (PQntuples(upd) == 1) {
    sender_kick(q->a->snd);
    http_reply_json(q->req, 200,
                    json_pack("{s:I, s:s}", "id", (json_int_t)strtoll(q->id, NULL, 10), "status",
                              "pending"));
  } else if (PQntuples(cur) == 1) {
    char msg[128];
    snprintf(msg, sizeof msg, "delivery is %s; only failed or dead deliveries can be retried",
             PQgetvalue(cur, 0, 0));
    http_reply_error(q->req, 409, "conflict", msg, NULL);
  } else {
    http_reply_error(q->req, 404, "not_found", "no such delivery", NULL);
  }
  free(q);
}

static void h_retry(struct evhttp_request *req, const auth_ctx *auth, char **segs, int nsegs,
                    void *arg) {
  app *a = arg;
  if (strcmp(auth->role, "admin") != 0) {
    http_reply_error(req, 403, "forbidden", "only an admin may retry deliveries", NULL);
    return;
  }
  char *end;
  long long id = strtoll(segs[0], &end, 10);
  if (*end || id <= 0 || end == segs[0]) {
    http_reply_error(req, 404, "not_found", "no such delivery", NULL);
    return;
  }
  http_q *q = new_q(a, req, auth);
  snprintf(q->id, sizeof q->id, "%lld", id);
  char now[24];
  snprintf(now, sizeof now, "%" PRId64, clock_now_ms());
  const char *v[2] = {q->id, now};
  pg_tx *tx = pg_tx_new();
  pg_tx_add(tx,
            "UPDATE notify.deliveries SET status = 'pending', attempts = 0,"
            " next_attempt_at = to_timestamp($2::bigint / 1000.0)"
            " WHERE id = $1::bigint AND status IN ('failed', 'dead') RETURNING id",
            2, v, NULL, NULL);
  pg_tx_add(tx, "SELECT status FROM notify.deliveries WHERE id = $1::bigint", 1, v, NULL, NULL);
  pg_conn_submit(a->pg, tx, on_retried, q);
}

/* GET /v1/callbacks?unit=&due=YYYY-MM-DD — the callback team's task list
 * (R-38 "callback due"): orders closed, callback due on or before the local
 * day `due` (default today), oldest first. */
static void on_callbacks(const pg_result_set *rs, void *arg) {
  http_q *q = arg;
  if (!rs->ok) {
    http_reply_error(q->req, 503, "unavailable", "database unavailable", NULL);
    free(q);
    return;
  }
  PGresult *r = rs->res[0];
  json_t *arr = json_array();
  for (int i = 0; i < PQntuples(r); i++) {
    char phone[64];
    const char *p = PQgetvalue(r, i, 4);
    if (!q->full) {
      phone_mask(p, phone, sizeof phone);
      p = phone;
    }
    const char *unit = PQgetvalue(r, i, 1);
    json_array_append_new(
        arr, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:o}", "order_no", PQgetvalue(r, i, 0),
                       "unit", unit, "unit_name", unit_name(&q->a->ref, unit), "title",
                       PQgetvalue(r, i, 2), "customer_name", PQgetvalue(r, i, 3),
                       "customer_phone", p, "closed_at", json_time(r, i, 5), "due_at",
                       json_time(r, i, 6)));
  }
  http_reply_json(q->req, 200, json_pack("{s:o}", "callbacks", arr));
  free(q);
}

static void h_callbacks(struct evhttp_request *req, const auth_ctx *auth, char **segs, int nsegs,
                        void *arg) {
  app *a = arg;
  if (!staff_may_read(req, auth)) return;
  const char *unit = http_query(req, "unit");
  const char *due = http_query(req, "due");
  char today[24];
  int32_t day;
  if (due) {
    day = cal_day_of(due);
    if (day < 0 || strlen(due) != 10) {
      http_reply_error(req, 422, "invalid_value", "due must be a date YYYY-MM-DD", "due");
      return;
    }
  } else {
    day = cal_local_day(clock_now_ms());
  }
  /* the end of the local day, Unix ms */
  snprintf(today, sizeof today, "%" PRId64,
           ((int64_t)day + 1) * 86400000 - (int64_t)8 * 3600000);
  char prefix[64];
  scope_prefix(auth, prefix, sizeof prefix);
  http_q *q = new_q(a, req, auth);
  const char *v[3] = {unit ? unit : "", today, prefix};
  pg_tx *tx = pg_tx_new();
  pg_tx_add(tx,
            "SELECT order_no, unit_id, title, customer_name, phone, " MS("closed_at") ", "
            MS("due_at") " FROM notify.callbacks"
            " WHERE ($1 = '' OR unit_id = $1) AND due_at < to_timestamp($2::bigint / 1000.0)"
            "   AND ($3 = '' OR region LIKE $3 || '%')"
            " ORDER BY due_at, order_no LIMIT 500",
            3, v, NULL, NULL);
  pg_conn_submit(a->pg, tx, on_callbacks, q);
}

/* --- letters (R-38 "final answer … by letter as chosen at intake") ----------
 * A letter is a delivery of channel 'letter', status 'print' (to print) or
 * 'printed'. GET /v1/letters?status=pending|printed[&order_no=] lists them
 * (pending = to print, oldest first); POST /v1/letters/{id}/printed marks one
 * printed — idempotent: a second call answers the same, and a printed letter
 * never shows in the pending list again. Admin, centre and handler tokens,
 * within their scope. */
static void on_letters(const pg_result_set *rs, void *arg) {
  http_q *q = arg;
  if (!rs->ok) {
    http_reply_error(q->req, 503, "unavailable", "database unavailable", NULL);
    free(q);
    return;
  }
  PGresult *r = rs->res[0];
  json_t *arr = json_array();
  for (int i = 0; i < PQntuples(r); i++) {
    json_t *d = json_object();
    json_object_set_new(d, "id", json_integer(strtoll(PQgetvalue(r, i, 0), NULL, 10)));
    json_object_set_new(d, "delivery_key", json_string(PQgetvalue(r, i, 1)));
    json_object_set_new(d, "order_no", json_text(r, i, 2));
    json_object_set_new(d, "event_type", json_string(PQgetvalue(r, i, 3)));
    json_object_set_new(d, "address", json_string(PQgetvalue(r, i, 4)));
    json_object_set_new(d, "body", json_string(PQgetvalue(r, i, 5)));
    json_object_set_new(d, "status",
                        json_string(strcmp(PQgetvalue(r, i, 6), "printed") == 0 ? "printed"
                                                                                : "pending"));
    json_object_set_new(d, "created_at", json_time(r, i, 7));
    json_object_set_new(d, "printed_at", json_time(r, i, 8));
    json_array_append_new(arr, d);
  }
  http_reply_json(q->req, 200, json_pack("{s:o}", "letters", arr));
  free(q);
}

#define LETTER_COLS \
  "id, delivery_key, order_no, event_type, recipient, body, status, " MS("created_at") ", " \
  MS("sent_at")

static void h_letters(struct evhttp_request *req, const auth_ctx *auth, char **segs, int nsegs,
                      void *arg) {
  app *a = arg;
  if (!staff_may_read(req, auth)) return;
  const char *status = http_query(req, "status");
  const char *order_no = http_query(req, "order_no");
  if (status && strcmp(status, "pending") && strcmp(status, "printed")) {
    http_reply_error(req, 422, "invalid_value", "status must be pending or printed", "status");
    return;
  }
  char prefix[64];
  scope_prefix(auth, prefix, sizeof prefix);
  http_q *q = new_q(a, req, auth);
  const char *v[3] = {status && strcmp(status, "printed") == 0 ? "printed" : "print",
                      order_no ? order_no : "", prefix};
  pg_tx *tx = pg_tx_new();
  pg_tx_add(tx,
            "SELECT " LETTER_COLS " FROM notify.deliveries"
            " WHERE channel = 'letter' AND status = $1 AND ($2 = '' OR order_no = $2)"
            "   AND ($3 = '' OR region LIKE $3 || '%')"
            " ORDER BY id LIMIT 500",
            3, v, NULL, NULL);
  pg_conn_submit(a->pg, tx, on_letters, q);
}

static void on_printed(const pg_result_set *rs, void *arg) {
  http_q *q = arg;
  if (!rs->ok) {
    http_reply_error(q->req, 503, "unavailable", "database unavailable", NULL);
    free(q);
    return;
  }
  PGresult *r = rs->res[1];
  if (PQntuples(r) != 1) {
    http_reply_error(q->req, 404, "not_found", "no such letter", NULL);
  } else {
    json_t *d = json_object();
    json_object_set_new(d, "id", json_integer(strtoll(PQgetvalue(r, 0, 0), NULL, 10)));
    json_object_set_new(d, "order_no", json_text(r, 0, 2));
    json_object_set_new(d, "status", json_string("printed"));
    json_object_set_new(d, "printed_at", json_time(r, 0, 8));
    http_reply_json(q->req, 200, d);
  }
  free(q);
}

static void h_printed(struct evhttp_request *req, const auth_ctx *auth, char **segs, int nsegs,
                      void *arg) {
  app *a = arg;
  if (!staff_may_read(req, auth)) return;
  char *end;
  long long id = strtoll(segs[0], &end, 10);
  if (*end || id <= 0 || end == segs[0]) {
    http_reply_error(req, 404, "not_found", "no such letter", NULL);
    return;
  }
  char prefix[64];
  scope_prefix(auth, prefix, sizeof prefix);
  http_q *q = new_q(a, req, auth);
  snprintf(q->id, sizeof q->id, "%lld", id);
  char now[24];
  snprintf(now, sizeof now, "%" PRId64, clock_now_ms());
  const char *v[3] = {q->id, now, prefix};
  pg_tx *tx = pg_tx_new();
  /* once: only a letter still to print changes; printed_at stays the first */
  pg_tx_add(tx,
            "UPDATE notify.deliveries SET status = 'printed', attempts = 1,"
            " sent_at = to_timestamp($2::bigint / 1000.0)"
            " WHERE id = $1::bigint AND channel = 'letter' AND status = 'print'"
            "   AND ($3 = '' OR region LIKE $3 || '%')",
            3, v, NULL, NULL);
  const char *v2[2] = {q->id, prefix};
  pg_tx_add(tx,
            "SELECT " LETTER_COLS " FROM notify.deliveries"
            " WHERE id = $1::bigint AND channel = 'letter' AND status = 'printed'"
            "   AND ($2 = '' OR region LIKE $2 || '%')",
            2, v2, NULL, NULL);
  pg_conn_submit(a->pg, tx, on_printed, q);
}

static bool is_ready(void *arg) {
  app *a = arg;
  return pg_conn_ready(a->pg) && pg_conn_ready(a->pg_send) && a->cons && consumer_live(a->cons) &&
         consumer_live(a->cons_router) && consumer_live(a->cons_sla);
}

static void metrics_cb(struct evbuffer *out, void *arg) {
  app *a = arg;
  evbuffer_add_printf(out,
                      "# HELP kesu_notify_consumer_offset Last seq applied per producer\n"
                      "# TYPE kesu_notify_consumer_offset gauge\n"
                      "kesu_notify_consumer_offset{producer=\"intake\"} %" PRIu64 "\n"
                      "kesu_notify_consumer_offset{producer=\"router\"} %" PRIu64 "\n"
                      "kesu_notify_consumer_offset{producer=\"sla\"} %" PRIu64 "\n"
                      "# HELP kesu_notify_inflight Transfers in flight\n"
                      "# TYPE kesu_notify_inflight gauge\n"
                      "kesu_notify_inflight %zu\n",
                      a->cons ? consumer_offset(a->cons) : 0,
                      a->cons_router ? consumer_offset(a->cons_router) : 0,
                      a->cons_sla ? consumer_offset(a->cons_sla) : 0, sender_inflight(a->snd));
}

static consumer *consume(app *a, const char *producer, const char *pub, int pub_port,
                         const char *replay, int replay_port) {
  consumer_config cc = {.schema = "notify",
                        .producer = producer,
                        .pub_endpoint = cfg_endpoint(pub, pub_port),
                        .replay_endpoint = cfg_endpoint(replay, replay_port),
                        .apply = on_apply,
                        .committed = on_committed,
                        .arg = a,
                        /* 50 ms later is nothing to an SMS; under load it makes one
                         * transaction of many events (KESU_NOTIFY_LINGER_MS) */
                        .linger_ms = 50};
  consumer *c = consumer_new(a->base, a->pg, &cc);
  if (!c) {
    log_error("notifier: cannot start consuming %s", producer);
    event_base_loopbreak(a->base);
  }
  return c;
}

/* Once the rules and the open orders are in memory. */
static void start_consumers(app *a) {
  if (a->cons) return;
  a->cons = consume(a, "intake", "KESU_INTAKE_PUB", PORT_INTAKE_PUB, "KESU_INTAKE_REPLAY",
                    PORT_INTAKE_REPLAY);
  a->cons_router = consume(a, "router", "KESU_ROUTER_PUB", PORT_ROUTER_PUB, "KESU_ROUTER_REPLAY",
                           PORT_ROUTER_REPLAY);
  a->cons_sla =
      consume(a, "sla", "KESU_SLA_PUB", PORT_SLA_PUB, "KESU_SLA_REPLAY", PORT_SLA_REPLAY);
}

static bool free_ctx(const char *key, void *value, void *arg) {
  (void)key;
  (void)arg;
  ctx_free(value);
  return true;
}

static void window_cfg(const char *name, const char *def, int *from, int *to, bool invert) {
  const char *s = cfg_str(name, def);
  int f, t;
  if (parse_window(s, &f, &t) != 0) {
    log_warn("notifier: %s=%s is not HH:MM-HH:MM; using %s", name, s, def);
    parse_window(def, &f, &t);
  }
  *from = invert ? t : f;
  *to = invert ? f : t;
}

int main(void) {
  struct event_base *base = service_init("notifier");
  app a = {.base = base};
  curl_global_init(CURL_GLOBAL_DEFAULT);
  const char *url = cfg_str("KESU_SMS_URL", "");
  const char *smtp = cfg_str("KESU_SMTP_URL", "");
  a.gateway = url && *url;
  a.smtp = smtp && *smtp;
  /* customer SMS not in the quiet hours; staff messages (not urgent)
   * only in business hours. */
  window_cfg("KESU_NOTIFY_QUIET_HOURS", "21:00-08:00", &a.quiet_from, &a.quiet_to, false);
  window_cfg("KESU_NOTIFY_BUSINESS_HOURS", "08:00-18:00", &a.biz_open, &a.biz_close, false);
  a.orders = strmap_new();
  a.closed = strmap_new();
  a.m_recorded = metric_counter("notify_recorded_total", "Deliveries recorded from events");
  a.m_applied = metric_counter("notify_events_applied_total", "Events applied");
  a.m_no_phone = metric_counter("notify_no_phone_total", "Customer messages without a phone");

  a.pg = pg_conn_new(base, cfg_pg_conninfo("notifier"), "notifier");
  a.pg_send = pg_conn_new(base, cfg_pg_conninfo("notifier"), "notifier-sender");
  a.auth = auth_cache_new(base, a.pg);
  char host[128];
  int port;
  cfg_http_listen("NOTIFIER", PORT_NOTIFIER_HTTP, host, sizeof host, &port);
  a.http = http_server_new(base, host, port, a.auth);
  if (!a.http) return 1;
  http_route(a.http, EVHTTP_REQ_GET, "/v1/deliveries", 0, h_list, &a);
  http_route(a.http, EVHTTP_REQ_POST, "/v1/deliveries/*/retry", 0, h_retry, &a);
  http_route(a.http, EVHTTP_REQ_GET, "/v1/callbacks", 0, h_callbacks, &a);
  http_route(a.http, EVHTTP_REQ_GET, "/v1/letters", 0, h_letters, &a);
  http_route(a.http, EVHTTP_REQ_POST, "/v1/letters/*/printed", 0, h_printed, &a);
  http_set_ready(a.http, is_ready, &a);
  http_set_metrics(a.http, metrics_cb, &a);

  sender_config sc = {.sms_url = url, .sms_token = cfg_str("KESU_SMS_TOKEN", ""),
                      .smtp_url = smtp,
                      .smtp_from = cfg_str("KESU_SMTP_FROM", "kesu@localhost"),
                      .smtp_user = cfg_str("KESU_SMTP_USER", ""),
                      .smtp_password = cfg_str("KESU_SMTP_PASSWORD", ""),
                      .rate_per_minute = (int)cfg_long("KESU_NOTIFY_RATE_PER_MINUTE", 30)};
  a.snd = sender_new(base, a.pg_send, &sc);
  a.ev_reload = event_new(base, -1, 0, on_reload_ev, &a);
  a.ev_digest = event_new(base, -1, EV_PERSIST, on_digest_tick, &a);
  struct timeval every = {2, 0};
  event_add(a.ev_digest, &every);
  /* Runs once after every (re)connect too: the first run loads the rules and
   * the open orders, then starts the consumers. */
  pg_conn_listen(a.pg, "notify_reference", on_reference_notify, &a);

  int rc = service_run(base);

  consumer_destroy(&a.cons);
  consumer_destroy(&a.cons_router);
  consumer_destroy(&a.cons_sla);
  sender_destroy(&a.snd);
  http_server_destroy(&a.http);
  auth_cache_destroy(&a.auth);
  pg_conn_destroy(&a.pg);
  pg_conn_destroy(&a.pg_send);
  event_free(a.ev_reload);
  event_free(a.ev_digest);
  refdata_free(&a.ref);
  strmap_each(a.orders, free_ctx, NULL);
  strmap_destroy(&a.orders);
  strmap_each(a.closed, closed_drop, NULL);
  strmap_destroy(&a.closed);
  event_base_free(base);
  curl_global_cleanup();
  return rc;
}
