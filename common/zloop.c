/* zloop — ZeroMQ sockets joined to the libevent loop through ZMQ_FD/ZMQ_EVENTS. */
#include "zloop.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "log.h"

struct zwatch {
  void *sock;
  struct event *ev;
  zwatch_cb cb;
  void *arg;
};

static void *g_ctx;

void *zloop_ctx(void) {
  if (!g_ctx) {
    g_ctx = zmq_ctx_new();
    zmq_ctx_set(g_ctx, ZMQ_BLOCKY, 0);
  }
  return g_ctx;
}

void zloop_term(void) {
  if (g_ctx) zmq_ctx_term(g_ctx);
  g_ctx = NULL;
}

static void zmsg_free(zmsg *m) {
  for (int i = 0; i < m->nframes; i++) free(m->data[i]);
  free(m->data);
  free(m->len);
  m->nframes = 0;
  m->data = NULL;
  m->len = NULL;
}

/* Receives one whole multipart message without blocking; 0, or -1 (EAGAIN). */
static int zrecv_msg(void *sock, zmsg *out) {
  memset(out, 0, sizeof *out);
  int cap = 0;
  for (;;) {
    zmq_msg_t part;
    zmq_msg_init(&part);
    int flags = out->nframes == 0 ? ZMQ_DONTWAIT : 0;
    if (zmq_msg_recv(&part, sock, flags) < 0) {
      zmq_msg_close(&part);
      if (out->nframes == 0) return -1;
      /* Parts of a multipart message arrive together; this cannot happen. */
      zmsg_free(out);
      return -1;
    }
    if (out->nframes == cap) {
      cap = cap ? cap * 2 : 4;
      out->data = realloc(out->data, (size_t)cap * sizeof *out->data);
      out->len = realloc(out->len, (size_t)cap * sizeof *out->len);
    }
    size_t n = zmq_msg_size(&part);
    out->data[out->nframes] = malloc(n + 1);
    memcpy(out->data[out->nframes], zmq_msg_data(&part), n);
    out->data[out->nframes][n] = '\0'; /* frames can be read as strings */
    out->len[out->nframes] = n;
    out->nframes++;
    int more = zmq_msg_more(&part);
    zmq_msg_close(&part);
    if (!more) return 0;
  }
}

static void zwatch_on_ready(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  zwatch *self = arg;
  /* Edge-triggered: drain until ZMQ_EVENTS says nothing more to read, but
   * yield after a bounded number so one busy socket cannot starve the loop. */
  for (int budget = 0; budget < 1000; budget++) {
    int events = 0;
    size_t sz = sizeof events;
    if (zmq_getsockopt(self->sock, ZMQ_EVENTS, &events, &sz) != 0) return;
    if (!(events & ZMQ_POLLIN)) return;
    zmsg m;
    if (zrecv_msg(self->sock, &m) != 0) return;
    self->cb(self->sock, &m, self->arg);
    zmsg_free(&m);
  }
  event_active(self->ev, EV_READ, 0);
}

zwatch *zwatch_new(struct event_base *base, void *sock, zwatch_cb cb, void *arg) {
  zwatch *self = calloc(1, sizeof *self);
  self->sock = sock;
  self->cb = cb;
  self->arg = arg;
  int fd;
  size_t sz = sizeof fd;
  zmq_getsockopt(sock, ZMQ_FD, &fd, &sz);
  self->ev = event_new(base, fd, EV_READ | EV_PERSIST, zwatch_on_ready, self);
  event_add(self->ev, NULL);
  event_active(self->ev, EV_READ, 0); /* messages may already be waiting */
  return self;
}

void zwatch_destroy(zwatch **selfp) {
  zwatch *self = *selfp;
  if (!self) return;
  event_free(self->ev);
  free(self);
  *selfp = NULL;
}

void zwatch_kick(zwatch *self) {
  if (self) event_active(self->ev, EV_READ, 0);
}

int zsend(void *sock, int n, const void *const *data, const size_t *len) {
  for (int i = 0; i < n; i++) {
    int flags = ZMQ_DONTWAIT | (i < n - 1 ? ZMQ_SNDMORE : 0);
    if (zmq_send(sock, data[i], len[i], flags) < 0) return -1;
  }
  return 0;
}

int zsend_str2(void *sock, const char *a, const void *b, size_t blen) {
  const void *d[2] = {a, b};
  size_t l[2] = {strlen(a), blen};
  return zsend(sock, 2, d, l);
}

void *zsock_new(int type) {
  void *s = zmq_socket(zloop_ctx(), type);
  if (!s) return NULL;
  int linger = 0, hwm = 200000;
  zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
  zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
  zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
  return s;
}

void *zsock_bind(int type, const char *endpoint) {
  void *s = zsock_new(type);
  if (!s) return NULL;
  if (zmq_bind(s, endpoint) != 0) {
    log_error("cannot bind %s: %s", endpoint, zmq_strerror(errno));
    zmq_close(s);
    return NULL;
  }
  return s;
}

void *zsock_connect(int type, const char *endpoint) {
  void *s = zsock_new(type);
  if (!s) return NULL;
  if (zmq_connect(s, endpoint) != 0) {
    log_error("cannot connect %s: %s", endpoint, zmq_strerror(errno));
    zmq_close(s);
    return NULL;
  }
  return s;
}

void zsock_close(void **sock) {
  if (*sock) zmq_close(*sock);
  *sock = NULL;
}
