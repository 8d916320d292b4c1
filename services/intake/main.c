/* kesu-intake — accepts complaints over HTTP (POST /v1/complaints), stores
 * them and emits ComplaintReceived through the intake outbox in the same
 * transaction. Requests are group-committed: while one transaction is in
 * flight, new complaints queue and go together in the next one. */
#include <event2/event.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "clock.h"
#include "config.h"
#include "envelope.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "outbox.h"
#include "pg.h"
#include "service.h"
#include "validate.h"
#include "zloop.h"

enum { BATCH_MAX = 500, BLOCK = 1000, QUEUE_MAX = 20000 };

typedef struct submission {
  struct submission *next;
  struct evhttp_request *req;
  json_t *body; /* keeps the strings of c alive */
  complaint_in c;
  char *key;    /* Idempotency-Key or NULL */
  char hash[65];
  char receiver[64];
  char order_no[32];
  int64_t accepted_ms, promised_ms;
  int64_t deadline; /* monotonic ms: answer 503 if not stored by then */
  bool solo;        /* retried alone after its batch failed */
  bool attempted;   /* sent to the database at least once (outcome may be unknown) */
} submission;

typedef struct {
  struct event_base *base;
  pg_conn *pg, *pg_pub;
  auth_cache *auth;
  http_server *http;
  outbox_publisher *pub;
  codeset regions, business, problems, lines;
  bool ref_loaded, ref_loading;
  int64_t block_next, block_end;
  bool block_loading;
  submission *qhead, *qtail;
  size_t qlen;
  bool batch_inflight;
  struct event *sweep;
  long submit_timeout_ms;
  metric *m_accepted, *m_replayed, *m_refused, *m_batches;
} intake;

static intake app;

/* ---------- reference data ---------- */

static void load_set(codeset *s, PGresult *r) {
  int n = PQntuples(r);
  char **codes = calloc((size_t)n + 1, sizeof(char *));
  for (int i = 0; i < n; i++) codes[i] = strdup(PQgetvalue(r, i, 0));
  codeset_free(s);
  codeset_init(s, codes, (size_t)n);
}

static void on_ref(const pg_result_set *rs, void *arg) {
  app.ref_loading = false;
  if (!rs->ok) {
    log_warn("reference data: %s", rs->error);
    return;
  }
  load_set(&app.regions, rs->res[0]);
  load_set(&app.business, rs->res[1]);
  load_set(&app.problems, rs->res[2]);
  load_set(&app.lines, rs->res[3]);
  log_info("reference data: %zu regions, %zu business types, %zu problem types", app.regions.n,
           app.business.n, app.problems.n);
  app.ref_loaded = true;
}

static void load_ref(void) {
  if (app.ref_loading) return;
  app.ref_loading = true;
  pg_tx *tx = pg_tx_new();
  pg_tx_add(tx, "SELECT code FROM intake.regions", 0, NULL, NULL, NULL);
  pg_tx_add(tx, "SELECT code FROM intake.business_types", 0, NULL, NULL, NULL);
  pg_tx_add(tx, "SELECT code FROM intake.problem_types", 0, NULL, NULL, NULL);
  pg_tx_add(tx, "SELECT code || chr(9) || line FROM intake.business_types", 0, NULL, NULL, NULL);
  pg_conn_submit(app.pg, tx, on_ref, NULL);
}

static void on_ref_notify(const char *ch, const char *payload, void *arg) { load_ref(); }

/* ---------- submissions ---------- */

static void flush(void);

static void submission_free(submission *s) {
  json_decref(s->body);
  free(s->key);
  free(s);
}

static void on_block(const pg_result_set *rs, void *arg) {
  app.block_loading = false;
  if (!rs->ok) {
    log_warn("order numbers: %s", rs->error);
  } else {
    app.block_next = strtoll(PQgetvalue(rs->res[0], 0, 0), NULL, 10);
    app.block_end = app.block_next + BLOCK;
  }
  flush();
}

static void need_block(void) {
  if (app.block_loading) return;
  app.block_loading = true;
  pg_tx *tx = pg_tx_new();
  pg_tx_add(tx, "SELECT nextval('intake.order_seq')", 0, NULL, NULL, NULL);
  pg_conn_submit(app.pg, tx, on_block, NULL);
}

