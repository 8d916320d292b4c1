/* sse — Server-Sent Events fan-out with a replay ring (see sse.h). */
#include "sse.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

enum {
  HEARTBEAT_S = 15,
  MAX_TYPES = 16,
  MAX_BACKLOG = 8 * 1024 * 1024, /* a client this far behind is dropped */
  STREAM_TIMEOUT_S = 24 * 3600,
};

typedef struct {
  char *producer;
  uint64_t seq;
  char *type;
  char *region;
  char *frame;
  size_t len;
} ring_entry;

typedef struct client {
  sse_hub *hub;
  struct evhttp_request *req;
  struct evhttp_connection *evcon;
  char scope[16];  /* region prefix of the token's scope ("" = all) */
  char region[16]; /* region prefix filter ("" = all) */
  char *types[MAX_TYPES];
  int ntypes;
  struct client *prev, *next;
} client;

struct sse_hub {
  struct event_base *base;
  ring_entry *ring;
  size_t cap, start, count;
  client *clients;
  size_t nclients;
  uint64_t dropped;
  struct evbuffer *tmp;
  struct event *ev_heartbeat;
};

static void prefix_of(const char *code, char *out, size_t len) {
  snprintf(out, len, "%s", code ? code : "");
  size_t n = strlen(out);
  while (n >= 2 && out[n - 1] == '0' && out[n - 2] == '0') out[n -= 2] = '\0';
}

static bool prefix_match(const char *prefix, const char *region) {
  if (!*prefix) return true;
  return region && strncmp(prefix, region, strlen(prefix)) == 0;
}

static bool client_wants(const client *c, const ring_entry *e) {
  if (!prefix_match(c->scope, e->region) || !prefix_match(c->region, e->region)) return false;
  if (c->ntypes == 0) return true;
  for (int i = 0; i < c->ntypes; i++)
    if (strcmp(c->types[i], e->type) == 0) return true;
  return false;
}

static void client_unlink(sse_hub *h, client *c) {
  if (c->prev)
    c->prev->next = c->next;
  else
    h->clients = c->next;
  if (c->next) c->next->prev = c->prev;
  h->nclients--;
}

static void client_free(client *c) {
  for (int i = 0; i < c->ntypes; i++) free(c->types[i]);
  free(c);
}

/* The connection is being freed (client went away, timeout, shutdown). */
static void on_close(struct evhttp_connection *evcon, void *arg) {
  (void)evcon;
  client *c = arg;
  sse_hub *h = c->hub;
  client_unlink(h, c);
  /* On EOF/timeout evhttp detaches a request the user has not finished and
   * leaves it to us: ending it with no connection just frees it. If it is
   * still attached, evhttp frees it with the connection. */
  if (evhttp_request_get_connection(c->req) == NULL) evhttp_send_reply_end(c->req);
  client_free(c);
}

/* Drops a client that cannot keep up: its connection goes, with the request. */
static void client_drop(sse_hub *h, client *c) {
  log_warn("sse: dropping a client more than %d bytes behind", MAX_BACKLOG);
  h->dropped++;
  evhttp_connection_set_closecb(c->evcon, NULL, NULL);
  client_unlink(h, c);
  evhttp_connection_free(c->evcon);
  client_free(c);
}

static size_t backlog(const client *c) {
  struct bufferevent *bev = evhttp_connection_get_bufferevent(c->evcon);
  return bev ? evbuffer_get_length(bufferevent_get_output(bev)) : 0;
}

static void send_raw(sse_hub *h, client *c, const char *data, size_t len) {
  evbuffer_add(h->tmp, data, len);
  evhttp_send_reply_chunk(c->req, h->tmp);
  evbuffer_drain(h->tmp, evbuffer_get_length(h->tmp));
}

