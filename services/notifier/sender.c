/* sender — SMS gateway, IM webhook and SMTP client: curl multi on libevent
 * (see sender.h). */
#include "sender.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "strmap.h"
#include "template.h"

enum {
  MAX_INFLIGHT = 64,
  PICK_LIMIT = 200,
  MAX_OWNED = MAX_INFLIGHT + PICK_LIMIT,
  TICK_MS = 500,
  RESP_KEEP = 300,
};

typedef enum { J_QUEUED, J_SENDING, J_DONE } job_state;

typedef struct job {
  int64_t id;
  char *key, *to, *body, *order_no, *channel, *subject;
  char *mail;      /* email: the whole message */
  size_t mail_off; /* how much curl has read */
  struct curl_slist *rcpt;
  bool deferred;   /* rate-limited: not attempted, back to pending */
  int attempts; /* including this one (counted when the row became 'sending') */
  job_state state;
  CURL *easy;
  struct curl_slist *hdrs;
  char errbuf[CURL_ERROR_SIZE];
  char resp[RESP_KEEP + 1];
  size_t resp_len;
  /* outcome */
  const char *status; /* "sent", "pending", "failed", "dead" */
  int64_t next_at, sent_at;
  char error[400];
  struct job *prev, *next; /* owned list */
  struct job *qnext;       /* queued / done lists */
} job;

struct sender {
  struct event_base *base;
  pg_conn *pg;
  char *url; /* SMS gateway, or NULL */
  char *sms_token; /* Authorization: Bearer for the SMS gateway, or NULL */
  char *smtp_url, *smtp_from, *smtp_user, *smtp_password;
  int rate_per_minute;
  strmap *rate; /* recipient → rate_slot */
  CURLM *multi;
  struct event *ev_timeout; /* curl's timer */
  struct event *ev_tick;    /* every 500 ms */
  struct event *ev_kick;    /* coalesced pick */
  job *owned;               /* every job not yet written back */
  size_t nowned, ninflight;
  job *qhead, *qtail;       /* picked, waiting for a transfer slot */
  job *done;                /* outcomes to write back */
  bool picking, pick_again, writing, counting;
  bool recovered, recovering; /* rows left 'sending' are back to 'pending' */
  int ticks;
  metric *m_sent, *m_failed, *m_retried, *m_dead, *m_pending;
};

static void start_transfers(sender *s);
static void pick(sender *s);

static double rand01(void) {
  uint32_t r = 0;
  if (getrandom(&r, sizeof r, 0) != sizeof r) r = (uint32_t)rand();
  return (double)r / 4294967296.0;
}

/* --- jobs ------------------------------------------------------------------ */

static void job_free(job *j) {
  if (j->hdrs) curl_slist_free_all(j->hdrs);
  if (j->rcpt) curl_slist_free_all(j->rcpt);
  free(j->channel);
  free(j->subject);
  free(j->mail);
  free(j->key);
  free(j->to);
  free(j->body);
  free(j->order_no);
  free(j);
}

static void own(sender *s, job *j) {
  j->prev = NULL;
  j->next = s->owned;
  if (s->owned) s->owned->prev = j;
  s->owned = j;
  s->nowned++;
}

static void disown(sender *s, job *j) {
  if (j->prev)
    j->prev->next = j->next;
  else
    s->owned = j->next;
  if (j->next) j->next->prev = j->prev;
  s->nowned--;
}

