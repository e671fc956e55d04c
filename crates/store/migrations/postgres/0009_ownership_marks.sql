-- Paddock marks what it creates (tags, labels, a description's end) and a destroy deletes
-- only what carries its stack's mark. Objects recorded before then carry none: each record
-- found here says so (`unmarked`), and destroy deletes its object on the state's word, as
-- it did when the record was written. Imported records need no such word.
UPDATE resources
SET record = jsonb_set(record::jsonb, '{unmarked}', 'true'::jsonb)::text
WHERE NOT coalesce((record::jsonb ->> 'imported')::boolean, false);
