-- The reference data, as `pg_dump --no-owner --no-privileges` writes it (plain format).
CREATE TABLE public.notes (
    id serial PRIMARY KEY,
    body text NOT NULL
);
INSERT INTO public.notes (body) VALUES
    ('Seeded row: Ada'),
    ('Seeded row: Grace'),
    ('Seeded row: Linus');
