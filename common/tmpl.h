/* tmpl — the notification template engine, shared by the notifier
 * (rendering) and kesuctl (refusing a template with an unknown variable at
 * load time — the same scanner decides what a variable is in both).
 *
 * A variable is "{name}" where name is [a-z_][a-z0-9_]*; any other brace text
 * is kept as written ("{a b}", a lone "{", "{{x}}" = "{" + {x} + "}").
 */
#ifndef KESU_TMPL_H
#define KESU_TMPL_H
#include <stdbool.h>
#include <stddef.h>

/* The variables a notification can use (NULL-terminated). */
extern const char *const tmpl_known_vars[];
bool tmpl_is_known_var(const char *name, size_t len);
/* 0 if every variable in tmpl is known; else -1 with the first unknown name
 * in bad (truncated to badlen). */
int tmpl_check(const char *tmpl, char *bad, size_t badlen);
/* Replaces every variable with its value (names[i] → values[i]; NULL value
 * = ""); variables without a value are kept as written. Malloc'd. */
char *tmpl_render(const char *tmpl, int nvars, const char *const *names,
                  const char *const *values);
#endif
