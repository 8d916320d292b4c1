/* log — JSON lines on stderr: {"ts","level","svc","msg",...}.
 * log_init once with the service name; messages are printf-style. */
#ifndef KESU_LOG_H
#define KESU_LOG_H
void log_init(const char *service);
const char *log_service(void);
void log_msg(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_info(...) log_msg("info", __VA_ARGS__)
#define log_warn(...) log_msg("warn", __VA_ARGS__)
#define log_error(...) log_msg("error", __VA_ARGS__)
#define log_debug(...) log_msg("debug", __VA_ARGS__)
#endif
