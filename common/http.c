/* http — evhttp server with routing, bearer auth and JSON bodies. */
#include "http.h"

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/queue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "utf8.h"

enum { MAX_ROUTES = 64, MAX_SEGS = 16 };

typedef struct {
  int method;
  char *pattern;
  char *parts[MAX_SEGS];
  int nparts;
  int flags;
  http_handler h;
  void *arg;
} route;

struct http_server {
  struct event_base *base;
  struct evhttp *http;
  auth_cache *auth;
  route routes[MAX_ROUTES];
  int nroutes;
  bool (*ready)(void *);
  void *ready_arg;
  void (*metrics)(struct evbuffer *, void *);
  void *metrics_arg;
  size_t max_body;
};

static metric *m_requests, *m_errors;

void http_reply_json(struct evhttp_request *req, int status, json_t *body) {
  char *s = body ? json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII * 0) : NULL;
  json_decref(body);
  struct evbuffer *out = evbuffer_new();
  if (s) {
    evbuffer_add(out, s, strlen(s));
    evbuffer_add(out, "\n", 1);
    free(s);
  }
  evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                    "application/json; charset=utf-8");
  const char *reason = status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
  if (status >= 400) metric_add(m_errors, 1);
  evhttp_send_reply(req, status, reason, out);
  evbuffer_free(out);
}

void http_reply_error(struct evhttp_request *req, int status, const char *code, const char *message,
                      const char *field) {
  json_t *e = json_object();
  json_object_set_new(e, "code", json_string(code));
  json_t *m = json_string(message ? message : code);
  json_object_set_new(e, "message", m ? m : json_string(code));
  if (field) {
    json_t *f = json_string(field);
    json_object_set_new(e, "field", f ? f : json_string("?"));
  } else {
    json_object_set_new(e, "field", json_null());
  }
  http_reply_json(req, status, json_pack("{s:o}", "error", e));
}

const char *http_header(struct evhttp_request *req, const char *name) {
  return evhttp_find_header(evhttp_request_get_input_headers(req), name);
}

/* Decoded query values are cached as input headers under a name no client
 * can send (a header name cannot contain ':'), so they live exactly as long
 * as req. (evhttp refuses names with CR/LF, so those cannot be used.) */
const char *http_query(struct evhttp_request *req, const char *name) {
  struct evkeyvalq *in = evhttp_request_get_input_headers(req);
  char key[128];
  snprintf(key, sizeof key, ":q:%s", name);
  const char *v = evhttp_find_header(in, key);
  if (v) return *v ? v : NULL;
  const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
  const char *found = NULL;
  struct evkeyvalq params;
  TAILQ_INIT(&params);
  if (q && evhttp_parse_query_str(q, &params) == 0) found = evhttp_find_header(&params, name);
  evhttp_add_header(in, key, found ? found : "");
  evhttp_clear_headers(&params);
  v = evhttp_find_header(in, key);
  return v && *v ? v : NULL;
}

json_t *http_read_json(struct evhttp_request *req) {
  http_server *s = NULL;
  (void)s;
  const char *ct = http_header(req, "Content-Type");
  if (!ct || strncasecmp(ct, "application/json", 16) != 0 ||
      (ct[16] != '\0' && ct[16] != ';' && ct[16] != ' ')) {
    http_reply_error(req, 415, "unsupported_media_type", "Content-Type must be application/json",
                     NULL);
    return NULL;
  }
  struct evbuffer *in = evhttp_request_get_input_buffer(req);
  size_t len = evbuffer_get_length(in);
  size_t max = (size_t)cfg_long("KESU_HTTP_MAX_BODY", 65536);
  if (len > max) {
    char msg[128];
    snprintf(msg, sizeof msg, "request body is %zu bytes; the limit is %zu", len, max);
    http_reply_error(req, 413, "body_too_large", msg, NULL);
    return NULL;
  }
  if (len == 0) {
    http_reply_error(req, 400, "invalid_json", "request body is empty", NULL);
    return NULL;
  }
  const unsigned char *data = evbuffer_pullup(in, -1);
  if (!utf8_valid(data, len)) {
    http_reply_error(req, 400, "invalid_utf8", "request body is not valid UTF-8", NULL);
    return NULL;
  }
  json_error_t err;
  json_t *j = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, &err);
  if (!j) {
    char msg[256];
    snprintf(msg, sizeof msg, "invalid JSON at line %d column %d: %s", err.line, err.column,
             err.text);
    http_reply_error(req, 400, "invalid_json", msg, NULL);
    return NULL;
  }
  if (!json_is_object(j)) {
    json_decref(j);
    http_reply_error(req, 400, "invalid_json", "request body must be a JSON object", NULL);
    return NULL;
  }
  return j;
}