static void order_no_for(int64_t n, int64_t accepted_ms, char *out, size_t len) {
  char when[40];
  clock_format_ms(accepted_ms, when, sizeof when);
  /* "2026-11-23T..." → KS20261123 */
  snprintf(out, len, "KS%.4s%.2s%.2s%010" PRId64, when, when + 5, when + 8, n);
}

static void reply_accepted(submission *s, const char *order_no, int64_t acc, int64_t prom) {
  char a[40], p[40];
  clock_format_ms(acc, a, sizeof a);
  clock_format_ms(prom, p, sizeof p);
  http_reply_json(s->req, 201, json_pack("{s:s, s:s, s:s}", "order_no", order_no, "accepted_at",
                                         a, "promised_by", p));
}

/* The statement for one submission: intake.submit_v2(...) with the event. */
static void add_submit(pg_tx *tx, submission *s) {
  complaint_in *c = &s->c;
  Kesu__V1__Customer cu = KESU__V1__CUSTOMER__INIT;
  cu.name = (char *)c->name;
  cu.phone = (char *)c->phone;
  cu.address = (char *)(c->address ? c->address : "");
  cu.home_region = (char *)c->home_region;
  cu.level = (char *)(c->level ? c->level : "");
  cu.email = (char *)(c->email ? c->email : "");
  cu.reply_channel = (char *)(c->reply_channel ? c->reply_channel : "");
  Kesu__V1__Complaint co = KESU__V1__COMPLAINT__INIT;
  co.order_no = s->order_no;
  co.kind = kind_from_name(c->kind);
  co.stream = stream_from_name(c->stream);
  co.channel = channel_from_name(c->channel);
  co.accepted_at = s->accepted_ms;
  co.first_receiver = s->receiver;
  co.customer = &cu;
  co.region = (char *)c->region;
  co.business_type = (char *)c->business_type;
  co.problem_type = (char *)(c->problem_type ? c->problem_type : "");
  co.title = (char *)c->title;
  co.content = (char *)c->content;
  co.tier = tier_from_name(c->tier);
  co.promised_by = s->promised_ms;
  co.cause = (char *)(c->cause ? c->cause : "");
  co.business_line = (char *)(c->business_line ? c->business_line : "");
  co.brand = (char *)(c->brand ? c->brand : "");
  co.answer_on_spot = (char *)(c->answer_on_spot ? c->answer_on_spot : "");
  co.area = (char *)(c->area ? c->area : "");
  co.gravity = c->gravity;
  co.breadth = c->breadth;
  co.urgency = c->urgency;
  co.recording_ref = (char *)(c->recording_ref ? c->recording_ref : "");
  co.customer_signed = c->customer_signed;
  co.vip = c->vip;
  Kesu__V1__AppealInfo ap = KESU__V1__APPEAL_INFO__INIT;
  if (c->has_appeal) {
    ap.source_body = (char *)c->appeal_source_body;
    ap.filed = c->appeal_filed;
    ap.contact_person = (char *)(c->appeal_contact_person ? c->appeal_contact_person : "");
    ap.business = (char *)(c->appeal_business ? c->appeal_business : "");
    ap.nature = (char *)(c->appeal_nature ? c->appeal_nature : "");
    co.appeal = &ap;
  }
  Kesu__V1__ComplaintReceived cr = KESU__V1__COMPLAINT_RECEIVED__INIT;
  cr.complaint = &co;
  Kesu__V1__Envelope env = KESU__V1__ENVELOPE__INIT;
  char event_id[37];
  uuid_v4(event_id);
  env.producer = "intake";
  env.event_id = event_id;
  env.type = EV_COMPLAINT_RECEIVED;
  env.occurred_at = s->accepted_ms;
  env.order_no = s->order_no;
  env.region = (char *)c->region;
  env.payload_case = KESU__V1__ENVELOPE__PAYLOAD_COMPLAINT_RECEIVED;
  env.complaint_received = &cr;
  size_t elen;
  unsigned char *ebuf = envelope_pack(&env, &elen);

  /* R-07 fields beyond the first slice, kept as one jsonb column */
  json_t *d = json_object();
  const char *dk[] = {"cause", "business_line", "brand", "answer_on_spot", "area",
                      "recording_ref", "customer_email", "customer_reply_channel"};
  const char *dv[] = {c->cause, c->business_line, c->brand, c->answer_on_spot, c->area,
                      c->recording_ref, c->email, c->reply_channel};
  for (size_t i = 0; i < sizeof dk / sizeof *dk; i++)
    if (dv[i]) json_object_set_new(d, dk[i], json_string(dv[i]));
  json_object_set_new(d, "gravity", json_boolean(c->gravity));
  json_object_set_new(d, "breadth", json_boolean(c->breadth));
  json_object_set_new(d, "urgency", json_boolean(c->urgency));
  json_object_set_new(d, "customer_signed", json_boolean(c->customer_signed));
  json_object_set_new(d, "vip", json_boolean(c->vip));
  if (c->has_appeal) {
    json_t *a = json_pack("{s:s, s:b}", "source_body", c->appeal_source_body, "filed",
                          c->appeal_filed);
    if (c->appeal_contact_person)
      json_object_set_new(a, "contact_person", json_string(c->appeal_contact_person));
    if (c->appeal_business) json_object_set_new(a, "business", json_string(c->appeal_business));
    if (c->appeal_nature) json_object_set_new(a, "nature", json_string(c->appeal_nature));
    json_object_set_new(d, "appeal", a);
  }
  char *details = json_dumps(d, JSON_COMPACT);
  json_decref(d);

  char acc[24], prom[24];
  snprintf(acc, sizeof acc, "%" PRId64, s->accepted_ms);
  snprintf(prom, sizeof prom, "%" PRId64, s->promised_ms);
  const char *v[23] = {s->key,
                       s->key ? s->hash : NULL,
                       s->order_no,
                       c->kind,
                       c->stream,
                       c->channel,
                       c->tier,
                       acc,
                       prom,
                       s->receiver,
                       c->name,
                       c->phone,
                       c->address ? c->address : "",
                       c->home_region,
                       c->level ? c->level : "",
                       c->region,
                       c->business_type,
                       c->problem_type ? c->problem_type : "",
                       c->title,
                       c->content,
                       event_id,
                       (const char *)ebuf,
                       details};
  int lens[23] = {0};
  int fmts[23] = {0};
  lens[21] = (int)elen;
  fmts[21] = 1;
  pg_tx_add(tx,
            "SELECT order_no, accepted_ms, promised_ms, request_hash, created FROM intake.submit_v2("
            "$1, $2, $3, $4, $5, $6, $7, $8::bigint, $9::bigint, $10, $11, $12, $13, $14, $15, "
            "$16, $17, $18, $19, $20, $21::uuid, $22::bytea, $23::jsonb)",
            23, v, lens, fmts);
  free(ebuf);
  free(details);
}

