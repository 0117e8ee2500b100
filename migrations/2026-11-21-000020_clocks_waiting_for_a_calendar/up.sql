-- Metrics: SLA clocks that wait for a calendar year nobody has loaded yet, over every
-- tenant (a count, nothing else). Such a clock has no due date, so it can neither warn nor
-- breach until the year is loaded (`redress-api admin calendar load-year`), which schedules
-- it. Near the end of a year every clock whose count runs into the next one waits: the
-- official calendar of the next year is published late in the year. One number an alert can
-- watch, where the worker logged one error line per clock (a third of the complaints filed
-- in a benchmark run in November). The partial index sla_clocks_unscheduled holds exactly
-- these clocks, so the count reads that index alone.
CREATE FUNCTION redress_clocks_waiting_for_calendar()
    RETURNS bigint
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$ SELECT count(*) FROM public.sla_clocks c WHERE c.state = 'unscheduled' $$;

ALTER FUNCTION redress_clocks_waiting_for_calendar() OWNER TO redress_system;
REVOKE ALL ON FUNCTION redress_clocks_waiting_for_calendar() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION redress_clocks_waiting_for_calendar() TO redress_app;