static void finish_job(sender *s, job *j, long code, CURLcode cres) {
  int64_t now = clock_now_ms();
  int attempts = j->attempts;
  j->state = J_DONE;
  j->next_at = now;
  j->sent_at = 0;
  j->error[0] = '\0';
  bool email = strcmp(j->channel, "email") == 0;
  if (j->deferred) {
    j->status = "pending";
    j->next_at = now + 60000 - now % 60000; /* the next minute's allowance */
    snprintf(j->error, sizeof j->error, "rate limit: more than %d messages a minute to %s",
             s->rate_per_minute, j->to);
  } else if (email && cres == CURLE_OK) {
    j->status = "sent";
    j->sent_at = now;
    metric_add(s->m_sent, 1);
  } else if (email && code >= 500 && code < 600) { /* SMTP: 5xx is permanent */
    j->status = "failed";
    snprintf(j->error, sizeof j->error, "SMTP %ld: %s", code,
             j->errbuf[0] ? j->errbuf : curl_easy_strerror(cres));
    metric_add(s->m_failed, 1);
  } else if (!email && cres == CURLE_OK && code >= 200 && code < 300 &&
             strcmp(j->channel, "im") == 0 && strstr(j->resp, "\"errcode\"") &&
             !strstr(j->resp, "\"errcode\":0")) {
    /* A WeCom/DingTalk robot answers 200 with {"errcode":N} on failure. */
    snprintf(j->error, sizeof j->error, "webhook: %.*s", (int)j->resp_len, j->resp);
    goto retry;
  } else if (!email && cres == CURLE_OK && code >= 200 && code < 300) {
    j->status = "sent";
    j->sent_at = now;
    metric_add(s->m_sent, 1);
  } else if (!email && cres == CURLE_OK && code >= 400 && code < 500) {
    j->status = "failed";
    snprintf(j->error, sizeof j->error, "HTTP %ld: %.*s", code, (int)j->resp_len, j->resp);
    metric_add(s->m_failed, 1);
  } else {
    if (cres != CURLE_OK)
      snprintf(j->error, sizeof j->error, "%s", j->errbuf[0] ? j->errbuf : curl_easy_strerror(cres));
    else
      snprintf(j->error, sizeof j->error, "HTTP %ld: %.*s", code, (int)j->resp_len, j->resp);
  retry:
    if (attempts >= DELIVERY_MAX_ATTEMPTS) {
      j->status = "dead";
      metric_add(s->m_dead, 1);
      log_warn("notifier: delivery %" PRId64 " dead after %d attempts: %s", j->id, attempts,
               j->error);
    } else {
      j->status = "pending";
      j->next_at = now + backoff_delay_ms(attempts, rand01());
      metric_add(s->m_retried, 1);
    }
  }
  j->qnext = s->done;
  s->done = j;
}

/* --- curl multi on libevent (the hiperfifo pattern) ------------------------ */

static void check_multi_info(sender *s) {
  CURLMsg *msg;
  int left;
  bool finished = false;
  while ((msg = curl_multi_info_read(s->multi, &left))) {
    if (msg->msg != CURLMSG_DONE) continue;
    CURL *e = msg->easy_handle;
    CURLcode res = msg->data.result;
    job *j = NULL;
    long code = 0;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&j);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    curl_multi_remove_handle(s->multi, e);
    curl_easy_cleanup(e);
    s->ninflight--;
    if (!j) continue;
    j->easy = NULL;
    finish_job(s, j, code, res);
    finished = true;
  }
  start_transfers(s);
  /* Write outcomes back soon: one transaction for whatever finished meanwhile. */
  if (finished) event_active(s->ev_kick, 0, 0);
}

static void on_socket_event(evutil_socket_t fd, short kind, void *arg) {
  sender *s = arg;
  int action = (kind & EV_READ ? CURL_CSELECT_IN : 0) | (kind & EV_WRITE ? CURL_CSELECT_OUT : 0);
  int running = 0;
  curl_multi_socket_action(s->multi, fd, action, &running);
  check_multi_info(s);
  if (running <= 0 && evtimer_pending(s->ev_timeout, NULL)) evtimer_del(s->ev_timeout);
}

