/* kesuctl demo — feeds realistic synthetic complaints through the real
 * services so the ops dashboard shows life (issue 6):
 *
 *   every 1/rate seconds: POST intake /v1/complaints (Chinese title and
 *   content, a region, channel, business type and problem type drawn from
 *   fixed tables); after --close-after seconds, a --close-ratio share of the
 *   orders are closed by the handler (POST handler /v1/orders/{no}/actions
 *   {"action":"close"}), retried while the order is not at the handler yet.
 *
 * One line of progress per complaint and per close; Ctrl-C (SIGINT/SIGTERM)
 * stops after the current request and prints the totals. Deterministic for a
 * given --seed. Uses the admin token like `kesuctl submit`.
 */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "kesuctl.h"

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) { (void)sig, g_stop = 1; }

static const struct {
  const char *code, *name;
} regions[] = {{"110105", "北京市朝阳区"}, {"310101", "上海市黄浦区"}, {"310104", "上海市徐汇区"},
               {"310115", "上海市浦东新区"}, {"320100", "江苏省南京市"}, {"320500", "江苏省苏州市"},
               {"330100", "浙江省杭州市"},   {"440100", "广东省广州市"}, {"440305", "深圳市南山区"},
               {"510100", "四川省成都市"},   {"420100", "湖北省武汉市"}, {"610100", "陕西省西安市"}};
static const char *const streets[] = {"人民路", "中山路", "解放路", "建设路", "和平街", "新华路",
                                      "长江路", "科技园路"};
static const char *const channels[] = {"hotline", "hotline", "hotline", "website", "app",
                                       "hall",    "sms",     "letter",  "email",   "media"};
static const struct {
  const char *business, *problem, *title, *content;
} issues[] = {
    {"broadband", "network", "宽带频繁断网", "家里宽带最近一周每天晚上断网好几次，重启光猫也没用，影响孩子上网课，要求尽快派人上门检修。"},
    {"broadband", "installation", "新装宽带迟迟未上门", "三天前在营业厅办理了新装宽带，约定昨天上门安装，到现在没人联系，要求给个明确时间。"},
    {"mobile", "network", "小区手机信号差", "住的小区地下室和电梯里完全没有信号，家里客厅也只有一格，打电话经常断，希望加装基站。"},
    {"mobile", "billing", "话费莫名多扣", "这个月话费比平时多扣了六十多元，查询详单有一项增值业务我从未订购，要求退费并取消。"},
    {"mobile", "tariff", "套餐资费与宣传不符", "办理套餐时说每月流量不限量，结果用到四十G就限速了，感觉被误导，要求按宣传执行。"},
    {"value_added", "subscription", "被订购不知情的会员", "手机每月被扣十五元视频会员费，本人从未订购，也没收到任何确认短信，要求退订退款。"},
    {"iptv", "network", "电视直播频繁卡顿", "IPTV看直播时经常卡顿花屏，晚上黄金时段尤其严重，机顶盒已经换过一次，问题依旧。"},
    {"fixed", "business_handling", "固话移机办理拖延", "搬家后申请固话移机已经两周了，营业厅说在排队，一直没有进展，影响店铺正常营业。"},
    {"mobile", "attitude", "营业员服务态度差", "在营业厅咨询携号转网时营业员态度冷淡，不耐烦地让我自己去网上查，希望加强服务培训。"},
    {"broadband", "billing", "宽带到期自动续费", "宽带合约到期后没有通知就自动续了一年，而且价格比原来贵，要求按原价续费或者退订。"},
    {"mobile", "roaming", "出境漫游费用过高", "出国旅游期间没用多少流量却被收了三百多元漫游费，短信提醒也不及时，要求核实减免。"},
    {"channel_service", "attitude", "客服热线长时间无人接听", "拨打客服热线转人工等了二十多分钟无人接听，问题一直无法反映，希望改善接通率。"},
};
static const char *const names[] = {"张伟", "王芳", "李娜", "刘洋", "陈静", "杨帆", "赵磊",
                                    "黄敏", "周杰", "吴婷", "徐明", "孙丽", "马超", "朱琳"};
static const char *const levels[] = {"", "", "", "", "gold", "gold", "diamond"};
static const char *const answers[] = {
    "已安排工程师上门处理，故障已排除，客户表示满意。", "经核实已为客户办理退费并取消相关业务。",
    "已向客户解释资费规则并按宣传标准调整，客户认可。", "已协调网络部门优化覆盖，并告知客户进展。"};

#define N_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

typedef struct {
  char *p;
  size_t n;
} membuf;

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg) {
  membuf *b = arg;
  size_t len = size * nmemb;
  char *np = realloc(b->p, b->n + len + 1);
  if (!np) return 0;
  b->p = np;
  memcpy(b->p + b->n, data, len);
  b->n += len;
  b->p[b->n] = '\0';
  return len;
}

/* POST body (stolen) to url; returns the HTTP status (0 on transport error) and the parsed
 * answer in *out (may be NULL). */