static int split_path(char *path, char **parts, int max) {
  int n = 0;
  char *save = NULL;
  for (char *t = strtok_r(path, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
    if (n == max) return -1;
    parts[n++] = t;
  }
  return n;
}

static void reply_text(struct evhttp_request *req, int status, const char *ctype,
                       struct evbuffer *out) {
  evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
  evhttp_send_reply(req, status, status == 200 ? "OK" : "Service Unavailable", out);
}

static void builtin_clock(struct evhttp_request *req, const auth_ctx *auth, char **segs, int n,
                          void *arg) {
  if (!auth || strcmp(auth->role, "admin") != 0) {
    http_reply_error(req, 403, "forbidden", "only an admin token may move the clock", NULL);
    return;
  }
  if (!clock_is_controllable()) {
    http_reply_error(req, 409, "conflict", "the clock is real (KESU_CLOCK is not control:)", NULL);
    return;
  }
  if (evhttp_request_get_command(req) == EVHTTP_REQ_POST) {
    json_t *j = http_read_json(req);
    if (!j) return;
    const char *key;
    json_t *val;
    json_object_foreach(j, key, val) {
      if (strcmp(key, "advance_ms") != 0 && strcmp(key, "set") != 0) {
        char msg[96];
        snprintf(msg, sizeof msg, "unknown field %.60s", key);
        json_t *k = json_string(key);
        http_reply_error(req, 422, "unknown_field", msg, k ? key : NULL);
        json_decref(k);
        json_decref(j);
        return;
      }
    }
    json_t *adv = json_object_get(j, "advance_ms");
    json_t *set = json_object_get(j, "set");
    int64_t ms;
    if (adv && !json_is_integer(adv)) {
      json_decref(j);
      http_reply_error(req, 422, "wrong_type", "advance_ms must be an integer (milliseconds)",
                       "advance_ms");
      return;
    }
    if (set && !json_is_string(set)) {
      json_decref(j);
      http_reply_error(req, 422, "wrong_type", "set must be an RFC 3339 string", "set");
      return;
    }
    if (json_is_integer(adv)) {
      clock_advance_ms(json_integer_value(adv));
    } else if (json_is_string(set) && clock_parse_ms(json_string_value(set), &ms) == 0) {
      clock_set_ms(ms);
    } else {
      json_decref(j);
      http_reply_error(req, 422, "invalid_value", "give advance_ms (integer) or set (RFC 3339)",
                       "advance_ms");
      return;
    }
    json_decref(j);
  }
  char buf[40];
  int64_t now = clock_now_ms();
  clock_format_ms(now, buf, sizeof buf);
  http_reply_json(req, 200, json_pack("{s:s, s:I}", "now", buf, "now_ms", (json_int_t)now));
}

static const char *bearer(struct evhttp_request *req) {
  const char *h = http_header(req, "Authorization");
  if (h) {
    if (strncasecmp(h, "Bearer ", 7) == 0) {
      h += 7;
      while (*h == ' ') h++;
      return h;
    }
    return NULL;
  }
  /* EventSource cannot set headers: allow ?access_token= on GET. */
  if (evhttp_request_get_command(req) == EVHTTP_REQ_GET) return http_query(req, "access_token");
  return NULL;
}

static void dispatch_req(struct evhttp_request *req, http_server *s, bool retried);

/* A token the cache does not know may have been created a moment ago (the NOTIFY that reloads
 * the cache is still on its way): reload once and look again before answering 401. */
typedef struct {
  http_server *s;
  struct evhttp_request *req;
} auth_retry;

static void on_auth_reloaded(void *arg) {
  auth_retry *w = arg;
  dispatch_req(w->req, w->s, true);
  free(w);
}

static void dispatch(struct evhttp_request *req, void *arg) {
  metric_add(m_requests, 1);
  /* No Nagle: evhttp writes a reply's head and body separately, and on a kept-alive
   * connection the body then waited for the client's delayed ACK — 40 ms on every
   * request but a connection's first (bench/analytics_kpi.py: p50 52 ms → 12 ms). */
  struct evhttp_connection *conn = evhttp_request_get_connection(req);
  struct bufferevent *bev = conn ? evhttp_connection_get_bufferevent(conn) : NULL;
  evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
  if (fd >= 0) {
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  dispatch_req(req, arg, false);
}

static void dispatch_req(struct evhttp_request *req, http_server *s, bool retried) {
  const char *rawpath = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
  if (!rawpath) rawpath = "/";
  int method = (int)evhttp_request_get_command(req);

  if (strcmp(rawpath, "/healthz") == 0) {
    struct evbuffer *out = evbuffer_new();
    evbuffer_add_printf(out, "{\"status\":\"ok\",\"service\":\"%s\"}\n", log_service());
    reply_text(req, 200, "application/json", out);
    evbuffer_free(out);
    return;
  }
  if (strcmp(rawpath, "/readyz") == 0) {
    bool ok = (!s->auth || auth_cache_loaded(s->auth)) && (!s->ready || s->ready(s->ready_arg));
    struct evbuffer *out = evbuffer_new();
    evbuffer_add_printf(out, "{\"ready\":%s,\"service\":\"%s\"}\n", ok ? "true" : "false",
                        log_service());
    reply_text(req, ok ? 200 : 503, "application/json", out);
    evbuffer_free(out);
    return;
  }
  if (strcmp(rawpath, "/metrics") == 0) {
    struct evbuffer *out = evbuffer_new();
    metrics_render(out);
    if (s->metrics) s->metrics(out, s->metrics_arg);
    reply_text(req, 200, "text/plain; version=0.0.4", out);
    evbuffer_free(out);
    return;
  }

  char path[1024];
  if (strlen(rawpath) >= sizeof path) {
    http_reply_error(req, 404, "not_found", "no such path", NULL);
    return;
  }
  snprintf(path, sizeof path, "%s", rawpath);
  char *parts[MAX_SEGS];
  int n = split_path(path, parts, MAX_SEGS);
  bool path_matched = false;
  for (int r = 0; n >= 0 && r < s->nroutes; r++) {
    route *rt = &s->routes[r];
    if (rt->nparts != n) continue;
    int k;
    for (k = 0; k < n; k++)
      if (strcmp(rt->parts[k], "*") != 0 && strcmp(rt->parts[k], parts[k]) != 0) break;
    if (k < n) continue;
    path_matched = true;
    if (!(rt->method & method)) continue;

    const auth_ctx *auth = NULL;
    if (!(rt->flags & HTTP_PUBLIC)) {
      const char *tok = bearer(req);
      if (!tok) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate", "Bearer");
        http_reply_error(req, 401, "unauthorized", "missing bearer token (Authorization: Bearer …)",
                         NULL);
        return;
      }
      auth = auth_cache_check(s->auth, tok);
      if (!auth && !retried) {
        auth_retry *w = malloc(sizeof *w);
        w->s = s;
        w->req = req;
        if (auth_cache_refresh_then(s->auth, on_auth_reloaded, w) == 0) return;
        free(w);
      }
      if (!auth) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate", "Bearer");
        http_reply_error(req, 401, "unauthorized", "unknown or revoked token", NULL);
        return;
      }
    }
    char *segs[MAX_SEGS];
    int nsegs = 0;
    for (k = 0; k < n; k++) {
      if (strcmp(rt->parts[k], "*") != 0) continue;
      char *d = evhttp_uridecode(parts[k], 0, NULL);
      if (!d || !utf8_valid((unsigned char *)d, strlen(d))) {
        free(d);
        for (int i = 0; i < nsegs; i++) free(segs[i]);
        http_reply_error(req, 400, "invalid_utf8", "path is not valid UTF-8", NULL);
        return;
      }
      segs[nsegs++] = d;
    }
    rt->h(req, auth, segs, nsegs, rt->arg);
    for (int i = 0; i < nsegs; i++) free(segs[i]);
    return;
  }
  if (path_matched)
    http_reply_error(req, 405, "method_not_allowed", "method not allowed on this path", NULL);
  else
    http_reply_error(req, 404, "not_found", "no such path", NULL);
}

