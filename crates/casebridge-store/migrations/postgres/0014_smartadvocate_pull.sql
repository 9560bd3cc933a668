-- The third pull cursor, for CRMs that are pulled by contact as well (SmartAdvocate: cases use
-- leads_cursor, notes notes_cursor, contacts this one). CRM storage time of the newest contact
-- seen, epoch milliseconds.
ALTER TABLE integrations ADD COLUMN contacts_cursor BIGINT;