typedef struct {
  submission *items;
  int n;
} batch;

static void requeue_front(submission *list, bool solo) {
  /* Put a failed batch back at the head (solo: each to be retried alone). */
  submission *last = NULL;
  for (submission *s = list; s; s = s->next) {
    s->solo = solo;
    app.qlen++;
    last = s;
  }
  if (!last) return;
  last->next = app.qhead;
  app.qhead = list;
  if (!app.qtail) app.qtail = last;
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void reply_unavailable(submission *s) {
  metric_add(app.m_refused, 1);
  if (s->attempted) {
    /* The last attempt's outcome is unknown (the connection was lost): the
     * client can check by number instead of submitting twice. */
    char msg[200];
    snprintf(msg, sizeof msg,
             "database unavailable; complaint %s may or may not have been stored — check "
             "GET /v1/complaints/%s before retrying",
             s->order_no, s->order_no);
    http_reply_error(s->req, 503, "unavailable", msg, NULL);
  } else {
    http_reply_error(s->req, 503, "unavailable", "database unavailable; nothing was stored, retry",
                     NULL);
  }
  submission_free(s);
}

/* Answers 503 for queued complaints whose deadline passed (database down). */
static void on_sweep(evutil_socket_t fd, short what, void *arg) {
  int64_t now = mono_ms();
  submission **pp = &app.qhead;
  app.qtail = NULL;
  while (*pp) {
    submission *s = *pp;
    if (s->deadline <= now) {
      *pp = s->next;
      app.qlen--;
      log_warn("complaint %s: not stored within %ld ms, answering 503", s->order_no[0] ? s->order_no : "(unnumbered)",
               app.submit_timeout_ms);
      reply_unavailable(s);
    } else {
      app.qtail = s;
      pp = &s->next;
    }
  }
}

static void on_batch(const pg_result_set *rs, void *arg) {
  batch *b = arg;
  app.batch_inflight = false;
  if (!rs->ok && (!rs->sqlstate || !*rs->sqlstate)) {
    /* Connection lost: the outcome is unknown. Each retry is idempotent by
     * its order number, so keep them queued until the deadline. */
    log_warn("batch of %d: %s; retrying after reconnect", b->n, rs->error);
    requeue_front(b->items, false);
    free(b);
    flush();
    return;
  }
  if (!rs->ok) {
    if (b->n > 1) {
      log_warn("batch of %d failed (%s); retrying each alone", b->n, rs->error);
      requeue_front(b->items, true);
    } else {
      submission *s = b->items;
      log_error("complaint not stored: %s", rs->error ? rs->error : "connection lost");
      metric_add(app.m_refused, 1);
      http_reply_error(s->req, 503, "unavailable", "the complaint could not be stored; retry", NULL);
      submission_free(s);
    }
    free(b);
    flush();
    return;
  }
  int i = 0;
  for (submission *s = b->items, *next; s; s = next, i++) {
    next = s->next;
    PGresult *r = rs->res[i];
    const char *order_no = PQgetvalue(r, 0, 0);
    int64_t acc = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    int64_t prom = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
    const char *hash = PQgetvalue(r, 0, 3);
    bool created = PQgetvalue(r, 0, 4)[0] == 't';
    if (created) {
      metric_add(app.m_accepted, 1);
      reply_accepted(s, order_no, acc, prom);
    } else if (strcmp(hash, s->hash) == 0) {
      metric_add(app.m_replayed, 1);
      evhttp_add_header(evhttp_request_get_output_headers(s->req), "Idempotent-Replayed", "true");
      reply_accepted(s, order_no, acc, prom);
    } else {
      metric_add(app.m_refused, 1);
      http_reply_error(s->req, 409, "idempotency_conflict",
                       "this Idempotency-Key was used with a different request body",
                       "Idempotency-Key");
    }
    submission_free(s);
  }
  free(b);
  flush();
}

static void flush(void) {
  if (app.batch_inflight || !app.qhead) return;
  if (!pg_conn_ready(app.pg)) return; /* retried on the state callback */
  batch *b = calloc(1, sizeof *b);
  pg_tx *tx = pg_tx_new();
  submission **tail = &b->items;
  bool solo = app.qhead->solo;
  while (app.qhead && b->n < BATCH_MAX) {
    if (app.block_next >= app.block_end) {
      need_block();
      break;
    }
    if (b->n > 0 && (solo || app.qhead->solo)) break;
    submission *s = app.qhead;
    app.qhead = s->next;
    if (!app.qhead) app.qtail = NULL;
    app.qlen--;
    s->next = NULL;
    if (!s->order_no[0]) order_no_for(app.block_next++, s->accepted_ms, s->order_no, sizeof s->order_no);
    s->attempted = true;
    add_submit(tx, s);
    *tail = s;
    tail = &s->next;
    b->n++;
  }
  if (b->n == 0) {
    pg_tx_destroy(&tx);
    free(b);
    return;
  }
  /* Prefetch the next block before this one runs out. */
  if (app.block_end - app.block_next < BLOCK / 5) need_block();
  app.batch_inflight = true;
  metric_add(app.m_batches, 1);
  pg_conn_submit(app.pg, tx, on_batch, b);
}

static void on_pg_state(bool connected, void *arg) {
  if (connected) flush();
}

static bool role_in(const auth_ctx *a, const char *r1, const char *r2) {
  return a && (strcmp(a->role, r1) == 0 || (r2 && strcmp(a->role, r2) == 0));
}

static void sha256_hex(const char *s, char out[65]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL);
  for (unsigned i = 0; i < 32; i++) sprintf(out + 2 * i, "%02x", md[i]);
}

