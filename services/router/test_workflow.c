/* Unit tests: the SPEC §5 state machine — every allowed transition, and a
 * refusal (changing nothing) for every action that does not fit a state. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "workflow.h"

/* allowed[state] = the actions that state accepts (ordinary complaint, with
 * the stream/kind/flags each action needs — see context()). */
static const wf_action allowed[WF_NSTATES][14] = {
    [WF_ACCEPTED] = {WA_ANSWER_ON_SPOT, WA_REVIEW, WA_DISPATCH, WA_RECLASSIFY, WA_NACTIONS},
    [WF_REVIEW] = {WA_DISPATCH, WA_ANSWER, WA_RECLASSIFY, WA_NACTIONS},
    [WF_DISPATCHED] = {WA_SIGN, WA_RETURN, WA_TRANSFER, WA_ESCALATE, WA_RECOMMIT, WA_INTERIM_REPLY,
                       WA_RECLASSIFY, WA_NACTIONS},
    [WF_HANDLING] = {WA_RETURN, WA_TRANSFER, WA_ASSIST, WA_ASSIST_FEEDBACK, WA_ESCALATE, WA_RECOMMIT,
                     WA_INTERIM_REPLY, WA_FEEDBACK, WA_ARRIVE, WA_RECLASSIFY, WA_NACTIONS},
    [WF_FEEDBACK] = {WA_ANSWER, WA_RECLASSIFY, WA_NACTIONS},
    [WF_ANSWERED] = {WA_HQ_REVIEW, WA_CONCLUDE, WA_CLOSE, WA_RECLASSIFY, WA_NACTIONS},
    [WF_CLOSED] = {WA_CALLBACK, WA_REOPEN, WA_ARCHIVE, WA_NACTIONS},
    [WF_ARCHIVED] = {WA_NACTIONS},
};

static const wf_state expected_next[WA_NACTIONS] = {
    [WA_ANSWER_ON_SPOT] = WF_CLOSED, [WA_REVIEW] = WF_REVIEW,     [WA_DISPATCH] = WF_DISPATCHED,
    [WA_SIGN] = WF_HANDLING,         [WA_RETURN] = WF_REVIEW,     [WA_TRANSFER] = WF_DISPATCHED,
    [WA_ASSIST] = WF_HANDLING,       [WA_ASSIST_FEEDBACK] = WF_HANDLING,
    [WA_ESCALATE] = WF_DISPATCHED,   [WA_RECOMMIT] = -1,          [WA_INTERIM_REPLY] = -1,
    [WA_FEEDBACK] = WF_FEEDBACK,     [WA_ANSWER] = WF_ANSWERED,   [WA_HQ_REVIEW] = WF_ANSWERED,
    [WA_CONCLUDE] = WF_ANSWERED,     [WA_CLOSE] = WF_CLOSED,      [WA_CALLBACK] = WF_CLOSED,
    [WA_REOPEN] = WF_HANDLING,       [WA_ARCHIVE] = WF_ARCHIVED,  [WA_ARRIVE] = -1,
    [WA_RECLASSIFY] = -1,
};

static bool is_allowed(wf_state s, wf_action a) {
  for (int i = 0; allowed[s][i] != WA_NACTIONS; i++)
    if (allowed[s][i] == a) return true;
  return false;
}

/* An order in state s with what action a needs, and a complete request. */
static void context(wf_state s, wf_action a, wf_order *o, wf_request *r) {
  memset(o, 0, sizeof *o);
  memset(r, 0, sizeof *r);
  o->state = s;
  o->stream = WS_ORDINARY;
  strcpy(o->holder_unit, "sh-pd");
  strcpy(o->dispatcher_unit, "sh");
  o->promised_by = 1000;
  r->action = a;
  r->actor_unit = "sh";
  r->to_unit = "sh-xh";
  r->parent_of_holder = "sh-city";
  r->reason = "原因";
  r->answer = "已处理";
  r->new_promised_by = 2000;
  r->satisfaction = 4;
  r->conclusion = WC_HANDLED_PROPERLY;
  r->responsibility = "分公司";
  r->regulator_opinion = "同意";
  if (a == WA_HQ_REVIEW) o->stream = WS_ESCALATED;
  if (a == WA_CONCLUDE || a == WA_ARCHIVE) o->stream = WS_APPEAL;
  if (a == WA_ARCHIVE) o->conclusion = WC_HANDLED_PROPERLY;
  if (a == WA_ASSIST_FEEDBACK) o->open_assists = 1;
  if (a == WA_REOPEN) o->called_back = o->handling_at_fault = true;
  if (a == WA_ESCALATE) r->to_unit = "sh-city";
  if (a == WA_ARRIVE) o->kind = WK_REPAIR;
  strcpy(o->tier, "general");
  r->tier = "national";
}