static void on_curl_timeout(evutil_socket_t fd, short kind, void *arg) {
  (void)fd;
  (void)kind;
  sender *s = arg;
  int running = 0;
  curl_multi_socket_action(s->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_multi_info(s);
}

/* CURLMOPT_SOCKETFUNCTION: watch (or stop watching) one of curl's sockets. */
static int sock_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp) {
  (void)e;
  sender *s = userp;
  struct event *ev = socketp;
  if (what == CURL_POLL_REMOVE) {
    if (ev) {
      event_free(ev);
      curl_multi_assign(s->multi, fd, NULL);
    }
    return 0;
  }
  short kind = (short)((what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0) |
                       EV_PERSIST);
  if (!ev) {
    ev = event_new(s->base, fd, kind, on_socket_event, s);
    curl_multi_assign(s->multi, fd, ev);
  } else {
    event_del(ev);
    event_assign(ev, s->base, fd, kind, on_socket_event, s);
  }
  event_add(ev, NULL);
  return 0;
}

/* CURLMOPT_TIMERFUNCTION: curl wants to be called after timeout_ms (-1: never). */
static int timer_cb(CURLM *m, long timeout_ms, void *userp) {
  (void)m;
  sender *s = userp;
  if (timeout_ms < 0) {
    evtimer_del(s->ev_timeout);
  } else {
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    evtimer_add(s->ev_timeout, &tv);
  }
  return 0;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userp) {
  job *j = userp;
  size_t n = size * nmemb;
  size_t room = RESP_KEEP - j->resp_len;
  size_t k = n < room ? n : room;
  memcpy(j->resp + j->resp_len, ptr, k);
  j->resp_len += k;
  j->resp[j->resp_len] = '\0';
  return n;
}

static char *b64(const unsigned char *p, size_t n) {
  char *out = malloc(4 * ((n + 2) / 3) + 1);
  EVP_EncodeBlock((unsigned char *)out, p, (int)n);
  return out;
}

/* RFC 2047: "=?UTF-8?B?...?=" words of at most 39 bytes of text (cut on
 * UTF-8 character boundaries), folded onto continuation lines. */
static void mime_header(char **buf, size_t *len, const char *name, const char *text) {
  FILE *f = open_memstream(buf, len);
  fprintf(f, "%s:", name);
  size_t n = strlen(text), i = 0;
  if (n == 0) fputs(" ", f);
  while (i < n) {
    size_t k = n - i < 39 ? n - i : 39;
    while (k > 0 && i + k < n && ((unsigned char)text[i + k] & 0xC0) == 0x80) k--;
    char *w = b64((const unsigned char *)text + i, k);
    fprintf(f, "%s=?UTF-8?B?%s?=", i ? "\r\n " : " ", w);
    free(w);
    i += k;
  }
  fputs("\r\n", f);
  fclose(f);
}

char *mail_message(const char *from, const char *to, const char *subject, const char *body,
                   const char *key, int64_t now_ms) {
  char *subj = NULL, *out = NULL;
  size_t subj_len = 0, out_len = 0;
  mime_header(&subj, &subj_len, "Subject", subject);
  char *enc = b64((const unsigned char *)body, strlen(body));
  time_t t = (time_t)(now_ms / 1000) + 8 * 3600;
  struct tm tm;
  gmtime_r(&t, &tm);
  char date[64];
  strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0800", &tm);
  FILE *f = open_memstream(&out, &out_len);
  fprintf(f,
          "Date: %s\r\nFrom: <%s>\r\nTo: <%s>\r\n%sMessage-ID: <%s@kesu>\r\n"
          "X-Kesu-Delivery-Key: %s\r\nMIME-Version: 1.0\r\n"
          "Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n\r\n",
          date, from, to, subj, key, key);
  for (size_t i = 0, n = strlen(enc); i < n; i += 76) fprintf(f, "%.*s\r\n", 76, enc + i);
  fclose(f);
  free(subj);
  free(enc);
  return out;
}

static size_t on_mail_read(char *ptr, size_t size, size_t nmemb, void *userp) {
  job *j = userp;
  size_t room = size * nmemb, left = strlen(j->mail) - j->mail_off;
  size_t k = left < room ? left : room;
  memcpy(ptr, j->mail + j->mail_off, k);
  j->mail_off += k;
  return k;
}

typedef struct {
  int64_t minute;
  int count;
} rate_slot;