static void post_complaint(struct evhttp_request *req, const auth_ctx *auth, char **segs, int n,
                           void *arg) {
  if (!role_in(auth, "admin", "agent")) {
    http_reply_error(req, 403, "forbidden", "only agent or admin tokens may submit complaints", NULL);
    return;
  }
  if (!app.ref_loaded) {
    http_reply_error(req, 503, "unavailable", "reference data not loaded yet; retry", NULL);
    return;
  }
  if (!pg_conn_ready(app.pg)) {
    http_reply_error(req, 503, "unavailable", "database unavailable; nothing was stored, retry", NULL);
    return;
  }
  if (app.qlen >= QUEUE_MAX) {
    http_reply_error(req, 503, "unavailable", "intake is overloaded; retry shortly", NULL);
    return;
  }
  const char *key = http_header(req, "Idempotency-Key");
  if (key && (!*key || strlen(key) > 128)) {
    http_reply_error(req, 422, "invalid_value", "Idempotency-Key must be 1–128 characters",
                     "Idempotency-Key");
    return;
  }
  json_t *body = http_read_json(req);
  if (!body) return;
  submission *s = calloc(1, sizeof *s);
  s->req = req;
  s->body = body;
  verr e = {0};
  refdata ref = {&app.regions, &app.business, &app.problems, &app.lines};
  if (complaint_validate(body, &ref, &s->c, &e) != 0) {
    metric_add(app.m_refused, 1);
    http_reply_error(req, e.status, e.code, e.message, e.field[0] ? e.field : NULL);
    submission_free(s);
    return;
  }
  if (auth->scope && !auth_scope_covers(auth->scope, s->c.region)) {
    http_reply_error(req, 403, "forbidden", "region is outside this token's scope", "region");
    submission_free(s);
    return;
  }
  char *canon = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
  sha256_hex(canon ? canon : "", s->hash);
  free(canon);
  s->key = key ? strdup(key) : NULL;
  snprintf(s->receiver, sizeof s->receiver, "%s", auth->name);
  s->accepted_ms = clock_now_ms();
  s->promised_ms = s->accepted_ms + tier_limit_seconds(s->c.tier) * 1000;
  s->deadline = mono_ms() + app.submit_timeout_ms;
  if (app.qtail)
    app.qtail->next = s;
  else
    app.qhead = s;
  app.qtail = s;
  app.qlen++;
  flush();
}

