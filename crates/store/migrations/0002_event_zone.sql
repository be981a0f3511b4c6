-- Motion events name the zone of their peak.
ALTER TABLE events ADD COLUMN zone TEXT;
