DROP FUNCTION IF EXISTS redress_file_complaint(text, text, int, text, text, text, text, text,
    text, text, jsonb, timestamptz, text, text, text, jsonb, uuid, jsonb, jsonb);