/* Per-recipient allowance: at most rate_per_minute starts per clock minute. */
static bool rate_ok(sender *s, const char *to) {
  if (s->rate_per_minute <= 0) return true;
  int64_t minute = clock_now_ms() / 60000;
  rate_slot *r = strmap_get(s->rate, to);
  if (!r) {
    r = calloc(1, sizeof *r);
    strmap_put(s->rate, to, r);
  }
  if (r->minute != minute) {
    r->minute = minute;
    r->count = 0;
  }
  return ++r->count <= s->rate_per_minute;
}

static void start_one(sender *s, job *j) {
  bool email = strcmp(j->channel, "email") == 0, im = strcmp(j->channel, "im") == 0;
  if (!rate_ok(s, j->to)) {
    j->deferred = true;
    finish_job(s, j, 0, CURLE_OK);
    return;
  }
  char *payload = NULL;
  if (email) {
    j->mail = mail_message(s->smtp_from, j->to, j->subject, j->body, j->key, clock_now_ms());
    j->mail_off = 0;
  } else {
    json_t *o = im ? json_pack("{s:s, s:{s:s}}", "msgtype", "text", "text", "content", j->body)
                   : json_pack("{s:s, s:s, s:s, s:s}", "to", j->to, "text", j->body, "key", j->key,
                               "order_no", j->order_no);
    payload = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
  }
  const char *url = email ? s->smtp_url : im ? j->to : s->url;
  CURL *e = curl_easy_init();
  if ((!email && !payload) || !e || !url) {
    free(payload);
    if (e) curl_easy_cleanup(e);
    snprintf(j->errbuf, sizeof j->errbuf, url ? "cannot build the request"
                                              : "no transport configured for this channel");
    finish_job(s, j, 0, CURLE_OUT_OF_MEMORY);
    return;
  }
  j->errbuf[0] = '\0';
  j->resp_len = 0;
  j->resp[0] = '\0';
  curl_easy_setopt(e, CURLOPT_URL, url);
  if (email) {
    char from[320];
    snprintf(from, sizeof from, "<%s>", s->smtp_from);
    curl_easy_setopt(e, CURLOPT_MAIL_FROM, from);
    char rcpt[320];
    snprintf(rcpt, sizeof rcpt, "<%s>", j->to);
    j->rcpt = curl_slist_append(j->rcpt, rcpt);
    curl_easy_setopt(e, CURLOPT_MAIL_RCPT, j->rcpt);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, on_mail_read);
    curl_easy_setopt(e, CURLOPT_READDATA, j);
    curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
    if (s->smtp_user && *s->smtp_user) {
      curl_easy_setopt(e, CURLOPT_USERNAME, s->smtp_user);
      curl_easy_setopt(e, CURLOPT_PASSWORD, s->smtp_password ? s->smtp_password : "");
    }
  } else {
    char hdr[600];
    j->hdrs = curl_slist_append(j->hdrs, "Content-Type: application/json");
    snprintf(hdr, sizeof hdr, "Idempotency-Key: %s", j->key);
    j->hdrs = curl_slist_append(j->hdrs, hdr);
    j->hdrs = curl_slist_append(j->hdrs, "Expect:");
    if (!im && s->sms_token) {
      snprintf(hdr, sizeof hdr, "Authorization: Bearer %s", s->sms_token);
      j->hdrs = curl_slist_append(j->hdrs, hdr);
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, j->hdrs);
    curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, payload);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, j);
  }
  curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)j);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, j->errbuf);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  free(payload);
  j->easy = e;
  j->state = J_SENDING;
  s->ninflight++;
  CURLMcode rc = curl_multi_add_handle(s->multi, e);
  if (rc != CURLM_OK) {
    log_error("notifier: curl_multi_add_handle: %s", curl_multi_strerror(rc));
    curl_easy_cleanup(e);
    j->easy = NULL;
    s->ninflight--;
    finish_job(s, j, 0, CURLE_FAILED_INIT);
  }
}

