/* workflow — the work-order state machine of SPEC §5 (R-08, R-17 … R-22),
 * apart from any I/O so every transition is unit-tested.
 *
 *   accepted ─answer_on_spot→ closed                         
 *   accepted ─review→ review ─dispatch→ dispatched ─sign→ handling
 *   dispatched|handling ─return→ review                       (退单, reason)
 *   dispatched|handling ─transfer→ dispatched (other unit)    (转派, reason)
 *   dispatched|handling ─escalate→ dispatched (parent unit)   (升级 市→省→总部, R-19)
 *   handling ─assist/assist_feedback/recommit/interim_reply→ handling
 *   handling ─feedback→ feedback (back to the dispatcher, R-18; no open assists)
 *   review|feedback ─answer→ answered ─close→ closed ─callback→ closed
 *   closed (callback found the handling at fault) ─reopen→ handling   (回访再处理)
 *   escalated stream: answered ─hq_review→ answered; callback before close
 *   appeal: answered ─conclude→ answered; closed ─archive→ archived  
 *   repair: close needs the customer-signed receipt                   
 *   repair: handling ─arrive→ handling (the repair team is on site)     
 *   accepted…answered ─reclassify→ same state (tier / customer level / VIP)
 */
#ifndef KESU_ROUTER_WORKFLOW_H
#define KESU_ROUTER_WORKFLOW_H
#include <stdbool.h>
#include <stdint.h>

typedef enum {
  WF_ACCEPTED, WF_REVIEW, WF_DISPATCHED, WF_HANDLING, WF_FEEDBACK, WF_ANSWERED, WF_CLOSED,
  WF_ARCHIVED, WF_NSTATES
} wf_state;

typedef enum {
  WA_ANSWER_ON_SPOT, WA_REVIEW, WA_DISPATCH, WA_SIGN, WA_RETURN, WA_TRANSFER, WA_ASSIST,
  WA_ASSIST_FEEDBACK, WA_ESCALATE, WA_RECOMMIT, WA_INTERIM_REPLY, WA_FEEDBACK, WA_ANSWER,
  WA_HQ_REVIEW, WA_CONCLUDE, WA_CLOSE, WA_CALLBACK, WA_REOPEN, WA_ARCHIVE, WA_ARRIVE,
  WA_RECLASSIFY, WA_NACTIONS
} wf_action;

/* Appeal conclusions, exactly one at closure. */
typedef enum {
  WC_NONE, WC_COMPANY_LIABLE, WC_HANDLED_PROPERLY, WC_WITHDRAWN, WC_USER_FAULT
} wf_conclusion;

typedef enum { WK_OTHER, WK_REPAIR, WK_ENQUIRY } wf_kind_class;
typedef enum { WS_ORDINARY, WS_ESCALATED, WS_APPEAL } wf_stream;

/* What the state machine needs to know of an order. */
typedef struct {
  wf_state state;
  wf_stream stream;
  wf_kind_class kind;
  char holder_unit[32];     /* who holds it now */
  char dispatcher_unit[32]; /* who feedback returns to */
  int open_assists;
  bool hq_reviewed, called_back, receipt_signed, handling_at_fault;
  int satisfaction; /* 0 none, 1..5 */
  wf_conclusion conclusion;
  bool responsibility_set, regulator_opinion_set;
  int64_t promised_by, original_promised_by;
  char tier[16];            /* general | provincial | national */
  char customer_level[32];
  bool vip;                 /* R-13 VIP sub-level */
  int arrivals;             /* repair: arrive steps recorded */
} wf_order;

/* One action as posted. Strings may be NULL. */
typedef struct {
  wf_action action;
  const char *actor_unit;  /* the unit acting (from the token / handler) */
  const char *to_unit;     /* dispatch, transfer, escalate, assist */
  const char *parent_of_holder; /* the holder unit's parent (escalate target check) */
  const char *reason;      /* return, transfer, escalate, recommit */
  const char *answer;      /* answer, answer_on_spot, feedback, interim_reply */
  int64_t new_promised_by; /* recommit */
  int satisfaction;        /* callback: 1..5 */
  bool at_fault;           /* callback: the handling was at fault */
  bool receipt_signed;     /* close of a repair, or sign of the receipt */
  wf_conclusion conclusion;       /* conclude */
  const char *responsibility;     /* conclude */
  const char *regulator_opinion;  /* conclude */
  const char *tier;               /* reclassify: general | provincial | national (NULL: same) */
  const char *customer_level;     /* reclassify (NULL: same) */
  bool vip_set, vip;              /* reclassify: the VIP sub-level, when vip_set */
} wf_request;

typedef struct {
  int status;        /* 0 ok; else 409 (state), 403 (scope/actor), 422 (missing/invalid) */
  const char *code;  /* conflict, forbidden, missing_field, invalid_value */
  const char *field; /* for 422 */
  char message[160]; /* Chinese + English explanation for the staff member */
} wf_verdict;

/* Checks req against o; if allowed, applies it to o (new state, holder, flags) and returns
 * status 0. If refused, o is unchanged. */
wf_verdict wf_apply(wf_order *o, const wf_request *req);

const char *wf_state_name(wf_state s);
const char *wf_action_name(wf_action a);
/* -1 if unknown. */
int wf_action_from_name(const char *s);
int wf_state_from_name(const char *s);
wf_conclusion wf_conclusion_from_name(const char *s);
#endif
