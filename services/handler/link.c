/* link — DEALER to the router: Hello every second, messages both ways. */
#include "link.h"

#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "log.h"
#include "metrics.h"
#include "zloop.h"

enum { HELLO_MS = 1000 };

struct router_link {
  void *sock;
  zwatch *watch;
  struct event *ev_hello;
  char *handler_id;
  char **units;
  size_t nunits;
  uint32_t credit;
  router_link_events events;
  bool hello_sent;
  int64_t heard_ms; /* monotonic; 0 = never */
  int64_t opened_ms; /* monotonic */
  int64_t stall_end_ms; /* monotonic: end of a stall (see note_stall); 0 = none */
  int64_t tick_ms;      /* monotonic: the last Hello tick */
};

static metric *m_link_up;

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int send_message(router_link *self, const Kesu__V1__HandlerMessage *m) {
  size_t len = kesu__v1__handler_message__get_packed_size(m);
  unsigned char *buf = malloc(len ? len : 1);
  kesu__v1__handler_message__pack(m, buf);
  const void *d[1] = {buf};
  size_t l[1] = {len};
  int rc = zsend(self->sock, 1, d, l);
  free(buf);
  zwatch_kick(self->watch);
  return rc;
}

static void send_hello(router_link *self) {
  Kesu__V1__Hello h = KESU__V1__HELLO__INIT;
  h.handler_id = self->handler_id;
  h.units = self->units;
  h.n_units = self->nunits;
  h.credit = self->credit;
  Kesu__V1__HandlerMessage m = KESU__V1__HANDLER_MESSAGE__INIT;
  m.msg_case = KESU__V1__HANDLER_MESSAGE__MSG_HELLO;
  m.hello = &h;
  if (send_message(self, &m) == 0) {
    if (!self->hello_sent)
      log_info("link: Hello sent as %s", self->handler_id);
    self->hello_sent = true;
  }
}

/* This process said nothing for 2.5 s (its Hello is due every second: it was
 * frozen or starved), so the router may have counted it gone (3 s) and given
 * its unacknowledged orders to another handler: what it reads now may be
 * stale. Called first thing on wake-up, by whichever event runs first. */
static void note_stall(router_link *self, int64_t now) {
  if (self->tick_ms && now - self->tick_ms > 2500 && self->stall_end_ms < self->tick_ms) {
    self->stall_end_ms = now;
    log_warn("link: this handler was silent for %" PRId64 " ms; dispatches read in the next "
             "1.5 s are stored only for orders no other handler holds, and not acknowledged",
             now - self->tick_ms);
  }
}

static void on_hello_tick(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  router_link *self = arg;
  int64_t now = mono_ms();
  note_stall(self, now);
  self->tick_ms = now;
  send_hello(self);
  int64_t silence = router_link_silence_ms(self);
  metric_set(m_link_up, silence >= 0 && silence < 3000);
}

static void on_message(void *sock, zmsg *m, void *arg) {
  (void)sock;
  router_link *self = arg;
  if (m->nframes != 1) {
    log_warn("link: message with %d frames ignored", m->nframes);
    return;
  }
  Kesu__V1__RouterMessage *msg = kesu__v1__router_message__unpack(NULL, m->len[0], m->data[0]);
  if (!msg) {
    log_warn("link: undecodable message from the router");
    return;
  }
  note_stall(self, mono_ms());
  bool was_silent = self->heard_ms == 0 || mono_ms() - self->heard_ms > 3000;
  self->heard_ms = mono_ms();
  if (was_silent)
    log_info("link: router is talking to us");
  switch (msg->msg_case) {
  case KESU__V1__ROUTER_MESSAGE__MSG_HEARTBEAT: break;
  case KESU__V1__ROUTER_MESSAGE__MSG_DISPATCH:
    if (self->events.on_dispatch)
      self->events.on_dispatch(msg->dispatch, self->events.arg);
    break;
  case KESU__V1__ROUTER_MESSAGE__MSG_ACTION_RESULT:
    if (self->events.on_result)
      self->events.on_result(msg->action_result, self->events.arg);
    break;
  case KESU__V1__ROUTER_MESSAGE__MSG_RECALL:
    if (self->events.on_recall)
      self->events.on_recall(msg->recall, self->events.arg);
    break;
  case KESU__V1__ROUTER_MESSAGE__MSG_UPDATE:
    if (self->events.on_update)
      self->events.on_update(msg->update, self->events.arg);
    break;
  default: log_warn("link: unknown message from the router");
  }
  kesu__v1__router_message__free_unpacked(msg, NULL);
}