static void start_transfers(sender *s) {
  while (s->qhead && s->ninflight < MAX_INFLIGHT) {
    job *j = s->qhead;
    s->qhead = j->qnext;
    if (!s->qhead) s->qtail = NULL;
    j->qnext = NULL;
    start_one(s, j);
  }
}

/* --- database: pick pending rows, write outcomes back ---------------------- */

static void on_picked(const pg_result_set *rs, void *arg) {
  sender *s = arg;
  s->picking = false;
  if (!rs->ok) {
    log_warn("notifier: picking deliveries failed: %s", rs->error);
    /* The pick may have committed without our seeing its rows: put back
     * whatever is 'sending' and not ours before picking again. */
    s->recovered = false;
    return; /* the tick tries again */
  }
  PGresult *r = rs->res[0];
  int n = PQntuples(r);
  for (int i = 0; i < n; i++) {
    job *j = calloc(1, sizeof *j);
    j->id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
    j->key = strdup(PQgetvalue(r, i, 1));
    j->to = strdup(PQgetvalue(r, i, 2));
    j->body = strdup(PQgetvalue(r, i, 3));
    j->order_no = strdup(PQgetvalue(r, i, 4));
    j->attempts = atoi(PQgetvalue(r, i, 5));
    j->channel = strdup(PQgetvalue(r, i, 6));
    j->subject = strdup(PQgetvalue(r, i, 7));
    j->state = J_QUEUED;
    own(s, j);
    if (s->qtail)
      s->qtail->qnext = j;
    else
      s->qhead = j;
    s->qtail = j;
  }
  start_transfers(s);
  if (s->pick_again || n == PICK_LIMIT) {
    s->pick_again = false;
    pick(s);
  }
}

/* '{1,2,3}': the ids of the rows we own (their outcome is not written yet). */
static char *owned_ids(sender *s) {
  size_t cap = 16 + s->nowned * 21;
  char *ids = malloc(cap);
  size_t k = 0;
  ids[k++] = '{';
  for (job *j = s->owned; j; j = j->next)
    k += (size_t)snprintf(ids + k, cap - k, "%s%" PRId64, k > 1 ? "," : "", j->id);
  ids[k++] = '}';
  ids[k] = '\0';
  return ids;
}

static void on_recovered(const pg_result_set *rs, void *arg) {
  sender *s = arg;
  s->recovering = false;
  if (!rs->ok) {
    log_warn("notifier: resetting deliveries left 'sending' failed: %s", rs->error);
    return; /* the tick tries again */
  }
  int n = PQntuples(rs->res[0]);
  if (n > 0)
    log_info("notifier: %d deliveries were in flight when last stopped: sending them again with "
             "the same idempotency key",
             n);
  s->recovered = true;
  pick(s);
}

/* Rows 'sending' that this process does not own were in flight when a
 * notifier died (or a pick's answer was lost): they go back to 'pending',
 * due now, keeping their attempt count. */
static void recover(sender *s) {
  if (s->recovering || !pg_conn_ready(s->pg)) return;
  char *ids = owned_ids(s);
  char now[24];
  snprintf(now, sizeof now, "%" PRId64, clock_now_ms());
  const char *v[2] = {ids, now};
  pg_tx *tx = pg_tx_new();
  pg_tx_add(tx,
            "UPDATE notify.deliveries SET status = 'pending',"
            " next_attempt_at = to_timestamp($2::bigint / 1000.0)"
            " WHERE status = 'sending' AND id <> ALL ($1::bigint[]) RETURNING id",
            2, v, NULL, NULL);
  free(ids);
  s->recovering = true;
  pg_conn_submit(s->pg, tx, on_recovered, s);
}

