/* clock — the one source of time for every service (ARCHITECTURE §6).
 *
 * Real mode reads CLOCK_REALTIME. Controllable mode (tests, demos) adds an
 * offset kept in a small shared file, so every process started with the
 * same KESU_CLOCK=control:/path sees the same jumps: advancing the clock
 * in one service (or with `kesuctl clock`) moves it for all.
 */
#ifndef KESU_CLOCK_H
#define KESU_CLOCK_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* spec: NULL/"" /"real", or "control:/path/to/file". Returns 0 or -1. */
int clock_init(const char *spec);
int64_t clock_now_ms(void);
bool clock_is_controllable(void);
/* Only in controllable mode; return 0 or -1 (real mode). */
int clock_advance_ms(int64_t delta_ms);
int clock_set_ms(int64_t now_ms);
/* Format Unix ms as RFC 3339 in Asia/Shanghai (+08:00), e.g.
 * "2026-11-23T10:00:00.000+08:00". buf needs 32 bytes. */
void clock_format_ms(int64_t ms, char *buf, size_t len);
/* Parse RFC 3339 (with Z or ±hh:mm); returns 0 and sets *ms, or -1. */
int clock_parse_ms(const char *s, int64_t *ms);
#endif
