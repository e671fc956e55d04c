-- What an operation was asked to do beyond its kind and stages (an import's resources), as
-- JSON text.
ALTER TABLE operations ADD COLUMN request TEXT;