static void pick(sender *s) {
  if (!s->recovered) {
    recover(s);
    return;
  }
  if (s->picking) {
    s->pick_again = true;
    return;
  }
  if (s->nowned >= MAX_OWNED || !pg_conn_ready(s->pg)) return;
  char now[24], lim[16];
  snprintf(now, sizeof now, "%" PRId64, clock_now_ms());
  size_t room = MAX_OWNED - s->nowned;
  snprintf(lim, sizeof lim, "%zu", room < PICK_LIMIT ? room : (size_t)PICK_LIMIT);
  const char *v[2] = {now, lim};
  pg_tx *tx = pg_tx_new();
  /* The attempt is recorded before the request goes out: a row is
   * 'sending' with its attempt counted from here until its outcome is
   * written. Rows we own are 'sending', so a pick never sees them. */
  pg_tx_add(tx,
            "UPDATE notify.deliveries d SET status = 'sending', attempts = d.attempts + 1,"
            " attempt_started_at = to_timestamp($1::bigint / 1000.0)"
            " FROM (SELECT id FROM notify.deliveries WHERE status = 'pending'"
            "       AND next_attempt_at <= to_timestamp($1::bigint / 1000.0)"
            "       ORDER BY id LIMIT $2::int FOR UPDATE SKIP LOCKED) p"
            " WHERE d.id = p.id"
            " RETURNING d.id, d.delivery_key, d.recipient, d.body, coalesce(d.order_no, ''),"
            " d.attempts, d.channel, d.subject",
            2, v, NULL, NULL);
  s->picking = true;
  pg_conn_submit(s->pg, tx, on_picked, s);
}

typedef struct {
  sender *s;
  job *jobs;
} write_ctx;

static void on_written(const pg_result_set *rs, void *arg) {
  write_ctx *w = arg;
  sender *s = w->s;
  s->writing = false;
  job *j = w->jobs;
  free(w);
  if (!rs->ok) {
    log_warn("notifier: writing delivery outcomes failed: %s — retrying", rs->error);
    /* Put them back; the next tick writes them again (the SQL is idempotent
     * per attempt: it only touches rows still 'sending'). */
    while (j) {
      job *n = j->qnext;
      j->qnext = s->done;
      s->done = j;
      j = n;
    }
    return;
  }
  while (j) {
    job *n = j->qnext;
    disown(s, j);
    job_free(j);
    j = n;
  }
  pick(s); /* room for more, and retries may be due */
}

static void write_outcomes(sender *s) {
  if (s->writing || !s->done || !pg_conn_ready(s->pg)) return;
  pg_tx *tx = pg_tx_new();
  for (job *j = s->done; j; j = j->qnext) {
    char id[24], sent[24], next[24];
    snprintf(id, sizeof id, "%" PRId64, j->id);
    snprintf(sent, sizeof sent, "%" PRId64, j->sent_at);
    snprintf(next, sizeof next, "%" PRId64, j->next_at);
    const char *v[6] = {id, j->status, sent, next, j->error, j->deferred ? "1" : "0"};
    pg_tx_add(tx,
              "UPDATE notify.deliveries SET status = $2, attempts = attempts - $6::int,"
              " sent_at = CASE WHEN $2 = 'sent' THEN to_timestamp($3::bigint / 1000.0) END,"
              " next_attempt_at = to_timestamp($4::bigint / 1000.0), last_error = NULLIF($5, '')"
              " WHERE id = $1::bigint AND status = 'sending'",
              6, v, NULL, NULL);
  }
  write_ctx *w = malloc(sizeof *w);
  w->s = s;
  w->jobs = s->done;
  s->done = NULL;
  s->writing = true;
  pg_conn_submit(s->pg, tx, on_written, w);
}

static void on_counted(const pg_result_set *rs, void *arg) {
  sender *s = arg;
  s->counting = false;
  if (rs->ok && PQntuples(rs->res[0]) == 1)
    metric_set(s->m_pending, strtoll(PQgetvalue(rs->res[0], 0, 0), NULL, 10));
}

