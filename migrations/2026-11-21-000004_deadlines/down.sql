DROP TABLE sla_clocks;
DROP TABLE sla_policies;
DROP TABLE calendar_days;
DROP TABLE calendar_years;
DROP TABLE calendars;