static void every_state_and_action(void **st) {
  for (int s = 0; s < WF_NSTATES; s++) {
    for (int a = 0; a < WA_NACTIONS; a++) {
      wf_order o, before;
      wf_request r;
      context((wf_state)s, (wf_action)a, &o, &r);
      before = o;
      wf_verdict v = wf_apply(&o, &r);
      if (is_allowed((wf_state)s, (wf_action)a)) {
        if (v.status != 0)
          fail_msg("%s in %s refused: %s", wf_action_name(a), wf_state_name(s), v.message);
        wf_state want = expected_next[a] == (wf_state)-1 ? (wf_state)s : expected_next[a];
        if (o.state != want)
          fail_msg("%s in %s → %s, want %s", wf_action_name(a), wf_state_name(s),
                   wf_state_name(o.state), wf_state_name(want));
      } else {
        if (v.status != 409)
          fail_msg("%s in %s: status %d, want 409", wf_action_name(a), wf_state_name(s), v.status);
        assert_memory_equal(&o, &before, sizeof o); /* refused: nothing changed */
        assert_non_null(strstr(v.message, wf_action_name(a)));
      }
    }
  }
}

static wf_verdict run(wf_order *o, wf_action a, void (*tweak)(wf_request *)) {
  wf_order scratch;
  wf_request r;
  context(o->state, a, &scratch, &r);
  if (tweak) tweak(&r);
  return wf_apply(o, &r);
}

static wf_order fresh(wf_state s) {
  wf_order o;
  wf_request r;
  context(s, WA_SIGN, &o, &r);
  return o;
}

static void no_reason(wf_request *r) { r->reason = "  "; }
static void no_answer(wf_request *r) { r->answer = NULL; }
static void skip_level(wf_request *r) { r->to_unit = "hq"; }
static void earlier_promise(wf_request *r) { r->new_promised_by = 500; }
static void bad_satisfaction(wf_request *r) { r->satisfaction = 9; }
static void dissatisfied_at_fault(wf_request *r) {
  r->satisfaction = 1;
  r->at_fault = true;
}
static void signed_receipt(wf_request *r) { r->receipt_signed = true; }
static void no_conclusion(wf_request *r) { r->conclusion = WC_NONE; }

static void reasons_and_answers_are_required(void **st) {
  wf_order o = fresh(WF_HANDLING);
  wf_verdict v = run(&o, WA_RETURN, no_reason);
  assert_int_equal(v.status, 422);
  assert_string_equal(v.field, "reason");
  v = run(&o, WA_TRANSFER, no_reason);
  assert_int_equal(v.status, 422);
  v = run(&o, WA_FEEDBACK, no_answer);
  assert_int_equal(v.status, 422);
  assert_string_equal(v.field, "answer");
  v = run(&o, WA_RECOMMIT, earlier_promise);
  assert_int_equal(v.status, 422);
  assert_int_equal(o.state, WF_HANDLING);
}

static void no_survey(wf_request *r) { r->satisfaction = 0; }

/* SPEC: surveyed when answered or at the callback; an answer's score is optional. */
static void an_answer_may_carry_the_survey(void **st) {
  wf_order o = fresh(WF_REVIEW);
  wf_verdict v = run(&o, WA_ANSWER, bad_satisfaction);
  assert_int_equal(v.status, 422);
  assert_string_equal(v.field, "satisfaction");
  assert_int_equal(o.state, WF_REVIEW);
  v = run(&o, WA_ANSWER, no_survey);
  assert_int_equal(v.status, 0);
  assert_int_equal(o.state, WF_ANSWERED);
  assert_int_equal(o.satisfaction, 0);
  o = fresh(WF_REVIEW);
  v = run(&o, WA_ANSWER, NULL); /* context: satisfaction 4 */
  assert_int_equal(v.status, 0);
  assert_int_equal(o.satisfaction, 4);
}