/* ---------- read back ---------- */

typedef struct {
  struct evhttp_request *req;
  char scope[16];
} readctx;

static const char *col(PGresult *r, const char *name) {
  int c = PQfnumber(r, name);
  return c < 0 ? "" : PQgetvalue(r, 0, c);
}

static json_t *jstr(const char *s) {
  json_t *j = json_string(s);
  return j ? j : json_null();
}

static void on_read(const pg_result_set *rs, void *arg) {
  readctx *rc = arg;
  if (!rs->ok) {
    http_reply_error(rc->req, 503, "unavailable", "database unavailable; retry", NULL);
  } else if (PQntuples(rs->res[0]) == 0 ||
             !auth_scope_covers(rc->scope, col(rs->res[0], "region"))) {
    http_reply_error(rc->req, 404, "not_found", "no such complaint", NULL);
  } else {
    PGresult *r = rs->res[0];
    char acc[40], prom[40];
    clock_format_ms(strtoll(col(r, "accepted_ms"), NULL, 10), acc, sizeof acc);
    clock_format_ms(strtoll(col(r, "promised_ms"), NULL, 10), prom, sizeof prom);
    json_t *cu = json_object();
    json_object_set_new(cu, "name", jstr(col(r, "customer_name")));
    json_object_set_new(cu, "phone", jstr(col(r, "customer_phone")));
    json_object_set_new(cu, "address", jstr(col(r, "customer_address")));
    json_object_set_new(cu, "home_region", jstr(col(r, "customer_home_region")));
    json_object_set_new(cu, "level", jstr(col(r, "customer_level")));
    json_t *det = json_loads(col(r, "details"), 0, NULL);
    json_t *o = json_object();
    static const char *const fields[] = {"order_no", "kind", "stream", "channel", "tier",
                                         "first_receiver", "region", "business_type",
                                         "problem_type", "title", "content", NULL};
    for (int i = 0; fields[i]; i++) json_object_set_new(o, fields[i], jstr(col(r, fields[i])));
    json_object_set_new(o, "accepted_at", json_string(acc));
    json_object_set_new(o, "promised_by", json_string(prom));
    if (json_is_object(det)) {
      const char *k;
      json_t *val;
      json_object_foreach(det, k, val) {
        if (strcmp(k, "customer_email") == 0)
          json_object_set(cu, "email", val);
        else if (strcmp(k, "customer_reply_channel") == 0)
          json_object_set(cu, "reply_channel", val);
        else
          json_object_set(o, k, val);
      }
    }
    json_decref(det);
    json_object_set_new(o, "customer", cu);
    http_reply_json(rc->req, 200, o);
  }
  free(rc);
}

