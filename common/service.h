/* service — the wiring every main.c repeats: log + config + clock init,
 * the event base, SIGINT/SIGTERM → clean loop exit. */
#ifndef KESU_SERVICE_H
#define KESU_SERVICE_H
struct event_base;
/* Initialises log/clock, prints config; returns the loop. Exits on failure. */
struct event_base *service_init(const char *name);
/* Runs the loop until SIGINT/SIGTERM. */
int service_run(struct event_base *base);
#endif