http_server *http_server_new(struct event_base *base, const char *host, int port,
                             auth_cache *auth) {
  if (!m_requests) {
    m_requests = metric_counter("http_requests_total", "HTTP requests received");
    m_errors = metric_counter("http_errors_total", "HTTP responses with status >= 400");
  }
  http_server *s = calloc(1, sizeof *s);
  s->base = base;
  s->auth = auth;
  s->http = evhttp_new(base);
  s->max_body = (size_t)cfg_long("KESU_HTTP_MAX_BODY", 65536);
  /* Hard cap well above the limit: between the two, http_read_json answers
   * with a JSON 413; beyond it evhttp refuses before buffering. */
  evhttp_set_max_body_size(s->http, (ev_ssize_t)(s->max_body * 16 + 65536));
  evhttp_set_max_headers_size(s->http, 65536);
  evhttp_set_timeout(s->http, 60);
  evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                          EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH |
                                          EVHTTP_REQ_HEAD | EVHTTP_REQ_OPTIONS);
  evhttp_set_gencb(s->http, dispatch, s);
  if (!evhttp_bind_socket_with_handle(s->http, host, (ev_uint16_t)port)) {
    log_error("http: cannot listen on %s:%d", host, port);
    evhttp_free(s->http);
    free(s);
    return NULL;
  }
  log_info("http: listening on http://%s:%d", host, port);
  http_route(s, EVHTTP_REQ_GET | EVHTTP_REQ_POST, "/v1/admin/clock", 0, builtin_clock, NULL);
  return s;
}

void http_server_destroy(http_server **sp) {
  http_server *s = *sp;
  if (!s) return;
  evhttp_free(s->http);
  for (int i = 0; i < s->nroutes; i++) free(s->routes[i].pattern);
  free(s);
  *sp = NULL;
}

void http_route(http_server *s, int method, const char *pattern, int flags, http_handler h,
                void *arg) {
  if (s->nroutes == MAX_ROUTES) {
    log_error("http: too many routes, %s ignored", pattern);
    return;
  }
  route *r = &s->routes[s->nroutes++];
  r->method = method;
  r->pattern = strdup(pattern);
  r->nparts = split_path(r->pattern, r->parts, MAX_SEGS);
  r->flags = flags;
  r->h = h;
  r->arg = arg;
}

void http_set_ready(http_server *s, bool (*ready)(void *arg), void *arg) {
  s->ready = ready;
  s->ready_arg = arg;
}

void http_set_metrics(http_server *s, void (*metrics)(struct evbuffer *out, void *arg),
                      void *arg) {
  s->metrics = metrics;
  s->metrics_arg = arg;
}
