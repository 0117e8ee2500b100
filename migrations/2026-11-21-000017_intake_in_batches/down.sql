DROP FUNCTION redress_file_complaints(text[], text[], int[], text[], text[], text[], text[],
    text[], text[], text[], jsonb[], timestamptz[], text[], text[], text[], jsonb[], uuid[],
    jsonb[], jsonb[]);
