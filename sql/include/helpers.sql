-- What every suite may use, made here so that the suites do not depend on
-- each other: the extension, and two helpers.  Each suite that needs them
-- includes this file (\i sql/include/helpers.sql).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS singleton;
-- 'ok', or the SQLSTATE and message of the error q raised
CREATE OR REPLACE FUNCTION sqlstate_of(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
-- poll until the query q returns true (at most a minute)
CREATE OR REPLACE FUNCTION wait_until(q text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    ok boolean;
BEGIN
    FOR i IN 1..3000 LOOP
        EXECUTE q INTO ok;
        IF ok THEN RETURN true; END IF;
        PERFORM pg_sleep(0.02);
    END LOOP;
    RAISE EXCEPTION 'timed out waiting until %', q;
END $$;
GRANT EXECUTE ON FUNCTION sqlstate_of(text), wait_until(text) TO PUBLIC;
RESET client_min_messages;