void sse_publish(sse_hub *h, const char *producer, uint64_t seq, const char *type,
                 const char *region, const char *json_data) {
  ring_entry *e;
  if (h->count == h->cap) {
    e = &h->ring[h->start];
    free(e->producer);
    free(e->type);
    free(e->region);
    free(e->frame);
    h->start = (h->start + 1) % h->cap;
    h->count--;
  }
  e = &h->ring[(h->start + h->count) % h->cap];
  h->count++;
  e->producer = strdup(producer);
  e->seq = seq;
  e->type = strdup(type);
  e->region = strdup(region ? region : "");
  int n = asprintf(&e->frame, "id: %s-%" PRIu64 "\nevent: %s\ndata: %s\n\n", producer, seq, type,
                   json_data);
  if (n < 0) {
    e->frame = strdup("");
    n = 0;
  }
  e->len = (size_t)n;
  client *c = h->clients;
  while (c) {
    client *next = c->next;
    if (client_wants(c, e)) {
      if (backlog(c) > MAX_BACKLOG)
        client_drop(h, c);
      else
        send_raw(h, c, e->frame, e->len);
    }
    c = next;
  }
}

static void on_heartbeat(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  sse_hub *h = arg;
  client *c = h->clients;
  while (c) {
    client *next = c->next;
    send_raw(h, c, ":\n\n", 3);
    c = next;
  }
}

/* Index (0 = oldest) of the first ring entry a client resuming after last_id
 * has not seen; h->count when there is nothing to send. */
static size_t resume_index(const sse_hub *h, const char *last_id) {
  const char *dash = strrchr(last_id, '-');
  if (!dash || dash == last_id) return h->count;
  size_t plen = (size_t)(dash - last_id);
  char *end;
  uint64_t seq = strtoull(dash + 1, &end, 10);
  if (*end) return h->count;
  size_t first_newer = h->count;
  for (size_t i = 0; i < h->count; i++) {
    const ring_entry *e = &h->ring[(h->start + i) % h->cap];
    if (strlen(e->producer) != plen || strncmp(e->producer, last_id, plen) != 0) continue;
    if (e->seq == seq) return i + 1;
    if (e->seq > seq && first_newer == h->count) first_newer = i;
  }
  /* The id is older than the ring: send all we have of what followed it. If
   * the ring holds nothing newer from that producer, the client is current
   * (or the id is from a previous run): nothing to resend. */
  return first_newer == h->count ? h->count : 0;
}

bool sse_ring_has(const sse_hub *h, const char *last_id) {
  const char *dash = last_id ? strrchr(last_id, '-') : NULL;
  if (!dash || dash == last_id) return false;
  size_t plen = (size_t)(dash - last_id);
  char *end;
  uint64_t seq = strtoull(dash + 1, &end, 10);
  if (*end) return false;
  for (size_t i = 0; i < h->count; i++) {
    const ring_entry *e = &h->ring[(h->start + i) % h->cap];
    if (e->seq == seq && strlen(e->producer) == plen && !strncmp(e->producer, last_id, plen))
      return true;
  }
  return false;
}

static client *client_start(sse_hub *h, struct evhttp_request *req, const char *scope,
                            const char *region, const char *types);

void sse_attach_backlog(sse_hub *h, struct evhttp_request *req, const char *scope,
                        const char *region, const char *types, const sse_item *items, size_t n) {
  client *c = client_start(h, req, scope, region, types);
  enum { MAXP = 8 };
  const char *prod[MAXP];
  uint64_t max[MAXP];
  int np = 0;
  for (size_t i = 0; i < n; i++) {
    const sse_item *it = &items[i];
    ring_entry e = {(char *)it->producer, it->seq, (char *)it->type, (char *)it->region, NULL, 0};
    if (client_wants(c, &e)) {
      char *frame = NULL;
      int len = asprintf(&frame, "id: %s-%" PRIu64 "\nevent: %s\ndata: %s\n\n", it->producer,
                         it->seq, it->type, it->data);
      if (len > 0) send_raw(h, c, frame, (size_t)len);
      free(frame);
    }
    int k = 0;
    while (k < np && strcmp(prod[k], it->producer) != 0) k++;
    if (k == np && np < MAXP) prod[np++] = it->producer, max[k] = 0;
    if (k < np && it->seq > max[k]) max[k] = it->seq;
  }
  /* then what the ring has beyond the backlog (committed after it was read) */
  for (size_t i = 0; i < h->count; i++) {
    const ring_entry *e = &h->ring[(h->start + i) % h->cap];
    int k = 0;
    while (k < np && strcmp(prod[k], e->producer) != 0) k++;
    if (k < np && e->seq <= max[k]) continue;
    if (client_wants(c, e)) send_raw(h, c, e->frame, e->len);
  }
}

