/* workflow — SPEC §5 state machine. */
#include "workflow.h"

#include <stdio.h>
#include <string.h>

static const char *const state_names[WF_NSTATES] = {
    "accepted", "review", "dispatched", "handling", "feedback", "answered", "closed", "archived"};
static const char *const state_cn[WF_NSTATES] = {"受理", "复核", "已派单", "处理中",
                                                 "已反馈", "已答复", "已结办", "已归档"};
static const char *const action_names[WA_NACTIONS] = {
    "answer_on_spot", "review",   "dispatch",      "sign",     "return",   "transfer",
    "assist",         "assist_feedback", "escalate", "recommit", "interim_reply", "feedback",
    "answer",         "hq_review", "conclude",     "close",    "callback", "reopen",
    "archive",        "arrive",   "reclassify"};

const char *wf_state_name(wf_state s) { return s < WF_NSTATES ? state_names[s] : "?"; }
const char *wf_action_name(wf_action a) { return a < WA_NACTIONS ? action_names[a] : "?"; }

int wf_action_from_name(const char *s) {
  for (int i = 0; s && i < WA_NACTIONS; i++)
    if (strcmp(action_names[i], s) == 0) return i;
  return -1;
}

int wf_state_from_name(const char *s) {
  for (int i = 0; s && i < WF_NSTATES; i++)
    if (strcmp(state_names[i], s) == 0) return i;
  return -1;
}

wf_conclusion wf_conclusion_from_name(const char *s) {
  if (!s) return WC_NONE;
  if (strcmp(s, "company_liable") == 0) return WC_COMPANY_LIABLE;
  if (strcmp(s, "handled_properly") == 0) return WC_HANDLED_PROPERLY;
  if (strcmp(s, "withdrawn") == 0) return WC_WITHDRAWN;
  if (strcmp(s, "user_fault") == 0) return WC_USER_FAULT;
  return WC_NONE;
}

static bool blank(const char *s) {
  if (!s) return true;
  for (; *s; s++)
    if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r') return false;
  return true;
}

static wf_verdict ok(void) {
  wf_verdict v = {0};
  return v;
}

static wf_verdict refuse(int status, const char *code, const char *field, const char *msg) {
  wf_verdict v = {.status = status, .code = code, .field = field};
  snprintf(v.message, sizeof v.message, "%s", msg);
  return v;
}

static wf_verdict wrong_state(const wf_order *o, wf_action a) {
  wf_verdict v = {.status = 409, .code = "conflict"};
  snprintf(v.message, sizeof v.message, "工单当前为「%s」，不能执行 %s (order is %s)",
           state_cn[o->state], action_names[a], state_names[o->state]);
  return v;
}

static bool in(wf_state s, unsigned mask) { return (mask >> s) & 1u; }
#define S(x) (1u << (x))

static void set_unit(char *dst, const char *src) { snprintf(dst, 32, "%s", src ? src : ""); }