static long post(CURL *h, const char *url, const char *token, json_t *body, json_t **out) {
  char *text = json_dumps(body, JSON_COMPACT);
  json_decref(body);
  char auth[512];
  snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
  struct curl_slist *hdrs = NULL;
  hdrs = curl_slist_append(hdrs, "Content-Type: application/json; charset=utf-8");
  hdrs = curl_slist_append(hdrs, auth);
  membuf resp = {0};
  curl_easy_reset(h);
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, text);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
  curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 3L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  long status = 0;
  if (curl_easy_perform(h) == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(hdrs);
  free(text);
  if (out) *out = resp.p ? json_loads(resp.p, 0, NULL) : NULL;
  free(resp.p);
  return status;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s) {
  if (s <= 0) return;
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  nanosleep(&ts, NULL); /* a signal ends it early: g_stop is checked next */
}

static uint64_t g_rng = 88172645463325252ull;
static uint32_t rnd(uint32_t n) {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return (uint32_t)(g_rng % n);
}

static void base_url(const char *given, const char *svc, int port, char *out, size_t len) {
  if (given) {
    snprintf(out, len, "%s", given);
  } else {
    char host[128];
    int p;
    cfg_http_listen(svc, port, host, sizeof host, &p);
    snprintf(out, len, "http://%s:%d", host, p);
  }
  size_t n = strlen(out);
  while (n && out[n - 1] == '/') out[--n] = '\0';
}

typedef struct {
  char no[40];
  double due;  /* when to try closing */
  int tries;
} pending;