static void feedback_returns_to_the_dispatcher(void **st) {
  /* Centre "sh" dispatches to sh-pd, which transfers to sh-xh: feedback goes to sh-pd. */
  wf_order o = fresh(WF_REVIEW);
  strcpy(o.holder_unit, "sh");
  wf_verdict v = run(&o, WA_DISPATCH, NULL);
  assert_int_equal(v.status, 0);
  assert_string_equal(o.holder_unit, "sh-xh");
  assert_string_equal(o.dispatcher_unit, "sh");
  strcpy(o.holder_unit, "sh-pd");
  o.state = WF_HANDLING;
  run(&o, WA_TRANSFER, NULL);
  assert_string_equal(o.dispatcher_unit, "sh-pd");
  assert_string_equal(o.holder_unit, "sh-xh");
  run(&o, WA_SIGN, NULL);
  v = run(&o, WA_FEEDBACK, NULL);
  assert_int_equal(v.status, 0);
  assert_int_equal(o.state, WF_FEEDBACK);
  assert_string_equal(o.holder_unit, "sh-pd");
}

static void escalation_is_one_level_at_a_time(void **st) {
  wf_order o = fresh(WF_HANDLING);
  wf_verdict v = run(&o, WA_ESCALATE, skip_level);
  assert_int_equal(v.status, 422);
  assert_string_equal(o.holder_unit, "sh-pd");
  v = run(&o, WA_ESCALATE, NULL);
  assert_int_equal(v.status, 0);
  assert_string_equal(o.holder_unit, "sh-city");
}

static void assists_must_be_fed_back_first(void **st) {
  wf_order o = fresh(WF_HANDLING);
  assert_int_equal(run(&o, WA_ASSIST, NULL).status, 0);
  assert_int_equal(o.open_assists, 1);
  assert_int_equal(run(&o, WA_FEEDBACK, NULL).status, 409);
  assert_int_equal(run(&o, WA_ASSIST_FEEDBACK, NULL).status, 0);
  assert_int_equal(run(&o, WA_FEEDBACK, NULL).status, 0);
}

static void recommit_keeps_the_original_promise(void **st) {
  wf_order o = fresh(WF_HANDLING);
  assert_int_equal(run(&o, WA_RECOMMIT, NULL).status, 0);
  assert_int_equal(o.promised_by, 2000);
  assert_int_equal(o.original_promised_by, 1000);
}

static void escalated_complaints_need_hq_review_and_callback(void **st) {
  wf_order o = fresh(WF_ANSWERED);
  o.stream = WS_ESCALATED;
  assert_int_equal(run(&o, WA_CLOSE, NULL).status, 409);
  assert_int_equal(run(&o, WA_HQ_REVIEW, NULL).status, 0);
  assert_int_equal(run(&o, WA_CLOSE, NULL).status, 409);
  assert_int_equal(run(&o, WA_CALLBACK, NULL).status, 0);
  assert_int_equal(run(&o, WA_CLOSE, NULL).status, 0);
  assert_int_equal(o.state, WF_CLOSED);
}

static void appeals_need_a_conclusion_and_are_archived(void **st) {
  wf_order o = fresh(WF_ANSWERED);
  o.stream = WS_APPEAL;
  assert_int_equal(run(&o, WA_CLOSE, NULL).status, 409);
  assert_int_equal(run(&o, WA_CONCLUDE, no_conclusion).status, 422);
  assert_int_equal(run(&o, WA_CONCLUDE, NULL).status, 0);
  assert_int_equal(run(&o, WA_CLOSE, NULL).status, 0);
  assert_int_equal(run(&o, WA_ARCHIVE, NULL).status, 0);
  assert_int_equal(o.state, WF_ARCHIVED);
}

static void repairs_need_the_signed_receipt(void **st) {
  wf_order o = fresh(WF_ANSWERED);
  o.kind = WK_REPAIR;
  wf_verdict v = run(&o, WA_CLOSE, NULL);
  assert_int_equal(v.status, 409);
  assert_non_null(strstr(v.message, "R-22"));
  assert_int_equal(run(&o, WA_CLOSE, signed_receipt).status, 0);
  o = fresh(WF_ACCEPTED);
  o.kind = WK_REPAIR;
  assert_int_equal(run(&o, WA_ANSWER_ON_SPOT, NULL).status, 409);
}