static void get_complaint(struct evhttp_request *req, const auth_ctx *auth, char **segs, int n,
                          void *arg) {
  /* Customer details: agents, handlers and admins — not dashboard viewers. */
  if (strcmp(auth->role, "admin") != 0 && strcmp(auth->role, "agent") != 0 &&
      strcmp(auth->role, "handler") != 0) {
    http_reply_error(req, 403, "forbidden", "this token's role may not read complaints", NULL);
    return;
  }
  readctx *rc = calloc(1, sizeof *rc);
  rc->req = req;
  snprintf(rc->scope, sizeof rc->scope, "%s", auth->scope ? auth->scope : "");
  pg_tx *tx = pg_tx_new();
  const char *v[1] = {segs[0]};
  pg_tx_add(tx,
            "SELECT *, (extract(epoch FROM accepted_at) * 1000)::bigint AS accepted_ms, "
            "(extract(epoch FROM promised_by) * 1000)::bigint AS promised_ms "
            "FROM intake.complaints WHERE order_no = $1",
            1, v, NULL, NULL);
  pg_conn_submit(app.pg_pub, tx, on_read, rc);
}

/* ---------- wiring ---------- */

static bool ready(void *arg) { return pg_conn_ready(app.pg) && app.ref_loaded; }

static void metrics(struct evbuffer *out, void *arg) {
  evbuffer_add_printf(out, "kesu_intake_queue %zu\nkesu_intake_published %" PRIu64 "\n", app.qlen,
                      outbox_publisher_published(app.pub));
}

int main(void) {
  app.base = service_init("intake");
  app.m_accepted = metric_counter("intake_complaints_accepted_total", "complaints stored");
  app.m_replayed = metric_counter("intake_idempotent_replays_total", "repeated Idempotency-Key");
  app.m_refused = metric_counter("intake_complaints_refused_total", "complaints refused");
  app.m_batches = metric_counter("intake_batches_total", "group-commit transactions");
  app.submit_timeout_ms = cfg_long("KESU_INTAKE_SUBMIT_TIMEOUT_MS", 10000);
  app.pg = pg_conn_new(app.base, cfg_pg_conninfo("intake"), "intake");
  app.pg_pub = pg_conn_new(app.base, cfg_pg_conninfo("intake"), "intake-pub");
  pg_conn_on_state(app.pg, on_pg_state, NULL);
  pg_conn_listen(app.pg, "intake_reference", on_ref_notify, NULL); /* fires on connect too */
  app.auth = auth_cache_new(app.base, app.pg_pub);
  app.pub = outbox_publisher_new(app.base, app.pg_pub, "intake", "intake",
                                 cfg_endpoint("INTAKE_PUB", PORT_INTAKE_PUB),
                                 cfg_endpoint("INTAKE_REPLAY", PORT_INTAKE_REPLAY));
  if (!app.pub) return 1;
  char host[64];
  int port;
  cfg_http_listen("INTAKE", PORT_INTAKE_HTTP, host, sizeof host, &port);
  app.http = http_server_new(app.base, host, port, app.auth);
  if (!app.http) return 1;
  http_route(app.http, EVHTTP_REQ_POST, "/v1/complaints", 0, post_complaint, NULL);
  http_route(app.http, EVHTTP_REQ_GET, "/v1/complaints/*", 0, get_complaint, NULL);
  http_set_ready(app.http, ready, NULL);
  http_set_metrics(app.http, metrics, NULL);
  app.sweep = event_new(app.base, -1, EV_PERSIST, on_sweep, NULL);
  struct timeval half = {0, 500000};
  event_add(app.sweep, &half);
  int rc = service_run(app.base);
  event_free(app.sweep);
  http_server_destroy(&app.http);
  outbox_publisher_destroy(&app.pub);
  auth_cache_destroy(&app.auth);
  pg_conn_destroy(&app.pg);
  pg_conn_destroy(&app.pg_pub);
  codeset_free(&app.regions);
  codeset_free(&app.business);
  codeset_free(&app.problems);
  codeset_free(&app.lines);
  while (app.qhead) {
    submission *s = app.qhead;
    app.qhead = s->next;
    submission_free(s);
  }
  zloop_term();
  event_base_free(app.base);
  return rc;
}