void sse_attach(sse_hub *h, struct evhttp_request *req, const char *scope, const char *region,
                const char *types, const char *last_id) {
  client *c = client_start(h, req, scope, region, types);
  if (last_id && *last_id) {
    for (size_t i = resume_index(h, last_id); i < h->count; i++) {
      const ring_entry *e = &h->ring[(h->start + i) % h->cap];
      if (client_wants(c, e)) send_raw(h, c, e->frame, e->len);
    }
  }
}

static client *client_start(sse_hub *h, struct evhttp_request *req, const char *scope,
                            const char *region, const char *types) {
  client *c = calloc(1, sizeof *c);
  c->hub = h;
  c->req = req;
  c->evcon = evhttp_request_get_connection(req);
  prefix_of(scope, c->scope, sizeof c->scope);
  prefix_of(region, c->region, sizeof c->region);
  if (types && *types) {
    char *dup = strdup(types), *save = NULL;
    for (char *t = strtok_r(dup, ",", &save); t && c->ntypes < MAX_TYPES;
         t = strtok_r(NULL, ",", &save)) {
      while (*t == ' ') t++;
      if (*t) c->types[c->ntypes++] = strdup(t);
    }
    free(dup);
  }
  struct evkeyvalq *hdrs = evhttp_request_get_output_headers(req);
  evhttp_add_header(hdrs, "Content-Type", "text/event-stream; charset=utf-8");
  evhttp_add_header(hdrs, "Cache-Control", "no-cache");
  evhttp_add_header(hdrs, "X-Accel-Buffering", "no");
  evhttp_send_reply_start(req, 200, "OK");
  evhttp_connection_set_timeout(c->evcon, STREAM_TIMEOUT_S);
  evhttp_connection_set_closecb(c->evcon, on_close, c);
  c->next = h->clients;
  if (h->clients) h->clients->prev = c;
  h->clients = c;
  h->nclients++;
  send_raw(h, c, "retry: 2000\n\n", 13);
  return c;
}

sse_hub *sse_hub_new(struct event_base *base, size_t ring_cap) {
  sse_hub *h = calloc(1, sizeof *h);
  h->base = base;
  h->cap = ring_cap ? ring_cap : 1;
  h->ring = calloc(h->cap, sizeof *h->ring);
  h->tmp = evbuffer_new();
  h->ev_heartbeat = event_new(base, -1, EV_PERSIST, on_heartbeat, h);
  struct timeval tv = {HEARTBEAT_S, 0};
  event_add(h->ev_heartbeat, &tv);
  return h;
}

void sse_hub_destroy(sse_hub **hp) {
  sse_hub *h = *hp;
  if (!h) return;
  while (h->clients) {
    client *c = h->clients;
    evhttp_connection_set_closecb(c->evcon, NULL, NULL);
    client_unlink(h, c);
    evhttp_send_reply_end(c->req);
    client_free(c);
  }
  for (size_t i = 0; i < h->count; i++) {
    ring_entry *e = &h->ring[(h->start + i) % h->cap];
    free(e->producer);
    free(e->type);
    free(e->region);
    free(e->frame);
  }
  free(h->ring);
  evbuffer_free(h->tmp);
  event_free(h->ev_heartbeat);
  free(h);
  *hp = NULL;
}

size_t sse_client_count(const sse_hub *h) { return h->nclients; }
size_t sse_ring_size(const sse_hub *h) { return h->count; }
uint64_t sse_dropped_clients(const sse_hub *h) { return h->dropped; }
