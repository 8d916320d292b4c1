-- intake.submit (001) is unused since submit_v2 (002) took the R-07 fields: an old
-- binary calling it would store complaints without them, so it goes.
DROP FUNCTION IF EXISTS intake.submit(text, text, text, text, text, text, text, bigint, bigint,
    text, text, text, text, text, text, text, text, text, text, text, uuid, bytea);