int cmd_demo(int argc, char **argv) {
  const char *intake = NULL, *handler = NULL, *token = NULL, *rate_s = "1", *ratio_s = "0.6",
             *count_s = "0", *after_s = "8", *seed_s = NULL,
             *only = NULL;
  for (int i = 1; i < argc; i++) {
    int m;
    if ((m = ctl_opt(argc, argv, &i, "--intake", &intake)) ||
        (m = ctl_opt(argc, argv, &i, "--handler", &handler)) ||
        (m = ctl_opt(argc, argv, &i, "--token", &token)) ||
        (m = ctl_opt(argc, argv, &i, "--rate", &rate_s)) ||
        (m = ctl_opt(argc, argv, &i, "--close-ratio", &ratio_s)) ||
        (m = ctl_opt(argc, argv, &i, "--close-after", &after_s)) ||
        (m = ctl_opt(argc, argv, &i, "--count", &count_s)) ||
        (m = ctl_opt(argc, argv, &i, "--seed", &seed_s)) ||
        (m = ctl_opt(argc, argv, &i, "--region", &only))) {
      if (m < 0) return EXIT_USAGE;
      continue;
    }
    ctl_err("demo: unknown argument '%s'\n"
            "usage: kesuctl demo [--rate PER_SECOND (1)] [--close-ratio 0..1 (0.6)]\n"
            "                    [--close-after SECONDS (8)] [--count N (0 = until Ctrl-C)]\n"
            "                    [--seed N] [--region CODE (only this one of the demo's\n"
            "                    regions)] [--intake URL] [--handler URL] [--token T]",
            argv[i]);
    return EXIT_USAGE;
  }
  double rate = strtod(rate_s, NULL), ratio = strtod(ratio_s, NULL),
         after = strtod(after_s, NULL);
  long count = strtol(count_s, NULL, 10);
  if (!(rate > 0 && rate <= 50) || !(ratio >= 0 && ratio <= 1) || !(after >= 0) || count < 0) {
    ctl_err("demo: --rate is 0 < r ≤ 50, --close-ratio 0 … 1, --close-after ≥ 0, --count ≥ 0");
    return EXIT_USAGE;
  }
  int only_r = -1;
  for (int i = 0; only && i < N_OF(regions); i++)
    if (strcmp(regions[i].code, only) == 0) only_r = i;
  if (only && only_r < 0) {
    ctl_err("demo: --region is one of 110105 310101 310104 310115 320100 320500 330100 440100"
            " 440305 510100 420100 610100");
    return EXIT_USAGE;
  }
  if (seed_s) g_rng ^= (uint64_t)strtoull(seed_s, NULL, 10) * 0x9E3779B97F4A7C15ull;
  else g_rng ^= (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull;
  if (!g_rng) g_rng = 1;

  char ib[256], hb[256];
  base_url(intake, "INTAKE", PORT_INTAKE_HTTP, ib, sizeof ib);
  base_url(handler, "HANDLER", PORT_HANDLER_HTTP, hb, sizeof hb);
  char *token_buf = NULL;
  if (!token) {
    const char *off = getenv("KESU_PORT_OFFSET");
    char rel[64] = "var/admin.token";
    if (off && *off && strcmp(off, "0") != 0) snprintf(rel, sizeof rel, "var/admin-%s.token", off);
    char *path = ctl_path(rel);
    token_buf = ctl_read_file(path, NULL);
    if (!token_buf) {
      ctl_err("demo: no --token and cannot read %s: %s", path, strerror(errno));
      free(path);
      return EXIT_USAGE;
    }
    free(path);
    char *e = token_buf + strlen(token_buf);
    while (e > token_buf && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ')) *--e = '\0';
    token = token_buf;
  }

  struct sigaction sa = {0};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  CURL *h = curl_easy_init();
  printf("demo: %.2g complaints/s to %s, closing %.0f%% via %s after %.0f s; Ctrl-C stops\n",
         rate, ib, ratio * 100, hb, after);
  fflush(stdout);

  size_t cap = 256, npend = 0;
  pending *pend = calloc(cap, sizeof *pend);
  long submitted = 0, closed = 0, failed = 0, fails_in_row = 0;
  double next = now_s();
  char url[512];
  while (!g_stop && (count == 0 || submitted < count || npend > 0)) {
    double t = now_s();
    if ((count == 0 || submitted < count) && t >= next) {
      next += 1.0 / rate;
      int r = (int)rnd(N_OF(regions)), is = (int)rnd(N_OF(issues));
      if (only) r = only_r;
      const char *ch = channels[rnd(N_OF(channels))];
      char phone[16];
      snprintf(phone, sizeof phone, "13%09u", rnd(1000000000u));
      char addr[160];
      snprintf(addr, sizeof addr, "%s%s%u号%u室", regions[r].name, streets[rnd(N_OF(streets))],
               1 + rnd(300), 101 + rnd(20) * 100 + rnd(4));
      json_t *cu = json_pack("{s:s, s:s, s:s, s:s}", "name", names[rnd(N_OF(names))], "phone",
                             phone, "home_region", regions[r].code, "address", addr);
      const char *lvl = levels[rnd(N_OF(levels))];
      if (*lvl) json_object_set_new(cu, "level", json_string(lvl));
      json_t *body = json_pack("{s:s, s:o, s:s, s:s, s:s, s:s, s:s}", "channel", ch, "customer",
                               cu, "region", regions[r].code, "business_type",
                               issues[is].business, "problem_type", issues[is].problem, "title",
                               issues[is].title, "content", issues[is].content);
      snprintf(url, sizeof url, "%s/v1/complaints", ib);
      json_t *ans = NULL;
      long st = post(h, url, token, body, &ans);
      const char *no = json_string_value(json_object_get(ans, "order_no"));
      if (st == 201 && no) {
        submitted++;
        fails_in_row = 0;
        printf("demo: #%ld %s %s %-8s %s\n", submitted, no, regions[r].name, ch,
               issues[is].title);
        if (rnd(1000) < (uint32_t)(ratio * 1000)) {
          if (npend == cap) {
            pending *np = realloc(pend, 2 * cap * sizeof *pend);
            if (np) pend = np, cap *= 2;
          }
          if (npend < cap) {
            snprintf(pend[npend].no, sizeof pend[npend].no, "%s", no);
            pend[npend].due = t + after + (double)rnd(1000) / 1000.0 * after;
            pend[npend++].tries = 0;
          }
        }
      } else {
        failed++;
        json_t *e = json_object_get(ans, "error");
        const char *msg = json_string_value(json_object_get(e, "message"));
        if (st)
          fprintf(stderr, "demo: intake answered %ld: %s\n", st, msg ? msg : "?");
        else
          fprintf(stderr, "demo: no answer from %s (is the system running? `make run`)\n", ib);
        if (++fails_in_row >= 10) {
          ctl_err("demo: 10 failures in a row; stopping");
          g_stop = 1;
        }
        if (!st) sleep_s(1);
      }
      json_decref(ans);
    }
    /* close what is due (one per turn, so submissions keep their pace) */
    for (size_t i = 0; i < npend && !g_stop; i++) {
      if (pend[i].due > now_s()) continue;
      snprintf(url, sizeof url, "%s/v1/orders/%s/actions", hb, pend[i].no);
      long st = post(h, url, token,
                     json_pack("{s:s, s:s}", "action", "close", "answer",
                               answers[rnd(N_OF(answers))]),
                     NULL);
      if (st == 200) {
        closed++;
        printf("demo: closed %s (%ld submitted, %ld closed)\n", pend[i].no, submitted, closed);
      } else if (++pend[i].tries < 10) {
        pend[i].due = now_s() + 2; /* not at the handler yet: try again */
        break;
      } else {
        fprintf(stderr, "demo: could not close %s (handler answered %ld)\n", pend[i].no, st);
      }
      pend[i] = pend[--npend];
      break;
    }
    fflush(stdout);
    double wait = count && submitted >= count ? 0.2 : next - now_s();
    sleep_s(wait > 0.2 ? 0.2 : wait);
  }
  printf("demo: stopped — %ld submitted, %ld closed, %ld failed, %zu left open\n", submitted,
         closed, failed, npend);
  free(pend);
  free(token_buf);
  curl_easy_cleanup(h);
  curl_global_cleanup();
  return failed && !submitted ? EXIT_FAIL : EXIT_OK;
}
