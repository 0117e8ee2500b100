-- Personal data (PIPL): finding everything about one complainant, and marking a case whose
-- complainant's personal data was erased (docs/PRIVACY.md).

-- The form of a phone number a complainant is found by: its digits, without the mainland
-- China country code (+86 or 0086) in front of an 11-digit mobile number, so
-- "138 0013 8000", "+86 13800138000" and "13800138000" are one complainant. NULL when there
-- are no digits. The one definition: the API passes the number it was given through it too.
CREATE FUNCTION redress_phone_key(phone text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
        SELECT CASE
            WHEN d = '' THEN NULL
            WHEN length(d) = 13 AND left(d, 2) = '86' THEN substr(d, 3)
            WHEN length(d) = 15 AND left(d, 4) = '0086' THEN substr(d, 5)
            ELSE d
        END
        FROM (SELECT regexp_replace(coalesce(phone, ''), '[^0-9]', '', 'g') AS d) digits
    $$;

-- Export and erasure look a complainant up by phone within a tenant.
CREATE INDEX complaints_complainant_phone
    ON complaints (tenant_id, redress_phone_key(details #>> '{complainant,phone}'))
    WHERE details #>> '{complainant,phone}' IS NOT NULL;

-- When the complainant's personal data was erased; NULL for a case that still holds it.
-- The case keeps its category, provider, status, timestamps and history (anonymised).
ALTER TABLE complaints ADD COLUMN personal_data_erased_at TIMESTAMPTZ;
