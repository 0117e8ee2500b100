ALTER TABLE complaints DROP COLUMN personal_data_erased_at;
DROP INDEX complaints_complainant_phone;
DROP FUNCTION redress_phone_key(text);