wf_verdict wf_apply(wf_order *o, const wf_request *r) {
  if ((unsigned)r->action >= WA_NACTIONS) return refuse(422, "invalid_value", "action", "unknown action");
  wf_order n = *o;
  wf_action a = r->action;
  switch (a) {
  case WA_ANSWER_ON_SPOT:
    if (!in(o->state, S(WF_ACCEPTED))) return wrong_state(o, a);
    if (o->stream != WS_ORDINARY)
      return refuse(409, "conflict", NULL, "升级投诉/申诉不能现场答复 (escalated or appeal)");
    if (o->kind == WK_REPAIR)
      return refuse(409, "conflict", NULL, "报修须上门处理 (a repair cannot close on the spot)");
    if (blank(r->answer)) return refuse(422, "missing_field", "answer", "answer is required");
    n.state = WF_CLOSED;
    break;
  case WA_REVIEW:
    if (!in(o->state, S(WF_ACCEPTED))) return wrong_state(o, a);
    n.state = WF_REVIEW;
    break;
  case WA_DISPATCH:
    if (!in(o->state, S(WF_ACCEPTED) | S(WF_REVIEW))) return wrong_state(o, a);
    if (blank(r->to_unit)) return refuse(422, "missing_field", "to_unit", "to_unit is required");
    n.state = WF_DISPATCHED;
    set_unit(n.dispatcher_unit, r->actor_unit);
    set_unit(n.holder_unit, r->to_unit);
    break;
  case WA_SIGN:
    if (!in(o->state, S(WF_DISPATCHED))) return wrong_state(o, a);
    n.state = WF_HANDLING;
    break;
  case WA_RETURN:
    if (!in(o->state, S(WF_DISPATCHED) | S(WF_HANDLING))) return wrong_state(o, a);
    if (blank(r->reason)) return refuse(422, "missing_field", "reason", "退单须说明原因 (reason is required)");
    if (o->open_assists) return refuse(409, "conflict", NULL, "协办未反馈 (open assist tasks)");
    n.state = WF_REVIEW;
    set_unit(n.holder_unit, o->dispatcher_unit);
    break;
  case WA_TRANSFER:
    if (!in(o->state, S(WF_DISPATCHED) | S(WF_HANDLING))) return wrong_state(o, a);
    if (blank(r->to_unit)) return refuse(422, "missing_field", "to_unit", "to_unit is required");
    if (blank(r->reason)) return refuse(422, "missing_field", "reason", "转派须说明原因 (reason is required)");
    if (strcmp(r->to_unit, o->holder_unit) == 0)
      return refuse(422, "invalid_value", "to_unit", "不能转派给本单位 (already held by that unit)");
    if (o->open_assists) return refuse(409, "conflict", NULL, "协办未反馈 (open assist tasks)");
    n.state = WF_DISPATCHED;
    set_unit(n.dispatcher_unit, o->holder_unit); /* feedback returns to the transferrer */
    set_unit(n.holder_unit, r->to_unit);
    break;
  case WA_ESCALATE:
    if (!in(o->state, S(WF_DISPATCHED) | S(WF_HANDLING))) return wrong_state(o, a);
    if (blank(r->reason)) return refuse(422, "missing_field", "reason", "升级须说明原因 (reason is required)");
    if (blank(r->parent_of_holder))
      return refuse(409, "conflict", NULL, "已是最高一级，不能再升级 (no level above)");
    if (!blank(r->to_unit) && strcmp(r->to_unit, r->parent_of_holder) != 0)
      return refuse(422, "invalid_value", "to_unit",
                    "只能逐级升级 市→省→总部 (escalation goes one level up only)");
    n.state = WF_DISPATCHED;
    set_unit(n.holder_unit, r->parent_of_holder);
    break;
  case WA_ASSIST:
    if (!in(o->state, S(WF_HANDLING))) return wrong_state(o, a);
    if (blank(r->to_unit)) return refuse(422, "missing_field", "to_unit", "to_unit is required");
    n.open_assists++;
    break;
  case WA_ASSIST_FEEDBACK:
    if (!in(o->state, S(WF_HANDLING))) return wrong_state(o, a);
    if (o->open_assists == 0) return refuse(409, "conflict", NULL, "没有待反馈的协办 (no open assist)");
    if (blank(r->answer)) return refuse(422, "missing_field", "answer", "answer is required");
    n.open_assists--;
    break;
  case WA_RECOMMIT:
    if (!in(o->state, S(WF_DISPATCHED) | S(WF_HANDLING))) return wrong_state(o, a);
    if (blank(r->reason)) return refuse(422, "missing_field", "reason", "重新承诺须说明原因 (reason is required)");
    if (r->new_promised_by <= 0)
      return refuse(422, "missing_field", "promised_by", "promised_by is required");
    if (r->new_promised_by <= o->promised_by)
      return refuse(422, "invalid_value", "promised_by", "新承诺时限须晚于原时限 (must be later)");
    if (!o->original_promised_by) n.original_promised_by = o->promised_by;
    n.promised_by = r->new_promised_by;
    break;
  case WA_INTERIM_REPLY:
    if (!in(o->state, S(WF_DISPATCHED) | S(WF_HANDLING))) return wrong_state(o, a);
    if (blank(r->answer)) return refuse(422, "missing_field", "answer", "answer is required");
    break;
  case WA_FEEDBACK:
    if (!in(o->state, S(WF_HANDLING))) return wrong_state(o, a);
    if (blank(r->answer)) return refuse(422, "missing_field", "answer", "反馈须填写处理结果 (answer is required)");
    if (o->open_assists) return refuse(409, "conflict", NULL, "协办未反馈 (open assist tasks)");
    n.state = WF_FEEDBACK;
    set_unit(n.holder_unit, o->dispatcher_unit);
    break;
  case WA_ANSWER:
    if (!in(o->state, S(WF_REVIEW) | S(WF_FEEDBACK))) return wrong_state(o, a);
    if (blank(r->answer)) return refuse(422, "missing_field", "answer", "answer is required");
    /* SPEC: the customer may be surveyed when answered (else at the callback) */
    if (r->satisfaction != 0 && (r->satisfaction < 1 || r->satisfaction > 5))
      return refuse(422, "invalid_value", "satisfaction", "satisfaction must be 1–5");
    if (r->satisfaction) n.satisfaction = r->satisfaction;
    n.state = WF_ANSWERED;
    break;
  case WA_HQ_REVIEW:
    if (!in(o->state, S(WF_ANSWERED))) return wrong_state(o, a);
    if (o->stream != WS_ESCALATED)
      return refuse(409, "conflict", NULL, "只有升级投诉需要总部审核 (escalated complaints only)");
    n.hq_reviewed = true;
    break;
  case WA_CONCLUDE:
    if (!in(o->state, S(WF_ANSWERED))) return wrong_state(o, a);
    if (o->stream != WS_APPEAL) return refuse(409, "conflict", NULL, "只有申诉需要结论 (appeals only)");
    if (r->conclusion == WC_NONE)
      return refuse(422, "invalid_value", "conclusion",
                    "conclusion: company_liable | handled_properly | withdrawn | user_fault");
    if (blank(r->responsibility)) return refuse(422, "missing_field", "responsibility", "responsibility is required");
    if (blank(r->regulator_opinion))
      return refuse(422, "missing_field", "regulator_opinion", "regulator_opinion is required");
    n.conclusion = r->conclusion;
    n.responsibility_set = n.regulator_opinion_set = true;
    break;
  case WA_CLOSE:
    if (!in(o->state, S(WF_ANSWERED))) return wrong_state(o, a);
    if (o->stream == WS_ESCALATED && !(o->hq_reviewed && o->called_back))
      return refuse(409, "conflict", NULL,
                    "升级投诉须总部审核并电话回访后方可结办 (HQ review and callback first, R-20)");
    if (o->stream == WS_APPEAL && o->conclusion == WC_NONE)
      return refuse(409, "conflict", NULL, "申诉结案须有结论、责任和调解意见 (conclusion first, R-21)");
    if (o->kind == WK_REPAIR && !(o->receipt_signed || r->receipt_signed))
      return refuse(409, "conflict", NULL, "报修须有客户签字的维修回执单 (signed receipt required, R-22)");
    n.state = WF_CLOSED;
    if (r->receipt_signed) n.receipt_signed = true;
    break;
  case WA_CALLBACK:
    /* Escalated complaints are called back before closing; others after. */
    if (!(in(o->state, S(WF_CLOSED)) || (o->stream == WS_ESCALATED && in(o->state, S(WF_ANSWERED)))))
      return wrong_state(o, a);
    if (r->satisfaction < 1 || r->satisfaction > 5)
      return refuse(422, "invalid_value", "satisfaction", "satisfaction must be 1–5");
    n.called_back = true;
    n.satisfaction = r->satisfaction;
    n.handling_at_fault = r->at_fault;
    break;
  case WA_REOPEN:
    if (!in(o->state, S(WF_CLOSED))) return wrong_state(o, a);
    if (!o->called_back || !o->handling_at_fault)
      return refuse(409, "conflict", NULL,
                    "回访发现处理不当方可再处理 (only after a callback that found the handling at fault)");
    n.state = WF_HANDLING;
    n.called_back = false;
    n.handling_at_fault = false;
    break;
  case WA_ARCHIVE:
    if (!in(o->state, S(WF_CLOSED))) return wrong_state(o, a);
    if (o->stream != WS_APPEAL) return refuse(409, "conflict", NULL, "只有申诉归档 (appeals only)");
    n.state = WF_ARCHIVED;
    break;
  case WA_ARRIVE:
    if (!in(o->state, S(WF_HANDLING))) return wrong_state(o, a);
    if (o->kind != WK_REPAIR)
      return refuse(409, "conflict", NULL, "只有报修记录到场 (arrive is for repairs only)");
    n.arrivals++;
    break;
  case WA_RECLASSIFY: {
    if (!in(o->state, S(WF_ACCEPTED) | S(WF_REVIEW) | S(WF_DISPATCHED) | S(WF_HANDLING) |
                          S(WF_FEEDBACK) | S(WF_ANSWERED)))
      return wrong_state(o, a);
    bool tier = !blank(r->tier), level = r->customer_level != NULL;
    if (!tier && !level && !r->vip_set)
      return refuse(422, "missing_field", "tier",
                    "须给出新的级别、客户等级或VIP (tier, customer_level or vip is required)");
    if (tier && strcmp(r->tier, "general") != 0 && strcmp(r->tier, "provincial") != 0 &&
        strcmp(r->tier, "national") != 0)
      return refuse(422, "invalid_value", "tier", "tier: general | provincial | national");
    if (level && strlen(r->customer_level) >= sizeof n.customer_level)
      return refuse(422, "too_long", "customer_level", "customer_level is too long");
    if (tier) snprintf(n.tier, sizeof n.tier, "%s", r->tier);
    if (level) snprintf(n.customer_level, sizeof n.customer_level, "%s", r->customer_level);
    if (r->vip_set) n.vip = r->vip;
    break;
  }
  default:
    return refuse(422, "invalid_value", "action", "unknown action");
  }
  *o = n;
  return ok();
}