static void callback_at_fault_reopens(void **st) {
  wf_order o = fresh(WF_CLOSED);
  assert_int_equal(run(&o, WA_REOPEN, NULL).status, 409); /* no callback yet */
  assert_int_equal(run(&o, WA_CALLBACK, bad_satisfaction).status, 422);
  assert_int_equal(run(&o, WA_CALLBACK, dissatisfied_at_fault).status, 0);
  assert_int_equal(o.satisfaction, 1);
  assert_int_equal(run(&o, WA_REOPEN, NULL).status, 0);
  assert_int_equal(o.state, WF_HANDLING);
}

static void arrive_is_recorded_for_repairs_only(void **st) {
  wf_order o = fresh(WF_HANDLING);
  wf_verdict v = run(&o, WA_ARRIVE, NULL);
  assert_int_equal(v.status, 409); /* a complaint has no arrival */
  assert_int_equal(o.arrivals, 0);
  o.kind = WK_REPAIR;
  assert_int_equal(run(&o, WA_ARRIVE, NULL).status, 0);
  assert_int_equal(o.state, WF_HANDLING);
  assert_int_equal(o.arrivals, 1);
  o = fresh(WF_DISPATCHED);
  o.kind = WK_REPAIR;
  assert_int_equal(run(&o, WA_ARRIVE, NULL).status, 409); /* sign first */
}

static void no_change(wf_request *r) { r->tier = NULL; }
static void bad_tier(wf_request *r) { r->tier = "cosmic"; }
static void gold_vip(wf_request *r) {
  r->tier = NULL;
  r->customer_level = "gold";
  r->vip_set = r->vip = true;
}

static void reclassify_changes_tier_level_and_vip(void **st) {
  wf_order o = fresh(WF_HANDLING);
  wf_verdict v = run(&o, WA_RECLASSIFY, no_change);
  assert_int_equal(v.status, 422);
  assert_string_equal(v.field, "tier");
  v = run(&o, WA_RECLASSIFY, bad_tier);
  assert_int_equal(v.status, 422);
  assert_string_equal(o.tier, "general");
  assert_int_equal(run(&o, WA_RECLASSIFY, NULL).status, 0);
  assert_string_equal(o.tier, "national");
  assert_int_equal(o.state, WF_HANDLING);
  assert_int_equal(run(&o, WA_RECLASSIFY, gold_vip).status, 0);
  assert_string_equal(o.tier, "national"); /* unchanged */
  assert_string_equal(o.customer_level, "gold");
  assert_true(o.vip);
  o = fresh(WF_CLOSED);
  assert_int_equal(run(&o, WA_RECLASSIFY, NULL).status, 409);
}

static void names_round_trip(void **st) {
  for (int a = 0; a < WA_NACTIONS; a++) assert_int_equal(wf_action_from_name(wf_action_name(a)), a);
  for (int s = 0; s < WF_NSTATES; s++) assert_int_equal(wf_state_from_name(wf_state_name(s)), s);
  assert_int_equal(wf_action_from_name("delete"), -1);
  assert_int_equal(wf_conclusion_from_name("user_fault"), WC_USER_FAULT);
  assert_int_equal(wf_conclusion_from_name("maybe"), WC_NONE);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_state_and_action),
      cmocka_unit_test(reasons_and_answers_are_required),
      cmocka_unit_test(an_answer_may_carry_the_survey),
      cmocka_unit_test(feedback_returns_to_the_dispatcher),
      cmocka_unit_test(escalation_is_one_level_at_a_time),
      cmocka_unit_test(assists_must_be_fed_back_first),
      cmocka_unit_test(recommit_keeps_the_original_promise),
      cmocka_unit_test(escalated_complaints_need_hq_review_and_callback),
      cmocka_unit_test(appeals_need_a_conclusion_and_are_archived),
      cmocka_unit_test(repairs_need_the_signed_receipt),
      cmocka_unit_test(callback_at_fault_reopens),
      cmocka_unit_test(arrive_is_recorded_for_repairs_only),
      cmocka_unit_test(reclassify_changes_tier_level_and_vip),
      cmocka_unit_test(names_round_trip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