static void on_tick(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  sender *s = arg;
  write_outcomes(s);
  pick(s);
  if (++s->ticks % 10 == 1 && !s->counting && pg_conn_ready(s->pg)) {
    s->counting = true;
    pg_tx *tx = pg_tx_new();
    pg_tx_add(tx, "SELECT count(*) FROM notify.deliveries WHERE status = 'pending'", 0, NULL, NULL,
              NULL);
    pg_conn_submit(s->pg, tx, on_counted, s);
  }
}

static void on_kick(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  sender *s = arg;
  write_outcomes(s);
  pick(s);
}

void sender_kick(sender *s) {
  if (s) event_active(s->ev_kick, 0, 0);
}

static char *dup_or_null(const char *v) { return v && *v ? strdup(v) : NULL; }

sender *sender_new(struct event_base *base, pg_conn *pg, const sender_config *cfg) {
  sender *s = calloc(1, sizeof *s);
  s->base = base;
  s->pg = pg;
  s->url = dup_or_null(cfg->sms_url);
  s->sms_token = dup_or_null(cfg->sms_token);
  s->smtp_url = dup_or_null(cfg->smtp_url);
  s->smtp_from = strdup(cfg->smtp_from && *cfg->smtp_from ? cfg->smtp_from : "kesu@localhost");
  s->smtp_user = dup_or_null(cfg->smtp_user);
  s->smtp_password = dup_or_null(cfg->smtp_password);
  s->rate_per_minute = cfg->rate_per_minute;
  s->rate = strmap_new();
  s->m_sent = metric_counter("notify_sent_total", "Notifications accepted by the gateway");
  s->m_failed = metric_counter("notify_failed_total", "Notifications refused by the gateway (4xx)");
  s->m_retried = metric_counter("notify_retries_total", "Attempts that failed and will be retried");
  s->m_dead = metric_counter("notify_dead_total", "Notifications given up after the last attempt");
  s->m_pending = metric_gauge("notify_pending", "Deliveries waiting to be sent");
  s->multi = curl_multi_init();
  curl_multi_setopt(s->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
  curl_multi_setopt(s->multi, CURLMOPT_SOCKETDATA, s);
  curl_multi_setopt(s->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
  curl_multi_setopt(s->multi, CURLMOPT_TIMERDATA, s);
  curl_multi_setopt(s->multi, CURLMOPT_MAXCONNECTS, (long)MAX_INFLIGHT);
  curl_multi_setopt(s->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)MAX_INFLIGHT);
  s->ev_timeout = evtimer_new(base, on_curl_timeout, s);
  s->ev_kick = event_new(base, -1, 0, on_kick, s);
  s->ev_tick = event_new(base, -1, EV_PERSIST, on_tick, s);
  struct timeval tv = {0, TICK_MS * 1000};
  event_add(s->ev_tick, &tv);
  if (s->url)
    log_info("notifier: SMS gateway %s", s->url);
  else
    log_warn("notifier: KESU_SMS_URL is not set: deliveries are recorded as no_gateway");
  return s;
}

static bool free_slot(const char *key, void *value, void *arg) {
  (void)key;
  (void)arg;
  free(value);
  return true;
}

void sender_destroy(sender **sp) {
  sender *s = *sp;
  if (!s) return;
  for (job *j = s->owned; j; j = j->next) {
    if (j->easy) {
      curl_multi_remove_handle(s->multi, j->easy);
      curl_easy_cleanup(j->easy);
      j->easy = NULL;
    }
  }
  curl_multi_cleanup(s->multi);
  while (s->owned) {
    job *j = s->owned;
    disown(s, j);
    job_free(j);
  }
  event_free(s->ev_timeout);
  event_free(s->ev_kick);
  event_free(s->ev_tick);
  free(s->url);
  free(s->sms_token);
  free(s->smtp_url);
  free(s->smtp_from);
  free(s->smtp_user);
  free(s->smtp_password);
  strmap_each(s->rate, free_slot, NULL);
  strmap_destroy(&s->rate);
  free(s);
  *sp = NULL;
}

size_t sender_inflight(const sender *s) { return s->ninflight; }
size_t sender_owned(const sender *s) { return s->nowned; }