router_link *router_link_new(struct event_base *base, const char *endpoint, const char *handler_id,
                             const char *const *units, size_t nunits, uint32_t credit,
                             const router_link_events *events) {
  m_link_up = metric_gauge("handler_router_link_up", "1 if the router was heard in the last 3 s");
  void *sock = zsock_new(ZMQ_DEALER);
  if (!sock)
    return NULL;
  zmq_setsockopt(sock, ZMQ_ROUTING_ID, handler_id, strlen(handler_id));
  if (zmq_connect(sock, endpoint) != 0) {
    log_error("link: cannot connect %s: %s", endpoint, zmq_strerror(errno));
    zmq_close(sock);
    return NULL;
  }
  router_link *self = calloc(1, sizeof *self);
  self->sock = sock;
  self->opened_ms = mono_ms();
  self->tick_ms = self->opened_ms;
  self->handler_id = strdup(handler_id);
  self->units = calloc(nunits ? nunits : 1, sizeof *self->units);
  for (size_t i = 0; i < nunits; i++)
    self->units[i] = strdup(units[i]);
  self->nunits = nunits;
  self->credit = credit;
  self->events = *events;
  self->watch = zwatch_new(base, sock, on_message, self);
  self->ev_hello = event_new(base, -1, EV_PERSIST, on_hello_tick, self);
  struct timeval tv = {HELLO_MS / 1000, (HELLO_MS % 1000) * 1000};
  event_add(self->ev_hello, &tv);
  send_hello(self);
  log_info("link: DEALER %s -> %s", handler_id, endpoint);
  return self;
}

void router_link_destroy(router_link **selfp) {
  router_link *self = *selfp;
  if (!self)
    return;
  event_free(self->ev_hello);
  zwatch_destroy(&self->watch);
  zsock_close(&self->sock);
  for (size_t i = 0; i < self->nunits; i++)
    free(self->units[i]);
  free(self->units);
  free(self->handler_id);
  free(self);
  *selfp = NULL;
}

int router_link_ack(router_link *self, const char *dispatch_id, const char *order_no) {
  Kesu__V1__DispatchAck a = KESU__V1__DISPATCH_ACK__INIT;
  a.dispatch_id = (char *)dispatch_id;
  a.order_no = (char *)order_no;
  Kesu__V1__HandlerMessage m = KESU__V1__HANDLER_MESSAGE__INIT;
  m.msg_case = KESU__V1__HANDLER_MESSAGE__MSG_ACK;
  m.ack = &a;
  return send_message(self, &m);
}

int router_link_send_action(router_link *self, const Kesu__V1__Action *action) {
  Kesu__V1__HandlerMessage m = KESU__V1__HANDLER_MESSAGE__INIT;
  m.msg_case = KESU__V1__HANDLER_MESSAGE__MSG_ACTION;
  m.action = (Kesu__V1__Action *)action;
  return send_message(self, &m);
}

bool router_link_hello_sent(const router_link *self) { return self->hello_sent; }

int64_t router_link_silence_ms(const router_link *self) {
  return self->heard_ms ? mono_ms() - self->heard_ms : -1;
}

bool router_link_down(const router_link *self) {
  if (self->heard_ms)
    return mono_ms() - self->heard_ms >= 3000;
  return mono_ms() - self->opened_ms >= 3000;
}

bool router_link_catching_up(const router_link *self) {
  return self && self->stall_end_ms && mono_ms() - self->stall_end_ms < 1500;
}
