-- The extension's waits show in pg_stat_activity with a name on 17 and
-- later, and as plain "Extension" before.  The launcher and persist worker
-- spend almost all their time in their idle loops: poll until each is seen
-- there (a busy cycle may be caught first).
CREATE FUNCTION wait_event_seen(btype text, named text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
	want text := CASE WHEN current_setting('server_version_num')::int >= 170000
	                  THEN named ELSE 'Extension' END;
BEGIN
	FOR i IN 1 .. 3000 LOOP
		PERFORM 1 FROM pg_stat_activity
		 WHERE backend_type = btype
		   AND wait_event_type = 'Extension' AND wait_event = want;
		IF FOUND THEN
			RETURN true;
		END IF;
		PERFORM pg_sleep(0.01);
		PERFORM pg_stat_clear_snapshot();
	END LOOP;
	RETURN false;
END $$;
SELECT wait_event_seen('singleton job launcher', 'SingletonLauncherMain') AS launcher;
SELECT wait_event_seen('singleton persist', 'SingletonPersistMain') AS persist;
DROP FUNCTION wait_event_seen(text, text);
