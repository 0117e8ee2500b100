DROP FUNCTION IF EXISTS redress_clocks_waiting_for_calendar();
