"""Staff business hours as the notifier reads them (R-33, R-39): the
notify.business_hours row of the longest matching region prefix and its
calendar (notify.calendar_days, a non-'cn' calendar = 'cn' plus its own rows),
so the notifier tests do not depend on the weekday they run on."""
import datetime

DEFAULT_HOURS = (datetime.time(8, 0), datetime.time(18, 0), "cn")  # KESU_NOTIFY_BUSINESS_HOURS


def _prefix(code):
    code = "" if code in ("*", None) else code
    while len(code) >= 2 and code.endswith("00"):
        code = code[:-2]
    return code


def staff_hours(system, region):
    """(open, close, calendar_id) for staff of a unit in `region`."""
    best = None
    for prefix, open_, close, cal in system.pg.query(
            "SELECT region_prefix, open, close, calendar_id FROM notify.business_hours"):
        p = _prefix(prefix)
        if region.startswith(p) and (best is None or len(p) > len(best[0])):
            best = (p, open_, close, cal)
    return best[1:] if best else DEFAULT_HOURS


def working_day(system, day, calendar="cn"):
    rows = system.pg.query(
        "SELECT kind FROM notify.calendar_days WHERE day = %s AND calendar_id IN (%s, 'cn')"
        " ORDER BY (calendar_id = %s) DESC LIMIT 1", (day, calendar, calendar))
    if rows:
        return rows[0][0] == "workday"
    return day.weekday() < 5


def next_opening(system, t, region="310115"):
    """The first moment at or after t (aware datetime, +08:00) when staff of
    `region` are in business hours."""
    open_, close, cal = staff_hours(system, region)
    while True:
        if working_day(system, t.date(), cal):
            if t.time() < open_:
                return t.replace(hour=open_.hour, minute=open_.minute, second=0, microsecond=0)
            if t.time() < close:
                return t
        t = (t + datetime.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
